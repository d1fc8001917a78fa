//! The set family: SADD, SREM, SMEMBERS, SISMEMBER, SPOP, SRANDMEMBER, SSCAN and the rest.
//!
//! Three forms, as in Redis 7.2: an `intset` of sorted integers while every member is a
//! canonical integer (up to `set-max-intset-entries`), a pack of members (up to
//! `set-max-listpack-entries` members of at most `set-max-listpack-value` bytes), and a
//! `Dense` table beyond.

use crate::access;
use crate::dense::Dense;
use crate::errors::{self, int_arg};
use crate::notify;
use crate::object::{EncodingLimits, Kind, Object, ObjectRef};
use crate::pack;
use crate::rng::{self, Rng};
use crate::scan;
use crate::store::{Request, Store};
use std::borrow::Cow;
use tessera_protocol::parse::parse_int;
use tessera_protocol::{Args, Cmd, ReplyWriter};

/// Random picks beyond this many are refused: the reply alone would be gigabytes.
const MAX_PICKS: u64 = 1 << 26;

// ---- the three forms ----

fn int_at(ints: &[u8], i: usize) -> i64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&ints[i * 8..i * 8 + 8]);
    i64::from_le_bytes(le)
}

fn int_position(ints: &[u8], n: i64) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0, ints.len() / 8);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match int_at(ints, mid).cmp(&n) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

pub fn len(set: ObjectRef<'_>) -> usize {
    match set {
        ObjectRef::SetInts(p) => p.len() / 8,
        ObjectRef::SetPack(p) => pack::iter(p).count(),
        ObjectRef::SetDense(d) => d.len(),
        _ => 0,
    }
}

/// Member `i` of the set's order.
pub fn member_at(set: ObjectRef<'_>, i: usize) -> Cow<'_, [u8]> {
    match set {
        ObjectRef::SetInts(p) => Cow::Owned(
            tessera_protocol::reply::itoa_buf(int_at(p, i))
                .as_slice()
                .to_vec(),
        ),
        ObjectRef::SetPack(p) => Cow::Borrowed(pack::iter(p).nth(i).expect("index below len")),
        ObjectRef::SetDense(d) => Cow::Borrowed(d.at(i).field()),
        _ => Cow::Borrowed(&[]),
    }
}

/// Every member, in the set's order.
pub fn members(set: ObjectRef<'_>) -> Box<dyn Iterator<Item = Cow<'_, [u8]>> + '_> {
    match set {
        ObjectRef::SetPack(p) => Box::new(pack::iter(p).map(Cow::Borrowed)),
        ObjectRef::SetDense(d) => Box::new(d.iter().map(|p| Cow::Borrowed(p.field()))),
        _ => Box::new((0..len(set)).map(move |i| member_at(set, i))),
    }
}

pub fn contains(set: ObjectRef<'_>, member: &[u8]) -> bool {
    match set {
        ObjectRef::SetInts(p) => parse_int(member).is_some_and(|n| int_position(p, n).is_ok()),
        ObjectRef::SetPack(p) => pack::iter(p).any(|m| m == member),
        ObjectRef::SetDense(d) => d.contains(member),
        _ => false,
    }
}

fn to_dense(set: ObjectRef<'_>) -> Object {
    let mut dense = Dense::with_capacity(len(set) + 1);
    members(set).for_each(|m| _ = dense.insert(&m, b""));
    Object::SetDense(Box::new(dense))
}

/// Adds `member`; true when it is new.
pub fn add(set: &mut Object, member: &[u8], limits: &EncodingLimits) -> bool {
    if let Object::SetInts(ints) = set {
        if let Some(n) = parse_int(member) {
            let Err(at) = int_position(ints, n) else {
                return false;
            };
            ints.splice(at * 8..at * 8, n.to_le_bytes());
            if ints.len() / 8 > limits.set_max_intset_entries {
                *set = to_dense(set.view());
            }
            return true;
        }
        let fits_pack = ints.len() / 8 < limits.set_max_listpack_entries
            && member.len() <= limits.set_max_listpack_value;
        *set = if fits_pack {
            let mut p = Vec::new();
            members(set.view()).for_each(|m| pack::push_back(&mut p, &m));
            Object::SetPack(p)
        } else {
            to_dense(set.view())
        };
    }
    if let Object::SetPack(p) = set {
        if pack::iter(p).any(|m| m == member) {
            return false;
        }
        let fits = pack::iter(p).count() < limits.set_max_listpack_entries
            && member.len() <= limits.set_max_listpack_value;
        if fits {
            pack::push_back(p, member);
            return true;
        }
        *set = to_dense(set.view());
    }
    match set {
        Object::SetDense(d) => d.insert(member, b""),
        _ => unreachable!("a set is ints, a pack or a dense table"),
    }
}

/// A set of `members`, in the form the limits choose.
pub fn from_members<'m>(
    members: impl Iterator<Item = &'m [u8]>,
    limits: &EncodingLimits,
) -> Object {
    let mut set = Object::SetInts(Vec::new());
    members.for_each(|m| _ = add(&mut set, m, limits));
    set
}

