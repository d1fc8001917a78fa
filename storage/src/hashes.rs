//! The hash family: HSET, HGET, HDEL, HINCRBY, HRANDFIELD, HSCAN and the rest.
//!
//! A small hash is a pack of alternating fields and values inside its entry; it becomes a
//! `Dense` table past `hash-max-listpack-entries` fields or once a field or value is longer
//! than `hash-max-listpack-value`.

use crate::access;
use crate::decimal;
use crate::dense::Dense;
use crate::errors::{self, int_arg};
use crate::notify;
use crate::object::{EncodingLimits, Kind, Object, ObjectRef};
use crate::pack;
use crate::rng::{self, Rng};
use crate::scan;
use crate::store::{Request, Store};
use tessera_protocol::{Args, Cmd, ReplyWriter};

const NOT_INTEGER_VALUE: &str = "ERR hash value is not an integer";
const NOT_FLOAT_VALUE: &str = "ERR hash value is not a float";

// ---- the two forms ----

/// The fields and values of a hash, in its order.
pub fn pairs(hash: ObjectRef<'_>) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
    match hash {
        ObjectRef::HashPack(p) => {
            let mut elements = pack::iter(p);
            Box::new(std::iter::from_fn(move || {
                Some((elements.next()?, elements.next()?))
            }))
        }
        ObjectRef::HashDense(d) => Box::new(d.iter().map(|p| (p.field(), p.value()))),
        _ => Box::new(std::iter::empty()),
    }
}

pub fn len(hash: ObjectRef<'_>) -> usize {
    match hash {
        ObjectRef::HashPack(p) => pack::iter(p).count() / 2,
        ObjectRef::HashDense(d) => d.len(),
        _ => 0,
    }
}

fn get<'a>(hash: ObjectRef<'a>, field: &[u8]) -> Option<&'a [u8]> {
    match hash {
        ObjectRef::HashDense(d) => d.get(field).map(|p| p.value()),
        _ => pairs(hash).find(|(f, _)| *f == field).map(|(_, v)| v),
    }
}

/// The pair at position `i` of the hash's order.
fn pair_at(hash: ObjectRef<'_>, i: usize) -> (&[u8], &[u8]) {
    match hash {
        ObjectRef::HashDense(d) => (d.at(i).field(), d.at(i).value()),
        _ => pairs(hash).nth(i).expect("index below the length"),
    }
}

/// The pairs as a `Dense` table.
pub fn to_dense<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, n: usize) -> Dense {
    let mut dense = Dense::with_capacity(n);
    pairs.for_each(|(f, v)| _ = dense.insert(f, v));
    dense
}

/// Where `field` and its value start in a hash pack.
fn find_in_pack(p: &[u8], field: &[u8]) -> Option<(usize, usize)> {
    let mut elements = pack::positions(p);
    while let (Some((field_at, f)), Some((value_at, _))) = (elements.next(), elements.next()) {
        if f == field {
            return Some((field_at, value_at));
        }
    }
    None
}

/// Sets `field` to `value`; true when the field is new.
pub fn set(hash: &mut Object, field: &[u8], value: &[u8], limits: &EncodingLimits) -> bool {
    if let Object::HashPack(p) = hash {
        if field.len().max(value.len()) <= limits.hash_max_listpack_value {
            if let Some((_, value_at)) = find_in_pack(p, field) {
                pack::replace(p, value_at, value);
                return false;
            }
            pack::push_back(p, field);
            pack::push_back(p, value);
            if len(ObjectRef::HashPack(p)) > limits.hash_max_listpack_entries {
                convert(hash);
            }
            return true;
        }
        convert(hash);
    }
    match hash {
        Object::HashDense(d) => d.insert(field, value),
        _ => unreachable!("a hash is a pack or a dense table"),
    }
}

fn convert(hash: &mut Object) {
    if let Object::HashPack(p) = hash {
        let n = len(ObjectRef::HashPack(p));
        *hash = Object::HashDense(Box::new(to_dense(pairs(ObjectRef::HashPack(p)), n)));
    }
}

