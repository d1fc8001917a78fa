//! Commands that span cores. A coordinator (the core of the client's connection) runs them
//! as steps: each step sends work to some cores and continues with their results. Commands
//! that must be atomic first reserve every core they touch, in ascending core order (the
//! global order that makes deadlock impossible); a reserved core runs nothing else until
//! released, so no client can see half of an MSET or a torn MGET.

use crate::core::{Core, Work};
use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use tessera_cluster::replica::Batch;
use tessera_protocol::reply::push_int;
use tessera_protocol::{key_slot, Args, Cmd, CommandSpec, ReplyWriter};
use tessera_storage::dump::entry_from;
use tessera_storage::notify::Event;
use tessera_storage::object::Kind;
use tessera_storage::sort;
use tessera_storage::{Effect, Request};

pub type Results = Vec<Box<dyn Any + Send>>;
pub type Continuation = Box<dyn FnOnce(Results) -> Step + Send>;

pub enum Step {
    /// Run `work` on each named core, then continue with the results in the same order.
    Calls(Vec<(usize, Work)>, Continuation),
    /// Done: these are the reply bytes.
    Reply(Vec<u8>),
    /// Done without a reply yet: a blocking command waits (see `blocking`).
    Park,
    /// Propose a write to a partition's Raft group (cluster mode; the slot is its key's, for
    /// a redirect), then continue with its reply.
    Propose(u32, u16, Batch, Box<dyn FnOnce(Vec<u8>) -> Step + Send>),
}

pub struct MultiOp {
    /// Cores to reserve before the first step, ascending; empty when atomicity is not needed.
    pub reserve: Vec<usize>,
    pub step: Step,
}

/// Arguments copied out of a connection buffer so they can travel to another core.
#[derive(Default, Clone)]
pub struct OwnedArgs {
    data: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl OwnedArgs {
    pub fn push(&mut self, arg: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(arg);
        self.spans.push(start..self.data.len());
    }

    pub fn args(&self) -> Args<'_> {
        Args::from_spans(&self.data, &self.spans)
    }
}

/// Runs a command over owned arguments on the core the work lands on; yields the reply bytes.
pub fn run_on_core(
    spec: &'static CommandSpec,
    args: OwnedArgs,
    db: usize,
    now: u64,
    resp3: bool,
) -> Work {
    Box::new(move |core: &mut Core| {
        let mut out = Vec::new();
        core.store.execute(
            &Request {
                spec,
                args: args.args(),
                db,
                now,
            },
            &mut ReplyWriter::new(&mut out, resp3),
        );
        Box::new(out) as Box<dyn Any + Send>
    })
}

/// Applies an effect built on the target core from owned data; yields the reply bytes. It is
/// one part of a coordinated command (a value moved or written back), so it records no
/// keyspace events: the coordinator announces the command's own.
fn apply_on_core(
    db: usize,
    now: u64,
    build: impl FnOnce(&OwnedArgs) -> Effect<'_> + Send + 'static,
    args: OwnedArgs,
) -> Work {
    Box::new(move |core: &mut Core| {
        let mut out = Vec::new();
        let flags = core.store.notify_flags();
        core.store.set_notify_flags(0);
        core.store.apply(
            db,
            now,
            &build(&args),
            &mut ReplyWriter::new(&mut out, false),
        );
        core.store.set_notify_flags(flags);
        Box::new(out) as Box<dyn Any + Send>
    })
}

/// `work`, then the publication of `events` from the same core (which the coordinated
/// command has reserved, so publishing there never waits on another command).
fn then_announce(work: Work, events: Vec<tessera_storage::notify::Event>) -> Work {
    if events.is_empty() {
        return work;
    }
    Box::new(move |core: &mut Core| {
        let result = work(core);
        crate::pubsub::announce(core, events);
        result
    })
}

/// A reply built with a `ReplyWriter`.
pub fn reply_with(resp3: bool, write: impl FnOnce(&mut ReplyWriter)) -> Step {
    let mut out = Vec::new();
    write(&mut ReplyWriter::new(&mut out, resp3));
    Step::Reply(out)
}

