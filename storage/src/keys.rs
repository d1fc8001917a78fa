//! The generic key family: existence, deletion, deadlines, renames and copies, iteration,
//! and introspection (TYPE, OBJECT, MEMORY USAGE).

use crate::effect::{Effect, ExpireCond};
use crate::entry::{Encoding, Entry};
use crate::errors::{self, int_arg, Error};
use crate::glob;
use crate::keyspace::lru_clock;
use crate::notify;
use crate::object::Kind;
use crate::store::{Request, Store};
use tessera_protocol::ReplyWriter;

// ---- reads ----

/// EXISTS and TOUCH: how many of the named keys exist, repeats counted.
pub fn exists(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let ks = store.db(req.db);
    let count = req
        .args
        .tail(1)
        .iter()
        .filter(|key| ks.touch(key, req.now))
        .count();
    out.int(count as i64);
}

pub fn type_of(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let kind = store
        .db(req.db)
        .get(req.args.get(1), req.now)
        .map(Entry::kind);
    out.simple(kind.map_or("none", Kind::name));
}

/// TTL, PTTL, EXPIRETIME and PEXPIRETIME: -2 for a missing key, -1 for one without deadline.
pub fn ttl(store: &mut Store, req: &Request, millis: bool, absolute: bool, out: &mut ReplyWriter) {
    let Some(entry) = store.db(req.db).get(req.args.get(1), req.now) else {
        return out.int(-2);
    };
    let Some(at) = entry.expire_at() else {
        return out.int(-1);
    };
    let value = match (absolute, millis) {
        (true, true) => at as i64,
        (true, false) => ((at + 500) / 1000) as i64,
        (false, true) => at.saturating_sub(req.now) as i64,
        (false, false) => ((at.saturating_sub(req.now) + 500) / 1000) as i64,
    };
    out.int(value);
}

/// Collects the live keys matching `pattern` from the given slots.
pub fn collect_keys(
    store: &mut Store,
    db: usize,
    slots: impl Iterator<Item = u16>,
    pattern: &[u8],
    now: u64,
    keys: &mut Vec<Vec<u8>>,
) {
    let match_all = pattern == b"*";
    let ks = store.db(db);
    for slot in slots {
        for entry in ks.slot_entries(slot, now) {
            if match_all || glob::matches(pattern, entry.key()) {
                keys.push(entry.key().to_vec());
            }
        }
    }
}

/// The options of one SCAN call.
#[derive(Debug)]
pub struct ScanOptions {
    pub cursor: u64,
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    pub type_name: Option<Vec<u8>>,
}

