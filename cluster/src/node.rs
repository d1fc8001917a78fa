//! A node's Raft side: its own threads (a small tokio runtime, the only one in the process),
//! one Raft group per partition it holds, the shared connections to its peers, and the
//! hand-off points for the server's cores — proposals in, leadership and leases out through
//! `Routing`.

use crate::forward::{Forwarder, Job};
use crate::group::{Applier, LogStore, Partition, StateMachine};
use crate::placement::NodeId;
use crate::replica::Batch;
use crate::routing::{Member, Routing};
use crate::snapshots::SnapshotFiles;
use crate::transport::{GroupNetwork, Transport};
use crate::wal::{Durability, PartitionLog, Wal};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tessera_storage::clock::unix_ms;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long after a majority last acknowledged it a leader serves reads alone (ms): the
/// shortest election timeout less a margin for the time between that acknowledgement being
/// reported and a read checking it (a busy turn of a core, a read run on another core) and
/// for clock drift.
const LEASE_MS: u64 = ELECTION_MS.0 - 250;
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
    pub members: Vec<Member>,
    pub partitions: u32,
    pub replicas: usize,
    /// Forms the cluster's groups: set when the cluster is created, not when a member
    /// restarts.
    pub bootstrap: bool,
    /// Address the Raft port binds.
    pub listen: String,
    pub durability: Durability,
    /// Where the logs and snapshots go (required unless durability is `memory`).
    pub dir: Option<PathBuf>,
    /// The core owning each partition: partitions of one core share its write-ahead log.
    pub core_of: Vec<usize>,
}

/// Why proposals were not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This node does not lead the partition; the leader, if known.
    NotLeader(Option<NodeId>),
    /// The outcome is unknown: leadership changed or the group stopped before the commit.
    Unknown,
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
    proposers: Vec<Option<mpsc::UnboundedSender<Submission>>>,
    forwarder: Arc<Forwarder>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

impl Node {
    /// Starts the groups of the partitions this node holds, applying through `applier`.
    pub fn start(settings: Settings, applier: Arc<dyn Applier>) -> std::io::Result<Node> {
        // The Raft side needs a fraction of what the cores do; on a small machine one thread
        // wakes the cores' threads least.
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads((parallelism / 4).max(1))
            .thread_name("tessera-raft")
            .enable_all()
            .build()?;
        let routing = Arc::new(Routing::new(
            settings.me,
            settings.members.clone(),
            settings.partitions,
            settings.replicas,
        ));
        let peers: Vec<(NodeId, String)> = settings
            .members
            .iter()
            .map(|m| (m.id, m.raft.clone()))
            .collect();
        let transport = Transport::new(settings.me, &peers, routing.clone());
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
        let config = Arc::new(config.validate().map_err(invalid)?);
        let (mut logs, files) = open_logs(&settings, &routing)?;
        let proposers = runtime.block_on(async {
            let listener = TcpListener::bind(&settings.listen).await?;
            let mut proposers = Vec::new();
            for partition in 0..settings.partitions {
                if !routing.hosts(partition) {
                    proposers.push(None);
                    continue;
                }
                let network = GroupNetwork {
                    transport: transport.clone(),
                    partition,
                };
                let machine = StateMachine::new(partition, applier.clone(), files.clone());
                machine.recover().await?;
                let log = match logs.remove(&partition) {
                    Some((wal, recovered)) => LogStore::durable(partition, wal, recovered),
                    None => LogStore::default(),
                };
                let group = Raft::new(settings.me, config.clone(), network, log, machine.clone())
                    .await
                    .map_err(invalid)?;
                transport.host(partition, group.clone());
                let replicas = &routing.replicas[partition as usize];
                if settings.bootstrap && replicas.first() == Some(&settings.me) {
                    let voters: BTreeMap<NodeId, BasicNode> = replicas
                        .iter()
                        .filter_map(|id| routing.member(*id))
                        .map(|m| (m.id, BasicNode::new(&m.raft)))
                        .collect();
                    match group.initialize(voters).await {
                        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                        Err(e) => return Err(invalid(e)),
                    }
                }
                tokio::spawn(watch_leadership(partition, group.clone(), routing.clone()));
                tokio::spawn(snapshot_by_size(group.clone(), machine));
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(propose(group, rx));
                proposers.push(Some(tx));
            }
            transport.start(listener);
            tokio::spawn(announce_leaders(transport.clone(), routing.clone()));
            Ok::<_, std::io::Error>(proposers)
        })?;
        Ok(Node {
            routing,
            proposers,
            forwarder: Arc::default(),
            runtime: Some(runtime),
        })
    }