/// A call's reply bytes.
pub fn bytes(result: Box<dyn Any + Send>) -> Vec<u8> {
    result.downcast::<Vec<u8>>().map(|b| *b).unwrap_or_default()
}

/// The integer in a `:N` reply.
fn reply_int(reply: &[u8]) -> i64 {
    reply
        .strip_prefix(b":")
        .and_then(|r| r.strip_suffix(b"\r\n"))
        .and_then(tessera_protocol::parse::parse_int)
        .unwrap_or(0)
}

/// The items of an array reply whose items are bulk strings or nulls.
fn array_items(reply: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    let Some(first_end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return items;
    };
    let mut pos = first_end + 2;
    while pos < reply.len() {
        let Some(line) = reply[pos..].windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let header = &reply[pos..pos + line];
        let mut end = pos + line + 2;
        if header.first() == Some(&b'$') {
            if let Some(len) = tessera_protocol::parse::parse_int(&header[1..]).filter(|&n| n >= 0)
            {
                end += len as usize + 2;
            }
        }
        items.push(&reply[pos..end.min(reply.len())]);
        pos = end;
    }
    items
}

/// Where a coordinated command comes from: the client's database, the command's timestamp
/// and the protocol its reply is written in.
#[derive(Clone, Copy)]
struct Origin {
    db: usize,
    now: u64,
    resp3: bool,
}

/// Splits a key command's keys (or key/value pairs) by owning core. Returns, per core, the
/// sub-request arguments and the positions of its keys in the original request.
fn split_by_core(
    core: &Core,
    spec: &'static CommandSpec,
    args: Args,
    pairs: bool,
) -> Vec<(usize, OwnedArgs, Vec<usize>)> {
    let mut groups: Vec<(usize, OwnedArgs, Vec<usize>)> = Vec::new();
    for (n, pos) in spec.keys_in(&args).enumerate() {
        let owner = core.shared.owner(key_slot(args.get(pos)));
        let group = match groups.iter().position(|g| g.0 == owner) {
            Some(i) => &mut groups[i],
            None => {
                let mut sub = OwnedArgs::default();
                sub.push(args.get(0));
                groups.push((owner, sub, Vec::new()));
                groups.last_mut().expect("just pushed")
            }
        };
        group.1.push(args.get(pos));
        if pairs {
            group.1.push(args.get(pos + 1));
        }
        group.2.push(n);
    }
    groups.sort_by_key(|g| g.0);
    groups
}

/// Builds the coordinated form of a key command whose keys live on more than one core.
pub fn for_keys(
    core: &Core,
    db: usize,
    resp3: bool,
    spec: &'static CommandSpec,
    args: Args,
) -> MultiOp {
    let now = core.now;
    // Key/value commands need whole pairs before they can be split by core.
    if matches!(spec.cmd, Cmd::MSet | Cmd::MSetNx) && args.len().is_multiple_of(2) {
        let text = tessera_storage::errors::wrong_arity(spec.name);
        return MultiOp {
            reserve: Vec::new(),
            step: reply_with(resp3, |w| w.error(&text)),
        };
    }
    match spec.cmd {
        Cmd::MGet => {
            let groups = split_by_core(core, spec, args, false);
            let reserve = groups.iter().map(|g| g.0).collect();
            let total = args.len() - 1;
            let positions: Vec<Vec<usize>> = groups.iter().map(|g| g.2.clone()).collect();
            let calls = groups
                .into_iter()
                .map(|(c, sub, _)| (c, run_on_core(spec, sub, db, now, resp3)))
                .collect();
            MultiOp {
                reserve,
                step: Step::Calls(
                    calls,
                    Box::new(move |results| {
                        let replies: Vec<Vec<u8>> = results.into_iter().map(bytes).collect();
                        let mut ordered: Vec<&[u8]> = vec![b"$-1\r\n"; total];
                        for (reply, positions) in replies.iter().zip(&positions) {
                            for (item, &pos) in array_items(reply).into_iter().zip(positions) {
                                ordered[pos] = item;
                            }
                        }
                        let mut out = Vec::new();
                        ReplyWriter::new(&mut out, resp3).array(total);
                        ordered.iter().for_each(|item| out.extend_from_slice(item));
                        Step::Reply(out)
                    }),
                ),
            }
        }
        Cmd::Del | Cmd::Unlink | Cmd::Exists | Cmd::Touch | Cmd::MSet => {
            let groups = split_by_core(core, spec, args, spec.cmd == Cmd::MSet);
            let reserve = groups.iter().map(|g| g.0).collect();
            let calls = groups
                .into_iter()
                .map(|(c, sub, _)| (c, run_on_core(spec, sub, db, now, resp3)))
                .collect();
            let is_mset = spec.cmd == Cmd::MSet;
            MultiOp {
                reserve,
                step: Step::Calls(
                    calls,
                    Box::new(move |results| {
                        if is_mset {
                            return reply_with(resp3, |w| w.ok());
                        }
                        let sum: i64 = results.into_iter().map(|r| reply_int(&bytes(r))).sum();
                        reply_with(resp3, |w| w.int(sum))
                    }),
                ),
            }
        }
        Cmd::MSetNx => msetnx(core, &Origin { db, now, resp3 }, spec, args),
        Cmd::Rename | Cmd::RenameNx | Cmd::Copy => {
            move_key(core, &Origin { db, now, resp3 }, spec, args)
        }
        Cmd::Lcs => lcs(core, &Origin { db, now, resp3 }, args),
        _ => gather(core, &Origin { db, now, resp3 }, spec, args),
    }
}

