//! What replicas exchange about a partition's data: batches of write requests (each with
//! the timestamp and seed its proposer fixed) run against a `Store`, and snapshot images of a
//! partition's slots.

use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_protocol::command::lookup;
use tessera_protocol::{key_slot, Args, ReplyWriter, SLOT_COUNT};
use tessera_storage::keyspace::PREFETCH_BATCH;
use tessera_storage::{dump, Request, Store};

/// What a proposer fixes for one write request besides its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub db: u32,
    /// Unix ms the proposer fixed for it: deadlines and stream IDs derive from it.
    pub now: u64,
    /// Drawn by the proposer, so a random write (SPOP) picks the same members everywhere.
    pub seed: u64,
    /// The reply's protocol (the proposing client's); the state does not depend on it.
    pub resp3: bool,
    /// When non-zero: this request and the next `transaction - 1` are a MULTI/EXEC
    /// transaction, run together and answered with one array of their replies.
    pub transaction: u32,
    /// Set when the request is not a client's command but the cluster's own.
    pub internal: Internal,
}

/// Requests a cluster makes of its own partitions through their logs.
/// Its discriminant is what a batch's packed layout stores (`KINDS` reads it back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Internal {
    /// A client's command.
    None,
    /// The two arguments are a slot range to empty (FLUSHALL in a cluster empties each
    /// partition through its log).
    Flush,
    /// The arguments are keys to remove if expired at the request's time: replicas remove
    /// expired keys only when their log says so, so that they agree.
    Expire,
    /// The arguments are pairs of a slot and its write count: the transaction that follows
    /// runs only if no write reached those slots since (WATCH in a cluster). It has no reply
    /// of its own.
    Watch,
}

/// How many writes each hash slot has had applied, counted the same on every replica (they
/// apply the same log, and snapshots carry the counts): what WATCH compares in a cluster,
/// where a watched key's own history is not replicated. A write to another key of the same
/// slot fails the watch too, which optimistic transactions retry like any conflict.
pub struct SlotVersions(Vec<AtomicU64>);

impl Default for SlotVersions {
    fn default() -> SlotVersions {
        SlotVersions((0..SLOT_COUNT).map(|_| AtomicU64::new(0)).collect())
    }
}

impl SlotVersions {
    pub fn get(&self, slot: u16) -> u64 {
        self.0[slot as usize].load(Ordering::Acquire)
    }

    /// Counts a write, once it is applied (a WATCH that reads the new count sees its data).
    /// Only the core owning the slot's partition writes its count, so a plain load and store
    /// do: a locked add would stall the apply loop on every write.
    fn bump(&self, slot: u16) {
        let count = &self.0[slot as usize];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    fn set(&self, slot: u16, count: u64) {
        self.0[slot as usize].store(count, Ordering::Release);
    }

    /// Zeroes the counts of slots whose partition this node no longer holds (or is about to
    /// replace from a snapshot).
    pub fn reset(&self, slots: Range<u16>) {
        slots.for_each(|slot| self.set(slot, 0));
    }
}

impl Header {
    pub fn new(db: usize, now: u64) -> Header {
        Header {
            db: db as u32,
            now,
            seed: tessera_storage::rng::seed(),
            resp3: false,
            transaction: 0,
            internal: Internal::None,
        }
    }
}

/// Write requests as one log entry carries them, in two byte strings, so that sending a
/// batch to a follower, logging it and reading it back copy bytes instead of walking
/// thousands of small fields: every argument back to back, and per request its header,
/// argument count and argument lengths packed (`Batch::push` writes that layout,
/// `Batch::layout` reads it). A batch from the network is checked whole as it is decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Packed")]
pub struct Batch(Packed);

/// A batch's fields, as they go over the wire; as they arrive, not yet checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Packed {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    #[serde(with = "serde_bytes")]
    meta: Vec<u8>,
    /// Requests in the batch.
    count: u32,
    /// Replies the batch will have: one per request, but one per transaction.
    replies: u32,
    /// Set by the proposing node, to find who waits for the replies once the batch is
    /// applied there (`group::Proposals`); 0 for none.
    tag: u64,
}

impl TryFrom<Packed> for Batch {
    type Error = String;