pub fn parse_scan(args: tessera_protocol::Args) -> Result<ScanOptions, Error> {
    // Redis reads the cursor with strtoul, which wraps a leading minus sign.
    let text = std::str::from_utf8(args.get(1)).map_err(|_| errors::INVALID_CURSOR)?;
    let cursor = match text.strip_prefix('-') {
        // strtoul reads an empty text as 0.
        _ if text.is_empty() => Ok(0),
        Some(digits) => digits.parse::<u64>().map(u64::wrapping_neg),
        None => text.parse::<u64>(),
    }
    .map_err(|_| errors::INVALID_CURSOR)?;
    let mut opts = ScanOptions {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        let Some(value) = (i + 1 < args.len()).then(|| args.get(i + 1)) else {
            return Err(errors::SYNTAX.into());
        };
        if opt.eq_ignore_ascii_case(b"COUNT") {
            let n = int_arg(value)?;
            if n < 1 {
                return Err(errors::SYNTAX.into());
            }
            opts.count = n as usize;
        } else if opt.eq_ignore_ascii_case(b"MATCH") {
            opts.pattern = Some(value.to_vec());
        } else if opt.eq_ignore_ascii_case(b"TYPE") {
            opts.type_name = Some(value.to_ascii_lowercase());
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    Ok(opts)
}

/// Where a SCAN resumes: a slot, and a bucket of that slot's table.
///
/// As a number, low bits first: the slot (14 bits), the bucket (32), how many times the scan
/// of this slot started over (3), and the low 15 bits of the table's layout when the bucket
/// was read. A cursor below 16384 starts a slot from its first bucket, so slot numbers are
/// cursors too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanCursor {
    pub slot: u16,
    bucket: u32,
    restarts: u8,
    layout: u16,
}

const SLOT_BITS: u32 = 14;
const BUCKET_BITS: u32 = 32;
const RESTART_BITS: u32 = 3;
const LAYOUT_BITS: u32 = 64 - SLOT_BITS - BUCKET_BITS - RESTART_BITS;
/// After this many restarts of one slot, a scan that finds the slot's table reorganized
/// again reads the whole slot in one call.
const MOST_RESTARTS: u8 = (1 << RESTART_BITS) - 1;
/// Buckets a call may walk per key of COUNT (Redis's dictScan visits ten times COUNT).
const EMPTY_BUCKETS_PER_KEY: usize = 10;

fn bits(value: u64, shift: u32, width: u32) -> u64 {
    value >> shift & ((1 << width) - 1)
}

impl ScanCursor {
    pub fn slot_start(slot: u16) -> ScanCursor {
        ScanCursor {
            slot,
            bucket: 0,
            restarts: 0,
            layout: 0,
        }
    }
}

impl From<u64> for ScanCursor {
    fn from(cursor: u64) -> ScanCursor {
        ScanCursor {
            slot: bits(cursor, 0, SLOT_BITS) as u16,
            bucket: bits(cursor, SLOT_BITS, BUCKET_BITS) as u32,
            restarts: bits(cursor, SLOT_BITS + BUCKET_BITS, RESTART_BITS) as u8,
            layout: bits(cursor, 64 - LAYOUT_BITS, LAYOUT_BITS) as u16,
        }
    }
}

impl From<ScanCursor> for u64 {
    fn from(cursor: ScanCursor) -> u64 {
        cursor.slot as u64
            | (cursor.bucket as u64) << SLOT_BITS
            | (cursor.restarts as u64) << (SLOT_BITS + BUCKET_BITS)
            | (cursor.layout as u64) << (64 - LAYOUT_BITS)
    }
}

/// Scans `slots` (the first being `from.slot`), resuming at `from`'s bucket, until at least
/// `opts.count` keys were looked at. Returns where to resume (`None` when `slots` ran out) and
/// how many keys it looked at.
///
/// A key present for the whole scan is returned at least once: entries stay in their buckets
/// until the table reorganizes, and a cursor that finds its slot's table reorganized starts
/// that slot over (keys may then come twice, as SCAN allows). After `MOST_RESTARTS` it reads
/// the whole slot in one call instead, so a scan ends however busy the slot.
pub fn scan_slots(
    store: &mut Store,
    db: usize,
    slots: impl Iterator<Item = u16>,
    from: ScanCursor,
    opts: &ScanOptions,
    now: u64,
    keys: &mut Vec<Vec<u8>>,
) -> (Option<ScanCursor>, usize) {
    let ks = store.db(db);
    let mut seen = 0;
    for slot in slots {
        let resume = if slot == from.slot {
            from
        } else {
            ScanCursor::slot_start(slot)
        };
        if seen >= opts.count {
            return (Some(resume), seen);
        }
        let layout = bits(ks.slot_layout(slot) as u64, 0, LAYOUT_BITS) as u16;
        let moved = resume.bucket != 0 && resume.layout != layout;
        let first = if moved { 0 } else { resume.bucket as usize };
        let whole = moved && resume.restarts == MOST_RESTARTS;
        let restarts = resume.restarts + (moved && !whole) as u8;
        let resume_at = |bucket: usize| {
            let bucket = u32::try_from(bucket).ok()?;
            Some(ScanCursor {
                slot,
                bucket,
                restarts,
                layout,
            })
        };
        // Empty buckets count too, a tenth as much as a key, so a sparse table (one that grew,
        // then emptied: tables never shrink) is walked a part at a time as well.
        let buckets = ks.slot_buckets(slot);
        let end = if whole {
            buckets
        } else {
            let walk = EMPTY_BUCKETS_PER_KEY.saturating_mul(opts.count - seen);
            buckets.min(first.saturating_add(walk))
        };
        for (bucket, entry) in ks.slot_entries_in(slot, first..end, now) {
            if seen >= opts.count && !whole {
                if let Some(resume) = resume_at(bucket) {
                    return (Some(resume), seen);
                }
            }
            seen += 1;
            let type_ok = opts
                .type_name
                .as_deref()
                .is_none_or(|t| t == entry.kind().name().as_bytes());
            let pattern_ok = opts
                .pattern
                .as_deref()
                .is_none_or(|p| glob::matches(p, entry.key()));
            if type_ok && pattern_ok {
                keys.push(entry.key().to_vec());
            }
        }
        if end < buckets {
            if let Some(resume) = resume_at(end) {
                return (Some(resume), seen);
            }
        }
    }
    (None, seen)
}

pub fn object(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let sub = req.args.get(1);
    if sub.eq_ignore_ascii_case(b"HELP") {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
        ];
        out.array(lines.len());
        lines.iter().for_each(|l| out.simple(l));
        return;
    }
    let known = ["encoding", "freq", "idletime", "refcount"];
    let Some(name) = known
        .iter()
        .find(|k| sub.eq_ignore_ascii_case(k.as_bytes()))
    else {
        return out.error(&errors::unknown_subcommand(sub, "object"));
    };
    if req.args.len() != 3 {
        return out.error(&errors::wrong_arity(&format!("object|{name}")));
    }
    if sub.eq_ignore_ascii_case(b"FREQ") {
        return out.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let ks = store.db(req.db);
    let key = req.args.get(2);
    // Introspection must not count as an access.
    let Some(entry) = ks
        .slot_entries(tessera_protocol::key_slot(key), req.now)
        .find(|e| e.key() == key)
    else {
        return out.null();
    };
    if sub.eq_ignore_ascii_case(b"ENCODING") {
        out.bulk(match (entry.object(), entry.encoding()) {
            (Some(object), _) => object.encoding_name().as_bytes(),
            (None, Encoding::Int) => b"int",
            (None, Encoding::Embstr) => b"embstr",
            (None, _) => b"raw",
        });
    } else if sub.eq_ignore_ascii_case(b"IDLETIME") {
        out.int(lru_clock(req.now).saturating_sub(entry.access()) as i64);
    } else {
        out.int(1);
    }
}

pub fn memory_usage(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    if req.args.len() < 3 {
        return out.error(&errors::wrong_arity("memory|usage"));
    }
    if req.args.len() != 3
        && !(req.args.len() == 5 && req.args.get(3).eq_ignore_ascii_case(b"SAMPLES"))
    {
        return out.error(errors::SYNTAX);
    }
    if req.args.len() == 5 {
        if let Err(e) = int_arg(req.args.get(4)) {
            return out.error(&e);
        }
    }
    match store.db(req.db).get(req.args.get(2), req.now) {
        Some(entry) => out.int(entry.memory() as i64),
        None => out.null(),
    }
}

// ---- plans ----

pub fn plan_expire<'a>(
    req: &Request<'a>,
    unit_ms: i64,
    absolute: bool,
) -> Result<Effect<'a>, Error> {
    let name = req.spec.name;
    let n = int_arg(req.args.get(2))?;
    if n > i64::MAX / unit_ms || n < i64::MIN / unit_ms {
        return Err(errors::invalid_expire(name));
    }
    let mut at = n * unit_ms;
    if !absolute {
        at = at
            .checked_add(req.now as i64)
            .ok_or_else(|| errors::invalid_expire(name))?;
    }
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in req.args.tail(3).iter() {
        if opt.eq_ignore_ascii_case(b"NX") {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"GT") {
            gt = true;
        } else if opt.eq_ignore_ascii_case(b"LT") {
            lt = true;
        } else {
            return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)).into());
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    // A key without a deadline counts as infinitely far away: GT never passes for it, so XX
    // adds nothing to GT, but it does to LT.
    let cond = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::Nx,
        (_, _, true, _) => ExpireCond::Gt,
        (_, true, _, true) => ExpireCond::XxLt,
        (_, _, _, true) => ExpireCond::Lt,
        (_, true, ..) => ExpireCond::Xx,
        _ => ExpireCond::Always,
    };
    Ok(Effect::Expire {
        key: req.args.get(1),
        at,
        cond,
    })
}

