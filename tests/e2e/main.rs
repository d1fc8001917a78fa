//! End-to-end tests: each starts the real `tessera` binary on a free loopback port and talks
//! to it with the `redis` crate or raw sockets.

mod cluster;
mod collections;
mod families;
mod harness;
mod keyspace;
mod multicore;
mod robustness;
mod sorted_blocking;
mod strings;
