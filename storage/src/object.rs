//! Collection values (hashes, lists, sets) in their compact and large forms.
//!
//! A small collection is one pack stored inside its key's entry block, so a small hash costs
//! one allocation like a string does. It converts to its large form once it outgrows the
//! limits Redis's `*-max-listpack-*` and `set-max-intset-entries` settings name. `Object` is
//! the owned form a write works on; `ObjectRef` is the borrowed form reads work on.

use crate::dense::Dense;
use crate::entry::size_class;
use crate::pack;
use crate::ranked::Ranked;
use crate::stream::Stream;
use std::collections::VecDeque;

/// The type `TYPE` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Hash,
    List,
    Set,
    ZSet,
    Stream,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }
}

/// Size limits of the compact forms, under Redis's configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    /// `list-max-listpack-size`: positive counts elements, -1..-5 mean 4..64 KiB per chunk.
    pub list_max_listpack_size: i64,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            list_max_listpack_size: -2,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
        }
    }
}

impl EncodingLimits {
    /// Whether a list chunk holding `count` elements in `bytes` bytes is full.
    pub fn list_chunk_full(&self, count: usize, bytes: usize) -> bool {
        match self.list_max_listpack_size {
            n if n > 0 => count >= n as usize,
            n => bytes >= 4096 << (n.clamp(-5, -1).unsigned_abs() - 1),
        }
    }
}

/// A collection, owned.
#[derive(Clone)]
pub enum Object {
    /// Fields and values alternating in one pack.
    HashPack(Vec<u8>),
    HashDense(Box<Dense>),
    ListPack(Vec<u8>),
    ListQuick(Box<QuickList>),
    /// Distinct integers, ascending, 8 little-endian bytes each.
    SetInts(Vec<u8>),
    SetPack(Vec<u8>),
    /// Members with empty values.
    SetDense(Box<Dense>),
    /// Members and their scores (8 bytes, `f64` little-endian) alternating, in score order.
    ZSetPack(Vec<u8>),
    ZSetTree(Box<Ranked>),
    Stream(Box<Stream>),
}

