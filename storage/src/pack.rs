//! A packed sequence of byte strings in one buffer, walkable from either end: the compact
//! form of small hashes, lists and sets, and the chunks of large lists.
//!
//! Each element is `[length][bytes][length reversed]`, the length as LEB128. The trailing
//! copy lets a reader step backwards from the end (RPOP, LRANGE with negative indexes)
//! without scanning the buffer from the front.

/// Bytes needed to write `n` as LEB128.
fn len_size(n: usize) -> usize {
    let mut size = 1;
    let mut n = n >> 7;
    while n != 0 {
        size += 1;
        n >>= 7;
    }
    size
}

/// Bytes one element of `len` data bytes takes in a pack.
pub fn element_size(len: usize) -> usize {
    len + 2 * len_size(len)
}

fn write_len(out: &mut [u8], mut n: usize) {
    for byte in out.iter_mut() {
        *byte = (n & 0x7f) as u8 | if n >> 7 != 0 { 0x80 } else { 0 };
        n >>= 7;
    }
}

/// Writes `data` as one element into `out`, which is exactly `element_size(data.len())` long.
fn encode(out: &mut [u8], data: &[u8]) {
    let size = len_size(data.len());
    write_len(&mut out[..size], data.len());
    out[size..size + data.len()].copy_from_slice(data);
    let tail = &mut out[size + data.len()..];
    write_len(tail, data.len());
    tail.reverse();
}

/// Reads the element starting at byte `pos`: its data and the position after it.
pub fn read_at(pack: &[u8], pos: usize) -> (&[u8], usize) {
    let (mut len, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let byte = pack[i];
        len |= ((byte & 0x7f) as usize) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = i + len;
    (&pack[i..end], end + (i - pos))
}

/// Reads the element ending at byte `end`: its data and the position where it starts.
pub fn read_before(pack: &[u8], end: usize) -> (&[u8], usize) {
    let (mut len, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let byte = pack[i];
        len |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let size = end - i;
    let start = i - len - size;
    (&pack[i - len..i], start)
}

/// The elements from the front, each with its start position.
pub fn iter(pack: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
    Elements {
        pack,
        front: 0,
        back: pack.len(),
    }
}

/// The elements with their start positions, from the front.
pub fn positions(pack: &[u8]) -> impl Iterator<Item = (usize, &[u8])> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= pack.len() {
            return None;
        }
        let (data, next) = read_at(pack, pos);
        let start = pos;
        pos = next;
        Some((start, data))
    })
}

struct Elements<'a> {
    pack: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (data, next) = read_at(self.pack, self.front);
        self.front = next;
        Some(data)
    }
}

impl DoubleEndedIterator for Elements<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let (data, start) = read_before(self.pack, self.back);
        self.back = start;
        Some(data)
    }
}

/// Inserts `data` as an element starting at byte `pos` (the start of an element, or the end).
pub fn insert(pack: &mut Vec<u8>, pos: usize, data: &[u8]) {
    let size = element_size(data.len());
    pack.splice(pos..pos, std::iter::repeat_n(0, size));
    encode(&mut pack[pos..pos + size], data);
}

pub fn push_back(pack: &mut Vec<u8>, data: &[u8]) {
    insert(pack, pack.len(), data);
}

pub fn push_front(pack: &mut Vec<u8>, data: &[u8]) {
    insert(pack, 0, data);
}

/// Removes the element starting at byte `pos`.
pub fn remove(pack: &mut Vec<u8>, pos: usize) {
    let (_, end) = read_at(pack, pos);
    pack.drain(pos..end);
}

/// Replaces the element starting at byte `pos` with `data`.
pub fn replace(pack: &mut Vec<u8>, pos: usize, data: &[u8]) {
    let (_, end) = read_at(pack, pos);
    let size = element_size(data.len());
    pack.splice(pos..end, std::iter::repeat_n(0, size));
    encode(&mut pack[pos..pos + size], data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_both_ways_across_length_sizes() {
        let items: Vec<Vec<u8>> = [0usize, 1, 127, 128, 300, 20000]
            .iter()
            .map(|&n| vec![b'x'; n])
            .collect();
        let mut pack = Vec::new();
        items.iter().for_each(|i| push_back(&mut pack, i));
        let forward: Vec<&[u8]> = iter(&pack).collect();
        assert_eq!(forward, items.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let backward: Vec<&[u8]> = iter(&pack).rev().collect();
        assert_eq!(backward.len(), items.len());
        assert_eq!(backward[0].len(), 20000);
        let sizes: usize = items.iter().map(|i| element_size(i.len())).sum();
        assert_eq!(pack.len(), sizes);
    }

    #[test]
    fn inserts_removes_and_replaces_in_place() {
        let mut pack = Vec::new();
        push_back(&mut pack, b"b");
        push_front(&mut pack, b"a");
        push_back(&mut pack, b"c");
        let (pos, _) = positions(&pack).nth(1).unwrap();
        replace(&mut pack, pos, &[b'B'; 200]);
        assert_eq!(iter(&pack).nth(1).unwrap().len(), 200);
        remove(&mut pack, pos);
        assert_eq!(iter(&pack).collect::<Vec<_>>(), vec![&b"a"[..], b"c"]);
        let mut front_and_back = iter(&pack);
        assert_eq!(front_and_back.next(), Some(&b"a"[..]));
        assert_eq!(front_and_back.next_back(), Some(&b"c"[..]));
        assert_eq!(front_and_back.next(), None);
    }
}
