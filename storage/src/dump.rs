//! A value written as bytes and read back: how a key travels between cores (cross-core
//! RENAME and COPY) inside an effect, so that the effect stays plain bytes.
//!
//! Format: one tag byte, then for a string its bytes, for a collection a pack of its
//! elements (a hash's fields and values alternating). The reader rebuilds the collection
//! through its family, so the result takes the form the receiving store's limits choose.

use crate::entry::{encode_string, Entry};
use crate::hashes;
use crate::object::{EncodingLimits, Kind, Object};
use crate::pack;
use crate::sets;
use crate::zsets;

const STRING: u8 = 0;
const HASH: u8 = 1;
const LIST: u8 = 2;
const SET: u8 = 3;
const ZSET: u8 = 4;
const STREAM: u8 = 5;

/// The value of `entry` as bytes.
pub fn value_bytes(entry: &Entry) -> Vec<u8> {
    let Some(object) = entry.object() else {
        let mut out = vec![STRING];
        out.extend_from_slice(&entry.value().to_vec());
        return out;
    };
    let mut out = Vec::new();
    match object.kind() {
        Kind::Hash => {
            out.push(HASH);
            for (field, value) in hashes::pairs(object) {
                pack::push_back(&mut out, field);
                pack::push_back(&mut out, value);
            }
        }
        Kind::List => {
            out.push(LIST);
            crate::lists::elements(object).for_each(|e| pack::push_back(&mut out, e));
        }
        Kind::Set => {
            out.push(SET);
            sets::members(object).for_each(|m| pack::push_back(&mut out, &m));
        }
        Kind::ZSet => {
            out.push(ZSET);
            for (member, score) in zsets::elements(object) {
                pack::push_back(&mut out, member);
                pack::push_back(&mut out, &score.to_le_bytes());
            }
        }
        Kind::Stream => {
            out.push(STREAM);
            if let crate::object::ObjectRef::Stream(s) = object {
                crate::stream::encode(s, &mut out);
            }
        }
        Kind::String => unreachable!("strings have no object"),
    }
    out
}

/// An entry for `key` holding the value `bytes` wrote; `None` when they are no such value.
pub fn entry_from(
    key: &[u8],
    bytes: &[u8],
    expire_at: u64,
    access: u32,
    limits: &EncodingLimits,
) -> Option<Entry> {
    let (&tag, body) = bytes.split_first()?;
    if tag == STRING {
        return Some(Entry::new(key, encode_string(body), expire_at, access));
    }
    let elements = pack::iter(body);
    let object = match tag {
        STREAM => Object::Stream(Box::new(crate::stream::decode(body)?)),
        HASH => {
            let mut hash = Object::HashPack(Vec::new());
            let mut elements = elements;
            while let (Some(field), Some(value)) = (elements.next(), elements.next()) {
                hashes::set(&mut hash, field, value, limits);
            }
            hash
        }
        LIST => {
            let mut list = Object::ListPack(Vec::new());
            elements.for_each(|e| crate::lists::push(&mut list, e, false, limits));
            list
        }
        SET => sets::from_members(elements, limits),
        ZSET => {
            let mut elements = elements;
            let mut pairs = Vec::new();
            while let (Some(member), Some(score)) = (elements.next(), elements.next()) {
                pairs.push((member, f64::from_le_bytes(score.try_into().ok()?)));
            }
            zsets::from_elements(pairs.into_iter(), limits)
        }
        _ => return None,
    };
    Some(Entry::new_object(key, object, expire_at, access))
}
