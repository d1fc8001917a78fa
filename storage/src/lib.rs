//! The partition state machine: keyspaces indexed by hash slot, string values, absolute
//! deadlines with passive and active expiry, memory accounting, and the command families that
//! read them or apply deterministic effects to them. No networking, no threads, no Raft.

pub mod access;
pub mod bits;
pub mod clock;
pub mod decimal;
pub mod dense;
pub mod dump;
pub mod effect;
pub mod entry;
pub mod errors;
pub mod glob;
pub mod hashes;
pub mod hll;
pub mod keys;
pub mod keyspace;
pub mod lists;
pub mod notify;
pub mod object;
pub mod pack;
pub mod prefetch;
pub mod ranked;
pub mod rng;
pub mod scan;
pub mod sets;
pub mod sort;
pub mod store;
pub mod stream;
pub mod streams;
pub mod strings;
pub mod zsets;

pub use effect::Effect;
pub use keyspace::Keyspace;
pub use store::{plan, Request, Store};