/// The keys one core holds for a gathered command, with their values as read there.
type Gathered = Vec<(Vec<u8>, Snapshot)>;

/// Any other multi-key command across cores (SINTERSTORE, SMOVE, LMOVE, ...): with every core
/// it touches reserved, copy the keys it names into a scratch store here, run the command
/// there, and write back to its owner each key whose value it changed. Each write-back is a
/// plain effect (Restore or Del) on one partition, so the command stays atomic here and
/// deterministic to replicate.
fn gather(core: &Core, origin: &Origin, spec: &'static CommandSpec, args: Args) -> MultiOp {
    let Origin { db, now, resp3 } = *origin;
    let mut by_core: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for pos in spec.keys_in(&args) {
        let key = args.get(pos);
        let owner = core.shared.owner(key_slot(key));
        match by_core.iter_mut().find(|(c, _)| *c == owner) {
            Some((_, keys)) if keys.iter().any(|k| k == key) => {}
            Some((_, keys)) => keys.push(key.to_vec()),
            None => by_core.push((owner, vec![key.to_vec()])),
        }
    }
    by_core.sort_by_key(|(c, _)| *c);
    let reserve = by_core.iter().map(|(c, _)| *c).collect();
    let owners: Vec<(usize, Vec<Vec<u8>>)> = by_core.clone();
    let calls = by_core
        .into_iter()
        .map(|(c, keys)| (c, read_entries(keys, db, now)))
        .collect();
    let mut request = OwnedArgs::default();
    args.iter().for_each(|a| request.push(a));
    let (databases, limits, max_bulk_len, notify_flags) = (
        core.store.databases(),
        core.store.limits,
        core.store.max_bulk_len,
        core.store.notify_flags(),
    );
    MultiOp {
        reserve,
        step: Step::Calls(
            calls,
            Box::new(move |results| {
                let mut scratch = tessera_storage::Store::new(databases);
                scratch.limits = limits;
                scratch.max_bulk_len = max_bulk_len;
                let mut before: Vec<(Vec<u8>, Snapshot)> = Vec::new();
                for gathered in results {
                    let gathered = *gathered.downcast::<Gathered>().expect("read_entries");
                    for (key, snapshot) in gathered {
                        if let Some((value, deadline)) = &snapshot {
                            let at = deadline.unwrap_or(0);
                            if let Some(entry) = entry_from(&key, value, at, 0, &limits) {
                                scratch.db(db).insert(entry);
                            }
                        }
                        before.push((key, snapshot));
                    }
                }
                let mut reply = Vec::new();
                let req = Request {
                    spec,
                    args: request.args(),
                    db,
                    now,
                };
                scratch.set_notify_flags(notify_flags);
                scratch.execute(&req, &mut ReplyWriter::new(&mut reply, resp3));
                let events = scratch.take_events();
                let mut writes = Vec::new();
                for (key, old) in before {
                    let new = scratch
                        .db(db)
                        .get(&key, now)
                        .map(|e| (tessera_storage::dump::value_bytes(e), e.expire_at()));
                    if new == old {
                        continue;
                    }
                    let owner = owners
                        .iter()
                        .find(|(_, keys)| keys.contains(&key))
                        .map(|(c, _)| *c)
                        .expect("every gathered key has an owner");
                    let work = match new {
                        Some((value, deadline)) => restore_on_core(db, now, &key, &value, deadline),
                        None => apply_on_core(
                            db,
                            now,
                            |a: &OwnedArgs| Effect::Del { keys: a.args() },
                            {
                                let mut payload = OwnedArgs::default();
                                payload.push(&key);
                                payload
                            },
                        ),
                    };
                    writes.push((owner, work));
                }
                if writes.is_empty() {
                    return Step::Reply(reply);
                }
                let (owner, first) = writes.remove(0);
                writes.insert(0, (owner, then_announce(first, events)));
                Step::Calls(writes, Box::new(move |_| Step::Reply(reply)))
            }),
        ),
    }
}

