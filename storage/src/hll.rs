//! HyperLogLog: PFADD, PFCOUNT, PFMERGE over string values in Redis's own format, so the
//! values can move between Tessera and Redis (GET/SET, DUMP-free migrations) and counts agree.
//!
//! Format (Redis's `hllhdr`): "HYLL", one encoding byte (0 dense, 1 sparse), three unused
//! bytes, an 8-byte cardinality cache, then the registers: 16384 six-bit registers packed
//! (dense), or runs of ZERO / XZERO / VAL opcodes (sparse). An element's register and value
//! come from MurmurHash64A with Redis's seed, and the estimate is Redis's (Ertl's) estimator,
//! so PFCOUNT gives Redis's numbers. Tessera recomputes counts instead of writing the cache
//! back, which keeps PFCOUNT a pure read.

use crate::entry::{Entry, Value};
use crate::errors;
use crate::keyspace::lru_clock;
use crate::notify;
use crate::store::{Request, Store};
use tessera_protocol::{Args, Cmd, ReplyWriter};

const P: u32 = 14;
const REGISTERS: usize = 1 << P;
const Q: u32 = 64 - P;
const HEADER: usize = 16;
const DENSE_SIZE: usize = HEADER + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// Redis's `hll-sparse-max-bytes` default: larger sparse values become dense.
const SPARSE_MAX_BYTES: usize = 3000;
const INVALID: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it offers there.
fn register_of(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// All 16384 registers, one byte each: the working form of every operation.
type Registers = Vec<u8>;

/// Reads a value in Redis's HLL format; `Err` names the reply for anything else.
fn decode(bytes: &[u8]) -> Result<Registers, &'static str> {
    if bytes.len() < HEADER || &bytes[..4] != b"HYLL" {
        return Err(INVALID);
    }
    let body = &bytes[HEADER..];
    let mut registers = vec![0u8; REGISTERS];
    match bytes[4] {
        DENSE if bytes.len() == DENSE_SIZE => {
            for (i, r) in registers.iter_mut().enumerate() {
                let (byte, shift) = (i * 6 / 8, (i * 6) % 8);
                let low = body[byte] as u16 >> shift;
                let high = body.get(byte + 1).map_or(0, |&b| (b as u16) << (8 - shift));
                *r = ((low | high) & 63) as u8;
            }
        }
        SPARSE => {
            let mut at = 0usize;
            let mut i = 0;
            while i < body.len() {
                let op = body[i];
                let (run, value, size) = if op & 0x80 != 0 {
                    (((op & 3) + 1) as usize, ((op >> 2) & 31) + 1, 1)
                } else if op & 0x40 != 0 {
                    let next = *body.get(i + 1).ok_or(CORRUPT)?;
                    (((((op & 0x3f) as usize) << 8) | next as usize) + 1, 0, 2)
                } else {
                    (((op & 0x3f) + 1) as usize, 0, 1)
                };
                if at + run > REGISTERS {
                    return Err(CORRUPT);
                }
                registers[at..at + run].fill(value);
                at += run;
                i += size;
            }
            if at != REGISTERS {
                return Err(CORRUPT);
            }
        }
        _ => return Err(INVALID),
    }
    Ok(registers)
}

/// The sparse encoding of `registers`, if every value fits one (1..=32) and it stays small.
fn encode_sparse(registers: &[u8]) -> Option<Vec<u8>> {
    let mut out = header(SPARSE);
    let mut i = 0;
    while i < REGISTERS {
        let value = registers[i];
        let run = registers[i..].iter().take_while(|&&v| v == value).count();
        if value == 0 {
            let mut left = run;
            while left > 0 {
                if left > 64 {
                    let n = left.min(REGISTERS) - 1;
                    out.extend_from_slice(&[0x40 | (n >> 8) as u8, (n & 0xff) as u8]);
                    left -= n + 1;
                } else {
                    out.push((left - 1) as u8);
                    left = 0;
                }
            }
        } else {
            if value > 32 {
                return None;
            }
            let mut left = run;
            while left > 0 {
                let n = left.min(4);
                out.push(0x80 | ((value - 1) << 2) | (n - 1) as u8);
                left -= n;
            }
        }
        i += run;
    }
    (out.len() <= SPARSE_MAX_BYTES).then_some(out)
}

fn encode_dense(registers: &[u8]) -> Vec<u8> {
    let mut out = header(DENSE);
    out.resize(DENSE_SIZE, 0);
    let body = &mut out[HEADER..];
    for (i, &v) in registers.iter().enumerate() {
        let (byte, shift) = (i * 6 / 8, (i * 6) % 8);
        body[byte] |= v << shift;
        if shift > 2 {
            body[byte + 1] |= v >> (8 - shift);
        }
    }
    out
}

