//! The sorted-set family: ZADD, ZRANGE and its variants, ZPOPMIN, ZUNIONSTORE and the rest.
//!
//! A small sorted set is a pack of members and scores in score order inside its entry (Redis
//! 7.2's `listpack`); past `zset-max-listpack-entries` members, or once a member is longer
//! than `zset-max-listpack-value`, it becomes a `Ranked` tree (reported as `skiplist`).
//! Reads see either form as a `Sorted` sequence addressed by rank.

use crate::access;
use crate::errors::{self, float_arg, int_arg, Error};
use crate::glob;
use crate::keys::parse_scan;
use crate::notify;
use crate::object::{EncodingLimits, Kind, Object, ObjectRef};
use crate::pack;
use crate::ranked::Ranked;
use crate::rng::{self, Rng};
use crate::sets;
use crate::store::{Request, Store};
use std::cmp::Ordering;
use tessera_protocol::parse::parse_int;
use tessera_protocol::{Args, Cmd, ReplyWriter};

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";
const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

// ---- the two forms ----

fn read_score(bytes: &[u8]) -> f64 {
    f64::from_le_bytes(bytes.try_into().expect("a packed score is 8 bytes"))
}

fn order(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .expect("scores are never NaN")
        .then_with(|| a.1.cmp(b.1))
}

/// The (byte position, member, score) of each element of a pack, in order.
fn pack_elements(p: &[u8]) -> impl Iterator<Item = (usize, &[u8], f64)> + '_ {
    let mut positions = pack::positions(p);
    std::iter::from_fn(move || {
        let (at, member) = positions.next()?;
        let (_, score) = positions.next()?;
        Some((at, member, read_score(score)))
    })
}