/// Stores `key` with a dumped `value` and deadline on the core the work lands on.
fn restore_on_core(db: usize, now: u64, key: &[u8], value: &[u8], deadline: Option<u64>) -> Work {
    let mut payload = OwnedArgs::default();
    payload.push(key);
    payload.push(value);
    apply_on_core(
        db,
        now,
        move |a: &OwnedArgs| Effect::Restore {
            key: a.args().get(0),
            value: a.args().get(1),
            expire_at: deadline.unwrap_or(0),
        },
        payload,
    )
}

fn read_entries(keys: Vec<Vec<u8>>, db: usize, now: u64) -> Work {
    Box::new(move |core: &mut Core| {
        let ks = core.store.db(db);
        let gathered: Gathered = keys
            .into_iter()
            .map(|key| {
                let snapshot = ks
                    .get(&key, now)
                    .map(|e| (tessera_storage::dump::value_bytes(e), e.expire_at()));
                (key, snapshot)
            })
            .collect();
        Box::new(gathered) as Box<dyn Any + Send>
    })
}

fn msetnx(core: &Core, origin: &Origin, spec: &'static CommandSpec, args: Args) -> MultiOp {
    let Origin { db, now, resp3 } = *origin;
    let exists = Cmd::Exists.spec();
    let groups = split_by_core(core, spec, args, true);
    let reserve = groups.iter().map(|g| g.0).collect();
    let checks = groups
        .iter()
        .map(|(c, sub, _)| {
            let mut keys = OwnedArgs::default();
            keys.push(b"EXISTS");
            sub.args()
                .tail(1)
                .iter()
                .step_by(2)
                .for_each(|k| keys.push(k));
            (*c, run_on_core(exists, keys, db, now, resp3))
        })
        .collect();
    let sets: Vec<(usize, OwnedArgs)> = groups
        .into_iter()
        .map(|(c, sub, _)| {
            let mut mset = OwnedArgs::default();
            mset.push(b"MSET");
            sub.args().tail(1).iter().for_each(|a| mset.push(a));
            (c, mset)
        })
        .collect();
    MultiOp {
        reserve,
        step: Step::Calls(
            checks,
            Box::new(move |results| {
                let existing: i64 = results.into_iter().map(|r| reply_int(&bytes(r))).sum();
                if existing > 0 {
                    return reply_with(resp3, |w| w.int(0));
                }
                let calls = sets
                    .into_iter()
                    .map(|(c, a)| (c, run_on_core(Cmd::MSet.spec(), a, db, now, resp3)))
                    .collect();
                Step::Calls(calls, Box::new(move |_| reply_with(resp3, |w| w.int(1))))
            }),
        ),
    }
}

/// A value read for a cross-core move: its bytes (`dump::value_bytes`) and deadline.
type Snapshot = Option<(Vec<u8>, Option<u64>)>;

/// A string read for a cross-core LCS: its bytes (empty when missing), or WRONGTYPE.
type StringRead = Result<Vec<u8>, &'static str>;

