//! The string family: GET, SET and friends, counters, ranges and LCS. Each write command has
//! a `plan_*` that checks its arguments and resolves it into an `Effect`, and an `apply_*`
//! that performs that effect; reads run directly.

use crate::decimal;
use crate::effect::{Effect, ExpiryChange, SetCond, SetExpiry, SetReply};
use crate::entry::{encode_string, Entry, Value};
use crate::errors::{self, int_arg, Error};
use crate::keyspace::lru_clock;
use crate::notify;
use crate::store::{Request, Store};
use tessera_protocol::{Args, ReplyWriter};

// ---- reads ----

pub fn get(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let key = req.args.get(1);
    let (ks, stats) = store.db_and_stats(req.db);
    match ks.get(key, req.now) {
        Some(entry) => {
            stats.hits += 1;
            write_string(out, entry);
        }
        None => {
            stats.misses += 1;
            out.null();
        }
    }
}

pub fn mget(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    out.array(req.args.len() - 1);
    let (ks, stats) = store.db_and_stats(req.db);
    for key in req.args.tail(1).iter() {
        match ks.get(key, req.now) {
            Some(entry) if entry.object().is_none() => {
                stats.hits += 1;
                write_value(out, entry.value());
            }
            Some(_) => out.null(),
            None => {
                stats.misses += 1;
                out.null();
            }
        }
    }
}

pub fn strlen(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    match store
        .db(req.db)
        .get(req.args.get(1), req.now)
        .map(Entry::string)
    {
        None => out.int(0),
        Some(Ok(value)) => out.int(value.len() as i64),
        Some(Err(e)) => out.error(e),
    }
}

pub fn getrange(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let (start, end) = match (int_arg(req.args.get(2)), int_arg(req.args.get(3))) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return out.error(&e),
    };
    let Some(entry) = store.db(req.db).get(req.args.get(1), req.now) else {
        return out.bulk(b"");
    };
    let value = match entry.string() {
        Ok(value) => value,
        Err(e) => return out.error(e),
    };
    let mut scratch = [0u8; 20];
    let bytes = value.as_bytes(&mut scratch);
    match substring_range(bytes.len() as i64, start, end) {
        Some((from, to)) => out.bulk(&bytes[from..=to]),
        None => out.bulk(b""),
    }
}

/// GETRANGE's index rules: negative indexes count from the end, both are clamped, and an
/// empty or inverted range gives nothing.
fn substring_range(len: i64, mut start: i64, mut end: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    (len > 0 && start <= end).then_some((start as usize, end as usize))
}

pub fn lcs(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let ks = store.db(req.db);
    let mut read = |key| match ks.get(key, req.now).map(Entry::string) {
        None => Ok(Vec::new()),
        Some(value) => value.map(Value::to_vec),
    };
    let (a, b) = match (read(req.args.get(1)), read(req.args.get(2))) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return out.error(e),
    };
    lcs_reply(&a, &b, req.args.tail(3), store.max_bulk_len, out);
}