/// A sorted set's elements in order, addressed by rank whichever form holds them.
enum Sorted<'a> {
    Pack(Vec<(&'a [u8], f64)>),
    Tree(&'a Ranked),
}

impl<'a> Sorted<'a> {
    fn of(zset: ObjectRef<'a>) -> Sorted<'a> {
        match zset {
            ObjectRef::ZSetTree(t) => Sorted::Tree(t),
            ObjectRef::ZSetPack(p) => {
                Sorted::Pack(pack_elements(p).map(|(_, m, s)| (m, s)).collect())
            }
            _ => Sorted::Pack(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Sorted::Pack(v) => v.len(),
            Sorted::Tree(t) => t.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Sorted::Pack(v) => v.iter().find(|(m, _)| *m == member).map(|e| e.1),
            Sorted::Tree(t) => t.score(member),
        }
    }

    /// How many elements satisfy `below`, which holds for a prefix of the order.
    fn count_below(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            Sorted::Pack(v) => v.partition_point(|&(m, s)| below(s, m)),
            Sorted::Tree(t) => t.count_below(below),
        }
    }

    fn rank(&self, member: &[u8]) -> Option<usize> {
        match self {
            Sorted::Pack(v) => v.iter().position(|(m, _)| *m == member),
            Sorted::Tree(t) => t.rank(member),
        }
    }

    /// The elements ranked `from..to`, ascending or (with `rev`) descending.
    fn range(&self, from: usize, to: usize, rev: bool) -> Vec<(&'a [u8], f64)> {
        let to = to.min(self.len());
        if from >= to {
            return Vec::new();
        }
        match self {
            Sorted::Pack(v) => {
                let mut picked = v[from..to].to_vec();
                if rev {
                    picked.reverse();
                }
                picked
            }
            Sorted::Tree(t) => {
                let mut picked = Vec::with_capacity(to - from);
                t.visit(from, to, rev, |m, s| picked.push((m, s)));
                picked
            }
        }
    }

    fn at(&self, rank: usize) -> (&'a [u8], f64) {
        match self {
            Sorted::Pack(v) => v[rank],
            Sorted::Tree(t) => t.at(rank),
        }
    }
}

/// Sets `member`'s score, converting the pack to a tree when it outgrows the limits; returns
/// the score it had.
pub fn insert(
    zset: &mut Object,
    member: &[u8],
    score: f64,
    limits: &EncodingLimits,
) -> Option<f64> {
    if matches!(zset, Object::ZSetPack(_)) {
        let old = remove(zset, member);
        let Object::ZSetPack(p) = zset else {
            unreachable!("removal keeps the form")
        };
        let count = pack_elements(p).count();
        if count < limits.zset_max_listpack_entries
            && member.len() <= limits.zset_max_listpack_value
        {
            let at = pack_elements(p)
                .find(|&(_, m, s)| order((s, m), (score, member)) == Ordering::Greater)
                .map_or(p.len(), |(at, _, _)| at);
            pack::insert(p, at, member);
            pack::insert(
                p,
                at + pack::element_size(member.len()),
                &score.to_le_bytes(),
            );
            return old;
        }
        let mut tree = Ranked::default();
        pack_elements(p).for_each(|(_, m, s)| _ = tree.insert(m, s));
        tree.insert(member, score);
        *zset = Object::ZSetTree(Box::new(tree));
        return old;
    }
    match zset {
        Object::ZSetTree(t) => t.insert(member, score),
        _ => unreachable!("a sorted set is a pack or a tree"),
    }
}

/// Removes `member`; returns its score.
pub fn remove(zset: &mut Object, member: &[u8]) -> Option<f64> {
    match zset {
        Object::ZSetPack(p) => {
            let (at, _, score) = pack_elements(p).find(|&(_, m, _)| m == member)?;
            pack::remove(p, at);
            pack::remove(p, at);
            Some(score)
        }
        Object::ZSetTree(t) => t.remove(member),
        _ => None,
    }
}

/// A sorted set of `elements` (distinct members), in the form the limits choose.
pub fn from_elements<'m>(
    elements: impl Iterator<Item = (&'m [u8], f64)>,
    limits: &EncodingLimits,
) -> Object {
    let mut zset = Object::ZSetPack(Vec::new());
    elements.for_each(|(m, s)| _ = insert(&mut zset, m, s, limits));
    zset
}

pub fn len(zset: ObjectRef<'_>) -> usize {
    match zset {
        ObjectRef::ZSetPack(p) => pack::iter(p).count() / 2,
        ObjectRef::ZSetTree(t) => t.len(),
        _ => 0,
    }
}

/// Every element of a sorted set, in order.
pub fn elements(zset: ObjectRef<'_>) -> Vec<(&[u8], f64)> {
    let sorted = Sorted::of(zset);
    sorted.range(0, sorted.len(), false)
}

// ---- replies ----

/// Members with their scores: flat in RESP2, one pair per element in RESP3 (as Redis).
fn reply_elements(out: &mut ReplyWriter, elements: &[(&[u8], f64)], with_scores: bool) {
    let nested = with_scores && out.resp3();
    out.array(elements.len() * if with_scores && !nested { 2 } else { 1 });
    for &(member, score) in elements {
        if nested {
            out.array(2);
        }
        out.bulk(member);
        if with_scores {
            out.double(score);
        }
    }
}

fn reply_score(out: &mut ReplyWriter, score: Option<f64>) {
    match score {
        Some(s) => out.double(s),
        None => out.null(),
    }
}

// ---- ranges ----

/// One end of a score or lex range: which elements lie below it.
#[derive(Clone, Copy)]
enum Bound<'a> {
    Score {
        value: f64,
        open: bool,
    },
    /// `-` and `+` are `Min` and `Max`.
    Lex {
        member: &'a [u8],
        open: bool,
    },
    Min,
    Max,
}

fn score_bound(arg: &[u8]) -> Option<Bound<'_>> {
    let (open, text) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    // Redis reads bounds with strtod: leading spaces pass, and nothing at all reads as 0.
    let value = match text.iter().position(|b| !b.is_ascii_whitespace()) {
        _ if text.is_empty() => 0.0,
        Some(start) => float_arg(&text[start..])?,
        None => return None,
    };
    Some(Bound::Score { value, open })
}

fn lex_bound(arg: &[u8]) -> Option<Bound<'_>> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Some(Bound::Min),
        Some(b'+') if arg.len() == 1 => Some(Bound::Max),
        Some(b'[') => Some(Bound::Lex {
            member: &arg[1..],
            open: false,
        }),
        Some(b'(') => Some(Bound::Lex {
            member: &arg[1..],
            open: true,
        }),
        _ => None,
    }
}

/// Elements before `bound` when it is the low end (`low`), or up to it as the high end.
fn count_to(sorted: &Sorted, bound: Bound, low: bool) -> usize {
    match bound {
        Bound::Min => 0,
        Bound::Max => sorted.len(),
        // The low end excludes an open bound's own value; the high end includes a closed one.
        Bound::Score { value, open } => {
            if open == low {
                sorted.count_below(|s, _| s <= value)
            } else {
                sorted.count_below(|s, _| s < value)
            }
        }
        Bound::Lex { member, open } => {
            if open == low {
                sorted.count_below(|_, m| m <= member)
            } else {
                sorted.count_below(|_, m| m < member)
            }
        }
    }
}

/// The rank interval of the elements between `min` and `max`.
fn bounded(sorted: &Sorted, min: Bound, max: Bound) -> (usize, usize) {
    let from = count_to(sorted, min, true);
    let to = count_to(sorted, max, false);
    (from, to.max(from))
}

/// The rank interval Redis's `start stop` indexes name (negative ones count from the end).
fn rank_interval(len: usize, start: i64, stop: i64) -> (usize, usize) {
    crate::lists::clamp_range(len, start, stop).map_or((0, 0), |(from, to)| (from, to + 1))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
struct RangeQuery<'a> {
    by: By,
    rev: bool,
    start: &'a [u8],
    stop: &'a [u8],
    offset: i64,
    /// Negative: no limit.
    count: i64,
    with_scores: bool,
}

