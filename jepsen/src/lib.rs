//! Jepsen-style testing for Tessera: clients record what they asked and what they were told
//! as a history, and checkers decide whether some legal sequential order explains it.
//!
//! [`history`] stores and pairs the recorded events; [`linearizable`] checks register
//! histories for linearizability; [`counter`] bounds the reads of counters that clients
//! only increment; [`set`] checks that sets clients only add to lose and invent no
//! elements; [`list_append`] checks lists that clients only append to for the anomalies
//! Elle finds, from lost appends to dependency cycles that real time forbids; [`report`]
//! holds what they share: grouping by key and the overall report; [`plot`] draws latency
//! and throughput SVGs with nemesis windows shaded, and a run's index page.
//!
//! The runner drives a real cluster: [`run`] sequences a test, [`net`] builds the
//! namespaced network and its faults ([`proxy`] without root), [`nodes`] manages the server processes, [`nemesis`]
//! schedules faults, [`workload`] draws operations and reads replies, [`resp`] talks to the
//! nodes, [`recorder`] writes the history as it happens, and [`rng`] makes runs replayable.

pub mod counter;
#[cfg(test)]
mod fixtures;
pub mod history;
pub mod linearizable;
pub mod list_append;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod plot;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod resp;
pub mod rng;
pub mod run;
pub mod set;
pub mod workload;
