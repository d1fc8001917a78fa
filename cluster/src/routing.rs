//! What every core of a node needs to route a request: the cluster's members, each
//! partition's slots, replicas and current leader (read without locks), whether it is moving,
//! and how long this node may serve reads of the partitions it leads without asking the
//! others (its lease).

use crate::placement::NodeId;
use crate::roster::{roster_group, Roster};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use tessera_protocol::SLOT_COUNT;

/// Marks a partition with no known leader.
const NO_LEADER: u64 = 0;

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    pub partitions: u32,
    /// The replication factor.
    pub replicas: usize,
    /// Every member, leaving ones too (they still lead partitions until those move).
    members: RwLock<Vec<Member>>,
    /// Per group (the partitions, then the roster group): the voters placement wants, and
    /// the committed voters its leaders reported, with the log index of that membership (the
    /// highest seen wins; empty until known).
    targets: RwLock<Vec<Vec<NodeId>>>,
    voters: RwLock<Vec<(Vec<NodeId>, u64)>>,
    /// Whether a group's voters differ from its target: it is moving.
    moving: Vec<AtomicBool>,
    /// Whether this node runs the group.
    hosted: Vec<AtomicBool>,
    leaders: Vec<AtomicU64>,
    /// Unix ms until which this node, leading the partition, may serve reads on its own.
    leases: Vec<AtomicU64>,
    /// The log index its core must have applied before this node, leading the partition,
    /// serves reads: the first of the leader's term it saw applied, which follows every
    /// entry its predecessors committed.
    readable_from: Vec<AtomicU64>,
    /// Unix ms until which this node, leading the group, takes writes.
    writes_until: Vec<AtomicU64>,
    /// The log index up to which the partition's core has run the log: Raft counts an entry
    /// applied once it is handed to the core, a little before the core runs it.
    applied: Vec<AtomicU64>,
    /// Bumped whenever some group's leader changes, for whoever waits for one.
    leader_changes: tokio::sync::watch::Sender<u64>,
}

/// A group's leader as this node last learned it, and what this node may do leading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Leadership {
    pub leader: Option<NodeId>,
    /// Unix ms until which this node, leading, may serve reads on its own.
    pub lease_until: u64,
    /// The applied index from which it may (see `Routing::readable`).
    pub readable_from: u64,
    /// Unix ms until which this node, leading, takes writes: after that no majority has
    /// acknowledged it for so long that another leader has most likely been elected.
    pub writes_until: u64,
}

impl Leadership {
    /// Led by `leader` as far as this node knows, and nothing served here on its strength.
    pub fn elsewhere(leader: Option<NodeId>) -> Leadership {
        Leadership {
            leader,
            lease_until: 0,
            readable_from: u64::MAX,
            writes_until: 0,
        }
    }
}

/// A group's leader and committed voters, as the leader reports them to its peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Led {
    pub group: u32,
    pub leader: NodeId,
    pub voters: Vec<NodeId>,
    /// The log index of the membership entry that made them the voters.
    pub since: u64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().expect("no holder panics")
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().expect("no holder panics")
}

impl Routing {
    /// Node ids must be non-zero.
    pub fn new(me: NodeId, roster: &Roster, partitions: u32, replicas: usize) -> Routing {
        let groups = partitions as usize + 1;
        let routing = Routing {
            me,
            partitions,
            replicas,
            members: RwLock::default(),
            targets: RwLock::new(vec![Vec::new(); groups]),
            voters: RwLock::new(vec![(Vec::new(), 0); groups]),
            moving: (0..groups).map(|_| AtomicBool::new(false)).collect(),
            hosted: (0..groups).map(|_| AtomicBool::new(false)).collect(),
            leaders: (0..groups).map(|_| AtomicU64::new(NO_LEADER)).collect(),
            leases: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            readable_from: (0..groups).map(|_| AtomicU64::new(u64::MAX)).collect(),
            writes_until: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            applied: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            leader_changes: tokio::sync::watch::Sender::new(0),
        };
        routing.set_roster(roster);
        routing
    }

    /// The roster's group.
    pub fn roster_group(&self) -> u32 {
        roster_group(self.partitions)
    }

    /// Follows a change of the roster: members and targets.
    pub fn set_roster(&self, roster: &Roster) {
        *write(&self.members) = roster.members.values().cloned().collect();
        *write(&self.targets) = (0..=self.partitions)
            .map(|g| roster.target(g, self.replicas))
            .collect();
        (0..=self.partitions).for_each(|g| self.note_moving(g));
    }

    /// A group is moving once its voters are known and are not the target's nodes.
    fn note_moving(&self, group: u32) {
        let g = group as usize;
        let mut voters = read(&self.voters)[g].0.clone();
        let mut target = read(&self.targets)[g].clone();
        voters.sort_unstable();
        target.sort_unstable();
        let moving = !voters.is_empty() && voters != target;
        self.moving[g].store(moving, Ordering::Release);
    }

    /// The partition holding a hash slot: partitions are equal contiguous slot ranges.
    pub fn partition_of(&self, slot: u16) -> u32 {
        (slot as usize * self.partitions as usize / SLOT_COUNT) as u32
    }

    pub fn slots(&self, partition: u32) -> Range<u16> {
        slots_of(partition, self.partitions)
    }

    pub fn member(&self, id: NodeId) -> Option<Member> {
        read(&self.members).iter().find(|m| m.id == id).cloned()
    }

    pub fn members(&self) -> Vec<Member> {
        read(&self.members).clone()
    }

