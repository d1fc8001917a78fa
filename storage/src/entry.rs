//! One key and its value in a single heap block: `[header][key bytes][value bytes]`.
//!
//! A keyspace holds millions of these, so the layout is what decides memory per key: one
//! allocation, no separate key object, no per-value object header. The table that indexes the
//! blocks stores only the pointer.

use crate::object::{Kind, Object, ObjectRef};
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// How a value is held. Strings and compact collections live in the entry block; a large
/// collection's block holds the address of its box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    /// A canonical decimal integer kept as an `i64`.
    Int = 0,
    /// A short string written once (Redis's `embstr`, up to 44 bytes).
    Embstr = 1,
    /// Any other string.
    Raw = 2,
    HashPack,
    HashDense,
    ListPack,
    ListQuick,
    SetInts,
    SetPack,
    SetDense,
    ZSetPack,
    ZSetTree,
    Stream,
}

impl Encoding {
    fn is_string(self) -> bool {
        matches!(self, Encoding::Int | Encoding::Embstr | Encoding::Raw)
    }

    fn is_boxed(self) -> bool {
        matches!(
            self,
            Encoding::HashDense
                | Encoding::ListQuick
                | Encoding::SetDense
                | Encoding::ZSetTree
                | Encoding::Stream
        )
    }
}

/// How an object is written into an entry block: a compact form's pack, or a box's address.
enum Stored {
    Pack(Vec<u8>),
    Boxed([u8; 8]),
}

impl Stored {
    fn bytes(&self) -> &[u8] {
        match self {
            Stored::Pack(p) => p,
            Stored::Boxed(addr) => addr,
        }
    }
}

fn object_bytes(object: Object) -> (Stored, Encoding) {
    let boxed = |addr: usize| Stored::Boxed(addr.to_le_bytes());
    match object {
        Object::HashPack(p) => (Stored::Pack(p), Encoding::HashPack),
        Object::ListPack(p) => (Stored::Pack(p), Encoding::ListPack),
        Object::SetInts(p) => (Stored::Pack(p), Encoding::SetInts),
        Object::SetPack(p) => (Stored::Pack(p), Encoding::SetPack),
        Object::ZSetPack(p) => (Stored::Pack(p), Encoding::ZSetPack),
        Object::ZSetTree(t) => (boxed(Box::into_raw(t) as usize), Encoding::ZSetTree),
        Object::Stream(s) => (boxed(Box::into_raw(s) as usize), Encoding::Stream),
        Object::HashDense(d) => (boxed(Box::into_raw(d) as usize), Encoding::HashDense),
        Object::SetDense(d) => (boxed(Box::into_raw(d) as usize), Encoding::SetDense),
        Object::ListQuick(q) => (boxed(Box::into_raw(q) as usize), Encoding::ListQuick),
    }
}

fn boxed_addr(bytes: &[u8]) -> usize {
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes);
    usize::from_le_bytes(le)
}

/// Longest string Redis keeps as `embstr`.
const EMBSTR_MAX: usize = 44;