/// Parses `start stop [options]` at `at`; `by` and `rev` are fixed by legacy commands and
/// chosen by options for ZRANGE and ZRANGESTORE (`chooses`).
fn parse_range(
    args: Args<'_>,
    at: usize,
    mut by: Option<By>,
    mut rev: Option<bool>,
    store: bool,
) -> Result<RangeQuery<'_>, Error> {
    let (mut offset, mut count, mut with_scores) = (0, -1, false);
    let mut i = at + 2;
    while i < args.len() {
        let word = args.get(i);
        let left = args.len() - i - 1;
        if !store && word.eq_ignore_ascii_case(b"WITHSCORES") {
            with_scores = true;
        } else if word.eq_ignore_ascii_case(b"LIMIT") && left >= 2 {
            offset = int_arg(args.get(i + 1))?;
            count = int_arg(args.get(i + 2))?;
            i += 2;
        } else if rev.is_none() && word.eq_ignore_ascii_case(b"REV") {
            rev = Some(true);
        } else if by.is_none() && word.eq_ignore_ascii_case(b"BYLEX") {
            by = Some(By::Lex);
        } else if by.is_none() && word.eq_ignore_ascii_case(b"BYSCORE") {
            by = Some(By::Score);
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let (by, rev) = (by.unwrap_or(By::Rank), rev.unwrap_or(false));
    if count != -1 && by == By::Rank {
        return Err(LIMIT_NEEDS_BY.into());
    }
    if with_scores && by == By::Lex {
        return Err(WITHSCORES_BYLEX.into());
    }
    let (mut start, mut stop) = (args.get(at), args.get(at + 1));
    if rev && by != By::Rank {
        std::mem::swap(&mut start, &mut stop);
    }
    Ok(RangeQuery {
        by,
        rev,
        start,
        stop,
        offset,
        count,
        with_scores,
    })
}

/// The bounds of a score or lex query, checked before the key is read (as Redis does).
fn query_bounds<'a>(q: &RangeQuery<'a>) -> Result<Option<(Bound<'a>, Bound<'a>)>, Error> {
    match q.by {
        By::Rank => {
            int_arg(q.start)?;
            int_arg(q.stop)?;
            Ok(None)
        }
        By::Score => match (score_bound(q.start), score_bound(q.stop)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(NOT_FLOAT_RANGE.into()),
        },
        By::Lex => match (lex_bound(q.start), lex_bound(q.stop)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(NOT_LEX_RANGE.into()),
        },
    }
}

/// The elements a query selects, in reply order.
fn select<'a>(
    sorted: &Sorted<'a>,
    q: &RangeQuery,
    bounds: Option<(Bound, Bound)>,
) -> Vec<(&'a [u8], f64)> {
    let Some((min, max)) = bounds else {
        let start = parse_int(q.start).expect("checked");
        let stop = parse_int(q.stop).expect("checked");
        let (from, to) = rank_interval(sorted.len(), start, stop);
        return if q.rev {
            let n = sorted.len();
            sorted.range(n - to, n - from, true)
        } else {
            sorted.range(from, to, false)
        };
    };
    let (from, to) = bounded(sorted, min, max);
    if q.offset < 0 {
        return Vec::new();
    }
    let skip = (q.offset as usize).min(to - from);
    let take = if q.count < 0 {
        usize::MAX
    } else {
        q.count as usize
    };
    if q.rev {
        let end = to - skip;
        sorted.range(end.saturating_sub(take).max(from), end, true)
    } else {
        let begin = from + skip;
        sorted.range(begin, begin.saturating_add(take).min(to), false)
    }
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    match req.spec.cmd {
        Cmd::ZUnion | Cmd::ZInter | Cmd::ZDiff | Cmd::ZInterCard => {
            return match combine(store, req.db, req.now, req.spec.cmd, args, 1) {
                Ok(Combined::Count(n)) => out.int(n as i64),
                Ok(Combined::Elements(elements, with_scores)) => {
                    let borrowed: Vec<(&[u8], f64)> =
                        elements.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
                    reply_elements(out, &borrowed, with_scores)
                }
                Err(e) => out.error(&e),
            };
        }
        _ => {}
    }
    let range_query = match req.spec.cmd {
        Cmd::ZRange => Some(parse_range(args, 2, None, None, false)),
        Cmd::ZRevRange => Some(parse_range(args, 2, Some(By::Rank), Some(true), false)),
        Cmd::ZRangeByScore => Some(parse_range(args, 2, Some(By::Score), Some(false), false)),
        Cmd::ZRevRangeByScore => Some(parse_range(args, 2, Some(By::Score), Some(true), false)),
        Cmd::ZRangeByLex => Some(parse_range(args, 2, Some(By::Lex), Some(false), false)),
        Cmd::ZRevRangeByLex => Some(parse_range(args, 2, Some(By::Lex), Some(true), false)),
        _ => None,
    };
    if let Some(query) = range_query {
        let parsed = query.and_then(|q| query_bounds(&q).map(|b| (q, b)));
        let (q, bounds) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return out.error(&e),
        };
        return match access::read(store, req.db, args.get(1), req.now, Kind::ZSet) {
            Err(e) => out.error(e),
            Ok(None) => out.array(0),
            Ok(Some(z)) => reply_elements(out, &select(&Sorted::of(z), &q, bounds), q.with_scores),
        };
    }
    let count_bounds = match req.spec.cmd {
        Cmd::ZCount => Some(
            score_bound(args.get(2))
                .zip(score_bound(args.get(3)))
                .ok_or(NOT_FLOAT_RANGE),
        ),
        Cmd::ZLexCount => Some(
            lex_bound(args.get(2))
                .zip(lex_bound(args.get(3)))
                .ok_or(NOT_LEX_RANGE),
        ),
        _ => None,
    };
    if let Some(Err(e)) = count_bounds {
        return out.error(e);
    }
    let zset = match access::read(store, req.db, args.get(1), req.now, Kind::ZSet) {
        Ok(z) => z.map(Sorted::of),
        Err(e) => return out.error(e),
    };
    if let Some(Ok((min, max))) = count_bounds {
        let (from, to) = zset.map_or((0, 0), |z| bounded(&z, min, max));
        return out.int((to - from) as i64);
    }
    match req.spec.cmd {
        Cmd::ZCard => out.int(zset.map_or(0, |z| z.len()) as i64),
        Cmd::ZScore => reply_score(out, zset.and_then(|z| z.score(args.get(2)))),
        Cmd::ZMScore => {
            out.array(args.len() - 2);
            for member in args.tail(2).iter() {
                reply_score(out, zset.as_ref().and_then(|z| z.score(member)));
            }
        }
        Cmd::ZRank | Cmd::ZRevRank => rank(zset, req.spec.cmd == Cmd::ZRevRank, args, out),
        Cmd::ZRandMember => random_members(zset, args, out),
        Cmd::ZScan => scan(zset, args, out),
        other => out.error(&format!(
            "ERR '{}' is not a sorted-set read",
            other.spec().name
        )),
    }
}

