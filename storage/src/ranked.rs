//! The large form of sorted sets: members ordered by (score, member) in a B+ tree whose
//! branches count the elements below them, plus an index from member to its element.
//!
//! Counts make rank queries (ZRANK, ZRANGE by index, a uniform random pick) O(log n) like
//! Redis's skiplist spans, and a tree of wide nodes costs far less per element than skiplist
//! nodes: each element is one allocation `[score f64][member length u32][member]` that the
//! tree's leaves and the index both point to.

use crate::entry::size_class;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::alloc::{self, Layout};
use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::ptr::NonNull;

/// Elements per leaf and children per branch before a node splits.
const NODE_MAX: usize = 64;
/// A node this small merges with a neighbour when the two fit in one.
const NODE_MIN: usize = NODE_MAX / 4;
const HEADER: usize = 12;

/// One element's allocation, owned by the `Ranked` that holds it.
#[derive(Clone, Copy)]
struct Element(NonNull<u8>);

fn element_layout(member: usize) -> Layout {
    Layout::from_size_align(HEADER + member, 8).expect("member size overflows")
}

impl Element {
    fn new(member: &[u8], score: f64) -> Element {
        let layout = element_layout(member.len());
        // SAFETY: the layout is non-empty (it has the header).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block holds the header and the member; the score is 8-aligned.
        unsafe {
            (raw as *mut f64).write(score);
            (raw.add(8) as *mut u32).write(member.len() as u32);
            std::ptr::copy_nonoverlapping(member.as_ptr(), raw.add(HEADER), member.len());
        }
        Element(ptr)
    }

    fn score(self) -> f64 {
        // SAFETY: a live element's score is initialised and aligned.
        unsafe { *(self.0.as_ptr() as *const f64) }
    }

    fn set_score(self, score: f64) {
        // SAFETY: as for `score`; the owning `Ranked` is borrowed mutably.
        unsafe { *(self.0.as_ptr() as *mut f64) = score }
    }

    /// The member's bytes; the caller ties the lifetime to its borrow of the `Ranked`.
    fn member<'a>(self) -> &'a [u8] {
        // SAFETY: the length and the bytes were written at creation and never change.
        unsafe {
            let len = *(self.0.as_ptr().add(8) as *const u32) as usize;
            std::slice::from_raw_parts(self.0.as_ptr().add(HEADER), len)
        }
    }

    fn memory(self) -> usize {
        size_class(HEADER + self.member().len())
    }

    /// # Safety
    /// Nothing may use the element afterwards.
    unsafe fn free(self) {
        let layout = element_layout(self.member().len());
        // SAFETY: allocated with exactly this layout; the caller gives up every copy.
        unsafe { alloc::dealloc(self.0.as_ptr(), layout) }
    }

    /// Where this element sorts relative to (`score`, `member`).
    fn order(self, score: f64, member: &[u8]) -> Ordering {
        self.score()
            .partial_cmp(&score)
            .expect("scores are never NaN")
            .then_with(|| self.member().cmp(member))
    }
}

enum Node {
    Leaf(Vec<Element>),
    Branch(Vec<Child>),
}

struct Child {
    node: Box<Node>,
    /// Elements under this child.
    count: usize,
    /// Its first element: branches descend by comparing with it.
    first: Element,
}

impl Node {
    fn slots(&self) -> usize {
        match self {
            Node::Leaf(items) => items.len(),
            Node::Branch(children) => children.len(),
        }
    }

    fn first(&self) -> Element {
        match self {
            Node::Leaf(items) => items[0],
            Node::Branch(children) => children[0].first,
        }
    }

    fn child(node: Node, count: usize) -> Child {
        Child {
            first: node.first(),
            node: Box::new(node),
            count,
        }
    }
}

/// The child of a branch whose range holds (`score`, `member`).
fn child_for(children: &[Child], score: f64, member: &[u8]) -> usize {
    children
        .partition_point(|c| c.first.order(score, member) != Ordering::Greater)
        .saturating_sub(1)
}

