//! One core's event loop. A core owns its connections, the partitions of its slots (`Store`)
//! and its poller; nothing it owns is touched by another thread. Requests for keys owned by
//! another core travel there in per-connection batches and their replies come back the same
//! way; commands that span cores are coordinated by `multi`.

use crate::config::Config;
use crate::conn::{Conn, Cycle};
use crate::dispatch::{self, Flow};
use crate::multi::{MultiOp, Step};
use crate::net::epoll::Epoll;
use crate::net::socket;
use crate::net::{Event, Poller};
use crate::server::{unix_ms, Shared};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tessera_protocol::command::lookup;
use tessera_protocol::{key_slot, Args, CommandSpec, ReplyWriter, RequestParser};
use tessera_storage::keyspace::PREFETCH_BATCH;
use tessera_storage::{Request, Store};

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
/// Unsent output beyond which a connection's input is left unread until the client catches
/// up: a client that never reads its replies costs bounded memory.
const OUTPUT_PAUSE: usize = 1024 * 1024;
/// Replies one connection may have outstanding across cores before the rest of its pipeline
/// waits. With the output pause this bounds a connection's reply memory to about 1 MB plus 64
/// replies, however many requests it sends without reading.
const MAX_PARTS: usize = 64;
/// Buffered input below which looking ahead to prefetch is not worth it (a lone request).
const PREFETCH_MIN_INPUT: usize = 256;
/// Time the active expiry cycle may take out of each tick, as Redis's 25%.
const EXPIRE_BUDGET_PERCENT: u64 = 25;

/// Work run on another core on behalf of a coordinator; its result travels back as `Any`.
pub type Work = Box<dyn FnOnce(&mut Core) -> Box<dyn Any + Send> + Send>;

/// The reply a pending request will fill: connection slot, its id (slots are reused), the
/// cycle and the part within it.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub idx: usize,
    pub id: u64,
    pub cycle: u64,
    pub part: usize,
}

/// Single-key requests of one connection for keys another core owns. Arguments are copied
/// into one buffer.
pub struct Batch {
    from: usize,
    conn: Target,
    data: Vec<u8>,
    spans: Vec<Range<usize>>,
    cmds: Vec<BatchCmd>,
}

struct BatchCmd {
    spec: &'static CommandSpec,
    db: u16,
    resp3: bool,
    args: Range<usize>,
    part: usize,
}

/// The replies to a `Batch`, in one buffer.
pub struct BatchReplies {
    conn: Target,
    data: Vec<u8>,
    parts: Vec<(usize, Range<usize>)>,
}

pub enum Msg {
    Batch(Box<Batch>),
    Replies(Box<BatchReplies>),
    /// Runs `work` here and sends the result to `from`; `txn` is set when it belongs to a
    /// multi-core command that has reserved this core.
    Call {
        from: usize,
        ticket: u64,
        index: usize,
        txn: Option<u64>,
        work: Work,
    },
    CallDone {
        ticket: u64,
        index: usize,
        result: Box<dyn Any + Send>,
    },
    /// Asks this core to run nothing but `txn`'s calls until released.
    Reserve {
        from: usize,
        ticket: u64,
        txn: u64,
    },
    Reserved {
        ticket: u64,
    },
    Release {
        txn: u64,
    },
    /// A new connection handed over to balance the cores.
    Adopt {
        fd: i32,
        addr: String,
    },
    /// Work handed over by the Raft side: applying committed proposals, or answering them.
    Run(Box<dyn FnOnce(&mut Core) + Send>),
    /// A coordinated command's reply, handed to its connection on the next turn: the
    /// command may finish while its connection is still being served and out of the table.
    Deliver {
        target: Target,
        reply: Vec<u8>,
    },
}

/// A multi-core command this core coordinates.
struct Pending {
    target: Target,
    /// Cores reserved (or to reserve), ascending: the global order that rules out deadlock.
    reserve: Vec<usize>,
    reserved: usize,
    txn: u64,
    step: Option<Step>,
    /// The connection whose blocking command this is an attempt of.
    blocked: Option<u64>,
    cont: Option<crate::multi::Continuation>,
    results: Vec<Option<Box<dyn Any + Send>>>,
    outstanding: usize,
}

/// Counters a core keeps for INFO.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    pub commands: u64,
    pub net_input: u64,
    pub net_output: u64,
}

/// The ticket of a call whose result nobody waits for.
const NO_TICKET: u64 = u64::MAX;

