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

/// Scans whole slots from `slots` until at least `opts.count` keys were looked at; returns the
/// first slot not scanned (or `None` when `slots` ran out).
pub fn scan_slots(
    store: &mut Store,
    db: usize,
    slots: impl Iterator<Item = u16>,
    opts: &ScanOptions,
    now: u64,
    keys: &mut Vec<Vec<u8>>,
) -> Option<u16> {
    let ks = store.db(db);
    let mut seen = 0;
    for slot in slots {
        if seen >= opts.count {
            return Some(slot);
        }
        for entry in ks.slot_entries(slot, now) {
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
    }
    None
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