    fn try_from(packed: Packed) -> Result<Batch, String> {
        let batch = Batch(packed);
        let (requests, spans) = batch
            .read_layout()
            .ok_or("a batch whose request layout does not parse")?;
        let covered = spans.last().map_or(0, |s| s.end);
        if requests.len() != batch.0.count as usize || covered != batch.0.data.len() {
            return Err("a batch whose layout does not match its arguments".into());
        }
        Ok(batch)
    }
}

/// The packed header's flag bits.
const RESP3: u8 = 1;
const HAS_DB: u8 = 1 << 1;
const HAS_TRANSACTION: u8 = 1 << 2;
const INTERNAL_SHIFT: u8 = 3;
/// Request kinds by their discriminant, as the packed layout stores them.
const KINDS: [Internal; 4] = [
    Internal::None,
    Internal::Flush,
    Internal::Expire,
    Internal::Watch,
];
/// Bytes of `meta` a request takes at least: flags, time, seed and argument count.
const SMALLEST_REQUEST: usize = 18;

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads packed fields from the front of a batch's `meta`; `None` once it runs short or
/// holds a malformed number.
struct MetaReader<'a>(&'a [u8]);

impl MetaReader<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn fixed(&mut self) -> Option<u64> {
        let (bytes, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*bytes))
    }

    fn header(&mut self) -> Option<Header> {
        let (&flags, rest) = self.0.split_first()?;
        self.0 = rest;
        let now = self.fixed()?;
        let seed = self.fixed()?;
        let db = if flags & HAS_DB != 0 {
            self.varint()?
        } else {
            0
        };
        let transaction = if flags & HAS_TRANSACTION != 0 {
            self.varint()?
        } else {
            0
        };
        let internal = *KINDS.get(usize::from(flags >> INTERNAL_SHIFT))?;
        Some(Header {
            db: u32::try_from(db).ok()?,
            now,
            seed,
            resp3: flags & RESP3 != 0,
            transaction: u32::try_from(transaction).ok()?,
            internal,
        })
    }
}

/// Each request's header with its arguments' places in a batch's `data`.
type Layout = (Vec<(Header, Range<usize>)>, Vec<Range<usize>>);

