//! What replicas exchange about a partition's data: proposals (a write request with the
//! timestamp and seed its proposer fixed) run against a `Store`, and snapshots of a
//! partition's slots.

use serde::{Deserialize, Serialize};
use std::ops::Range;
use tessera_protocol::command::lookup;
use tessera_protocol::{Args, ReplyWriter};
use tessera_storage::{dump, Request, Store};

/// A write request as the log carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub db: usize,
    /// Unix ms the proposer fixed for it: deadlines and stream IDs derive from it.
    pub now: u64,
    /// Drawn by the proposer, so a random write (SPOP) picks the same members everywhere.
    pub seed: u64,
    /// The reply's protocol (the proposing client's); the state does not depend on it.
    pub resp3: bool,
    pub args: Vec<Vec<u8>>,
}

impl Proposal {
    pub fn new(db: usize, now: u64, args: &[&[u8]]) -> Proposal {
        Proposal {
            db,
            now,
            seed: tessera_storage::rng::seed(),
            resp3: false,
            args: args.iter().map(|a| a.to_vec()).collect(),
        }
    }
}

/// Runs one proposal against the store; returns its reply bytes.
pub fn run(store: &mut Store, p: &Proposal) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = ReplyWriter::new(&mut out, p.resp3);
    let Some(spec) = p.args.first().and_then(|name| lookup(name)) else {
        writer.error("ERR unknown command");
        return out;
    };
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for arg in &p.args {
        let start = data.len();
        data.extend_from_slice(arg);
        spans.push(start..data.len());
    }
    let req = Request {
        spec,
        args: Args::from_spans(&data, &spans),
        db: p.db,
        now: p.now,
    };
    store.execute_seeded(&req, Some(p.seed), &mut writer);
    out
}

/// The keys of `slots` as (db, key, dumped value, deadline) records in one buffer.
pub fn snapshot(store: &Store, slots: Range<u16>, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for db in 0..store.databases() {
        let Some(ks) = store.keyspace(db) else {
            continue;
        };
        for slot in slots.clone() {
            for entry in ks.slot_entries(slot, now) {
                let value = dump::value_bytes(entry);
                for field in [
                    &(db as u64).to_le_bytes()[..],
                    entry.key(),
                    &value,
                    &entry.expire_at().unwrap_or(0).to_le_bytes(),
                ] {
                    out.extend_from_slice(&(field.len() as u64).to_le_bytes());
                    out.extend_from_slice(field);
                }
            }
        }
    }
    out
}

/// Replaces the keys of `slots` with those `snapshot` wrote. Records that do not parse are
/// skipped: a snapshot comes from a peer, and a bad one must not take the node down.
pub fn restore(store: &mut Store, slots: Range<u16>, bytes: &[u8]) {
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
    let limits = store.limits;
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes")) as usize;
        let Some(field) = bytes.get(pos + 8..(pos + 8).saturating_add(len)) else {
            break;
        };
        fields.push(field);
        pos += 8 + len;
    }
    let number = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    for record in fields.chunks_exact(4) {
        let (db, key, value, deadline) = (
            number(record[0]) as usize,
            record[1],
            record[2],
            number(record[3]),
        );
        if db >= store.databases() {
            continue;
        }
        if let Some(entry) = dump::entry_from(key, value, deadline, 0, &limits) {
            store.db(db).insert_quietly(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_protocol::key_slot;

    #[test]
    fn replicas_applying_a_random_write_pick_the_same_members() {
        let members: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"s"];
        sadd.extend(members.iter().map(Vec::as_slice));
        let (mut a, mut b) = (Store::new(16), Store::new(16));
        let fill = Proposal::new(0, 1, &sadd);
        run(&mut a, &fill);
        run(&mut b, &fill);
        for _ in 0..5 {
            let pop = Proposal::new(0, 1, &[b"SPOP", b"s", b"7"]);
            assert_eq!(run(&mut a, &pop), run(&mut b, &pop));
        }
        let all = Proposal::new(0, 1, &[b"SMEMBERS", b"s"]);
        assert_eq!(run(&mut a, &all), run(&mut b, &all));
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
            run(&mut store, &Proposal::new(3, 1, args));
        }
        let slot = key_slot(b"{a}");
        let image = snapshot(&store, slot..slot + 1, 1);
        let mut copy = Store::new(16);
        let stale = Proposal::new(3, 1, &[b"SET", b"{a}stale", b"x"]);
        let elsewhere = Proposal::new(3, 1, &[b"SET", b"{b}kept", b"x"]);
        run(&mut copy, &stale);
        run(&mut copy, &elsewhere);
        restore(&mut copy, slot..slot + 1, &image);
        for args in [
            &[&b"GET"[..], b"{a}s"][..],
            &[b"LRANGE", b"{a}l", b"0", b"-1"],
            &[b"ZSCORE", b"{a}z", b"m"],
            &[b"XLEN", b"{a}x"],
            &[b"EXISTS", b"{a}stale"],
        ] {
            let p = Proposal::new(3, 1, args);
            assert_eq!(run(&mut copy, &p), run(&mut store, &p), "{args:?}");
        }
        let kept = Proposal::new(3, 1, &[b"GET", b"{b}kept"]);
        assert_eq!(run(&mut copy, &kept), b"$1\r\nx\r\n");
        restore(&mut copy, slot..slot + 1, &image[..image.len() - 3]);
    }
}