/// ZRANK / ZREVRANK key member [WITHSCORE].
fn rank(zset: Option<Sorted>, rev: bool, args: Args, out: &mut ReplyWriter) {
    let with_score = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"WITHSCORE") => true,
        _ => return out.error(errors::SYNTAX),
    };
    let member = args.get(2);
    let found = zset.and_then(|z| {
        let rank = z.rank(member)?;
        let rank = if rev { z.len() - 1 - rank } else { rank };
        Some((rank, z.score(member)?))
    });
    match found {
        None if with_score => out.null_array(),
        None => out.null(),
        Some((rank, score)) if with_score => {
            out.array(2);
            out.int(rank as i64);
            out.double(score);
        }
        Some((rank, _)) => out.int(rank as i64),
    }
}

/// ZRANDMEMBER key [count [WITHSCORES]]: a positive count picks distinct members, a negative
/// one may repeat them.
fn random_members(zset: Option<Sorted>, args: Args, out: &mut ReplyWriter) {
    if args.len() == 2 {
        return match zset {
            Some(z) => out.bulk(z.at(Rng::new(rng::seed()).below(z.len())).0),
            None => out.null(),
        };
    }
    let count = match sets::pick_count(args.get(2)) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let with_scores = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"WITHSCORES") => true,
        _ => return out.error(errors::SYNTAX),
    };
    let picked: Vec<(&[u8], f64)> = zset.map_or_else(Vec::new, |z| {
        sets::pick_positions(z.len(), count, &mut Rng::new(rng::seed()))
            .into_iter()
            .map(|i| z.at(i))
            .collect()
    });
    reply_elements(out, &picked, with_scores);
}

/// The cursor of the first element scored `score`: the score's bits mapped so that cursors
/// grow with scores (never 0, which starts and ends an iteration).
fn score_cursor(score: f64) -> u64 {
    // -0 and 0 sort as equal, so they must share a cursor.
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]. A pack comes back whole; a tree is walked
/// in score order with the cursor naming the next score to return, so a scan never ends
/// inside a run of equal scores and every element present throughout is returned.
fn scan(zset: Option<Sorted>, args: Args, out: &mut ReplyWriter) {
    let opts = match parse_scan(args.tail(1)) {
        Ok(opts) => opts,
        Err(e) => return out.error(&e),
    };
    let (found, next) = match &zset {
        None => (Vec::new(), 0),
        Some(z @ Sorted::Pack(_)) => (z.range(0, z.len(), false), 0),
        Some(z) => {
            let from = match opts.cursor {
                0 => 0,
                c => z.count_below(|s, _| score_cursor(s) < c),
            };
            let mut to = (from + opts.count.max(1)).min(z.len());
            if to < z.len() {
                let last = z.at(to - 1).1;
                to = z.count_below(|s, _| s <= last);
            }
            let next = if to < z.len() {
                score_cursor(z.at(to).1)
            } else {
                0
            };
            (z.range(from, to, false), next)
        }
    };
    let found: Vec<_> = found
        .into_iter()
        .filter(|(m, _)| opts.pattern.as_deref().is_none_or(|p| glob::matches(p, m)))
        .collect();
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len() * 2);
    for (member, score) in found {
        out.bulk(member);
        out.bulk(tessera_protocol::reply::format_double(score).as_bytes());
    }
}