/// Removes `field`; true when it was there.
fn remove(hash: &mut Object, field: &[u8]) -> bool {
    match hash {
        Object::HashPack(p) => {
            let Some((at, _)) = find_in_pack(p, field) else {
                return false;
            };
            pack::remove(p, at);
            pack::remove(p, at);
            true
        }
        Object::HashDense(d) => d.remove(field).is_some(),
        _ => false,
    }
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    let hash = match access::read(store, req.db, args.get(1), req.now, Kind::Hash) {
        Ok(hash) => hash,
        Err(e) => return out.error(e),
    };
    match req.spec.cmd {
        Cmd::HGet => match hash.and_then(|h| get(h, args.get(2))) {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
        Cmd::HMGet => {
            out.array(args.len() - 2);
            for field in args.tail(2).iter() {
                match hash.and_then(|h| get(h, field)) {
                    Some(v) => out.bulk(v),
                    None => out.null(),
                }
            }
        }
        Cmd::HLen => out.int(hash.map_or(0, len) as i64),
        Cmd::HExists => out.int(hash.and_then(|h| get(h, args.get(2))).is_some() as i64),
        Cmd::HStrLen => out.int(
            hash.and_then(|h| get(h, args.get(2)))
                .map_or(0, <[u8]>::len) as i64,
        ),
        Cmd::HGetAll => {
            out.map(hash.map_or(0, len));
            hash.into_iter().flat_map(pairs).for_each(|(f, v)| {
                out.bulk(f);
                out.bulk(v);
            });
        }
        Cmd::HKeys | Cmd::HVals => {
            out.array(hash.map_or(0, len));
            let keys = req.spec.cmd == Cmd::HKeys;
            hash.into_iter()
                .flat_map(pairs)
                .for_each(|(f, v)| out.bulk(if keys { f } else { v }));
        }
        Cmd::HRandField => random_fields(hash, args, out),
        Cmd::HScan => match (scan::parse(args), hash) {
            (Err(e), _) => out.error(&e),
            (Ok(opts), None) => scan::reply(out, &opts, 0, false, |_| (&[], &[]), true),
            (Ok(opts), Some(h)) => {
                let dense = matches!(h, ObjectRef::HashDense(_));
                scan::reply(out, &opts, len(h), dense, |i| pair_at(h, i), true);
            }
        },
        other => out.error(&format!("ERR '{}' is not a hash read", other.spec().name)),
    }
}

/// HRANDFIELD key [count [WITHVALUES]]: a positive count picks distinct fields, a negative
/// one may repeat them.
fn random_fields(hash: Option<ObjectRef<'_>>, args: Args, out: &mut ReplyWriter) {
    if args.len() == 2 {
        return match hash {
            Some(h) => {
                let i = Rng::new(rng::seed()).below(len(h));
                out.bulk(pair_at(h, i).0)
            }
            None => out.null(),
        };
    }
    let count = match crate::sets::pick_count(args.get(2)) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let with_values = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"WITHVALUES") => true,
        _ => return out.error(errors::SYNTAX),
    };
    let Some(h) = hash else {
        return out.array(0);
    };
    let picks = crate::sets::pick_positions(len(h), count, &mut Rng::new(rng::seed()));
    let write = |out: &mut ReplyWriter, i: usize| {
        let (f, v) = pair_at(h, i);
        if with_values && out.resp3() {
            out.array(2);
        }
        out.bulk(f);
        if with_values {
            out.bulk(v);
        }
    };
    let per_pick = if with_values && !out.resp3() { 2 } else { 1 };
    out.array(picks.len() * per_pick);
    picks.into_iter().for_each(|i| write(out, i));
}