fn read_string(key: Vec<u8>, db: usize, now: u64) -> Work {
    Box::new(move |core: &mut Core| {
        let read: StringRead = match core.store.db(db).get(&key, now) {
            None => Ok(Vec::new()),
            Some(entry) => entry.string().map(|v| v.to_vec()),
        };
        Box::new(read) as Box<dyn Any + Send>
    })
}

/// RENAME, RENAMENX and COPY between keys on different cores: read the source and check the
/// destination, then write the destination and (for renames) delete the source.
fn move_key(core: &Core, origin: &Origin, spec: &'static CommandSpec, args: Args) -> MultiOp {
    let Origin { db, now, resp3 } = *origin;
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (mut dst_db, mut replace) = (db, spec.cmd == Cmd::Rename);
    if spec.cmd == Cmd::Copy {
        let req = Request {
            spec,
            args,
            db,
            now,
        };
        match tessera_storage::plan(&req, core.store.databases()) {
            Ok(Effect::Copy {
                dst_db: d,
                replace: r,
                ..
            }) => (dst_db, replace) = (d, r),
            Ok(_) => {}
            Err(e) => {
                return MultiOp {
                    reserve: Vec::new(),
                    step: reply_with(resp3, |w| w.error(&e)),
                }
            }
        }
    }
    let is_rename = spec.cmd != Cmd::Copy;
    let (src_core, dst_core) = (
        core.shared.owner(key_slot(&src)),
        core.shared.owner(key_slot(&dst)),
    );
    let mut reserve = vec![src_core, dst_core];
    reserve.sort_unstable();
    let dst_exists = run_on_core(
        Cmd::Exists.spec(),
        {
            let mut a = OwnedArgs::default();
            a.push(b"EXISTS");
            a.push(&dst);
            a
        },
        dst_db,
        now,
        false,
    );
    let calls = vec![
        (src_core, read_entries(vec![src.clone()], db, now)),
        (dst_core, dst_exists),
    ];
    let cmd = spec.cmd;
    MultiOp {
        reserve,
        step: Step::Calls(
            calls,
            Box::new(move |mut results| {
                let dst_present = reply_int(&bytes(results.pop().expect("two results"))) > 0;
                let snapshot = results
                    .pop()
                    .and_then(|r| r.downcast::<Gathered>().ok())
                    .and_then(|g| g.into_iter().next())
                    .and_then(|(_, snapshot)| snapshot);
                let Some((value, deadline)) = snapshot else {
                    return reply_with(resp3, |w| {
                        if is_rename {
                            w.error(tessera_storage::errors::NO_SUCH_KEY)
                        } else {
                            w.int(0)
                        }
                    });
                };
                if dst_present && !replace {
                    return reply_with(resp3, |w| w.int(0));
                }
                let event = |db: usize, event: &'static str, key: &[u8]| Event {
                    db,
                    event,
                    key: key.into(),
                };
                let events = if is_rename {
                    vec![event(db, "rename_from", &src), event(db, "rename_to", &dst)]
                } else {
                    vec![event(dst_db, "copy_to", &dst)]
                };
                let write = restore_on_core(dst_db, now, &dst, &value, deadline);
                let mut calls = vec![(dst_core, then_announce(write, events))];
                if is_rename {
                    let mut key = OwnedArgs::default();
                    key.push(&src);
                    calls.push((
                        src_core,
                        apply_on_core(db, now, |a: &OwnedArgs| Effect::Del { keys: a.args() }, key),
                    ));
                }
                Step::Calls(
                    calls,
                    Box::new(move |_| {
                        reply_with(
                            resp3,
                            |w| if cmd == Cmd::Rename { w.ok() } else { w.int(1) },
                        )
                    }),
                )
            }),
        ),
    }
}

