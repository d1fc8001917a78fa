//! The cluster's member list, replicated through a Raft group of its own (the roster group,
//! numbered right after the last partition) so every node agrees on who is a member. Each
//! partition's target replica set follows from the roster by placement; its leader moves it
//! there by membership changes (see `node`).
//!
//! A member that is removed first turns `leaving`: it no longer counts for placement, so its
//! partitions move away, but it stays in the roster (and reachable) until it holds none, when
//! the roster group's leader proposes to forget it.

use crate::group::{Applier, Committed, Done, Encode, Ran};
use crate::placement::{self, NodeId};
use crate::replica::{Batch, Header, Replies};
use crate::routing::Member;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The roster group of a cluster with `partitions` partitions.
pub fn roster_group(partitions: u32) -> u32 {
    partitions
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub members: BTreeMap<NodeId, Member>,
    pub leaving: BTreeSet<NodeId>,
}

/// A change to the roster, as its group's log carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The members a cluster was created with: proposed once, by a creating node, and ignored
    /// when the roster already has members.
    Create(Vec<Member>),
    Add(Member),
    /// The member turns leaving.
    Remove(NodeId),
    /// A leaving member that holds nothing any more leaves the roster.
    Forget(NodeId),
}

impl Change {
    /// The change as a log entry.
    pub fn batch(&self) -> Batch {
        let bytes = bincode::serialize(self).expect("roster changes serialize");
        Batch::of(Header::new(0, 0), &[&bytes])
    }
}

impl Roster {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Create(members) if self.members.is_empty() => {
                self.members = members.into_iter().map(|m| (m.id, m)).collect();
            }
            Change::Create(_) => {}
            Change::Add(member) => {
                self.leaving.remove(&member.id);
                self.members.insert(member.id, member);
            }
            // The last active member stays: someone must hold the partitions.
            Change::Remove(id) => {
                if self.members.contains_key(&id) && self.active() != BTreeSet::from([id]) {
                    self.leaving.insert(id);
                }
            }
            Change::Forget(id) => {
                if self.leaving.remove(&id) {
                    self.members.remove(&id);
                }
            }
        }
    }

    /// Members that hold replicas: all but the leaving.
    pub fn active(&self) -> BTreeSet<NodeId> {
        self.members
            .keys()
            .filter(|id| !self.leaving.contains(id))
            .copied()
            .collect()
    }

    /// The voters `group` should have, preferred leader first.
    pub fn target(&self, group: u32, replicas: usize) -> Vec<NodeId> {
        placement::replicas_of(group, &self.active(), replicas)
    }

    /// The roster as `CLUSTER ROSTER` lists members: `member <id> <client> <raft> <state>`.
    pub fn describe_members(&self) -> String {
        self.members
            .values()
            .map(|m| {
                let state = if self.leaving.contains(&m.id) {
                    "leaving"
                } else {
                    "active"
                };
                format!("member {} {} {} {state}\n", m.id, m.client, m.raft)
            })
            .collect()
    }
}

/// This node's copy of the roster, as its group applies changes; `changes` wakes whoever
/// acts on them.
pub struct RosterState {
    /// The roster, and whether it came from the group (rather than from start-up).
    roster: Mutex<(Roster, bool)>,
    changes: watch::Sender<u64>,
    /// Where the node keeps a copy, to start from after a restart (a member list given on
    /// the command line goes stale as members come and go), and the cluster's shape.
    keep: Option<(PathBuf, Shape)>,
}

/// What a cluster fixes when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub partitions: u32,
    pub replicas: usize,
}

/// The copy of its roster a node keeps in its data directory.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub roster: Roster,
    pub shape: Shape,
}

/// The file in a node's data directory holding its copy of the roster.
fn kept_file(dir: &Path) -> PathBuf {
    dir.join("roster.bin")
}

/// The copy of the roster a node kept in `dir`, if any.
pub fn load(dir: &Path) -> Option<Kept> {
    let bytes = std::fs::read(kept_file(dir)).ok()?;
    bincode::deserialize(&bytes).ok()
}

fn save(dir: &Path, kept: &Kept) -> std::io::Result<()> {
    let bytes = bincode::serialize(kept).map_err(std::io::Error::other)?;
    let file = kept_file(dir);
    let temporary = file.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, file)
}

impl RosterState {
    /// Starts from `initial`: the members a node was started with, knew before a restart, or
    /// was told of when joining, until its roster group has applied the cluster's own.
    /// `keep`: the data directory to keep a copy in, and the cluster's shape.
    pub fn new(initial: Roster, keep: Option<(PathBuf, Shape)>) -> Arc<RosterState> {
        Arc::new(RosterState {
            roster: Mutex::new((initial, false)),
            changes: watch::Sender::new(0),
            keep,
        })
    }

    pub fn current(&self) -> Roster {
        self.roster.lock().expect("no holder panics").0.clone()
    }

