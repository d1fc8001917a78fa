//! A node as a member of a replicated cluster: requests for partitions led elsewhere are
//! redirected (`-MOVED`), writes become proposals to the partition's Raft group and are
//! answered once committed and applied, reads are served while this node holds the
//! partition's lease, and the CLUSTER commands describe it all the way Redis Cluster does.
//! The Raft side (`tessera_cluster::node`) runs on its own threads and reaches the cores
//! through their mailboxes.

use crate::conn::Conn;
use crate::core::{Core, Msg, Target};
use crate::dispatch::{reply, Flow};
use crate::multi::{reply_with, MultiOp, Step};
use crate::server::Shared;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use tessera_cluster::forward::{Job, Unrelayed};
use tessera_cluster::group::{Applier, Committed, Done, Encode, Ran};
use tessera_cluster::node::{Node, Outcome, Refusal, Settings, Submission};
use tessera_cluster::replica::{self, Batch, Header};
use tessera_cluster::roster::{Change, Roster};
use tessera_cluster::routing::{slots_of, Member, Routing};
use tessera_cluster::wal::Durability;
use tessera_protocol::{key_slot, Args, Cmd, CommandSpec, ReplyWriter, SLOT_COUNT};

/// Raft ports are client ports plus this, as Redis Cluster's bus ports.
pub const RAFT_PORT_OFFSET: u16 = 10000;

/// How this node takes part in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: u64,
    pub members: Vec<Member>,
    pub partitions: u32,
    pub replicas: usize,
    pub bootstrap: bool,
    /// Joining a running cluster: `members` are its members, which this node is not (yet).
    pub joining: bool,
    /// Relay requests for partitions led elsewhere instead of redirecting the client, so
    /// clients that know nothing of clusters work against any node.
    pub forwarding: bool,
    pub durability: Durability,
    /// Where the node keeps its logs and snapshots.
    pub dir: Option<PathBuf>,
}

/// Parses `id@host:port,...` (client addresses; each Raft port is the client port plus
/// `RAFT_PORT_OFFSET`).
pub fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    let mut members: Vec<Member> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| format!("'{item}' is not id@host:port"))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("'{id}' is not a node id (a positive integer)"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("'{address}' has no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p: &u16| p > 0 && p <= u16::MAX - RAFT_PORT_OFFSET)
            .ok_or_else(|| format!("'{port}' is not a usable port"))?;
        if members.iter().any(|m| m.id == id) {
            return Err(format!("node id {id} is listed twice"));
        }
        members.push(Member {
            id,
            client: format!("{host}:{port}"),
            raft: format!("{host}:{}", port + RAFT_PORT_OFFSET),
        });
    }
    if members.is_empty() {
        return Err("no members".into());
    }
    Ok(members)
}

/// The 40-character id Redis Cluster clients expect, derived from the numeric one.
pub fn node_name(id: u64) -> String {
    format!("{id:040x}")
}

/// Starts this node's Raft side; its groups apply through the cores of `shared`.
pub fn start(shared: &Arc<Shared>, config: &ClusterConfig) -> std::io::Result<Node> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
    if !config.joining && !config.members.iter().any(|m| m.id == config.node_id) {
        return Err(invalid(format!(
            "node {} is not among the members",
            config.node_id
        )));
    }
    let server = shared.config.read().map(|c| c.clone()).unwrap_or_default();
    let port = server.port.checked_add(RAFT_PORT_OFFSET).ok_or_else(|| {
        invalid(format!(
            "port {} leaves no room for the Raft port",
            server.port
        ))
    })?;
    let settings = Settings {
        me: config.node_id,
        members: config.members.clone(),
        partitions: config.partitions,
        replicas: config.replicas,
        bootstrap: config.bootstrap,
        listen: format!("{}:{port}", server.bind),
        durability: config.durability,
        dir: config.dir.clone(),
        core_of: (0..config.partitions)
            .map(|p| shared.owner(slots_of(p, config.partitions).start))
            .collect(),
        secret: server.cluster_secret,
    };
    let applier = CoreApplier {
        shared: Arc::downgrade(shared),
        partitions: config.partitions,
    };
    let node = Node::start(settings, Arc::new(applier))?;
    node.set_client_password(&server.requirepass);
    Ok(node)
}

/// Applies a partition's committed writes on the core that owns its slots. It works before
/// the node is up (recovery loads snapshots through it), so it needs no routing.
struct CoreApplier {
    shared: Weak<Shared>,
    partitions: u32,
}

impl CoreApplier {
    fn slots(&self, partition: u32) -> std::ops::Range<u16> {
        slots_of(partition, self.partitions)
    }

    fn on_owner(&self, partition: u32, run: impl FnOnce(&mut Core) + Send + 'static) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        run_on(&shared, shared.owner(self.slots(partition).start), run);
    }
}

impl Applier for CoreApplier {
    fn apply(&self, partition: u32, batches: Vec<Committed>, ran: Ran) {
        self.on_owner(partition, move |core| {
            for committed in batches {
                let versions = &core.shared.slot_versions;
                let replies = replica::run(&mut core.store, versions, &committed.batch);
                if let Some(answer) = committed.answer {
                    answer(Ok(replies));
                }
            }
            ran();
        });
    }

    fn snapshot(&self, partition: u32, done: Done<Encode>) {
        let slots = self.slots(partition);
        self.on_owner(partition, move |core| {
            // Expired keys too: the log removes them, and entries after the snapshot may
            // still find them live at their own times.
            let image = replica::snapshot(&core.store, &core.shared.slot_versions, slots, 0);
            done.send(Box::new(move || image.encode()));
        });
    }

    fn forget(&self, partition: u32, done: Done<()>) {
        let slots = self.slots(partition);
        self.on_owner(partition, move |core| {
            replica::clear_slots(&mut core.store, slots.clone());
            // Should the partition come back, its counts start again with its log.
            core.shared.slot_versions.reset(slots);
            done.send(());
        });
    }

