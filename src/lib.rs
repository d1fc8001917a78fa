//! Tessera: a Redis-compatible key-value and cache store. This library is the server — the
//! binary is a thin CLI over `server::start` — so it can also run inside another process.

pub mod admin;
pub mod blocking;
pub mod client;
pub mod cluster;
pub mod clusteradmin;
pub mod config;
pub mod conn;
pub mod core;
pub mod devcluster;
pub mod dispatch;
pub mod info;
pub mod introspect;
pub mod mailbox;
pub mod multi;
pub mod net;
pub mod planted;
pub mod pubsub;
pub mod server;
pub mod transaction;

pub use config::Config;
pub use server::{start, ServerHandle};
