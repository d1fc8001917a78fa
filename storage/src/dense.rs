//! The large form of hashes and sets: a dense vector of field/value pairs plus an index from
//! field to position.
//!
//! The vector gives what a plain hash table cannot: O(1) uniform random picks (SPOP,
//! SRANDMEMBER, HRANDFIELD), an iteration order that depends only on the history of writes
//! (so every replica agrees on it), and a cursor for HSCAN/SSCAN that is just a position.
//! Removal swaps the last pair into the hole; scanning from the back to the front therefore
//! still returns every pair that was present throughout an iteration.

use crate::entry::size_class;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::alloc::{self, Layout};
use std::hash::BuildHasher;
use std::ptr::NonNull;

/// A field and its value (a set member has an empty value) in one allocation:
/// `[field length u32][value length u32][field][value]`.
pub struct Pair {
    ptr: NonNull<u32>,
}

// SAFETY: a Pair owns its block exclusively, like a Box.
unsafe impl Send for Pair {}
unsafe impl Sync for Pair {}

const PAIR_HEADER: usize = 8;

fn pair_layout(field: usize, value: usize) -> Layout {
    Layout::from_size_align(PAIR_HEADER + field + value, 4).expect("pair size overflows")
}

impl Pair {
    pub fn new(field: &[u8], value: &[u8]) -> Pair {
        let layout = pair_layout(field.len(), value.len());
        // SAFETY: the layout is non-empty (it has the header).
        let raw = unsafe { alloc::alloc(layout) } as *mut u32;
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block holds the header, the field and the value.
        unsafe {
            raw.write(field.len() as u32);
            raw.add(1).write(value.len() as u32);
            let data = (raw as *mut u8).add(PAIR_HEADER);
            std::ptr::copy_nonoverlapping(field.as_ptr(), data, field.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), data.add(field.len()), value.len());
        }
        Pair { ptr }
    }

    fn lens(&self) -> (usize, usize) {
        // SAFETY: the header is always initialised.
        unsafe {
            (
                *self.ptr.as_ptr() as usize,
                *self.ptr.as_ptr().add(1) as usize,
            )
        }
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data follows the header in the same block.
        unsafe { (self.ptr.as_ptr() as *const u8).add(PAIR_HEADER) }
    }

    pub fn field(&self) -> &[u8] {
        // SAFETY: field-length bytes follow the header.
        unsafe { std::slice::from_raw_parts(self.data(), self.lens().0) }
    }

    pub fn value(&self) -> &[u8] {
        let (field, value) = self.lens();
        // SAFETY: value-length bytes follow the field.
        unsafe { std::slice::from_raw_parts(self.data().add(field), value) }
    }

    /// Bytes the allocator hands out for this pair.
    pub fn memory(&self) -> usize {
        let (field, value) = self.lens();
        size_class(PAIR_HEADER + field + value)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let (field, value) = self.lens();
        // SAFETY: allocated with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, pair_layout(field, value)) }
    }
}

impl Clone for Pair {
    fn clone(&self) -> Pair {
        Pair::new(self.field(), self.value())
    }
}

/// Pairs in a dense vector, indexed by field.
#[derive(Default)]
pub struct Dense {
    pairs: Vec<Pair>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Allocator bytes of the pairs themselves.
    pair_bytes: usize,
}

impl Clone for Dense {
    fn clone(&self) -> Dense {
        let mut copy = Dense::default();
        self.pairs
            .iter()
            .for_each(|p| _ = copy.insert(p.field(), p.value()));
        copy
    }
}

impl Dense {
    pub fn with_capacity(n: usize) -> Dense {
        Dense {
            pairs: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            ..Dense::default()
        }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn find(&self, field: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(field);
        let pairs = &self.pairs;
        self.index
            .find(hash, |&i| pairs[i as usize].field() == field)
            .map(|&i| i as usize)
    }

    pub fn get(&self, field: &[u8]) -> Option<&Pair> {
        self.find(field).map(|i| &self.pairs[i])
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.find(field).is_some()
    }

    /// The pair at position `i` (positions run from 0 to `len() - 1`).
    pub fn at(&self, i: usize) -> &Pair {
        &self.pairs[i]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Pair> {
        self.pairs.iter()
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let hash = self.hasher.hash_one(field);
        let Dense {
            pairs,
            index,
            hasher,
            pair_bytes,
        } = self;
        match index.entry(
            hash,
            |&i| pairs[i as usize].field() == field,
            |&i| hasher.hash_one(pairs[i as usize].field()),
        ) {
            hashbrown::hash_table::Entry::Occupied(slot) => {
                let pair = &mut pairs[*slot.get() as usize];
                *pair_bytes -= pair.memory();
                *pair = Pair::new(field, value);
                *pair_bytes += pair.memory();
                false
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(pairs.len() as u32);
                let pair = Pair::new(field, value);
                *pair_bytes += pair.memory();
                pairs.push(pair);
                true
            }
        }
    }

    /// Removes `field`; the last pair moves into its position.
    pub fn remove(&mut self, field: &[u8]) -> Option<Pair> {
        let i = self.find(field)?;
        Some(self.remove_at(i))
    }

    /// Removes the pair at position `i`; the last pair moves into its position.
    pub fn remove_at(&mut self, i: usize) -> Pair {
        let hash = self.hasher.hash_one(self.pairs[i].field());
        let pairs = &self.pairs;
        match self.index.find_entry(hash, |&at| at as usize == i) {
            Ok(indexed) => drop(indexed.remove()),
            Err(_) => unreachable!("every pair is indexed"),
        }
        let last = self.pairs.len() - 1;
        if i != last {
            let moved = self.hasher.hash_one(pairs[last].field());
            *self
                .index
                .find_mut(moved, |&at| at as usize == last)
                .expect("every pair is indexed") = i as u32;
        }
        let pair = self.pairs.swap_remove(i);
        self.pair_bytes -= pair.memory();
        pair
    }

    /// Bytes this structure holds: the vector, the index and the pairs.
    pub fn memory(&self) -> usize {
        self.pairs.capacity() * std::mem::size_of::<Pair>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.pair_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replace_remove_keep_the_index_true() {
        let mut d = Dense::default();
        for i in 0..100u32 {
            assert!(d.insert(format!("f{i}").as_bytes(), b"v"));
        }
        assert!(!d.insert(b"f7", b"seven"));
        assert_eq!(d.get(b"f7").unwrap().value(), b"seven");
        for i in (0..100u32).step_by(3) {
            assert_eq!(
                d.remove(format!("f{i}").as_bytes()).unwrap().value().len(),
                {
                    if i == 7 {
                        5
                    } else {
                        1
                    }
                }
            );
        }
        assert_eq!(d.len(), 66);
        for i in 0..100u32 {
            let present = d.contains(format!("f{i}").as_bytes());
            assert_eq!(present, i % 3 != 0, "f{i}");
        }
        for i in 0..d.len() {
            let field = d.at(i).field().to_vec();
            assert_eq!(d.find(&field), Some(i));
        }
        let before = d.memory();
        while !d.is_empty() {
            d.remove_at(0);
        }
        assert!(d.memory() < before);
    }
}