// ---- union, intersection, difference ----

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

enum Combined {
    Elements(Vec<(Vec<u8>, f64)>, bool),
    Count(usize),
}

/// The elements of the sorted set or set at `key` (a set's members score 1).
fn copy_elements(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<Vec<(Vec<u8>, f64)>, &'static str> {
    let (ks, _) = store.db_and_stats(db);
    let Some(entry) = ks.get(key, now) else {
        return Ok(Vec::new());
    };
    match entry.object() {
        Some(z) if z.kind() == Kind::ZSet => Ok(elements(z)
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect()),
        Some(s) if s.kind() == Kind::Set => {
            Ok(sets::members(s).map(|m| (m.into_owned(), 1.0)).collect())
        }
        _ => Err(errors::WRONGTYPE),
    }
}

/// ZUNION / ZINTER / ZDIFF / ZINTERCARD (`numkeys` at `at`, 1) and their STORE forms (at 2).
fn combine(
    store: &mut Store,
    db: usize,
    now: u64,
    cmd: Cmd,
    args: Args,
    at: usize,
) -> Result<Combined, Error> {
    let numkeys = int_arg(args.get(at))?;
    if numkeys < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            cmd.spec().name
        )
        .into());
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - at - 1 {
        return Err(errors::SYNTAX.into());
    }
    let keys = args.range(at + 1, at + 1 + numkeys);
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys.iter() {
        inputs.push(copy_elements(store, db, key, now)?);
    }
    let diff = matches!(cmd, Cmd::ZDiff | Cmd::ZDiffStore);
    let card = cmd == Cmd::ZInterCard;
    let store_form = matches!(cmd, Cmd::ZUnionStore | Cmd::ZInterStore | Cmd::ZDiffStore);
    let mut weights = vec![1.0; numkeys];
    let (mut aggregate, mut with_scores, mut limit) = (Aggregate::Sum, false, 0usize);
    let mut i = at + 1 + numkeys;
    while i < args.len() {
        let word = args.get(i);
        let left = args.len() - i;
        if !diff && !card && left > numkeys && word.eq_ignore_ascii_case(b"WEIGHTS") {
            for (w, arg) in weights
                .iter_mut()
                .zip(args.range(i + 1, i + 1 + numkeys).iter())
            {
                *w = float_arg(arg).ok_or("ERR weight value is not a float")?;
            }
            i += numkeys;
        } else if !diff && !card && left >= 2 && word.eq_ignore_ascii_case(b"AGGREGATE") {
            let kind = args.get(i + 1);
            aggregate = if kind.eq_ignore_ascii_case(b"SUM") {
                Aggregate::Sum
            } else if kind.eq_ignore_ascii_case(b"MIN") {
                Aggregate::Min
            } else if kind.eq_ignore_ascii_case(b"MAX") {
                Aggregate::Max
            } else {
                return Err(errors::SYNTAX.into());
            };
            i += 1;
        } else if !store_form && !card && word.eq_ignore_ascii_case(b"WITHSCORES") {
            with_scores = true;
        } else if card && left >= 2 && word.eq_ignore_ascii_case(b"LIMIT") {
            limit = match parse_int(args.get(i + 1)) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err("ERR LIMIT can't be negative".into()),
            };
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let weighted = |score: f64, weight: f64| {
        let w = score * weight;
        if w.is_nan() {
            0.0
        } else {
            w
        }
    };
    let merge = |a: f64, b: f64| match aggregate {
        Aggregate::Sum => {
            let s = a + b;
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    };
    let mut result: Vec<(Vec<u8>, f64)> = match cmd {
        Cmd::ZUnion | Cmd::ZUnionStore => {
            let mut at_member: std::collections::HashMap<Vec<u8>, f64> = Default::default();
            let mut order = Vec::new();
            for (input, &w) in inputs.into_iter().zip(&weights) {
                for (m, s) in input {
                    let s = weighted(s, w);
                    match at_member.get_mut(&m) {
                        Some(total) => *total = merge(*total, s),
                        None => {
                            order.push(m.clone());
                            at_member.insert(m, s);
                        }
                    }
                }
            }
            order
                .into_iter()
                .map(|m| {
                    let s = at_member[&m];
                    (m, s)
                })
                .collect()
        }
        Cmd::ZDiff | Cmd::ZDiffStore => {
            let others: std::collections::HashSet<Vec<u8>> = inputs[1..]
                .iter()
                .flatten()
                .map(|(m, _)| m.clone())
                .collect();
            inputs
                .swap_remove(0)
                .into_iter()
                .filter(|(m, _)| !others.contains(m))
                .collect()
        }
        _ => {
            let maps: Vec<std::collections::HashMap<&[u8], f64>> = inputs[1..]
                .iter()
                .map(|input| input.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                .collect();
            let mut found = Vec::new();
            'members: for (m, s) in &inputs[0] {
                let mut total = weighted(*s, weights[0]);
                for (map, &w) in maps.iter().zip(&weights[1..]) {
                    match map.get(m.as_slice()) {
                        Some(&other) => total = merge(total, weighted(other, w)),
                        None => continue 'members,
                    }
                }
                found.push((m.clone(), total));
                if card && limit > 0 && found.len() == limit {
                    break;
                }
            }
            found
        }
    };
    if card {
        return Ok(Combined::Count(result.len()));
    }
    result.sort_by(|a, b| order((a.1, &a.0), (b.1, &b.0)));
    Ok(Combined::Elements(result, with_scores))
}

// ---- writes ----

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let key = args.get(1);
    let result = match cmd {
        Cmd::ZAdd => return add(store, db, now, args, out),
        Cmd::ZIncrBy => {
            let Some(increment) = float_arg(args.get(2)) else {
                return out.error(errors::NOT_FLOAT);
            };
            let member = args.get(3);
            access::write(store, db, key, now, Kind::ZSet, true, |z, limits| {
                let score = Sorted::of(z.view()).score(member).unwrap_or(0.0) + increment;
                if score.is_nan() {
                    return Err(NAN_SCORE);
                }
                insert(z, member, score, limits);
                Ok(score)
            })
            .and_then(|r| r.expect("created"))
            .map(|score| {
                access::announce(store, db, now, notify::ZSET, "zincr", key);
                out.double(score)
            })
        }
        Cmd::ZRem => access::write(store, db, key, now, Kind::ZSet, false, |z, _| {
            args.tail(2)
                .iter()
                .filter(|m| remove(z, m).is_some())
                .count()
        })
        .map(|removed| {
            let removed = removed.unwrap_or(0);
            if removed > 0 {
                access::announce(store, db, now, notify::ZSET, "zrem", key);
            }
            out.int(removed as i64)
        }),
        Cmd::ZRemRangeByRank | Cmd::ZRemRangeByScore | Cmd::ZRemRangeByLex => {
            return remove_range(store, db, now, cmd, args, out)
        }
        Cmd::ZPopMin | Cmd::ZPopMax => return pop(store, db, now, args, cmd == Cmd::ZPopMin, out),
        Cmd::ZMPop => return multi_pop(store, db, now, args, out),
        Cmd::BZMPop => {
            return match errors::timeout_arg(args.get(1)) {
                Ok(_) => multi_pop(store, db, now, args.tail(1), out),
                Err(e) => out.error(e),
            }
        }
        Cmd::BZPopMin | Cmd::BZPopMax => {
            return first_pop(store, db, now, args, cmd == Cmd::BZPopMin, out)
        }
        Cmd::ZRangeStore => return range_store(store, db, now, args, out),
        Cmd::ZUnionStore | Cmd::ZInterStore | Cmd::ZDiffStore => {
            return match combine(store, db, now, cmd, args, 2) {
                Ok(Combined::Elements(elements, _)) => {
                    let stored = elements.iter().map(|(m, s)| (m.as_slice(), *s));
                    let event = match cmd {
                        Cmd::ZUnionStore => "zunionstore",
                        Cmd::ZInterStore => "zinterstore",
                        _ => "zdiffstore",
                    };
                    replace_with(store, db, now, key, event, stored);
                    out.int(elements.len() as i64)
                }
                Ok(Combined::Count(n)) => out.int(n as i64),
                Err(e) => out.error(&e),
            };
        }
        _ => return out.error("ERR not a sorted-set write"),
    };
    if let Err(e) = result {
        out.error(e);
    }
}

