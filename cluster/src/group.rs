//! One partition's Raft group (openraft 0.9, storage v2). A log entry is a batch of write
//! requests, each with the timestamp and seed its proposer fixed, so every replica computes
//! the same effects and replies. The state machine does not hold the data: it hands committed
//! batches to an `Applier` (the server's core owning the partition) in log order, and does
//! not wait for them to run: the applier answers the proposer itself. The log lives in
//! memory here (durability `memory`).

use crate::node::Refusal;
use crate::replica::{Batch, Replies};
use crate::snapshots::SnapshotFiles;
use crate::wal::{PartitionLog, Record, Wal, Written};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use std::collections::HashMap;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

openraft::declare_raft_types!(
    /// The type configuration of a partition's group: an entry is a batch of write requests
    /// (shared, so the log's copies of it cost nothing) and its response their replies.
    pub Partition:
        D = Arc<Batch>,
        R = Replies,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<Partition>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Where an `Applier` sends the outcome of one request.
pub struct Done<T>(oneshot::Sender<T>);

impl<T> Done<T> {
    pub fn send(self, value: T) {
        // The group may have shut down meanwhile; then nobody waits for the outcome.
        let _ = self.0.send(value);
    }
}

pub(crate) fn done_pair<T>() -> (Done<T>, oneshot::Receiver<T>) {
    let (tx, rx) = oneshot::channel();
    (Done(tx), rx)
}

/// Turns a snapshot's copy of the data into its bytes (off the applier's thread: encoding a
/// large partition takes a while).
pub type Encode = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// Called once an applier has run what it was handed.
pub type Ran = Box<dyn FnOnce() + Send>;

/// Told the log index up to which the applier has run a group's log.
pub type RanUpTo = Arc<dyn Fn(u64) + Send + Sync>;

/// What to do with the replies to an entry this node proposed, or why it has none.
pub type Answer = Box<dyn FnOnce(Result<Replies, Refusal>) + Send>;

/// A committed batch to run, and who waits for its replies on this node (its proposer, when
/// this node proposed it).
pub struct Committed {
    pub batch: Arc<Batch>,
    pub answer: Option<Answer>,
}

/// The entries a node has proposed to one group and not yet seen applied, by tag: whichever
/// comes first, the entry applied here or the group's refusal, takes the answer.
pub struct Proposals {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Answer>>,
}

impl Default for Proposals {
    /// Tags start at a random number, so an entry proposed before a restart, replayed from
    /// the log, finds nobody waiting.
    fn default() -> Proposals {
        Proposals {
            next: AtomicU64::new(tessera_storage::rng::seed() | 1),
            waiting: Mutex::default(),
        }
    }
}

impl Proposals {
    /// Tags `batch` and keeps `answer` until it is applied or refused.
    pub fn wait(&self, batch: &mut Batch, answer: Answer) -> u64 {
        let tag = self.next.fetch_add(1, Ordering::Relaxed).max(1);
        batch.set_tag(tag);
        self.waiting
            .lock()
            .expect("no holder panics")
            .insert(tag, answer);
        tag
    }

    pub fn take(&self, tag: u64) -> Option<Answer> {
        if tag == 0 {
            return None;
        }
        self.waiting.lock().expect("no holder panics").remove(&tag)
    }
}

/// What holds a partition's data on this node. Each call must take effect in the order the
/// calls were made (the group makes them in log order).
pub trait Applier: Send + Sync + 'static {
    /// Runs committed batches of `partition` in order, hands each batch's replies to its
    /// answer, then calls `ran`. The group does not wait: later calls queue behind.
    fn apply(&self, partition: u32, batches: Vec<Committed>, ran: Ran);
    /// A copy of the partition's data as it is now, to encode.
    fn snapshot(&self, partition: u32, done: Done<Encode>);
    /// Replaces the partition's keys with a snapshot's; an image that does not validate
    /// changes nothing and is reported.
    fn restore(&self, partition: u32, data: Vec<u8>, done: Done<Result<(), String>>);
    /// Drops the partition's data: its replicas moved to other nodes.
    fn forget(&self, partition: u32, done: Done<()>);
}

type NodeId = u64;
type Error = StorageError<NodeId>;

/// A partition's log and vote: in memory, and with durability `os` or `fsync` also in the
/// owning core's write-ahead log. Every change is applied to the memory copy at once (Raft
/// may read it straight away) and queued to the log in order; appends and votes report done
/// only once the log has them.
#[derive(Clone, Default)]
pub struct LogStore {
    partition: u32,
    inner: Arc<Mutex<PartitionLog>>,
    wal: Option<Arc<Wal>>,
}