impl Batch {
    pub fn push<'a>(&mut self, header: Header, args: impl IntoIterator<Item = &'a [u8]>) {
        let flags = u8::from(header.resp3)
            | if header.db != 0 { HAS_DB } else { 0 }
            | if header.transaction != 0 {
                HAS_TRANSACTION
            } else {
                0
            }
            | (header.internal as u8) << INTERNAL_SHIFT;
        self.0.meta.push(flags);
        self.0.meta.extend_from_slice(&header.now.to_le_bytes());
        self.0.meta.extend_from_slice(&header.seed.to_le_bytes());
        if header.db != 0 {
            put_varint(&mut self.0.meta, header.db.into());
        }
        if header.transaction != 0 {
            put_varint(&mut self.0.meta, header.transaction.into());
        }
        // The count goes before the lengths: a byte is kept for it, and widened in the rare
        // request of 128 or more arguments.
        let count_at = self.0.meta.len();
        self.0.meta.push(0);
        let mut argc = 0u64;
        for arg in args {
            put_varint(&mut self.0.meta, arg.len() as u64);
            self.0.data.extend_from_slice(arg);
            argc += 1;
        }
        if argc < 0x80 {
            self.0.meta[count_at] = argc as u8;
        } else {
            let mut count = Vec::new();
            put_varint(&mut count, argc);
            self.0.meta.splice(count_at..=count_at, count);
        }
        self.0.count += 1;
        self.0.replies += 1;
    }
    /// Adds a MULTI/EXEC transaction: its requests run together and get one array reply.
    pub fn push_transaction<'a, R>(
        &mut self,
        header: Header,
        requests: impl ExactSizeIterator<Item = R>,
    ) where
        R: IntoIterator<Item = &'a [u8]>,
    {
        let (before, count) = (self.0.replies, requests.len() as u32);
        for (i, request) in requests.enumerate() {
            let transaction = if i == 0 { count } else { 0 };
            self.push(
                Header {
                    transaction,
                    ..header
                },
                request,
            );
        }
        self.0.replies = before + 1;
    }

    /// Makes the next transaction conditional on no write having reached `watched` slots
    /// since they had the given counts.
    pub fn push_watch(&mut self, header: Header, watched: &[(u16, u64)]) {
        let header = Header {
            internal: Internal::Watch,
            ..header
        };
        let numbers: Vec<String> = watched
            .iter()
            .flat_map(|&(slot, count)| [slot.to_string(), count.to_string()])
            .collect();
        self.push(header, numbers.iter().map(String::as_bytes));
        // The transaction's reply answers for it.
        self.0.replies -= 1;
    }

    /// Adds a request that empties `slots` in every database.
    pub fn push_flush(&mut self, header: Header, slots: Range<u16>) {
        let (start, end) = (slots.start.to_string(), slots.end.to_string());
        let header = Header {
            internal: Internal::Flush,
            ..header
        };
        self.push(header, [start.as_bytes(), end.as_bytes()]);
    }

    /// Adds a request that removes those of `keys` expired at the header's time.
    pub fn push_expire(&mut self, header: Header, keys: &[Box<[u8]>]) {
        let header = Header {
            internal: Internal::Expire,
            ..header
        };
        self.push(header, keys.iter().map(|k| &k[..]));
    }

    pub fn tag(&self) -> u64 {
        self.0.tag
    }

    pub fn set_tag(&mut self, tag: u64) {
        self.0.tag = tag;
    }

    /// Replies the batch will have.
    pub fn replies(&self) -> usize {
        self.0.replies as usize
    }

    /// A batch of one request.
    pub fn of(header: Header, args: &[&[u8]]) -> Batch {
        let mut batch = Batch::default();
        batch.push(header, args.iter().copied());
        batch
    }

    /// Requests in the batch.
    pub fn len(&self) -> usize {
        self.0.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// Bytes of arguments.
    pub fn bytes(&self) -> usize {
        self.0.data.len()
    }

    /// Adds `other`'s requests after this batch's.
    pub fn append(&mut self, other: &Batch) {
        self.0.data.extend_from_slice(&other.0.data);
        self.0.meta.extend_from_slice(&other.0.meta);
        self.0.count += other.0.count;
        self.0.replies += other.0.replies;
    }

    /// Every argument of every request, in order.
    pub fn arguments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.layout().1.into_iter().map(|span| &self.0.data[span])
    }

    /// Each request's header and the places of its arguments' spans, and every argument's
    /// place in `data`.
    fn layout(&self) -> Layout {
        self.read_layout()
            .expect("a batch's layout is checked when it is made or received")
    }

    fn read_layout(&self) -> Option<Layout> {
        let mut reader = MetaReader(&self.0.meta);
        // Sized by what `meta` can hold, not by the count, which may come from the network.
        let count = self.0.count as usize;
        let mut requests = Vec::with_capacity(count.min(self.0.meta.len() / SMALLEST_REQUEST));
        let mut spans = Vec::with_capacity(count.saturating_mul(3).min(self.0.meta.len()));
        let mut at = 0usize;
        while !reader.0.is_empty() {
            let header = reader.header()?;
            let argc = usize::try_from(reader.varint()?).ok()?;
            let first = spans.len();
            for _ in 0..argc {
                let len = usize::try_from(reader.varint()?).ok()?;
                let end = at
                    .checked_add(len)
                    .filter(|&end| end <= self.0.data.len())?;
                spans.push(at..end);
                at = end;
            }
            requests.push((header, first..spans.len()));
        }
        Some((requests, spans))
    }
}

/// The replies to a batch, back to back, with where each ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replies {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Replies {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The replies from the `i`th on, each as its own buffer.
    pub fn split_from(&self, i: usize, count: usize) -> Vec<Vec<u8>> {
        (i..(i + count).min(self.ends.len()))
            .map(|k| {
                let start = if k == 0 { 0 } else { self.ends[k - 1] as usize };
                self.data[start..self.ends[k] as usize].to_vec()
            })
            .collect()
    }
}

/// Runs a batch against the store in order and returns the replies (a transaction's as one
/// array; its requests run back to back, so nothing interleaves). The first key of each
/// group of upcoming requests (in the first one's database, in practice the only one of a
/// cluster) is prefetched before they run, so their cache misses overlap.
pub fn run(store: &mut Store, versions: &SlotVersions, batch: &Batch) -> Replies {
    // Applying the log is where a replica may remove expired keys (as every write judges
    // them by its request's time, all replicas remove the same ones at the same point).
    let kept_expired = store.keeps_expired();
    store.set_keeps_expired(false);
    let replies = run_requests(store, versions, batch);
    store.set_keeps_expired(kept_expired);
    replies
}

