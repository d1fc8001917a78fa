//! MULTI, EXEC, DISCARD, WATCH and UNWATCH.
//!
//! MULTI makes the connection queue its commands (checked for name and arity as they come,
//! as Redis does: a bad one aborts the transaction at EXEC). EXEC runs them as one
//! coordinated command: every core any of them touches (and every core holding one of the
//! connection's watches) is reserved first, the watches are checked there, and the commands
//! then run one after another with nothing else in between on those cores.
//!
//! A watch lives on the core that owns its key: the keyspace counts writes to watched keys,
//! and the core remembers, per connection, each key's count and liveness when it was watched.
//! The connection itself only remembers which cores hold its watches.

use crate::conn::Conn;
use crate::core::{Core, Work};
use crate::dispatch::{reply, run_multi, Flow};
use crate::multi::{self, MultiOp, OwnedArgs, Results, Step};
use std::any::Any;
use std::collections::VecDeque;
use tessera_protocol::{key_slot, Args, Cmd, CommandSpec, ReplyWriter};

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// The commands a connection queued since MULTI.
#[derive(Default)]
pub struct Transaction {
    queued: Vec<(&'static CommandSpec, OwnedArgs)>,
    /// A queued command was refused: EXEC discards the transaction.
    aborted: bool,
}

/// One watched key, as its owner core saw it when WATCH ran.
pub struct WatchRecord {
    db: usize,
    key: Vec<u8>,
    version: u64,
    live: bool,
}

impl Transaction {
    /// The queued commands, and whether one was refused (EXEC must then discard them).
    pub fn into_parts(self) -> (Vec<(&'static CommandSpec, OwnedArgs)>, bool) {
        (self.queued, self.aborted)
    }
}

/// The error EXEC answers for a transaction a refused command doomed.
pub const EXEC_ABORTED: &str = EXECABORT;

/// Whether `spec` may be queued: key commands, and the few keyless ones EXEC can run.
fn queueable(spec: &CommandSpec, storage: bool) -> bool {
    storage
        || matches!(
            spec.cmd,
            Cmd::Ping | Cmd::Echo | Cmd::FlushDb | Cmd::FlushAll | Cmd::Select
        )
}

/// Inside MULTI: queues the command, or refuses it and marks the transaction aborted.
pub fn queue(conn: &mut Conn, spec: &'static CommandSpec, args: Args, storage: bool) -> Flow {
    let Some(tx) = conn.tx.as_mut() else {
        return Flow::Next;
    };
    if !queueable(spec, storage) {
        tx.aborted = true;
        reply(conn, |w| {
            w.error(&format!(
                "ERR '{}' is not supported inside MULTI in Tessera yet",
                spec.name
            ))
        });
        return Flow::Next;
    }
    let mut owned = OwnedArgs::default();
    args.iter().for_each(|a| owned.push(a));
    tx.queued.push((spec, owned));
    reply(conn, |w| w.simple("QUEUED"));
    Flow::Next
}

/// Marks the open transaction, if any, as doomed (a refused command while queueing).
pub fn abort(conn: &mut Conn) {
    if let Some(tx) = conn.tx.as_mut() {
        tx.aborted = true;
    }
}

pub fn run(core: &mut Core, conn: &mut Conn, idx: usize, spec: &CommandSpec, args: Args) -> Flow {
    match spec.cmd {
        Cmd::Multi => {
            if conn.tx.is_some() {
                reply(conn, |w| w.error("ERR MULTI calls can not be nested"));
            } else {
                conn.tx = Some(Transaction::default());
                reply(conn, |w| w.ok());
            }
            Flow::Next
        }
        Cmd::Discard => {
            if conn.tx.take().is_none() {
                reply(conn, |w| w.error("ERR DISCARD without MULTI"));
            } else {
                forget_watches(core, conn);
                reply(conn, |w| w.ok());
            }
            Flow::Next
        }
        Cmd::Unwatch => {
            forget_watches(core, conn);
            reply(conn, |w| w.ok());
            Flow::Next
        }
        Cmd::Watch if conn.tx.is_some() => {
            reply(conn, |w| w.error("ERR WATCH inside MULTI is not allowed"));
            Flow::Next
        }
        Cmd::Watch => watch(core, conn, idx, args),
        _ => exec(core, conn, idx),
    }
}

fn core_bit(core: usize) -> u128 {
    1u128 << core
}

fn cores_in(mask: u128) -> impl Iterator<Item = usize> {
    (0..128).filter(move |&c| mask & core_bit(c) != 0)
}

/// WATCH: registers each key on its owner core, and replies once all are registered.
fn watch(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let (db, id, resp3) = (conn.db, conn.id, conn.resp3);
    let mut by_core: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for key in args.tail(1).iter() {
        let owner = core.shared.owner(key_slot(key));
        match by_core.iter_mut().find(|(c, _)| *c == owner) {
            Some((_, keys)) => keys.push(key.to_vec()),
            None => by_core.push((owner, vec![key.to_vec()])),
        }
    }
    let flow = run_multi(core, conn, idx, |core| {
        let now = core.now;
        let calls = by_core
            .into_iter()
            .map(|(c, keys)| (c, register(id, db, keys, now)))
            .collect();
        MultiOp {
            reserve: Vec::new(),
            step: Step::Calls(
                calls,
                Box::new(move |_| multi::reply_with(resp3, |w| w.ok())),
            ),
        }
    });
    if matches!(flow, Flow::Wait) {
        for key in args.tail(1).iter() {
            conn.watch_cores |= core_bit(core.shared.owner(key_slot(key)));
        }
    }
    flow
}

fn register(conn_id: u64, db: usize, keys: Vec<Vec<u8>>, now: u64) -> Work {
    Box::new(move |core: &mut Core| {
        for key in keys {
            let (version, live) = core.store.watch(db, &key, now);
            core.watches.entry(conn_id).or_default().push(WatchRecord {
                db,
                key,
                version,
                live,
            });
        }
        Box::new(()) as Box<dyn Any + Send>
    })
}

/// Drops this core's watches of connection `conn_id`; true when none of their keys changed.
fn check_and_forget(core: &mut Core, conn_id: u64, now: u64) -> bool {
    let records = core.watches.remove(&conn_id).unwrap_or_default();
    let mut intact = true;
    for r in records {
        intact &= core
            .store
            .watch_intact(r.db, &r.key, r.version, r.live, now);
        core.store.unwatch(r.db, &r.key);
    }
    intact
}

/// UNWATCH, DISCARD, RESET and a closing connection: drops the connection's watches on every
/// core that holds some. No reply is awaited: each core drops them before anything it
/// receives later from this core.
pub fn forget_watches(core: &mut Core, conn: &mut Conn) {
    conn.watched_slots.clear();
    let (id, now) = (conn.id, core.now);
    for c in cores_in(std::mem::take(&mut conn.watch_cores)) {
        if c == core.id {
            check_and_forget(core, id, now);
        } else {
            core.call_and_forget(
                c,
                Box::new(move |core: &mut Core| {
                    check_and_forget(core, id, now);
                    Box::new(()) as Box<dyn Any + Send>
                }),
            );
        }
    }
}

/// EXEC: checks the watches and runs the queued commands, all under one reservation.
fn exec(core: &mut Core, conn: &mut Conn, idx: usize) -> Flow {
    if conn.tx.is_none() {
        reply(conn, |w| w.error("ERR EXEC without MULTI"));
        return Flow::Next;
    }
    if conn.cycle.is_some() {
        return Flow::Retry;
    }
    let tx = conn.tx.take().expect("checked above");
    if tx.aborted {
        forget_watches(core, conn);
        reply(conn, |w| w.error(EXECABORT));
        return Flow::Next;
    }
    let (db, resp3, id) = (conn.db, conn.resp3, conn.id);
    // The connection keeps the last database SELECT chose, if EXEC runs at all.
    let databases = core.store.databases();
    let final_db = tx
        .queued
        .iter()
        .rev()
        .filter(|(spec, _)| spec.cmd == Cmd::Select)
        .find_map(|(_, owned)| selected_db(owned.args(), databases).ok());
    conn.db_after_exec = final_db;
    let watch_cores = std::mem::take(&mut conn.watch_cores);
    run_multi(core, conn, idx, |core| {
        let now = core.now;
        let mut reserve = watch_cores;
        let mut steps = VecDeque::new();
        let total = tx.queued.len();
        let mut db = db;
        for (spec, owned) in &tx.queued {
            let args = owned.args();
            let owners: Vec<usize> = spec
                .keys_in(&args)
                .map(|p| core.shared.owner(key_slot(args.get(p))))
                .collect();
            let step = match spec.cmd {
                // Later commands use the database SELECT chose, as in Redis.
                Cmd::Select => match selected_db(args, core.store.databases()) {
                    Ok(n) => {
                        db = n;
                        multi::reply_with(resp3, |w| w.ok())
                    }
                    Err(e) => multi::reply_with(resp3, |w| w.error(&e)),
                },
                Cmd::Ping | Cmd::Echo => multi::reply_with(resp3, |w| match args.len() {
                    1 => w.simple("PONG"),
                    _ => w.bulk(args.get(1)),
                }),
                _ if multi::sorts_by_patterns(core, spec, args) => {
                    (0..core.shared.cores).for_each(|c| reserve |= core_bit(c));
                    multi::sort_by_patterns(core, db, resp3, spec, args).step
                }
                Cmd::FlushDb | Cmd::FlushAll => {
                    (0..core.shared.cores).for_each(|c| reserve |= core_bit(c));
                    let calls = (0..core.shared.cores)
                        .map(|c| (c, multi::run_on_core(spec, owned.clone(), db, now, resp3)))
                        .collect();
                    Step::Calls(calls, Box::new(move |results| Step::Reply(first(results))))
                }
                _ if owners.windows(2).all(|w| w[0] == w[1]) => {
                    let owner = owners.first().copied().unwrap_or(core.id);
                    reserve |= core_bit(owner);
                    let work = multi::run_on_core(spec, owned.clone(), db, now, resp3);
                    Step::Calls(
                        vec![(owner, work)],
                        Box::new(move |results| Step::Reply(first(results))),
                    )
                }
                _ => {
                    owners.iter().for_each(|&o| reserve |= core_bit(o));
                    multi::for_keys(core, db, resp3, spec, args).step
                }
            };
            steps.push_back(step);
        }
        let run_all = move || {
            chain(steps, Vec::with_capacity(total), move |replies| {
                let mut out = Vec::new();
                ReplyWriter::new(&mut out, resp3).array(replies.len());
                replies.iter().for_each(|r| out.extend_from_slice(r));
                Step::Reply(out)
            })
        };
        let step = if watch_cores == 0 {
            run_all()
        } else {
            let checks = cores_in(watch_cores)
                .map(|c| {
                    let work: Work = Box::new(move |core: &mut Core| {
                        Box::new(check_and_forget(core, id, now)) as Box<dyn Any + Send>
                    });
                    (c, work)
                })
                .collect();
            Step::Calls(
                checks,
                Box::new(move |results: Results| {
                    let intact = results
                        .into_iter()
                        .all(|r| r.downcast::<bool>().is_ok_and(|ok| *ok));
                    if intact {
                        run_all()
                    } else {
                        multi::reply_with(resp3, |w| w.null_array())
                    }
                }),
            )
        };
        MultiOp {
            reserve: cores_in(reserve).collect(),
            step,
        }
    })
}

/// The database a SELECT names, or its error.
pub fn selected_db(args: Args, databases: usize) -> Result<usize, tessera_storage::errors::Error> {
    match tessera_storage::errors::int_arg(args.get(1))? {
        n if n >= 0 && (n as usize) < databases => Ok(n as usize),
        _ => Err(tessera_storage::errors::DB_RANGE.into()),
    }
}

/// The reply bytes of a step's first call.
fn first(results: Results) -> Vec<u8> {
    results
        .into_iter()
        .next()
        .map(multi::bytes)
        .unwrap_or_default()
}

/// Runs `steps` one after another, each to its reply, then hands all replies to `finish`.
fn chain(
    mut steps: VecDeque<Step>,
    mut replies: Vec<Vec<u8>>,
    finish: impl FnOnce(Vec<Vec<u8>>) -> Step + Send + 'static,
) -> Step {
    match steps.pop_front() {
        None => finish(replies),
        Some(Step::Reply(bytes)) => {
            replies.push(bytes);
            chain(steps, replies, finish)
        }
        // Commands inside a transaction never wait: an empty blocking pop is a null array.
        Some(Step::Park) => {
            replies.push(b"*-1\r\n".to_vec());
            chain(steps, replies, finish)
        }
        Some(Step::Calls(calls, cont)) => Step::Calls(
            calls,
            Box::new(move |results| {
                steps.push_front(cont(results));
                chain(steps, replies, finish)
            }),
        ),
        Some(Step::Propose(partition, slot, batch, then)) => Step::Propose(
            partition,
            slot,
            batch,
            Box::new(move |reply| {
                steps.push_front(then(reply));
                chain(steps, replies, finish)
            }),
        ),
    }
}