/// A value as read from an entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Value<'_> {
    /// The value as bytes, formatting integers into `scratch`.
    pub fn as_bytes<'s>(&'s self, scratch: &'s mut [u8; 20]) -> &'s [u8] {
        match self {
            Value::Str(s) => s,
            Value::Int(n) => {
                let digits = tessera_protocol::reply::itoa_buf(*n);
                let text = digits.as_slice();
                scratch[..text.len()].copy_from_slice(text);
                &scratch[..text.len()]
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Int(n) => tessera_protocol::reply::itoa_buf(*n).as_slice().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(self) -> Vec<u8> {
        let mut scratch = [0u8; 20];
        self.as_bytes(&mut scratch).to_vec()
    }
}

/// The value stored for a string: integers that read back exactly are kept as integers.
pub fn encode_string(data: &[u8]) -> Value<'_> {
    if data.len() <= 20 {
        if let Some(n) = tessera_protocol::parse::parse_int(data) {
            return Value::Int(n);
        }
    }
    Value::Str(data)
}

#[repr(C)]
struct Header {
    /// Absolute deadline in Unix milliseconds; 0 when the key never expires.
    expire_at: u64,
    key_len: u32,
    val_len: u32,
    encoding: Encoding,
    /// Last access, in seconds of the server's LRU clock.
    access: u32,
}

const HEADER: usize = std::mem::size_of::<Header>();

/// An owned key/value block.
pub struct Entry {
    ptr: NonNull<Header>,
}

// SAFETY: an Entry owns its block exclusively, like a Box.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

fn layout(key_len: usize, val_len: usize) -> Layout {
    Layout::from_size_align(HEADER + key_len + val_len, std::mem::align_of::<Header>())
        .expect("entry size overflows")
}

impl Entry {
    /// A new entry holding `value`, expiring at `expire_at` (Unix ms, 0 for never).
    pub fn new(key: &[u8], value: Value<'_>, expire_at: u64, access: u32) -> Entry {
        let mut int_buf = [0u8; 8];
        let (bytes, encoding) = value_bytes(&value, &mut int_buf, false);
        Entry::with_bytes(key, bytes, encoding, expire_at, access)
    }

    /// A new entry holding a collection.
    pub fn new_object(key: &[u8], object: Object, expire_at: u64, access: u32) -> Entry {
        let (stored, encoding) = object_bytes(object);
        Entry::with_bytes(key, stored.bytes(), encoding, expire_at, access)
    }

    fn with_bytes(
        key: &[u8],
        bytes: &[u8],
        encoding: Encoding,
        expire_at: u64,
        access: u32,
    ) -> Entry {
        let layout = layout(key.len(), bytes.len());
        // SAFETY: the layout has a non-zero size (it includes the header).
        let raw = unsafe { alloc::alloc(layout) } as *mut Header;
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block is fresh and large enough for the header, the key and the value.
        unsafe {
            raw.write(Header {
                expire_at,
                key_len: key.len() as u32,
                val_len: bytes.len() as u32,
                encoding,
                access,
            });
            let data = (raw as *mut u8).add(HEADER);
            std::ptr::copy_nonoverlapping(key.as_ptr(), data, key.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(key.len()), bytes.len());
        }
        Entry { ptr }
    }

    /// Asks the CPU to start loading this entry's first cache line.
    pub fn prefetch(&self) {
        crate::prefetch::line(self.ptr.as_ptr() as *const u8);
    }

    fn header(&self) -> &Header {
        // SAFETY: ptr always points at an initialised header.
        unsafe { self.ptr.as_ref() }
    }

    fn header_mut(&mut self) -> &mut Header {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { self.ptr.as_mut() }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data follows the header inside the same allocation.
        unsafe { (self.ptr.as_ptr() as *mut u8).add(HEADER) }
    }

    pub fn key(&self) -> &[u8] {
        // SAFETY: key_len bytes of key follow the header.
        unsafe { std::slice::from_raw_parts(self.data(), self.header().key_len as usize) }
    }

    fn value_slice(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: val_len bytes of value follow the key.
        unsafe {
            std::slice::from_raw_parts(self.data().add(h.key_len as usize), h.val_len as usize)
        }
    }

    /// The string value; callers check `kind()` first (a collection reads as empty).
    pub fn value(&self) -> Value<'_> {
        match self.header().encoding {
            Encoding::Int => {
                let mut le = [0u8; 8];
                le.copy_from_slice(self.value_slice());
                Value::Int(i64::from_le_bytes(le))
            }
            Encoding::Embstr | Encoding::Raw => Value::Str(self.value_slice()),
            _ => Value::Str(&[]),
        }
    }

    /// The string value, or WRONGTYPE for a collection.
    pub fn string(&self) -> Result<Value<'_>, &'static str> {
        match self.header().encoding.is_string() {
            true => Ok(self.value()),
            false => Err(crate::errors::WRONGTYPE),
        }
    }

    pub fn kind(&self) -> Kind {
        self.object().map_or(Kind::String, ObjectRef::kind)
    }

    /// The collection this entry holds; `None` for a string.
    pub fn object(&self) -> Option<ObjectRef<'_>> {
        let bytes = self.value_slice();
        let boxed = || boxed_addr(bytes);
        // SAFETY: a boxed encoding's bytes are the address of a live box this entry owns.
        Some(unsafe {
            match self.header().encoding {
                Encoding::HashPack => ObjectRef::HashPack(bytes),
                Encoding::ListPack => ObjectRef::ListPack(bytes),
                Encoding::SetInts => ObjectRef::SetInts(bytes),
                Encoding::SetPack => ObjectRef::SetPack(bytes),
                Encoding::ZSetPack => ObjectRef::ZSetPack(bytes),
                Encoding::ZSetTree => ObjectRef::ZSetTree(&*(boxed() as *const _)),
                Encoding::Stream => ObjectRef::Stream(&*(boxed() as *const _)),
                Encoding::HashDense => ObjectRef::HashDense(&*(boxed() as *const _)),
                Encoding::SetDense => ObjectRef::SetDense(&*(boxed() as *const _)),
                Encoding::ListQuick => ObjectRef::ListQuick(&*(boxed() as *const _)),
                Encoding::Int | Encoding::Embstr | Encoding::Raw => return None,
            }
        })
    }

    /// Moves the collection out of the entry's bytes.
    ///
    /// # Safety
    /// For a boxed form the entry still holds the box's address afterwards: the caller must
    /// overwrite the value (`set_bytes`) before the entry is used or dropped.
    unsafe fn read_object(&self) -> Option<Object> {
        let encoding = self.header().encoding;
        let bytes = self.value_slice();
        let addr = || boxed_addr(bytes);
        // SAFETY: a boxed encoding's bytes are the address of a box this entry owns; the
        // caller's contract hands that ownership to the returned object.
        Some(unsafe {
            match encoding {
                Encoding::HashDense => Object::HashDense(Box::from_raw(addr() as *mut _)),
                Encoding::SetDense => Object::SetDense(Box::from_raw(addr() as *mut _)),
                Encoding::ListQuick => Object::ListQuick(Box::from_raw(addr() as *mut _)),
                Encoding::HashPack => Object::HashPack(bytes.to_vec()),
                Encoding::ListPack => Object::ListPack(bytes.to_vec()),
                Encoding::SetInts => Object::SetInts(bytes.to_vec()),
                Encoding::SetPack => Object::SetPack(bytes.to_vec()),
                Encoding::ZSetPack => Object::ZSetPack(bytes.to_vec()),
                Encoding::ZSetTree => Object::ZSetTree(Box::from_raw(addr() as *mut _)),
                Encoding::Stream => Object::Stream(Box::from_raw(addr() as *mut _)),
                Encoding::Int | Encoding::Embstr | Encoding::Raw => return None,
            }
        })
    }

    /// Takes the collection out of the entry, leaving an empty string in its place.
    fn take_object(&mut self) -> Option<Object> {
        // SAFETY: the value is overwritten right below.
        let object = unsafe { self.read_object() }?;
        self.set_bytes(&[], Encoding::Embstr);
        Some(object)
    }

    /// Runs `change` on the collection this entry holds, which may convert it to another
    /// form. `None` for a string. A large form stays in its box: only its address is
    /// rewritten, without reallocating the entry.
    pub fn update_object<R>(&mut self, change: impl FnOnce(&mut Object) -> R) -> Option<R> {
        // SAFETY: the value is overwritten below before anything else touches the entry.
        let mut object = unsafe { self.read_object() }?;
        let result = change(&mut object);
        let (stored, encoding) = object_bytes(object);
        self.set_bytes(stored.bytes(), encoding);
        Some(result)
    }

    /// This entry under another key, its value moved rather than copied (RENAME).
    pub fn renamed(mut self, key: &[u8]) -> Entry {
        let expire_at = self.expire_at().unwrap_or(0);
        match self.take_object() {
            Some(object) => Entry::new_object(key, object, expire_at, self.access()),
            None => Entry::new(key, self.value(), expire_at, self.access()),
        }
    }

    /// A copy of this entry under another key (COPY, cross-core RENAME).
    pub fn duplicate(&self, key: &[u8]) -> Entry {
        let expire_at = self.expire_at().unwrap_or(0);
        match self.object() {
            Some(object) => Entry::new_object(key, object.to_owned(), expire_at, self.access()),
            None => Entry::new(key, self.value(), expire_at, self.access()),
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.header().encoding
    }

    /// The deadline in Unix milliseconds, if the key has one.
    pub fn expire_at(&self) -> Option<u64> {
        match self.header().expire_at {
            0 => None,
            at => Some(at),
        }
    }

    pub fn set_expire_at(&mut self, at: Option<u64>) {
        self.header_mut().expire_at = at.unwrap_or(0);
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        let at = self.header().expire_at;
        at != 0 && at <= now_ms
    }

    pub fn access(&self) -> u32 {
        self.header().access
    }

    pub fn touch(&mut self, access: u32) {
        self.header_mut().access = access;
    }

    /// Replaces the value; `modified` marks a string changed in place (APPEND, SETRANGE),
    /// which Redis always reports as `raw`.
    pub fn set_value(&mut self, value: Value<'_>, modified: bool) {
        let mut int_buf = [0u8; 8];
        let (bytes, encoding) = value_bytes(&value, &mut int_buf, modified);
        drop(self.take_object());
        self.set_bytes(bytes, encoding);
    }

    fn set_bytes(&mut self, bytes: &[u8], encoding: Encoding) {
        let key_len = self.header().key_len as usize;
        let old = layout(key_len, self.header().val_len as usize);
        let new = layout(key_len, bytes.len());
        if new.size() != old.size() {
            // SAFETY: the block was allocated with `old`; realloc keeps the header and the key.
            let raw = unsafe { alloc::realloc(self.ptr.as_ptr() as *mut u8, old, new.size()) };
            let Some(ptr) = NonNull::new(raw as *mut Header) else {
                alloc::handle_alloc_error(new)
            };
            self.ptr = ptr;
        }
        let h = self.header_mut();
        h.val_len = bytes.len() as u32;
        h.encoding = encoding;
        // SAFETY: the block now has room for the new value after the key.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data().add(key_len), bytes.len());
        }
    }

    /// Reports a string as changed in place (`raw`), as Redis does after APPEND or SETRANGE.
    pub fn mark_raw(&mut self) {
        if self.header().encoding == Encoding::Embstr {
            self.header_mut().encoding = Encoding::Raw;
        }
    }

    /// Bytes this entry costs: its block as the allocator rounds it, plus its table slot.
    pub fn memory(&self) -> usize {
        let h = self.header();
        let external = self.object().map_or(0, ObjectRef::external_memory);
        size_class(HEADER + h.key_len as usize + h.val_len as usize) + TABLE_SLOT + external
    }
}