/// Removes `member`; true when it was there.
pub fn remove(set: &mut Object, member: &[u8]) -> bool {
    match set {
        Object::SetInts(ints) => match parse_int(member).map(|n| int_position(ints, n)) {
            Some(Ok(at)) => {
                ints.drain(at * 8..at * 8 + 8);
                true
            }
            _ => false,
        },
        Object::SetPack(p) => {
            let found = pack::positions(p)
                .find(|(_, m)| *m == member)
                .map(|(at, _)| at);
            found.inspect(|&at| pack::remove(p, at)).is_some()
        }
        Object::SetDense(d) => d.remove(member).is_some(),
        _ => false,
    }
}

/// Removes and returns member `i`.
fn remove_at(set: &mut Object, i: usize) -> Vec<u8> {
    if let Object::SetDense(d) = set {
        return d.remove_at(i).field().to_vec();
    }
    let member = member_at(set.view(), i).into_owned();
    remove(set, &member);
    member
}

/// Positions for SRANDMEMBER / HRANDFIELD from a collection of `len`: a positive `count`
/// gives distinct positions (all of them when `count >= len`), a negative one `-count`
/// independent picks.
pub fn pick_positions(len: usize, count: i64, rng: &mut Rng) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs()).map(|_| rng.below(len)).collect();
    }
    let count = count as usize;
    if count >= len {
        return (0..len).collect();
    }
    // A partial Fisher-Yates shuffle of the positions picks `count` distinct ones.
    let mut positions: Vec<usize> = (0..len).collect();
    for i in 0..count {
        let j = i + rng.below(len - i);
        positions.swap(i, j);
    }
    positions.truncate(count);
    positions
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    match req.spec.cmd {
        Cmd::SInter | Cmd::SUnion | Cmd::SDiff => {
            return match combine(store, req.db, req.now, req.spec.cmd, args.tail(1)) {
                Ok(members) => {
                    out.set(members.len());
                    members.iter().for_each(|m| out.bulk(m));
                }
                Err(e) => out.error(e),
            };
        }
        Cmd::SInterCard => return intersection_size(store, req, out),
        _ => {}
    }
    let set = match access::read(store, req.db, args.get(1), req.now, Kind::Set) {
        Ok(set) => set,
        Err(e) => return out.error(e),
    };
    match req.spec.cmd {
        Cmd::SMembers => {
            out.set(set.map_or(0, len));
            set.into_iter().flat_map(members).for_each(|m| out.bulk(&m));
        }
        Cmd::SIsMember => out.int(set.is_some_and(|s| contains(s, args.get(2))) as i64),
        Cmd::SMIsMember => {
            out.array(args.len() - 2);
            for member in args.tail(2).iter() {
                out.int(set.is_some_and(|s| contains(s, member)) as i64);
            }
        }
        Cmd::SCard => out.int(set.map_or(0, len) as i64),
        Cmd::SRandMember => random_members(set, args, out),
        Cmd::SScan => match (scan::parse(args), set) {
            (Err(e), _) => out.error(&e),
            (Ok(opts), None) => scan::reply(out, &opts, 0, false, |_| (&[], &[]), false),
            (Ok(opts), Some(ObjectRef::SetDense(d))) => {
                scan::reply(out, &opts, d.len(), true, |i| (d.at(i).field(), &[]), false)
            }
            (Ok(opts), Some(s)) => {
                let all: Vec<Cow<[u8]>> = members(s).collect();
                scan::reply(out, &opts, all.len(), false, |i| (&all[i], &[]), false);
            }
        },
        other => out.error(&format!("ERR '{}' is not a set read", other.spec().name)),
    }
}