pub fn plan_copy<'a>(req: &Request<'a>, databases: usize) -> Result<Effect<'a>, Error> {
    let mut dst_db = req.db;
    let mut replace = false;
    let mut i = 3;
    while i < req.args.len() {
        let opt = req.args.get(i);
        if opt.eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"DB") && i + 1 < req.args.len() {
            let n = int_arg(req.args.get(i + 1))?;
            if n < 0 || n as usize >= databases {
                return Err(errors::DB_RANGE.into());
            }
            dst_db = n as usize;
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let (src, dst) = (req.args.get(1), req.args.get(2));
    if src == dst && dst_db == req.db {
        return Err(errors::SAME_OBJECT.into());
    }
    Ok(Effect::Copy {
        src,
        dst,
        dst_db,
        replace,
    })
}

// ---- applies ----

pub fn apply_del(
    store: &mut Store,
    db: usize,
    now: u64,
    keys: tessera_protocol::Args,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    let mut removed = 0;
    for key in keys.iter() {
        if ks.remove(key, now).is_some() {
            ks.notify(notify::GENERIC, "del", key);
            removed += 1;
        }
    }
    out.int(removed);
}

pub fn apply_expire(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    at: i64,
    cond: ExpireCond,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    let Some(entry) = ks.get(key, now) else {
        return out.int(0);
    };
    let current = entry.expire_at();
    let allowed = match cond {
        ExpireCond::Always => true,
        ExpireCond::Nx => current.is_none(),
        ExpireCond::Xx => current.is_some(),
        ExpireCond::Gt => current.is_some_and(|c| at > c as i64),
        ExpireCond::Lt => current.is_none_or(|c| at < c as i64),
        ExpireCond::XxLt => current.is_some_and(|c| at < c as i64),
    };
    if !allowed {
        return out.int(0);
    }
    if at <= now as i64 {
        ks.remove(key, now);
        ks.notify(notify::GENERIC, "del", key);
    } else {
        ks.modify(key, now, |e| e.set_expire_at(Some(at as u64)));
        ks.notify(notify::GENERIC, "expire", key);
    }
    out.int(1);
}