// ---- writes ----

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let key = args.get(1);
    let result = match cmd {
        Cmd::HSet | Cmd::HMSet => {
            if !args.len().is_multiple_of(2) {
                let name = if cmd == Cmd::HSet { "hset" } else { "hmset" };
                return out.error(&errors::wrong_arity(name));
            }
            let pairs = args.tail(2);
            access::write(store, db, key, now, Kind::Hash, true, |h, limits| {
                (0..pairs.len())
                    .step_by(2)
                    .filter(|&i| set(h, pairs.get(i), pairs.get(i + 1), limits))
                    .count()
            })
            .map(|added| {
                access::announce(store, db, now, notify::HASH, "hset", key);
                match cmd {
                    Cmd::HSet => out.int(added.unwrap_or(0) as i64),
                    _ => out.ok(),
                }
            })
        }
        Cmd::HSetNx => access::write(store, db, key, now, Kind::Hash, true, |h, limits| {
            let absent = get(h.view(), args.get(2)).is_none();
            if absent {
                set(h, args.get(2), args.get(3), limits);
            }
            absent
        })
        .map(|added| {
            let added = added.unwrap_or(false);
            if added {
                access::announce(store, db, now, notify::HASH, "hset", key);
            }
            out.int(added as i64)
        }),
        Cmd::HDel => access::write(store, db, key, now, Kind::Hash, false, |h, _| {
            args.tail(2).iter().filter(|f| remove(h, f)).count()
        })
        .map(|removed| {
            let removed = removed.unwrap_or(0);
            if removed > 0 {
                access::announce(store, db, now, notify::HASH, "hdel", key);
            }
            out.int(removed as i64)
        }),
        Cmd::HIncrBy => return incr_by(store, db, now, args, out),
        Cmd::HIncrByFloat => return incr_by_float(store, db, now, args, out),
        _ => return out.error("ERR not a hash write"),
    };
    if let Err(e) = result {
        out.error(e);
    }
}

/// Rewrites one field (`args[2]` of `args[1]`, created when missing) to the value `next`
/// computes from its current one; replies with what `next` returns, or its error.
fn update_field<T>(
    store: &mut Store,
    db: usize,
    now: u64,
    args: Args,
    next: impl FnOnce(Option<&[u8]>) -> Result<(Vec<u8>, T), &'static str>,
) -> Result<T, &'static str> {
    let field = args.get(2);
    access::write(
        store,
        db,
        args.get(1),
        now,
        Kind::Hash,
        true,
        |h, limits| {
            let (value, result) = next(get(h.view(), field))?;
            set(h, field, &value, limits);
            Ok(result)
        },
    )
    .and_then(|r| r.expect("created when missing"))
}

fn incr_by(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let delta = match int_arg(args.get(3)) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let result = update_field(store, db, now, args, |current| {
        let current = match current {
            None => 0,
            Some(v) => tessera_protocol::parse::parse_int(v).ok_or(NOT_INTEGER_VALUE)?,
        };
        let next = current.checked_add(delta).ok_or(errors::OVERFLOW)?;
        Ok((
            tessera_protocol::reply::itoa_buf(next).as_slice().to_vec(),
            next,
        ))
    });
    match result {
        Ok(n) => {
            access::announce(store, db, now, notify::HASH, "hincrby", args.get(1));
            out.int(n)
        }
        Err(e) => out.error(e),
    }
}

fn incr_by_float(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let increment = args.get(3);
    let Some(increment_f64) = errors::float_arg(increment) else {
        return out.error(errors::NOT_FLOAT);
    };
    let result = update_field(store, db, now, args, |current| {
        let current = current.unwrap_or(b"0");
        let current_f64 = errors::float_arg(current).ok_or(NOT_FLOAT_VALUE)?;
        let sum = decimal::add_texts(current, increment, increment_f64, current_f64)
            .ok_or(errors::NAN_OR_INF)?;
        Ok((sum.clone().into_bytes(), sum))
    });
    match result {
        Ok(sum) => {
            access::announce(store, db, now, notify::HASH, "hincrbyfloat", args.get(1));
            out.bulk(sum.as_bytes())
        }
        Err(e) => out.error(e),
    }
}