/// A copy of the members of the set at `key`; `None` when the key is missing.
fn copy_members(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<Vec<Vec<u8>>>, &'static str> {
    let set = access::read(store, db, key, now, Kind::Set)?;
    Ok(set.map(|s| members(s).map(Cow::into_owned).collect()))
}

/// SINTER, SUNION or SDIFF of the sets at `keys`: every key is type-checked first; a missing
/// one reads as empty.
fn combine(
    store: &mut Store,
    db: usize,
    now: u64,
    cmd: Cmd,
    keys: Args,
) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys.iter() {
        sets.push(copy_members(store, db, key, now)?.unwrap_or_default());
    }
    let as_set = |members: &Vec<Vec<u8>>| -> std::collections::HashSet<Vec<u8>> {
        members.iter().cloned().collect()
    };
    Ok(match cmd {
        Cmd::SInter | Cmd::SInterStore => {
            sets.sort_by_key(Vec::len);
            let others: Vec<_> = sets[1..].iter().map(as_set).collect();
            sets.swap_remove(0)
                .into_iter()
                .filter(|m| others.iter().all(|o| o.contains(m)))
                .collect()
        }
        Cmd::SUnion | Cmd::SUnionStore => {
            let mut seen = std::collections::HashSet::new();
            sets.into_iter()
                .flatten()
                .filter(|m| seen.insert(m.clone()))
                .collect()
        }
        _ => {
            let others: Vec<_> = sets[1..].iter().map(as_set).collect();
            sets.swap_remove(0)
                .into_iter()
                .filter(|m| !others.iter().any(|o| o.contains(m)))
                .collect()
        }
    })
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit].
fn intersection_size(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    let numkeys = match parse_int(args.get(1)) {
        Some(n) if n > 0 => n as usize,
        _ => return out.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > args.len() - 2 {
        return out.error("ERR Number of keys can't be greater than number of args");
    }
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if !args.get(i).eq_ignore_ascii_case(b"LIMIT") || i + 1 >= args.len() {
            return out.error(errors::SYNTAX);
        }
        match parse_int(args.get(i + 1)) {
            Some(n) if n >= 0 => limit = n as usize,
            _ => return out.error("ERR LIMIT can't be negative"),
        }
        i += 2;
    }
    let keys = args.range(2, 2 + numkeys);
    match combine(store, req.db, req.now, Cmd::SInter, keys) {
        Ok(members) if limit > 0 => out.int(members.len().min(limit) as i64),
        Ok(members) => out.int(members.len() as i64),
        Err(e) => out.error(e),
    }
}

/// Reads a pick count; Redis refuses magnitudes it could never reply with.
pub fn pick_count(arg: &[u8]) -> Result<i64, Cow<'static, str>> {
    let count = int_arg(arg)?;
    if count.unsigned_abs() > MAX_PICKS {
        return Err("ERR value is out of range".into());
    }
    Ok(count)
}

fn random_members(set: Option<ObjectRef<'_>>, args: Args, out: &mut ReplyWriter) {
    if args.len() == 2 {
        return match set {
            Some(s) => out.bulk(&member_at(s, Rng::new(rng::seed()).below(len(s)))),
            None => out.null(),
        };
    }
    if args.len() > 3 {
        return out.error(errors::SYNTAX);
    }
    let count = match pick_count(args.get(2)) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let picks = set.map_or_else(Vec::new, |s| {
        pick_positions(len(s), count, &mut Rng::new(rng::seed()))
    });
    out.array(picks.len());
    for i in picks {
        out.bulk(&member_at(set.expect("picked from a set"), i));
    }
}

// ---- writes ----