/// The LCS reply for two values, given LCS's options (LEN, IDX, MINMATCHLEN n, WITHMATCHLEN).
pub fn lcs_reply(a: &[u8], b: &[u8], options: Args, max_bulk_len: usize, out: &mut ReplyWriter) {
    let mut want_len = false;
    let mut want_idx = false;
    let mut with_match_len = false;
    let mut min_match_len: i64 = 0;
    let mut i = 0;
    while i < options.len() {
        let opt = options.get(i);
        if opt.eq_ignore_ascii_case(b"LEN") {
            want_len = true;
        } else if opt.eq_ignore_ascii_case(b"IDX") {
            want_idx = true;
        } else if opt.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            with_match_len = true;
        } else if opt.eq_ignore_ascii_case(b"MINMATCHLEN") && i + 1 < options.len() {
            i += 1;
            match int_arg(options.get(i)) {
                Ok(n) => min_match_len = n.max(0),
                Err(e) => return out.error(&e),
            }
        } else {
            return out.error(errors::SYNTAX);
        }
        i += 1;
    }
    if want_len && want_idx {
        return out.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > max_bulk_len as u64 {
        return out
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let table = lcs_table(a, b);
    let width = b.len() + 1;
    let total = table[a.len() * width + b.len()] as usize;
    if want_len {
        return out.int(total as i64);
    }
    // Walk back from the end, collecting the common string and, for IDX, the matching ranges
    // (newest first, as Redis reports them).
    let mut common = vec![0u8; total];
    let mut ranges: Vec<[usize; 4]> = Vec::new();
    let mut current: Option<[usize; 4]> = None;
    let (mut i, mut j, mut k) = (a.len(), b.len(), total);
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            common[k - 1] = a[i - 1];
            current = match current {
                Some([a_start, a_end, b_start, b_end]) if a_start == i && b_start == j => {
                    Some([i - 1, a_end, j - 1, b_end])
                }
                Some(done) => {
                    ranges.push(done);
                    Some([i - 1, i - 1, j - 1, j - 1])
                }
                None => Some([i - 1, i - 1, j - 1, j - 1]),
            };
            i -= 1;
            j -= 1;
            k -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if let Some(done) = current.take() {
                ranges.push(done);
            }
        }
    }
    if let Some(done) = current {
        ranges.push(done);
    }
    if !want_idx {
        return out.bulk(&common);
    }
    ranges.retain(|r| (r[1] - r[0] + 1) as i64 >= min_match_len);
    out.map(2);
    out.bulk(b"matches");
    out.array(ranges.len());
    for [a_start, a_end, b_start, b_end] in ranges {
        out.array(if with_match_len { 3 } else { 2 });
        out.array(2);
        out.int(a_start as i64);
        out.int(a_end as i64);
        out.array(2);
        out.int(b_start as i64);
        out.int(b_end as i64);
        if with_match_len {
            out.int((a_end - a_start + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
}

/// The LCS length table: cell (i, j) is the LCS length of `a[..i]` and `b[..j]`.
fn lcs_table(a: &[u8], b: &[u8]) -> Vec<u32> {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    table
}

/// The string at `entry`, or WRONGTYPE for a collection.
fn write_string(out: &mut ReplyWriter, entry: &Entry) {
    match entry.string() {
        Ok(value) => write_value(out, value),
        Err(e) => out.error(e),
    }
}

fn write_value(out: &mut ReplyWriter, value: Value) {
    match value {
        Value::Str(s) => out.bulk(s),
        Value::Int(n) => out.bulk_int(n),
    }
}

// ---- plans ----

/// Reads an expiry argument and turns it into an absolute deadline, with SET's checks.
fn deadline(
    arg: &[u8],
    unit_ms: i64,
    absolute: bool,
    now: u64,
    command: &str,
) -> Result<u64, Error> {
    let n = int_arg(arg)?;
    if n <= 0 || n > i64::MAX / unit_ms {
        return Err(errors::invalid_expire(command));
    }
    let ms = n * unit_ms;
    if absolute {
        return Ok(ms as u64);
    }
    ms.checked_add(now as i64)
        .map(|at| at as u64)
        .ok_or_else(|| errors::invalid_expire(command))
}

/// The relative and absolute expiry options SET and GETEX share: name, unit in ms, absolute.
const EXPIRY_UNITS: [(&[u8], i64, bool); 4] = [
    (b"EX", 1000, false),
    (b"PX", 1, false),
    (b"EXAT", 1000, true),
    (b"PXAT", 1, true),
];

/// An expiry option as written: its unit's index in `EXPIRY_UNITS` and its argument.
type ExpiryOption<'a> = Option<(usize, &'a [u8])>;

/// Takes `opt` (followed by `next`) as an expiry option if it is one. As in Redis, repeating
/// the same unit replaces its argument, and mixing two units is a syntax error.
fn take_expiry<'a>(
    opt: &[u8],
    next: Option<&'a [u8]>,
    current: &mut ExpiryOption<'a>,
) -> Option<()> {
    let unit = EXPIRY_UNITS
        .iter()
        .position(|(name, _, _)| opt.eq_ignore_ascii_case(name))?;
    let value = next?;
    if current.is_some_and(|(seen, _)| seen != unit) {
        return None;
    }
    *current = Some((unit, value));
    Some(())
}

fn expiry_deadline(option: (usize, &[u8]), now: u64, command: &str) -> Result<u64, Error> {
    let (unit, value) = option;
    let (_, unit_ms, absolute) = EXPIRY_UNITS[unit];
    deadline(value, unit_ms, absolute, now, command)
}

pub fn plan_set<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let args = req.args;
    let mut cond = SetCond::Always;
    let mut get = false;
    let mut keep_ttl = false;
    let mut expire: ExpiryOption = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        let exclusive = |wanted: SetCond| cond == SetCond::Always || cond == wanted;
        if opt.eq_ignore_ascii_case(b"NX") && exclusive(SetCond::Absent) {
            cond = SetCond::Absent;
        } else if opt.eq_ignore_ascii_case(b"XX") && exclusive(SetCond::Present) {
            cond = SetCond::Present;
        } else if opt.eq_ignore_ascii_case(b"IFEQ") && cond == SetCond::Always && next.is_some() {
            cond = SetCond::Equal(next.unwrap_or_default());
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            get = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && expire.is_none() {
            keep_ttl = true;
        } else if !keep_ttl && take_expiry(opt, next, &mut expire).is_some() {
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let expiry = match expire {
        Some(option) => SetExpiry::At(expiry_deadline(option, req.now, "set")?),
        None if keep_ttl => SetExpiry::Keep,
        None => SetExpiry::Clear,
    };
    let reply = if get { SetReply::Old } else { SetReply::Ok };
    Ok(Effect::Set {
        key: args.get(1),
        value: args.get(2),
        expiry,
        cond,
        reply,
    })
}

pub fn plan_setnx<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let (key, value) = (req.args.get(1), req.args.get(2));
    Ok(Effect::Set {
        key,
        value,
        expiry: SetExpiry::Clear,
        cond: SetCond::Absent,
        reply: SetReply::Flag,
    })
}

pub fn plan_setex<'a>(req: &Request<'a>, unit_ms: i64) -> Result<Effect<'a>, Error> {
    let name = if unit_ms == 1 { "psetex" } else { "setex" };
    let at = deadline(req.args.get(2), unit_ms, false, req.now, name)?;
    let (key, value) = (req.args.get(1), req.args.get(3));
    Ok(Effect::Set {
        key,
        value,
        expiry: SetExpiry::At(at),
        cond: SetCond::Always,
        reply: SetReply::Ok,
    })
}

