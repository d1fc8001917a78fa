//! The list family: pushes and pops at both ends, ranges, indexes, LINSERT, LREM, LTRIM,
//! LPOS, and the moves between lists.
//!
//! A list is a pack inside its entry while it fits one `list-max-listpack-size` chunk, and a
//! `QuickList` (a deque of such chunks) beyond. Writes work on the chunked form and turn a
//! single chunk back into the compact form, so there is one write path for both.

use crate::access;
use crate::errors::{self, int_arg, Error};
use crate::notify;
use crate::object::{EncodingLimits, Kind, Object, ObjectRef, QuickList};
use crate::pack;
use crate::store::{Request, Store};
use tessera_protocol::{Args, Cmd, ReplyWriter};

const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

// ---- the two forms ----

pub fn len(list: ObjectRef<'_>) -> usize {
    match list {
        ObjectRef::ListPack(p) => pack::iter(p).count(),
        ObjectRef::ListQuick(q) => q.len,
        _ => 0,
    }
}

/// Every element, head to tail (and tail to head with `.rev()`).
pub fn elements(list: ObjectRef<'_>) -> Box<dyn DoubleEndedIterator<Item = &[u8]> + '_> {
    match list {
        ObjectRef::ListPack(p) => Box::new(pack::iter(p)),
        ObjectRef::ListQuick(q) => Box::new(q.chunks.iter().flat_map(|c| pack::iter(&c.pack))),
        _ => Box::new(std::iter::empty()),
    }
}

/// The elements from `index` on, skipping whole chunks on the way.
fn from_index(list: ObjectRef<'_>, index: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    match list {
        ObjectRef::ListQuick(q) => match q.locate(index) {
            Some((chunk, within)) => Box::new(
                q.chunks
                    .range(chunk..)
                    .flat_map(|c| pack::iter(&c.pack))
                    .skip(within),
            ),
            None => Box::new(std::iter::empty()),
        },
        _ => Box::new(elements(list).skip(index)),
    }
}

/// Runs `change` on the chunked form of `list`, then stores a list that fits one chunk
/// compactly again.
fn with_chunks<R>(list: &mut Object, change: impl FnOnce(&mut QuickList) -> R) -> R {
    let mut quick = match std::mem::replace(list, Object::ListPack(Vec::new())) {
        Object::ListQuick(q) => q,
        Object::ListPack(p) => Box::new(QuickList::from_pack(p)),
        _ => unreachable!("a list is a pack or chunks"),
    };
    let result = change(&mut quick);
    *list = if quick.chunks.len() <= 1 {
        Object::ListPack(quick.chunks.pop_front().map(|c| c.pack).unwrap_or_default())
    } else {
        Object::ListQuick(quick)
    };
    result
}

pub fn push(list: &mut Object, element: &[u8], front: bool, limits: &EncodingLimits) {
    with_chunks(list, |q| q.push(element, front, limits));
}

/// What a rebuild does with one element.
enum Edit<'a> {
    Keep,
    Drop,
    /// Keep it, with a new element inserted before or after it.
    Before(&'a [u8]),
    After(&'a [u8]),
}

/// Rebuilds the list element by element as `edit` (given each index) says: LREM and LINSERT.
fn rebuild<'a>(q: &mut QuickList, limits: &EncodingLimits, edit: impl Fn(usize) -> Edit<'a>) {
    let old = std::mem::take(q);
    for (i, element) in elements(ObjectRef::ListQuick(&old)).enumerate() {
        match edit(i) {
            Edit::Keep => q.push(element, false, limits),
            Edit::Drop => {}
            Edit::Before(new) => {
                q.push(new, false, limits);
                q.push(element, false, limits);
            }
            Edit::After(new) => {
                q.push(element, false, limits);
                q.push(new, false, limits);
            }
        }
    }
}