/// Whether every slot of a watch request still has its count.
fn watch_intact(versions: &SlotVersions, args: &Args) -> bool {
    let numbers: Vec<Option<u64>> = args
        .iter()
        .map(|a| std::str::from_utf8(a).ok()?.parse().ok())
        .collect();
    numbers.chunks(2).all(|pair| match pair {
        [Some(slot), Some(count)] if (*slot as usize) < SLOT_COUNT => {
            versions.get(*slot as u16) == *count
        }
        _ => false,
    })
}

/// Runs one request (a client's or the cluster's own) and counts the writes to its slots.
fn run_one(
    store: &mut Store,
    versions: &SlotVersions,
    header: Header,
    args: Args,
    writer: &mut ReplyWriter,
) {
    // Every replica answers a database its store lacks the same way (a peer's bug or a
    // damaged entry, never a client's command: those are checked before they are proposed).
    if header.db as usize >= store.databases() {
        return writer.error("ERR DB index is out of range");
    }
    let slot_of = |i: usize| std::str::from_utf8(args.get(i)).ok()?.parse::<u16>().ok();
    match header.internal {
        Internal::Flush => match (args.len(), slot_of(0), slot_of(1)) {
            (2, Some(start), Some(end)) if start <= end && end as usize <= SLOT_COUNT => {
                clear_slots(store, start..end);
                (start..end).for_each(|slot| versions.bump(slot));
                writer.ok();
            }
            _ => writer.error("ERR malformed flush"),
        },
        Internal::Expire => {
            // A lookup at the request's time removes each key that has expired by then.
            let ks = store.db(header.db as usize);
            for key in args.iter() {
                _ = ks.touch(key, header.now);
                versions.bump(key_slot(key));
            }
            writer.ok();
        }
        // A watch answers for the transaction after it (`run_requests`).
        Internal::Watch => writer.error("ERR a watch without a transaction"),
        Internal::None => match (!args.is_empty()).then(|| lookup(args.get(0))).flatten() {
            Some(spec) => {
                let req = Request {
                    spec,
                    args,
                    db: header.db as usize,
                    now: header.now,
                };
                store.execute_seeded(&req, Some(header.seed), writer);
                let first_key = spec.keys_in(&args).next().filter(|_| spec.is_write());
                if let Some(first) = first_key {
                    versions.bump(key_slot(args.get(first)));
                }
            }
            _ => writer.error("ERR unknown command"),
        },
    }
}

fn run_requests(store: &mut Store, versions: &SlotVersions, batch: &Batch) -> Replies {
    let (layout, spans) = batch.layout();
    let mut replies = Replies {
        data: Vec::with_capacity(batch.len() * 8),
        ends: Vec::with_capacity(batch.len()),
    };
    let requests: Vec<(Header, &[Range<usize>])> = layout
        .into_iter()
        .map(|(header, args)| (header, &spans[args]))
        .collect();
    // Requests still to run in the transaction under way (its reply ends after the last).
    let mut transaction_left = 0u32;
    // Set by a failed watch: the transaction that follows is skipped (until its last request).
    let mut skipping = false;
    for group in requests.chunks(PREFETCH_BATCH) {
        let db = group[0].0.db as usize;
        let keys: Vec<&[u8]> = group
            .iter()
            .filter(|(h, spans)| h.db as usize == db && spans.len() > 1)
            .map(|(_, spans)| &batch.0.data[spans[1].clone()])
            .collect();
        if let Some(ks) = store.keyspace(db) {
            ks.prefetch(&keys);
        }
        for &(header, spans) in group {
            let args = Args::from_spans(&batch.0.data, spans);
            if header.internal == Internal::Watch {
                skipping = !watch_intact(versions, &args);
                continue;
            }
            let mut writer = ReplyWriter::new(&mut replies.data, header.resp3);
            if header.transaction > 0 {
                transaction_left = header.transaction;
                if skipping {
                    writer.null_array();
                } else {
                    writer.array(header.transaction as usize);
                }
            }
            if !skipping {
                run_one(store, versions, header, args, &mut writer);
            }
            transaction_left = transaction_left.saturating_sub(1);
            if transaction_left == 0 {
                replies.ends.push(replies.data.len() as u32);
                skipping = false;
            }
        }
    }
    replies
}