pub fn plan_getset<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let (key, value) = (req.args.get(1), req.args.get(2));
    Ok(Effect::Set {
        key,
        value,
        expiry: SetExpiry::Clear,
        cond: SetCond::Always,
        reply: SetReply::Old,
    })
}

/// GETEX checks its options' syntax first but, as Redis does, judges the expiry value only
/// once the key is found: a missing key answers nil whatever the value.
pub fn plan_getex<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let args = req.args;
    let mut persist = false;
    let mut expire: ExpiryOption = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        if opt.eq_ignore_ascii_case(b"PERSIST") && expire.is_none() {
            persist = true;
        } else if !persist && take_expiry(opt, next, &mut expire).is_some() {
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let change = match expire {
        Some(option) => match expiry_deadline(option, req.now, "getex") {
            Ok(at) => ExpiryChange::At(at as i64),
            Err(e) if e == errors::NOT_INTEGER => ExpiryChange::Rejected(errors::NOT_INTEGER),
            Err(_) => ExpiryChange::Rejected(INVALID_GETEX_EXPIRE),
        },
        None if persist => ExpiryChange::Persist,
        None => ExpiryChange::Keep,
    };
    Ok(Effect::GetEx {
        key: args.get(1),
        change,
    })
}

const INVALID_GETEX_EXPIRE: &str = "ERR invalid expire time in 'getex' command";

pub fn plan_mset<'a>(req: &Request<'a>, only_new: bool) -> Result<Effect<'a>, Error> {
    if req.args.len().is_multiple_of(2) {
        return Err(errors::wrong_arity(req.spec.name));
    }
    let pairs = req.args.tail(1);
    Ok(if only_new {
        Effect::MSetNx { pairs }
    } else {
        Effect::MSet { pairs }
    })
}

pub fn plan_incrby<'a>(req: &Request<'a>, sign: i64, explicit: bool) -> Result<Effect<'a>, Error> {
    let delta = if explicit {
        int_arg(req.args.get(2))?
    } else {
        1
    };
    if sign < 0 && delta == i64::MIN {
        return Err("ERR decrement would overflow".into());
    }
    Ok(Effect::IncrBy {
        key: req.args.get(1),
        delta: delta * sign,
    })
}

pub fn plan_incrbyfloat<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let increment = req.args.get(2);
    errors::float_arg(increment).ok_or(errors::NOT_FLOAT)?;
    Ok(Effect::IncrByFloat {
        key: req.args.get(1),
        increment,
    })
}

pub fn plan_setrange<'a>(req: &Request<'a>) -> Result<Effect<'a>, Error> {
    let offset = int_arg(req.args.get(2))?;
    if offset < 0 {
        return Err(errors::OFFSET_RANGE.into());
    }
    Ok(Effect::SetRange {
        key: req.args.get(1),
        offset: offset as usize,
        value: req.args.get(3),
    })
}

// ---- applies ----

