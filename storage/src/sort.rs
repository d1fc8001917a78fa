//! SORT and SORT_RO: the elements of a list, set or sorted set, ordered numerically or
//! (ALPHA) by bytes, by their own value or by keys a BY pattern names, projected through GET
//! patterns, optionally stored as a list.
//!
//! The sorting itself is a function of the elements and a lookup of pattern keys, so the same
//! code serves a request whose keys are all on one core (`Store` lookups) and one that names
//! keys on other cores (the caller fetches them first).

use crate::access;
use crate::errors::{self, Error};
use crate::lists;
use crate::notify;
use crate::object::{Kind, Object};
use crate::store::Store;
use crate::{sets, zsets};
use std::cmp::Ordering;
use tessera_protocol::parse::parse_int;
use tessera_protocol::{Args, Cmd, ReplyWriter};

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// A parsed SORT request.
pub struct SortOptions<'a> {
    pub by: Option<&'a [u8]>,
    /// (offset, count) as given; negative values mean "from 0" and "all".
    pub limit: Option<(i64, i64)>,
    pub gets: Vec<&'a [u8]>,
    pub desc: bool,
    pub alpha: bool,
    pub store: Option<&'a [u8]>,
}

impl SortOptions<'_> {
    /// BY without `*` leaves the elements in their stored order.
    fn dont_sort(&self) -> bool {
        self.by.is_some_and(|p| !p.contains(&b'*'))
    }

    /// The patterns that name other keys (BY with `*`, GET other than `#`).
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.by
            .filter(|p| p.contains(&b'*'))
            .into_iter()
            .chain(self.gets.iter().copied().filter(|g| *g != b"#"))
    }
}

