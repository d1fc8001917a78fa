//! The bitmap family over string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD
//! and BITFIELD_RO. Bit 0 is the most significant bit of the first byte, as in Redis.

use crate::entry::{Entry, Value};
use crate::errors::{self, int_arg};
use crate::keyspace::lru_clock;
use crate::notify;
use crate::store::{Request, Store};
use tessera_protocol::{Args, Cmd, ReplyWriter};

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// The string at `key` as bytes (`None` when missing), or WRONGTYPE.
fn lookup_bytes(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<Vec<u8>>, &'static str> {
    match store.db(db).get(key, now) {
        None => Ok(None),
        Some(entry) => entry.string().map(|v| Some(v.to_vec())),
    }
}

/// The string at `key` as bytes (empty when missing), or WRONGTYPE.
fn read_bytes(store: &mut Store, db: usize, key: &[u8], now: u64) -> Result<Vec<u8>, &'static str> {
    Ok(lookup_bytes(store, db, key, now)?.unwrap_or_default())
}

/// Rewrites the string at `key` through `change`, creating it when missing. The value is
/// stored raw, as Redis reports a string changed bit by bit.
fn write_bytes<R>(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
    change: impl FnOnce(&mut Vec<u8>) -> R,
) -> Result<R, &'static str> {
    let ks = store.db(db);
    let mut change = Some(change);
    let existing = ks.modify(key, now, |entry| {
        let mut bytes = entry.string()?.to_vec();
        let result = change.take().expect("called once")(&mut bytes);
        entry.set_value(Value::Str(&bytes), true);
        Ok(result)
    });
    match existing {
        Some(result) => result,
        None => {
            let mut bytes = Vec::new();
            let result = change.take().expect("not yet called")(&mut bytes);
            if !bytes.is_empty() {
                let mut entry = Entry::new(key, Value::Str(&bytes), 0, lru_clock(now));
                entry.mark_raw();
                ks.insert(entry);
            }
            Ok(result)
        }
    }
}

/// A bit offset argument, limited by `proto-max-bulk-len` as in Redis.
fn bit_offset(arg: &[u8], max_bulk_len: usize) -> Result<u64, &'static str> {
    match tessera_protocol::parse::parse_int(arg) {
        Some(n) if n >= 0 && ((n as u64) >> 3) < max_bulk_len as u64 => Ok(n as u64),
        _ => Err(BAD_OFFSET),
    }
}

fn get_bit(bytes: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    bytes.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1)
}

