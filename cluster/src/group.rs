//! One partition's Raft group (openraft 0.9, storage v2): write requests are proposed with
//! the timestamp they run at, replicated, and applied to a `Store` in log order on every
//! replica, so every replica computes the same effects and replies. The log here lives in
//! memory (durability `memory`); snapshots carry the store's keys as dumped values.

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership, Vote,
};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};
use tessera_protocol::command::lookup;
use tessera_protocol::{Args, ReplyWriter};
use tessera_storage::{dump, Request, Store};

openraft::declare_raft_types!(
    /// The type configuration of a partition's group.
    pub Partition:
        D = Proposal,
        R = Vec<u8>,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<Partition>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A write request as the log carries it: its arguments, database, timestamp and seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub db: usize,
    /// Unix ms the proposer fixed for it: deadlines and stream IDs derive from it.
    pub now: u64,
    /// Drawn by the proposer, so a random write (SPOP) picks the same members everywhere.
    pub seed: u64,
    pub args: Vec<Vec<u8>>,
}

impl Proposal {
    pub fn new(db: usize, now: u64, args: &[&[u8]]) -> Proposal {
        Proposal {
            db,
            now,
            seed: tessera_storage::rng::seed(),
            args: args.iter().map(|a| a.to_vec()).collect(),
        }
    }
}

type NodeId = u64;
type Error = StorageError<NodeId>;

/// The log and the vote, in memory.
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<LogData>>,
}

