//! The stream family: XADD, XRANGE, XREAD, XTRIM and the consumer groups (XGROUP,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO).
//!
//! Every ID a write assigns comes from the stream's last ID and the command's timestamp, so
//! applying the same command to the same state gives the same entries on every replica.

use crate::access;
use crate::errors::{self, int_arg, Error};
use crate::notify;
use crate::object::{Kind, Object, ObjectRef};
use crate::store::{Request, Store};
use crate::stream::{Consumer, Group, Pending, Stream, StreamId};
use tessera_protocol::parse::parse_int;
use tessera_protocol::{Args, Cmd, ReplyWriter};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const NEEDS_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

fn id_arg(arg: &[u8], missing_seq: u64) -> Result<StreamId, &'static str> {
    StreamId::parse(arg, missing_seq).ok_or(INVALID_ID)
}

/// XCLAIM's and XAUTOCLAIM's min-idle-time, in ms (negative reads as 0).
fn min_idle_arg(arg: &[u8], command: &str) -> Result<u64, Error> {
    let ms = int_arg(arg)
        .map_err(|_| Error::from(format!("ERR Invalid min-idle-time argument for {command}")))?;
    Ok(ms.max(0) as u64)
}

/// Every argument as an ID (XDEL, XACK).
fn ids_from(args: Args) -> Result<Vec<StreamId>, &'static str> {
    args.iter().map(|a| id_arg(a, 0)).collect()
}

fn no_group(key: &[u8], group: &[u8]) -> Error {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    )
    .into()
}

fn stream_of(object: &mut Object) -> &mut Stream {
    match object {
        Object::Stream(s) => s,
        _ => unreachable!("access checked the kind"),
    }
}

// ---- replies ----

fn reply_id(out: &mut ReplyWriter, id: StreamId) {
    out.bulk(id.text().as_bytes());
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for an entry deleted since it was delivered.
fn reply_entry(out: &mut ReplyWriter, id: StreamId, packed: Option<&[u8]>) {
    out.array(2);
    reply_id(out, id);
    match packed {
        Some(p) => {
            let fields: Vec<&[u8]> = Stream::fields(p).collect();
            out.array(fields.len());
            fields.iter().for_each(|f| out.bulk(f));
        }
        None => out.null_array(),
    }
}

fn reply_entries(out: &mut ReplyWriter, entries: &[(StreamId, &[u8])]) {
    out.array(entries.len());
    entries
        .iter()
        .for_each(|&(id, p)| reply_entry(out, id, Some(p)));
}

// ---- trimming ----

enum Threshold {
    MaxLen(usize),
    MinId(StreamId),
}

struct Trim {
    threshold: Threshold,
    /// At most this many entries go (0: no limit); only with `~`.
    limit: usize,
}

impl Trim {
    fn apply(&self, s: &mut Stream) -> usize {
        match self.threshold {
            Threshold::MaxLen(max) => s.trim(self.limit, |_, len| len > max),
            Threshold::MinId(min) => s.trim(self.limit, |id, _| id < min),
        }
    }
}

/// What XADD's options say, and where its ID argument is.
struct AddOptions {
    trim: Option<Trim>,
    no_make: bool,
    id_at: usize,
}

/// Reads the trimming options (and for XADD, NOMKSTREAM) from `at`, Redis's way.
fn parse_trim_options(args: Args, at: usize, xadd: bool) -> Result<AddOptions, Error> {
    let (mut trim, mut limit, mut approx, mut no_make) = (None, None, false, false);
    let mut i = at;
    while i < args.len() {
        let word = args.get(i);
        let more = args.len() - 1 - i;
        let is = |name: &[u8]| word.eq_ignore_ascii_case(name);
        if xadd && word == b"*" {
            break;
        } else if (is(b"MAXLEN") || is(b"MINID")) && more > 0 {
            approx = false;
            let next = args.get(i + 1);
            if more >= 2 && (next == b"~" || next == b"=") {
                approx = next == b"~";
                i += 1;
            }
            let value = args.get(i + 1);
            trim = Some(if is(b"MAXLEN") {
                let n = int_arg(value)?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                Threshold::MaxLen(n as usize)
            } else {
                Threshold::MinId(id_arg(value, 0)?)
            });
            i += 1;
        } else if is(b"LIMIT") && more > 0 {
            let n = int_arg(args.get(i + 1))?;
            if n < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            limit = Some(n as usize);
            i += 1;
        } else if xadd && is(b"NOMKSTREAM") {
            no_make = true;
        } else if xadd {
            match word.strip_suffix(b"-*") {
                Some(ms) => StreamId::parse(ms, 0)
                    .filter(|id| id.seq == 0)
                    .ok_or(INVALID_ID)?,
                None => id_arg(word, 0)?,
            };
            break;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    if limit.is_some() && trim.is_none() {
        return Err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into(),
        );
    }
    if !xadd && trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if limit.is_some() && !approx {
        return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
    }
    Ok(AddOptions {
        trim: trim.map(|threshold| Trim {
            threshold,
            limit: limit.unwrap_or(0),
        }),
        no_make,
        id_at: i,
    })
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    match req.spec.cmd {
        Cmd::XRead => return read_streams(store, req.db, req.now, args, out),
        Cmd::XInfo => return info(store, req, out),
        _ => {}
    }
    let range = match req.spec.cmd {
        Cmd::XRange | Cmd::XRevRange => {
            let rev = req.spec.cmd == Cmd::XRevRange;
            let (a, b) = if rev { (3, 2) } else { (2, 3) };
            match parse_range(args, a, b) {
                Ok(range) => Some(range),
                Err(e) => return out.error(&e),
            }
        }
        _ => None,
    };
    let stream = match access::read(store, req.db, args.get(1), req.now, Kind::Stream) {
        Ok(s) => s.map(|o| match o {
            ObjectRef::Stream(s) => s,
            _ => unreachable!("access checked the kind"),
        }),
        Err(e) => return out.error(e),
    };
    match (req.spec.cmd, range) {
        (Cmd::XLen, _) => out.int(stream.map_or(0, Stream::len) as i64),
        // As Redis, COUNT 0 on an existing stream is a null reply.
        (_, Some((_, _, 0))) if stream.is_some() && args.len() > 4 => out.null_array(),
        (cmd, Some((from, to, count))) => {
            let entries = stream.map_or_else(Vec::new, |s| {
                s.range(from, to, cmd == Cmd::XRevRange, count)
            });
            reply_entries(out, &entries);
        }
        (other, _) => out.error(&format!("ERR '{}' is not a stream read", other.spec().name)),
    }
}

/// XRANGE's `start end [COUNT n]` (arguments at `a` and `b`): an empty range when the
/// bounds cross or COUNT is 0.
fn parse_range(args: Args, a: usize, b: usize) -> Result<(StreamId, StreamId, usize), Error> {
    let bound = |arg: &[u8], low: bool| -> Result<Option<StreamId>, Error> {
        let (open, text) = match arg.strip_prefix(b"(") {
            Some(rest) => (true, rest),
            None => (false, arg),
        };
        let id = match text {
            b"-" => StreamId::MIN,
            b"+" => StreamId::MAX,
            _ => id_arg(text, if low { 0 } else { u64::MAX })?,
        };
        if !open {
            return Ok(Some(id));
        }
        if text == b"-" || text == b"+" {
            return Err(INVALID_ID.into());
        }
        match if low { id.next() } else { id.prev() } {
            Some(id) => Ok(Some(id)),
            None => {
                let which = if low { "start" } else { "end" };
                Err(format!("ERR invalid {which} ID for the interval").into())
            }
        }
    };
    let from = bound(args.get(a), true)?;
    let to = bound(args.get(b), false)?;
    let mut count = usize::MAX;
    let mut i = 4;
    while i < args.len() {
        if !args.get(i).eq_ignore_ascii_case(b"COUNT") || i + 1 >= args.len() {
            return Err(errors::SYNTAX.into());
        }
        count = int_arg(args.get(i + 1))?.max(0) as usize;
        i += 2;
    }
    Ok(match (from, to) {
        (Some(from), Some(to)) => (from, to, count),
        _ => (StreamId::MAX, StreamId::MIN, 0),
    })
}

/// The group part of XREADGROUP: group, consumer, NOACK.
struct GroupRead<'a> {
    group: &'a [u8],
    consumer: &'a [u8],
    no_ack: bool,
}

/// Options of XREAD / XREADGROUP.
pub struct ReadOptions<'a> {
    pub count: usize,
    /// BLOCK, in ms.
    pub block: Option<u64>,
    pub keys: Args<'a>,
    pub ids: Args<'a>,
    group: Option<GroupRead<'a>>,
}