/// What one entry costs in its table: the pointer and a control byte, at the table's load.
const TABLE_SLOT: usize = 12;

/// The size jemalloc actually hands out for a request (its size classes: four per doubling).
pub fn size_class(size: usize) -> usize {
    if size <= 16 {
        return size.div_ceil(8) * 8;
    }
    if size <= 128 {
        return size.div_ceil(16) * 16;
    }
    let spacing = (size - 1).next_power_of_two() / 4;
    size.div_ceil(spacing) * spacing
}

/// The bytes stored for a value (integers as 8 little-endian bytes in `int_buf`).
fn value_bytes<'v>(
    value: &Value<'v>,
    int_buf: &'v mut [u8; 8],
    modified: bool,
) -> (&'v [u8], Encoding) {
    match *value {
        Value::Int(n) => {
            *int_buf = n.to_le_bytes();
            (&int_buf[..], Encoding::Int)
        }
        Value::Str(s) => {
            let encoding = if !modified && s.len() <= EMBSTR_MAX {
                Encoding::Embstr
            } else {
                Encoding::Raw
            };
            (s, encoding)
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.header().encoding.is_boxed() {
            drop(self.take_object());
        }
        let h = self.header();
        let layout = layout(h.key_len as usize, h.val_len as usize);
        // SAFETY: allocated with exactly this layout; the header is plain data.
        unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, layout) }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value())
            .field("expire_at", &self.expire_at())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_key_value_and_deadline() {
        let mut e = Entry::new(b"key", Value::Str(b"hello"), 0, 7);
        assert_eq!(e.key(), b"key");
        assert_eq!(e.value(), Value::Str(b"hello"));
        assert_eq!(e.encoding(), Encoding::Embstr);
        assert_eq!(e.expire_at(), None);
        e.set_expire_at(Some(1000));
        assert!(e.is_expired(1000) && !e.is_expired(999));
        assert_eq!(e.access(), 7);
    }

    #[test]
    fn values_change_size_and_encoding() {
        let mut e = Entry::new(b"k", encode_string(b"12345"), 0, 0);
        assert_eq!(e.value(), Value::Int(12345));
        assert_eq!(e.encoding(), Encoding::Int);
        let long = vec![b'x'; 1000];
        e.set_value(Value::Str(&long), false);
        assert_eq!(e.value(), Value::Str(&long[..]));
        assert_eq!(e.encoding(), Encoding::Raw);
        e.set_value(Value::Str(b"ab"), true);
        assert_eq!(
            (e.value(), e.encoding()),
            (Value::Str(&b"ab"[..]), Encoding::Raw)
        );
        assert_eq!(e.key(), b"k");
        e.set_value(Value::Int(-5), false);
        assert_eq!(e.value().to_vec(), b"-5");
    }

    #[test]
    fn only_canonical_integers_are_int_encoded() {
        assert_eq!(encode_string(b"-42"), Value::Int(-42));
        for s in [&b"042"[..], b"+1", b" 1", b"1.0", b"99999999999999999999"] {
            assert!(matches!(encode_string(s), Value::Str(_)), "{s:?}");
        }
    }

    #[test]
    fn size_classes_round_like_jemalloc() {
        assert_eq!(size_class(1), 8);
        assert_eq!(size_class(104), 112);
        assert_eq!(size_class(129), 160);
        assert_eq!(size_class(4097), 5120);
    }
}