#[derive(Default)]
struct LogData {
    entries: BTreeMap<u64, Entry<Partition>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

impl LogStore {
    fn data(&self) -> std::sync::MutexGuard<'_, LogData> {
        self.inner.lock().expect("no holder panics")
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
        self.data().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, Error> {
        Ok(self.data().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), Error> {
        self.data().committed = committed;
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
        {
            let mut data = self.data();
            for entry in entries {
                data.entries.insert(entry.log_id.index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.data().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        let mut data = self.data();
        data.purged = Some(log_id);
        let kept = data.entries.split_off(&(log_id.index + 1));
        data.entries = kept;
        Ok(())
    }
}

/// A replica's state: its `Store` and how far it has applied the log.
pub struct Replica {
    pub store: Store,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
}

/// The state machine: a shared handle on the replica (the owner reads the store through it).
#[derive(Clone)]
pub struct StateMachine {
    pub replica: Arc<Mutex<Replica>>,
}

impl StateMachine {
    pub fn new(databases: usize) -> StateMachine {
        StateMachine {
            replica: Arc::new(Mutex::new(Replica {
                store: Store::new(databases),
                applied: None,
                membership: StoredMembership::default(),
                snapshot: None,
            })),
        }
    }

    fn replica(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().expect("no holder panics")
    }
}

/// Runs one proposal against the store and returns its reply bytes.
fn run(store: &mut Store, p: &Proposal) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = ReplyWriter::new(&mut out, false);
    let Some(spec) = p.args.first().and_then(|name| lookup(name)) else {
        writer.error("ERR unknown command");
        return out;
    };
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for arg in &p.args {
        let start = data.len();
        data.extend_from_slice(arg);
        spans.push(start..data.len());
    }
    let req = Request {
        spec,
        args: Args::from_spans(&data, &spans),
        db: p.db,
        now: p.now,
    };
    store.execute_seeded(&req, Some(p.seed), &mut writer);
    out
}

/// The store's keys as (db, key, dumped value, deadline) records in one buffer.
fn snapshot_of(store: &mut Store, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for db in 0..store.databases() {
        let Some(ks) = store.keyspace(db) else {
            continue;
        };
        for slot in 0..tessera_protocol::SLOT_COUNT as u16 {
            for entry in ks.slot_entries(slot, now) {
                let value = dump::value_bytes(entry);
                for field in [
                    &(db as u64).to_le_bytes()[..],
                    entry.key(),
                    &value,
                    &entry.expire_at().unwrap_or(0).to_le_bytes(),
                ] {
                    out.extend_from_slice(&(field.len() as u64).to_le_bytes());
                    out.extend_from_slice(field);
                }
            }
        }
    }
    out
}

/// A store holding what `snapshot_of` wrote.
fn restore(bytes: &[u8], databases: usize) -> Store {
    let mut store = Store::new(databases);
    let limits = store.limits;
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes")) as usize;
        fields.push(&bytes[pos + 8..pos + 8 + len]);
        pos += 8 + len;
    }
    let number = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    for record in fields.chunks_exact(4) {
        let (db, key, value, deadline) = (
            number(record[0]) as usize,
            record[1],
            record[2],
            number(record[3]),
        );
        if let Some(entry) = dump::entry_from(key, value, deadline, 0, &limits) {
            store.db(db).insert_quietly(entry);
        }
    }
    store
}

impl RaftSnapshotBuilder<Partition> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Partition>, Error> {
        let mut replica = self.replica();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let data = snapshot_of(&mut replica.store, now);
        let meta = SnapshotMeta {
            last_log_id: replica.applied,
            last_membership: replica.membership.clone(),
            snapshot_id: format!("{:?}", replica.applied.map(|id| id.index)),
        };
        replica.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<Partition> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), Error> {
        let replica = self.replica();
        Ok((replica.applied, replica.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<u8>>, Error>
    where
        I: IntoIterator<Item = Entry<Partition>> + Send,
        I::IntoIter: Send,
    {
        let mut replica = self.replica();
        let mut replies = Vec::new();
        for entry in entries {
            replica.applied = Some(entry.log_id);
            replies.push(match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(p) => run(&mut replica.store, &p),
                EntryPayload::Membership(m) => {
                    replica.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            });
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let mut replica = self.replica();
        replica.store = restore(&data, replica.store.databases());
        replica.applied = meta.last_log_id;
        replica.membership = meta.last_membership.clone();
        replica.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Partition>>, Error> {
        Ok(self
            .replica()
            .snapshot
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{Config, Raft};
    use std::collections::{BTreeSet, HashMap};
    use std::time::Duration;

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

    async fn start(router: &Router, id: NodeId) -> (Group, StateMachine) {
        let config = Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..Config::default()
        };
        let machine = StateMachine::new(16);
        let group = Raft::new(
            id,
            Arc::new(config.validate().unwrap()),
            router.clone(),
            LogStore::default(),
            machine.clone(),
        )
        .await
        .unwrap();
        router.nodes.lock().unwrap().insert(id, group.clone());
        (group, machine)
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

    fn get(machine: &StateMachine, key: &[u8]) -> Vec<u8> {
        run(
            &mut machine.replica().store,
            &Proposal::new(0, 0, &[b"GET", key]),
        )
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
        let group = &nodes[(leader - 1) as usize].0;
        for i in 0..50u32 {
            let key = format!("k{i}");
            let value = format!("v{i}");
            let proposal = Proposal::new(0, 1, &[b"SET", key.as_bytes(), value.as_bytes()]);
            assert_eq!(group.client_write(proposal).await.unwrap().data, b"+OK\r\n");
        }
        let incr = Proposal::new(0, 1, &[b"INCR", b"n"]);
        assert_eq!(group.client_write(incr).await.unwrap().data, b":1\r\n");
        // Read before waiting: a metrics borrow held across an await would block the group.
        let applied = group.metrics().borrow().last_applied.map(|l| l.index);
        for (id, (g, machine)) in (1..=3).zip(&nodes) {
            g.wait(Some(Duration::from_secs(10)))
                .applied_index_at_least(applied, "caught up")
                .await
                .unwrap();
            assert_eq!(get(machine, b"k49"), b"$3\r\nv49\r\n", "node {id}");
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
        let group = &nodes[(new_leader - 1) as usize].0;
        let again = Proposal::new(0, 2, &[b"INCR", b"n"]);
        assert_eq!(group.client_write(again).await.unwrap().data, b":2\r\n");
        let machine = &nodes[(new_leader - 1) as usize].1;
        assert_eq!(get(machine, b"k0"), b"$2\r\nv0\r\n");
    }

    #[test]
    fn replicas_applying_a_random_write_pick_the_same_members() {
        let members: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"s"];
        sadd.extend(members.iter().map(Vec::as_slice));
        let (mut a, mut b) = (Store::new(16), Store::new(16));
        let fill = Proposal::new(0, 1, &sadd);
        run(&mut a, &fill);
        run(&mut b, &fill);
        for _ in 0..5 {
            let pop = Proposal::new(0, 1, &[b"SPOP", b"s", b"7"]);
            assert_eq!(run(&mut a, &pop), run(&mut b, &pop));
        }
        let all = Proposal::new(0, 1, &[b"SMEMBERS", b"s"]);
        assert_eq!(run(&mut a, &all), run(&mut b, &all));
    }

    #[test]
    fn snapshots_restore_every_type() {
        let mut store = Store::new(16);
        for args in [
            &[&b"SET"[..], b"s", b"v"][..],
            &[b"RPUSH", b"l", b"a", b"b"],
            &[b"ZADD", b"z", b"1", b"m"],
            &[b"XADD", b"x", b"1-1", b"f", b"v"],
        ] {
            run(&mut store, &Proposal::new(3, 1, args));
        }
        let mut copy = restore(&snapshot_of(&mut store, 1), 16);
        for args in [
            &[&b"GET"[..], b"s"][..],
            &[b"LRANGE", b"l", b"0", b"-1"],
            &[b"ZSCORE", b"z", b"m"],
            &[b"XLEN", b"x"],
        ] {
            let p = Proposal::new(3, 1, args);
            assert_eq!(run(&mut copy, &p), run(&mut store, &p), "{args:?}");
        }
    }
}
