//! Jepsen-style testing for Tessera: clients record what they asked and what they were told
//! as a history, and checkers decide whether some legal sequential order explains it.
//!
//! [`history`] stores and pairs the recorded events; [`linearizable`] checks register
//! histories for linearizability.

pub mod history;
pub mod linearizable;
