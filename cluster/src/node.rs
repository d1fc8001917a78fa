//! A node's Raft side: its own threads (a small tokio runtime, the only one in the process),
//! one Raft group per partition it holds, the shared connections to its peers, and the
//! hand-off points for the server's cores — proposals in, leadership and leases out through
//! `Routing`.

use crate::forward::{Forwarder, Job};
use crate::group::{Applier, LogStore, Partition, Proposals, StateMachine};
use crate::placement::NodeId;
use crate::replica::{Batch, Replies};
use crate::roster::{self, Change, Roster, RosterApplier, RosterState, Shape};
use crate::routing::{Leadership, Led, Member, Routing};
use crate::snapshots::SnapshotFiles;
use crate::transport::{GroupNetwork, Transport};
use crate::wal::{Durability, PartitionLog, Record, Wal};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tessera_storage::clock::unix_ms;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long after a majority last acknowledged it a leader serves reads alone (ms): the
/// shortest election timeout less a margin for the time between that acknowledgement being
/// reported and a read checking it (a busy turn of a core, a read run on another core) and
/// for clock drift.
const LEASE_MS: u64 = ELECTION_MS.0 - 250;
/// How long after a majority last acknowledged it a leader still takes writes (ms): twice
/// the longest election timeout, by which time the followers it lost have elected another
/// leader, while a healthy group acknowledges its leader every heartbeat. Past it, a write
/// is refused at once (`Refusal::NoQuorum`) instead of waiting for a majority that may not
/// come back.
const WRITES_WITHOUT_MAJORITY_MS: u64 = 2 * ELECTION_MS.1;
/// How long a proposed write waits to be committed before its client is told the outcome
/// is unknown (`Refusal::Unconfirmed`): longer than an election and a leader's patience
/// without a majority, so a write that can commit does; within common client timeouts.
const PROPOSAL_DEADLINE: Duration = Duration::from_secs(5);
/// Leaders send heartbeats this often (ms).
const HEARTBEAT_MS: u64 = 100;
/// A follower that hears nothing for a random time in this range (ms) stands for election.
const ELECTION_MS: (u64, u64) = (500, 1000);
/// Requests one log entry carries at most.
const MAX_BATCH: usize = 4096;
/// Argument bytes past which a log entry takes no more submissions, so replication frames
/// stay small (a single larger request still goes alone).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Log entries one replication message carries at most.
const MAX_ENTRIES_PER_MESSAGE: u64 = 64;
/// Log entries kept behind a snapshot, for followers only slightly behind.
const LOG_KEPT_AFTER_SNAPSHOT: u64 = 128;

/// How a node joins its cluster.
pub struct Settings {
    pub me: NodeId,
    /// The members the node starts from, until its roster group has the cluster's own.
    pub members: Vec<Member>,
    pub partitions: u32,
    pub replicas: usize,
    /// Forms the cluster's groups and proposes its first roster: set when the cluster is
    /// created, not when a member restarts or joins.
    pub bootstrap: bool,
    /// Address the Raft port binds.
    pub listen: String,
    pub durability: Durability,
    /// Where the logs and snapshots go (required unless durability is `memory`).
    pub dir: Option<PathBuf>,
    /// The core owning each partition: partitions of one core share its write-ahead log.
    pub core_of: Vec<usize>,
    /// What nodes prove to each other on the Raft port (empty: nothing).
    pub secret: String,
}

/// Why proposals were not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This node does not lead the partition; the leader, if known.
    NotLeader(Option<NodeId>),
    /// The outcome is unknown: leadership changed or the group stopped before the commit.
    Unknown,
    /// This node leads the partition but has not heard from a majority of its replicas for
    /// a while: the write was not proposed.
    NoQuorum,
    /// The write was proposed but not committed within `PROPOSAL_DEADLINE`: it may still be.
    Unconfirmed,
}

/// The replies to a submission's requests, in order, or why there are none.
pub type Outcome = Result<Vec<Vec<u8>>, Refusal>;