pub struct SetArgs<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub expiry: SetExpiry,
    pub cond: SetCond<'a>,
    pub reply: SetReply,
}

pub fn apply_set(store: &mut Store, db: usize, now: u64, set: SetArgs, out: &mut ReplyWriter) {
    let ks = store.db(db);
    let written = ks.upsert(set.key, now, |old| {
        let reads_old = set.reply == SetReply::Old || matches!(set.cond, SetCond::Equal(_));
        if reads_old && old.as_ref().is_some_and(|e| e.object().is_some()) {
            out.error(errors::WRONGTYPE);
            return (None, false);
        }
        let proceed = match set.cond {
            SetCond::Always => true,
            SetCond::Absent => old.is_none(),
            SetCond::Present => old.is_some(),
            SetCond::Equal(expected) => old.as_ref().is_some_and(|e| {
                let mut scratch = [0u8; 20];
                e.value().as_bytes(&mut scratch) == expected
            }),
        };
        match set.reply {
            SetReply::Old => match &old {
                Some(entry) => write_string(out, entry),
                None => out.null(),
            },
            SetReply::Flag => out.int(proceed as i64),
            SetReply::Ok if proceed => out.ok(),
            SetReply::Ok => out.null(),
        }
        if !proceed {
            return (None, false);
        }
        let value = encode_string(set.value);
        match old {
            // Overwriting reuses the block: same key, new value, usually the same size class.
            Some(entry) => {
                entry.set_value(value, false);
                match set.expiry {
                    SetExpiry::Clear => entry.set_expire_at(None),
                    SetExpiry::Keep => {}
                    SetExpiry::At(at) => entry.set_expire_at(Some(at)),
                }
                (None, true)
            }
            None => {
                let expire_at = match set.expiry {
                    SetExpiry::At(at) => at,
                    SetExpiry::Clear | SetExpiry::Keep => 0,
                };
                (
                    Some(Entry::new(set.key, value, expire_at, lru_clock(now))),
                    true,
                )
            }
        }
    });
    if written {
        ks.notify(notify::STRING, "set", set.key);
        if matches!(set.expiry, SetExpiry::At(_)) {
            ks.notify(notify::GENERIC, "expire", set.key);
        }
    }
}

pub fn apply_getdel(store: &mut Store, db: usize, now: u64, key: &[u8], out: &mut ReplyWriter) {
    let ks = store.db(db);
    match ks.get(key, now).map(Entry::string) {
        None => out.null(),
        Some(Err(e)) => out.error(e),
        Some(Ok(value)) => {
            write_value(out, value);
            ks.remove(key, now);
            ks.notify(notify::GENERIC, "del", key);
        }
    }
}

pub fn apply_getex(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    change: ExpiryChange,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    let Some(entry) = ks.get(key, now) else {
        return out.null();
    };
    if let ExpiryChange::Rejected(error) = change {
        return out.error(error);
    }
    if entry.object().is_some() {
        return out.error(errors::WRONGTYPE);
    }
    write_value(out, entry.value());
    match change {
        ExpiryChange::Rejected(_) => {}
        ExpiryChange::Keep => {}
        ExpiryChange::Persist => {
            if entry.expire_at().is_some() {
                ks.modify(key, now, |e| e.set_expire_at(None));
                ks.notify(notify::GENERIC, "persist", key);
            }
        }
        ExpiryChange::At(at) if at <= now as i64 => {
            ks.remove(key, now);
            ks.notify(notify::GENERIC, "del", key);
        }
        ExpiryChange::At(at) => {
            ks.modify(key, now, |e| e.set_expire_at(Some(at as u64)));
            ks.notify(notify::GENERIC, "expire", key);
        }
    }
}

pub fn apply_mset(
    store: &mut Store,
    db: usize,
    now: u64,
    pairs: Args,
    only_new: bool,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    if only_new {
        let any_exists = (0..pairs.len())
            .step_by(2)
            .any(|i| ks.get(pairs.get(i), now).is_some());
        out.int(!any_exists as i64);
        if any_exists {
            return;
        }
    } else {
        out.ok();
    }
    for i in (0..pairs.len()).step_by(2) {
        ks.insert(Entry::new(
            pairs.get(i),
            encode_string(pairs.get(i + 1)),
            0,
            lru_clock(now),
        ));
        ks.notify(notify::STRING, "set", pairs.get(i));
    }
}