pub fn apply_persist(store: &mut Store, db: usize, now: u64, key: &[u8], out: &mut ReplyWriter) {
    let ks = store.db(db);
    let changed = ks
        .modify(key, now, |e| {
            let had = e.expire_at().is_some();
            e.set_expire_at(None);
            had
        })
        .unwrap_or(false);
    if changed {
        ks.notify(notify::GENERIC, "persist", key);
    }
    out.int(changed as i64);
}

pub fn apply_rename(
    store: &mut Store,
    db: usize,
    now: u64,
    src: &[u8],
    dst: &[u8],
    only_new: bool,
    out: &mut ReplyWriter,
) {
    let ks = store.db(db);
    if ks.get(src, now).is_none() {
        return out.error(errors::NO_SUCH_KEY);
    }
    if src == dst {
        return if only_new { out.int(0) } else { out.ok() };
    }
    if only_new && ks.get(dst, now).is_some() {
        return out.int(0);
    }
    let Some(old) = ks.remove(src, now) else {
        return out.error(errors::NO_SUCH_KEY);
    };
    ks.insert(old.renamed(dst));
    ks.notify(notify::GENERIC, "rename_from", src);
    ks.notify(notify::GENERIC, "rename_to", dst);
    if only_new {
        out.int(1)
    } else {
        out.ok()
    }
}

