//! Typed access to collection keys, shared by the families: the WRONGTYPE check, creation
//! of an empty collection on a first write, and deletion of a key whose collection a write
//! empties (Redis never keeps an empty collection).

use crate::entry::Entry;
use crate::errors;
use crate::keyspace::lru_clock;
use crate::notify;
use crate::object::{EncodingLimits, Kind, Object, ObjectRef};
use crate::store::Store;
use tessera_protocol::ReplyWriter;

/// The collection of `kind` at `key`: `Ok(None)` when the key is missing, an error when it
/// holds another type.
pub fn read<'s>(
    store: &'s mut Store,
    db: usize,
    key: &[u8],
    now: u64,
    kind: Kind,
) -> Result<Option<ObjectRef<'s>>, &'static str> {
    let (ks, stats) = store.db_and_stats(db);
    match ks.get(key, now) {
        None => {
            stats.misses += 1;
            Ok(None)
        }
        Some(entry) => {
            stats.hits += 1;
            match entry.object() {
                Some(object) if object.kind() == kind => Ok(Some(object)),
                _ => Err(errors::WRONGTYPE),
            }
        }
    }
}

/// Whether `object` holds no element.
fn is_empty(object: &Object) -> bool {
    match object {
        Object::HashPack(p)
        | Object::ListPack(p)
        | Object::SetInts(p)
        | Object::SetPack(p)
        | Object::ZSetPack(p) => p.is_empty(),
        Object::ZSetTree(t) => t.is_empty(),
        // A stream outlives its entries (consumer groups and the last ID stay).
        Object::Stream(_) => false,
        Object::HashDense(d) | Object::SetDense(d) => d.is_empty(),
        Object::ListQuick(q) => q.len == 0,
    }
}

fn empty(kind: Kind) -> Object {
    match kind {
        Kind::Hash => Object::HashPack(Vec::new()),
        Kind::List => Object::ListPack(Vec::new()),
        Kind::Set => Object::SetInts(Vec::new()),
        Kind::ZSet => Object::ZSetPack(Vec::new()),
        Kind::Stream => Object::Stream(Box::default()),
        Kind::String => unreachable!("strings are not collections"),
    }
}

/// Runs `write` on the collection of `kind` at `key`. A missing key gets an empty collection
/// when `create` is set (and `Ok(None)` otherwise); a collection left empty is deleted.
pub fn write<R>(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
    kind: Kind,
    create: bool,
    write: impl FnOnce(&mut Object, &EncodingLimits) -> R,
) -> Result<Option<R>, &'static str> {
    let limits = store.limits;
    let ks = store.db(db);
    let mut write = Some(write);
    let mut emptied = false;
    let found = ks.modify(key, now, |entry| {
        if entry.kind() != kind {
            return Err(errors::WRONGTYPE);
        }
        let write = write.take().expect("called once");
        Ok(entry.update_object(|object| {
            let result = write(object, &limits);
            emptied = is_empty(object);
            result
        }))
    });
    match found {
        Some(Err(e)) => Err(e),
        Some(Ok(result)) => {
            if emptied {
                ks.remove(key, now);
            }
            Ok(result)
        }
        None if !create => Ok(None),
        None => {
            let mut object = empty(kind);
            let result = write.take().expect("not yet called")(&mut object, &limits);
            if !is_empty(&object) {
                ks.insert(Entry::new_object(key, object, 0, lru_clock(now)));
            }
            Ok(Some(result))
        }
    }
}

/// Replaces whatever `key` holds with a STORE command's result (`None`: empty, so the key
/// goes), and records `event` on it, or `del` when the result deleted an existing key.
pub fn replace(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    result: Option<Object>,
    (class, event): (u32, &'static str),
) {
    let ks = store.db(db);
    let existed = ks.remove(key, now).is_some();
    match result {
        Some(object) => {
            ks.insert(Entry::new_object(key, object, 0, lru_clock(now)));
            ks.notify(class, event, key);
        }
        None if existed => ks.notify(notify::GENERIC, "del", key),
        None => {}
    }
}

/// What a pop from the first non-empty of several keys is: the kind it takes from and the
/// keyspace event (class and name) it records.
pub struct PopFrom {
    pub kind: Kind,
    pub class: u32,
    pub event: &'static str,
}

/// LMPOP, ZMPOP, BLPOP, BZPOPMIN and the like: runs `pop` on the first of `keys` holding
/// something to pop, records the event and replies with `reply(out, key, popped)`; a null
/// array when every key was missing or empty.
pub fn pop_first<T>(
    store: &mut Store,
    (db, now): (usize, u64),
    keys: tessera_protocol::Args,
    from: PopFrom,
    mut pop: impl FnMut(&mut Object) -> Option<T>,
    reply: impl FnOnce(&mut ReplyWriter, &[u8], T),
    out: &mut ReplyWriter,
) {
    for key in keys.iter() {
        match write(store, db, key, now, from.kind, false, |o, _| pop(o)) {
            Err(e) => return out.error(e),
            Ok(Some(Some(popped))) => {
                announce(store, db, now, from.class, from.event, key);
                return reply(out, key, popped);
            }
            Ok(_) => {}
        }
    }
    out.null_array();
}

/// Records a collection write's keyspace event on `key`, then `del` if the write left the
/// key empty and so deleted it (Redis's order).
pub fn announce(
    store: &mut Store,
    db: usize,
    now: u64,
    class: u32,
    event: &'static str,
    key: &[u8],
) {
    let flags = store.notify_flags();
    if !notify::enabled(flags, class) && !notify::enabled(flags, notify::GENERIC) {
        return;
    }
    store.notify(db, class, event, key);
    if store.db(db).get(key, now).is_none() {
        store.notify(db, notify::GENERIC, "del", key);
    }
}