pub fn apply_append(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    value: &[u8],
    out: &mut ReplyWriter,
) {
    let max = store.max_bulk_len;
    let ks = store.db(db);
    let result = ks.modify(key, now, |entry| {
        let mut scratch = [0u8; 20];
        let current = entry.string()?;
        let old = current.as_bytes(&mut scratch);
        if old.len() + value.len() > max {
            return Err(errors::TOO_LONG);
        }
        let mut joined = Vec::with_capacity(old.len() + value.len());
        joined.extend_from_slice(old);
        joined.extend_from_slice(value);
        entry.set_value(Value::Str(&joined), true);
        Ok(joined.len())
    });
    match result {
        Some(Ok(len)) => out.int(len as i64),
        Some(Err(e)) => return out.error(e),
        None => {
            ks.insert(Entry::new(key, encode_string(value), 0, lru_clock(now)));
            out.int(value.len() as i64);
        }
    }
    ks.notify(notify::STRING, "append", key);
}

pub fn apply_setrange(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    offset: usize,
    value: &[u8],
    out: &mut ReplyWriter,
) {
    let max = store.max_bulk_len;
    let ks = store.db(db);
    let too_long = offset.checked_add(value.len()).is_none_or(|end| end > max);
    let result = ks.modify(key, now, |entry| {
        let mut current = entry.string()?.to_vec();
        if value.is_empty() {
            return Ok(current.len());
        }
        if too_long {
            return Err(errors::TOO_LONG);
        }
        if current.len() < offset + value.len() {
            current.resize(offset + value.len(), 0);
        }
        current[offset..offset + value.len()].copy_from_slice(value);
        entry.set_value(Value::Str(&current), true);
        Ok(current.len())
    });
    match result {
        Some(Ok(len)) => out.int(len as i64),
        Some(Err(e)) => return out.error(e),
        None if value.is_empty() => return out.int(0),
        None if too_long => return out.error(errors::TOO_LONG),
        None => {
            let mut fresh = vec![0u8; offset + value.len()];
            fresh[offset..].copy_from_slice(value);
            let mut entry = Entry::new(key, Value::Str(&fresh), 0, lru_clock(now));
            entry.mark_raw();
            ks.insert(entry);
            out.int(fresh.len() as i64);
        }
    }
    if !value.is_empty() {
        ks.notify(notify::STRING, "setrange", key);
    }
}

pub fn apply_incrby(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    delta: i64,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    let result = ks.modify(key, now, |entry| {
        let current = match entry.string()? {
            Value::Int(n) => n,
            Value::Str(s) => tessera_protocol::parse::parse_int(s).ok_or(errors::NOT_INTEGER)?,
        };
        let next = current.checked_add(delta).ok_or(errors::OVERFLOW)?;
        entry.set_value(Value::Int(next), false);
        Ok(next)
    });
    match result {
        Some(Ok(n)) => out.int(n),
        Some(Err(e)) => return out.error(e),
        None => {
            ks.insert(Entry::new(key, Value::Int(delta), 0, lru_clock(now)));
            out.int(delta);
        }
    }
    ks.notify(notify::STRING, "incrby", key);
}

pub fn apply_incrbyfloat(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    increment: &[u8],
    out: &mut ReplyWriter,
) {
    let increment_f64 = errors::float_arg(increment).unwrap_or_default();
    let add = |current: &[u8]| -> Result<String, &'static str> {
        let current_f64 = errors::float_arg(current).ok_or(errors::NOT_FLOAT)?;
        decimal::add_texts(current, increment, increment_f64, current_f64).ok_or(errors::NAN_OR_INF)
    };
    let ks = store.db(db);
    let result = ks.modify(key, now, |entry| {
        let sum = add(&entry.string()?.to_vec())?;
        entry.set_value(Value::Str(sum.as_bytes()), false);
        Ok(sum)
    });
    let result = match result {
        Some(r) => r,
        None => add(b"0").inspect(|sum| {
            ks.insert(Entry::new(
                key,
                Value::Str(sum.as_bytes()),
                0,
                lru_clock(now),
            ));
        }),
    };
    match result {
        Ok(sum) => {
            out.bulk(sum.as_bytes());
            ks.notify(notify::STRING, "incrbyfloat", key);
        }
        Err(e) => out.error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::substring_range;

    #[test]
    fn getrange_index_rules() {
        assert_eq!(substring_range(5, 0, -1), Some((0, 4)));
        assert_eq!(substring_range(5, -3, -2), Some((2, 3)));
        assert_eq!(substring_range(5, 2, 100), Some((2, 4)));
        assert_eq!(substring_range(5, 4, 2), None);
        assert_eq!(substring_range(5, -1, -5), None);
        assert_eq!(substring_range(0, 0, -1), None);
    }
}