/// Reads `[GROUP g c] [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...`.
pub fn parse_read(args: Args<'_>) -> Result<ReadOptions<'_>, Error> {
    let grouped = args.get(0).eq_ignore_ascii_case(b"XREADGROUP");
    let mut opts = ReadOptions {
        count: 0,
        block: None,
        keys: args.range(0, 0),
        ids: args.range(0, 0),
        group: None,
    };
    let (mut no_ack, mut group) = (false, None);
    let mut i = 1;
    let mut streams_at = None;
    while i < args.len() {
        let word = args.get(i);
        let more = args.len() - 1 - i;
        let is = |name: &[u8]| word.eq_ignore_ascii_case(name);
        if is(b"COUNT") && more > 0 {
            opts.count = int_arg(args.get(i + 1))?.max(0) as usize;
            i += 1;
        } else if is(b"BLOCK") && more > 0 {
            let ms = parse_int(args.get(i + 1))
                .ok_or("ERR timeout is not an integer or out of range")?;
            if ms < 0 {
                return Err("ERR timeout is negative".into());
            }
            opts.block = Some(ms as u64);
            i += 1;
        } else if is(b"STREAMS") && more > 0 {
            streams_at = Some(i + 1);
            break;
        } else if grouped && is(b"GROUP") && more >= 2 {
            group = Some((args.get(i + 1), args.get(i + 2)));
            i += 2;
        } else if grouped && is(b"NOACK") {
            no_ack = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let Some(at) = streams_at else {
        return Err(errors::SYNTAX.into());
    };
    let rest = args.len() - at;
    if !rest.is_multiple_of(2) {
        return Err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into());
    }
    opts.keys = args.range(at, at + rest / 2);
    opts.ids = args.range(at + rest / 2, args.len());
    match (grouped, group) {
        (true, None) => return Err("ERR Missing GROUP option for XREADGROUP".into()),
        (true, Some((group, consumer))) => {
            opts.group = Some(GroupRead {
                group,
                consumer,
                no_ack,
            })
        }
        _ => {}
    }
    for id in opts.ids.iter() {
        let special = id == b"$" || (grouped && id == b">");
        if grouped && id == b"$" {
            return Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into());
        }
        if !grouped && id == b">" {
            return Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".into());
        }
        if !special {
            id_arg(id, 0)?;
        }
    }
    Ok(opts)
}

/// The last ID of the stream at `key` as text (`0-0` when there is none).
pub fn last_id(store: &mut Store, db: usize, key: &[u8], now: u64) -> Vec<u8> {
    match access::read(store, db, key, now, Kind::Stream) {
        Ok(Some(ObjectRef::Stream(s))) => s.last_id.text().into_bytes(),
        _ => StreamId::MIN.text().into_bytes(),
    }
}

/// XREAD (and XREADGROUP, through `write_group`): each key's entries after its ID, as
/// `[key, entries]` pairs (a map in RESP3); a null array when no key had any.
fn read_streams(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let opts = match parse_read(args) {
        Ok(opts) => opts,
        Err(e) => return out.error(&e),
    };
    let count = if opts.count == 0 {
        usize::MAX
    } else {
        opts.count
    };
    let mut replies: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (key, id) in opts.keys.iter().zip(opts.ids.iter()) {
        let mut body = Vec::new();
        let mut w = ReplyWriter::new(&mut body, out.resp3());
        let found = match &opts.group {
            None => read_after(store, db, now, key, id, count, &mut w),
            Some(g) => read_group(store, db, now, (key, id), g, count, &mut w),
        };
        match found {
            Err(e) => return out.error(&e),
            Ok(true) => replies.push((key.to_vec(), body)),
            Ok(false) => {}
        }
    }
    if replies.is_empty() {
        return out.null_array();
    }
    if out.resp3() {
        out.map(replies.len());
    } else {
        out.array(replies.len());
    }
    for (key, body) in replies {
        if !out.resp3() {
            out.array(2);
        }
        out.bulk(&key);
        out.buffer().extend_from_slice(&body);
    }
}

/// XREAD's part for one key; true when it had entries.
fn read_after(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    id: &[u8],
    count: usize,
    out: &mut ReplyWriter,
) -> Result<bool, Error> {
    let Some(ObjectRef::Stream(s)) = access::read(store, db, key, now, Kind::Stream)? else {
        return Ok(false);
    };
    let after = if id == b"$" {
        return Ok(false);
    } else {
        id_arg(id, 0)?
    };
    let Some(from) = after.next() else {
        return Ok(false);
    };
    let entries = s.range(from, StreamId::MAX, false, count);
    if entries.is_empty() {
        return Ok(false);
    }
    reply_entries(out, &entries);
    Ok(true)
}

/// XREADGROUP's part for one key: new entries (`>`) or the consumer's history.
fn read_group(
    store: &mut Store,
    db: usize,
    now: u64,
    (key, id): (&[u8], &[u8]),
    g: &GroupRead,
    count: usize,
    out: &mut ReplyWriter,
) -> Result<bool, Error> {
    let missing = || -> Error {
        format!(
            "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(g.group)
        )
        .into()
    };
    let history = if id == b">" {
        None
    } else {
        Some(id_arg(id, 0)?)
    };
    let mut created = false;
    let result = access::write(store, db, key, now, Kind::Stream, false, |o, _| {
        let s = stream_of(o);
        let Some(group) = s.groups.get(g.group) else {
            return Err(missing());
        };
        let ids: Vec<StreamId> = match history {
            None => match group.last_delivered.next() {
                None => Vec::new(),
                Some(from) => s
                    .range(from, StreamId::MAX, false, count)
                    .iter()
                    .map(|e| e.0)
                    .collect(),
            },
            Some(after) => match (group.consumers.get(g.consumer), after.next()) {
                (Some(c), Some(from)) => c.pending.range(from..).take(count).copied().collect(),
                _ => Vec::new(),
            },
        };
        let present: Vec<bool> = ids.iter().map(|&id| s.get(id).is_some()).collect();
        let mut tombstones: Vec<bool> = ids.iter().map(|&id| s.deletions_after(id)).collect();
        let mut positions: Vec<Option<u64>> = ids.iter().map(|&id| s.position_of(id)).collect();
        let group = s.groups.get_mut(g.group).expect("found above");
        let consumer = group
            .consumers
            .entry(g.consumer.to_vec())
            .or_insert_with(|| {
                created = true;
                Consumer::default()
            });
        consumer.seen_at = now;
        if history.is_none() && !ids.is_empty() {
            consumer.active_at = Some(now);
        }
        for (&id, &present) in ids.iter().zip(&present) {
            if history.is_none() {
                group.entries_read = match group.entries_read {
                    Some(n) if !tombstones[0] => Some(n + 1),
                    _ => positions[0],
                };
                tombstones.remove(0);
                positions.remove(0);
                group.last_delivered = id;
                if !g.no_ack {
                    deliver(group, id, g.consumer, now, 1);
                }
            } else if present {
                let p = group
                    .pending
                    .get_mut(&id)
                    .expect("consumer and group agree");
                p.delivered_at = now;
                p.deliveries += 1;
            }
        }
        Ok(ids)
    });
    if created {
        store.notify(db, notify::STREAM, "xgroup-createconsumer", key);
    }
    let ids = match result {
        Err(e) => return Err(e.into()),
        Ok(None) => return Err(missing()),
        Ok(Some(Err(e))) => return Err(e),
        Ok(Some(Ok(ids))) => ids,
    };
    if history.is_none() && ids.is_empty() {
        return Ok(false);
    }
    let Some(ObjectRef::Stream(s)) = access::read(store, db, key, now, Kind::Stream)? else {
        return Ok(false);
    };
    out.array(ids.len());
    for id in ids {
        reply_entry(out, id, s.get(id));
    }
    Ok(true)
}

/// Records a delivery of `id` to `consumer` in the group's pending list.
fn deliver(group: &mut Group, id: StreamId, consumer: &[u8], now: u64, deliveries: u64) {
    if let Some(old) = group.pending.get(&id) {
        let previous = old.consumer.clone();
        if let Some(c) = group.consumers.get_mut(&previous) {
            c.pending.remove(&id);
        }
    }
    group.pending.insert(
        id,
        Pending {
            consumer: consumer.to_vec(),
            delivered_at: now,
            deliveries,
        },
    );
    group
        .consumers
        .entry(consumer.to_vec())
        .or_default()
        .pending
        .insert(id);
}

// ---- writes ----

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let result = match cmd {
        Cmd::XAdd => add(store, db, now, args, out),
        Cmd::XDel => delete(store, db, now, args, out),
        Cmd::XTrim => trim(store, db, now, args, out),
        Cmd::XSetId => set_id(store, db, now, args, out),
        Cmd::XGroup => group_command(store, db, now, args, out),
        Cmd::XReadGroup => {
            read_streams(store, db, now, args, out);
            Ok(())
        }
        Cmd::XAck => ack(store, db, now, args, out),
        Cmd::XClaim => claim(store, db, now, args, out),
        Cmd::XAutoClaim => auto_claim(store, db, now, args, out),
        _ => Err("ERR not a stream write".into()),
    };
    if let Err(e) = result {
        out.error(&e);
    }
}

