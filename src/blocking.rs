//! Blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! A blocked client is a connection on its own core whose request stays open. Each attempt
//! first registers a waiter on every core that owns one of the keys, then runs the command's
//! non-blocking form (the storage layer replies with a null array when there was nothing to
//! take). Registering first means a push that lands after the attempt looked always finds
//! the waiter. A core that writes an awaited key wakes as many of its waiters, oldest first,
//! as the key has elements; a woken client runs its attempt again through the ordinary
//! single- or multi-core paths, so a pop and its push (BLMOVE) stay one atomic command.
//!
//! Every attempt has a claim, shared with its waiters, that moves once from `WAITING` to
//! `WOKEN` (by the first core that wakes it) or to `DONE` (by the client's core: timeout,
//! disconnect, or served): a waiter is woken at most once, and never after its client gave
//! up. Nothing is popped on a client's behalf until its own attempt runs.

use crate::conn::Conn;
use crate::core::{Core, Target, Work};
use crate::dispatch::{self, Flow};
use crate::multi::{self, MultiOp, OwnedArgs, Step};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tessera_cluster::replica::{Batch, Header};
use tessera_protocol::{key_slot, Args, Cmd, CommandSpec};
use tessera_storage::errors::timeout_arg;
use tessera_storage::streams::parse_read;

const WAITING: u8 = 0;
const WOKEN: u8 = 1;
const DONE: u8 = 2;

type Claim = Arc<AtomicU8>;

/// Whether a request may wait: the blocking pops, and XREAD / XREADGROUP with BLOCK.
pub fn is_blocking(spec: &CommandSpec, args: Args) -> bool {
    match spec.cmd {
        Cmd::BLPop
        | Cmd::BRPop
        | Cmd::BLMove
        | Cmd::BRPopLPush
        | Cmd::BLMPop
        | Cmd::BZPopMin
        | Cmd::BZPopMax
        | Cmd::BZMPop => true,
        Cmd::XRead | Cmd::XReadGroup => parse_read(args).is_ok_and(|o| o.block.is_some()),
        _ => false,
    }
}

/// A client waiting on keys this core owns.
struct Waiter {
    conn: u64,
    core: usize,
    claim: Claim,
}

/// The waiters a core holds, per database and key, oldest first.
#[derive(Default)]
pub struct Waiters {
    queues: HashMap<(usize, Box<[u8]>), VecDeque<Waiter>>,
}

/// A connection of this core in a blocking command.
pub struct Blocked {
    target: Target,
    spec: &'static CommandSpec,
    args: OwnedArgs,
    db: usize,
    resp3: bool,
    /// Unix ms; `None` waits forever.
    deadline: Option<u64>,
    claim: Claim,
    /// The cores holding this attempt's waiters, with their keys.
    registered: Vec<(usize, Vec<Vec<u8>>)>,
    /// An attempt is running; a wake-up meanwhile is remembered for when it parks.
    attempting: bool,
    woken: bool,
    /// The client has waited (it counts in INFO's `blocked_clients` from then on).
    waited: bool,
}

/// The connections of one core in blocking commands, and their deadlines.
#[derive(Default)]
pub struct BlockedClients {
    by_conn: HashMap<u64, Blocked>,
    deadlines: std::collections::BTreeSet<(u64, u64)>,
}

impl BlockedClients {
    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }

    pub fn contains(&self, conn: u64) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// The connections waiting between attempts (none of their work is in flight).
    pub fn waiting(&self) -> Vec<usize> {
        self.by_conn
            .values()
            .filter(|b| !b.attempting)
            .map(|b| b.target.idx)
            .collect()
    }

    /// The nearest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    fn remove(&mut self, conn: u64) -> Option<Blocked> {
        let blocked = self.by_conn.remove(&conn)?;
        if let Some(at) = blocked.deadline {
            self.deadlines.remove(&(at, conn));
        }
        Some(blocked)
    }
}