/// Resolves Redis list indexes (negative ones count from the tail) into `start..=stop`.
pub fn clamp_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn index_of(len: usize, index: i64) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    let pos_options = match req.spec.cmd {
        Cmd::LPos => match parse_pos(args) {
            Ok(opts) => Some(opts),
            Err(e) => return out.error(&e),
        },
        _ => None,
    };
    let list = match access::read(store, req.db, args.get(1), req.now, Kind::List) {
        Ok(list) => list,
        Err(e) => return out.error(e),
    };
    match req.spec.cmd {
        Cmd::LLen => out.int(list.map_or(0, len) as i64),
        // As in Redis, a missing key answers nil before the index is even read.
        Cmd::LIndex => match (list, int_arg(args.get(2))) {
            (None, _) => out.null(),
            (Some(_), Err(e)) => out.error(&e),
            (Some(l), Ok(index)) => {
                match index_of(len(l), index).and_then(|i| from_index(l, i).next()) {
                    Some(e) => out.bulk(e),
                    None => out.null(),
                }
            }
        },
        Cmd::LRange => match (int_arg(args.get(2)), int_arg(args.get(3))) {
            (Err(e), _) | (_, Err(e)) => out.error(&e),
            (Ok(start), Ok(stop)) => {
                let range = list.and_then(|l| clamp_range(len(l), start, stop));
                let Some((l, (start, stop))) = list.zip(range) else {
                    return out.array(0);
                };
                out.array(stop - start + 1);
                from_index(l, start)
                    .take(stop - start + 1)
                    .for_each(|e| out.bulk(e));
            }
        },
        Cmd::LPos => position(list, args, pos_options.expect("parsed above"), out),
        other => out.error(&format!("ERR '{}' is not a list read", other.spec().name)),
    }
}

/// LPOS's options: RANK (which match to start from; negative from the tail), COUNT (how
/// many, 0 for all; absent for a single reply) and MAXLEN (how many elements to look at).
struct PosOptions {
    rank: i64,
    count: Option<usize>,
    max_len: usize,
}

fn parse_pos(args: Args) -> Result<PosOptions, Error> {
    let mut opts = PosOptions {
        rank: 1,
        count: None,
        max_len: 0,
    };
    let mut i = 3;
    while i < args.len() {
        let (opt, Some(value)) = (args.get(i), (i + 1 < args.len()).then(|| args.get(i + 1)))
        else {
            return Err(errors::SYNTAX.into());
        };
        let n = int_arg(value)?;
        if opt.eq_ignore_ascii_case(b"RANK") {
            if n == 0 || n == i64::MIN {
                return Err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into());
            }
            opts.rank = n;
        } else if opt.eq_ignore_ascii_case(b"COUNT") {
            if n < 0 {
                return Err("ERR COUNT can't be negative".into());
            }
            opts.count = Some(n as usize);
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") {
            if n < 0 {
                return Err("ERR MAXLEN can't be negative".into());
            }
            opts.max_len = n as usize;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    Ok(opts)
}

/// LPOS key element [RANK rank] [COUNT count] [MAXLEN len].
fn position(list: Option<ObjectRef<'_>>, args: Args, opts: PosOptions, out: &mut ReplyWriter) {
    let PosOptions {
        rank,
        count,
        max_len,
    } = opts;
    let element = args.get(2);
    let wanted = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let mut found = Vec::new();
    if let Some(l) = list {
        let n = len(l);
        let scan_limit = if max_len == 0 { n } else { max_len.min(n) };
        let indexed: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
            Box::new(elements(l).enumerate())
        } else {
            Box::new(elements(l).rev().enumerate().map(|(i, e)| (n - 1 - i, e)))
        };
        let mut skip = rank.unsigned_abs() - 1;
        for (index, e) in indexed.take(scan_limit) {
            if e != element {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(index);
            if found.len() >= wanted {
                break;
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&i) => out.int(i as i64),
            None => out.null(),
        },
        Some(_) => {
            out.array(found.len());
            found.into_iter().for_each(|i| out.int(i as i64));
        }
    }
}

// ---- writes ----

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let key = args.get(1);
    let result = match cmd {
        Cmd::LPush | Cmd::RPush | Cmd::LPushX | Cmd::RPushX => {
            let front = matches!(cmd, Cmd::LPush | Cmd::LPushX);
            let create = matches!(cmd, Cmd::LPush | Cmd::RPush);
            access::write(store, db, key, now, Kind::List, create, |l, limits| {
                with_chunks(l, |q| {
                    args.tail(2).iter().for_each(|e| q.push(e, front, limits));
                    q.len
                })
            })
            .map(|n| {
                if n.is_some() {
                    let event = if front { "lpush" } else { "rpush" };
                    access::announce(store, db, now, notify::LIST, event, key);
                }
                out.int(n.unwrap_or(0) as i64)
            })
        }
        Cmd::LPop | Cmd::RPop => return pop(store, db, now, cmd == Cmd::LPop, args, out),
        Cmd::LSet => return set(store, db, now, args, out),
        Cmd::LInsert => return insert(store, db, now, args, out),
        Cmd::LRem => return remove(store, db, now, args, out),
        Cmd::LTrim => return trim(store, db, now, args, out),
        Cmd::LMove | Cmd::BLMove => {
            let blocking = cmd == Cmd::BLMove;
            if let Err(e) = blocking
                .then(|| errors::timeout_arg(args.get(5)))
                .transpose()
            {
                return out.error(e);
            }
            return match (side(args.get(3)), side(args.get(4))) {
                (Some(from), Some(to)) => {
                    move_element(store, db, now, args, (from, to), blocking, out)
                }
                _ => out.error(errors::SYNTAX),
            };
        }
        Cmd::RPopLPush => return move_element(store, db, now, args, (false, true), false, out),
        Cmd::BRPopLPush => {
            return match errors::timeout_arg(args.get(3)) {
                Ok(_) => move_element(store, db, now, args, (false, true), true, out),
                Err(e) => out.error(e),
            }
        }
        Cmd::LMPop => return multi_pop(store, db, now, args, out),
        Cmd::BLMPop => {
            return match errors::timeout_arg(args.get(1)) {
                Ok(_) => multi_pop(store, db, now, args.tail(1), out),
                Err(e) => out.error(e),
            }
        }
        Cmd::BLPop | Cmd::BRPop => return first_pop(store, db, now, args, cmd == Cmd::BLPop, out),
        _ => return out.error("ERR not a list write"),
    };
    if let Err(e) = result {
        out.error(e);
    }
}