/// What to do with a submission's outcome.
pub type WhenDone = Box<dyn FnOnce(Outcome) + Send>;

/// Write requests for one partition and what to do with their replies.
pub struct Submission {
    pub batch: Batch,
    pub done: WhenDone,
}

pub struct Node {
    pub routing: Arc<Routing>,
    groups: Arc<Groups>,
    forwarder: Arc<Forwarder>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

/// The groups a node runs and what it needs to start more as partitions move to it.
struct Groups {
    me: NodeId,
    config: Arc<Config>,
    transport: Arc<Transport>,
    routing: Arc<Routing>,
    roster: Arc<RosterState>,
    applier: Arc<dyn Applier>,
    roster_applier: Arc<dyn Applier>,
    /// Each core's write-ahead log (none with durability `memory`).
    wals: HashMap<usize, Arc<Wal>>,
    /// What the logs held for groups not started since.
    recovered: Mutex<HashMap<u32, PartitionLog>>,
    files: Option<Arc<SnapshotFiles>>,
    /// The core owning each partition (the roster group's log is core 0's).
    core_of: Vec<usize>,
    running: Mutex<HashMap<u32, Running>>,
    proposers: RwLock<HashMap<u32, mpsc::UnboundedSender<Submission>>>,
    /// Groups whose membership this node is changing now.
    moves: Mutex<BTreeSet<u32>>,
    /// Whether this node created the cluster (and proposes its first roster).
    creator: bool,
}

/// A group's move from its current membership to its target.
struct MembershipChange {
    group: u32,
    /// Its nodes now, voters and learners.
    known: BTreeSet<NodeId>,
    /// Its voters now.
    serving: BTreeSet<NodeId>,
    voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
}

struct Running {
    group: Raft<Partition>,
    machine: StateMachine,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("no holder panics")
}

impl Node {
    /// Starts the groups of the partitions this node holds, applying through `applier`,
    /// and keeps the groups it runs following the roster from then on.
    pub fn start(settings: Settings, applier: Arc<dyn Applier>) -> std::io::Result<Node> {
        // The Raft side needs a fraction of what the cores do; on a small machine one thread
        // wakes the cores' threads least.
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads((parallelism / 4).max(1))
            .thread_name("tessera-raft")
            .enable_all()
            .build()?;
        // A restarted node starts from the roster it knew last, not the command line's.
        let dir = settings
            .dir
            .clone()
            .filter(|_| settings.durability != Durability::Memory);
        let shape = Shape {
            partitions: settings.partitions,
            replicas: settings.replicas,
        };
        let kept = dir.as_deref().and_then(roster::load);
        if let Some(kept) = kept.as_ref().filter(|k| k.shape != shape) {
            return Err(invalid(format!(
                "the data directory holds a cluster of {} partitions and {} replicas, not {} and {}",
                kept.shape.partitions, kept.shape.replicas, shape.partitions, shape.replicas
            )));
        }
        let kept = kept.map(|k| k.roster);
        let start_up = kept.clone().unwrap_or_else(|| {
            let mut listed = Roster::default();
            listed.apply(Change::Create(settings.members.clone()));
            listed
        });
        let roster = RosterState::new(start_up.clone(), dir.map(|d| (d, shape)));
        let routing = Arc::new(Routing::new(
            settings.me,
            &start_up,
            settings.partitions,
            settings.replicas,
        ));
        let transport = Transport::new(settings.me, routing.clone(), settings.secret.as_bytes());
        let config = Config {
            cluster_name: "tessera".into(),
            heartbeat_interval: HEARTBEAT_MS,
            election_timeout_min: ELECTION_MS.0,
            election_timeout_max: ELECTION_MS.1,
            // Snapshots are taken by size (`StateMachine::wants_snapshot`), not entry count.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: LOG_KEPT_AFTER_SNAPSHOT,
            max_payload_entries: MAX_ENTRIES_PER_MESSAGE,
            ..Config::default()
        };
        let (wals, recovered, files) = open_logs(&settings)?;
        // Groups are created only on a node with nothing on disk: a node that held a
        // partition and let it go must not create it afresh on a restart.
        let fresh = kept.is_none()
            && recovered.is_empty()
            && files
                .as_ref()
                .is_none_or(|f| (0..=settings.partitions).all(|g| !f.has(g)));
        let create = settings.bootstrap && fresh;
        if settings.bootstrap && !fresh {
            tracing::info!("the data directory has a cluster's state: --bootstrap is ignored");
        }
        let mut core_of = settings.core_of.clone();
        core_of.push(0);
        let groups = Arc::new(Groups {
            me: settings.me,
            config: Arc::new(config.validate().map_err(invalid)?),
            transport: transport.clone(),
            routing: routing.clone(),
            roster: roster.clone(),
            applier,
            roster_applier: Arc::new(RosterApplier(roster)),
            wals,
            recovered: Mutex::new(recovered),
            files,
            core_of,
            running: Mutex::default(),
            proposers: RwLock::default(),
            moves: Mutex::default(),
            creator: create,
        });
        runtime.block_on(async {
            let listener = TcpListener::bind(&settings.listen).await?;
            transport.start(listener);
            transport.set_peers(&raft_addresses(&start_up));
            for group in groups.held_at_start() {
                let raft = groups.start_group(group).await?;
                let voters = routing.target(group);
                if create && voters.first() == Some(&settings.me) {
                    let voters: BTreeMap<NodeId, BasicNode> = voters
                        .iter()
                        .filter_map(|id| start_up.members.get(id))
                        .map(|m| (m.id, BasicNode::new(&m.raft)))
                        .collect();
                    match raft.initialize(voters).await {
                        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                        Err(e) => return Err(invalid(e)),
                    }
                }
            }
            tokio::spawn(groups.clone().follow_roster());
            tokio::spawn(groups.clone().announce());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(Node {
            routing,
            groups,
            forwarder: Arc::default(),
            runtime: Some(runtime),
        })
    }

    /// Proposes to a group; refused at once when this node does not run it.
    pub fn submit(&self, group: u32, submission: Submission) {
        self.groups.submit(group, submission);
    }

    /// Proposes a change of the roster (through its group's leader, which must be this node
    /// for it to be accepted).
    pub fn change_roster(&self, change: &Change, done: WhenDone) {
        let submission = Submission {
            batch: change.batch(),
            done,
        };
        self.submit(self.routing.roster_group(), submission);
    }

    /// The roster as this node knows it, and whether it is the cluster's (rather than the
    /// one the node started from).
    pub fn roster(&self) -> (Roster, bool) {
        let state = &self.groups.roster;
        (state.current(), state.settled())
    }
}

/// The members' ids and Raft addresses.
fn raft_addresses(roster: &Roster) -> Vec<(NodeId, String)> {
    roster
        .members
        .values()
        .map(|m| (m.id, m.raft.clone()))
        .collect()
}

/// Each core's write-ahead log, what they held for each partition, and where snapshots are
/// kept (nothing with durability `memory`).
type Logs = (
    HashMap<usize, Arc<Wal>>,
    HashMap<u32, PartitionLog>,
    Option<Arc<SnapshotFiles>>,
);

fn open_logs(settings: &Settings) -> std::io::Result<Logs> {
    let (mut wals, mut recovered) = (HashMap::new(), HashMap::new());
    if settings.durability == Durability::Memory {
        return Ok((wals, recovered, None));
    }
    let dir = settings
        .dir
        .clone()
        .ok_or_else(|| invalid("durability fsync or os needs a data directory (--dir)"))?;
    std::fs::create_dir_all(&dir)?;
    let mut cores = settings.core_of.clone();
    cores.push(0);
    cores.sort_unstable();
    cores.dedup();
    for core in cores {
        let (wal, state) = Wal::open(&dir, core, settings.durability)?;
        wals.insert(core, Arc::new(wal));
        recovered.extend(state);
    }
    let files = SnapshotFiles::new(dir, settings.durability);
    Ok((wals, recovered, Some(Arc::new(files))))
}

/// How far (in entries) a new replica may trail its leader's log when it becomes a voter.
const CAUGHT_UP_WITHIN: u64 = 64;

/// Membership changes of partitions one node runs at once (the roster's group has its own).
const MOVES_AT_ONCE: usize = 4;
/// How long a membership change may take before it is given up (and tried again).
const MOVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a creating node waits for its first roster to apply before proposing it again.
const RETRY_CREATION: Duration = Duration::from_secs(1);
/// How often a node checks its groups against the roster besides when the roster changes.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

impl Groups {
    fn roster_group(&self) -> u32 {
        self.routing.roster_group()
    }

    /// The groups to run at start: the roster's, those placement gives this node, and those
    /// its disk holds (until their leaders report they moved away).
    fn held_at_start(&self) -> BTreeSet<u32> {
        let mut held: BTreeSet<u32> = (0..=self.routing.partitions)
            .filter(|&g| g == self.roster_group() || self.routing.target(g).contains(&self.me))
            .collect();
        held.extend(lock(&self.recovered).keys().copied());
        if let Some(files) = &self.files {
            held.extend((0..self.routing.partitions).filter(|&p| files.has(p)));
        }
        held
    }

    fn running(&self, group: u32) -> Option<Raft<Partition>> {
        lock(&self.running).get(&group).map(|r| r.group.clone())
    }

    /// Starts a group on this node: from its snapshot and log when it has them, empty
    /// otherwise (its leader then sends it everything).
    async fn start_group(&self, group: u32) -> std::io::Result<Raft<Partition>> {
        let applier = if group == self.roster_group() {
            self.roster_applier.clone()
        } else {
            self.applier.clone()
        };
        let routing = self.routing.clone();
        let ran_up_to = Arc::new(move |index| routing.mark_applied(group, index));
        let machine = StateMachine::new(group, applier, ran_up_to, self.files.clone());
        machine.recover().await?;
        let log = match self.wals.get(&self.core_of[group as usize]) {
            Some(wal) => {
                let recovered = lock(&self.recovered).remove(&group).unwrap_or_default();
                LogStore::durable(group, wal.clone(), recovered)
            }
            None => LogStore::default(),
        };
        let network = GroupNetwork {
            transport: self.transport.clone(),
            partition: group,
        };
        let raft = Raft::new(self.me, self.config.clone(), network, log, machine.clone())
            .await
            .map_err(invalid)?;
        self.transport.host(group, raft.clone());
        self.routing.set_hosted(group, true);
        tokio::spawn(watch_leadership(group, raft.clone(), self.routing.clone()));
        tokio::spawn(snapshot_by_size(raft.clone(), machine.clone()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(propose(raft.clone(), machine.proposals(), rx));
        self.proposers
            .write()
            .expect("no holder panics")
            .insert(group, tx);
        let running = Running {
            group: raft.clone(),
            machine,
        };
        lock(&self.running).insert(group, running);
        Ok(raft)
    }

    /// Stops a group whose replicas moved to other nodes and drops its data here.
    async fn stop_group(&self, group: u32) {
        let Some(running) = lock(&self.running).remove(&group) else {
            return;
        };
        self.proposers
            .write()
            .expect("no holder panics")
            .remove(&group);
        self.transport.unhost(group);
        self.routing.set_hosted(group, false);
        let _ = running.group.shutdown().await;
        // The snapshot goes first: one left behind a forgotten log would be loaded again.
        if let Err(e) = running.machine.forget().await {
            tracing::warn!(
                group,
                "could not delete the snapshot of a moved partition: {e}"
            );
            return;
        }
        if let Some(wal) = self.wals.get(&self.core_of[group as usize]) {
            wal.write(Record::Forget(group), None);
        }
        tracing::info!(group, "the partition moved away from this node");
    }

    /// Keeps the groups this node runs, and the membership of those it leads, following the
    /// roster: on every change of it and every `FOLLOW_EVERY`.
    async fn follow_roster(self: Arc<Self>) {
        let mut changes = self.roster.subscribe();
        let mut ticks = tokio::time::interval(FOLLOW_EVERY);
        let mut proposed_creation: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                changed = changes.changed() => if changed.is_err() { return },
            }
            let roster = self.roster.current();
            self.routing.set_roster(&roster);
            self.transport.set_peers(&raft_addresses(&roster));
            let leads_roster = self.routing.leader(self.roster_group()) == Some(self.me);
            let creating = proposed_creation.is_some_and(|at| at.elapsed() < RETRY_CREATION);
            if self.creator && leads_roster && !self.roster.settled() && !creating {
                // The cluster's first roster is the one it was created with (proposed again
                // should the first proposal be lost; a second is ignored).
                proposed_creation = Some(Instant::now());
                let change = Change::Create(roster.members.values().cloned().collect());
                self.submit_quietly(change);
            }
            // Until the roster is the group's, it may be stale: nothing is moved or dropped
            // on its word (starting a group that turns out unneeded costs nothing).
            let settled = self.roster.settled();
            for partition in 0..self.routing.partitions {
                let wanted = self.routing.target(partition).contains(&self.me);
                let running = self.running(partition).is_some();
                if wanted && !running {
                    if let Err(e) = self.start_group(partition).await {
                        tracing::error!(partition, "cannot start a partition's group: {e}");
                    }
                } else if !wanted && running && settled && self.released(partition) {
                    self.stop_group(partition).await;
                }
            }
            if settled {
                // The roster's group first: a joining node learns the roster through it.
                let groups = std::iter::once(self.roster_group()).chain(0..self.routing.partitions);
                for group in groups {
                    if self.routing.leader(group) == Some(self.me) {
                        self.move_if_needed(group);
                    }
                }
            }
            if leads_roster && settled {
                self.forget_drained(&roster);
            }
        }
    }

    /// Whether a leader reports committed voters without this node, by a membership at
    /// least as recent as the latest this node has seen: the change that removed it is
    /// committed, and no later one (that might include it again) is under way here.
    fn released(&self, partition: u32) -> bool {
        let (voters, since) = self.routing.reported(partition);
        let Some(group) = self.running(partition) else {
            return false;
        };
        let latest = group
            .metrics()
            .borrow()
            .membership_config
            .log_id()
            .map_or(0, |l| l.index);
        !voters.is_empty() && !voters.contains(&self.me) && since >= latest
    }

    /// Proposes a roster change whose outcome nobody waits for (it is retried if lost).
    fn submit_quietly(&self, change: Change) {
        let submission = Submission {
            batch: change.batch(),
            done: Box::new(|_| {}),
        };
        self.submit(self.roster_group(), submission);
    }

    /// Proposes to a group; refused at once when this node does not run it, or leads it
    /// without having heard from a majority for a while.
    fn submit(&self, group: u32, submission: Submission) {
        if self.routing.out_of_touch(group, unix_ms()) {
            return (submission.done)(Err(Refusal::NoQuorum));
        }
        let proposer = self.proposers.read().expect("no holder panics");
        let refused = match proposer.get(&group) {
            Some(tx) => match tx.send(submission) {
                Ok(()) => return,
                Err(mpsc::error::SendError(s)) => s,
            },
            None => submission,
        };
        drop(proposer);
        (refused.done)(Err(Refusal::NotLeader(self.routing.leader(group))));
    }

    /// Proposes to forget leaving members no group has as a voter any more.
    fn forget_drained(&self, roster: &Roster) {
        for &leaving in &roster.leaving {
            let drained = (0..=self.routing.partitions).all(|p| {
                let voters = self.routing.voters(p);
                !voters.is_empty() && !voters.contains(&leaving)
            });
            if drained {
                self.submit_quietly(Change::Forget(leaving));
            }
        }
    }

    /// Starts moving a group this node leads to its target membership, unless it is there
    /// already or this node moves as many groups as it may.
    fn move_if_needed(self: &Arc<Self>, group: u32) {
        let Some(raft) = self.running(group) else {
            return;
        };
        let voters: BTreeSet<NodeId> = self.routing.target(group).into_iter().collect();
        if voters.is_empty() {
            return;
        }
        let learners: BTreeSet<NodeId> = if group == self.roster_group() {
            // Every member follows the roster.
            let members = self.routing.members().into_iter().map(|m| m.id);
            members.filter(|id| !voters.contains(id)).collect()
        } else {
            BTreeSet::new()
        };
        let membership = raft.metrics().borrow().membership_config.clone();
        let current = membership.membership();
        let settled = current.get_joint_config().len() == 1
            && current.voter_ids().collect::<BTreeSet<_>>() == voters
            && current.learner_ids().collect::<BTreeSet<_>>() == learners;
        if settled {
            return;
        }
        {
            let mut moves = lock(&self.moves);
            let roster_group = self.roster_group();
            let busy = moves.iter().filter(|&&g| g != roster_group).count();
            if (group != roster_group && busy >= MOVES_AT_ONCE) || !moves.insert(group) {
                return;
            }
        }
        let change = MembershipChange {
            group,
            known: current.nodes().map(|(id, _)| *id).collect(),
            serving: current.voter_ids().collect(),
            voters,
            learners,
        };
        let groups = self.clone();
        tokio::spawn(async move {
            let moved = tokio::time::timeout(MOVE_TIMEOUT, groups.change_membership(&raft, change));
            match moved.await {
                Ok(Ok(())) => tracing::info!(group, "the group reached its target replicas"),
                Ok(Err(e)) => tracing::info!(group, "moving the group failed for now: {e}"),
                Err(_) => tracing::warn!(group, "moving the group timed out; it will retry"),
            }
            lock(&groups.moves).remove(&group);
        });
    }

    /// Adds the missing nodes as learners (waiting for the future voters to catch up), then
    /// makes the voters `voters` and drops learners not in `learners`.
    async fn change_membership(
        &self,
        raft: &Raft<Partition>,
        change: MembershipChange,
    ) -> Result<(), String> {
        let MembershipChange {
            group,
            known,
            serving,
            voters,
            learners,
        } = change;
        for &id in voters.union(&learners).filter(|id| !known.contains(id)) {
            let member = self
                .routing
                .member(id)
                .ok_or_else(|| format!("node {id} is not a member"))?;
            raft.add_learner(id, BasicNode::new(&member.raft), false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(group, node = id, "added a learner");
        }
        for &id in voters.difference(&serving) {
            caught_up(raft, id).await?;
        }
        // Removed voters of the roster's group stay on as learners while they are members,
        // but not this node: a leader that is only a learner would lead unseen (followers
        // take no leader that is not a voter), so it leaves and is added back as a learner.
        let keep_as_learners = group == self.roster_group() && voters.contains(&self.me);
        raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), keep_as_learners)
            .await
            .map_err(|e| e.to_string())?;
        let membership = raft.metrics().borrow().membership_config.clone();
        let stray: BTreeSet<NodeId> = membership
            .membership()
            .learner_ids()
            .filter(|id| !learners.contains(id))
            .collect();
        if !stray.is_empty() {
            raft.change_membership(ChangeMembers::RemoveNodes(stray), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Tells the peers, every `ANNOUNCE_EVERY`, who leads the groups this node leads and
    /// their committed voters, so nodes that do not hold a partition know its leader (for
    /// redirects and CLUSTER SLOTS) and nodes it moved away from know they may drop it.
    async fn announce(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(ANNOUNCE_EVERY);
        loop {
            ticks.tick().await;
            let led: Vec<Led> = lock(&self.running)
                .iter()
                .filter(|(&group, _)| self.routing.leader(group) == Some(self.me))
                .map(|(&group, running)| {
                    let membership = running.machine.membership();
                    Led {
                        group,
                        leader: self.me,
                        voters: membership.voter_ids().collect(),
                        since: membership.log_id().map_or(0, |l| l.index),
                    }
                })
                .collect();
            for led in &led {
                self.routing
                    .set_voters(led.group, led.voters.clone(), led.since);
            }
            self.transport.announce(led);
        }
    }
}

/// How long a relayed request waits for its partition to have a leader (an election, or a
/// leader that left its partition) before it is answered `-CLUSTERDOWN`: an election takes
/// 1.5–2 s, and common clients time out after 2–3 s.
const LEADER_WAIT: Duration = Duration::from_secs(2);

impl Node {
    /// The password relayed requests give other members (they share the cluster's
    /// requirepass); connections opened from now on use it.
    pub fn set_client_password(&self, password: &str) {
        self.forwarder.set_password(password);
    }

    /// Relays a client request to the node at `address` (see `forward`).
    pub fn forward(&self, address: &str, resp3: bool, job: Job) {
        if let Some(runtime) = &self.runtime {
            self.forwarder.send(runtime.handle(), address, resp3, job);
        }
    }

    /// Relays a client request to `partition`'s leader once it has one: clients that know
    /// nothing of clusters see a short wait, not an error, while a partition elects.
    pub fn forward_when_led(&self, partition: u32, resp3: bool, job: Job) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let (routing, forwarder) = (self.routing.clone(), self.forwarder.clone());
        let handle = runtime.handle().clone();
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + LEADER_WAIT;
            let mut changes = routing.leader_changes();
            loop {
                let leader = routing.leader(partition).and_then(|id| routing.member(id));
                if let Some(leader) = leader {
                    forwarder.send(&handle, &leader.client, resp3, job);
                    return;
                }
                let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
                if !matches!(changed, Ok(Ok(()))) {
                    let refusal =
                        b"-CLUSTERDOWN The cluster is down: the partition has no leader\r\n";
                    (job.done)(Ok(refusal.to_vec()));
                    return;
                }
            }
        });
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Keeps the partition's leader and this node's read lease current in `routing`. A leader
/// may serve reads alone until `LEASE_MS` after the last moment a quorum acknowledged it, and
/// only once its core has run an entry of its own term (so everything its predecessors
/// committed has run): followers refuse to vote for anyone until `election_timeout_max` after
/// their last heartbeat, so no other leader can exist before then.
async fn watch_leadership(partition: u32, group: Raft<Partition>, routing: Arc<Routing>) {
    let mut metrics = group.metrics();
    // The first entry of the current term seen applied, and that term.
    let mut term_start = (0, u64::MAX);
    // When this node became leader (Unix ms; 0 while it is not): a majority voted for it then.
    let mut elected_at = 0;
    loop {
        let leadership = {
            let m = metrics.borrow_and_update();
            let caught_up = m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term);
            if let Some(applied) = m.last_applied.filter(|_| caught_up) {
                if term_start.0 != m.current_term {
                    term_start = (m.current_term, applied.index);
                }
            }
            let leading = m.state == ServerState::Leader;
            let now = unix_ms();
            elected_at = match (leading, elected_at) {
                (false, _) => 0,
                (true, 0) => now,
                (true, at) => at,
            };
            let alone = m.membership_config.membership().voter_ids().count() == 1;
            // When a majority last acknowledged this node as leader, if it ever did.
            let acknowledged = match m.millis_since_quorum_ack {
                _ if alone => Some(u64::MAX),
                Some(ago) => Some(now.saturating_sub(ago)),
                None => None,
            };
            let lease_until = match acknowledged {
                Some(at) if leading && caught_up => at.saturating_add(LEASE_MS),
                _ => 0,
            };
            let writes_until = match acknowledged {
                _ if !leading => 0,
                Some(at) => at.saturating_add(WRITES_WITHOUT_MAJORITY_MS),
                None => elected_at + WRITES_WITHOUT_MAJORITY_MS,
            };
            Leadership {
                leader: m.current_leader,
                lease_until,
                readable_from: term_start.1,
                writes_until,
            }
        };
        routing.set_leader(partition, leadership);
        if metrics.changed().await.is_err() {
            routing.set_leader(partition, Leadership::elsewhere(None));
            return;
        }
    }
}

/// How often a node tells its peers about the groups it leads.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(200);

/// Takes a snapshot whenever the state machine says its log has grown enough. Applying
/// entries changes the metrics, so this looks after every batch applied.
async fn snapshot_by_size(group: Raft<Partition>, machine: StateMachine) {
    let mut metrics = group.metrics();
    while metrics.changed().await.is_ok() {
        if machine.wants_snapshot() && group.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

/// Turns the submissions waiting for a partition into one log entry at a time, keeping
/// several entries in flight. Their replies come from the applier when the entry is applied
/// here; Raft's own answer matters only when it is a refusal.
async fn propose(
    group: Raft<Partition>,
    proposals: Arc<Proposals>,
    mut submissions: mpsc::UnboundedReceiver<Submission>,
) {
    while let Some(first) = submissions.recv().await {
        let mut waiting = Vec::new();
        let mut batch = first.batch;
        waiting.push((batch.replies(), first.done));
        while batch.len() < MAX_BATCH && batch.bytes() < MAX_BATCH_BYTES {
            let Ok(more) = submissions.try_recv() else {
                break;
            };
            batch.append(&more.batch);
            waiting.push((more.batch.replies(), more.done));
        }
        let tag = proposals.wait(
            &mut batch,
            Box::new(move |outcome| answer(waiting, outcome)),
        );
        let refuse = {
            let proposals = proposals.clone();
            move |refusal| {
                if let Some(answer) = proposals.take(tag) {
                    answer(Err(refusal));
                }
            }
        };
        let Ok(outcome) = group.client_write_ff(Arc::new(batch)).await else {
            refuse(Refusal::Unknown);
            continue;
        };
        tokio::spawn(async move {
            match tokio::time::timeout(PROPOSAL_DEADLINE, outcome).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(ClientWriteError::ForwardToLeader(to)))) => {
                    refuse(Refusal::NotLeader(to.leader_id))
                }
                Ok(_) => refuse(Refusal::Unknown),
                Err(_) => refuse(Refusal::Unconfirmed),
            }
        });
    }
}

/// Hands each submission of an entry its share of the replies, or the reason there are none.
fn answer(waiting: Vec<(usize, WhenDone)>, outcome: Result<Replies, Refusal>) {
    match outcome {
        Ok(replies) => {
            let mut at = 0;
            for (n, done) in waiting {
                done(Ok(replies.split_from(at, n)));
                at += n;
            }
        }
        Err(refusal) => waiting.into_iter().for_each(|(_, done)| done(Err(refusal))),
    }
}

/// Waits until node `id` holds the leader's log up to where it was when asked (within
/// `CAUGHT_UP_WITHIN` entries), as the leader last heard from it.
async fn caught_up(raft: &Raft<Partition>, id: NodeId) -> Result<(), String> {
    let target = {
        let metrics = raft.metrics();
        let last = metrics.borrow().last_log_index.unwrap_or(0);
        last.saturating_sub(CAUGHT_UP_WITHIN)
    };
    let mut metrics = raft.metrics();
    loop {
        let matched = {
            let m = metrics.borrow_and_update();
            if m.id == id {
                return Ok(());
            }
            let Some(replication) = &m.replication else {
                return Err("this node no longer leads the group".into());
            };
            replication.get(&id).cloned().flatten().map(|l| l.index)
        };
        if matched.is_some_and(|index| index >= target) {
            return Ok(());
        }
        if metrics.changed().await.is_err() {
            return Err("the group stopped".into());
        }
    }
}