pub fn apply(
    store: &mut Store,
    db: usize,
    now: u64,
    cmd: Cmd,
    args: Args,
    seed: u64,
    out: &mut ReplyWriter,
) {
    let key = args.get(1);
    let result = match cmd {
        Cmd::SAdd | Cmd::SRem => {
            let adding = cmd == Cmd::SAdd;
            access::write(store, db, key, now, Kind::Set, adding, |s, limits| {
                let members = args.tail(2);
                if adding {
                    members.iter().filter(|m| add(s, m, limits)).count()
                } else {
                    members.iter().filter(|m| remove(s, m)).count()
                }
            })
            .map(|changed| {
                let changed = changed.unwrap_or(0);
                if changed > 0 {
                    let event = if adding { "sadd" } else { "srem" };
                    access::announce(store, db, now, notify::SET, event, key);
                }
                out.int(changed as i64)
            })
        }
        Cmd::SPop => return pop(store, db, now, args, seed, out),
        Cmd::SInterStore | Cmd::SUnionStore | Cmd::SDiffStore => {
            let combined = match combine(store, db, now, cmd, args.tail(2)) {
                Ok(members) => members,
                Err(e) => return out.error(e),
            };
            let limits = store.limits;
            let set = (!combined.is_empty())
                .then(|| from_members(combined.iter().map(Vec::as_slice), &limits));
            let event = match cmd {
                Cmd::SInterStore => "sinterstore",
                Cmd::SUnionStore => "sunionstore",
                _ => "sdiffstore",
            };
            access::replace(store, db, now, key, set, (notify::SET, event));
            return out.int(combined.len() as i64);
        }
        Cmd::SMove => return move_member(store, db, now, args, out),
        _ => return out.error("ERR not a set write"),
    };
    if let Err(e) = result {
        out.error(e);
    }
}

/// SMOVE source destination member.
fn move_member(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let (src, dst, member) = (args.get(1), args.get(2), args.get(3));
    let present = match access::read(store, db, src, now, Kind::Set) {
        Err(e) => return out.error(e),
        Ok(None) => return out.int(0),
        Ok(Some(set)) => contains(set, member),
    };
    if let Err(e) = access::read(store, db, dst, now, Kind::Set) {
        return out.error(e);
    }
    if src == dst || !present {
        return out.int(present as i64);
    }
    let moved = access::write(store, db, src, now, Kind::Set, false, |s, _| {
        remove(s, member)
    })
    .and_then(|_| {
        access::announce(store, db, now, notify::SET, "srem", src);
        access::write(store, db, dst, now, Kind::Set, true, |s, limits| {
            add(s, member, limits)
        })
    });
    match moved {
        Ok(added) => {
            if added == Some(true) {
                access::announce(store, db, now, notify::SET, "sadd", dst);
            }
            out.int(1)
        }
        Err(e) => out.error(e),
    }
}

/// SPOP key [count]: members picked by the effect's seed, so replicas pop the same ones.
fn pop(store: &mut Store, db: usize, now: u64, args: Args, seed: u64, out: &mut ReplyWriter) {
    let count = match args.len() {
        2 => None,
        3 => match int_arg(args.get(2)) {
            Ok(n) if n >= 0 => Some(n as usize),
            _ => return out.error("ERR value is out of range, must be positive"),
        },
        _ => return out.error(errors::SYNTAX),
    };
    let mut rng = Rng::new(seed);
    let popped = access::write(store, db, args.get(1), now, Kind::Set, false, |s, _| {
        let n = count.unwrap_or(1).min(len(s.view()));
        (0..n)
            .map(|_| {
                let i = rng.below(len(s.view()));
                remove_at(s, i)
            })
            .collect::<Vec<_>>()
    });
    if matches!(&popped, Ok(Some(p)) if !p.is_empty()) {
        access::announce(store, db, now, notify::SET, "spop", args.get(1));
    }
    match (popped, count) {
        (Err(e), _) => out.error(e),
        (Ok(popped), None) => match popped.and_then(|mut p| p.pop()) {
            Some(member) => out.bulk(&member),
            None => out.null(),
        },
        (Ok(popped), Some(_)) => {
            let popped = popped.unwrap_or_default();
            out.set(popped.len());
            popped.iter().for_each(|m| out.bulk(m));
        }
    }
}
