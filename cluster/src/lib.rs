//! The cluster layer: where partitions live across nodes. Raft replication, membership
//! changes and the transport build on this placement.

pub mod group;
pub mod placement;