/// Reads `SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dst]` (no STORE
/// for SORT_RO).
pub fn parse(args: Args<'_>, read_only: bool) -> Result<SortOptions<'_>, Error> {
    let mut opts = SortOptions {
        by: None,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut i = 2;
    while i < args.len() {
        let word = args.get(i);
        let left = args.len() - i - 1;
        let is = |name: &[u8]| word.eq_ignore_ascii_case(name);
        if is(b"ASC") {
            opts.desc = false;
        } else if is(b"DESC") {
            opts.desc = true;
        } else if is(b"ALPHA") {
            opts.alpha = true;
        } else if is(b"LIMIT") && left >= 2 {
            let offset = errors::int_arg(args.get(i + 1))?;
            let count = errors::int_arg(args.get(i + 2))?;
            opts.limit = Some((offset, count));
            i += 2;
        } else if is(b"STORE") && left >= 1 && !read_only {
            opts.store = Some(args.get(i + 1));
            i += 1;
        } else if is(b"BY") && left >= 1 {
            opts.by = Some(args.get(i + 1));
            i += 1;
        } else if is(b"GET") && left >= 1 {
            opts.gets.push(args.get(i + 1));
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    Ok(opts)
}

/// The key (and hash field, after `->`) a pattern names for `element`; `None` for a pattern
/// without `*`.
pub fn pattern_target(pattern: &[u8], element: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let (suffix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < after.len() => (&after[..at], Some(after[at + 2..].to_vec())),
        _ => (after, None),
    };
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(element);
    key.extend_from_slice(suffix);
    Some((key, field))
}

/// The value a pattern target holds: a string's bytes, or a hash field's value.
pub fn lookup(
    store: &mut Store,
    db: usize,
    now: u64,
    key: &[u8],
    field: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let entry = store.db(db).get(key, now)?;
    match (field, entry.object()) {
        (None, None) => Some(entry.value().to_vec()),
        (Some(field), Some(hash)) if hash.kind() == Kind::Hash => crate::hashes::pairs(hash)
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.to_vec()),
        _ => None,
    }
}

/// The kind and the elements of the list, set or sorted set at `key` in stored order (a
/// sorted set by score); no elements when the key is missing.
pub fn elements(
    store: &mut Store,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<(Kind, Vec<Vec<u8>>), &'static str> {
    let Some(entry) = store.db(db).get(key, now) else {
        return Ok((Kind::List, Vec::new()));
    };
    let object = entry.object().ok_or(errors::WRONGTYPE)?;
    let elements = match object.kind() {
        Kind::List => lists::elements(object).map(<[u8]>::to_vec).collect(),
        Kind::Set => sets::members(object).map(|m| m.into_owned()).collect(),
        Kind::ZSet => zsets::elements(object)
            .into_iter()
            .map(|(m, _)| m.to_vec())
            .collect(),
        _ => return Err(errors::WRONGTYPE),
    };
    Ok((object.kind(), elements))
}

/// Orders `elements` as `opts` say and projects them through the GET patterns; `find`
/// answers what a pattern names for an element. Each output is one element's value per GET
/// (or the element itself without GET); `None` is a missing target.
pub fn sort(
    mut elements: Vec<Vec<u8>>,
    kind: Kind,
    opts: &SortOptions,
    mut find: impl FnMut(&[u8], &[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, &'static str> {
    let dont_sort = opts.dont_sort();
    if dont_sort && kind == Kind::ZSet && opts.desc {
        elements.reverse();
    }
    if dont_sort && kind == Kind::Set && opts.store.is_some() {
        // As Redis: a set's order is arbitrary, so what is stored is sorted anyway.
        elements = order(elements, (true, None), opts.desc, &mut find)?;
    } else if !dont_sort {
        elements = order(elements, (opts.alpha, opts.by), opts.desc, &mut find)?;
    }
    let len = elements.len() as i64;
    let (start, end) = match opts.limit {
        None => (0, len - 1),
        Some((offset, count)) => {
            let start = offset.max(0);
            let end = if count < 0 {
                len - 1
            } else {
                start + count - 1
            };
            if start >= len {
                (len - 1, len - 2)
            } else {
                (start, end.min(len - 1))
            }
        }
    };
    let mut out = Vec::new();
    for element in elements
        .iter()
        .take((end + 1).max(0) as usize)
        .skip(start.max(0) as usize)
    {
        if opts.gets.is_empty() {
            out.push(Some(element.clone()));
        }
        for get in &opts.gets {
            out.push(if *get == b"#" {
                Some(element.clone())
            } else {
                find(get, element)
            });
        }
    }
    Ok(out)
}

/// A sort key per element: a number, or bytes for ALPHA (`None` sorts first).
enum Weight {
    Number(f64),
    Bytes(Option<Vec<u8>>),
}

/// Sorts by number or (`alpha`) bytes, of the elements or of what the BY pattern names.
fn order(
    elements: Vec<Vec<u8>>,
    (alpha, by): (bool, Option<&[u8]>),
    desc: bool,
    find: &mut impl FnMut(&[u8], &[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut weighted = Vec::with_capacity(elements.len());
    for element in elements {
        let found = by.and_then(|pattern| find(pattern, &element));
        let weight = match (alpha, by) {
            (true, Some(_)) => Weight::Bytes(found),
            (true, None) => Weight::Bytes(None),
            (false, Some(_)) => Weight::Number(match found {
                Some(value) => number(&value)?,
                None => 0.0,
            }),
            (false, None) => Weight::Number(number(&element)?),
        };
        weighted.push((weight, element));
    }
    weighted.sort_by(|(wa, a), (wb, b)| {
        let cmp = match (wa, wb) {
            (Weight::Number(x), Weight::Number(y)) => x
                .partial_cmp(y)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.cmp(b)),
            (Weight::Bytes(None), Weight::Bytes(None)) if by.is_none() => a.cmp(b),
            (Weight::Bytes(x), Weight::Bytes(y)) => x.cmp(y),
            _ => Ordering::Equal,
        };
        if desc {
            cmp.reverse()
        } else {
            cmp
        }
    });
    Ok(weighted.into_iter().map(|(_, e)| e).collect())
}

/// An element or BY value as Redis's strtod reads it: the whole text, no NaN.
fn number(text: &[u8]) -> Result<f64, &'static str> {
    if let Some(n) = parse_int(text) {
        return Ok(n as f64);
    }
    let s = std::str::from_utf8(text).map_err(|_| NOT_DOUBLE)?;
    let trimmed = s.trim_start();
    match trimmed.parse::<f64>() {
        Ok(v) if !v.is_nan() && !trimmed.is_empty() => Ok(v),
        _ if s.is_empty() => Ok(0.0),
        _ => Err(NOT_DOUBLE),
    }
}

/// Replies with a SORT's output.
pub fn reply(out: &mut ReplyWriter, output: &[Option<Vec<u8>>]) {
    out.array(output.len());
    for value in output {
        match value {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
}

/// Stores a SORT's output at `dst` as a list (missing values as empty strings); replies with
/// its length.
pub fn store_output(
    store: &mut Store,
    db: usize,
    now: u64,
    dst: &[u8],
    output: &[Option<Vec<u8>>],
    out: &mut ReplyWriter,
) {
    let limits = store.limits;
    let list = (!output.is_empty()).then(|| {
        let mut list = Object::ListPack(Vec::new());
        for value in output {
            lists::push(
                &mut list,
                value.as_deref().unwrap_or_default(),
                false,
                &limits,
            );
        }
        list
    });
    access::replace(store, db, now, dst, list, (notify::LIST, "sortstore"));
    out.int(output.len() as i64);
}

/// SORT / SORT_RO with every key on this core.
pub fn run(store: &mut Store, db: usize, now: u64, cmd: Cmd, args: Args, out: &mut ReplyWriter) {
    let opts = match parse(args, cmd == Cmd::SortRo) {
        Ok(opts) => opts,
        Err(e) => return out.error(&e),
    };
    let (kind, elements) = match elements(store, db, args.get(1), now) {
        Ok(found) => found,
        Err(e) => return out.error(e),
    };
    let sorted = sort(elements, kind, &opts, |pattern, element| {
        if pattern == b"#" {
            return Some(element.to_vec());
        }
        let (key, field) = pattern_target(pattern, element)?;
        lookup(store, db, now, &key, field.as_deref())
    });
    match (sorted, opts.store) {
        (Err(e), _) => out.error(e),
        (Ok(output), Some(dst)) => store_output(store, db, now, dst, &output, out),
        (Ok(output), None) => reply(out, &output),
    }
}