fn lcs(core: &Core, origin: &Origin, args: Args) -> MultiOp {
    let Origin { db, now, resp3 } = *origin;
    let (a, b) = (args.get(1).to_vec(), args.get(2).to_vec());
    let mut reserve = vec![
        core.shared.owner(key_slot(&a)),
        core.shared.owner(key_slot(&b)),
    ];
    reserve.sort_unstable();
    let calls = vec![
        (core.shared.owner(key_slot(&a)), read_string(a, db, now)),
        (core.shared.owner(key_slot(&b)), read_string(b, db, now)),
    ];
    let mut options = OwnedArgs::default();
    args.tail(3).iter().for_each(|o| options.push(o));
    let max_bulk_len = core.store.max_bulk_len;
    MultiOp {
        reserve,
        step: Step::Calls(
            calls,
            Box::new(move |results| {
                let values: Result<Vec<Vec<u8>>, &str> = results
                    .into_iter()
                    .map(|r| *r.downcast::<StringRead>().expect("read_string's result"))
                    .collect();
                let values = match values {
                    Ok(values) => values,
                    Err(e) => return reply_with(resp3, |w| w.error(e)),
                };
                reply_with(resp3, |w| {
                    tessera_storage::strings::lcs_reply(
                        &values[0],
                        &values[1],
                        options.args(),
                        max_bulk_len,
                        w,
                    )
                })
            }),
        ),
    }
}

/// Runs `work` on every core (no reservation) and combines the results.
pub fn on_every_core(
    core: &Core,
    work: impl Fn() -> Work,
    combine: impl FnOnce(Results) -> Step + Send + 'static,
) -> MultiOp {
    let calls = (0..core.shared.cores).map(|c| (c, work())).collect();
    MultiOp {
        reserve: Vec::new(),
        step: Step::Calls(calls, Box::new(combine)),
    }
}

/// Like `on_every_core`, but atomically: every core is reserved first.
pub fn on_every_core_atomically(
    core: &Core,
    work: impl Fn() -> Work,
    combine: impl FnOnce(Results) -> Step + Send + 'static,
) -> MultiOp {
    let mut op = on_every_core(core, work, combine);
    op.reserve = (0..core.shared.cores).collect();
    op
}