/// A collection, borrowed from its entry.
#[derive(Clone, Copy)]
pub enum ObjectRef<'a> {
    HashPack(&'a [u8]),
    HashDense(&'a Dense),
    ListPack(&'a [u8]),
    ListQuick(&'a QuickList),
    SetInts(&'a [u8]),
    SetPack(&'a [u8]),
    SetDense(&'a Dense),
    ZSetPack(&'a [u8]),
    ZSetTree(&'a Ranked),
    Stream(&'a Stream),
}

impl Object {
    pub fn view(&self) -> ObjectRef<'_> {
        match self {
            Object::HashPack(p) => ObjectRef::HashPack(p),
            Object::HashDense(d) => ObjectRef::HashDense(d),
            Object::ListPack(p) => ObjectRef::ListPack(p),
            Object::ListQuick(q) => ObjectRef::ListQuick(q),
            Object::SetInts(p) => ObjectRef::SetInts(p),
            Object::SetPack(p) => ObjectRef::SetPack(p),
            Object::SetDense(d) => ObjectRef::SetDense(d),
            Object::ZSetPack(p) => ObjectRef::ZSetPack(p),
            Object::ZSetTree(t) => ObjectRef::ZSetTree(t),
            Object::Stream(s) => ObjectRef::Stream(s),
        }
    }
}

impl<'a> ObjectRef<'a> {
    /// Heap bytes outside the entry block (a compact form lives inside it: zero).
    pub fn external_memory(self) -> usize {
        match self {
            ObjectRef::HashDense(d) | ObjectRef::SetDense(d) => {
                size_class(std::mem::size_of::<Dense>()) + d.memory()
            }
            ObjectRef::ListQuick(q) => size_class(std::mem::size_of::<QuickList>()) + q.memory(),
            ObjectRef::ZSetTree(t) => size_class(std::mem::size_of::<Ranked>()) + t.memory(),
            ObjectRef::Stream(s) => size_class(std::mem::size_of::<Stream>()) + s.memory(),
            _ => 0,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            ObjectRef::HashPack(_) | ObjectRef::HashDense(_) => Kind::Hash,
            ObjectRef::ListPack(_) | ObjectRef::ListQuick(_) => Kind::List,
            ObjectRef::SetInts(_) | ObjectRef::SetPack(_) | ObjectRef::SetDense(_) => Kind::Set,
            ObjectRef::ZSetPack(_) | ObjectRef::ZSetTree(_) => Kind::ZSet,
            ObjectRef::Stream(_) => Kind::Stream,
        }
    }

    /// The name `OBJECT ENCODING` reports (Redis 7.2's names).
    pub fn encoding_name(self) -> &'static str {
        match self {
            ObjectRef::HashPack(_)
            | ObjectRef::ListPack(_)
            | ObjectRef::SetPack(_)
            | ObjectRef::ZSetPack(_) => "listpack",
            ObjectRef::ZSetTree(_) => "skiplist",
            ObjectRef::Stream(_) => "stream",
            ObjectRef::HashDense(_) | ObjectRef::SetDense(_) => "hashtable",
            ObjectRef::ListQuick(_) => "quicklist",
            ObjectRef::SetInts(_) => "intset",
        }
    }

    pub fn to_owned(self) -> Object {
        match self {
            ObjectRef::HashPack(p) => Object::HashPack(p.to_vec()),
            ObjectRef::HashDense(d) => Object::HashDense(Box::new(d.clone())),
            ObjectRef::ListPack(p) => Object::ListPack(p.to_vec()),
            ObjectRef::ListQuick(q) => Object::ListQuick(Box::new(q.clone())),
            ObjectRef::SetInts(p) => Object::SetInts(p.to_vec()),
            ObjectRef::SetPack(p) => Object::SetPack(p.to_vec()),
            ObjectRef::SetDense(d) => Object::SetDense(Box::new(d.clone())),
            ObjectRef::ZSetPack(p) => Object::ZSetPack(p.to_vec()),
            ObjectRef::ZSetTree(t) => Object::ZSetTree(Box::new(t.clone())),
            ObjectRef::Stream(s) => Object::Stream(Box::new(s.clone())),
        }
    }
}

/// One chunk of a large list.
#[derive(Clone, Default)]
pub struct Chunk {
    pub pack: Vec<u8>,
    pub count: usize,
}

/// A large list: a deque of packs, each bounded by `list-max-listpack-size`.
#[derive(Clone, Default)]
pub struct QuickList {
    pub chunks: VecDeque<Chunk>,
    pub len: usize,
    /// Bytes the chunks' packs hold, kept up to date so memory accounting is O(1).
    bytes: usize,
}

impl QuickList {
    pub fn from_pack(pack: Vec<u8>) -> QuickList {
        let count = pack::iter(&pack).count();
        let mut list = QuickList::default();
        if count > 0 {
            list.bytes = pack.len();
            list.chunks.push_back(Chunk { pack, count });
            list.len = count;
        }
        list
    }

    pub fn memory(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>() + self.bytes
    }

    pub fn push(&mut self, data: &[u8], front: bool, limits: &EncodingLimits) {
        let end = if front {
            self.chunks.front()
        } else {
            self.chunks.back()
        };
        let full = end.is_none_or(|c| {
            limits.list_chunk_full(c.count, c.pack.len() + pack::element_size(data.len()))
        });
        if full {
            let chunk = Chunk::default();
            if front {
                self.chunks.push_front(chunk);
            } else {
                self.chunks.push_back(chunk);
            }
        }
        let chunk = if front {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        }
        .expect("a chunk was just ensured");
        if front {
            pack::push_front(&mut chunk.pack, data);
        } else {
            pack::push_back(&mut chunk.pack, data);
        }
        chunk.count += 1;
        self.len += 1;
        self.bytes += pack::element_size(data.len());
    }

    pub fn pop(&mut self, front: bool) -> Option<Vec<u8>> {
        let chunk = if front {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        }?;
        let (value, start) = if front {
            let (data, _) = pack::read_at(&chunk.pack, 0);
            (data.to_vec(), 0)
        } else {
            let (data, start) = pack::read_before(&chunk.pack, chunk.pack.len());
            (data.to_vec(), start)
        };
        pack::remove(&mut chunk.pack, start);
        self.bytes -= pack::element_size(value.len());
        chunk.count -= 1;
        if chunk.count == 0 {
            if front {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
        }
        self.len -= 1;
        Some(value)
    }

    /// Drops `n` elements from one end, whole chunks at a time where it can.
    pub fn discard(&mut self, front: bool, mut n: usize) {
        while n > 0 {
            let end = if front {
                self.chunks.front()
            } else {
                self.chunks.back()
            };
            let Some(chunk) = end else {
                break;
            };
            if chunk.count <= n {
                n -= chunk.count;
                self.len -= chunk.count;
                self.bytes -= chunk.pack.len();
                if front {
                    self.chunks.pop_front();
                } else {
                    self.chunks.pop_back();
                }
            } else {
                self.pop(front);
                n -= 1;
            }
        }
    }

    /// Replaces element `index` (which must exist) with `data`.
    pub fn replace(&mut self, index: usize, data: &[u8]) {
        let (chunk, within) = self.locate(index).expect("index below the length");
        let pack = &mut self.chunks[chunk].pack;
        let (at, old) = pack::positions(pack)
            .nth(within)
            .map(|(at, old)| (at, old.len()))
            .expect("index below the chunk's count");
        pack::replace(pack, at, data);
        self.bytes = self.bytes + pack::element_size(data.len()) - pack::element_size(old);
    }

    /// The chunk holding element `index` and the element's position within that chunk.
    pub fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        let mut skipped = 0;
        if index < self.len / 2 {
            for (c, chunk) in self.chunks.iter().enumerate() {
                if index < skipped + chunk.count {
                    return Some((c, index - skipped));
                }
                skipped += chunk.count;
            }
        } else {
            let mut end = self.len;
            for (c, chunk) in self.chunks.iter().enumerate().rev() {
                let start = end - chunk.count;
                if index >= start {
                    return Some((c, index - start));
                }
                end = start;
            }
        }
        None
    }
}