    fn restore(&self, partition: u32, data: Vec<u8>, done: Done<Result<(), String>>) {
        let slots = self.slots(partition);
        self.on_owner(partition, move |core| {
            let versions = &core.shared.slot_versions;
            done.send(replica::restore(&mut core.store, versions, slots, &data));
        });
    }
}

/// Where a proposal's reply goes, and its key's slot (for a redirect).
type ReplyTo = (Target, u16);

/// Writes a core has gathered this turn, per partition, with where each reply goes.
#[derive(Default)]
pub struct Outbox {
    partitions: HashMap<u32, (Batch, Vec<ReplyTo>)>,
    /// The slot active expiry looks at next.
    expire_cursor: usize,
}

/// Expired keys one tick proposes for removal at most.
const EXPIRE_PER_TICK: usize = 1000;

/// Active expiry on a cluster member. Replicas never remove keys by their own clocks (their
/// stores keep expired keys, treated as absent, until the log says otherwise): the leader of
/// a partition looks for expired keys in it and proposes their removal, judged at the
/// proposal's time, so every replica removes the same keys at the same point of its log.
pub fn expire(core: &mut Core) {
    let (Some(routing), Some(ks)) = (core.shared.routing(), core.store.keyspace(0)) else {
        return;
    };
    if ks.volatile() == 0 {
        return;
    }
    let now = core.now;
    let mut found: HashMap<u32, Vec<Box<[u8]>>> = HashMap::new();
    let mut total = 0;
    for _ in 0..SLOT_COUNT {
        let slot = core.outbox.expire_cursor as u16;
        core.outbox.expire_cursor = (core.outbox.expire_cursor + 1) % SLOT_COUNT;
        let partition = routing.partition_of(slot);
        if core.shared.owner(slot) != core.id || routing.leader(partition) != Some(routing.me) {
            continue;
        }
        let keys = ks.expired_keys(slot, now, EXPIRE_PER_TICK - total);
        total += keys.len();
        found.entry(partition).or_default().extend(keys);
        if total >= EXPIRE_PER_TICK {
            break;
        }
    }
    let Some(node) = core.shared.cluster.get() else {
        return;
    };
    for (partition, keys) in found.into_iter().filter(|(_, k)| !k.is_empty()) {
        let mut batch = Batch::default();
        batch.push_expire(Header::new(0, now), &keys);
        let done = Box::new(|_| {});
        node.submit(partition, Submission { batch, done });
    }
}

/// What a keyed request gets while the node's Raft side is not up yet.
const STARTING: &str = "TRYAGAIN the node is starting";
const AWAITING_CREATION: &str =
    "CLUSTERDOWN this node is not in a cluster yet: see tessera cluster create";

/// Why a cluster node without its Raft side cannot serve a keyed request yet.
fn not_ready(core: &Core) -> &'static str {
    match &core.config.cluster {
        Some(c) if c.members.is_empty() => AWAITING_CREATION,
        _ => STARTING,
    }
}
const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The one slot all `keys` hash to (`None` for no keys), or `Err` when they disagree.
fn one_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, ()> {
    let mut slot = None;
    for key in keys {
        let s = key_slot(key);
        if slot.is_some_and(|first| first != s) {
            return Err(());
        }
        slot = Some(s);
    }
    Ok(slot)
}

/// Runs `work` on core `core` (from any thread: the Raft side's callbacks use this).
fn run_on(shared: &Shared, core: usize, work: impl FnOnce(&mut Core) + Send + 'static) {
    shared.mailboxes[core].push_external(Msg::Run(Box::new(work)));
}

/// Where a request for `slot` goes: `-ASK` when this node is a replica its partition is
/// moving away from (the slot is leaving it, as a migrating slot leaves a Redis node: the
/// client asks the leader this once), `-MOVED` otherwise.
fn redirect(slot: u16, leader: Option<u64>, routing: &Routing) -> String {
    let partition = routing.partition_of(slot);
    let leaving = routing.moving(partition)
        && routing.voters(partition).contains(&routing.me)
        && !routing.target(partition).contains(&routing.me);
    match leader.and_then(|id| routing.member(id)) {
        Some(m) if leaving => format!("ASK {slot} {}", m.client),
        _ => moved(slot, leader, routing),
    }
}

fn moved(slot: u16, leader: Option<u64>, routing: &Routing) -> String {
    match leader.and_then(|id| routing.member(id)) {
        Some(m) => format!("MOVED {slot} {}", m.client),
        None => "CLUSTERDOWN The cluster is down: the partition has no leader".into(),
    }
}

fn error_reply(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    ReplyWriter::new(&mut out, false).error(message);
    out
}

/// Commands a cluster member cannot run yet: they would read keys they do not name.
fn unsupported(core: &Core, spec: &'static CommandSpec, args: Args) -> bool {
    crate::multi::sorts_by_patterns(core, spec, args)
}