pub struct Core {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub store: Store,
    /// The loop iteration's clock, Unix ms.
    pub now: u64,
    pub conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    poller: Epoll,
    events: Vec<Event>,
    ready: Vec<usize>,
    dirty: Vec<usize>,
    /// Connections left unserved while this core is reserved or its outbox is full.
    stalled: Vec<usize>,
    outgoing: Vec<Vec<Msg>>,
    overflow: Vec<VecDeque<Msg>>,
    loopback: VecDeque<Msg>,
    batches: Vec<Option<Box<Batch>>>,
    /// Parses ahead of the request loop for prefetching; never drives execution.
    lookahead: RequestParser,
    pending: HashMap<u64, Pending>,
    /// WATCH records this core keeps for connections (of any core), by connection id.
    pub watches: HashMap<u64, Vec<crate::transaction::WatchRecord>>,
    /// The subscriptions of this core's connections.
    pub pubsub: crate::pubsub::Registry,
    /// This core's connections in blocking commands.
    pub blocked: crate::blocking::BlockedClients,
    /// Blocked clients (of any core) waiting on keys this core owns.
    pub waiters: crate::blocking::Waiters,
    /// Writes proposed this turn, sent to their Raft groups at its end.
    pub outbox: crate::cluster::Outbox,
    next_ticket: u64,
    next_cycle: u64,
    reserved_by: Option<u64>,
    deferred: VecDeque<Msg>,
    pub config: Config,
    config_epoch: u64,
    pub stats: CoreStats,
    rng: u64,
    next_tick: u64,
    accepting: bool,
    quiescent: bool,
}

impl Core {
    pub fn new(id: usize, shared: Arc<Shared>) -> std::io::Result<Core> {
        let config = shared.config.read().map(|c| c.clone()).unwrap_or_default();
        let mut store = Store::new(config.databases);
        store.max_bulk_len = config.proto_max_bulk_len as usize;
        store.limits = config.encodings;
        // A cluster member's store loses expired keys only through its log (`cluster::expire`).
        store.set_keeps_expired(config.cluster.is_some());
        let cores = shared.cores;
        let now = unix_ms();
        Ok(Core {
            id,
            store,
            now,
            conns: Vec::new(),
            free_slots: Vec::new(),
            poller: Epoll::new()?,
            events: Vec::with_capacity(1024),
            ready: Vec::new(),
            dirty: Vec::new(),
            stalled: Vec::new(),
            outgoing: (0..cores).map(|_| Vec::new()).collect(),
            overflow: (0..cores).map(|_| VecDeque::new()).collect(),
            loopback: VecDeque::new(),
            batches: (0..cores).map(|_| None).collect(),
            lookahead: RequestParser::new(config.proto_max_bulk_len as usize),
            pending: HashMap::new(),
            watches: HashMap::new(),
            pubsub: Default::default(),
            blocked: Default::default(),
            waiters: Default::default(),
            outbox: Default::default(),
            next_ticket: 1,
            next_cycle: 1,
            reserved_by: None,
            deferred: VecDeque::new(),
            config,
            config_epoch: 0,
            stats: CoreStats::default(),
            rng: now ^ ((id as u64 + 1) << 32) | 1,
            next_tick: now,
            accepting: true,
            quiescent: false,
            shared,
        })
    }

    /// A pseudo-random number (xorshift); for choices that are not replicated.
    pub fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub fn run(mut self) {
        let mailbox_fd = self.shared.mailboxes[self.id].waker_fd();
        if let Err(e) = self.poller.add_reader(self.shared.listener, LISTENER, true) {
            tracing::error!(core = self.id, error = %e, "cannot watch the listener");
        }
        if let Err(e) = self.poller.add_reader(mailbox_fd, WAKER, false) {
            tracing::error!(core = self.id, error = %e, "cannot watch the mailbox");
            return;
        }
        loop {
            let busy = !self.ready.is_empty()
                || !self.loopback.is_empty()
                || self.overflow.iter().any(|q| !q.is_empty());
            let wake_at = self
                .blocked
                .next_deadline()
                .map_or(self.next_tick, |at| at.min(self.next_tick));
            let mut timeout = if busy {
                0
            } else {
                wake_at.saturating_sub(unix_ms()).min(1000) as i32
            };
            let mailbox = &self.shared.mailboxes[self.id];
            if timeout > 0 && !mailbox.prepare_sleep() {
                timeout = 0;
            }
            self.events.clear();
            if let Err(e) = self.poller.wait(&mut self.events, timeout) {
                tracing::error!(core = self.id, error = %e, "poller failed");
                break;
            }
            self.shared.mailboxes[self.id].awake();
            self.now = unix_ms();
            self.refresh_config();
            let events = std::mem::take(&mut self.events);
            for ev in &events {
                match ev.token {
                    LISTENER => self.accept(),
                    WAKER => self.shared.mailboxes[self.id].drain_waker(),
                    idx => self.on_socket_event(idx as usize, ev),
                }
            }
            self.events = events;
            self.drain_mailbox();
            self.serve_ready();
            if !self.blocked.is_empty() {
                crate::blocking::expire(&mut self);
            }
            crate::blocking::wake_ready(&mut self);
            let events = self.store.take_events();
            crate::pubsub::announce(&mut self, events);
            crate::cluster::submit(&mut self);
            self.send_outgoing();
            self.flush_dirty();
            if self.now >= self.next_tick {
                self.tick();
            }
            if self.shared.shutdown.load(Ordering::Relaxed) && self.shutdown_step() {
                break;
            }
        }
        self.close_all();
    }

