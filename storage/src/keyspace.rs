//! One database's keys on one core, indexed per hash slot.
//!
//! Every slot has its own small hash table. That makes the slot the unit that
//! `CLUSTER COUNTKEYSINSLOT` counts, that a partition moves or snapshots, and that SCAN walks
//! first (a slot's place in a scan stays valid however the tables grow); within a slot, SCAN
//! resumes at a bucket of the slot's table for as long as the table has not moved its entries.
//! Keys are looked up by the slot the router already knows and a fast seeded hash within it.

use crate::entry::Entry;
use crate::notify;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::collections::HashMap;
use std::hash::BuildHasher;
use tessera_protocol::{key_slot, SLOT_COUNT};

#[derive(Default)]
struct SlotTable {
    table: HashTable<Entry>,
    /// Keys in this slot that carry a deadline, so the expiry cycle can skip the others.
    volatile: u32,
    /// Bytes accounted to this slot's keys; a partition's memory is the sum over its slots.
    memory: u64,
    /// Changes whenever the table may have moved its entries to other buckets (it grows or
    /// rehashes only when an insertion finds it full), so that a scan resuming at a bucket
    /// can tell whether that bucket still means where it stopped.
    layout: u32,
}

impl SlotTable {
    /// Called before every lookup that may insert: a full table reorganizes itself then.
    fn may_insert(&mut self) {
        if self.table.len() == self.table.capacity() {
            self.layout = self.layout.wrapping_add(1);
        }
    }
}

/// The keys of one database on one core.
pub struct Keyspace {
    slots: Box<[SlotTable]>,
    hasher: DefaultHashBuilder,
    keys: usize,
    volatile: usize,
    memory: usize,
    /// Keys removed because their deadline passed (the `expired_keys` statistic).
    expired: u64,
    /// Where the active expiry cycle resumes.
    expire_cursor: usize,
    /// Keys some client WATCHes, each with a version every write to it bumps.
    watched: HashMap<Box<[u8]>, Watched>,
    /// Keys blocked clients wait on, with how many waits each.
    awaited: HashMap<Box<[u8]>, u32>,
    /// Awaited keys written since the core last looked.
    ready: Vec<Box<[u8]>>,
    /// The `notify-keyspace-events` classes on, and the events since the core last looked.
    notify_flags: u32,
    events: Vec<(&'static str, Box<[u8]>)>,
    /// Lookups treat expired keys as absent but leave them in place: a replica of a
    /// replicated partition only removes what its log tells it to, so that replicas agree.
    keeps_expired: bool,
}

#[derive(Default)]
struct Watched {
    watchers: u32,
    version: u64,
}

/// Most keys `prefetch` warms at once.
pub const PREFETCH_BATCH: usize = 32;

/// The LRU clock: seconds, as stored in each entry.
pub fn lru_clock(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Keyspace {
    pub fn new() -> Self {
        Keyspace {
            slots: (0..SLOT_COUNT).map(|_| SlotTable::default()).collect(),
            hasher: DefaultHashBuilder::default(),
            keys: 0,
            volatile: 0,
            memory: 0,
            expired: 0,
            expire_cursor: 0,
            watched: HashMap::new(),
            awaited: HashMap::new(),
            ready: Vec::new(),
            notify_flags: 0,
            events: Vec::new(),
            keeps_expired: false,
        }
    }

    pub fn set_keeps_expired(&mut self, keep: bool) {
        self.keeps_expired = keep;
    }

    /// Keys of `slot` expired at `now_ms`, at most `limit`.
    pub fn expired_keys(&self, slot: u16, now_ms: u64, limit: usize) -> Vec<Box<[u8]>> {
        let table = &self.slots[slot as usize];
        if table.volatile == 0 {
            return Vec::new();
        }
        table
            .table
            .iter()
            .filter(|e| e.is_expired(now_ms))
            .take(limit)
            .map(|e| Box::from(e.key()))
            .collect()
    }

    /// Records a write to `key` for WATCH (one map probe, and only while anything is watched).
    fn written(&mut self, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some(w) = self.watched.get_mut(key) {
                w.version += 1;
            }
        }
        if !self.awaited.is_empty() && self.awaited.contains_key(key) {
            self.mark_ready(key);
        }
    }

    pub fn set_notify_flags(&mut self, flags: u32) {
        self.notify_flags = flags;
    }

    /// Records `event` on `key` if its class is on.
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if notify::enabled(self.notify_flags, class) {
            self.events.push((event, key.into()));
        }
    }