/// A partition's keys as a snapshot holds them, serialized with rkyv: reading one back
/// walks the archived records in place, with no decoding pass.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct Image {
    records: Vec<Record>,
    /// Each slot's write count (`SlotVersions`).
    versions: Vec<(u16, u64)>,
}

impl Image {
    /// The image as bytes; done off the core that captured it.
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .expect("an image of plain bytes serializes")
            .to_vec()
    }
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Record {
    db: u32,
    /// Absolute Unix ms, 0 for none.
    deadline: u64,
    key: Vec<u8>,
    /// As `dump::value_bytes` writes it.
    value: Vec<u8>,
}

/// The keys of `slots`, every database, copied out as a snapshot image.
pub fn snapshot(store: &Store, versions: &SlotVersions, slots: Range<u16>, now: u64) -> Image {
    let mut records = Vec::new();
    for db in 0..store.databases() {
        let Some(ks) = store.keyspace(db) else {
            continue;
        };
        for slot in slots.clone() {
            for entry in ks.slot_entries(slot, now) {
                records.push(Record {
                    db: db as u32,
                    deadline: entry.expire_at().unwrap_or(0),
                    key: entry.key().to_vec(),
                    value: dump::value_bytes(entry),
                });
            }
        }
    }
    let versions = slots.map(|slot| (slot, versions.get(slot))).collect();
    Image { records, versions }
}

/// Removes every key of `slots`, in every database.
pub fn clear_slots(store: &mut Store, slots: Range<u16>) {
    for db in 0..store.databases() {
        let Some(ks) = store.keyspace(db) else {
            continue;
        };
        let keys: Vec<Box<[u8]>> = slots
            .clone()
            .flat_map(|slot| ks.slot_entries(slot, 0).map(|e| Box::from(e.key())))
            .collect();
        let ks = store.db(db);
        for key in keys {
            ks.remove(&key, 0);
        }
    }
}