    /// Whether the roster is the group's, not just the one the node started from.
    pub fn settled(&self) -> bool {
        self.roster.lock().expect("no holder panics").1
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Applies the group's changes; the first replaces the start-up roster, since the
    /// group's log starts from nothing (or from a snapshot, which replaces it whole).
    fn update(&self, update: impl FnOnce(&mut Roster)) {
        let mut roster = self.roster.lock().expect("no holder panics");
        if !roster.1 {
            *roster = (Roster::default(), true);
        }
        update(&mut roster.0);
        if let Some((dir, shape)) = &self.keep {
            let kept = Kept {
                roster: roster.0.clone(),
                shape: *shape,
            };
            if let Err(e) = save(dir, &kept) {
                tracing::warn!(dir = %dir.display(), "cannot keep a copy of the roster: {e}");
            }
        }
        drop(roster);
        self.changes.send_modify(|n| *n += 1);
    }
}

/// Applies the roster group's log to `RosterState`.
pub struct RosterApplier(pub Arc<RosterState>);

impl Applier for RosterApplier {
    fn apply(&self, _group: u32, batches: Vec<Committed>, ran: Ran) {
        let changes: Vec<Change> = batches
            .iter()
            .flat_map(|c| c.batch.arguments())
            .filter_map(|bytes| bincode::deserialize(bytes).ok())
            .collect();
        // Blank and membership entries carry no change, and must not make an empty roster
        // look known.
        if !batches.is_empty() {
            self.0
                .update(|roster| changes.into_iter().for_each(|c| roster.apply(c)));
        }
        // A change's reply says only that it was applied.
        for answer in batches.into_iter().filter_map(|c| c.answer) {
            answer(Ok(Replies::default()));
        }
        ran();
    }

    fn snapshot(&self, _group: u32, done: Done<Encode>) {
        let roster = self.0.current();
        done.send(Box::new(move || {
            bincode::serialize(&roster).expect("rosters serialize")
        }));
    }

    fn restore(&self, _group: u32, data: Vec<u8>, done: Done<Result<(), String>>) {
        match bincode::deserialize::<Roster>(&data) {
            Ok(roster) => {
                self.0.update(|r| *r = roster);
                done.send(Ok(()));
            }
            Err(e) => done.send(Err(format!("a roster snapshot that does not parse: {e}"))),
        }
    }

    fn forget(&self, _group: u32, done: Done<()>) {
        done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn member(id: NodeId) -> Member {
        Member {
            id,
            client: format!("127.0.0.1:{}", 7000 + id),
            raft: format!("127.0.0.1:{}", 17000 + id),
        }
    }

    #[test]
    fn a_removed_member_leaves_placement_at_once_and_the_roster_once_forgotten() {
        let mut roster = Roster::default();
        roster.apply(Change::Create((1..=3).map(member).collect()));
        roster.apply(Change::Create(vec![member(9)]));
        assert_eq!(roster.active(), BTreeSet::from([1, 2, 3]));
        roster.apply(Change::Add(member(4)));
        assert_eq!(roster.target(0, 3).len(), 3);
        roster.apply(Change::Remove(2));
        assert_eq!(roster.active(), BTreeSet::from([1, 3, 4]));
        assert!(
            roster.members.contains_key(&2),
            "still reachable while leaving"
        );
        assert!((0..64).all(|p| !roster.target(p, 3).contains(&2)));
        roster.apply(Change::Forget(3));
        assert!(
            roster.members.contains_key(&3),
            "only leaving members are forgotten"
        );
        roster.apply(Change::Forget(2));
        assert!(!roster.members.contains_key(&2));
        roster.apply(Change::Remove(1));
        roster.apply(Change::Remove(4));
        roster.apply(Change::Remove(3));
        assert_eq!(
            roster.active(),
            BTreeSet::from([3]),
            "the last member stays"
        );
        assert!(roster
            .describe_members()
            .contains("member 4 127.0.0.1:7004"));
    }

    #[test]
    fn the_applier_replays_changes_over_the_start_up_roster_and_restores_snapshots() {
        let mut start_up = Roster::default();
        start_up.apply(Change::Create(vec![member(1), member(7)]));
        let dir = std::env::temp_dir().join(format!("tessera-roster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shape = Shape {
            partitions: 64,
            replicas: 3,
        };
        let state = RosterState::new(start_up, Some((dir.clone(), shape)));
        assert!(!state.settled());
        let applier = RosterApplier(state.clone());
        let ran = Arc::new(AtomicUsize::new(0));
        let count_ran = |ran: &Arc<AtomicUsize>| {
            let ran = ran.clone();
            Box::new(move || _ = ran.fetch_add(1, Ordering::Relaxed))
        };
        applier.apply(64, Vec::new(), count_ran(&ran));
        assert!(!state.settled(), "a blank entry says nothing of the roster");
        let answered = Arc::new(AtomicUsize::new(0));
        let batches = [Change::Create(vec![member(1)]), Change::Add(member(2))]
            .into_iter()
            .map(|change| {
                let answered = answered.clone();
                Committed {
                    batch: Arc::new(change.batch()),
                    answer: Some(Box::new(move |outcome| {
                        assert!(outcome.is_ok());
                        answered.fetch_add(1, Ordering::Relaxed);
                    })),
                }
            })
            .collect();
        applier.apply(64, batches, count_ran(&ran));
        assert_eq!(state.current().active(), BTreeSet::from([1, 2]));
        assert!(state.settled());
        assert_eq!(answered.load(Ordering::Relaxed), 2);
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        let kept = load(&dir).expect("kept for restarts");
        assert_eq!((kept.roster, kept.shape), (state.current(), shape));
        let _ = std::fs::remove_dir_all(&dir);
        let (done, mut encoded) = crate::group::done_pair();
        applier.snapshot(64, done);
        let bytes = encoded.try_recv().expect("answered at once")();
        let other = RosterState::new(Roster::default(), None);
        let (done, mut restored) = crate::group::done_pair();
        RosterApplier(other.clone()).restore(64, bytes, done);
        assert_eq!(restored.try_recv(), Ok(Ok(())));
        assert_eq!(other.current(), state.current());
    }
}