impl LogStore {
    /// A log kept in `wal`, starting from the state its replay recovered.
    pub fn durable(partition: u32, wal: Arc<Wal>, recovered: PartitionLog) -> LogStore {
        LogStore {
            partition,
            inner: Arc::new(Mutex::new(recovered)),
            wal: Some(wal),
        }
    }

    fn data(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        self.inner.lock().expect("no holder panics")
    }

    /// Applies a change; `done` runs once it is durable (at once without a log).
    fn change(&self, record: Record, done: Option<Written>) {
        match &self.wal {
            Some(wal) => {
                self.data().apply(record.clone());
                wal.write(record, done);
            }
            None => {
                self.data().apply(record);
                if let Some(done) = done {
                    done(Ok(()));
                }
            }
        }
    }
}

impl RaftLogReader<Partition> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Partition>>, Error> {
        Ok(self
            .data()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<Partition> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Partition>, Error> {
        let data = self.data();
        let last = data
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(data.purged);
        Ok(LogState {
            last_purged_log_id: data.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let done: Written = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.change(Record::Vote(self.partition, *vote), Some(done));
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageIOError::write_vote(&e).into()),
            Err(_) => Err(gone("the log writer stopped")),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, Error> {
        Ok(self.data().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), Error> {
        // Raft does not need this durable; it only saves re-applying after a restart.
        self.change(Record::Committed(self.partition, committed), None);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, Error> {
        Ok(self.data().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Partition>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<Partition>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<Partition>> = entries.into_iter().collect();
        let done: Written = Box::new(move |result| callback.log_io_completed(result));
        self.change(Record::Entries(self.partition, entries), Some(done));
        Ok(())
    }

    // Truncations and purges need no wait: the log writes them before anything queued later,
    // so a replay never sees a later append without them.
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.change(Record::Truncate(self.partition, log_id.index), None);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.change(Record::Purge(self.partition, log_id), None);
        Ok(())
    }
}

/// Where a snapshot stands in the log, and the membership then.
type Meta = SnapshotMeta<NodeId, BasicNode>;

/// What the state machine keeps besides the data: how far it has applied, the membership
/// and the last snapshot.
#[derive(Default)]
struct Progress {
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The last snapshot's place in the log, with its image when the node keeps files. A node
    /// that keeps nothing on disk makes the image only when a peer needs it (see
    /// `get_current_snapshot`), so its snapshots cost nothing until then.
    snapshot: Option<(Meta, Option<Vec<u8>>)>,
    /// Proposal bytes applied since the last snapshot began.
    logged_bytes: u64,
}

/// Log bytes a partition accumulates before a snapshot, at least.
const MIN_LOG_BYTES: u64 = 8 << 20;

/// Entries of a partition handed to its applier and not yet run, at most: past that, Raft
/// waits before it hands over more, so a slow core holds back its replica's log instead of
/// queueing without bound.
const MAX_UNRUN_ENTRIES: usize = 1024;

/// The state machine of one partition on this node.
#[derive(Clone)]
pub struct StateMachine {
    partition: u32,
    applier: Arc<dyn Applier>,
    ran_up_to: RanUpTo,
    proposals: Arc<Proposals>,
    /// One permit per entry the applier may still be handed before it runs what it has.
    unrun: Arc<tokio::sync::Semaphore>,
    progress: Arc<Mutex<Progress>>,
    /// Where snapshots are kept, unless the node keeps nothing on disk.
    files: Option<Arc<SnapshotFiles>>,
    saving: Arc<tokio::sync::Mutex<()>>,
}

impl StateMachine {
    pub fn new(
        partition: u32,
        applier: Arc<dyn Applier>,
        ran_up_to: RanUpTo,
        files: Option<Arc<SnapshotFiles>>,
    ) -> StateMachine {
        StateMachine {
            partition,
            applier,
            ran_up_to,
            proposals: Arc::default(),
            unrun: Arc::new(tokio::sync::Semaphore::new(MAX_UNRUN_ENTRIES)),
            progress: Arc::default(),
            files,
            saving: Arc::default(),
        }
    }

    /// Loads the partition's snapshot from disk, if it has one, into the applier; Raft then
    /// replays the log after it.
    pub async fn recover(&self) -> std::io::Result<()> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let Some((meta, image)) = files.load(self.partition)? else {
            return Ok(());
        };
        let (done, rx) = done_pair();
        self.applier.restore(self.partition, image.clone(), done);
        rx.await
            .map_err(|_| std::io::Error::other("the partition's core stopped"))?
            .map_err(std::io::Error::other)?;
        let mut progress = self.progress();
        progress.applied = meta.last_log_id;
        progress.membership = meta.last_membership.clone();
        progress.snapshot = Some((meta, Some(image)));
        Ok(())
    }

    /// Makes `image` the partition's snapshot, on disk first, when the node keeps files;
    /// otherwise only `meta` is kept. Unless a newer one is already kept: a build and an
    /// install can overlap, and the older must not replace the newer. Saves of one partition
    /// take turns.
    async fn keep(&self, meta: &Meta, image: Vec<u8>) -> Result<(), Error> {
        let _turn = self.saving.lock().await;
        let newer_kept = {
            let progress = self.progress();
            let kept = progress.snapshot.as_ref().and_then(|(m, _)| m.last_log_id);
            kept.is_some() && kept >= meta.last_log_id
        };
        if newer_kept {
            return Ok(());
        }
        let image = match &self.files {
            Some(files) => {
                files
                    .save(self.partition, meta, &image)
                    .await
                    .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
                Some(image)
            }
            None => None,
        };
        self.progress().snapshot = Some((meta.clone(), image));
        Ok(())
    }

    /// Where this node's proposals to the group wait for their replies.
    pub fn proposals(&self) -> Arc<Proposals> {
        self.proposals.clone()
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().expect("no holder panics")
    }

    /// The membership of the last entry applied (so committed).
    pub fn membership(&self) -> StoredMembership<NodeId, BasicNode> {
        self.progress().membership.clone()
    }

    /// Drops the partition's data and its snapshot on this node.
    pub async fn forget(&self) -> std::io::Result<()> {
        let (done, rx) = done_pair();
        self.applier.forget(self.partition, done);
        let _ = rx.await;
        match &self.files {
            Some(files) => files.remove(self.partition),
            None => Ok(()),
        }
    }

    /// Whether the log since the last snapshot has grown to a few MiB and, when snapshots are
    /// written out, to twice the last one: writing one then costs at most about half a copy
    /// of what was logged, and the log's memory stays within twice the data's.
    pub fn wants_snapshot(&self) -> bool {
        let progress = self.progress();
        let image = progress
            .snapshot
            .as_ref()
            .and_then(|(_, image)| image.as_ref())
            .map_or(0, |image| image.len() as u64);
        progress.logged_bytes >= (2 * image).max(MIN_LOG_BYTES)
    }

    /// A snapshot of the data as it is now, at the last entry applied. Called between
    /// applies (Raft's state machine calls run one at a time), so the image the applier makes
    /// matches that place in the log.
    async fn snapshot_now(&self) -> Result<Snapshot<Partition>, Error> {
        let meta = self.meta_now();
        let (done, image) = done_pair();
        self.applier.snapshot(self.partition, done);
        let data = encode_image(image).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    /// The meta of a snapshot taken at the last entry applied.
    fn meta_now(&self) -> Meta {
        let progress = self.progress();
        SnapshotMeta {
            last_log_id: progress.applied,
            last_membership: progress.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                self.partition,
                progress.applied.map_or(0, |id| id.index)
            ),
        }
    }
}

fn gone(what: &str) -> Error {
    let cause = std::io::Error::new(std::io::ErrorKind::BrokenPipe, what.to_string());
    StorageIOError::write_state_machine(&cause).into()
}

/// The bytes of an image the applier was asked for.
async fn encode_image(image: oneshot::Receiver<Encode>) -> Result<Vec<u8>, Error> {
    let encode = image
        .await
        .map_err(|_| gone("the partition's core stopped"))?;
    // Encoding a large partition takes a while: not on the runtime's few threads.
    tokio::task::spawn_blocking(encode)
        .await
        .map_err(|_| gone("encoding the snapshot failed"))
}

/// Builds a snapshot from the data as it was when the builder was made: the request to the
/// applier is queued then, behind every batch applied so far and ahead of any later one.
/// Without files there is no image to make: the snapshot only marks its place in the log.
pub struct SnapshotBuilder {
    meta: Meta,
    image: Option<oneshot::Receiver<Encode>>,
    machine: StateMachine,
}

impl RaftSnapshotBuilder<Partition> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Partition>, Error> {
        let data = match self.image.take() {
            Some(image) => encode_image(image).await?,
            None => Vec::new(),
        };
        // On disk before Raft purges the log it covers.
        self.machine.keep(&self.meta, data.clone()).await?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<Partition> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), Error> {
        let progress = self.progress();
        Ok((progress.applied, progress.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Replies>, Error>
    where
        I: IntoIterator<Item = Entry<Partition>> + Send,
        I::IntoIter: Send,
    {
        // One hand-over to the applier for all these entries, not waited for: the replies go
        // to the proposals' answers, not back through Raft.
        let mut batches = Vec::new();
        let mut last = None;
        let mut count = 0;
        for entry in entries {
            last = Some(entry.log_id);
            count += 1;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    self.progress().logged_bytes += batch.bytes() as u64;
                    let answer = self.proposals.take(batch.tag());
                    batches.push(Committed { batch, answer });
                }
                EntryPayload::Membership(m) => {
                    self.progress().membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
        }
        if let Some(last) = last {
            let permits = self
                .unrun
                .clone()
                .acquire_many_owned(count.min(MAX_UNRUN_ENTRIES) as u32)
                .await
                .map_err(|_| gone("the partition's state machine closed"))?;
            let ran_up_to = self.ran_up_to.clone();
            let ran = Box::new(move || {
                drop(permits);
                ran_up_to(last.index)
            });
            self.applier.apply(self.partition, batches, ran);
            self.progress().applied = Some(last);
        }
        Ok(vec![Replies::default(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let image = self.files.is_some().then(|| {
            let (done, image) = done_pair();
            self.applier.snapshot(self.partition, done);
            image
        });
        self.progress().logged_bytes = 0;
        SnapshotBuilder {
            meta: self.meta_now(),
            image,
            machine: self.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let (done, rx) = done_pair();
        self.applier.restore(self.partition, data.clone(), done);
        rx.await
            .map_err(|_| gone("the partition's core stopped"))?
            .map_err(|e| {
                StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e))
            })?;
        self.keep(meta, data).await?;
        let mut progress = self.progress();
        progress.applied = meta.last_log_id;
        progress.membership = meta.last_membership.clone();
        progress.logged_bytes = 0;
        Ok(())
    }

    /// The kept snapshot or, without files, a new one made now: at a later place in the log
    /// than the one kept, which a follower installs just as well (Raft counts it as having
    /// the log up to the snapshot it was sent).
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Partition>>, Error> {
        let kept = self.progress().snapshot.clone();
        match kept {
            None => Ok(None),
            Some((meta, Some(data))) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })),
            Some((_, None)) => self.snapshot_now().await.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{self, Header};
    use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{Config, Raft};
    use std::collections::{BTreeSet, HashMap};
    use std::time::Duration;
    use tessera_protocol::SLOT_COUNT;
    use tessera_storage::Store;

    type Group = Raft<Partition>;

    /// Nodes of a test cluster, reachable in process (a node taken out is unreachable).
    #[derive(Clone, Default)]
    struct Router {
        nodes: Arc<Mutex<HashMap<NodeId, Group>>>,
    }

    struct Link {
        router: Router,
        target: NodeId,
    }

    impl Link {
        fn peer(&self) -> Option<Group> {
            self.router.nodes.lock().unwrap().get(&self.target).cloned()
        }
    }

    fn unreachable<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
        let gone = std::io::Error::new(std::io::ErrorKind::NotConnected, "node is down");
        RPCError::Unreachable(Unreachable::new(&gone))
    }

    impl RaftNetworkFactory<Partition> for Router {
        type Network = Link;

        async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Link {
            Link {
                router: self.clone(),
                target,
            }
        }
    }

    impl RaftNetwork<Partition> for Link {
        async fn append_entries(
            &mut self,
            rpc: AppendEntriesRequest<Partition>,
            _option: RPCOption,
        ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>>
        {
            let peer = self.peer().ok_or_else(unreachable)?;
            peer.append_entries(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
        }

        async fn install_snapshot(
            &mut self,
            rpc: InstallSnapshotRequest<Partition>,
            _option: RPCOption,
        ) -> Result<
            InstallSnapshotResponse<NodeId>,
            RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
        > {
            let peer = self.peer().ok_or_else(unreachable)?;
            peer.install_snapshot(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
        }

        async fn vote(
            &mut self,
            rpc: VoteRequest<NodeId>,
            _option: RPCOption,
        ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
            let peer = self.peer().ok_or_else(unreachable)?;
            peer.vote(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
        }
    }

    /// A node's data: one store holding the test partition.
    #[derive(Default)]
    struct Data {
        store: Mutex<Option<Store>>,
        versions: replica::SlotVersions,
        /// Where the node's own proposals wait for their replies.
        proposals: std::sync::OnceLock<Arc<Proposals>>,
        /// While set, the node's core is busy: what it was handed stays unrun here.
        stalled: Mutex<Option<Vec<Ran>>>,
    }

    impl Data {
        fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
            f(self
                .store
                .lock()
                .unwrap()
                .get_or_insert_with(|| Store::new(16)))
        }
    }

    impl Applier for Data {
        fn apply(&self, _partition: u32, batches: Vec<Committed>, ran: Ran) {
            if let Some(stalled) = self.stalled.lock().unwrap().as_mut() {
                stalled.push(ran);
                return;
            }
            for committed in batches {
                let replies = self.with(|s| replica::run(s, &self.versions, &committed.batch));
                if let Some(answer) = committed.answer {
                    answer(Ok(replies));
                }
            }
            ran();
        }

        fn snapshot(&self, _partition: u32, done: Done<Encode>) {
            let all = 0..SLOT_COUNT as u16;
            let image = self.with(|s| replica::snapshot(s, &self.versions, all, 0));
            done.send(Box::new(move || image.encode()));
        }

        fn restore(&self, _partition: u32, data: Vec<u8>, done: Done<Result<(), String>>) {
            let all = 0..SLOT_COUNT as u16;
            done.send(self.with(|s| replica::restore(s, &self.versions, all, &data)));
        }

        fn forget(&self, _partition: u32, done: Done<()>) {
            self.with(|s| replica::clear_slots(s, 0..SLOT_COUNT as u16));
            self.versions.reset(0..SLOT_COUNT as u16);
            done.send(());
        }
    }

    fn config() -> Config {
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..Config::default()
        }
    }

    async fn start(router: &Router, id: NodeId) -> (Group, Arc<Data>) {
        start_with(router, id, config()).await
    }

    async fn start_with(router: &Router, id: NodeId, config: Config) -> (Group, Arc<Data>) {
        let data = Arc::new(Data::default());
        let machine = StateMachine::new(0, data.clone(), Arc::new(|_| {}), None);
        _ = data.proposals.set(machine.proposals());
        let group = Raft::new(
            id,
            Arc::new(config.validate().unwrap()),
            router.clone(),
            LogStore::default(),
            machine,
        )
        .await
        .unwrap();
        router.nodes.lock().unwrap().insert(id, group.clone());
        (group, data)
    }

    async fn leader_of(group: &Group) -> NodeId {
        group
            .wait(Some(Duration::from_secs(10)))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .unwrap()
            .current_leader
            .unwrap()
    }

    fn get(data: &Data, key: &[u8]) -> Vec<u8> {
        let batch = Batch::of(Header::new(0, 0), &[b"GET", key]);
        let versions = &data.versions;
        data.with(|s| replica::run(s, versions, &batch).split_from(0, 1).remove(0))
    }

    /// Where the node's latest snapshot stands in the log, once it has one.
    async fn snapshot_of(group: &Group, what: &str) -> LogId<NodeId> {
        group
            .wait(Some(Duration::from_secs(10)))
            .metrics(|m| m.snapshot.is_some(), what)
            .await
            .unwrap()
            .snapshot
            .unwrap()
    }

    /// Proposes one request on `node` and waits for its reply.
    async fn write((group, data): &(Group, Arc<Data>), args: &[&[u8]]) -> Vec<u8> {
        let mut batch = Batch::of(Header::new(0, 1), args);
        let (done, replies) = done_pair();
        let proposals = data.proposals.get().expect("set at start");
        proposals.wait(&mut batch, Box::new(move |outcome| done.send(outcome)));
        group.client_write(Arc::new(batch)).await.unwrap();
        let replies = replies.await.unwrap().expect("applied");
        replies.split_from(0, 1).remove(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_replicate_to_every_replica_and_survive_the_leader() {
        let router = Router::default();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            nodes.push(start(&router, id).await);
        }
        let members: BTreeSet<NodeId> = (1..=3).collect();
        nodes[0].0.initialize(members).await.unwrap();
        let leader = leader_of(&nodes[0].0).await;
        let node = &nodes[(leader - 1) as usize];
        for i in 0..50u32 {
            let key = format!("k{i}");
            let value = format!("v{i}");
            assert_eq!(
                write(node, &[b"SET", key.as_bytes(), value.as_bytes()]).await,
                b"+OK\r\n"
            );
        }
        assert_eq!(write(node, &[b"INCR", b"n"]).await, b":1\r\n");
        // Read before waiting: a metrics borrow held across an await would block the group.
        let applied = node.0.metrics().borrow().last_applied.map(|l| l.index);
        for (id, (g, data)) in (1..=3).zip(&nodes) {
            g.wait(Some(Duration::from_secs(10)))
                .applied_index_at_least(applied, "caught up")
                .await
                .unwrap();
            assert_eq!(get(data, b"k49"), b"$3\r\nv49\r\n", "node {id}");
        }
        // The leader goes away: the others elect one of themselves and go on.
        router.nodes.lock().unwrap().remove(&leader);
        nodes[(leader - 1) as usize].0.shutdown().await.unwrap();
        let survivor = &nodes[if leader == 1 { 1 } else { 0 }].0;
        let new_leader = survivor
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != leader),
                "a new leader",
            )
            .await
            .unwrap()
            .current_leader
            .unwrap();
        let node = &nodes[(new_leader - 1) as usize];
        assert_eq!(write(node, &[b"INCR", b"n"]).await, b":2\r\n");
        assert_eq!(get(&node.1, b"k0"), b"$2\r\nv0\r\n");
    }

    /// Without files, a snapshot only marks its place in the log; a node that needs the log
    /// before it gets an image made then, at a later place, and must not replay what the
    /// image already holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_made_when_a_node_needs_it_covers_the_log_up_to_then() {
        let router = Router::default();
        let config = Config {
            max_in_snapshot_log_to_keep: 0,
            ..config()
        };
        let node = start_with(&router, 1, config.clone()).await;
        let group = &node.0;
        group.initialize(BTreeSet::from([1])).await.unwrap();
        leader_of(group).await;
        for _ in 0..10 {
            write(&node, &[b"INCR", b"n"]).await;
        }
        group.trigger().snapshot().await.unwrap();
        let marked = snapshot_of(group, "a snapshot").await;
        for _ in 0..10 {
            write(&node, &[b"INCR", b"n"]).await;
        }
        group.trigger().purge_log(marked.index).await.unwrap();
        group
            .wait(Some(Duration::from_secs(10)))
            .purged(Some(marked), "the log purged")
            .await
            .unwrap();

        let (learner, data) = start_with(&router, 2, config).await;
        group
            .add_learner(2, BasicNode::default(), true)
            .await
            .unwrap();
        let installed = snapshot_of(&learner, "a snapshot installed").await;
        assert!(
            installed.index > marked.index,
            "the image is made when sent"
        );
        let applied = group.metrics().borrow().last_applied;
        learner
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(applied.map(|l| l.index), "caught up")
            .await
            .unwrap();
        assert_eq!(get(&data, b"n"), b"$2\r\n20\r\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_core_that_falls_behind_holds_back_the_log_it_is_handed() {
        let router = Router::default();
        let (group, data) = start(&router, 1).await;
        group.initialize(BTreeSet::from([1])).await.unwrap();
        leader_of(&group).await;
        // The leader's first entry (index 1, after the membership at 0) runs before the stall.
        let first = 1;
        group
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(first), "the leader's first entry")
            .await
            .unwrap();
        *data.stalled.lock().unwrap() = Some(Vec::new());
        let entries = MAX_UNRUN_ENTRIES as u64 + 100;
        let mut outcomes = Vec::new();
        for _ in 0..entries {
            let batch = Batch::of(Header::new(0, 1), &[b"INCR", b"n"]);
            outcomes.push(group.client_write_ff(Arc::new(batch)).await.unwrap());
        }
        group
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(first + entries / 2), "handed over")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let handed = group.metrics().borrow().last_applied.map_or(0, |l| l.index);
        assert!(
            handed <= first + MAX_UNRUN_ENTRIES as u64,
            "{handed} handed over"
        );

        let stalled = data.stalled.lock().unwrap().take().unwrap();
        stalled.into_iter().for_each(|ran| ran());
        for outcome in outcomes {
            outcome.await.unwrap().unwrap();
        }
        group
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(first + entries), "all handed over")
            .await
            .unwrap();
    }
}