/// Where a full node splits: appends and prepends leave the old node full, so ascending or
/// descending loads pack nodes tightly instead of half-filling them.
fn split_point(inserted_at: usize, len: usize) -> usize {
    if inserted_at + 1 == len {
        NODE_MAX
    } else if inserted_at == 0 {
        1
    } else {
        len / 2
    }
}

fn split_off<T>(items: &mut Vec<T>, at: usize) -> Vec<T> {
    let mut right = Vec::with_capacity(NODE_MAX + 1);
    right.extend(items.drain(at..));
    right
}

/// Node counts, for memory accounting.
#[derive(Clone, Copy, Default)]
struct Nodes {
    leaves: usize,
    branches: usize,
}

fn insert(node: &mut Node, element: Element, nodes: &mut Nodes) -> Option<Child> {
    let (score, member) = (element.score(), element.member());
    match node {
        Node::Leaf(items) => {
            let at = items.partition_point(|x| x.order(score, member) == Ordering::Less);
            items.insert(at, element);
            if items.len() <= NODE_MAX {
                return None;
            }
            let right = split_off(items, split_point(at, items.len()));
            nodes.leaves += 1;
            let count = right.len();
            Some(Node::child(Node::Leaf(right), count))
        }
        Node::Branch(children) => {
            let i = child_for(children, score, member);
            let split = insert(&mut children[i].node, element, nodes);
            children[i].count += 1;
            children[i].first = children[i].node.first();
            let right = split?;
            children[i].count -= right.count;
            children.insert(i + 1, right);
            if children.len() <= NODE_MAX {
                return None;
            }
            let right = split_off(children, split_point(i + 1, children.len()));
            nodes.branches += 1;
            let count = right.iter().map(|c| c.count).sum();
            Some(Node::child(Node::Branch(right), count))
        }
    }
}

fn remove(node: &mut Node, score: f64, member: &[u8], nodes: &mut Nodes) -> Option<Element> {
    match node {
        Node::Leaf(items) => {
            let at = items.partition_point(|x| x.order(score, member) == Ordering::Less);
            let found = items.get(at)?.order(score, member) == Ordering::Equal;
            found.then(|| items.remove(at))
        }
        Node::Branch(children) => {
            let i = child_for(children, score, member);
            let removed = remove(&mut children[i].node, score, member, nodes)?;
            children[i].count -= 1;
            if children[i].count == 0 {
                match *children.remove(i).node {
                    Node::Leaf(_) => nodes.leaves -= 1,
                    Node::Branch(_) => nodes.branches -= 1,
                }
            } else {
                children[i].first = children[i].node.first();
                merge_small(children, i, nodes);
            }
            Some(removed)
        }
    }
}