/// Replaces whatever `key` holds with a sorted set of `elements` (deleting it when empty)
/// and records `event`.
fn replace_with<'m>(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    event: &'static str,
    elements: impl ExactSizeIterator<Item = (&'m [u8], f64)>,
) {
    let limits = store.limits;
    let zset = (elements.len() > 0).then(|| from_elements(elements, &limits));
    access::replace(store, db, now, key, zset, (notify::ZSET, event));
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...].
fn add(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let word = args.get(i);
        let flag = match word.to_ascii_uppercase().as_slice() {
            b"NX" => &mut nx,
            b"XX" => &mut xx,
            b"GT" => &mut gt,
            b"LT" => &mut lt,
            b"CH" => &mut ch,
            b"INCR" => &mut incr,
            _ => break,
        };
        *flag = true;
        i += 1;
    }
    let pairs = args.tail(i);
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return out.error(errors::SYNTAX);
    }
    if nx && xx {
        return out.error("ERR XX and NX options at the same time are not compatible");
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return out.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return out.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for s in pairs.iter().step_by(2) {
        match float_arg(s) {
            Some(score) => scores.push(score),
            None => return out.error(errors::NOT_FLOAT),
        }
    }
    let members = pairs.iter().skip(1).step_by(2);
    let first_member = pairs.get(1);
    let written = access::write(store, db, args.get(1), now, Kind::ZSet, !xx, |z, limits| {
        // As Redis 7.0, a new set whose first member is past the value limit starts as a
        // tree, even if that member is not added in the end.
        let fresh = matches!(z, Object::ZSetPack(p) if p.is_empty());
        if fresh && first_member.len() > limits.zset_max_listpack_value {
            *z = Object::ZSetTree(Box::default());
        }
        let (mut added, mut changed, mut last) = (0, 0, None);
        for (member, &score) in members.zip(&scores) {
            let current = Sorted::of(z.view()).score(member);
            let score = match current {
                Some(_) if nx => continue,
                None if xx => continue,
                Some(old) if incr => old + score,
                _ => score,
            };
            if score.is_nan() {
                return Err(NAN_SCORE);
            }
            match current {
                Some(old) if (gt && score <= old) || (lt && score >= old) => continue,
                Some(old) if old == score => {}
                Some(_) => {
                    insert(z, member, score, limits);
                    changed += 1;
                }
                None => {
                    insert(z, member, score, limits);
                    added += 1;
                }
            }
            last = Some(score);
        }
        Ok((added, changed, last))
    });
    let written = written.map(|r| r.unwrap_or(Ok((0, 0, None))));
    if let Ok(Ok((added, changed, _))) = written {
        if added + changed > 0 {
            let event = if incr { "zincr" } else { "zadd" };
            access::announce(store, db, now, notify::ZSET, event, args.get(1));
        }
    }
    match written {
        Err(e) | Ok(Err(e)) => out.error(e),
        Ok(Ok((_, _, last))) if incr => reply_score(out, last),
        Ok(Ok((added, changed, _))) => out.int(if ch { added + changed } else { added }),
    }
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max.
fn remove_range(
    store: &mut Store,
    db: usize,
    now: u64,
    cmd: Cmd,
    args: Args,
    out: &mut ReplyWriter,
) {
    let (a, b) = (args.get(2), args.get(3));
    let bounds = match cmd {
        Cmd::ZRemRangeByRank => match (parse_int(a), parse_int(b)) {
            (Some(start), Some(stop)) => Err((start, stop)),
            _ => return out.error(errors::NOT_INTEGER),
        },
        Cmd::ZRemRangeByScore => match (score_bound(a), score_bound(b)) {
            (Some(min), Some(max)) => Ok((min, max)),
            _ => return out.error(NOT_FLOAT_RANGE),
        },
        _ => match (lex_bound(a), lex_bound(b)) {
            (Some(min), Some(max)) => Ok((min, max)),
            _ => return out.error(NOT_LEX_RANGE),
        },
    };
    let removed = access::write(store, db, args.get(1), now, Kind::ZSet, false, |z, _| {
        let doomed: Vec<Vec<u8>> = {
            let sorted = Sorted::of(z.view());
            let (from, to) = match bounds {
                Ok((min, max)) => bounded(&sorted, min, max),
                Err((start, stop)) => rank_interval(sorted.len(), start, stop),
            };
            sorted
                .range(from, to, false)
                .into_iter()
                .map(|(m, _)| m.to_vec())
                .collect()
        };
        doomed.iter().for_each(|m| _ = remove(z, m));
        doomed.len()
    });
    match removed {
        Ok(n) => {
            let n = n.unwrap_or(0);
            if n > 0 {
                let event = match cmd {
                    Cmd::ZRemRangeByRank => "zremrangebyrank",
                    Cmd::ZRemRangeByScore => "zremrangebyscore",
                    _ => "zremrangebylex",
                };
                access::announce(store, db, now, notify::ZSET, event, args.get(1));
            }
            out.int(n as i64)
        }
        Err(e) => out.error(e),
    }
}

/// Removes up to `count` elements from the low (`min`) or high end.
fn pop_elements(z: &mut Object, count: usize, min: bool) -> Vec<(Vec<u8>, f64)> {
    let popped: Vec<(Vec<u8>, f64)> = {
        let sorted = Sorted::of(z.view());
        let n = count.min(sorted.len());
        let range = if min {
            sorted.range(0, n, false)
        } else {
            sorted.range(sorted.len() - n, sorted.len(), true)
        };
        range.into_iter().map(|(m, s)| (m.to_vec(), s)).collect()
    };
    popped.iter().for_each(|(m, _)| _ = remove(z, m));
    popped
}

/// ZPOPMIN / ZPOPMAX key [count].
fn pop(store: &mut Store, db: usize, now: u64, args: Args, min: bool, out: &mut ReplyWriter) {
    let count = match args.len() {
        2 => None,
        3 => match parse_int(args.get(2)) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return out.error("ERR value is out of range, must be positive"),
        },
        _ => return out.error(errors::SYNTAX),
    };
    let popped = access::write(store, db, args.get(1), now, Kind::ZSet, false, |z, _| {
        pop_elements(z, count.unwrap_or(1), min)
    });
    if matches!(&popped, Ok(Some(p)) if !p.is_empty()) {
        announce_pop(store, db, now, min, args.get(1));
    }
    match popped {
        Err(e) => out.error(e),
        Ok(popped) => {
            let popped = popped.unwrap_or_default();
            let borrowed: Vec<(&[u8], f64)> =
                popped.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            if count.is_none() {
                // A single pop replies flat in every protocol.
                out.array(borrowed.len() * 2);
                borrowed.iter().for_each(|&(m, s)| {
                    out.bulk(m);
                    out.double(s);
                });
            } else {
                reply_elements(out, &borrowed, true);
            }
        }
    }
}