/// LPOP / RPOP key [count].
fn pop(store: &mut Store, db: usize, now: u64, front: bool, args: Args, out: &mut ReplyWriter) {
    let count = match args.len() {
        2 => None,
        3 => match int_arg(args.get(2)) {
            Ok(n) if n >= 0 => Some(n as usize),
            _ => return out.error(NOT_POSITIVE),
        },
        _ => return out.error(errors::SYNTAX),
    };
    let popped = access::write(store, db, args.get(1), now, Kind::List, false, |l, _| {
        with_chunks(l, |q| {
            (0..count.unwrap_or(1))
                .map_while(|_| q.pop(front))
                .collect::<Vec<_>>()
        })
    });
    if matches!(&popped, Ok(Some(p)) if !p.is_empty()) {
        announce_pop(store, db, now, front, args.get(1));
    }
    match (popped, count) {
        (Err(e), _) => out.error(e),
        (Ok(None), None) => out.null(),
        (Ok(None), Some(_)) => out.null_array(),
        (Ok(Some(mut popped)), None) => match popped.pop() {
            Some(e) => out.bulk(&e),
            None => out.null(),
        },
        (Ok(Some(popped)), Some(_)) => {
            out.array(popped.len());
            popped.iter().for_each(|e| out.bulk(e));
        }
    }
}

fn set(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let index = int_arg(args.get(2));
    let value = args.get(3);
    let result = access::write(store, db, args.get(1), now, Kind::List, false, |l, _| {
        with_chunks(l, |q| {
            // Read after the key and type checks, as Redis does.
            let index = index.map_err(|_| errors::NOT_INTEGER)?;
            let i = index_of(q.len, index).ok_or("ERR index out of range")?;
            q.replace(i, value);
            Ok(())
        })
    });
    match result {
        Err(e) | Ok(Some(Err(e))) => out.error(e),
        Ok(None) => out.error(errors::NO_SUCH_KEY),
        Ok(Some(Ok(()))) => {
            access::announce(store, db, now, notify::LIST, "lset", args.get(1));
            out.ok()
        }
    }
}