/// Merges child `i` into a neighbour when it has shrunk and the two fit in one node.
fn merge_small(children: &mut Vec<Child>, i: usize, nodes: &mut Nodes) {
    if children[i].node.slots() >= NODE_MIN || children.len() < 2 {
        return;
    }
    let left = if i + 1 < children.len() { i } else { i - 1 };
    if children[left].node.slots() + children[left + 1].node.slots() > NODE_MAX {
        return;
    }
    let right = children.remove(left + 1);
    let target = &mut children[left];
    target.count += right.count;
    match (&mut *target.node, *right.node) {
        (Node::Leaf(a), Node::Leaf(b)) => {
            a.extend(b);
            nodes.leaves -= 1;
        }
        (Node::Branch(a), Node::Branch(b)) => {
            a.extend(b);
            nodes.branches -= 1;
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}

/// How many elements satisfy `below`, which must hold for a prefix of the order.
fn count_below(node: &Node, below: &impl Fn(f64, &[u8]) -> bool) -> usize {
    let holds = |e: Element| below(e.score(), e.member());
    match node {
        Node::Leaf(items) => items.partition_point(|&e| holds(e)),
        Node::Branch(children) => match children.partition_point(|c| holds(c.first)) {
            0 => 0,
            i => {
                let before: usize = children[..i - 1].iter().map(|c| c.count).sum();
                before + count_below(&children[i - 1].node, below)
            }
        },
    }
}

/// Calls `f` on the elements with ranks in `from..to` of `node`, ascending or descending.
fn visit(node: &Node, from: usize, to: usize, rev: bool, f: &mut impl FnMut(Element)) {
    match node {
        Node::Leaf(items) => {
            let range = &items[from..to];
            if rev {
                range.iter().rev().for_each(|&e| f(e));
            } else {
                range.iter().for_each(|&e| f(e));
            }
        }
        Node::Branch(children) => {
            let mut spans = Vec::with_capacity(children.len());
            let mut start = 0;
            for child in children {
                let end = start + child.count;
                if end > from && start < to {
                    let (a, b) = (from.max(start) - start, to.min(end) - start);
                    spans.push((child, a, b));
                }
                start = end;
            }
            if rev {
                spans.reverse();
            }
            for (child, a, b) in spans {
                visit(&child.node, a, b, rev, f);
            }
        }
    }
}

/// A sorted set too large for a pack.
pub struct Ranked {
    root: Node,
    index: HashTable<Element>,
    hasher: DefaultHashBuilder,
    nodes: Nodes,
    /// Allocator bytes of the elements.
    element_bytes: usize,
}

// SAFETY: a Ranked owns its elements exclusively, like a Box owns its value.
unsafe impl Send for Ranked {}
unsafe impl Sync for Ranked {}

impl Default for Ranked {
    fn default() -> Ranked {
        Ranked {
            root: Node::Leaf(Vec::with_capacity(NODE_MAX + 1)),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            nodes: Nodes {
                leaves: 1,
                branches: 0,
            },
            element_bytes: 0,
        }
    }
}

impl Clone for Ranked {
    fn clone(&self) -> Ranked {
        let mut copy = Ranked::default();
        self.visit(0, self.len(), false, |member, score| {
            copy.insert(member, score);
        });
        copy
    }
}

impl Drop for Ranked {
    fn drop(&mut self) {
        // SAFETY: every element is in the index once; the tree and the index go with self.
        self.index.drain().for_each(|e| unsafe { e.free() });
    }
}

impl Ranked {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn find(&self, member: &[u8]) -> Option<Element> {
        let hash = self.hasher.hash_one(member);
        self.index.find(hash, |e| e.member() == member).copied()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(Element::score)
    }

    /// Sets `member`'s score; returns the score it had.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Some(element) = self.find(member) {
            let old = element.score();
            remove(&mut self.root, old, member, &mut self.nodes);
            self.collapse_root();
            element.set_score(score);
            self.insert_element(element);
            return Some(old);
        }
        let element = Element::new(member, score);
        let hasher = &self.hasher;
        self.index
            .insert_unique(hasher.hash_one(member), element, |e| {
                hasher.hash_one(e.member())
            });
        self.element_bytes += element.memory();
        self.insert_element(element);
        None
    }

    fn insert_element(&mut self, element: Element) {
        let Some(right) = insert(&mut self.root, element, &mut self.nodes) else {
            return;
        };
        let left_count = self.len_of_root();
        let old = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
        let mut children = Vec::with_capacity(NODE_MAX + 1);
        children.push(Node::child(old, left_count));
        children.push(right);
        self.root = Node::Branch(children);
        self.nodes.branches += 1;
    }

    /// A root branch left with one child gives way to it, so the tree stays shallow (and a
    /// root always has an element to name first while the set is not empty).
    fn collapse_root(&mut self) {
        if let Node::Branch(children) = &mut self.root {
            if children.len() <= 1 {
                self.root = match children.pop() {
                    Some(child) => *child.node,
                    None => {
                        self.nodes.leaves += 1;
                        Node::Leaf(Vec::with_capacity(NODE_MAX + 1))
                    }
                };
                self.nodes.branches -= 1;
            }
        }
    }

    /// Elements under the root node.
    fn len_of_root(&self) -> usize {
        match &self.root {
            Node::Leaf(items) => items.len(),
            Node::Branch(children) => children.iter().map(|c| c.count).sum(),
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let hash = self.hasher.hash_one(member);
        let element = self
            .index
            .find_entry(hash, |e| e.member() == member)
            .ok()?
            .remove()
            .0;
        let score = element.score();
        remove(&mut self.root, score, member, &mut self.nodes)
            .expect("indexed elements are in the tree");
        self.collapse_root();
        self.element_bytes -= element.memory();
        // SAFETY: the element is out of the index and the tree (no branch names it first).
        unsafe { element.free() };
        Some(score)
    }

    /// How many elements satisfy `below`, which must hold for a prefix of the order.
    pub fn count_below(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        count_below(&self.root, &below)
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_below(|s, m| {
            s.partial_cmp(&score)
                .expect("scores are never NaN")
                .then(m.cmp(member))
                == Ordering::Less
        }))
    }

    /// Calls `f` with the member and score of the elements ranked `from..to`, ascending (or
    /// descending with `rev`).
    pub fn visit<'a>(
        &'a self,
        from: usize,
        to: usize,
        rev: bool,
        mut f: impl FnMut(&'a [u8], f64),
    ) {
        let to = to.min(self.len());
        if from < to {
            visit(&self.root, from, to, rev, &mut |e| f(e.member(), e.score()));
        }
    }

    /// The element ranked `rank`.
    pub fn at(&self, rank: usize) -> (&[u8], f64) {
        let mut found = None;
        self.visit(rank, rank + 1, false, |m, s| found = Some((m, s)));
        found.expect("rank below the length")
    }

    /// Bytes this structure holds: nodes, index and elements.
    pub fn memory(&self) -> usize {
        let node = size_class(std::mem::size_of::<Node>());
        let leaf = node + size_class((NODE_MAX + 1) * std::mem::size_of::<Element>());
        let branch = node + size_class((NODE_MAX + 1) * std::mem::size_of::<Child>());
        self.nodes.leaves * leaf
            + self.nodes.branches * branch
            + self.index.capacity() * (std::mem::size_of::<Element>() + 1)
            + self.element_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::BTreeMap;

    fn expected(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut all: Vec<_> = model.iter().map(|(m, &s)| (m.clone(), s)).collect();
        all.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
        all
    }

    #[test]
    fn random_writes_keep_order_ranks_and_index_true() {
        let mut rng = Rng::new(7);
        let mut tree = Ranked::default();
        let mut model = BTreeMap::new();
        for round in 0..30_000 {
            let member = format!("m{}", rng.below(3000)).into_bytes();
            if rng.below(3) == 0 {
                assert_eq!(tree.remove(&member), model.remove(&member));
            } else {
                let score = rng.below(500) as f64 / 4.0;
                assert_eq!(tree.insert(&member, score), model.insert(member, score));
            }
            if round % 5000 == 0 || round == 29_999 {
                let all = expected(&model);
                let mut seen = Vec::new();
                tree.visit(0, tree.len(), false, |m, s| seen.push((m.to_vec(), s)));
                assert_eq!(seen, all);
                for (rank, (m, s)) in all.iter().enumerate() {
                    assert_eq!(tree.rank(m), Some(rank));
                    assert_eq!(tree.score(m), Some(*s));
                    assert_eq!(tree.at(rank).0, &m[..]);
                }
                let mut rev = Vec::new();
                tree.visit(10, 200, true, |m, _| rev.push(m.to_vec()));
                let want: Vec<_> = all[10.min(all.len())..200.min(all.len())]
                    .iter()
                    .rev()
                    .map(|p| p.0.clone())
                    .collect();
                assert_eq!(rev, want);
                let below = all.iter().filter(|p| p.1 < 60.0).count();
                assert_eq!(tree.count_below(|s, _| s < 60.0), below);
            }
        }
        let memory = tree.memory();
        let members: Vec<Vec<u8>> = model.keys().cloned().collect();
        members.iter().for_each(|m| _ = tree.remove(m));
        assert!(tree.is_empty() && tree.memory() < memory);
        assert_eq!(tree.nodes.branches, 0);
    }

    #[test]
    fn ascending_loads_fill_nodes() {
        let mut tree = Ranked::default();
        for i in 0..10_000 {
            tree.insert(format!("{i:05}").as_bytes(), i as f64);
        }
        assert!(tree.nodes.leaves <= 10_000 / NODE_MAX + 1);
        assert_eq!(tree.rank(b"05000"), Some(5000));
    }
}