/// Writes `*N` and each bulk string.
pub fn bulk_array(resp3: bool, items: &[Vec<u8>]) -> Step {
    let mut out = Vec::new();
    ReplyWriter::new(&mut out, resp3).array(items.len());
    for item in items {
        out.push(b'$');
        push_int(&mut out, item.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(item);
        out.extend_from_slice(b"\r\n");
    }
    Step::Reply(out)
}

/// Whether a request is a SORT whose patterns may name keys on other cores.
pub fn sorts_by_patterns(core: &Core, spec: &'static CommandSpec, args: Args) -> bool {
    matches!(spec.cmd, Cmd::Sort | Cmd::SortRo)
        && core.shared.cores > 1
        && sort::parse(args, spec.cmd == Cmd::SortRo).is_ok_and(|o| o.patterns().next().is_some())
}

/// A key a SORT pattern names, and the hash field after `->`.
type PatternTarget = (Vec<u8>, Option<Vec<u8>>);

/// SORT / SORT_RO whose BY or GET patterns name keys, which may live on any core: with every
/// core reserved (so the result is one atomic read), the elements come from the key's owner,
/// then each core answers for the pattern targets it owns, and the coordinator sorts. A
/// STORE destination is written by its owner.
pub fn sort_by_patterns(
    core: &Core,
    db: usize,
    resp3: bool,
    spec: &'static CommandSpec,
    args: Args,
) -> MultiOp {
    let now = core.now;
    if let Err(e) = sort::parse(args, spec.cmd == Cmd::SortRo) {
        return MultiOp {
            reserve: Vec::new(),
            step: reply_with(resp3, |w| w.error(&e)),
        };
    }
    let mut request = OwnedArgs::default();
    args.iter().for_each(|a| request.push(a));
    let key = args.get(1).to_vec();
    let owner_of = {
        let shared = core.shared.clone();
        move |key: &[u8]| shared.owner(key_slot(key))
    };
    let read: Work = Box::new(move |core: &mut Core| {
        Box::new(sort::elements(&mut core.store, db, &key, now)) as Box<dyn Any + Send>
    });
    MultiOp {
        reserve: (0..core.shared.cores).collect(),
        step: Step::Calls(
            vec![(owner_of(args.get(1)), read)],
            Box::new(move |mut results| {
                type Found = Result<(Kind, Vec<Vec<u8>>), &'static str>;
                let found = results.pop().and_then(|r| r.downcast::<Found>().ok());
                let (kind, elements) = match found.map(|f| *f) {
                    Some(Ok(found)) => found,
                    Some(Err(e)) => return reply_with(resp3, |w| w.error(e)),
                    None => return reply_with(resp3, |w| w.error("ERR SORT failed")),
                };
                let opts = sort::parse(request.args(), false).expect("parsed above");
                let mut targets: Vec<PatternTarget> = Vec::new();
                for element in &elements {
                    for pattern in opts.patterns() {
                        if let Some(t) = sort::pattern_target(pattern, element) {
                            if !targets.contains(&t) {
                                targets.push(t);
                            }
                        }
                    }
                }
                let mut by_core: Vec<(usize, Vec<PatternTarget>)> = Vec::new();
                for t in targets {
                    let owner = owner_of(&t.0);
                    match by_core.iter_mut().find(|(c, _)| *c == owner) {
                        Some((_, list)) => list.push(t),
                        None => by_core.push((owner, vec![t])),
                    }
                }
                let asked: Vec<Vec<PatternTarget>> =
                    by_core.iter().map(|(_, t)| t.clone()).collect();
                let calls = by_core
                    .into_iter()
                    .map(|(c, list)| {
                        let work: Work = Box::new(move |core: &mut Core| {
                            let values: Vec<Option<Vec<u8>>> = list
                                .iter()
                                .map(|(k, f)| {
                                    sort::lookup(&mut core.store, db, now, k, f.as_deref())
                                })
                                .collect();
                            Box::new(values) as Box<dyn Any + Send>
                        });
                        (c, work)
                    })
                    .collect();
                Step::Calls(
                    calls,
                    Box::new(move |results| {
                        let mut values: HashMap<PatternTarget, Option<Vec<u8>>> = HashMap::new();
                        for (list, result) in asked.into_iter().zip(results) {
                            let answers = result
                                .downcast::<Vec<Option<Vec<u8>>>>()
                                .map(|b| *b)
                                .unwrap_or_default();
                            values.extend(list.into_iter().zip(answers));
                        }
                        let opts = sort::parse(request.args(), false).expect("parsed above");
                        let sorted = sort::sort(elements, kind, &opts, |pattern, element| {
                            if pattern == b"#" {
                                return Some(element.to_vec());
                            }
                            values
                                .get(&sort::pattern_target(pattern, element)?)
                                .cloned()
                                .flatten()
                        });
                        let output = match sorted {
                            Ok(output) => output,
                            Err(e) => return reply_with(resp3, |w| w.error(e)),
                        };
                        let Some(dst) = opts.store.map(<[u8]>::to_vec) else {
                            return reply_with(resp3, |w| sort::reply(w, &output));
                        };
                        let dst_owner = owner_of(&dst);
                        let write: Work = Box::new(move |core: &mut Core| {
                            let mut out = Vec::new();
                            let mut w = ReplyWriter::new(&mut out, resp3);
                            sort::store_output(&mut core.store, db, now, &dst, &output, &mut w);
                            Box::new(out) as Box<dyn Any + Send>
                        });
                        Step::Calls(
                            vec![(dst_owner, write)],
                            Box::new(|r| {
                                Step::Reply(r.into_iter().next().map(bytes).unwrap_or_default())
                            }),
                        )
                    }),
                )
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_items_split_bulks_and_nulls() {
        let reply = b"*3\r\n$1\r\na\r\n$-1\r\n$4\r\nb\r\nc\r\n";
        assert_eq!(
            array_items(reply),
            vec![&b"$1\r\na\r\n"[..], b"$-1\r\n", b"$4\r\nb\r\nc\r\n"]
        );
        assert_eq!(
            array_items(b"*2\r\n_\r\n$0\r\n\r\n"),
            vec![&b"_\r\n"[..], b"$0\r\n\r\n"]
        );
    }

    #[test]
    fn integer_replies_parse() {
        assert_eq!(reply_int(b":42\r\n"), 42);
        assert_eq!(reply_int(b"-ERR x\r\n"), 0);
    }
}