/// LINSERT key BEFORE|AFTER pivot element.
fn insert(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let place = args.get(2);
    let after = if place.eq_ignore_ascii_case(b"AFTER") {
        true
    } else if place.eq_ignore_ascii_case(b"BEFORE") {
        false
    } else {
        return out.error(errors::SYNTAX);
    };
    let (pivot, element) = (args.get(3), args.get(4));
    let result = access::write(
        store,
        db,
        args.get(1),
        now,
        Kind::List,
        false,
        |l, limits| {
            with_chunks(l, |q| {
                let Some(found) = elements(ObjectRef::ListQuick(q)).position(|e| e == pivot) else {
                    return -1;
                };
                rebuild(q, limits, |i| match i == found {
                    false => Edit::Keep,
                    true if after => Edit::After(element),
                    true => Edit::Before(element),
                });
                q.len as i64
            })
        },
    );
    match result {
        Err(e) => out.error(e),
        Ok(n) => {
            if n.is_some_and(|n| n > 0) {
                access::announce(store, db, now, notify::LIST, "linsert", args.get(1));
            }
            out.int(n.unwrap_or(0))
        }
    }
}

/// LREM key count element: `count` > 0 removes from the head, < 0 from the tail, 0 all.
fn remove(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let count = match int_arg(args.get(2)) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let element = args.get(3);
    let result = access::write(
        store,
        db,
        args.get(1),
        now,
        Kind::List,
        false,
        |l, limits| {
            with_chunks(l, |q| {
                let view = ObjectRef::ListQuick(q);
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let matches: Vec<usize> = if count >= 0 {
                    elements(view)
                        .enumerate()
                        .filter(|(_, e)| *e == element)
                        .map(|(i, _)| i)
                        .take(limit)
                        .collect()
                } else {
                    let n = q.len;
                    elements(view)
                        .rev()
                        .enumerate()
                        .filter(|(_, e)| *e == element)
                        .map(|(i, _)| n - 1 - i)
                        .take(limit)
                        .collect()
                };
                if !matches.is_empty() {
                    let doomed: std::collections::HashSet<usize> =
                        matches.iter().copied().collect();
                    rebuild(q, limits, |i| match doomed.contains(&i) {
                        true => Edit::Drop,
                        false => Edit::Keep,
                    });
                }
                matches.len()
            })
        },
    );
    match result {
        Err(e) => out.error(e),
        Ok(n) => {
            if n.is_some_and(|n| n > 0) {
                access::announce(store, db, now, notify::LIST, "lrem", args.get(1));
            }
            out.int(n.unwrap_or(0) as i64)
        }
    }
}

/// LTRIM key start stop: pops what lies outside the range from both ends.
fn trim(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let (start, stop) = match (int_arg(args.get(2)), int_arg(args.get(3))) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return out.error(&e),
    };
    let result = access::write(store, db, args.get(1), now, Kind::List, false, |l, _| {
        with_chunks(l, |q| match clamp_range(q.len, start, stop) {
            None => *q = QuickList::default(),
            Some((from, to)) => {
                let tail = q.len - 1 - to;
                q.discard(true, from);
                q.discard(false, tail);
            }
        })
    });
    match result {
        Err(e) => out.error(e),
        Ok(trimmed) => {
            if trimmed.is_some() {
                access::announce(store, db, now, notify::LIST, "ltrim", args.get(1));
            }
            out.ok()
        }
    }
}

/// A pop's event (`lpop` or `rpop`), and `del` if it emptied the list.
fn announce_pop(store: &mut Store, db: usize, now: u64, front: bool, key: &[u8]) {
    let from = pop_from(front);
    access::announce(store, db, now, from.class, from.event, key);
}

/// A pop from the head (`front`) or tail of the first non-empty of several lists.
fn pop_from(front: bool) -> access::PopFrom {
    access::PopFrom {
        kind: Kind::List,
        class: notify::LIST,
        event: if front { "lpop" } else { "rpop" },
    }
}

/// LEFT (the head: true) or RIGHT (the tail: false).
fn side(word: &[u8]) -> Option<bool> {
    if word.eq_ignore_ascii_case(b"LEFT") {
        Some(true)
    } else if word.eq_ignore_ascii_case(b"RIGHT") {
        Some(false)
    } else {
        None
    }
}