fn set_bit(bytes: &mut Vec<u8>, offset: u64, bit: u8) {
    let byte = (offset >> 3) as usize;
    if bytes.len() <= byte {
        bytes.resize(byte + 1, 0);
    }
    let mask = 1u8 << (7 - (offset & 7));
    if bit == 1 {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
}

/// Resolves a Redis range (negative counts from the end) over `len` units into `start..=end`.
fn range(len: i64, mut start: i64, mut end: i64) -> Option<(i64, i64)> {
    if start < 0 {
        start = (len + start).max(0);
    }
    if end < 0 {
        end = (len + end).max(-1);
    }
    end = end.min(len - 1);
    (start <= end && len > 0).then_some((start, end))
}

/// `[start end [BYTE|BIT]]` for BITCOUNT and BITPOS: the range in bits, `None` when empty,
/// and whether an end was given.
struct BitRange {
    bits: Option<(u64, u64)>,
    end_given: bool,
}

fn parse_range(args: Args, from: usize, bytes_len: usize) -> Result<BitRange, errors::Error> {
    let rest = args.len() - from;
    let unit_bits = match rest {
        3 if args.get(from + 2).eq_ignore_ascii_case(b"BIT") => true,
        3 if args.get(from + 2).eq_ignore_ascii_case(b"BYTE") => false,
        0..=2 => false,
        _ => return Err(errors::SYNTAX.into()),
    };
    if rest == 0 {
        let total = bytes_len as u64 * 8;
        return Ok(BitRange {
            bits: (total > 0).then(|| (0, total - 1)),
            end_given: false,
        });
    }
    let start = int_arg(args.get(from))?;
    let end = match rest {
        1 => None,
        _ => Some(int_arg(args.get(from + 1))?),
    };
    let len = if unit_bits {
        bytes_len as i64 * 8
    } else {
        bytes_len as i64
    };
    let resolved = range(len, start, end.unwrap_or(len - 1));
    let bits = resolved.map(|(s, e)| {
        if unit_bits {
            (s as u64, e as u64)
        } else {
            (s as u64 * 8, e as u64 * 8 + 7)
        }
    });
    Ok(BitRange {
        bits,
        end_given: end.is_some(),
    })
}

/// Set bits in `from..=to`: whole bytes by popcount, the partial edges bit by bit.
fn count_bits(bytes: &[u8], from: u64, to: u64) -> u64 {
    let per_bit = |a: u64, b: u64| (a..=b).fold(0, |n, bit| n + get_bit(bytes, bit) as u64);
    let (first_byte, last_byte) = (from / 8 + 1, to / 8);
    if first_byte >= last_byte {
        return per_bit(from, to);
    }
    let whole: u64 = bytes[first_byte as usize..last_byte as usize]
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum();
    per_bit(from, first_byte * 8 - 1) + whole + per_bit(last_byte * 8, to)
}

/// The first bit equal to `bit` in `from..=to`, skipping whole bytes that cannot hold it.
fn find_bit(bytes: &[u8], bit: u8, from: u64, to: u64) -> Option<u64> {
    let skip = if bit == 1 { 0x00 } else { 0xff };
    let mut at = from;
    while at <= to {
        if at.is_multiple_of(8)
            && at + 7 <= to
            && bytes.get((at / 8) as usize).copied().unwrap_or(0) == skip
        {
            at += 8;
            continue;
        }
        if get_bit(bytes, at) == bit {
            return Some(at);
        }
        at += 1;
    }
    None
}

// ---- reads ----

pub fn read(store: &mut Store, req: &Request, out: &mut ReplyWriter) {
    let args = req.args;
    let max = store.max_bulk_len;
    let result = (|| -> Result<(), errors::Error> {
        match req.spec.cmd {
            Cmd::GetBit => {
                let offset = bit_offset(args.get(2), max)?;
                let bytes = read_bytes(store, req.db, args.get(1), req.now)?;
                out.int(get_bit(&bytes, offset) as i64);
            }
            // Redis 7.0 looks the key up before reading the range.
            Cmd::BitCount => {
                let Some(bytes) = lookup_bytes(store, req.db, args.get(1), req.now)? else {
                    out.int(0);
                    return Ok(());
                };
                if args.len() == 3 {
                    return Err(errors::SYNTAX.into());
                }
                let range = parse_range(args, 2, bytes.len())?;
                out.int(range.bits.map_or(0, |(s, e)| count_bits(&bytes, s, e)) as i64);
            }
            Cmd::BitPos => {
                let bit = match args.get(2) {
                    b"0" => 0,
                    b"1" => 1,
                    _ => return Err("ERR The bit argument must be 1 or 0.".into()),
                };
                let Some(bytes) = lookup_bytes(store, req.db, args.get(1), req.now)? else {
                    out.int(if bit == 1 { -1 } else { 0 });
                    return Ok(());
                };
                let range = parse_range(args, 3, bytes.len())?;
                let Some((from, to)) = range.bits else {
                    out.int(-1);
                    return Ok(());
                };
                match find_bit(&bytes, bit, from, to) {
                    Some(found) => out.int(found as i64),
                    // Looking for a clear bit past an all-ones string: the first bit after it.
                    None if bit == 0 && !range.end_given => out.int((to + 1) as i64),
                    None => out.int(-1),
                }
            }
            Cmd::BitFieldRo => {
                let ops = parse_fields(args, max, true)?;
                let bytes = read_bytes(store, req.db, args.get(1), req.now)?;
                let mut scratch = bytes;
                run_fields(&mut scratch, &ops, out);
            }
            other => return Err(format!("ERR '{}' is not a bitmap read", other.spec().name).into()),
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.error(&e);
    }
}

// ---- writes ----

pub fn apply(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let max = store.max_bulk_len;
    let key = args.get(1);
    let result = (|| -> Result<(), errors::Error> {
        match cmd {
            Cmd::SetBit => {
                let offset = bit_offset(args.get(2), max)?;
                let bit = match args.get(3) {
                    b"0" => 0,
                    b"1" => 1,
                    _ => return Err(BAD_BIT.into()),
                };
                let old = write_bytes(store, db, key, now, |bytes| {
                    let old = get_bit(bytes, offset);
                    set_bit(bytes, offset, bit);
                    old
                })?;
                store.notify(db, notify::STRING, "setbit", key);
                out.int(old as i64);
            }
            Cmd::BitOp => bit_op(store, db, now, args, out),
            Cmd::BitField => {
                let ops = parse_fields(args, max, false)?;
                if ops.iter().all(|op| matches!(op.action, Action::Get)) {
                    let mut bytes = read_bytes(store, db, key, now)?;
                    run_fields(&mut bytes, &ops, out);
                } else {
                    // As Redis, the string first grows to the farthest bit any SET or INCRBY
                    // names, even one that OVERFLOW FAIL then refuses.
                    let reach = ops
                        .iter()
                        .filter(|op| !matches!(op.action, Action::Get))
                        .map(|op| (op.offset + op.bits as u64 - 1) / 8 + 1)
                        .max()
                        .unwrap_or(0) as usize;
                    write_bytes(store, db, key, now, |bytes| {
                        if bytes.len() < reach {
                            bytes.resize(reach, 0);
                        }
                        run_fields(bytes, &ops, out)
                    })?;
                    store.notify(db, notify::STRING, "setbit", key);
                }
            }
            _ => return Err("ERR not a bitmap write".into()),
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.error(&e);
    }
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...].
fn bit_op(store: &mut Store, db: usize, now: u64, args: Args, out: &mut ReplyWriter) {
    let op = args.get(1).to_ascii_uppercase();
    if !matches!(op.as_slice(), b"AND" | b"OR" | b"XOR" | b"NOT") {
        return out.error(errors::SYNTAX);
    }
    if op == b"NOT" && args.len() != 4 {
        return out.error("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::new();
    for key in args.tail(3).iter() {
        match read_bytes(store, db, key, now) {
            Ok(bytes) => sources.push(bytes),
            Err(e) => return out.error(e),
        }
    }
    let len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let byte = |s: &Vec<u8>| s.get(i).copied().unwrap_or(0);
            let mut values = sources.iter().map(byte);
            let first = values.next().unwrap_or(0);
            match op.as_slice() {
                b"AND" => values.fold(first, |a, b| a & b),
                b"OR" => values.fold(first, |a, b| a | b),
                b"XOR" => values.fold(first, |a, b| a ^ b),
                _ => !first,
            }
        })
        .collect();
    let dest = args.get(2);
    let ks = store.db(db);
    let existed = ks.remove(dest, now).is_some();
    if !result.is_empty() {
        let mut entry = Entry::new(dest, Value::Str(&result), 0, lru_clock(now));
        entry.mark_raw();
        ks.insert(entry);
        ks.notify(notify::STRING, "set", dest);
    } else if existed {
        ks.notify(notify::GENERIC, "del", dest);
    }
    out.int(result.len() as i64);
}

// ---- BITFIELD ----

#[derive(Clone, Copy)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy)]
enum Action {
    Get,
    Set(i64),
    IncrBy(i64),
}

struct FieldOp {
    action: Action,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

fn parse_type(arg: &[u8]) -> Result<(bool, u32), &'static str> {
    let (signed, digits) = match arg.split_first() {
        Some((b'i' | b'I', rest)) => (true, rest),
        Some((b'u' | b'U', rest)) => (false, rest),
        _ => return Err(BAD_TYPE),
    };
    let bits = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .ok_or(BAD_TYPE)?;
    let max = if signed { 64 } else { 63 };
    if bits == 0 || bits > max {
        return Err(BAD_TYPE);
    }
    Ok((signed, bits))
}

fn parse_field_offset(arg: &[u8], bits: u32, max_bulk_len: usize) -> Result<u64, &'static str> {
    let (scaled, digits) = match arg.split_first() {
        Some((b'#', rest)) => (true, rest),
        _ => (false, arg),
    };
    let n = tessera_protocol::parse::parse_int(digits).ok_or(BAD_OFFSET)?;
    let offset = if scaled {
        n.checked_mul(bits as i64).ok_or(BAD_OFFSET)?
    } else {
        n
    };
    if offset < 0 || ((offset as u64 + bits as u64 - 1) >> 3) >= max_bulk_len as u64 {
        return Err(BAD_OFFSET);
    }
    Ok(offset as u64)
}

fn parse_fields(
    args: Args,
    max_bulk_len: usize,
    read_only: bool,
) -> Result<Vec<FieldOp>, errors::Error> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let word = args.get(i).to_ascii_uppercase();
        let remaining = args.len() - i - 1;
        match word.as_slice() {
            b"OVERFLOW" if remaining >= 1 => {
                overflow = match args.get(i + 1).to_ascii_uppercase().as_slice() {
                    b"WRAP" => Overflow::Wrap,
                    b"SAT" => Overflow::Sat,
                    b"FAIL" => Overflow::Fail,
                    _ => return Err("ERR Invalid OVERFLOW type specified".into()),
                };
                i += 2;
            }
            b"GET" if remaining >= 2 => {
                let (signed, bits) = parse_type(args.get(i + 1))?;
                let offset = parse_field_offset(args.get(i + 2), bits, max_bulk_len)?;
                ops.push(FieldOp {
                    action: Action::Get,
                    signed,
                    bits,
                    offset,
                    overflow,
                });
                i += 3;
            }
            b"SET" | b"INCRBY" if remaining >= 3 => {
                let (signed, bits) = parse_type(args.get(i + 1))?;
                let offset = parse_field_offset(args.get(i + 2), bits, max_bulk_len)?;
                let value = int_arg(args.get(i + 3))?;
                let action = if word == b"SET" {
                    Action::Set(value)
                } else {
                    Action::IncrBy(value)
                };
                ops.push(FieldOp {
                    action,
                    signed,
                    bits,
                    offset,
                    overflow,
                });
                i += 4;
            }
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    // As Redis: the whole request is parsed before BITFIELD_RO refuses a write.
    if read_only && ops.iter().any(|op| !matches!(op.action, Action::Get)) {
        return Err("ERR BITFIELD_RO only supports the GET subcommand".into());
    }
    Ok(ops)
}

fn read_field(bytes: &[u8], offset: u64, bits: u32, signed: bool) -> i64 {
    let mut raw: u64 = 0;
    for i in 0..bits as u64 {
        raw = (raw << 1) | get_bit(bytes, offset + i) as u64;
    }
    if signed && bits < 64 && raw >> (bits - 1) & 1 == 1 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

fn write_field(bytes: &mut Vec<u8>, offset: u64, bits: u32, value: i64) {
    let raw = value as u64;
    for i in 0..bits as u64 {
        let bit = (raw >> (bits as u64 - 1 - i)) & 1;
        set_bit(bytes, offset + i, bit as u8);
    }
}

/// The field's range, as (min, max).
fn bounds(signed: bool, bits: u32) -> (i128, i128) {
    if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// `value` fitted to the field under `overflow`; `None` when FAIL refuses it.
fn fit(value: i128, signed: bool, bits: u32, overflow: Overflow) -> Option<i64> {
    let (min, max) = bounds(signed, bits);
    if (min..=max).contains(&value) {
        return Some(value as i64);
    }
    match overflow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if value < min { min } else { max } as i64),
        Overflow::Wrap => {
            let span = 1i128 << bits;
            let wrapped = value.rem_euclid(span);
            Some(if signed && wrapped > max {
                wrapped - span
            } else {
                wrapped
            } as i64)
        }
    }
}

fn run_fields(bytes: &mut Vec<u8>, ops: &[FieldOp], out: &mut ReplyWriter) {
    out.array(ops.len());
    for op in ops {
        let current = read_field(bytes, op.offset, op.bits, op.signed);
        match op.action {
            Action::Get => out.int(current),
            Action::Set(value) => {
                // SET stores the value's low bits (WRAP), or saturates/fails as asked.
                match fit(value as i128, op.signed, op.bits, op.overflow) {
                    Some(v) => {
                        write_field(bytes, op.offset, op.bits, v);
                        out.int(current);
                    }
                    None => out.null(),
                }
            }
            Action::IncrBy(delta) => {
                match fit(
                    current as i128 + delta as i128,
                    op.signed,
                    op.bits,
                    op.overflow,
                ) {
                    Some(v) => {
                        write_field(bytes, op.offset, op.bits, v);
                        out.int(v);
                    }
                    None => out.null(),
                }
            }
        }
    }
}
