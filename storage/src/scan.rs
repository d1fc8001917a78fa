//! HSCAN and SSCAN (ZSCAN later): cursors over one collection.
//!
//! A compact collection comes back whole with cursor 0, as Redis does for listpacks. A large
//! one is a `Dense` vector scanned from its back to its front: removal moves the last element
//! into the hole, which is never a position the scan still has to visit, so every element
//! present throughout the iteration is returned at least once.

use crate::errors::Error;
use crate::glob;
use crate::keys::{parse_scan, ScanOptions};
use tessera_protocol::{Args, ReplyWriter};

/// Reads `CMD key cursor [MATCH pattern] [COUNT count]`.
pub fn parse(args: Args) -> Result<ScanOptions, Error> {
    parse_scan(args.tail(1))
}

/// Replies to a scan over a collection of `len` elements; `at(i)` gives element `i` (its
/// field and value) and `dense` says whether positions are stable cursors.
pub fn reply<'a>(
    out: &mut ReplyWriter,
    opts: &ScanOptions,
    len: usize,
    dense: bool,
    at: impl Fn(usize) -> (&'a [u8], &'a [u8]),
    with_values: bool,
) {
    let (from, to, next) = if dense {
        let start = match opts.cursor {
            0 => len,
            c => (c as usize).min(len),
        };
        let end = start.saturating_sub(opts.count);
        (end, start, end as u64)
    } else {
        (0, len, 0)
    };
    let found: Vec<(&[u8], &[u8])> = (from..to)
        .rev()
        .map(at)
        .filter(|(f, _)| opts.pattern.as_deref().is_none_or(|p| glob::matches(p, f)))
        .collect();
    out.array(2);
    out.bulk(tessera_protocol::reply::itoa_buf(next as i64).as_slice());
    out.array(found.len() * if with_values { 2 } else { 1 });
    for (f, v) in found {
        out.bulk(f);
        if with_values {
            out.bulk(v);
        }
    }
}