    pub fn hosts(&self, group: u32) -> bool {
        self.hosted[group as usize].load(Ordering::Acquire)
    }

    pub(crate) fn set_hosted(&self, group: u32, hosted: bool) {
        self.hosted[group as usize].store(hosted, Ordering::Release);
    }

    /// The voters placement wants for `group`, preferred leader first.
    pub fn target(&self, group: u32) -> Vec<NodeId> {
        read(&self.targets)[group as usize].clone()
    }

    /// The group's committed voters as its leaders reported them (empty until known).
    pub fn voters(&self, group: u32) -> Vec<NodeId> {
        read(&self.voters)[group as usize].0.clone()
    }

    /// `voters`, with the log index of the membership entry they come from.
    pub fn reported(&self, group: u32) -> (Vec<NodeId>, u64) {
        read(&self.voters)[group as usize].clone()
    }

    /// Whether the group's replicas are being moved to their target.
    pub fn moving(&self, group: u32) -> bool {
        self.moving[group as usize].load(Ordering::Acquire)
    }

    pub fn leader(&self, group: u32) -> Option<NodeId> {
        let id = self.leaders[group as usize].load(Ordering::Acquire);
        (id != NO_LEADER).then_some(id)
    }

    /// Whether this node may serve a linearizable read of `partition` at `now` (Unix ms).
    pub fn readable(&self, partition: u32, now: u64) -> bool {
        let p = partition as usize;
        self.leader(partition) == Some(self.me)
            && now < self.leases[p].load(Ordering::Acquire)
            && self.applied[p].load(Ordering::Acquire)
                >= self.readable_from[p].load(Ordering::Acquire)
    }

    /// Records that the partition's core has run its log up to `index`.
    pub fn mark_applied(&self, partition: u32, index: u64) {
        self.applied[partition as usize].store(index, Ordering::Release);
    }

    /// Whether this node leads the group but no majority has acknowledged it for so long
    /// (see `Leadership::writes_until`) that a write could only wait.
    pub fn out_of_touch(&self, group: u32, now: u64) -> bool {
        self.leader(group) == Some(self.me)
            && now >= self.writes_until[group as usize].load(Ordering::Acquire)
    }

    /// Records a group's leader, and what this node may do leading it.
    pub(crate) fn set_leader(&self, group: u32, leadership: Leadership) {
        let g = group as usize;
        self.readable_from[g].store(leadership.readable_from, Ordering::Release);
        self.leases[g].store(leadership.lease_until, Ordering::Release);
        self.writes_until[g].store(leadership.writes_until, Ordering::Release);
        let leader = leadership.leader.unwrap_or(NO_LEADER);
        if self.leaders[g].swap(leader, Ordering::AcqRel) != leader {
            self.leader_changes.send_modify(|n| *n += 1);
        }
    }

    /// Wakes its holder whenever a group's leader changes.
    pub fn leader_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.leader_changes.subscribe()
    }

    /// Records a group's committed voters, as a leader (this node or a peer) reports them,
    /// unless a later membership was reported already (a deposed leader may still report).
    pub(crate) fn set_voters(&self, group: u32, voters: Vec<NodeId>, since: u64) {
        {
            let mut all = write(&self.voters);
            let known = &mut all[group as usize];
            if !known.0.is_empty() && known.1 > since {
                return;
            }
            *known = (voters, since);
        }
        self.note_moving(group);
    }

    /// What peers report of the groups they lead. Leaders of groups this node runs come
    /// from Raft; a stale report costs a client one more redirect.
    pub fn learn(&self, reports: &[Led]) {
        for led in reports {
            if led.group > self.partitions || self.member(led.leader).is_none() {
                continue;
            }
            if !self.hosts(led.group) {
                self.set_leader(led.group, Leadership::elsewhere(Some(led.leader)));
            }
            self.set_voters(led.group, led.voters.clone(), led.since);
        }
    }

    /// Partitions this node leads now.
    pub fn led_here(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.partitions).filter(|&p| self.leader(p) == Some(self.me))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Change;

    #[test]
    fn a_leader_reads_within_its_lease_once_its_core_ran_its_first_entry_and_writes_while_heard() {
        let mut roster = Roster::default();
        roster.apply(Change::Create(
            (1..=3)
                .map(|id| Member {
                    id,
                    client: format!("127.0.0.1:{}", 7000 + id),
                    raft: format!("127.0.0.1:{}", 17000 + id),
                })
                .collect(),
        ));
        let routing = Routing::new(1, &roster, 4, 3);
        let leading = Leadership {
            leader: Some(1),
            lease_until: 1_000,
            readable_from: 10,
            writes_until: 3_000,
        };
        routing.set_leader(2, leading);
        routing.mark_applied(2, 9);
        assert!(!routing.readable(2, 500), "the core has not run entry 10");
        routing.mark_applied(2, 10);
        assert!(routing.readable(2, 500));
        assert!(!routing.readable(2, 1_000), "the lease ran out");
        assert!(!routing.readable(3, 500), "another partition");
        assert!(!routing.out_of_touch(2, 2_999));
        assert!(
            routing.out_of_touch(2, 3_000),
            "no majority heard from for too long"
        );
        routing.set_leader(
            2,
            Leadership {
                leader: Some(3),
                ..leading
            },
        );
        assert!(!routing.readable(2, 500), "another node leads it");
        assert!(
            !routing.out_of_touch(2, 3_000),
            "the leader elsewhere decides"
        );
    }
}
