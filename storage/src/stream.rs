//! The stream value: entries ordered by ID, each a pack of fields and values, with the
//! bookkeeping XINFO reports and the consumer groups that read it.

use crate::entry::size_class;
use crate::pack;
use std::collections::{BTreeMap, BTreeSet};

/// An entry ID: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID up, if any.
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId {
                ms: self.ms.checked_add(1)?,
                seq: 0,
            }),
        }
    }

    /// The next ID down, if any.
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId {
                ms: self.ms.checked_sub(1)?,
                seq: u64::MAX,
            }),
        }
    }

    pub fn text(self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// Reads `ms-seq`, or `ms` alone with `missing_seq`.
    pub fn parse(arg: &[u8], missing_seq: u64) -> Option<StreamId> {
        let text = std::str::from_utf8(arg).ok()?;
        let number = |t: &str| -> Option<u64> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        match text.split_once('-') {
            Some((ms, seq)) => Some(StreamId::new(number(ms)?, number(seq)?)),
            None => Some(StreamId::new(number(text)?, missing_seq)),
        }
    }
}

/// A message delivered to a consumer and not yet acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub consumer: Vec<u8>,
    /// Unix ms of the last delivery.
    pub delivered_at: u64,
    pub deliveries: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Unix ms of the consumer's last attempted interaction and last successful one.
    pub seen_at: u64,
    pub active_at: Option<u64>,
    pub pending: BTreeSet<StreamId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub last_delivered: StreamId,
    /// Entries the group has read, when known (Redis's `entries-read`).
    pub entries_read: Option<u64>,
    pub pending: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    entries: BTreeMap<StreamId, Box<[u8]>>,
    pub last_id: StreamId,
    pub entries_added: u64,
    pub max_deleted: StreamId,
    pub groups: BTreeMap<Vec<u8>, Group>,
    /// Allocator bytes of the entries' packs.
    entry_bytes: usize,
}

/// Bytes a B-tree map spends per element beyond the element itself (nodes of up to 11).
const NODE_SHARE: usize = 16;

impl Stream {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn first_id(&self) -> Option<StreamId> {
        self.entries.keys().next().copied()
    }

    pub fn get(&self, id: StreamId) -> Option<&[u8]> {
        self.entries.get(&id).map(|p| &p[..])
    }