/// A blocking command's timeout in ms (0: for ever): BLOCK's for the stream reads, the
/// seconds argument (last, or first for the MPOP forms) for the pops.
fn timeout_of(spec: &CommandSpec, args: Args) -> Result<u64, &'static str> {
    match spec.cmd {
        Cmd::XRead | Cmd::XReadGroup => {
            Ok(parse_read(args).ok().and_then(|o| o.block).unwrap_or(0))
        }
        Cmd::BLMPop | Cmd::BZMPop => timeout_arg(args.get(1)),
        _ => timeout_arg(args.get(args.len() - 1)),
    }
}

/// Starts a blocking command for a connection outside MULTI (inside, it runs its
/// non-blocking form like any write).
pub fn start(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Flow {
    let timeout = match timeout_of(spec, args) {
        Ok(ms) => ms,
        Err(e) => {
            dispatch::reply(conn, |w| w.error(e));
            return Flow::Next;
        }
    };
    if conn.cycle.is_some() {
        return Flow::Retry;
    }
    let mut owned = OwnedArgs::default();
    args.iter().for_each(|a| owned.push(a));
    let target = core.open_cycle(conn, idx);
    let deadline = (timeout > 0).then(|| core.now + timeout);
    let blocked = Blocked {
        target,
        spec,
        args: owned,
        db: conn.db,
        resp3: conn.resp3,
        deadline,
        claim: Arc::new(AtomicU8::new(DONE)),
        registered: Vec::new(),
        attempting: false,
        woken: false,
        waited: false,
    };
    if let Some(at) = deadline {
        core.blocked.deadlines.insert((at, conn.id));
    }
    core.blocked.by_conn.insert(conn.id, blocked);
    match resolve_last_ids(core, conn.id, spec, args) {
        Some(op) => core.launch(target, op, None),
        None => attempt(core, conn.id, false),
    }
    Flow::Wait
}

/// XREAD's `$` means "after the last entry when the command arrived": before the first
/// attempt, each `$` becomes its stream's last ID (read from the key's owner), so entries
/// added while the client waits are not skipped by a later attempt. `None` when there is
/// no `$`.
fn resolve_last_ids(core: &mut Core, conn: u64, spec: &CommandSpec, args: Args) -> Option<MultiOp> {
    if spec.cmd != Cmd::XRead {
        return None;
    }
    let opts = parse_read(args).ok()?;
    let base = args.len() - opts.ids.len();
    let wanted: Vec<(usize, Vec<u8>)> = opts
        .keys
        .iter()
        .zip(opts.ids.iter())
        .enumerate()
        .filter(|(_, (_, id))| *id == b"$")
        .map(|(i, (key, _))| (base + i, key.to_vec()))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let b = core.blocked.by_conn.get_mut(&conn)?;
    b.attempting = true;
    let (db, now, me) = (b.db, core.now, core.id);
    let calls = wanted
        .iter()
        .map(|(_, key)| {
            let owner = core.shared.owner(key_slot(key));
            let key = key.clone();
            let work: Work = Box::new(move |core: &mut Core| {
                let last = tessera_storage::streams::last_id(&mut core.store, db, &key, now);
                Box::new(last) as Box<dyn Any + Send>
            });
            (owner, work)
        })
        .collect();
    let positions: Vec<usize> = wanted.iter().map(|(at, _)| *at).collect();
    Some(MultiOp {
        reserve: Vec::new(),
        step: Step::Calls(
            calls,
            Box::new(move |results| {
                let ids: Vec<Vec<u8>> = results
                    .into_iter()
                    .map(|r| r.downcast::<Vec<u8>>().map(|b| *b).unwrap_or_default())
                    .collect();
                let resolve: Work = Box::new(move |core: &mut Core| {
                    if let Some(b) = core.blocked.by_conn.get_mut(&conn) {
                        let old = b.args.args();
                        let mut args = OwnedArgs::default();
                        for (i, arg) in old.iter().enumerate() {
                            match positions.iter().position(|&p| p == i) {
                                Some(n) => args.push(&ids[n]),
                                None => args.push(arg),
                            }
                        }
                        b.args = args;
                    }
                    attempt(core, conn, false);
                    Box::new(()) as Box<dyn Any + Send>
                });
                Step::Calls(vec![(me, resolve)], Box::new(|_| Step::Park))
            }),
        ),
    })
}

/// The keys a blocking command waits on: the source of a move, every key otherwise.
fn awaited_keys(spec: &'static CommandSpec, args: &Args) -> Vec<usize> {
    match spec.cmd {
        Cmd::BLMove | Cmd::BRPopLPush => vec![1],
        _ => spec.keys_in(args).collect(),
    }
}

/// Registers fresh waiters for the connection's command and runs its non-blocking form. A
/// client woken before (`first_in_line`) queues at the front again: it was the oldest waiter,
/// and losing the element to a client that never waited must not cost it its turn.
fn attempt(core: &mut Core, conn: u64, first_in_line: bool) {
    let me = core.id;
    let Some(b) = core.blocked.by_conn.get(&conn) else {
        return;
    };
    let (spec, owned, db, resp3, target) = (b.spec, b.args.clone(), b.db, b.resp3, b.target);
    let args = owned.args();
    let claim: Claim = Arc::new(AtomicU8::new(WAITING));
    let mut registered: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for pos in awaited_keys(spec, &args) {
        let key = args.get(pos);
        let owner = core.shared.owner(key_slot(key));
        match registered.iter_mut().find(|(c, _)| *c == owner) {
            Some((_, keys)) => keys.push(key.to_vec()),
            None => registered.push((owner, vec![key.to_vec()])),
        }
    }
    let registrations: Vec<(usize, Work)> = registered
        .iter()
        .map(|(owner, keys)| {
            let (keys, claim) = (keys.clone(), claim.clone());
            let work: Work = Box::new(move |core: &mut Core| {
                let waiter = Waiter {
                    conn,
                    core: me,
                    claim,
                };
                register(core, db, keys, waiter, first_in_line);
                Box::new(()) as Box<dyn Any + Send>
            });
            (*owner, work)
        })
        .collect();
    let mut owners = spec
        .keys_in(&args)
        .map(|pos| core.shared.owner(key_slot(args.get(pos))));
    let first_owner = owners.next().unwrap_or(me);
    let clustered = spec
        .keys_in(&args)
        .next()
        .and_then(|pos| crate::cluster::partition_of_key(core, args.get(pos)))
        .filter(|_| spec.is_write());
    let op = if let Some((partition, slot)) = clustered {
        // In a cluster every key is in one slot, so one core holds them: register there, then
        // propose the non-blocking form, so the pop is a replicated write like any other.
        let register: Work = Box::new(move |core: &mut Core| {
            registrations
                .into_iter()
                .for_each(|(_, register)| _ = register(core));
            Box::new(()) as Box<dyn Any + Send>
        });
        let mut batch = Batch::default();
        let header = Header {
            resp3,
            ..Header::new(db, core.now)
        };
        batch.push(header, args.iter());
        MultiOp {
            reserve: Vec::new(),
            step: Step::Calls(
                vec![(first_owner, register)],
                Box::new(move |_| {
                    Step::Propose(
                        partition,
                        slot,
                        batch,
                        Box::new(|reply| park_if_empty(Step::Reply(reply))),
                    )
                }),
            ),
        }
    } else if owners.all(|o| o == first_owner) {
        // One core holds every key (so every waiter too): register and look in one call.
        let call = multi::run_on_core(spec, owned.clone(), db, core.now, resp3);
        let look: Work = Box::new(move |core: &mut Core| {
            registrations
                .into_iter()
                .for_each(|(_, register)| _ = register(core));
            call(core)
        });
        MultiOp {
            reserve: Vec::new(),
            step: Step::Calls(
                vec![(first_owner, look)],
                Box::new(|results| {
                    let reply = results.into_iter().next().map(multi::bytes);
                    park_if_empty(Step::Reply(reply.unwrap_or_default()))
                }),
            ),
        }
    } else {
        let command = multi::for_keys(core, db, resp3, spec, args);
        MultiOp {
            reserve: command.reserve,
            step: Step::Calls(
                registrations,
                Box::new(move |_| park_if_empty(command.step)),
            ),
        }
    };
    let Some(b) = core.blocked.by_conn.get_mut(&conn) else {
        return;
    };
    b.claim = claim;
    b.registered = registered;
    b.attempting = true;
    b.woken = false;
    core.launch(target, op, Some(conn));
}

/// The command's steps, ending in `Park` instead of a null-array reply.
fn park_if_empty(step: Step) -> Step {
    match step {
        Step::Reply(bytes) if bytes == b"*-1\r\n" || bytes == b"_\r\n" => Step::Park,
        Step::Calls(calls, cont) => {
            Step::Calls(calls, Box::new(move |results| park_if_empty(cont(results))))
        }
        Step::Propose(partition, slot, batch, then) => Step::Propose(
            partition,
            slot,
            batch,
            Box::new(move |reply| park_if_empty(then(reply))),
        ),
        done => done,
    }
}

/// The attempt found nothing: wait, unless a wake-up came meanwhile or time ran out.
pub fn parked(core: &mut Core, conn: u64) {
    let now = core.now;
    let Some(b) = core.blocked.by_conn.get_mut(&conn) else {
        return;
    };
    b.attempting = false;
    if !b.waited {
        b.waited = true;
        core.shared.blocked_clients.fetch_add(1, Ordering::Relaxed);
    }
    if b.woken || b.claim.load(Ordering::Acquire) == WOKEN {
        if b.deadline.is_some_and(|at| at <= now) {
            return time_out(core, conn);
        }
        return retry(core, conn);
    }
    if b.deadline.is_some_and(|at| at <= now) {
        try_time_out(core, conn);
    }
}

/// Starts a new attempt after the old waiters are dropped.
fn retry(core: &mut Core, conn: u64) {
    if let Some(b) = core.blocked.by_conn.get(&conn) {
        let (db, registered, claim) = (b.db, b.registered.clone(), b.claim.clone());
        forget(core, conn, db, &registered, &claim);
    }
    attempt(core, conn, true);
}

/// Times the client out if its waiters have not been woken (a wake-up in flight wins).
fn try_time_out(core: &mut Core, conn: u64) {
    let Some(b) = core.blocked.by_conn.get(&conn) else {
        return;
    };
    if b.claim
        .compare_exchange(WAITING, DONE, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        time_out(core, conn);
    }
}

/// Replies with the timeout's null array.
fn time_out(core: &mut Core, conn: u64) {
    let Some(b) = finish(core, conn) else {
        return;
    };
    let reply = if b.resp3 {
        b"_\r\n".to_vec()
    } else {
        b"*-1\r\n".to_vec()
    };
    core.deliver_reply(b.target, reply);
}

/// Times out the clients whose deadlines have passed.
pub fn expire(core: &mut Core) {
    while let Some(&(at, conn)) = core.blocked.deadlines.first() {
        if at > core.now {
            break;
        }
        core.blocked.deadlines.remove(&(at, conn));
        let attempting = core
            .blocked
            .by_conn
            .get(&conn)
            .is_some_and(|b| b.attempting);
        // A running attempt checks the deadline when it parks.
        if !attempting {
            try_time_out(core, conn);
        }
    }
}

/// Drops an attempt's waiters on every core that holds them.
fn forget(
    core: &mut Core,
    conn: u64,
    db: usize,
    registered: &[(usize, Vec<Vec<u8>>)],
    claim: &Claim,
) {
    for (owner, keys) in registered {
        let (keys, claim) = (keys.clone(), claim.clone());
        let work: Work = Box::new(move |core: &mut Core| {
            unregister(core, db, &keys, conn, &claim);
            Box::new(()) as Box<dyn Any + Send>
        });
        core.call_and_forget(*owner, work);
    }
}

/// Ends a blocked client's wait for good (served, timed out or disconnected) and drops its
/// waiters everywhere.
pub fn finish(core: &mut Core, conn: u64) -> Option<Blocked> {
    let b = core.blocked.remove(conn)?;
    if b.waited {
        core.shared.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    }
    b.claim.store(DONE, Ordering::Release);
    forget(core, conn, b.db, &b.registered, &b.claim);
    Some(b)
}

// ---- on the cores that own the keys ----

fn register(core: &mut Core, db: usize, keys: Vec<Vec<u8>>, waiter: Waiter, front: bool) {
    for key in keys {
        core.store.db(db).await_key(&key);
        let queue = core
            .waiters
            .queues
            .entry((db, key.into_boxed_slice()))
            .or_default();
        let copy = Waiter {
            conn: waiter.conn,
            core: waiter.core,
            claim: waiter.claim.clone(),
        };
        if front {
            queue.push_front(copy);
        } else {
            queue.push_back(copy);
        }
    }
}

fn unregister(core: &mut Core, db: usize, keys: &[Vec<u8>], conn: u64, claim: &Claim) {
    for key in keys {
        let entry = (db, key.clone().into_boxed_slice());
        let Some(queue) = core.waiters.queues.get_mut(&entry) else {
            continue;
        };
        let before = queue.len();
        queue.retain(|w| !(w.conn == conn && Arc::ptr_eq(&w.claim, claim)));
        for _ in queue.len()..before {
            core.store.db(db).unawait_key(key);
        }
        if queue.is_empty() {
            core.waiters.queues.remove(&entry);
        }
    }
}

/// Wakes waiters on the awaited keys written since the last look: as many, oldest first,
/// as each key has elements to take.
pub fn wake_ready(core: &mut Core) {
    if core.waiters.queues.is_empty() {
        return;
    }
    for (db, key) in core.store.take_ready() {
        let mut available = core.store.available(db, &key, core.now);
        let entry = (db, key);
        while available > 0 {
            let Some(waiter) = core
                .waiters
                .queues
                .get_mut(&entry)
                .and_then(VecDeque::pop_front)
            else {
                break;
            };
            core.store.db(db).unawait_key(&entry.1);
            let won = waiter
                .claim
                .compare_exchange(WAITING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if won {
                available -= 1;
                let (from, key) = (core.id, entry.1.to_vec());
                let work: Work = Box::new(move |core: &mut Core| {
                    woken(core, waiter.conn, &waiter.claim, from, db, key);
                    Box::new(()) as Box<dyn Any + Send>
                });
                core.call_and_forget(waiter.core, work);
            }
        }
        if core
            .waiters
            .queues
            .get(&entry)
            .is_some_and(VecDeque::is_empty)
        {
            core.waiters.queues.remove(&entry);
        }
    }
}

/// On the client's core: a waiter of `conn` was woken by core `from` for `key`.
fn woken(core: &mut Core, conn: u64, claim: &Claim, from: usize, db: usize, key: Vec<u8>) {
    let current = core
        .blocked
        .by_conn
        .get_mut(&conn)
        .filter(|b| Arc::ptr_eq(&b.claim, claim));
    match current {
        Some(b) if b.attempting => b.woken = true,
        Some(_) => retry(core, conn),
        // The client went away or was served meanwhile: the next waiter gets its chance.
        None => {
            let work: Work = Box::new(move |core: &mut Core| {
                core.store.db(db).mark_ready(&key);
                Box::new(()) as Box<dyn Any + Send>
            });
            core.call_and_forget(from, work);
        }
    }
}