    fn on_socket_event(&mut self, idx: usize, ev: &Event) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if ev.readable || ev.closed {
            conn.readable = true;
            self.ready.push(idx);
        }
        if ev.closed {
            // A blocked client that hangs up gives up its wait (as in Redis, a half-closed
            // one too: it could never send anything else).
            if self.blocked.contains(conn.id) {
                return self.close_connection(idx);
            }
            // A paused connection is not read, so find out by writing whether the peer is gone.
            self.dirty.push(idx);
        }
        if ev.writable {
            conn.writable = true;
            self.dirty.push(idx);
        }
    }

    // ---- connections ----

    fn accept(&mut self) {
        if !self.accepting {
            return;
        }
        loop {
            match socket::accept(self.shared.listener, self.config.tcp_keepalive) {
                Ok(Some((fd, addr))) => self.place_connection(fd, addr),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    break;
                }
            }
        }
    }

    /// Keeps a new connection here, or hands it to the least loaded core when this one has
    /// clearly more than its share.
    fn place_connection(&mut self, fd: i32, addr: String) {
        let shared = &self.shared;
        if shared.clients.load(Ordering::Relaxed) >= self.config.maxclients {
            socket::write(fd, b"-ERR max number of clients reached\r\n");
            socket::close(fd);
            shared.rejected_connections.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shared.clients.fetch_add(1, Ordering::Relaxed);
        shared.connections_received.fetch_add(1, Ordering::Relaxed);
        let loads: Vec<usize> = shared
            .core_clients
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let (least, &min) = loads
            .iter()
            .enumerate()
            .min_by_key(|(_, &n)| n)
            .unwrap_or((self.id, &0));
        if least != self.id && loads[self.id] > min {
            shared.core_clients[least].fetch_add(1, Ordering::Relaxed);
            self.send(least, Msg::Adopt { fd, addr });
        } else {
            shared.core_clients[self.id].fetch_add(1, Ordering::Relaxed);
            self.add_connection(fd, addr);
        }
    }

    fn add_connection(&mut self, fd: i32, addr: String) {
        let id = self.shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(
            fd,
            id,
            addr,
            self.now,
            self.config.proto_max_bulk_len as usize,
            self.config.requirepass.is_empty(),
        );
        let idx = match self.free_slots.pop() {
            Some(idx) => {
                self.conns[idx] = Some(conn);
                idx
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        if let Err(e) = self.poller.add_socket(fd, idx as u64) {
            tracing::warn!(error = %e, "cannot watch a new connection");
            self.close_connection(idx);
            return;
        }
        self.ready.push(idx);
    }

    pub fn close_connection(&mut self, idx: usize) {
        if let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) {
            crate::transaction::forget_watches(self, &mut conn);
            crate::blocking::finish(self, conn.id);
            crate::pubsub::forget(self, &mut conn, idx);
            socket::close(conn.fd);
            self.free_slots.push(idx);
            self.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shared.core_clients[self.id].fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn serve_ready(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        ready.sort_unstable();
        ready.dedup();
        for &idx in &ready {
            self.serve(idx);
        }
        ready.clear();
        if self.ready.is_empty() {
            self.ready = ready;
        }
    }

    /// Reads what a connection sent and runs its requests, unless it has to wait.
    fn serve(&mut self, idx: usize) {
        let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        let held_back = self.reserved_by.is_some() || self.overflow.iter().any(|q| !q.is_empty());
        if held_back {
            self.stalled.push(idx);
        } else if conn.cycle.is_none()
            && !self.shared.shutdown.load(Ordering::Relaxed)
            && conn.pending_output() < OUTPUT_PAUSE
        {
            let read = conn.fill();
            self.stats.net_input += read as u64;
            if read > 0 {
                conn.last_active_ms = self.now;
            }
            if conn.pending_input() as u64 > self.config.client_query_buffer_limit {
                tracing::warn!(client = conn.id, addr = %conn.addr, "closing client that reached max query buffer length");
                conn.dead = true;
            }
            self.run_requests(&mut conn, idx);
            if conn.cycle.is_none()
                && conn.readable
                && !conn.dead
                && conn.pending_output() < OUTPUT_PAUSE
            {
                self.ready.push(idx);
            }
        }
        if conn.pending_output() > 0 || conn.dead || conn.close_after_reply {
            self.dirty.push(idx);
        }
        self.conns[idx] = Some(conn);
    }

    /// Parses and runs requests from the connection's buffer until it is empty or a request
    /// must wait for other cores.
    fn run_requests(&mut self, conn: &mut Conn, idx: usize) {
        let rbuf = std::mem::take(&mut conn.rbuf);
        let mut parser = std::mem::take(&mut conn.parser);
        let mut pos = conn.rpos;
        let mut prefetched_to = pos;
        // Stop at the output pause too: requests already buffered must not pile up replies
        // for a client that is not reading them.
        while !conn.dead && !conn.close_after_reply && conn.pending_output() < OUTPUT_PAUSE {
            if pos >= prefetched_to && rbuf.len() - pos >= PREFETCH_MIN_INPUT {
                prefetched_to = pos + self.prefetch_ahead(&rbuf[pos..], conn.db);
            }
            if conn
                .cycle
                .as_ref()
                .is_some_and(|c| c.parts.len() >= MAX_PARTS)
            {
                break;
            }
            // AUTH, RESET or CONFIG SET requirepass may have changed this since the last one.
            parser.set_unauthenticated(!conn.authenticated && !self.config.requirepass.is_empty());
            let input = &rbuf[pos..];
            match parser.parse(input) {
                Ok(None) => break,
                Err(e) => {
                    dispatch::reply(conn, |w| w.error(&e.to_string()));
                    tracing::debug!(client = conn.id, error = %e, "protocol error");
                    conn.close_after_reply = true;
                    pos = rbuf.len();
                    break;
                }
                Ok(Some(n)) => {
                    let args = parser.args(input);
                    if args.is_empty() {
                        pos += n;
                        continue;
                    }
                    match dispatch::dispatch(self, conn, idx, args) {
                        Flow::Next => pos += n,
                        Flow::Wait => {
                            pos += n;
                            break;
                        }
                        Flow::Retry => break,
                    }
                }
            }
        }
        conn.rbuf = rbuf;
        conn.parser = parser;
        conn.rpos = pos;
        self.send_batches();
    }

    /// Looks ahead over buffered requests and prefetches the keys this core is about to look
    /// up, so that a pipeline's cache misses overlap instead of queueing one behind another.
    /// Returns how many bytes of input it covered.
    fn prefetch_ahead(&mut self, input: &[u8], db: usize) -> usize {
        let mut ranges = [(0usize, 0usize); PREFETCH_BATCH];
        let mut count = 0;
        let mut pos = 0;
        self.lookahead.reset();
        while count < PREFETCH_BATCH && input.get(pos) == Some(&b'*') {
            let Ok(Some(n)) = self.lookahead.parse(&input[pos..]) else {
                break;
            };
            let args = self.lookahead.args(&input[pos..]);
            let single_key = args.len() >= 2
                && lookup(args.get(0))
                    .is_some_and(|spec| spec.first_key == 1 && spec.last_key == 1);
            if single_key {
                let key = args.get(1);
                if self.shared.cores == 1 || self.shared.owner(key_slot(key)) == self.id {
                    ranges[count] = (key.as_ptr() as usize - input.as_ptr() as usize, key.len());
                    count += 1;
                }
            }
            pos += n;
        }
        if count > 1 {
            let mut keys: [&[u8]; PREFETCH_BATCH] = [&[]; PREFETCH_BATCH];
            for (slot, &(start, len)) in keys.iter_mut().zip(&ranges[..count]) {
                *slot = &input[start..start + len];
            }
            self.store.db(db).prefetch(&keys[..count]);
        }
        pos.max(1)
    }

    // ---- local, remote and multi-core execution ----

    /// Runs a key command on this core's store, replying into the connection.
    pub fn execute_local(&mut self, conn: &mut Conn, spec: &'static CommandSpec, args: Args) {
        let start = conn.out_len();
        let req = Request {
            spec,
            args,
            db: conn.db,
            now: self.now,
        };
        let resp3 = conn.resp3;
        self.store
            .execute(&req, &mut ReplyWriter::new(conn.out(), resp3));
        conn.commit(start);
    }

    /// Queues a key command for the core that owns its keys.
    pub fn execute_remote(
        &mut self,
        conn: &mut Conn,
        idx: usize,
        owner: usize,
        spec: &'static CommandSpec,
        args: Args,
    ) {
        let target = self.expect_reply(conn, idx);
        let part = target.part;
        let batch = self.batches[owner].get_or_insert_with(|| {
            Box::new(Batch {
                from: 0,
                conn: target,
                data: Vec::new(),
                spans: Vec::new(),
                cmds: Vec::new(),
            })
        });
        batch.from = self.id;
        let first = batch.spans.len();
        for arg in args.iter() {
            let start = batch.data.len();
            batch.data.extend_from_slice(arg);
            batch.spans.push(start..batch.data.len());
        }
        let db = conn.db as u16;
        batch.cmds.push(BatchCmd {
            spec,
            db,
            resp3: conn.resp3,
            args: first..batch.spans.len(),
            part,
        });
    }

    /// Adds a reply that will arrive later to the connection's cycle (opening one if needed).
    pub fn expect_reply(&mut self, conn: &mut Conn, idx: usize) -> Target {
        let cycle_id = self.next_cycle;
        let cycle = conn.cycle.get_or_insert_with(|| Cycle::new(cycle_id));
        if cycle.id == cycle_id {
            self.next_cycle += 1;
        }
        Target {
            idx,
            id: conn.id,
            cycle: cycle.id,
            part: cycle.expect(),
        }
    }

    fn send_batches(&mut self) {
        for owner in 0..self.batches.len() {
            if let Some(batch) = self.batches[owner].take() {
                self.send(owner, Msg::Batch(batch));
            }
        }
    }

    /// Starts a multi-core command for the connection; its reply becomes the cycle's one part.
    pub fn start_multi(&mut self, conn: &mut Conn, idx: usize, op: MultiOp) {
        let target = self.open_cycle(conn, idx);
        self.launch(target, op, None);
    }

    /// Opens a reply cycle expecting one part on the connection; returns where it goes.
    pub fn open_cycle(&mut self, conn: &mut Conn, idx: usize) -> Target {
        let cycle_id = self.next_cycle;
        self.next_cycle += 1;
        let mut cycle = Cycle::new(cycle_id);
        let part = cycle.expect();
        conn.cycle = Some(cycle);
        Target {
            idx,
            id: conn.id,
            cycle: cycle_id,
            part,
        }
    }

    /// Runs a coordinated command whose reply goes to `target`; `blocked` names the
    /// connection when it is an attempt of a blocking command.
    pub fn launch(&mut self, target: Target, op: MultiOp, blocked: Option<u64>) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let txn = ((self.id as u64) << 48) | ticket;
        let first_core = op.reserve.first().copied();
        self.pending.insert(
            ticket,
            Pending {
                target,
                reserve: op.reserve,
                reserved: 0,
                txn,
                step: Some(op.step),
                blocked,
                cont: None,
                results: Vec::new(),
                outstanding: 0,
            },
        );
        match first_core {
            Some(core) => self.send(
                core,
                Msg::Reserve {
                    from: self.id,
                    ticket,
                    txn,
                },
            ),
            None => self.advance(ticket),
        }
    }

    /// Moves a coordinated command on: sends its next calls, or delivers its reply.
    fn advance(&mut self, ticket: u64) {
        loop {
            let Some(p) = self.pending.get_mut(&ticket) else {
                return;
            };
            match p.step.take() {
                Some(Step::Calls(calls, cont)) => {
                    if calls.is_empty() {
                        p.step = Some(cont(Vec::new()));
                        continue;
                    }
                    p.cont = Some(cont);
                    p.results = calls.iter().map(|_| None).collect();
                    p.outstanding = calls.len();
                    let txn = (!p.reserve.is_empty()).then_some(p.txn);
                    for (index, (core, work)) in calls.into_iter().enumerate() {
                        self.send(
                            core,
                            Msg::Call {
                                from: self.id,
                                ticket,
                                index,
                                txn,
                                work,
                            },
                        );
                    }
                    return;
                }
                Some(Step::Propose(partition, slot, batch, then)) => {
                    p.cont = Some(Box::new(move |mut results| {
                        then(results.pop().map(crate::multi::bytes).unwrap_or_default())
                    }));
                    p.results = vec![None];
                    p.outstanding = 1;
                    crate::cluster::submit_step(self, ticket, partition, slot, batch);
                    return;
                }
                Some(end @ (Step::Reply(_) | Step::Park)) => {
                    let Some(p) = self.pending.remove(&ticket) else {
                        return;
                    };
                    for &core in &p.reserve {
                        self.send(core, Msg::Release { txn: p.txn });
                    }
                    match (end, p.blocked) {
                        (Step::Reply(bytes), blocked) => {
                            if let Some(conn) = blocked {
                                crate::blocking::finish(self, conn);
                            }
                            self.deliver_reply(p.target, bytes);
                        }
                        (_, Some(conn)) => crate::blocking::parked(self, conn),
                        (_, None) => {}
                    }
                    return;
                }
                None => return,
            }
        }
    }

    /// Hands a coordinated command's reply to its connection on the next turn.
    pub fn deliver_reply(&mut self, target: Target, reply: Vec<u8>) {
        self.loopback.push_back(Msg::Deliver { target, reply });
    }

    /// Hands replies to the connection they belong to, if it is still there.
    fn deliver(
        &mut self,
        target: Target,
        data: Vec<u8>,
        parts: impl IntoIterator<Item = (usize, Range<usize>)>,
    ) {
        let Some(conn) = self.conns.get_mut(target.idx).and_then(Option::as_mut) else {
            return;
        };
        if conn.id != target.id {
            return;
        }
        let Some(cycle) = conn.cycle.as_mut().filter(|c| c.id == target.cycle) else {
            return;
        };
        cycle.fill(data, parts);
        if cycle.waiting == 0 {
            if let Some(cycle) = conn.cycle.take() {
                cycle.drain_into(&mut conn.wbuf);
            }
            self.dirty.push(target.idx);
            self.ready.push(target.idx);
        }
    }

    // ---- messages ----

    /// Has a connection's output written at the end of this turn.
    pub fn mark_dirty(&mut self, idx: usize) {
        self.dirty.push(idx);
    }

    /// Runs `work` on core `to` without waiting for its result.
    pub fn call_and_forget(&mut self, to: usize, work: Work) {
        let msg = Msg::Call {
            from: self.id,
            ticket: NO_TICKET,
            index: 0,
            txn: None,
            work,
        };
        self.send(to, msg);
    }

    pub fn send(&mut self, to: usize, msg: Msg) {
        if to == self.id {
            self.loopback.push_back(msg);
        } else {
            self.outgoing[to].push(msg);
        }
    }

    fn send_outgoing(&mut self) {
        for to in 0..self.outgoing.len() {
            if self.outgoing[to].is_empty() && self.overflow[to].is_empty() {
                continue;
            }
            let mailbox = &self.shared.mailboxes[to];
            let mut pushed = false;
            while let Some(msg) = self.overflow[to].pop_front() {
                match mailbox.push(self.id, msg) {
                    Ok(()) => pushed = true,
                    Err(msg) => {
                        self.overflow[to].push_front(msg);
                        break;
                    }
                }
            }
            for msg in self.outgoing[to].drain(..) {
                if !self.overflow[to].is_empty() {
                    self.overflow[to].push_back(msg);
                    continue;
                }
                match mailbox.push(self.id, msg) {
                    Ok(()) => pushed = true,
                    Err(msg) => self.overflow[to].push_back(msg),
                }
            }
            if pushed {
                mailbox.notify();
            }
        }
        if self.overflow.iter().all(VecDeque::is_empty) && self.reserved_by.is_none() {
            self.ready.append(&mut self.stalled);
        }
    }

    fn drain_mailbox(&mut self) {
        // Bounded per iteration so one busy sender cannot starve this core's own clients.
        for _ in 0..4 {
            let mut got = false;
            for from in 0..self.shared.cores {
                if from == self.id {
                    continue;
                }
                for _ in 0..256 {
                    let Some(msg) = self.shared.mailboxes[self.id].pop(from) else {
                        break;
                    };
                    got = true;
                    self.handle(msg);
                }
            }
            for msg in self.shared.mailboxes[self.id].take_external() {
                got = true;
                self.handle(msg);
            }
            while let Some(msg) = self.loopback.pop_front() {
                got = true;
                self.handle(msg);
            }
            if !got {
                break;
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Replies(r) => {
                let BatchReplies { conn, data, parts } = *r;
                self.deliver(conn, data, parts);
            }
            Msg::CallDone {
                ticket,
                index,
                result,
            } => self.call_done(ticket, index, result),
            Msg::Reserved { ticket } => self.reserved(ticket),
            Msg::Release { txn } => {
                if self.reserved_by == Some(txn) {
                    self.reserved_by = None;
                    while self.reserved_by.is_none() {
                        let Some(msg) = self.deferred.pop_front() else {
                            break;
                        };
                        self.handle(msg);
                    }
                    if self.reserved_by.is_none() {
                        self.ready.append(&mut self.stalled);
                    }
                }
            }
            Msg::Adopt { fd, addr } => self.add_connection(fd, addr),
            Msg::Deliver { target, reply } => {
                let conn = self.conns.get_mut(target.idx).and_then(Option::as_mut);
                if let Some(conn) = conn.filter(|c| c.id == target.id) {
                    // EXEC's reply: a SELECT in it sticks unless the transaction did not run.
                    if let Some(db) = conn.db_after_exec.take() {
                        if reply != b"*-1\r\n" && reply != b"_\r\n" {
                            conn.db = db;
                        }
                    }
                }
                let len = reply.len();
                self.deliver(target, reply, std::iter::once((target.part, 0..len)));
            }
            msg if self.reserved_by.is_some()
                && !matches!(&msg, Msg::Call { txn, .. } if *txn == self.reserved_by) =>
            {
                self.deferred.push_back(msg)
            }
            Msg::Call {
                from,
                ticket,
                index,
                work,
                ..
            } => {
                let result = work(self);
                self.send(
                    from,
                    Msg::CallDone {
                        ticket,
                        index,
                        result,
                    },
                );
            }
            Msg::Reserve { from, ticket, txn } => {
                self.reserved_by = Some(txn);
                self.send(from, Msg::Reserved { ticket });
            }
            Msg::Batch(batch) => self.run_batch(*batch),
            Msg::Run(work) => work(self),
        }
    }

    fn run_batch(&mut self, batch: Batch) {
        let mut replies = BatchReplies {
            conn: batch.conn,
            data: Vec::with_capacity(batch.data.len()),
            parts: Vec::with_capacity(batch.cmds.len()),
        };
        for cmd in &batch.cmds {
            let start = replies.data.len();
            let args = Args::from_spans(&batch.data, &batch.spans[cmd.args.clone()]);
            let req = Request {
                spec: cmd.spec,
                args,
                db: cmd.db as usize,
                now: self.now,
            };
            self.store
                .execute(&req, &mut ReplyWriter::new(&mut replies.data, cmd.resp3));
            replies.parts.push((cmd.part, start..replies.data.len()));
        }
        self.send(batch.from, Msg::Replies(Box::new(replies)));
    }

    fn reserved(&mut self, ticket: u64) {
        let Some(p) = self.pending.get_mut(&ticket) else {
            return;
        };
        p.reserved += 1;
        if p.reserved < p.reserve.len() {
            let (core, txn) = (p.reserve[p.reserved], p.txn);
            self.send(
                core,
                Msg::Reserve {
                    from: self.id,
                    ticket,
                    txn,
                },
            );
        } else {
            self.advance(ticket);
        }
    }

    /// The reply to a coordinated command's proposal (`Step::Propose`).
    pub fn proposal_answered(&mut self, ticket: u64, reply: Vec<u8>) {
        self.call_done(ticket, 0, Box::new(reply));
    }

    fn call_done(&mut self, ticket: u64, index: usize, result: Box<dyn Any + Send>) {
        let Some(p) = self.pending.get_mut(&ticket) else {
            return;
        };
        p.results[index] = Some(result);
        p.outstanding -= 1;
        if p.outstanding == 0 {
            let results = p.results.drain(..).flatten().collect();
            if let Some(cont) = p.cont.take() {
                p.step = Some(cont(results));
            }
            self.advance(ticket);
        }
    }

    // ---- output ----

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &idx in &dirty {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let was_paused = conn.pending_output() >= OUTPUT_PAUSE;
            let written = conn.flush();
            self.stats.net_output += written as u64;
            let blocked = !conn.writable && conn.wpos < conn.wbuf.len();
            if blocked != conn.watching_output
                && self
                    .poller
                    .watch_output(conn.fd, idx as u64, blocked)
                    .is_ok()
            {
                conn.watching_output = blocked;
            }
            let limit = if conn.subscriptions.active() {
                self.config.output_pubsub
            } else {
                self.config.output_normal
            };
            let pending = conn.pending_output() as u64;
            if limit.hard > 0 && pending > limit.hard {
                tracing::warn!(client = conn.id, addr = %conn.addr, "closing client over the output buffer hard limit");
                conn.dead = true;
            } else if limit.soft > 0 && pending > limit.soft {
                let since = *conn.over_soft_since.get_or_insert(self.now);
                if self.now - since > limit.soft_seconds * 1000 {
                    tracing::warn!(client = conn.id, addr = %conn.addr, "closing client over the output buffer soft limit");
                    conn.dead = true;
                }
            } else {
                conn.over_soft_since = None;
            }
            let finished =
                conn.close_after_reply && conn.cycle.is_none() && conn.pending_output() == 0;
            if conn.dead || finished {
                self.close_connection(idx);
            } else if was_paused && conn.pending_output() < OUTPUT_PAUSE {
                self.ready.push(idx);
            }
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    // ---- periodic work ----

    /// Takes up a configuration changed by CONFIG SET (one atomic load when nothing changed).
    fn refresh_config(&mut self) {
        let epoch = self.shared.config_epoch.load(Ordering::Relaxed);
        if epoch != self.config_epoch {
            if let Ok(config) = self.shared.config.read() {
                self.config = config.clone();
            }
            self.config_epoch = epoch;
            self.store.max_bulk_len = self.config.proto_max_bulk_len as usize;
            self.store.limits = self.config.encodings;
            self.store
                .set_notify_flags(self.config.notify_keyspace_events);
            for conn in self.conns.iter_mut().flatten() {
                conn.parser
                    .set_max_bulk_len(self.config.proto_max_bulk_len as usize);
            }
        }
    }

    fn tick(&mut self) {
        let period = 1000 / self.config.hz.max(1) as u64;
        self.next_tick = self.now + period;
        if self.config.cluster.is_some() {
            crate::cluster::expire(self);
        } else {
            self.expire_cycle(period * EXPIRE_BUDGET_PERCENT / 100);
        }
        if self.config.timeout > 0 {
            let idle_limit = self.config.timeout * 1000;
            let idle: Vec<usize> = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| {
                    c.cycle.is_none() && self.now.saturating_sub(c.last_active_ms) > idle_limit
                })
                .map(|(i, _)| i)
                .collect();
            for idx in idle {
                self.close_connection(idx);
            }
        }
    }

    /// Active expiry: reclaims expired keys slot by slot, going on while a good share of what
    /// it looks at has expired, within a time budget (Redis's adaptive cycle).
    fn expire_cycle(&mut self, budget_ms: u64) {
        let started = std::time::Instant::now();
        for db in 0..self.store.databases() {
            if self.store.keyspace(db).is_none_or(|ks| ks.volatile() == 0) {
                continue;
            }
            loop {
                let (examined, reclaimed) = self.store.db(db).expire_step(self.now, 16);
                let mostly_live = reclaimed * 10 < examined;
                if examined == 0 || mostly_live || started.elapsed().as_millis() as u64 >= budget_ms
                {
                    break;
                }
            }
        }
    }

    // ---- shutdown ----

    /// One step of a graceful stop. Returns true when this core may exit.
    fn shutdown_step(&mut self) -> bool {
        if self.accepting {
            self.accepting = false;
            self.poller.remove(self.shared.listener);
        }
        // Clients waiting in blocking commands would wait past the shutdown: they are closed.
        for idx in self.blocked.waiting() {
            self.close_connection(idx);
        }
        let idle = self.pending.is_empty()
            && self.conns.iter().flatten().all(|c| c.cycle.is_none())
            && self.outgoing.iter().all(Vec::is_empty)
            && self.overflow.iter().all(VecDeque::is_empty)
            && self.loopback.is_empty();
        if idle && !self.quiescent {
            self.quiescent = true;
            self.shared.quiescent.fetch_add(1, Ordering::SeqCst);
            for mailbox in &self.shared.mailboxes {
                mailbox.wake();
            }
        }
        self.quiescent && self.shared.quiescent.load(Ordering::SeqCst) == self.shared.cores
    }

    fn close_all(&mut self) {
        for idx in 0..self.conns.len() {
            if let Some(conn) = self.conns[idx].as_mut() {
                conn.flush();
            }
            self.close_connection(idx);
        }
    }
}

impl Conn {
    /// The buffer replies go to now: straight to the socket buffer, or staged while replies
    /// from other cores are outstanding.
    pub fn out(&mut self) -> &mut Vec<u8> {
        match self.cycle.as_mut() {
            Some(cycle) => &mut cycle.staged,
            None => &mut self.wbuf,
        }
    }

    pub fn out_len(&self) -> usize {
        self.cycle
            .as_ref()
            .map_or(self.wbuf.len(), |c| c.staged.len())
    }

    /// Records the reply written since `start` as the next part of the cycle, if any.
    pub fn commit(&mut self, start: usize) {
        if let Some(cycle) = self.cycle.as_mut() {
            let end = cycle.staged.len();
            cycle.parts.push(crate::conn::Part::Staged(start..end));
        }
    }
}