    /// Appends an entry whose ID is above `last_id`.
    pub fn append(&mut self, id: StreamId, fields: &[&[u8]]) {
        let mut packed = Vec::new();
        fields.iter().for_each(|f| pack::push_back(&mut packed, f));
        self.entry_bytes += size_class(packed.len());
        self.entries.insert(id, packed.into_boxed_slice());
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Removes an entry (XDEL); true when it existed. Unlike trimming, a deletion is a gap
    /// consumer groups' counters must account for, so it is remembered.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if !self.remove(id) {
            return false;
        }
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        true
    }

    fn remove(&mut self, id: StreamId) -> bool {
        let Some(packed) = self.entries.remove(&id) else {
            return false;
        };
        self.entry_bytes -= size_class(packed.len());
        true
    }

    /// Entries with IDs in `from..=to`, ascending (or descending with `rev`), at most `count`.
    pub fn range(
        &self,
        from: StreamId,
        to: StreamId,
        rev: bool,
        count: usize,
    ) -> Vec<(StreamId, &[u8])> {
        if from > to {
            return Vec::new();
        }
        let range = self.entries.range(from..=to).map(|(id, p)| (*id, &p[..]));
        if rev {
            range.rev().take(count).collect()
        } else {
            range.take(count).collect()
        }
    }

    /// Removes entries from the front while `doomed` says so, at most `limit` (0: no limit);
    /// returns how many went.
    pub fn trim(&mut self, limit: usize, mut doomed: impl FnMut(StreamId, usize) -> bool) -> usize {
        let mut removed = 0;
        while limit == 0 || removed < limit {
            let Some((&id, _)) = self.entries.first_key_value() else {
                break;
            };
            if !doomed(id, self.entries.len()) {
                break;
            }
            self.remove(id);
            removed += 1;
        }
        removed
    }

    /// The fields and values of an entry's pack.
    pub fn fields(packed: &[u8]) -> impl Iterator<Item = &[u8]> {
        pack::iter(packed)
    }

    /// Whether an entry deleted since `from` (Redis's "tombstone") may lie ahead of it.
    pub fn deletions_after(&self, from: StreamId) -> bool {
        !self.is_empty() && self.max_deleted != StreamId::MIN && from <= self.max_deleted
    }

    /// How many entries were added up to and including `id`, when that can be known (Redis's
    /// estimate of an ID's logical position).
    pub fn position_of(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_id().unwrap_or_default();
        if self.max_deleted == StreamId::MIN || self.max_deleted < first {
            let before_first = self.entries_added - self.len() as u64;
            match id.cmp(&first) {
                std::cmp::Ordering::Less => return Some(before_first),
                std::cmp::Ordering::Equal => return Some(before_first + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// How many entries a group has yet to read, when that can be known.
    pub fn lag(&self, group: &Group) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match group.entries_read {
            Some(n) if !self.deletions_after(group.last_delivered) => Some(n),
            _ => self.position_of(group.last_delivered),
        };
        read.map(|n| self.entries_added.saturating_sub(n))
    }

    /// Bytes this stream holds (entries, their index share, and its groups roughly).
    pub fn memory(&self) -> usize {
        let per_entry = std::mem::size_of::<(StreamId, Box<[u8]>)>() + NODE_SHARE;
        let groups: usize = self
            .groups
            .values()
            .map(|g| 128 + g.pending.len() * 96 + g.consumers.len() * 96)
            .sum();
        self.entries.len() * per_entry + self.entry_bytes + groups
    }
}

/// Writes a stream as pack elements (numbers as 8 little-endian bytes), for moving it
/// between cores; `decode` reads it back.
pub fn encode(stream: &Stream, out: &mut Vec<u8>) {
    let mut put = |bytes: &[u8]| pack::push_back(out, bytes);
    let number = |n: u64| n.to_le_bytes();
    let id = |id: StreamId| [id.ms.to_le_bytes(), id.seq.to_le_bytes()].concat();
    put(&id(stream.last_id));
    put(&number(stream.entries_added));
    put(&id(stream.max_deleted));
    put(&number(stream.entries.len() as u64));
    for (entry, packed) in &stream.entries {
        put(&id(*entry));
        put(packed);
    }
    put(&number(stream.groups.len() as u64));
    for (name, group) in &stream.groups {
        put(name);
        put(&id(group.last_delivered));
        put(&group
            .entries_read
            .map_or(Vec::new(), |n| number(n).to_vec()));
        put(&number(group.pending.len() as u64));
        for (entry, p) in &group.pending {
            put(&id(*entry));
            put(&p.consumer);
            put(&number(p.delivered_at));
            put(&number(p.deliveries));
        }
        put(&number(group.consumers.len() as u64));
        for (name, c) in &group.consumers {
            put(name);
            put(&number(c.seen_at));
            put(&c.active_at.map_or(Vec::new(), |n| number(n).to_vec()));
        }
    }
}

/// Reads what `encode` wrote; consumers' pending sets are rebuilt from the group's.
pub fn decode(bytes: &[u8]) -> Option<Stream> {
    let mut items = pack::iter(bytes);
    let mut next = || items.next();
    fn number(b: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn id(b: &[u8]) -> Option<StreamId> {
        (b.len() == 16)
            .then(|| StreamId::new(number(&b[..8]).unwrap_or(0), number(&b[8..]).unwrap_or(0)))
    }
    let mut stream = Stream {
        last_id: id(next()?)?,
        entries_added: number(next()?)?,
        max_deleted: id(next()?)?,
        ..Stream::default()
    };
    for _ in 0..number(next()?)? {
        let entry = id(next()?)?;
        let packed: Box<[u8]> = next()?.into();
        stream.entry_bytes += size_class(packed.len());
        stream.entries.insert(entry, packed);
    }
    for _ in 0..number(next()?)? {
        let name = next()?.to_vec();
        let mut group = Group {
            last_delivered: id(next()?)?,
            entries_read: number(next()?),
            ..Group::default()
        };
        for _ in 0..number(next()?)? {
            let entry = id(next()?)?;
            let pending = Pending {
                consumer: next()?.to_vec(),
                delivered_at: number(next()?)?,
                deliveries: number(next()?)?,
            };
            group.pending.insert(entry, pending);
        }
        for _ in 0..number(next()?)? {
            let name = next()?.to_vec();
            let consumer = Consumer {
                seen_at: number(next()?)?,
                active_at: number(next()?),
                pending: BTreeSet::new(),
            };
            group.consumers.insert(name, consumer);
        }
        for (entry, p) in &group.pending {
            group.consumers.get_mut(&p.consumer)?.pending.insert(*entry);
        }
        stream.groups.insert(name, group);
    }
    Some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_order_and_step() {
        assert_eq!(StreamId::parse(b"5-3", 0), Some(StreamId::new(5, 3)));
        assert_eq!(
            StreamId::parse(b"5", u64::MAX),
            Some(StreamId::new(5, u64::MAX))
        );
        assert_eq!(StreamId::parse(b"5-", 0), None);
        assert_eq!(StreamId::parse(b"-5", 0), None);
        assert_eq!(StreamId::parse(b"1-2-3", 0), None);
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
    }

    #[test]
    fn append_delete_trim_keep_counts() {
        let mut s = Stream::default();
        for i in 1..=10 {
            s.append(StreamId::new(i, 0), &[b"f", b"v"]);
        }
        assert!(s.delete(StreamId::new(3, 0)));
        assert!(!s.delete(StreamId::new(3, 0)));
        assert_eq!(s.max_deleted, StreamId::new(3, 0));
        assert_eq!(s.trim(0, |_, len| len > 5), 4);
        assert_eq!(
            s.max_deleted,
            StreamId::new(3, 0),
            "trimming is not deleting"
        );
        assert_eq!(s.first_id(), Some(StreamId::new(6, 0)));
        assert_eq!(s.entries_added, 10);
        let back = s.range(StreamId::MIN, StreamId::MAX, true, 2);
        assert_eq!(back.iter().map(|e| e.0.ms).collect::<Vec<_>>(), [10, 9]);
        let mut group = Group::default();
        group.pending.insert(
            StreamId::new(7, 0),
            Pending {
                consumer: b"c".to_vec(),
                delivered_at: 5,
                deliveries: 2,
            },
        );
        let mut consumer = Consumer::default();
        consumer.pending.insert(StreamId::new(7, 0));
        group.consumers.insert(b"c".to_vec(), consumer);
        s.groups.insert(b"g".to_vec(), group);
        let mut bytes = Vec::new();
        encode(&s, &mut bytes);
        assert_eq!(decode(&bytes), Some(s));
    }
}