/// Replaces the keys of `slots` with an image's. An image that does not validate changes
/// nothing and is reported: it comes from a peer or a disk, and must not take the node down.
pub fn restore(
    store: &mut Store,
    versions: &SlotVersions,
    slots: Range<u16>,
    bytes: &[u8],
) -> Result<(), String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let image = rkyv::access::<ArchivedImage, rkyv::rancor::Error>(&aligned)
        .map_err(|e| format!("a snapshot that does not validate: {e}"))?;
    clear_slots(store, slots.clone());
    versions.reset(slots.clone());
    let limits = store.limits;
    for record in image.records.iter() {
        let db = record.db.to_native() as usize;
        if db >= store.databases() {
            continue;
        }
        let deadline = record.deadline.to_native();
        if let Some(entry) = dump::entry_from(&record.key, &record.value, deadline, 0, &limits) {
            store.db(db).insert_quietly(entry);
        }
    }
    for pair in image.versions.iter() {
        let slot = pair.0.to_native();
        if slots.contains(&slot) {
            versions.set(slot, pair.1.to_native());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_protocol::key_slot;

    /// Runs a batch on a replica whose slot write counts nobody watches.
    fn apply(store: &mut Store, batch: &Batch) -> Replies {
        run(store, &SlotVersions::default(), batch)
    }

    /// Runs one request; its reply.
    fn run_one(store: &mut Store, db: usize, args: &[&[u8]]) -> Vec<u8> {
        let mut header = Header::new(db, 1);
        header.seed = 7;
        apply(store, &Batch::of(header, args))
            .split_from(0, 1)
            .remove(0)
    }

    #[test]
    fn replicas_applying_a_random_write_pick_the_same_members() {
        let members: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"s"];
        sadd.extend(members.iter().map(Vec::as_slice));
        let (mut a, mut b) = (Store::new(16), Store::new(16));
        let fill = Batch::of(Header::new(0, 1), &sadd);
        apply(&mut a, &fill);
        apply(&mut b, &fill);
        let mut pops = Batch::default();
        for _ in 0..5 {
            pops.push(Header::new(0, 1), [&b"SPOP"[..], b"s", b"7"]);
        }
        assert_eq!(apply(&mut a, &pops), apply(&mut b, &pops));
        assert_eq!(
            run_one(&mut a, 0, &[b"SMEMBERS", b"s"]),
            run_one(&mut b, 0, &[b"SMEMBERS", b"s"])
        );
    }

    #[test]
    fn a_batch_survives_serialization_and_its_replies_split_in_order() {
        let mut batch = Batch::default();
        batch.push(Header::new(0, 1), [&b"SET"[..], b"k", b"v"]);
        batch.push(Header::new(0, 1), [&b"INCR"[..], b"n"]);
        let mut more = Batch::default();
        more.push(Header::new(0, 1), [&b"GET"[..], b"k"]);
        more.push(Header::new(0, 1), [&b"NOSUCH"[..]]);
        batch.append(&more);
        batch.set_tag(7);
        let bytes = bincode::serialize(&batch).unwrap();
        let copy: Batch = bincode::deserialize(&bytes).unwrap();
        assert_eq!(copy, batch);
        let replies = apply(&mut Store::new(16), &copy);
        assert_eq!(replies.len(), 4);
        assert_eq!(replies.split_from(1, 2), [&b":1\r\n"[..], b"$1\r\nv\r\n"]);
        assert_eq!(replies.split_from(3, 1), [&b"-ERR unknown command\r\n"[..]]);
    }

    #[test]
    fn every_header_field_and_long_argument_lists_survive_the_packed_layout() {
        let header = Header {
            db: 300,
            now: u64::MAX - 1,
            seed: 12345,
            resp3: true,
            transaction: 70_000,
            internal: Internal::Expire,
        };
        let many: Vec<Vec<u8>> = (0..200).map(|i| vec![b'x'; i]).collect();
        let mut batch = Batch::default();
        batch.push(header, many.iter().map(Vec::as_slice));
        batch.push(Header::new(0, 5), [&b"PING"[..]]);
        let copy: Batch = bincode::deserialize(&bincode::serialize(&batch).unwrap()).unwrap();
        let (requests, spans) = copy.layout();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].0, header);
        assert_eq!(
            requests[1].0,
            Header {
                seed: requests[1].0.seed,
                ..Header::new(0, 5)
            }
        );
        let args: Vec<&[u8]> = copy.arguments().collect();
        assert_eq!(args.len(), 201);
        assert!(args[..200].iter().zip(&many).all(|(a, m)| a == m));
        assert_eq!(spans.last().map(|s| s.end), Some(copy.bytes()));
    }

    #[test]
    fn a_batch_whose_layout_disagrees_with_its_arguments_is_refused_whole() {
        let batch = Batch::of(Header::new(0, 1), &[b"SET", b"k", b"v"]);
        let forge = |data: &[u8], meta: &[u8], count| {
            let wire = Packed {
                data: data.to_vec(),
                meta: meta.to_vec(),
                count,
                replies: 1,
                tag: 0,
            };
            bincode::deserialize::<Batch>(&bincode::serialize(&wire).unwrap())
        };
        assert_eq!(forge(&batch.0.data, &batch.0.meta, 1).unwrap(), batch);
        let short = &batch.0.meta[..batch.0.meta.len() - 1];
        assert!(forge(&batch.0.data, short, 1).is_err(), "a cut layout");
        assert!(
            forge(&batch.0.data[1..], &batch.0.meta, 1).is_err(),
            "arguments past the data"
        );
        assert!(
            forge(b"SETkvX", &batch.0.meta, 1).is_err(),
            "data no request covers"
        );
        assert!(
            forge(&batch.0.data, &batch.0.meta, 2).is_err(),
            "a wrong count"
        );
        let mut bad_kind = batch.0.meta.clone();
        bad_kind[0] |= 0xf0;
        assert!(
            forge(&batch.0.data, &bad_kind, 1).is_err(),
            "an unknown request kind"
        );
        let mut endless = batch.0.meta.clone();
        endless.extend_from_slice(&[0xff; 12]);
        assert!(
            forge(&batch.0.data, &endless, 1).is_err(),
            "a number without end"
        );
    }

    #[test]
    fn random_damage_to_a_batch_never_panics_and_what_decodes_runs() {
        let mut batch = Batch::default();
        batch.push(Header::new(0, 1), [&b"SET"[..], b"k", b"v"]);
        batch.push(Header::new(3, 1), [&b"INCR"[..], b"n"]);
        let bytes = bincode::serialize(&batch).unwrap();
        let mut rng = tessera_storage::rng::Rng::new(42);
        for _ in 0..20_000 {
            let mut damaged = bytes.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(damaged.len());
                damaged[at] = rng.next_u64() as u8;
            }
            damaged.truncate(damaged.len() - rng.below(3));
            if let Ok(decoded) = bincode::deserialize::<Batch>(&damaged) {
                assert_eq!(decoded.layout().0.len(), decoded.len());
                apply(&mut Store::new(16), &decoded);
            }
        }
    }

    #[test]
    fn a_transaction_runs_as_one_and_gets_one_array_reply() {
        let mut batch = Batch::default();
        batch.push(Header::new(0, 1), [&b"SET"[..], b"k", b"1"]);
        let queued: [Vec<&[u8]>; 3] = [
            vec![b"INCR", b"k"],
            vec![b"LPUSH", b"k", b"x"],
            vec![b"GET", b"k"],
        ];
        batch.push_transaction(Header::new(0, 1), queued.iter().map(|r| r.iter().copied()));
        batch.push(Header::new(0, 1), [&b"GET"[..], b"k"]);
        assert_eq!((batch.len(), batch.replies()), (5, 3));
        let replies = apply(&mut Store::new(16), &batch);
        assert_eq!(replies.len(), 3);
        assert_eq!(
            replies.split_from(1, 1),
            [&b"*3\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n"[..]]
        );
        assert_eq!(replies.split_from(2, 1), [&b"$1\r\n2\r\n"[..]]);
    }

    #[test]
    fn a_transaction_of_one_command_still_gets_an_array() {
        let mut batch = Batch::default();
        let queued: [Vec<&[u8]>; 1] = [vec![b"SET", b"k", b"1"]];
        batch.push_transaction(Header::new(0, 1), queued.iter().map(|r| r.iter().copied()));
        let replies = apply(&mut Store::new(16), &batch);
        assert_eq!(replies.split_from(0, 1), [&b"*1\r\n+OK\r\n"[..]]);
    }

    #[test]
    fn a_watched_transaction_runs_only_if_no_write_reached_its_slot() {
        let (mut store, versions) = (Store::new(16), SlotVersions::default());
        let slot = key_slot(b"{a}");
        let write = Batch::of(Header::new(0, 1), &[b"SET", b"{a}k", b"1"]);
        run(&mut store, &versions, &write);
        assert_eq!(versions.get(slot), 1);
        let incr: [Vec<&[u8]>; 1] = [vec![b"INCR", b"{a}k"]];
        let watched = |count: u64| {
            let mut batch = Batch::default();
            batch.push_watch(Header::new(0, 1), &[(slot, count)]);
            batch.push_transaction(Header::new(0, 1), incr.iter().map(|r| r.iter().copied()));
            batch.push(Header::new(0, 1), [&b"GET"[..], b"{a}k"]);
            batch
        };
        let intact = run(&mut store, &versions, &watched(1));
        assert_eq!(
            intact.split_from(0, 2),
            [&b"*1\r\n:2\r\n"[..], b"$1\r\n2\r\n"]
        );
        // The transaction itself wrote the slot: a watch of the old count now fails.
        let failed = run(&mut store, &versions, &watched(1));
        assert_eq!(watched(1).replies(), 2);
        assert_eq!(failed.split_from(0, 2), [&b"*-1\r\n"[..], b"$1\r\n2\r\n"]);
        assert_eq!(
            versions.get(slot),
            2,
            "a skipped transaction writes nothing"
        );
        assert_eq!(versions.get(key_slot(b"{b}")), 0);
    }

    #[test]
    fn a_replica_that_let_a_partition_go_counts_its_writes_afresh() {
        let slot = key_slot(b"{a}");
        let write = Batch::of(Header::new(0, 1), &[b"SET", b"{a}k", b"1"]);
        let (mut kept, kept_versions) = (Store::new(16), SlotVersions::default());
        run(&mut kept, &kept_versions, &write);
        let (mut back, back_versions) = (Store::new(16), SlotVersions::default());
        run(&mut back, &back_versions, &write);
        run(&mut back, &back_versions, &write);
        // It let the partition go, and gets it back from the start of its log.
        clear_slots(&mut back, slot..slot + 1);
        back_versions.reset(slot..slot + 1);
        run(&mut back, &back_versions, &write);
        assert_eq!(back_versions.get(slot), kept_versions.get(slot));
    }

    #[test]
    fn a_flush_empties_only_its_slots() {
        let mut store = Store::new(16);
        run_one(&mut store, 0, &[b"SET", b"{a}k", b"1"]);
        run_one(&mut store, 2, &[b"SET", b"{a}k", b"1"]);
        run_one(&mut store, 0, &[b"SET", b"{b}k", b"1"]);
        let slot = key_slot(b"{a}");
        let mut batch = Batch::default();
        batch.push_flush(Header::new(0, 1), slot..slot + 1);
        assert_eq!(
            apply(&mut store, &batch).split_from(0, 1),
            [&b"+OK\r\n"[..]]
        );
        assert_eq!(
            run_one(&mut store, 0, &[b"EXISTS", b"{a}k", b"{b}k"]),
            b":1\r\n"
        );
        assert_eq!(run_one(&mut store, 2, &[b"EXISTS", b"{a}k"]), b":0\r\n");
    }

    #[test]
    fn expired_keys_leave_a_replica_only_through_its_log() {
        let mut store = Store::new(16);
        store.set_keeps_expired(true);
        let mut header = Header::new(0, 1000);
        header.seed = 7;
        apply(
            &mut store,
            &Batch::of(header, &[b"SET", b"k", b"v", b"PX", b"100"]),
        );
        // Read after the deadline: absent, but still there.
        let get = Request {
            spec: lookup(b"GET").unwrap(),
            args: Args::from_spans(b"GETk", &[0..3, 3..4]),
            db: 0,
            now: 2000,
        };
        let mut out = Vec::new();
        store.execute(&get, &mut ReplyWriter::new(&mut out, false));
        assert_eq!(out, b"$-1\r\n");
        assert_eq!(
            store.keyspace(0).unwrap().len(),
            1,
            "a read does not remove it"
        );
        let expired = store
            .keyspace(0)
            .unwrap()
            .expired_keys(key_slot(b"k"), 2000, 10);
        assert_eq!(expired, [Box::from(&b"k"[..])]);
        let mut batch = Batch::default();
        batch.push_expire(Header::new(0, 1050), &expired);
        apply(&mut store, &batch);
        assert_eq!(
            store.keyspace(0).unwrap().len(),
            1,
            "not yet expired at 1050"
        );
        let mut batch = Batch::default();
        batch.push_expire(Header::new(0, 2000), &expired);
        apply(&mut store, &batch);
        assert_eq!(store.keyspace(0).unwrap().len(), 0);
        assert!(store.keeps_expired());
    }

    #[test]
    fn snapshots_restore_every_type_and_only_their_slots() {
        let mut store = Store::new(16);
        for args in [
            &[&b"SET"[..], b"{a}s", b"v"][..],
            &[b"RPUSH", b"{a}l", b"a", b"b"],
            &[b"ZADD", b"{a}z", b"1", b"m"],
            &[b"XADD", b"{a}x", b"1-1", b"f", b"v"],
        ] {
            run_one(&mut store, 3, args);
        }
        let slot = key_slot(b"{a}");
        let versions = SlotVersions::default();
        versions.set(slot, 4);
        versions.set(slot + 1, 9);
        let image = snapshot(&store, &versions, slot..slot + 1, 1).encode();
        let mut copy = Store::new(16);
        run_one(&mut copy, 3, &[b"SET", b"{a}stale", b"x"]);
        run_one(&mut copy, 3, &[b"SET", b"{b}kept", b"x"]);
        let restored = SlotVersions::default();
        restore(&mut copy, &restored, slot..slot + 1, &image).unwrap();
        assert_eq!((restored.get(slot), restored.get(slot + 1)), (4, 0));
        for args in [
            &[&b"GET"[..], b"{a}s"][..],
            &[b"LRANGE", b"{a}l", b"0", b"-1"],
            &[b"ZSCORE", b"{a}z", b"m"],
            &[b"XLEN", b"{a}x"],
            &[b"EXISTS", b"{a}stale"],
        ] {
            assert_eq!(
                run_one(&mut copy, 3, args),
                run_one(&mut store, 3, args),
                "{args:?}"
            );
        }
        assert_eq!(run_one(&mut copy, 3, &[b"GET", b"{b}kept"]), b"$1\r\nx\r\n");
        let broken = restore(
            &mut copy,
            &restored,
            slot..slot + 1,
            &image[..image.len() - 3],
        );
        assert!(broken.is_err());
        assert_eq!(
            run_one(&mut copy, 3, &[b"GET", b"{a}s"]),
            b"$1\r\nv\r\n",
            "kept"
        );
    }
}
