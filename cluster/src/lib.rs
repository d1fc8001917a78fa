//! The cluster layer: where partitions live across nodes (placement), each partition's Raft
//! group (group, replica), the connections between nodes (transport), and the node runtime
//! that ties them to the server (node, routing).

pub mod forward;
pub mod group;
pub mod handshake;
pub mod node;
pub mod placement;
pub mod replica;
pub mod roster;
pub mod routing;
pub mod snapshots;
pub mod transport;
pub mod wal;