    /// The events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<(&'static str, Box<[u8]>)> {
        std::mem::take(&mut self.events)
    }

    /// Notes one more blocked client waiting on `key`.
    pub fn await_key(&mut self, key: &[u8]) {
        *self.awaited.entry(key.into()).or_default() += 1;
    }

    /// Notes one wait on `key` fewer.
    pub fn unawait_key(&mut self, key: &[u8]) {
        if let Some(n) = self.awaited.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.awaited.remove(key);
            }
        }
    }

    /// Has the core look at `key`'s waiters again.
    pub fn mark_ready(&mut self, key: &[u8]) {
        if !self.ready.iter().any(|k| &k[..] == key) {
            self.ready.push(key.into());
        }
    }

    /// The awaited keys written since the last call.
    pub fn take_ready(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.ready)
    }

    /// Starts watching `key`; returns its current version.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let w = self.watched.entry(key.into()).or_default();
        w.watchers += 1;
        w.version
    }

    /// Ends one watch of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// The version of a watched key (writes since it was first watched).
    pub fn watch_version(&self, key: &[u8]) -> Option<u64> {
        self.watched.get(key).map(|w| w.version)
    }

    /// Live and not yet reclaimed keys.
    pub fn len(&self) -> usize {
        self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Keys that carry a deadline.
    pub fn volatile(&self) -> usize {
        self.volatile
    }

    /// Bytes accounted to the keys of this database.
    pub fn memory(&self) -> usize {
        self.memory
    }

    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Bytes accounted to one slot's keys.
    pub fn slot_memory(&self, slot: u16) -> u64 {
        self.slots[slot as usize].memory
    }

    /// Keys stored in one slot (expired ones not yet reclaimed included).
    pub fn slot_len(&self, slot: u16) -> usize {
        self.slots[slot as usize].table.len()
    }

    fn locate(&self, key: &[u8]) -> (usize, u64) {
        (key_slot(key) as usize, self.hasher.hash_one(key))
    }

    /// Warms the caches for upcoming lookups of `keys`: first the slot tables, then (with
    /// those loaded) each probe sequence, prefetching every candidate entry without waiting
    /// for it. Changes nothing.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        let mut located = [(0usize, 0u64); PREFETCH_BATCH];
        for (i, key) in keys.iter().take(PREFETCH_BATCH).enumerate() {
            located[i] = self.locate(key);
            crate::prefetch::line(&self.slots[located[i].0] as *const SlotTable as *const u8);
        }
        for &(slot, hash) in &located[..keys.len().min(PREFETCH_BATCH)] {
            self.slots[slot].table.find(hash, |e| {
                e.prefetch();
                false
            });
        }
    }

    /// The live entry for `key`; an expired one is reclaimed on the way.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.get_mut_unaccounted(key, now_ms).map(|e| &*e)
    }

    /// Whether `key` is live, and its access time refreshed if so.
    pub fn touch(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.get_mut_unaccounted(key, now_ms).is_some()
    }

    /// Finds a live entry and refreshes its access time; callers must not change its size or
    /// deadline through it (that is `modify`'s job).
    fn get_mut_unaccounted(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let (slot, hash) = self.locate(key);
        let table = &mut self.slots[slot];
        let found = table.table.find_entry(hash, |e| e.key() == key).ok()?;
        if found.get().is_expired(now_ms) {
            if self.keeps_expired {
                return None;
            }
            let (entry, _) = found.remove();
            table.volatile -= 1;
            table.memory -= entry.memory() as u64;
            self.volatile -= 1;
            self.keys -= 1;
            self.memory -= entry.memory();
            self.expired += 1;
            if notify::enabled(self.notify_flags, notify::EXPIRED) {
                self.events.push(("expired", key.into()));
            }
            return None;
        }
        let entry = found.into_mut();
        entry.touch(lru_clock(now_ms));
        Some(entry)
    }

    /// Runs `change` on the live entry for `key`, keeping the accounting right whatever it
    /// changes. Returns `None` when the key does not exist.
    pub fn modify<R>(
        &mut self,
        key: &[u8],
        now_ms: u64,
        change: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let slot = key_slot(key) as usize;
        self.written(key);
        let entry = self.get_mut_unaccounted(key, now_ms)?;
        let (memory, volatile) = (entry.memory(), entry.expire_at().is_some());
        let result = change(entry);
        let (new_memory, new_volatile) = (entry.memory(), entry.expire_at().is_some());
        self.memory = self.memory + new_memory - memory;
        self.slots[slot].memory = self.slots[slot].memory + new_memory as u64 - memory as u64;
        if volatile != new_volatile {
            if new_volatile {
                self.slots[slot].volatile += 1;
                self.volatile += 1;
            } else {
                self.slots[slot].volatile -= 1;
                self.volatile -= 1;
            }
        }
        Some(result)
    }

    /// Looks `key` up once for a write. `write` gets the live entry (an expired one is
    /// reclaimed first), may change it in place, and may return a new entry to store instead
    /// (or, when there was none, to add). Accounting stays right whatever it does.
    pub fn upsert<R>(
        &mut self,
        key: &[u8],
        now_ms: u64,
        write: impl FnOnce(Option<&mut Entry>) -> (Option<Entry>, R),
    ) -> R {
        self.written(key);
        let (slot, hash) = self.locate(key);
        let Keyspace {
            slots,
            hasher,
            keys,
            volatile,
            memory,
            expired,
            notify_flags,
            events,
            ..
        } = self;
        let mut notify = |class: u32, event: &'static str| {
            if notify::enabled(*notify_flags, class) {
                events.push((event, key.into()));
            }
        };
        let table = &mut slots[slot];
        table.may_insert();
        let mut account = |entry: &Entry, sign: isize| {
            *memory = (*memory as isize + sign * entry.memory() as isize) as usize;
            table.memory = (table.memory as i64 + sign as i64 * entry.memory() as i64) as u64;
            if entry.expire_at().is_some() {
                table.volatile = (table.volatile as isize + sign) as u32;
                *volatile = (*volatile as isize + sign) as usize;
            }
        };
        match table
            .table
            .entry(hash, |e| e.key() == key, |e| hasher.hash_one(e.key()))
        {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                account(occupied.get(), -1);
                let live = !occupied.get().is_expired(now_ms);
                if !live {
                    *expired += 1;
                    notify(notify::EXPIRED, "expired");
                }
                let (replacement, result) = if live {
                    let current = occupied.get_mut();
                    current.touch(lru_clock(now_ms));
                    write(Some(current))
                } else {
                    write(None)
                };
                match replacement {
                    Some(entry) => {
                        if !live {
                            notify(notify::NEW, "new");
                        }
                        *occupied.get_mut() = entry
                    }
                    None if live => {}
                    None => {
                        occupied.remove();
                        *keys -= 1;
                        return result;
                    }
                }
                account(occupied.get(), 1);
                result
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let (entry, result) = write(None);
                if let Some(entry) = entry {
                    account(&entry, 1);
                    vacant.insert(entry);
                    *keys += 1;
                    notify(notify::NEW, "new");
                }
                result
            }
        }
    }

    /// Stores `entry`, replacing any entry with the same key (live or expired).
    pub fn insert(&mut self, entry: Entry) {
        let key: Option<Box<[u8]>> =
            notify::enabled(self.notify_flags, notify::NEW).then(|| entry.key().into());
        if self.insert_quietly(entry) {
            if let Some(key) = key {
                self.events.push(("new", key));
            }
        }
    }

    /// Stores `entry` like `insert` without announcing a new key: a value moved or written
    /// back from another core, whose events the command that produced it reports. Returns
    /// whether the key is new.
    pub fn insert_quietly(&mut self, entry: Entry) -> bool {
        self.written(entry.key());
        let (slot, hash) = self.locate(entry.key());
        let hasher = &self.hasher;
        let table = &mut self.slots[slot];
        self.memory += entry.memory();
        table.memory += entry.memory() as u64;
        if entry.expire_at().is_some() {
            table.volatile += 1;
            self.volatile += 1;
        }
        table.may_insert();
        match table.table.entry(
            hash,
            |e| e.key() == entry.key(),
            |e| hasher.hash_one(e.key()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                let old = std::mem::replace(occupied.get_mut(), entry);
                self.memory -= old.memory();
                table.memory -= old.memory() as u64;
                if old.expire_at().is_some() {
                    table.volatile -= 1;
                    self.volatile -= 1;
                }
                false
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(entry);
                self.keys += 1;
                true
            }
        }
    }

    /// Removes `key`; returns the entry if it was live.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.written(key);
        let (slot, hash) = self.locate(key);
        let table = &mut self.slots[slot];
        let (entry, _) = table
            .table
            .find_entry(hash, |e| e.key() == key)
            .ok()?
            .remove();
        self.keys -= 1;
        self.memory -= entry.memory();
        table.memory -= entry.memory() as u64;
        if entry.expire_at().is_some() {
            table.volatile -= 1;
            self.volatile -= 1;
        }
        if entry.is_expired(now_ms) {
            self.expired += 1;
            self.notify(notify::EXPIRED, "expired", key);
            return None;
        }
        Some(entry)
    }

    /// Drops every key; returns them so the caller can free a large keyspace elsewhere.
    pub fn take_all(&mut self) -> Keyspace {
        let hasher = self.hasher.clone();
        let mut taken = std::mem::take(self);
        self.hasher = hasher;
        self.notify_flags = taken.notify_flags;
        self.keeps_expired = taken.keeps_expired;
        self.expired = taken.expired;
        taken.expired = 0;
        self.watched = std::mem::take(&mut taken.watched);
        self.watched.values_mut().for_each(|w| w.version += 1);
        taken
    }

    /// The live entries of one slot.
    pub fn slot_entries(&self, slot: u16, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.slots[slot as usize]
            .table
            .iter()
            .filter(move |e| !e.is_expired(now_ms))
    }

    /// The layout of a slot's table: while it stays the same, every entry stays in its bucket.
    pub fn slot_layout(&self, slot: u16) -> u32 {
        self.slots[slot as usize].layout
    }

    /// The buckets of a slot's table, full or empty.
    pub fn slot_buckets(&self, slot: u16) -> usize {
        self.slots[slot as usize].table.num_buckets()
    }

    /// The live entries in some buckets of one slot's table, each with its bucket.
    pub fn slot_entries_in(
        &self,
        slot: u16,
        buckets: std::ops::Range<usize>,
        now_ms: u64,
    ) -> impl Iterator<Item = (usize, &Entry)> {
        let table = &self.slots[slot as usize].table;
        buckets
            .filter_map(move |bucket| table.get_bucket(bucket).map(|entry| (bucket, entry)))
            .filter(move |(_, entry)| !entry.is_expired(now_ms))
    }

    /// A live key picked at random with `seed`, starting from a random slot.
    pub fn random_key(&self, seed: u64, now_ms: u64, owned: impl Fn(u16) -> bool) -> Option<&[u8]> {
        if self.keys == 0 {
            return None;
        }
        let start = (seed % SLOT_COUNT as u64) as usize;
        for i in 0..SLOT_COUNT {
            let slot = (start + i) % SLOT_COUNT;
            let table = &self.slots[slot].table;
            if table.is_empty() || !owned(slot as u16) {
                continue;
            }
            let live = table.iter().filter(|e| !e.is_expired(now_ms)).count();
            if live == 0 {
                continue;
            }
            let pick = ((seed >> 16) % live as u64) as usize;
            return table
                .iter()
                .filter(|e| !e.is_expired(now_ms))
                .nth(pick)
                .map(Entry::key);
        }
        None
    }

    /// One step of active expiry: reclaims expired keys from slots that hold deadlines,
    /// resuming where the last step stopped, until `slots_budget` slots were examined.
    /// Returns (keys examined, keys reclaimed).
    pub fn expire_step(&mut self, now_ms: u64, slots_budget: usize) -> (usize, usize) {
        let (mut examined, mut reclaimed) = (0, 0);
        if self.volatile == 0 {
            return (0, 0);
        }
        let mut visited = 0;
        while visited < SLOT_COUNT && examined < slots_budget * 16 && visited < slots_budget * 64 {
            let slot = self.expire_cursor;
            self.expire_cursor = (self.expire_cursor + 1) % SLOT_COUNT;
            visited += 1;
            let table = &mut self.slots[slot];
            if table.volatile == 0 {
                continue;
            }
            examined += table.table.len();
            let mut freed_memory = 0;
            let mut freed_volatile = 0;
            let announce = notify::enabled(self.notify_flags, notify::EXPIRED);
            let events = &mut self.events;
            table.table.retain(|e| {
                if e.is_expired(now_ms) {
                    freed_memory += e.memory();
                    freed_volatile += 1;
                    if announce {
                        events.push(("expired", e.key().into()));
                    }
                    false
                } else {
                    true
                }
            });
            table.volatile -= freed_volatile;
            table.memory -= freed_memory as u64;
            self.volatile -= freed_volatile as usize;
            self.keys -= freed_volatile as usize;
            self.memory -= freed_memory;
            self.expired += freed_volatile as u64;
            reclaimed += freed_volatile as usize;
        }
        (examined, reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Value;

    fn put(ks: &mut Keyspace, key: &str, expire_at: u64) {
        ks.insert(Entry::new(key.as_bytes(), Value::Str(b"v"), expire_at, 0));
    }

    #[test]
    fn insert_get_remove_keep_counts() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", 0);
        put(&mut ks, "b", 100);
        put(&mut ks, "a", 0);
        assert_eq!((ks.len(), ks.volatile()), (2, 1));
        assert!(ks.memory() > 0);
        assert!(ks.get(b"a", 50).is_some());
        assert!(ks.get(b"b", 50).is_some());
        assert!(ks.get(b"b", 100).is_none(), "deadline reached");
        assert_eq!((ks.len(), ks.volatile(), ks.expired()), (1, 0, 1));
        assert!(ks.remove(b"a", 0).is_some());
        assert_eq!((ks.len(), ks.memory()), (0, 0));
    }

    #[test]
    fn upsert_adds_changes_and_replaces_with_one_lookup() {
        let mut ks = Keyspace::new();
        ks.upsert(b"a", 0, |old| {
            assert!(old.is_none());
            (Some(Entry::new(b"a", Value::Str(b"1"), 50, 0)), ())
        });
        assert_eq!((ks.len(), ks.volatile()), (1, 1));
        ks.upsert(b"a", 10, |old| {
            let e = old.expect("live");
            e.set_value(Value::Str(&[b'x'; 300]), false);
            e.set_expire_at(None);
            (None, ())
        });
        assert_eq!((ks.len(), ks.volatile()), (1, 0));
        let single = ks.memory();
        ks.upsert(b"a", 10, |_| {
            (Some(Entry::new(b"a", Value::Str(b"2"), 0, 0)), ())
        });
        assert!(ks.memory() < single);
        put(&mut ks, "gone", 5);
        let saw_old = ks.upsert(b"gone", 10, |old| (None, old.is_some()));
        assert!(!saw_old, "an expired entry is not offered");
        assert_eq!((ks.len(), ks.expired()), (1, 1));
        let mut fresh = Keyspace::new();
        fresh.upsert(b"b", 0, |_| {
            (Some(Entry::new(b"b", Value::Int(1), 0, 0)), ())
        });
        assert_eq!(fresh.memory(), fresh.get(b"b", 0).unwrap().memory());
    }

    #[test]
    fn modify_tracks_deadlines_and_sizes() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", 0);
        let before = ks.memory();
        ks.modify(b"a", 0, |e| {
            e.set_expire_at(Some(10));
            e.set_value(Value::Str(&[b'x'; 500]), true);
        });
        assert_eq!(ks.volatile(), 1);
        assert!(ks.memory() > before);
        ks.modify(b"a", 0, |e| e.set_expire_at(None));
        assert_eq!(ks.volatile(), 0);
        assert!(ks.modify(b"missing", 0, |_| ()).is_none());
    }

    #[test]
    fn slot_memory_adds_up_to_the_keyspace_total() {
        let mut ks = Keyspace::new();
        for i in 0..500 {
            put(&mut ks, &format!("m{i}"), if i % 3 == 0 { 10 } else { 0 });
        }
        ks.upsert(b"m1", 0, |_| {
            (Some(Entry::new(b"m1", Value::Str(&[b'z'; 900]), 0, 0)), ())
        });
        ks.modify(b"m2", 0, |e| e.set_value(Value::Str(&[b'y'; 300]), true));
        ks.remove(b"m4", 0);
        ks.get(b"m3", 20);
        ks.expire_step(20, 10_000);
        let total: u64 = (0..SLOT_COUNT as u16).map(|s| ks.slot_memory(s)).sum();
        assert_eq!(total, ks.memory() as u64);
        let by_entry: usize = (0..SLOT_COUNT as u16)
            .flat_map(|s| ks.slot_entries(s, 20))
            .map(Entry::memory)
            .sum();
        assert_eq!(by_entry, ks.memory());
    }

    #[test]
    fn expire_step_reclaims_only_expired_keys() {
        let mut ks = Keyspace::new();
        for i in 0..1000 {
            put(&mut ks, &format!("k{i}"), if i % 2 == 0 { 10 } else { 0 });
        }
        let mut reclaimed = 0;
        while ks.volatile() > 0 {
            reclaimed += ks.expire_step(20, 100).1;
        }
        assert_eq!((reclaimed, ks.len(), ks.expired()), (500, 500, 500));
    }

    #[test]
    fn random_key_finds_a_live_key() {
        let mut ks = Keyspace::new();
        assert!(ks.random_key(1, 0, |_| true).is_none());
        put(&mut ks, "dead", 5);
        put(&mut ks, "live", 0);
        for seed in 0..50u64 {
            assert_eq!(
                ks.random_key(seed.wrapping_mul(0x9E3779B97F4A7C15), 10, |_| true),
                Some(&b"live"[..])
            );
        }
    }
}
