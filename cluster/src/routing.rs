//! What every core of a node needs to route a request, readable without locks: the cluster's
//! nodes, each partition's slots, replicas and current leader, and how long this node may
//! serve reads of the partitions it leads without asking the others (its lease).

use crate::placement::{self, NodeId};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_protocol::SLOT_COUNT;

/// Marks a partition with no known leader.
const NO_LEADER: u64 = 0;

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Where clients reach it, `host:port`.
    pub client: String,
    /// Where its peers send Raft traffic.
    pub raft: String,
}

/// The hash slots of `partition` when the slots are cut into `partitions` equal ranges.
pub fn slots_of(partition: u32, partitions: u32) -> Range<u16> {
    let (p, n) = (partition as usize, partitions as usize);
    (p * SLOT_COUNT / n) as u16..((p + 1) * SLOT_COUNT / n) as u16
}

pub struct Routing {
    pub me: NodeId,
    pub members: Vec<Member>,
    pub partitions: u32,
    /// Each partition's replicas, preferred leader first.
    pub replicas: Vec<Vec<NodeId>>,
    leaders: Vec<AtomicU64>,
    /// Unix ms until which this node, leading the partition, may serve reads on its own.
    leases: Vec<AtomicU64>,
}

impl Routing {
    /// Node ids must be non-zero.
    pub fn new(me: NodeId, members: Vec<Member>, partitions: u32, replicas: usize) -> Routing {
        let ids: BTreeSet<NodeId> = members.iter().map(|m| m.id).collect();
        let replicas = placement::place(partitions, &ids, replicas);
        Routing {
            me,
            members,
            partitions,
            replicas,
            leaders: (0..partitions).map(|_| AtomicU64::new(NO_LEADER)).collect(),
            leases: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The partition holding a hash slot: partitions are equal contiguous slot ranges.
    pub fn partition_of(&self, slot: u16) -> u32 {
        (slot as usize * self.partitions as usize / SLOT_COUNT) as u32
    }

    pub fn slots(&self, partition: u32) -> Range<u16> {
        slots_of(partition, self.partitions)
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn hosts(&self, partition: u32) -> bool {
        self.replicas[partition as usize].contains(&self.me)
    }

    pub fn leader(&self, partition: u32) -> Option<NodeId> {
        let id = self.leaders[partition as usize].load(Ordering::Acquire);
        (id != NO_LEADER).then_some(id)
    }

    /// Whether this node may serve a linearizable read of `partition` at `now` (Unix ms).
    pub fn readable(&self, partition: u32, now: u64) -> bool {
        self.leader(partition) == Some(self.me)
            && now < self.leases[partition as usize].load(Ordering::Acquire)
    }

    pub(crate) fn set_leader(&self, partition: u32, leader: Option<NodeId>, lease_until: u64) {
        let p = partition as usize;
        self.leases[p].store(lease_until, Ordering::Release);
        self.leaders[p].store(leader.unwrap_or(NO_LEADER), Ordering::Release);
    }

    /// Leaders a peer reports for partitions this node does not hold (it learns those of
    /// its own partitions from Raft); a stale report costs a client one more redirect.
    pub fn learn_leaders(&self, leaders: &[(u32, NodeId)]) {
        for &(partition, leader) in leaders {
            if partition < self.partitions
                && !self.hosts(partition)
                && self.member(leader).is_some()
            {
                self.set_leader(partition, Some(leader), 0);
            }
        }
    }

    /// Partitions this node leads now.
    pub fn led_here(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.partitions).filter(|&p| self.leader(p) == Some(self.me))
    }
}