/// Routes a request on a cluster member. Returns the flow when it was answered here (a
/// redirect, an error, or a write proposed); `None` lets the ordinary path run it (a read
/// this node may serve, or a command without keys).
pub fn route(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Option<Flow> {
    core.config.cluster.as_ref()?;
    if spec.cmd == Cmd::Watch && conn.tx.is_some() {
        // Refused as everywhere (`transaction`).
        return None;
    }
    if spec.cmd == Cmd::Exec && conn.tx.is_some() {
        return Some(exec(core, conn, idx));
    }
    if matches!(spec.cmd, Cmd::FlushAll | Cmd::FlushDb) {
        return Some(flush(core, conn, idx, args));
    }
    if unsupported(core, spec, args) {
        let message = format!("ERR '{}' is not supported in cluster mode yet", spec.name);
        reply(conn, |w| w.error(&message));
        return Some(Flow::Next);
    }
    if spec.cmd == Cmd::Select && args.get(1) != b"0" {
        reply(conn, |w| {
            w.error("ERR SELECT is not allowed in cluster mode")
        });
        return Some(Flow::Next);
    }
    let Ok(slot) = one_slot(spec.keys_in(&args).map(|pos| args.get(pos))) else {
        reply(conn, |w| w.error(CROSSSLOT));
        return Some(Flow::Next);
    };
    let slot = slot?;
    let Some(routing) = core.shared.routing() else {
        reply(conn, |w| w.error(not_ready(core)));
        return Some(Flow::Next);
    };
    if conn.cycle.as_ref().is_some_and(|c| c.held) {
        // An earlier request waits for a leader: this one must not overtake it.
        return Some(Flow::Retry);
    }
    let partition = routing.partition_of(slot);
    let leader = routing.leader(partition);
    let planted_stale_read = crate::planted::active(crate::planted::Bug::StaleFollowerRead)
        && !spec.is_write()
        && routing.hosts(partition);
    if planted_stale_read {
        return None;
    }
    if leader != Some(routing.me) {
        // A blocking command would hold up the one connection every forwarded request of
        // this node shares with that leader, and a WATCH belongs to the client's own
        // connection: they are redirected instead.
        let forwarding = core.config.cluster.as_ref().is_some_and(|c| c.forwarding)
            && spec.cmd != Cmd::Watch
            && !crate::blocking::is_blocking(spec, args);
        let forward_to = leader
            .and_then(|id| routing.member(id))
            .filter(|_| forwarding)
            .map(|member| member.client);
        match forward_to {
            Some(address) => forward(core, conn, idx, To::Node(&address), spec, args),
            // No leader (known) yet, as during an election: relayed once there is one.
            None if forwarding => forward(core, conn, idx, To::LeaderOf(partition), spec, args),
            None => {
                let message = redirect(slot, leader, routing);
                reply(conn, |w| w.error(&message));
            }
        }
        return Some(Flow::Next);
    }
    if !spec.is_write() {
        // A read must see the writes this connection proposed before it.
        if conn.cycle.as_ref().is_some_and(|c| c.proposed) {
            return Some(Flow::Retry);
        }
        if !routing.readable(partition, core.now) {
            reply(conn, |w| {
                w.error("TRYAGAIN This node's lease on the partition is not confirmed yet")
            });
            return Some(Flow::Next);
        }
        if spec.cmd == Cmd::Watch {
            // Read like a key: under the lease, with every acknowledged write applied.
            let count = core.shared.slot_versions.get(slot);
            conn.watched_slots.push((slot, count));
            reply(conn, |w| w.ok());
            return Some(Flow::Next);
        }
        return None;
    }
    if crate::blocking::is_blocking(spec, args) {
        // Its attempts propose the command's non-blocking form (`blocking::attempt`).
        return None;
    }
    propose(core, conn, idx, partition, slot, |batch, header| {
        batch.push(header, args.iter())
    });
    Some(Flow::Next)
}

/// In cluster mode, the partition and slot a write of `key` is proposed to.
pub fn partition_of_key(core: &Core, key: &[u8]) -> Option<(u32, u16)> {
    let routing = core.shared.routing()?;
    let slot = key_slot(key);
    Some((routing.partition_of(slot), slot))
}

/// Adds a write (or a transaction) to this turn's batch for `partition`; its reply fills a
/// part of the connection's cycle once the group has applied it.
fn propose(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    partition: u32,
    slot: u16,
    add: impl FnOnce(&mut Batch, Header),
) {
    let target = core.expect_reply(conn, idx);
    if let Some(cycle) = conn.cycle.as_mut() {
        cycle.proposed = true;
    }
    let header = Header {
        resp3: conn.resp3,
        ..Header::new(conn.db, core.now)
    };
    let (batch, targets) = core.outbox.partitions.entry(partition).or_default();
    add(batch, header);
    targets.push((target, slot));
}

/// FLUSHALL or FLUSHDB (ASYNC|SYNC) on a cluster member: as in Redis Cluster, it empties the
/// slots this node serves — each partition it leads, one after another, through the
/// partition's log, so every replica empties it at the same point.
fn flush(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let mode_ok = |a: &[u8]| a.eq_ignore_ascii_case(b"ASYNC") || a.eq_ignore_ascii_case(b"SYNC");
    if args.len() > 2 || (args.len() == 2 && !mode_ok(args.get(1))) {
        reply(conn, |w| w.error(tessera_storage::errors::SYNTAX));
        return Flow::Next;
    }
    let Some(routing) = core.shared.routing() else {
        reply(conn, |w| w.error(not_ready(core)));
        return Flow::Next;
    };
    let led: Vec<(u32, std::ops::Range<u16>)> =
        routing.led_here().map(|p| (p, routing.slots(p))).collect();
    let header = Header::new(0, core.now);
    let resp3 = conn.resp3;
    crate::dispatch::run_multi(core, conn, idx, move |_| MultiOp {
        reserve: Vec::new(),
        step: flush_each(led, header, resp3),
    })
}

/// Proposes the flush of each partition in turn; replies OK after the last (or the first
/// refusal).
fn flush_each(
    mut partitions: Vec<(u32, std::ops::Range<u16>)>,
    header: Header,
    resp3: bool,
) -> Step {
    let Some((partition, slots)) = partitions.pop() else {
        return reply_with(resp3, |w| w.ok());
    };
    let mut batch = Batch::default();
    let first_slot = slots.start;
    batch.push_flush(header, slots);
    Step::Propose(
        partition,
        first_slot,
        batch,
        Box::new(move |reply| match reply.first() {
            Some(b'-') => Step::Reply(reply),
            _ => flush_each(partitions, header, resp3),
        }),
    )
}

/// EXEC on a cluster member: the queued commands must all name keys of one slot, led here;
/// they are proposed as one transaction, applied back to back on every replica. With
/// WATCHes, the transaction carries the write counts of the watched slots, and every replica
/// runs it only if they still hold when it is applied.
fn exec(core: &mut Core, conn: &mut Conn, idx: usize) -> Flow {
    let Some(tx) = conn.tx.take() else {
        return Flow::Next;
    };
    let watched = std::mem::take(&mut conn.watched_slots);
    let (queued, aborted) = tx.into_parts();
    if aborted {
        reply(conn, |w| w.error(crate::transaction::EXEC_ABORTED));
        return Flow::Next;
    }
    if queued.is_empty() {
        // Nothing to propose: the counts are read here, under the lease, as WATCH read them.
        let led = |slot: u16| {
            core.shared
                .routing()
                .is_some_and(|r| r.readable(r.partition_of(slot), core.now))
        };
        let versions = &core.shared.slot_versions;
        let intact = watched
            .iter()
            .all(|&(slot, n)| led(slot) && versions.get(slot) == n);
        reply(conn, |w| if intact { w.array(0) } else { w.null_array() });
        return Flow::Next;
    }
    let keyless = queued.iter().find(|(spec, _)| {
        matches!(
            spec.cmd,
            Cmd::Ping | Cmd::Echo | Cmd::FlushDb | Cmd::FlushAll | Cmd::Select
        )
    });
    if let Some((spec, _)) = keyless {
        let message = format!(
            "ERR '{}' is not supported in a transaction in cluster mode",
            spec.name
        );
        reply(conn, |w| w.error(&message));
        return Flow::Next;
    }
    let requests: Vec<Vec<&[u8]>> = queued
        .iter()
        .map(|(_, args)| args.args().iter().collect())
        .collect();
    let keys = queued
        .iter()
        .zip(&requests)
        .flat_map(|((spec, args), request)| {
            spec.keys_in(&args.args()).map(move |pos| request[pos])
        });
    let slot = match one_slot(keys) {
        Ok(Some(slot)) => slot,
        Ok(None) => {
            reply(conn, |w| {
                w.error("ERR a transaction in cluster mode must name a key")
            });
            return Flow::Next;
        }
        Err(()) => {
            reply(conn, |w| w.error(CROSSSLOT));
            return Flow::Next;
        }
    };
    let Some(routing) = core.shared.routing() else {
        reply(conn, |w| w.error(not_ready(core)));
        return Flow::Next;
    };
    let partition = routing.partition_of(slot);
    let leader = routing.leader(partition);
    if leader != Some(routing.me) {
        let message = moved(slot, leader, routing);
        reply(conn, |w| w.error(&message));
        return Flow::Next;
    }
    if watched
        .iter()
        .any(|&(s, _)| routing.partition_of(s) != partition)
    {
        reply(conn, |w| {
            w.error("CROSSSLOT WATCH named keys of another partition than the transaction's")
        });
        return Flow::Next;
    }
    propose(core, conn, idx, partition, slot, |batch, header| {
        if !watched.is_empty() {
            batch.push_watch(header, &watched);
        }
        batch.push_transaction(header, requests.iter().map(|r| r.iter().copied()))
    });
    Flow::Next
}

/// Relays a request to the node leading its partition; the reply fills the request's place
/// in the connection's cycle.
/// Where a relayed request goes.
enum To<'a> {
    /// The node at this client address.
    Node(&'a str),
    /// The partition's leader, once it has one.
    LeaderOf(u32),
}

fn forward(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    to: To,
    spec: &'static CommandSpec,
    args: Args,
) {
    let shared = core.shared.clone();
    let Some(node) = shared.cluster.get() else {
        return;
    };
    let mut request = Vec::new();
    let mut writer = ReplyWriter::new(&mut request, false);
    writer.array(args.len());
    args.iter().for_each(|arg| writer.bulk(arg));
    // A keyed request may be sent on should the node asked no longer lead its partition.
    let partition = match to {
        To::LeaderOf(partition) => Some(partition),
        To::Node(_) => one_slot(spec.keys_in(&args).map(|pos| args.get(pos)))
            .ok()
            .flatten()
            .zip(shared.routing())
            .map(|(slot, routing)| routing.partition_of(slot)),
    };
    let relay = Relay {
        shared: shared.clone(),
        home: core.id,
        target: core.expect_reply(conn, idx),
        write: spec.is_write(),
        resp3: conn.resp3,
        partition,
    };
    let job = relay.job(request, RELAY_ATTEMPTS);
    match to {
        To::Node(address) => node.forward(address, conn.resp3, job),
        To::LeaderOf(partition) => {
            if let Some(cycle) = conn.cycle.as_mut() {
                cycle.held = true;
            }
            node.forward_when_led(partition, conn.resp3, job)
        }
    }
}

/// How many times a relayed request is sent on after the node asked answered that it does not
/// lead the partition (it had just given up or lost leadership).
const RELAY_ATTEMPTS: u32 = 3;

/// Where a relayed request's reply goes, and what it takes to send the request on.
struct Relay {
    shared: Arc<Shared>,
    home: usize,
    target: Target,
    write: bool,
    resp3: bool,
    partition: Option<u32>,
}

impl Relay {
    /// The request as a forwarding job: its reply (or why there is none) fills the target on
    /// the home core, unless it is a redirect or `-CLUSTERDOWN` (nothing ran there) and
    /// attempts are left: then it goes to the partition's leader once one is known.
    fn job(self, request: Vec<u8>, attempts: u32) -> Job {
        let again = (attempts > 0 && self.partition.is_some()).then(|| request.clone());
        let done = move |relayed: Result<Vec<u8>, Unrelayed>| {
            let not_led = |reply: &Vec<u8>| {
                [&b"-MOVED "[..], b"-ASK ", b"-CLUSTERDOWN "]
                    .iter()
                    .any(|prefix| reply.starts_with(prefix))
            };
            if let (Some(request), Some(partition)) = (again, self.partition) {
                if relayed.as_ref().is_ok_and(not_led) {
                    let (shared, resp3) = (self.shared.clone(), self.resp3);
                    if let Some(node) = shared.cluster.get() {
                        node.forward_when_led(partition, resp3, self.job(request, attempts - 1));
                        return;
                    }
                }
            }
            let write = self.write;
            let reply = relayed.unwrap_or_else(|failure| {
                let why = failure.why;
                error_reply(&match (write, failure.sent) {
                    (true, true) => format!("UNCERTAIN forwarding to the leader failed ({why}): the write may or may not have been applied"),
                    (_, false) => format!("TRYAGAIN forwarding to the leader failed ({why}): the request did not reach it"),
                    (false, true) => format!("TRYAGAIN forwarding to the leader failed ({why})"),
                })
            });
            let target = self.target;
            run_on(&self.shared, self.home, move |core| {
                core.deliver_reply(target, reply)
            });
        };
        Job {
            request,
            done: Box::new(done),
        }
    }
}

/// Hands this turn's proposals to their groups; each group's replies come back to this core.
pub fn submit(core: &mut Core) {
    if core.outbox.partitions.is_empty() {
        return;
    }
    let shared = core.shared.clone();
    let Some(node) = shared.cluster.get() else {
        return;
    };
    let proposals: Vec<_> = core.outbox.partitions.drain().collect();
    for (partition, (batch, targets)) in proposals {
        if crate::planted::active(crate::planted::Bug::AckBeforeCommit) {
            for (target, _) in targets {
                core.deliver_reply(target, b"+OK\r\n".to_vec());
            }
            submit_then(core, node, partition, batch, |_, _| {});
            continue;
        }
        submit_then(core, node, partition, batch, move |core, outcome| {
            answered(core, targets, outcome)
        });
    }
}

/// Proposes `batch` to its partition's group; `then` runs on this core with the outcome.
fn submit_then(
    core: &Core,
    node: &Node,
    partition: u32,
    batch: Batch,
    then: impl FnOnce(&mut Core, Outcome) + Send + 'static,
) {
    let (shared, home) = (core.shared.clone(), core.id);
    let done = move |outcome: Outcome| run_on(&shared, home, move |core| then(core, outcome));
    let done = Box::new(done);
    node.submit(partition, Submission { batch, done });
}

const NO_QUORUM: &str =
    "CLUSTERDOWN the leader has not heard from a majority of its replicas lately: the write was not run";
const UNCONFIRMED: &str =
    "UNCERTAIN the write was not committed in time (no majority of replicas reachable?): it may or may not be applied";

/// The error a client gets for a proposal its group did not apply.
fn refused(refusal: Refusal, slot: u16, routing: &Routing) -> Vec<u8> {
    let message = match refusal {
        Refusal::NotLeader(leader) => redirect(slot, leader, routing),
        Refusal::Unknown => "UNCERTAIN leadership changed before the write committed: it may or may not have been applied".into(),
        Refusal::NoQuorum => NO_QUORUM.into(),
        Refusal::Unconfirmed => UNCONFIRMED.into(),
    };
    error_reply(&message)
}

fn answered(core: &mut Core, targets: Vec<ReplyTo>, outcome: Outcome) {
    let replies = match (outcome, core.shared.routing()) {
        (Ok(replies), _) => replies,
        (Err(refusal), Some(routing)) => targets
            .iter()
            .map(|&(_, slot)| refused(refusal, slot, routing))
            .collect(),
        (Err(_), None) => return,
    };
    for ((target, _), reply) in targets.into_iter().zip(replies) {
        core.deliver_reply(target, reply);
    }
}

/// Proposes a coordinated command's write (`Step::Propose`); its reply (or refusal) goes
/// back to the command's ticket on this core.
pub fn submit_step(core: &Core, ticket: u64, partition: u32, slot: u16, batch: Batch) {
    let Some(node) = core.shared.cluster.get() else {
        return;
    };
    submit_then(core, node, partition, batch, move |core, outcome| {
        let reply = match (outcome, core.shared.routing()) {
            (Ok(mut replies), _) => replies.pop().unwrap_or_default(),
            (Err(refusal), Some(routing)) => refused(refusal, slot, routing),
            (Err(_), None) => error_reply(STARTING),
        };
        core.proposal_answered(ticket, reply);
    });
}

/// CLUSTER, READONLY, READWRITE and ASKING.
pub fn run_command(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Flow {
    let creating = spec.cmd == Cmd::Cluster && args.get(1).eq_ignore_ascii_case(b"CREATE");
    if creating && args.len() == 5 {
        return create(core, conn, idx, args);
    }
    let Some(routing) = core.shared.routing() else {
        let message = match &core.config.cluster {
            Some(_) => not_ready(core),
            None => "ERR This instance has cluster support disabled",
        };
        reply(conn, |w| w.error(message));
        return Flow::Next;
    };
    if spec.cmd != Cmd::Cluster {
        reply(conn, |w| w.ok());
        return Flow::Next;
    }
    let sub = args.get(1).to_ascii_uppercase();
    let resp3 = conn.resp3;
    match (sub.as_slice(), args.len()) {
        (b"MYID", 2) => reply(conn, |w| w.bulk(node_name(routing.me).as_bytes())),
        (b"KEYSLOT", 3) => reply(conn, |w| w.int(i64::from(key_slot(args.get(2))))),
        (b"INFO", 2) => {
            let text = info(routing, core.now);
            reply(conn, |w| w.verbatim(text.as_bytes()));
        }
        (b"NODES", 2) => {
            let text = nodes(routing);
            reply(conn, |w| w.verbatim(text.as_bytes()));
        }
        (b"SLOTS", 2) => reply(conn, |w| slots(routing, w)),
        (b"ROSTER", 2) => {
            let text = core
                .shared
                .cluster
                .get()
                .map(roster_text)
                .unwrap_or_default();
            reply(conn, |w| w.verbatim(text.as_bytes()));
        }
        (b"ADDNODE", 4) | (b"REMOVENODE", 3) => return change_roster(core, conn, idx, spec, args),
        (b"SHARDS", 2) => reply(conn, |w| shards(routing, w)),
        (b"COUNTKEYSINSLOT", 3) | (b"GETKEYSINSLOT", 4) => {
            let Some(slot) = std::str::from_utf8(args.get(2))
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .filter(|&s| (s as usize) < SLOT_COUNT)
            else {
                reply(conn, |w| w.error("ERR Invalid slot"));
                return Flow::Next;
            };
            let limit = if args.len() == 4 {
                match std::str::from_utf8(args.get(3))
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    Some(n) => Some(n),
                    None => {
                        reply(conn, |w| w.error("ERR Invalid number of keys"));
                        return Flow::Next;
                    }
                }
            } else {
                None
            };
            return crate::dispatch::run_multi(core, conn, idx, |core| {
                keys_in_slot(core, slot, limit, resp3)
            });
        }
        _ => {
            let name = String::from_utf8_lossy(args.get(1)).into_owned();
            reply(conn, |w| {
                w.error(&format!(
                    "ERR unknown subcommand or wrong number of arguments for '{name}'. Try CLUSTER HELP."
                ))
            });
        }
    }
    Flow::Next
}

/// CLUSTER CREATE partitions replicas id@host:port,...: makes a node started with only its id
/// a member of a new cluster of those nodes (`tessera cluster create` sends it to each). The
/// Raft side starts on a thread of its own (it may wait on the cores); the reply follows.
fn create(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let Some(mut config) = core.config.cluster.clone() else {
        reply(conn, |w| {
            w.error("ERR This instance has cluster support disabled")
        });
        return Flow::Next;
    };
    let (replicas, members) = match creation(&config, core.shared.port, args) {
        Ok(found) => found,
        Err(why) => {
            reply(conn, |w| w.error(&format!("ERR {why}")));
            return Flow::Next;
        }
    };
    if let Some(node) = core.shared.cluster.get() {
        // Asked again (a retried or interrupted `tessera cluster create`): the same cluster
        // is fine, another is not.
        let (roster, _) = node.roster();
        let mut asked: Vec<(u64, &str)> = members.iter().map(|m| (m.id, &*m.client)).collect();
        asked.sort_unstable();
        // The roster lists its members by id already.
        let known = roster.members.values().map(|m| (m.id, &*m.client));
        let same = node.routing.replicas == replicas && known.eq(asked);
        let message = "ERR this node is a member of another cluster already";
        reply(conn, |w| if same { w.ok() } else { w.error(message) });
        return Flow::Next;
    }
    let claimed = core.shared.creating.compare_exchange(
        false,
        true,
        std::sync::atomic::Ordering::AcqRel,
        std::sync::atomic::Ordering::Acquire,
    );
    if !config.members.is_empty() || claimed.is_err() {
        reply(conn, |w| {
            w.error("TRYAGAIN this node is starting or being created")
        });
        return Flow::Next;
    }
    (config.replicas, config.members, config.bootstrap) = (replicas, members, true);
    let (shared, home) = (core.shared.clone(), core.id);
    let target = core.expect_reply(conn, idx);
    let started = std::thread::Builder::new()
        .name("tessera-create".into())
        .spawn(move || {
            let reply = match start(&shared, &config) {
                Ok(node) => {
                    let _ = shared.cluster.set(node);
                    tracing::info!(node = config.node_id, "created the cluster");
                    b"+OK\r\n".to_vec()
                }
                Err(e) => {
                    shared
                        .creating
                        .store(false, std::sync::atomic::Ordering::Release);
                    error_reply(&format!("ERR cannot create the cluster: {e}"))
                }
            };
            run_on(&shared, home, move |core| core.deliver_reply(target, reply));
        });
    if let Err(e) = started {
        core.deliver_reply(
            target,
            error_reply(&format!("ERR cannot start a thread: {e}")),
        );
    }
    Flow::Next
}

/// The replication factor and members CLUSTER CREATE's arguments give, checked against this
/// node (its id among them at its own port, its partition count).
fn creation(config: &ClusterConfig, port: u16, args: Args) -> Result<(usize, Vec<Member>), String> {
    let number = |i: usize| std::str::from_utf8(args.get(i)).ok()?.parse::<u32>().ok();
    let members = parse_members(&String::from_utf8_lossy(args.get(4)))?;
    let (Some(partitions), Some(replicas)) = (number(2), number(3).filter(|&r| r > 0)) else {
        return Err("usage: CLUSTER CREATE partitions replicas id@host:port,...".into());
    };
    if partitions != config.partitions {
        return Err(format!(
            "this node was started with --partitions {}",
            config.partitions
        ));
    }
    match members.iter().find(|m| m.id == config.node_id) {
        Some(me) if host_port(me).1 == port => Ok((replicas as usize, members)),
        Some(me) => Err(format!(
            "node {} listens on port {port}, not {}",
            me.id, me.client
        )),
        None => Err(format!("node {} is not among the members", config.node_id)),
    }
}

/// CLUSTER ROSTER: the member list and, per partition, its leader, its voters as its leader
/// reports them and the voters placement wants; `moving` counts partitions whose voters are
/// not (or not known to be) their target. Lines of words, for people and for
/// `tessera cluster status`.
fn roster_text(node: &Node) -> String {
    let routing = &node.routing;
    let (roster, _) = node.roster();
    let mut text = format!(
        "partitions {}\nreplicas {}\n{}",
        routing.partitions,
        routing.replicas,
        roster.describe_members()
    );
    let ids = |ids: &[u64]| {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        ids.join(",")
    };
    let group = routing.roster_group();
    let leader = routing.leader(group).map_or("-".into(), |l| l.to_string());
    text.push_str(&format!(
        "roster leader {leader} voters {}\n",
        ids(&routing.voters(group))
    ));
    let mut moving = 0;
    for p in 0..routing.partitions {
        let target = roster.target(p, routing.replicas);
        let mut voters = routing.voters(p);
        voters.sort_unstable();
        let mut wanted = target.clone();
        wanted.sort_unstable();
        if voters != wanted {
            moving += 1;
        }
        let leader = routing.leader(p).map_or("-".into(), |l| l.to_string());
        text.push_str(&format!(
            "partition {p} leader {leader} voters {} target {}\n",
            ids(&voters),
            ids(&target)
        ));
    }
    text.push_str(&format!("moving {moving}\n"));
    text
}

/// What CLUSTER ADDNODE or REMOVENODE asks of the roster: a change, nothing (it is so
/// already), or why not.
fn roster_change(roster: &Roster, args: Args) -> Result<Option<Change>, String> {
    let id_text = String::from_utf8_lossy(args.get(2));
    if args.len() == 4 {
        let address = String::from_utf8_lossy(args.get(3));
        let mut parsed = parse_members(&format!("{id_text}@{address}"))?;
        let member = parsed.remove(0);
        return match roster.members.get(&member.id) {
            Some(known) if known.client != member.client => Err(format!(
                "node {} is a member at {}; remove it first",
                known.id, known.client
            )),
            Some(_) if !roster.leaving.contains(&member.id) => Ok(None),
            _ => Ok(Some(Change::Add(member))),
        };
    }
    let id: u64 = id_text
        .parse()
        .map_err(|_| format!("'{id_text}' is not a node id"))?;
    if !roster.members.contains_key(&id) {
        return Err(format!("node {id} is not a member"));
    }
    if roster.leaving.contains(&id) {
        return Ok(None);
    }
    if roster.active().len() == 1 {
        return Err("the last member cannot be removed".into());
    }
    Ok(Some(Change::Remove(id)))
}

/// CLUSTER ADDNODE id host:port and CLUSTER REMOVENODE id: proposed to the roster's group
/// when this node leads it, relayed to its leader otherwise; answered once committed.
fn change_roster(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Flow {
    let shared = core.shared.clone();
    let Some(node) = shared.cluster.get() else {
        reply(conn, |w| w.error(STARTING));
        return Flow::Next;
    };
    let (roster, settled) = node.roster();
    if !settled {
        reply(conn, |w| {
            w.error("TRYAGAIN the cluster's member list is not settled yet")
        });
        return Flow::Next;
    }
    let change = match roster_change(&roster, args) {
        Ok(Some(change)) => change,
        Ok(None) => {
            reply(conn, |w| w.ok());
            return Flow::Next;
        }
        Err(why) => {
            reply(conn, |w| w.error(&format!("ERR {why}")));
            return Flow::Next;
        }
    };
    let routing = &node.routing;
    let group = routing.roster_group();
    let leader = routing.leader(group);
    if leader == Some(routing.me) {
        let target = core.expect_reply(conn, idx);
        submit_then(core, node, group, change.batch(), move |core, outcome| {
            let reply = match outcome {
                Ok(_) => b"+OK\r\n".to_vec(),
                Err(Refusal::NotLeader(_)) => error_reply(
                    "TRYAGAIN the member list's leader changed before the change was proposed",
                ),
                Err(Refusal::Unknown) => error_reply(
                    "UNCERTAIN the member list's leader changed: the change may or may not have been made",
                ),
                Err(Refusal::NoQuorum) => error_reply(NO_QUORUM),
                Err(Refusal::Unconfirmed) => error_reply(UNCONFIRMED),
            };
            core.deliver_reply(target, reply);
        });
        return Flow::Next;
    }
    match leader.and_then(|id| routing.member(id)) {
        Some(leader) => forward(core, conn, idx, To::Node(&leader.client), spec, args),
        None => reply(conn, |w| {
            w.error("CLUSTERDOWN the member list has no leader")
        }),
    }
    Flow::Next
}

/// COUNTKEYSINSLOT (no limit) or GETKEYSINSLOT, asked of the slot's owner core (database 0,
/// the only one in a cluster).
fn keys_in_slot(core: &Core, slot: u16, limit: Option<usize>, resp3: bool) -> MultiOp {
    let owner = core.shared.owner(slot);
    let now = core.now;
    let work = crate::admin::work(move |core| {
        let Some(ks) = core.store.keyspace(0) else {
            return (0usize, Vec::new());
        };
        let keys: Vec<Vec<u8>> = match limit {
            Some(n) => ks
                .slot_entries(slot, now)
                .take(n)
                .map(|e| e.key().to_vec())
                .collect(),
            None => Vec::new(),
        };
        (ks.slot_entries(slot, now).count(), keys)
    });
    let combine = move |mut results: Vec<Box<dyn std::any::Any + Send>>| {
        let (count, keys) = results
            .pop()
            .and_then(|r| r.downcast::<(usize, Vec<Vec<u8>>)>().ok())
            .map_or((0, Vec::new()), |b| *b);
        reply_with(resp3, |w| match limit {
            None => w.int(count as i64),
            Some(_) => {
                w.array(keys.len());
                keys.iter().for_each(|k| w.bulk(k));
            }
        })
    };
    MultiOp {
        reserve: Vec::new(),
        step: Step::Calls(vec![(owner, work)], Box::new(combine)),
    }
}

/// Contiguous slot ranges each led by one node, with that leader.
fn led_ranges(routing: &Routing) -> Vec<(std::ops::Range<u16>, u64)> {
    let mut ranges: Vec<(std::ops::Range<u16>, u64)> = Vec::new();
    for p in 0..routing.partitions {
        let Some(leader) = routing.leader(p) else {
            continue;
        };
        let slots = routing.slots(p);
        match ranges.last_mut() {
            Some((range, l)) if *l == leader && range.end == slots.start => range.end = slots.end,
            _ => ranges.push((slots, leader)),
        }
    }
    ranges
}

fn host_port(member: &Member) -> (&str, u16) {
    let (host, port) = member
        .client
        .rsplit_once(':')
        .unwrap_or((&member.client, "0"));
    (host, port.parse().unwrap_or(0))
}

/// CLUSTER INFO. A slot counts as served once its partition has a leader and, when that is
/// this node, the leader's lease is confirmed (it can answer reads).
fn info(routing: &Routing, now: u64) -> String {
    let led: usize = (0..routing.partitions)
        .filter(|&p| match routing.leader(p) {
            Some(leader) => leader != routing.me || routing.readable(p, now),
            None => false,
        })
        .map(|p| routing.slots(p).len())
        .sum();
    let state = if led == SLOT_COUNT { "ok" } else { "fail" };
    let leaders: std::collections::BTreeSet<u64> = (0..routing.partitions)
        .filter_map(|p| routing.leader(p))
        .collect();
    format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{SLOT_COUNT}\r\n\
         cluster_slots_ok:{led}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\n\
         cluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:1\r\n\
         cluster_my_epoch:1\r\ncluster_partitions:{}\r\ncluster_partitions_led_here:{}\r\n",
        SLOT_COUNT - led,
        routing.members().len(),
        leaders.len(),
        routing.partitions,
        routing.led_here().count(),
    )
}

/// CLUSTER NODES: every member as a master of the slots whose partitions it leads.
fn nodes(routing: &Routing) -> String {
    let ranges = led_ranges(routing);
    let mut text = String::new();
    for m in &routing.members() {
        let (host, port) = host_port(m);
        let flags = if m.id == routing.me {
            "myself,master"
        } else {
            "master"
        };
        text.push_str(&format!(
            "{} {host}:{port}@{} {flags} - 0 0 1 connected",
            node_name(m.id),
            port + RAFT_PORT_OFFSET
        ));
        for (range, _) in ranges.iter().filter(|(_, l)| *l == m.id) {
            if range.len() == 1 {
                text.push_str(&format!(" {}", range.start));
            } else {
                text.push_str(&format!(" {}-{}", range.start, range.end - 1));
            }
        }
        text.push('\n');
    }
    text
}

fn write_node(w: &mut ReplyWriter, member: &Member) {
    let (host, port) = host_port(member);
    w.array(3);
    w.bulk(host.as_bytes());
    w.int(i64::from(port));
    w.bulk(node_name(member.id).as_bytes());
}

/// CLUSTER SLOTS: each range with its leader alone. Listing the followers as replicas would
/// be true, but clients take a node listed as a replica anywhere for a replica everywhere
/// (and would send it no FLUSHALL, or reads it would redirect); replica reads come later.
fn slots(routing: &Routing, w: &mut ReplyWriter) {
    let ranges = led_ranges(routing);
    w.array(ranges.len());
    for (range, leader) in ranges {
        w.array(3);
        w.int(i64::from(range.start));
        w.int(i64::from(range.end - 1));
        match routing.member(leader) {
            Some(m) => write_node(w, &m),
            None => w.null(),
        }
    }
}

/// CLUSTER SHARDS: each partition as a shard of its replicas, the leader as its master.
fn shards(routing: &Routing, w: &mut ReplyWriter) {
    w.array(routing.partitions as usize);
    for p in 0..routing.partitions {
        let slots = routing.slots(p);
        let leader = routing.leader(p);
        w.map(2);
        w.bulk(b"slots");
        w.array(2);
        w.int(i64::from(slots.start));
        w.int(i64::from(slots.end - 1));
        w.bulk(b"nodes");
        let mut replicas = routing.voters(p);
        if replicas.is_empty() {
            // No leader has reported yet: placement's choice stands in.
            replicas = routing.target(p);
        }
        let members: Vec<Member> = replicas
            .into_iter()
            .filter_map(|id| routing.member(id))
            .collect();
        w.array(members.len());
        for m in members {
            let (host, port) = host_port(&m);
            let role: &[u8] = if Some(m.id) == leader {
                b"master"
            } else {
                b"replica"
            };
            w.map(7);
            w.bulk(b"id");
            w.bulk(node_name(m.id).as_bytes());
            w.bulk(b"port");
            w.int(i64::from(port));
            w.bulk(b"ip");
            w.bulk(host.as_bytes());
            w.bulk(b"endpoint");
            w.bulk(host.as_bytes());
            w.bulk(b"role");
            w.bulk(role);
            w.bulk(b"replication-offset");
            w.int(0);
            w.bulk(b"health");
            w.bulk(if leader.is_some() {
                b"online"
            } else {
                b"loading"
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cluster::roster::Roster;
    use tessera_cluster::routing::Led;

    /// Node 1's view of a cluster of three nodes with two replicas per partition.
    fn routing() -> Routing {
        let mut roster = Roster::default();
        roster.apply(Change::Create(
            parse_members("1@127.0.0.1:7001,2@127.0.0.1:7002,3@127.0.0.1:7003").unwrap(),
        ));
        Routing::new(1, &roster, 64, 2)
    }

    #[test]
    fn a_replica_a_partition_is_leaving_asks_and_every_other_redirect_moves() {
        let routing = routing();
        let leaving = (0..64).find(|&p| !routing.target(p).contains(&1)).unwrap();
        let staying = (0..64).find(|&p| routing.target(p).contains(&1)).unwrap();
        let slot_of = |p: u32| routing.slots(p).start;
        let mut voters = routing.target(staying);
        voters.sort_unstable();
        routing.learn(&[
            Led {
                group: leaving,
                leader: 2,
                voters: vec![1, 2],
                since: 5,
            },
            Led {
                group: staying,
                leader: 3,
                voters,
                since: 5,
            },
        ]);
        let (s, t) = (slot_of(leaving), slot_of(staying));
        let leader_of = |p| routing.leader(p);
        assert_eq!(
            redirect(s, leader_of(leaving), &routing),
            format!("ASK {s} 127.0.0.1:7002")
        );
        assert_eq!(
            redirect(t, leader_of(staying), &routing),
            format!("MOVED {t} 127.0.0.1:7003")
        );
        // Once the leader reports the move done, the slot has moved for good.
        let done = routing.target(leaving);
        routing.learn(&[Led {
            group: leaving,
            leader: 2,
            voters: done,
            since: 9,
        }]);
        assert!(redirect(s, leader_of(leaving), &routing).starts_with("MOVED"));
        assert!(redirect(s, None, &routing).starts_with("CLUSTERDOWN"));
    }
}