/// COPY: `src` and `dst` are (database, key) pairs.
pub fn apply_copy(
    store: &mut Store,
    now: u64,
    src: (usize, &[u8]),
    dst: (usize, &[u8]),
    replace: bool,
    out: &mut ReplyWriter,
) {
    let ((db, src), (dst_db, dst)) = (src, dst);
    let Some(entry) = store.db(db).get(src, now) else {
        return out.int(0);
    };
    let mut copy = entry.duplicate(dst);
    copy.touch(lru_clock(now));
    let target = store.db(dst_db);
    if !replace && target.get(dst, now).is_some() {
        return out.int(0);
    }
    target.insert(copy);
    target.notify(notify::GENERIC, "copy_to", dst);
    out.int(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Value;
    use std::collections::HashSet;
    use tessera_protocol::SLOT_COUNT;

    fn put(store: &mut Store, key: &str) {
        store
            .db(0)
            .insert(Entry::new(key.as_bytes(), Value::Str(b"v"), 0, 0));
    }

    /// SCAN from cursor 0 to its end, each cursor passed on as a number; `between(store, call)`
    /// runs after every call. Returns the keys each call found.
    fn scan_all(
        store: &mut Store,
        count: usize,
        mut between: impl FnMut(&mut Store, usize),
    ) -> Vec<Vec<Vec<u8>>> {
        let opts = ScanOptions {
            cursor: 0,
            pattern: None,
            count,
            type_name: None,
        };
        let mut cursor = ScanCursor::from(0);
        let mut calls = Vec::new();
        loop {
            let mut keys = Vec::new();
            let slots = cursor.slot..SLOT_COUNT as u16;
            let (next, _) = scan_slots(store, 0, slots, cursor, &opts, 0, &mut keys);
            calls.push(keys);
            let Some(next) = next else { return calls };
            assert_ne!(u64::from(next), 0, "only the end of a scan is cursor 0");
            cursor = ScanCursor::from(u64::from(next));
            between(store, calls.len());
        }
    }

    fn found(calls: &[Vec<Vec<u8>>]) -> HashSet<Vec<u8>> {
        calls.iter().flatten().cloned().collect()
    }

    #[test]
    fn a_crowded_slot_is_scanned_a_few_keys_at_a_time() {
        let mut store = Store::new(1);
        let keys: HashSet<Vec<u8>> = (0..10_000)
            .map(|i| format!("{{tag}}:{i}").into_bytes())
            .collect();
        keys.iter()
            .for_each(|k| put(&mut store, std::str::from_utf8(k).unwrap()));
        let calls = scan_all(&mut store, 10, |_, _| {});
        assert!(calls.iter().all(|keys| keys.len() <= 10));
        assert!(calls.len() >= 1_000);
        assert_eq!(found(&calls), keys);
    }

    #[test]
    fn keys_spread_over_slots_are_each_found() {
        let mut store = Store::new(1);
        (0..5_000).for_each(|i| put(&mut store, &format!("k:{i}")));
        let calls = scan_all(&mut store, 7, |_, _| {});
        assert!(calls.iter().all(|keys| keys.len() <= 7));
        assert_eq!(found(&calls).len(), 5_000);
    }

    #[test]
    fn keys_present_throughout_come_back_while_their_slot_churns_and_grows() {
        // A table of 4,096 buckets holds 3,584 entries: 3,560 keys stay while others come and
        // go, leaving deleted buckets behind until the full table rehashes in place, and
        // then the slot grows past that.
        let mut store = Store::new(1);
        let stay = 3_560;
        (0..stay).for_each(|i| put(&mut store, &format!("{{tag}}:stay:{i}")));
        let mut added = 0;
        let calls = scan_all(&mut store, 10, |store, call| {
            let grow = if call > 300 { 20 } else { 10 };
            for _ in 0..grow {
                put(store, &format!("{{tag}}:new:{added}"));
                added += 1;
            }
            for gone in (call - 1) * 10..call * 10 {
                store
                    .db(0)
                    .remove(format!("{{tag}}:new:{gone}").as_bytes(), 0);
            }
        });
        let found = found(&calls);
        let missing = (0..stay)
            .filter(|i| !found.contains(format!("{{tag}}:stay:{i}").as_bytes()))
            .count();
        assert_eq!(missing, 0, "of {} calls", calls.len());
    }

    #[test]
    fn any_number_is_a_cursor_and_cursors_survive_being_numbers() {
        for cursor in [
            0,
            1,
            16_383,
            16_384,
            1 << 46,
            1 << 47,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ] {
            assert_eq!(u64::from(ScanCursor::from(cursor)), cursor);
        }
    }

    fn options(count: usize) -> ScanOptions {
        ScanOptions {
            cursor: 0,
            pattern: None,
            count,
            type_name: None,
        }
    }

    #[test]
    fn a_cursor_past_its_restarts_reads_its_slot_whole_and_any_other_is_harmless() {
        let mut store = Store::new(1);
        (0..100).for_each(|i| put(&mut store, &format!("{{tag}}:{i}")));
        let slot = tessera_protocol::key_slot(b"{tag}");
        // A cursor into the slot whose layout is stale and whose restarts are spent.
        let spent = ScanCursor {
            slot,
            bucket: 1,
            restarts: MOST_RESTARTS,
            layout: bits(store.db(0).slot_layout(slot) as u64 + 1, 0, LAYOUT_BITS) as u16,
        };
        let mut keys = Vec::new();
        let (next, _) = scan_slots(
            &mut store,
            0,
            slot..slot + 1,
            spent,
            &options(5),
            0,
            &mut keys,
        );
        assert_eq!((next, keys.len()), (None, 100));
        // The largest number: the last slot, a bucket past its table's end.
        let from = ScanCursor::from(u64::MAX);
        let mut keys = Vec::new();
        let (next, _) = scan_slots(
            &mut store,
            0,
            from.slot..SLOT_COUNT as u16,
            from,
            &options(5),
            0,
            &mut keys,
        );
        assert_eq!((next, keys.len()), (None, 0));
    }

    #[test]
    fn a_table_that_grew_and_emptied_is_walked_a_part_at_a_time() {
        let mut store = Store::new(1);
        (0..10_000).for_each(|i| put(&mut store, &format!("{{tag}}:{i}")));
        (1..10_000).for_each(|i| {
            store.db(0).remove(format!("{{tag}}:{i}").as_bytes(), 0);
        });
        let calls = scan_all(&mut store, 10, |_, _| {});
        assert!(
            calls.len() > 100,
            "{} calls over thousands of empty buckets",
            calls.len()
        );
        assert_eq!(found(&calls), HashSet::from([b"{tag}:0".to_vec()]));
    }
}