/// The ID XADD gives a new entry: `*` or `ms-*` filled in from the clock and the last ID.
fn next_id(s: &Stream, requested: &[u8], now: u64) -> Result<StreamId, Error> {
    let last = s.last_id;
    if requested == b"*" {
        let id = if now > last.ms {
            StreamId::new(now, 0)
        } else {
            last.next().ok_or(
                "ERR The stream has exhausted the last possible ID, unable to add more items",
            )?
        };
        return Ok(id);
    }
    if let Some(ms) = requested.strip_suffix(b"-*") {
        let ms = StreamId::parse(ms, 0)
            .filter(|id| id.seq == 0)
            .ok_or(INVALID_ID)?
            .ms;
        return match ms.cmp(&last.ms) {
            std::cmp::Ordering::Less => Err(TOO_SMALL.into()),
            std::cmp::Ordering::Equal => match last.seq.checked_add(1) {
                Some(seq) if !s.is_empty() || last != StreamId::MIN => Ok(StreamId::new(ms, seq)),
                Some(_) => Ok(StreamId::new(ms, if ms == 0 { 1 } else { 0 })),
                None => Err(TOO_SMALL.into()),
            },
            std::cmp::Ordering::Greater => Ok(StreamId::new(ms, 0)),
        };
    }
    let id = id_arg(requested, 0)?;
    if id == StreamId::MIN {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    if id <= last {
        return Err(TOO_SMALL.into());
    }
    Ok(id)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value ...
fn add(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let opts = parse_trim_options(args, 2, true)?;
    let fields = args.tail(opts.id_at + 1);
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(errors::wrong_arity("xadd"));
    }
    let requested = args.get(opts.id_at);
    if requested != b"*" && !requested.ends_with(b"-*") && id_arg(requested, 0)? == StreamId::MIN {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    let key = args.get(1);
    let written = access::write(store, db, key, now, Kind::Stream, !opts.no_make, |o, _| {
        let s = stream_of(o);
        let id = next_id(s, requested, now)?;
        let values: Vec<&[u8]> = fields.iter().collect();
        s.append(id, &values);
        let trimmed = opts.trim.as_ref().map_or(0, |t| t.apply(s));
        Ok::<_, Error>((id, trimmed))
    })?;
    match written {
        None => out.null(),
        Some(Err(e)) => return Err(e),
        Some(Ok((id, trimmed))) => {
            store.notify(db, notify::STREAM, "xadd", key);
            if trimmed > 0 {
                store.notify(db, notify::STREAM, "xtrim", key);
            }
            reply_id(out, id);
        }
    }
    Ok(())
}

fn delete(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let ids = ids_from(args.tail(2))?;
    remove_entries(store, db, now, args.get(1), "xdel", out, |s| {
        ids.iter().filter(|&&id| s.delete(id)).count()
    })
}

/// Runs `remove` on the stream at `key` and replies with how many entries went, recording
/// `event` if any did.
fn remove_entries(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    event: &'static str,
    out: &mut ReplyWriter,
    remove: impl FnOnce(&mut Stream) -> usize,
) -> Result<(), Error> {
    let removed = access::write(store, db, key, now, Kind::Stream, false, |o, _| {
        remove(stream_of(o))
    })?
    .unwrap_or(0);
    if removed > 0 {
        store.notify(db, notify::STREAM, event, key);
    }
    out.int(removed as i64);
    Ok(())
}

fn trim(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let opts = parse_trim_options(args, 2, false)?;
    let trim = opts.trim.expect("XTRIM requires a strategy");
    remove_entries(store, db, now, args.get(1), "xtrim", out, |s| trim.apply(s))
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id].
fn set_id(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let last = id_arg(args.get(2), 0)?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i + 1 < args.len() + 1 {
        if i + 1 >= args.len() {
            return Err(errors::SYNTAX.into());
        }
        let word = args.get(i);
        if word.eq_ignore_ascii_case(b"ENTRIESADDED") {
            let n = int_arg(args.get(i + 1))?;
            if n < 0 {
                return Err("ERR entries_added must be positive".into());
            }
            added = Some(n as u64);
        } else if word.eq_ignore_ascii_case(b"MAXDELETEDID") {
            let id = id_arg(args.get(i + 1), 0)?;
            if last < id {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
            max_deleted = Some(id);
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    let key = args.get(1);
    let result = access::write(store, db, key, now, Kind::Stream, false, |o, _| {
        let s = stream_of(o);
        if added.is_some_and(|n| (n as usize) < s.len()) {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
        if !s.is_empty() && last < s.last_id {
            return Err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        s.last_id = last;
        if let Some(n) = added {
            s.entries_added = n;
        }
        if let Some(id) = max_deleted {
            s.max_deleted = id;
        }
        Ok(())
    })?;
    match result {
        None => Err(errors::NO_SUCH_KEY.into()),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(())) => {
            store.notify(db, notify::STREAM, "xsetid", key);
            out.ok();
            Ok(())
        }
    }
}

/// XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER.
fn group_command(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let sub = args.get(1).to_ascii_uppercase();
    let arity_ok = match sub.as_slice() {
        b"CREATE" => args.len() >= 5,
        b"SETID" => args.len() >= 5,
        b"DESTROY" => args.len() == 4,
        b"CREATECONSUMER" | b"DELCONSUMER" => args.len() == 5,
        _ => return Err(errors::unknown_subcommand(args.get(1), "xgroup")),
    };
    if !arity_ok {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
            String::from_utf8_lossy(args.get(1))
        )
        .into());
    }
    let (key, name) = (args.get(2), args.get(3));
    let exists = access::read(store, db, key, now, Kind::Stream)?.is_some();
    let (mut make, mut entries_read) = (false, None);
    if matches!(sub.as_slice(), b"CREATE" | b"SETID") {
        let mut i = 5;
        while i < args.len() {
            let word = args.get(i);
            if sub == b"CREATE" && word.eq_ignore_ascii_case(b"MKSTREAM") {
                make = true;
            } else if word.eq_ignore_ascii_case(b"ENTRIESREAD") && i + 1 < args.len() {
                let n = int_arg(args.get(i + 1))?;
                if n < 0 && n != -1 {
                    return Err("ERR value for ENTRIESREAD must be positive or -1".into());
                }
                entries_read = (n >= 0).then_some(n as u64);
                i += 1;
            } else {
                return Err(errors::SYNTAX.into());
            }
            i += 1;
        }
        if args.get(4) != b"$" {
            id_arg(args.get(4), 0)?;
        }
    }
    if !exists && !make {
        return Err(NEEDS_KEY.into());
    }
    let id_arg4: &[u8] = if args.len() > 4 { args.get(4) } else { b"" };
    let outcome = access::write(
        store,
        db,
        key,
        now,
        Kind::Stream,
        make,
        |o, _| -> Result<(i64, &'static str), Error> {
            let s = stream_of(o);
            let target = |s: &Stream| -> StreamId {
                if id_arg4 == b"$" {
                    s.last_id
                } else {
                    StreamId::parse(id_arg4, 0).unwrap_or_default()
                }
            };
            match sub.as_slice() {
                b"CREATE" => {
                    if s.groups.contains_key(name) {
                        return Err("BUSYGROUP Consumer Group name already exists".into());
                    }
                    let last_delivered = target(s);
                    s.groups.insert(
                        name.to_vec(),
                        Group {
                            last_delivered,
                            entries_read,
                            ..Group::default()
                        },
                    );
                    Ok((-1, "xgroup-create"))
                }
                b"SETID" => {
                    let last_delivered = target(s);
                    let group = s.groups.get_mut(name).ok_or_else(|| no_group(key, name))?;
                    group.last_delivered = last_delivered;
                    group.entries_read = entries_read;
                    Ok((-1, "xgroup-setid"))
                }
                b"DESTROY" => Ok(match s.groups.remove(name) {
                    Some(_) => (1, "xgroup-destroy"),
                    None => (0, ""),
                }),
                b"CREATECONSUMER" => {
                    let group = s.groups.get_mut(name).ok_or_else(|| no_group(key, name))?;
                    let consumer = args.get(4);
                    if group.consumers.contains_key(consumer) {
                        return Ok((0, ""));
                    }
                    group.consumers.insert(
                        consumer.to_vec(),
                        Consumer {
                            seen_at: now,
                            ..Consumer::default()
                        },
                    );
                    Ok((1, "xgroup-createconsumer"))
                }
                _ => {
                    let group = s.groups.get_mut(name).ok_or_else(|| no_group(key, name))?;
                    let Some(consumer) = group.consumers.remove(args.get(4)) else {
                        return Ok((0, ""));
                    };
                    consumer
                        .pending
                        .iter()
                        .for_each(|id| _ = group.pending.remove(id));
                    Ok((consumer.pending.len() as i64, "xgroup-delconsumer"))
                }
            }
        },
    )?;
    let (reply, event) = outcome.expect("the key exists or was made")?;
    if !event.is_empty() {
        store.notify(db, notify::STREAM, event, key);
    }
    if reply < 0 {
        out.ok();
    } else {
        out.int(reply);
    }
    Ok(())
}

fn ack(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let ids = ids_from(args.tail(3))?;
    let name = args.get(2);
    let acked = access::write(store, db, args.get(1), now, Kind::Stream, false, |o, _| {
        let Some(group) = stream_of(o).groups.get_mut(name) else {
            return 0;
        };
        let mut acked = 0;
        for id in &ids {
            if let Some(p) = group.pending.remove(id) {
                if let Some(c) = group.consumers.get_mut(&p.consumer) {
                    c.pending.remove(id);
                }
                acked += 1;
            }
        }
        acked
    })?;
    out.int(acked.unwrap_or(0));
    Ok(())
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms] [RETRYCOUNT n]
/// [FORCE] [JUSTID] [LASTID id].
fn claim(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let (key, name, consumer) = (args.get(1), args.get(2), args.get(3));
    let min_idle = min_idle_arg(args.get(4), "XCLAIM")?;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < args.len() {
        match StreamId::parse(args.get(i), 0) {
            Some(id) => ids.push(id),
            None => break,
        }
        i += 1;
    }
    let (mut delivered_at, mut retry, mut force, mut just_id, mut last_id) =
        (now, None, false, false, None);
    while i < args.len() {
        let word = args.get(i).to_ascii_uppercase();
        let value = (i + 1 < args.len()).then(|| args.get(i + 1));
        match (word.as_slice(), value) {
            (b"FORCE", _) => force = true,
            (b"JUSTID", _) => just_id = true,
            (b"IDLE", Some(v)) => {
                delivered_at = now.saturating_sub(int_arg(v)?.max(0) as u64);
                i += 1;
            }
            (b"TIME", Some(v)) => {
                delivered_at = int_arg(v)?.max(0) as u64;
                i += 1;
            }
            (b"RETRYCOUNT", Some(v)) => {
                retry = Some(int_arg(v)?.max(0) as u64);
                i += 1;
            }
            (b"LASTID", Some(v)) => {
                last_id = Some(id_arg(v, 0)?);
                i += 1;
            }
            _ => {
                return Err(format!(
                    "ERR Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(args.get(i))
                )
                .into())
            }
        }
        i += 1;
    }
    let claimed = access::write(store, db, key, now, Kind::Stream, false, |o, _| {
        let s = stream_of(o);
        let exists: Vec<bool> = ids.iter().map(|&id| s.get(id).is_some()).collect();
        let group = s.groups.get_mut(name).ok_or_else(|| no_group(key, name))?;
        if let Some(last) = last_id {
            if last > group.last_delivered {
                group.last_delivered = last;
            }
        }
        group
            .consumers
            .entry(consumer.to_vec())
            .or_default()
            .seen_at = now;
        let mut claimed = Vec::new();
        for (&id, &present) in ids.iter().zip(&exists) {
            if !present {
                // An entry deleted meanwhile leaves the pending list instead.
                if let Some(p) = group.pending.remove(&id) {
                    if let Some(c) = group.consumers.get_mut(&p.consumer) {
                        c.pending.remove(&id);
                    }
                }
                continue;
            }
            let deliveries = match group.pending.get(&id) {
                Some(p) if now.saturating_sub(p.delivered_at) < min_idle => continue,
                Some(p) => p.deliveries,
                None if force => 0,
                None => continue,
            };
            let deliveries = retry.unwrap_or(if just_id { deliveries } else { deliveries + 1 });
            deliver(group, id, consumer, delivered_at, deliveries);
            claimed.push(id);
        }
        if !claimed.is_empty() {
            if let Some(c) = group.consumers.get_mut(consumer) {
                c.active_at = Some(now);
            }
        }
        Ok::<_, Error>(claimed)
    })?;
    let claimed = match claimed {
        None => return Err(no_group(key, name)),
        Some(result) => result?,
    };
    reply_claimed(store, db, now, key, &claimed, just_id, out)
}

fn reply_claimed(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    ids: &[StreamId],
    just_id: bool,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    out.array(ids.len());
    let stream = match access::read(store, db, key, now, Kind::Stream)? {
        Some(ObjectRef::Stream(s)) => Some(s),
        _ => None,
    };
    for &id in ids {
        if just_id {
            reply_id(out, id);
        } else {
            reply_entry(out, id, stream.and_then(|s| s.get(id)));
        }
    }
    Ok(())
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID].
fn auto_claim(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    out: &mut ReplyWriter,
) -> Result<(), Error> {
    let (key, name, consumer) = (args.get(1), args.get(2), args.get(3));
    let min_idle = min_idle_arg(args.get(4), "XAUTOCLAIM")?;
    let start = match args.get(5).strip_prefix(b"(") {
        Some(rest) => id_arg(rest, 0)?.next().ok_or(INVALID_ID)?,
        None => {
            if args.get(5) == b"-" {
                StreamId::MIN
            } else {
                id_arg(args.get(5), 0)?
            }
        }
    };
    let (mut count, mut just_id) = (100usize, false);
    let mut i = 6;
    while i < args.len() {
        let word = args.get(i);
        if word.eq_ignore_ascii_case(b"COUNT") && i + 1 < args.len() {
            let n = int_arg(args.get(i + 1))?;
            if !(1..=i64::MAX / 10).contains(&n) {
                return Err("ERR COUNT must be > 0".into());
            }
            count = n as usize;
            i += 1;
        } else if word.eq_ignore_ascii_case(b"JUSTID") {
            just_id = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let result = access::write(store, db, key, now, Kind::Stream, false, |o, _| {
        let s = stream_of(o);
        let candidates: Vec<(StreamId, bool)> = match s.groups.get(name) {
            None => return Err(no_group(key, name)),
            Some(group) => group
                .pending
                .range(start..)
                .take(count)
                .map(|(&id, _)| (id, s.get(id).is_some()))
                .collect(),
        };
        let next = s.groups[name]
            .pending
            .range(start..)
            .nth(count)
            .map(|(&id, _)| id);
        let group = s.groups.get_mut(name).expect("found above");
        group
            .consumers
            .entry(consumer.to_vec())
            .or_default()
            .seen_at = now;
        let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
        for (id, present) in candidates {
            let p = group.pending.get(&id).expect("listed above");
            let (owner, delivered_at, deliveries) =
                (p.consumer.clone(), p.delivered_at, p.deliveries);
            if !present {
                group.pending.remove(&id);
                if let Some(c) = group.consumers.get_mut(&owner) {
                    c.pending.remove(&id);
                }
                deleted.push(id);
                continue;
            }
            if now.saturating_sub(delivered_at) < min_idle {
                continue;
            }
            let deliveries = if just_id { deliveries } else { deliveries + 1 };
            deliver(group, id, consumer, now, deliveries);
            claimed.push(id);
        }
        Ok((claimed, deleted, next.unwrap_or(StreamId::MIN)))
    })?;
    let (claimed, deleted, next) = match result {
        None => return Err(no_group(key, name)),
        Some(r) => r?,
    };
    out.array(3);
    reply_id(out, next);
    reply_claimed(store, db, now, key, &claimed, just_id, out)?;
    out.array(deleted.len());
    deleted.into_iter().for_each(|id| reply_id(out, id));
    Ok(())
}

// ---- XPENDING and XINFO (reads) ----

pub fn pending(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    if let Err(e) = pending_reply(store, req, out) {
        out.error(&e);
    }
}

fn pending_reply(store: &mut Store, req: &Request, out: &mut ReplyWriter) -> Result<(), Error> {
    let args = req.args;
    let (key, name) = (args.get(1), args.get(2));
    let mut i = 3;
    let mut min_idle = 0u64;
    if args.len() > 3 && args.get(3).eq_ignore_ascii_case(b"IDLE") {
        if args.len() < 5 {
            return Err(errors::SYNTAX.into());
        }
        min_idle = int_arg(args.get(4))?.max(0) as u64;
        i = 5;
    }
    let extended = args.len() > 3;
    if extended && !(args.len() == i + 3 || args.len() == i + 4) {
        return Err(errors::SYNTAX.into());
    }
    let bounds = if extended {
        let bound = |arg: &[u8], low: bool| -> Result<StreamId, Error> {
            match (arg, arg.strip_prefix(b"(")) {
                (b"-", _) => Ok(StreamId::MIN),
                (b"+", _) => Ok(StreamId::MAX),
                (_, Some(rest)) => {
                    let id = id_arg(rest, if low { 0 } else { u64::MAX })?;
                    (if low { id.next() } else { id.prev() }).ok_or_else(|| INVALID_ID.into())
                }
                _ => Ok(id_arg(arg, if low { 0 } else { u64::MAX })?),
            }
        };
        let count = int_arg(args.get(i + 2))?.max(0) as usize;
        Some((
            bound(args.get(i), true)?,
            bound(args.get(i + 1), false)?,
            count,
        ))
    } else {
        None
    };
    let missing = || -> Error {
        format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(name)
        )
        .into()
    };
    let Some(ObjectRef::Stream(s)) = access::read(store, req.db, key, req.now, Kind::Stream)?
    else {
        return Err(missing());
    };
    let group = s.groups.get(name).ok_or_else(missing)?;
    let Some((from, to, count)) = bounds else {
        out.array(4);
        out.int(group.pending.len() as i64);
        let (first, last) = (
            group.pending.keys().next(),
            group.pending.keys().next_back(),
        );
        match (first, last) {
            (Some(&a), Some(&b)) => {
                reply_id(out, a);
                reply_id(out, b);
                let busy: Vec<(&Vec<u8>, usize)> = group
                    .consumers
                    .iter()
                    .map(|(n, c)| (n, c.pending.len()))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                out.array(busy.len());
                for (consumer, n) in busy {
                    out.array(2);
                    out.bulk(consumer);
                    out.bulk_int(n as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    };
    let only = (args.len() > i + 3).then(|| args.get(i + 3));
    let rows: Vec<(&StreamId, &Pending)> = if from > to {
        Vec::new()
    } else {
        group
            .pending
            .range(from..=to)
            .filter(|(_, p)| only.is_none_or(|c| p.consumer == c))
            .filter(|(_, p)| req.now.saturating_sub(p.delivered_at) >= min_idle)
            .take(count)
            .collect()
    };
    out.array(rows.len());
    for (id, p) in rows {
        out.array(4);
        reply_id(out, *id);
        out.bulk(&p.consumer);
        out.int(req.now.saturating_sub(p.delivered_at) as i64);
        out.int(p.deliveries as i64);
    }
    Ok(())
}

/// The fields XINFO STREAM and its FULL form start with.
fn stream_header(s: &Stream, out: &mut ReplyWriter) {
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.len().div_ceil(100) as i64);
    out.bulk(b"radix-tree-nodes");
    out.int((s.len().div_ceil(100) + 1) as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id().unwrap_or_default());
}

/// A group's `entries-read` and `lag` fields (null when they cannot be known).
fn group_progress(s: &Stream, g: &Group, out: &mut ReplyWriter) {
    let known = |out: &mut ReplyWriter, n: Option<u64>| match n {
        Some(n) => out.int(n as i64),
        None => out.null(),
    };
    out.bulk(b"entries-read");
    known(out, g.entries_read);
    out.bulk(b"lag");
    known(out, s.lag(g));
}

/// XINFO STREAM key FULL [COUNT n]: the stream with its first `count` entries, and every
/// group with its first `count` pending entries and each consumer's.
fn full_info(s: &Stream, count: usize, out: &mut ReplyWriter) {
    out.map(9);
    stream_header(s, out);
    out.bulk(b"entries");
    reply_entries(out, &s.range(StreamId::MIN, StreamId::MAX, false, count));
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_delivered);
        group_progress(s, g, out);
        out.bulk(b"pel-count");
        out.int(g.pending.len() as i64);
        out.bulk(b"pending");
        let pending: Vec<_> = g.pending.iter().take(count).collect();
        out.array(pending.len());
        for (id, p) in pending {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&p.consumer);
            out.int(p.delivered_at as i64);
            out.int(p.deliveries as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (consumer, c) in &g.consumers {
            out.map(5);
            out.bulk(b"name");
            out.bulk(consumer);
            out.bulk(b"seen-time");
            out.int(c.seen_at as i64);
            out.bulk(b"active-time");
            out.int(c.active_at.map_or(-1, |at| at as i64));
            out.bulk(b"pel-count");
            out.int(c.pending.len() as i64);
            out.bulk(b"pending");
            let mine: Vec<_> = c.pending.iter().take(count).collect();
            out.array(mine.len());
            for id in mine {
                let p = &g.pending[id];
                out.array(3);
                reply_id(out, *id);
                out.int(p.delivered_at as i64);
                out.int(p.deliveries as i64);
            }
        }
    }
}

fn info(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    let sub = args.get(1).to_ascii_uppercase();
    let arity_ok = match sub.as_slice() {
        b"STREAM" => args.len() >= 3,
        b"GROUPS" => args.len() == 3,
        b"CONSUMERS" => args.len() == 4,
        _ => return out.error(&errors::unknown_subcommand(args.get(1), "xinfo")),
    };
    if !arity_ok {
        return out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(args.get(1))
        ));
    }
    let key = args.get(2);
    let s = match access::read(store, req.db, key, req.now, Kind::Stream) {
        Err(e) => return out.error(e),
        Ok(None) => return out.error(errors::NO_SUCH_KEY),
        Ok(Some(ObjectRef::Stream(s))) => s,
        Ok(Some(_)) => return out.error(errors::WRONGTYPE),
    };
    match sub.as_slice() {
        b"STREAM" if args.len() > 3 => {
            let count = match (args.len(), args.get(3).eq_ignore_ascii_case(b"FULL")) {
                (4, true) => 10,
                (6, true) if args.get(4).eq_ignore_ascii_case(b"COUNT") => {
                    match int_arg(args.get(5)) {
                        Ok(n) if n <= 0 => usize::MAX,
                        Ok(n) => n as usize,
                        Err(e) => return out.error(&e),
                    }
                }
                _ => return out.error(errors::SYNTAX),
            };
            full_info(s, count, out);
        }
        b"STREAM" => {
            let edge = |out: &mut ReplyWriter, e: Option<(StreamId, &[u8])>| match e {
                Some((id, p)) => reply_entry(out, id, Some(p)),
                None => out.null(),
            };
            out.map(10);
            stream_header(s, out);
            out.bulk(b"groups");
            out.int(s.groups.len() as i64);
            out.bulk(b"first-entry");
            edge(out, s.range(StreamId::MIN, StreamId::MAX, false, 1).pop());
            out.bulk(b"last-entry");
            edge(out, s.range(StreamId::MIN, StreamId::MAX, true, 1).pop());
        }
        b"GROUPS" => {
            out.array(s.groups.len());
            for (name, g) in &s.groups {
                out.map(6);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pending.len() as i64);
                out.bulk(b"last-delivered-id");
                reply_id(out, g.last_delivered);
                group_progress(s, g, out);
            }
        }
        _ => {
            let name = args.get(3);
            let Some(g) = s.groups.get(name) else {
                return out.error(&no_group(key, name));
            };
            out.array(g.consumers.len());
            for (consumer, c) in &g.consumers {
                out.map(4);
                out.bulk(b"name");
                out.bulk(consumer);
                out.bulk(b"pending");
                out.int(c.pending.len() as i64);
                out.bulk(b"idle");
                out.int(req.now.saturating_sub(c.seen_at) as i64);
                out.bulk(b"inactive");
                out.int(
                    c.active_at
                        .map_or(-1, |at| req.now.saturating_sub(at) as i64),
                );
            }
        }
    }
}