/// LMOVE / RPOPLPUSH, and the attempt of BLMOVE / BRPOPLPUSH (`blocking`), which reply
/// with a null array when the source is empty: the caller then waits.
fn move_element(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    (from_head, to_head): (bool, bool),
    blocking: bool,
    out: &mut ReplyWriter,
) {
    let (src, dst) = (args.get(1), args.get(2));
    match access::read(store, db, src, now, Kind::List) {
        Err(e) => return out.error(e),
        Ok(None) if blocking => return out.null_array(),
        Ok(None) => return out.null(),
        Ok(Some(_)) => {}
    }
    if let Err(e) = access::read(store, db, dst, now, Kind::List) {
        return out.error(e);
    }
    let popped = access::write(store, db, src, now, Kind::List, false, |l, _| {
        with_chunks(l, |q| q.pop(from_head))
    });
    let Ok(Some(Some(element))) = popped else {
        return out.null();
    };
    let pushed = access::write(store, db, dst, now, Kind::List, true, |l, limits| {
        push(l, &element, to_head, limits)
    });
    match pushed {
        Ok(_) => {
            let event = if to_head { "lpush" } else { "rpush" };
            access::announce(store, db, now, notify::LIST, event, dst);
            announce_pop(store, db, now, from_head, src);
            out.bulk(&element)
        }
        Err(e) => out.error(e),
    }
}

/// The attempt of BLPOP / BRPOP key [key ...] timeout: one element from the first non-empty
/// list as `[key, element]`, or a null array when all are empty (the caller then waits).
fn first_pop(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    front: bool,
    out: &mut ReplyWriter,
) {
    if let Err(e) = errors::timeout_arg(args.get(args.len() - 1)) {
        return out.error(e);
    }
    let keys = args.range(1, args.len() - 1);
    let pop = |l: &mut Object| with_chunks(l, |q| q.pop(front));
    access::pop_first(
        store,
        (db, now),
        keys,
        pop_from(front),
        pop,
        |out, key, element| {
            out.array(2);
            out.bulk(key);
            out.bulk(&element);
        },
        out,
    );
}

/// The arguments of LMPOP / ZMPOP, `numkeys key [key ...] <first>|<last> [COUNT count]`:
/// the keys, whether to pop from the first end, and the count if one was given.
pub fn multi_pop_args<'a>(
    args: Args<'a>,
    first: &[u8],
    last: &[u8],
) -> Result<(Args<'a>, bool, Option<usize>), &'static str> {
    let numkeys = match tessera_protocol::parse::parse_int(args.get(1)) {
        Some(n) if n > 0 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0"),
    };
    let where_at = numkeys.saturating_add(2);
    if where_at >= args.len() {
        return Err(errors::SYNTAX);
    }
    let end = args.get(where_at);
    let from_first = if end.eq_ignore_ascii_case(first) {
        true
    } else if end.eq_ignore_ascii_case(last) {
        false
    } else {
        return Err(errors::SYNTAX);
    };
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        if count.is_some() || !args.get(i).eq_ignore_ascii_case(b"COUNT") || i + 1 >= args.len() {
            return Err(errors::SYNTAX);
        }
        match tessera_protocol::parse::parse_int(args.get(i + 1)) {
            Some(n) if n > 0 => count = Some(n as usize),
            _ => return Err("ERR count should be greater than 0"),
        }
        i += 2;
    }
    Ok((args.range(2, where_at), from_first, count))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: pops from the first non-empty list.
fn multi_pop(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let (keys, from_head, count) = match multi_pop_args(args, b"LEFT", b"RIGHT") {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let pop = |l: &mut Object| {
        let popped: Vec<Vec<u8>> = with_chunks(l, |q| {
            (0..count.unwrap_or(1))
                .map_while(|_| q.pop(from_head))
                .collect()
        });
        (!popped.is_empty()).then_some(popped)
    };
    access::pop_first(
        store,
        (db, now),
        keys,
        pop_from(from_head),
        pop,
        |out, key, popped| {
            out.array(2);
            out.bulk(key);
            out.array(popped.len());
            popped.iter().for_each(|e| out.bulk(e));
        },
        out,
    );
}