/// A header with the cardinality cache marked stale, as Redis writes after a change.
fn header(encoding: u8) -> Vec<u8> {
    let mut h = b"HYLL".to_vec();
    h.extend_from_slice(&[encoding, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    h
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// Redis's cardinality estimate of a register set.
fn count(registers: &[u8]) -> u64 {
    let mut histogram = [0u32; Q as usize + 2];
    registers.iter().for_each(|&r| histogram[r as usize] += 1);
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    (0.721_347_520_444_481_7 * m * m / z).round() as u64
}

/// The registers at `key`: `None` when missing; an error for a non-HLL value.
fn load(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<(Registers, bool)>, &'static str> {
    match store.db(db).get(key, now) {
        None => Ok(None),
        Some(entry) => {
            let value = entry.string()?;
            let Value::Str(bytes) = value else {
                return Err(INVALID);
            };
            Ok(Some((decode(bytes)?, bytes.get(4) == Some(&DENSE))))
        }
    }
}

fn store_registers(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
    registers: &[u8],
    dense: bool,
) {
    let bytes = match dense {
        true => encode_dense(registers),
        false => encode_sparse(registers).unwrap_or_else(|| encode_dense(registers)),
    };
    let ks = store.db(db);
    let expire_at = ks.get(key, now).and_then(Entry::expire_at).unwrap_or(0);
    let mut entry = Entry::new(key, Value::Str(&bytes), expire_at, lru_clock(now));
    entry.mark_raw();
    ks.insert(entry);
}

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let mut union: Option<Registers> = None;
    for key in req.args.tail(1).iter() {
        match load(store, req.db, key, req.now) {
            Err(e) => return out.error(e),
            Ok(None) => {}
            Ok(Some((registers, _))) => {
                let merged = union.get_or_insert_with(|| vec![0; REGISTERS]);
                merged
                    .iter_mut()
                    .zip(&registers)
                    .for_each(|(m, r)| *m = (*m).max(*r));
            }
        }
    }
    out.int(union.map_or(0, |r| count(&r)) as i64);
}

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let key = args.get(1);
    let current = match load(store, db, key, now) {
        Ok(current) => current,
        Err(e) => return out.error(e),
    };
    match cmd {
        Cmd::PfAdd => {
            let created = current.is_none();
            let (mut registers, dense) = current.unwrap_or_else(|| (vec![0; REGISTERS], false));
            let mut changed = created;
            for element in args.tail(2).iter() {
                let (index, value) = register_of(element);
                if registers[index] < value {
                    registers[index] = value;
                    changed = true;
                }
            }
            if changed {
                store_registers(store, db, key, now, &registers, dense);
                store.notify(db, notify::STRING, "pfadd", key);
            }
            out.int(changed as i64);
        }
        Cmd::PfMerge => {
            let mut any_dense = current.as_ref().is_some_and(|c| c.1);
            let mut merged = current.map_or_else(|| vec![0; REGISTERS], |c| c.0);
            for source in args.tail(2).iter() {
                match load(store, db, source, now) {
                    Err(e) => return out.error(e),
                    Ok(None) => {}
                    Ok(Some((registers, dense))) => {
                        any_dense |= dense;
                        merged
                            .iter_mut()
                            .zip(&registers)
                            .for_each(|(m, r)| *m = (*m).max(*r));
                    }
                }
            }
            store_registers(store, db, key, now, &merged, any_dense);
            store.notify(db, notify::STRING, "pfadd", key);
            out.ok();
        }
        _ => out.error(errors::SYNTAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_round_trip() {
        let mut registers = vec![0u8; REGISTERS];
        for (i, v) in [(0usize, 1u8), (1, 1), (100, 5), (16383, 32), (5000, 3)] {
            registers[i] = v;
        }
        let sparse = encode_sparse(&registers).expect("fits sparse");
        assert_eq!(decode(&sparse).unwrap(), registers);
        registers[7] = 40;
        assert!(encode_sparse(&registers).is_none(), "40 needs dense");
        assert_eq!(decode(&encode_dense(&registers)).unwrap(), registers);
    }

    #[test]
    fn estimates_are_close() {
        let mut registers = vec![0u8; REGISTERS];
        for i in 0..100_000u32 {
            let (index, value) = register_of(format!("e{i}").as_bytes());
            registers[index] = registers[index].max(value);
        }
        let estimate = count(&registers) as f64;
        assert!(
            (estimate - 100_000.0).abs() / 100_000.0 < 0.02,
            "{estimate}"
        );
        assert_eq!(count(&vec![0u8; REGISTERS]), 0);
    }

    #[test]
    fn rejects_other_strings() {
        assert_eq!(decode(b"hello"), Err(INVALID));
        assert_eq!(decode(b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x80"), Err(CORRUPT));
    }
}