    /// Proposes to `partition`'s group; refused at once when this node does not hold it.
    pub fn submit(&self, partition: u32, submission: Submission) {
        let proposer = self
            .proposers
            .get(partition as usize)
            .and_then(Option::as_ref);
        let refused = match proposer {
            Some(tx) => match tx.send(submission) {
                Ok(()) => return,
                Err(mpsc::error::SendError(s)) => s,
            },
            None => submission,
        };
        (refused.done)(Err(Refusal::NotLeader(self.routing.leader(partition))));
    }
}

/// What each partition's log starts from: its core's write-ahead log and the state replayed
/// from it (none with durability `memory`), and where snapshots are kept.
type Logs = (
    HashMap<u32, (Arc<Wal>, PartitionLog)>,
    Option<Arc<SnapshotFiles>>,
);

fn open_logs(settings: &Settings, routing: &Routing) -> std::io::Result<Logs> {
    let mut logs = HashMap::new();
    if settings.durability == Durability::Memory {
        return Ok((logs, None));
    }
    let dir = settings
        .dir
        .clone()
        .ok_or_else(|| invalid("durability fsync or os needs a data directory (--dir)"))?;
    std::fs::create_dir_all(&dir)?;
    let mut cores: Vec<usize> = (0..settings.partitions)
        .filter(|&p| routing.hosts(p))
        .map(|p| settings.core_of[p as usize])
        .collect();
    cores.sort_unstable();
    cores.dedup();
    for core in cores {
        let (wal, mut recovered) = Wal::open(&dir, core, settings.durability)?;
        let wal = Arc::new(wal);
        for partition in (0..settings.partitions).filter(|&p| settings.core_of[p as usize] == core)
        {
            let state = recovered.remove(&partition).unwrap_or_default();
            logs.insert(partition, (wal.clone(), state));
        }
    }
    let files = SnapshotFiles::new(dir, settings.durability);
    Ok((logs, Some(Arc::new(files))))
}

impl Node {
    /// Relays a client request to the node at `address` (see `forward`).
    pub fn forward(&self, address: &str, resp3: bool, job: Job) {
        if let Some(runtime) = &self.runtime {
            self.forwarder.send(runtime.handle(), address, resp3, job);
        }
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
/// may serve reads alone until `LEASE_MS` after the last moment a quorum acknowledged it, and only once it has applied an entry of its own term (so everything its
/// predecessors committed is applied): followers refuse to vote for anyone until
/// `election_timeout_max` after their last heartbeat, so no other leader can exist before
/// then.
async fn watch_leadership(partition: u32, group: Raft<Partition>, routing: Arc<Routing>) {
    let mut metrics = group.metrics();
    loop {
        let (leader, lease_until) = {
            let m = metrics.borrow_and_update();
            let caught_up = m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term);
            let alone = m.membership_config.membership().voter_ids().count() == 1;
            let lease_until = match (m.state, m.millis_since_quorum_ack) {
                (ServerState::Leader, _) if caught_up && alone => u64::MAX,
                (ServerState::Leader, Some(ago)) if caught_up => {
                    unix_ms().saturating_sub(ago) + LEASE_MS
                }
                _ => 0,
            };
            (m.current_leader, lease_until)
        };
        routing.set_leader(partition, leader, lease_until);
        if metrics.changed().await.is_err() {
            routing.set_leader(partition, None, 0);
            return;
        }
    }
}

/// How often a node tells its peers who leads its partitions.
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Keeps nodes that do not hold a partition (when there are more nodes than replicas)
/// knowing its leader, for redirects and CLUSTER SLOTS.
async fn announce_leaders(transport: Arc<Transport>, routing: Arc<Routing>) {
    let mut ticks = tokio::time::interval(ANNOUNCE_EVERY);
    loop {
        ticks.tick().await;
        let leaders: Vec<(u32, NodeId)> = (0..routing.partitions)
            .filter(|&p| routing.hosts(p))
            .filter_map(|p| routing.leader(p).map(|l| (p, l)))
            .collect();
        transport.announce_leaders(leaders);
    }
}

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
/// several entries in flight.
async fn propose(group: Raft<Partition>, mut submissions: mpsc::UnboundedReceiver<Submission>) {
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
        let Ok(outcome) = group.client_write_ff(Arc::new(batch)).await else {
            refuse(waiting, Refusal::Unknown);
            continue;
        };
        tokio::spawn(async move {
            match outcome.await {
                Ok(Ok(written)) => {
                    let mut at = 0;
                    for (n, done) in waiting {
                        done(Ok(written.data.split_from(at, n)));
                        at += n;
                    }
                }
                Ok(Err(ClientWriteError::ForwardToLeader(to))) => {
                    refuse(waiting, Refusal::NotLeader(to.leader_id))
                }
                _ => refuse(waiting, Refusal::Unknown),
            }
        });
    }
}

/// Tells every submission of an entry why it was not applied.
fn refuse(waiting: Vec<(usize, WhenDone)>, refusal: Refusal) {
    waiting.into_iter().for_each(|(_, done)| done(Err(refusal)));
}