/// The attempt of BZPOPMIN / BZPOPMAX key [key ...] timeout: `[key, member, score]` from the
/// first non-empty sorted set, or a null array when all are empty (the caller then waits).
fn first_pop(store: &mut Store, db: usize, now: u64, args: Args, min: bool, out: &mut ReplyWriter) {
    if let Err(e) = errors::timeout_arg(args.get(args.len() - 1)) {
        return out.error(e);
    }
    let keys = args.range(1, args.len() - 1);
    let pop = |z: &mut Object| pop_elements(z, 1, min).pop();
    access::pop_first(
        store,
        (db, now),
        keys,
        pop_from(min),
        pop,
        |out, key, (member, score)| {
            out.array(3);
            out.bulk(key);
            out.bulk(&member);
            out.double(score);
        },
        out,
    );
}

/// A pop's event (`zpopmin` or `zpopmax`), and `del` if it emptied the set.
fn announce_pop(store: &mut Store, db: usize, now: u64, min: bool, key: &[u8]) {
    let from = pop_from(min);
    access::announce(store, db, now, from.class, from.event, key);
}

/// A pop of the lowest (`min`) or highest members of the first non-empty of several sets.
fn pop_from(min: bool) -> access::PopFrom {
    access::PopFrom {
        kind: Kind::ZSet,
        class: notify::ZSET,
        event: if min { "zpopmin" } else { "zpopmax" },
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: pops from the first non-empty set.
fn multi_pop(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let (keys, min, count) = match crate::lists::multi_pop_args(args, b"MIN", b"MAX") {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let pop = |z: &mut Object| {
        let popped = pop_elements(z, count.unwrap_or(1), min);
        (!popped.is_empty()).then_some(popped)
    };
    access::pop_first(
        store,
        (db, now),
        keys,
        pop_from(min),
        pop,
        |out, key, popped| {
            out.array(2);
            out.bulk(key);
            out.array(popped.len());
            for (member, score) in &popped {
                out.array(2);
                out.bulk(member);
                out.double(*score);
            }
        },
        out,
    );
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
fn range_store(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let parsed =
        parse_range(args, 3, None, None, true).and_then(|q| query_bounds(&q).map(|b| (q, b)));
    let (q, bounds) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return out.error(&e),
    };
    let selected: Vec<(Vec<u8>, f64)> = match access::read(store, db, args.get(2), now, Kind::ZSet)
    {
        Err(e) => return out.error(e),
        Ok(None) => Vec::new(),
        Ok(Some(z)) => select(&Sorted::of(z), &q, bounds)
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect(),
    };
    replace_with(
        store,
        db,
        now,
        args.get(1),
        "zrangestore",
        selected.iter().map(|(m, s)| (m.as_slice(), *s)),
    );
    out.int(selected.len() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_convert_to_trees_past_the_limits_and_keep_order() {
        let limits = EncodingLimits {
            zset_max_listpack_entries: 4,
            ..EncodingLimits::default()
        };
        let mut z = Object::ZSetPack(Vec::new());
        for (m, s) in [("c", 3.0), ("a", 1.0), ("b", 1.0), ("d", 0.5)] {
            assert_eq!(insert(&mut z, m.as_bytes(), s, &limits), None);
        }
        assert!(matches!(z, Object::ZSetPack(_)));
        assert_eq!(insert(&mut z, b"c", -1.0, &limits), Some(3.0));
        let names = |z: &Object| -> Vec<Vec<u8>> {
            elements(z.view())
                .into_iter()
                .map(|(m, _)| m.to_vec())
                .collect()
        };
        assert_eq!(names(&z), [b"c", b"d", b"a", b"b"]);
        insert(&mut z, b"e", 9.0, &limits);
        assert!(matches!(z, Object::ZSetTree(_)));
        assert_eq!(names(&z), [b"c", b"d", b"a", b"b", b"e"]);
        assert_eq!(remove(&mut z, b"a"), Some(1.0));
        assert_eq!(Sorted::of(z.view()).rank(b"b"), Some(2));
    }

    #[test]
    fn score_cursors_grow_with_scores() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            2.5,
            f64::INFINITY,
        ];
        let cursors: Vec<u64> = scores.iter().map(|&s| score_cursor(s)).collect();
        assert!(cursors.windows(2).all(|w| w[0] <= w[1]));
        assert!(cursors.iter().all(|&c| c != 0));
    }
}
