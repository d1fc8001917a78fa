//! Checking lists that clients only append to (Redis RPUSH) and read whole (LRANGE k 0
//! -1), looking for the anomalies Elle's list-append checker looks for, with every
//! operation a transaction of its own.
//!
//! Each element is appended to a key at most once, so a read tells exactly which appends
//! it saw and, by their positions, in which order they took effect. Hence, per key: every
//! read must be a prefix of the longest one (else two reads saw incompatible orders); no
//! read may return an element twice, one no append to that key tried to write, or one
//! whose append failed (an aborted read, G1a); and an acknowledged append must show in
//! every read invoked after the acknowledgement (else it was lost).
//!
//! Those orders in turn order the operations, as edges of a dependency graph: ww (an
//! append precedes the one after it in the key's order), wr (the append of the last
//! element a read saw precedes the read), rw (a read precedes the first append after what
//! it saw) and real time (an operation precedes those invoked after it completed). A
//! cycle means no order of the operations explains what they saw; one that needs real-time
//! edges only rules out orders that respect real time, that is strict serializability,
//! here the same as linearizability. Cycles are classified by their edges, with Adya's
//! names: G0 (ww edges only), G1c (ww and wr), G-single (exactly one rw), G-nonadjacent
//! (several rw, no two adjacent) and G2-item (the rest), each with a "-realtime" variant
//! when it has a real-time edge.
//!
//! Since each operation touches one key, ww, wr and rw edges stay within a key and follow
//! its order, so in these histories every cycle has a real-time edge: a stale read shows
//! as G-single-realtime. The plain kinds are still searched for first, as they are the
//! stronger finding and cost a pass over the component each.
//!
//! Cycles are found per strongly connected component of the graph. In each, the search
//! tries the weakest kinds first, without real-time edges and then with them: ww edges
//! only, then wr as well, then exactly one rw, then any. It reports the shortest cycle it
//! finds of the first kind that has one, so a component counts once however many cycles
//! it holds. In a very large component the
//! search gives up on start nodes after a million steps, so it may miss the shortest
//! cycle, or report a stronger kind than the component holds, but never a cycle that is
//! not there.
//!
//! Anomalies are reported per kind rather than per key, because cycles span keys through
//! real-time edges; each example names its key. As in the other checkers, an operation
//! completed "before" another only if its completion time is strictly earlier than the
//! other's invocation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::history::{Operation, Outcome, NEVER};
use crate::linearizable::{MalformedOperation, Validity};
use crate::report::check_by_key;

/// Examples shown per kind of anomaly: the earliest, enough to start from.
const EVIDENCE_LIMIT: usize = 8;

/// Edges a search may visit in one component before it stops trying further start
/// nodes: trying every one is quadratic in the component's size.
const SEARCH_STEPS: usize = 1_000_000;

/// How many anomalies of a kind were found, and the first few.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence<T> {
    pub count: usize,
    pub examples: Vec<T>,
}

impl<T> Evidence<T> {
    /// Earliest first; the sort is stable, so ties keep the order they were found in.
    fn of(mut all: Vec<Found<T>>) -> Self {
        let count = all.len();
        all.sort_by_key(|found| found.at);
        all.truncate(EVIDENCE_LIMIT);
        Evidence {
            count,
            examples: all.into_iter().map(|found| (found.build)()).collect(),
        }
    }
}

/// An anomaly as found, built with copies of its operations only if it is kept as an
/// example: reads return whole lists, and a broken history has many anomalies.
struct Found<'a, T> {
    /// When the operation that shows it was invoked.
    at: u64,
    build: Box<dyn FnOnce() -> T + 'a>,
}

impl<'a, T> Found<'a, T> {
    fn new(at: u64, build: impl FnOnce() -> T + 'a) -> Self {
        Found {
            at,
            build: Box::new(build),
        }
    }
}

/// A read that returned an element more than once, though it was appended once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuplicateElement {
    pub key: Option<String>,
    pub element: i64,
    pub occurrences: usize,
    pub read: Operation,
}

/// An element read from a key that no append to that key tried to write.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnexpectedElement {
    pub key: Option<String>,
    pub element: i64,
    /// The earliest invoked read that returned it.
    pub read: Operation,
}

/// An element whose append failed, returned by a read (G1a).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AbortedRead {
    pub key: Option<String>,
    pub element: i64,
    pub append: Operation,
    /// The earliest invoked read that returned it.
    pub read: Operation,
}

/// A read that is not a prefix of the key's longest read: no single order of the
/// appends explains both.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncompatibleOrder {
    pub key: Option<String>,
    pub read: Operation,
    pub longest: Operation,
}

/// An acknowledged append missing from a read invoked after the acknowledgement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostAppend {
    pub key: Option<String>,
    pub element: i64,
    pub append: Operation,
    /// The earliest invoked read that misses it.
    pub read: Operation,
}

/// Why one operation must precede another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// The second appended next after the first, in the key's order.
    Ww,
    /// The second read what the first appended.
    Wr,
    /// The first read the key before the second appended to it.
    Rw,
    /// The first completed before the second was invoked.
    Realtime,
}

impl EdgeKind {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

const ALL_KINDS: u8 =
    EdgeKind::Ww.bit() | EdgeKind::Wr.bit() | EdgeKind::Rw.bit() | EdgeKind::Realtime.bit();

/// Which kinds label an edge, preferred first: ones that make the weaker anomaly.
const LABEL_PREFERENCE: [EdgeKind; 3] = [EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Realtime];

/// Adya's classes of dependency cycles; "-realtime" ones need a real-time edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum CycleKind {
    #[serde(rename = "G0")]
    G0,
    #[serde(rename = "G1c")]
    G1c,
    #[serde(rename = "G-single")]
    GSingle,
    #[serde(rename = "G-nonadjacent")]
    GNonadjacent,
    #[serde(rename = "G2-item")]
    G2Item,
    #[serde(rename = "G0-realtime")]
    G0Realtime,
    #[serde(rename = "G1c-realtime")]
    G1cRealtime,
    #[serde(rename = "G-single-realtime")]
    GSingleRealtime,
    #[serde(rename = "G-nonadjacent-realtime")]
    GNonadjacentRealtime,
    #[serde(rename = "G2-item-realtime")]
    G2ItemRealtime,
}

/// A dependency cycle: `edges[i]` leads from `operations[i]` to the next operation, and
/// the last edge back to the first, which is the earliest invoked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cycle {
    pub operations: Vec<Operation>,
    pub edges: Vec<EdgeKind>,
}

/// The check of a whole list-append history; never unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListAppendReport {
    pub valid: Validity,
    pub keys_checked: usize,
    /// Reads that completed `ok`.
    pub reads_checked: usize,
    /// Appends of any outcome.
    pub appends_checked: usize,
    /// Counted per read and element.
    pub duplicates: Evidence<DuplicateElement>,
    /// Counted per key and element, like aborted reads.
    pub unexpected: Evidence<UnexpectedElement>,
    pub aborted_reads: Evidence<AbortedRead>,
    /// Counted per read that is not a prefix of its key's longest.
    pub incompatible_orders: Evidence<IncompatibleOrder>,
    pub lost_appends: Evidence<LostAppend>,
    /// The kinds found, each counted per strongly connected component.
    pub cycles: BTreeMap<CycleKind, Evidence<Cycle>>,
}

/// Checks each key as a list that starts empty and only grows, then all operations
/// together for dependency cycles. Every operation is validated first, so a malformed
/// history fails before anything is checked.
pub fn check_list_append(operations: &[Operation]) -> Result<ListAppendReport, MalformedOperation> {
    let per_key = check_by_key(operations, KeyHistory::record, check_key, |key| {
        key.anomalies.validity()
    })?;
    let keys_checked = per_key.keys.len();
    let mut graph = Graph::default();
    let mut anomalies = KeyAnomalies::default();
    let (mut reads_checked, mut appends_checked) = (0, 0);
    for mut key in per_key.keys {
        graph.add_key(&key);
        anomalies.absorb(&mut key.anomalies);
        reads_checked += key.reads.len();
        appends_checked += key.appends.len();
    }
    graph.add_realtime_edges();
    let cycles = graph.find_cycles();
    let valid = if per_key.valid == Validity::Valid && cycles.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    Ok(ListAppendReport {
        valid,
        keys_checked,
        reads_checked,
        appends_checked,
        duplicates: Evidence::of(anomalies.duplicates),
        unexpected: Evidence::of(anomalies.unexpected),
        aborted_reads: Evidence::of(anomalies.aborted_reads),
        incompatible_orders: Evidence::of(anomalies.incompatible_orders),
        lost_appends: Evidence::of(anomalies.lost_appends),
        cycles: cycles
            .into_iter()
            .map(|(kind, found)| (kind, Evidence::of(found)))
            .collect(),
    })
}

struct Read<'a> {
    source: &'a Operation,
    elements: Vec<i64>,
}

#[derive(Default)]
struct KeyHistory<'a> {
    appends: HashMap<i64, &'a Operation>,
    reads: Vec<Read<'a>>,
}

impl<'a> KeyHistory<'a> {
    fn record(&mut self, operation: &'a Operation) -> Result<(), MalformedOperation> {
        let malformed = |reason| MalformedOperation::of(operation, reason);
        match operation.function.as_str() {
            "append" => {
                let value = &operation.invoke_value;
                let element = value
                    .as_i64()
                    .ok_or_else(|| malformed(format!("append of {value}, not an integer")))?;
                // A repeated element would leave reads ambiguous about which append they saw.
                if self.appends.insert(element, operation).is_some() {
                    return Err(malformed(format!(
                        "appends {element} again, but elements must be unique per key"
                    )));
                }
            }
            "read" => {
                // Only an acknowledged read says what the list held.
                if operation.outcome != Outcome::Ok {
                    return Ok(());
                }
                let value = &operation.completion_value;
                let elements = value
                    .as_array()
                    .and_then(|values| values.iter().map(Value::as_i64).collect())
                    .ok_or_else(|| {
                        malformed(format!("read returned {value}, not an array of integers"))
                    })?;
                self.reads.push(Read {
                    source: operation,
                    elements,
                });
            }
            other => {
                return Err(malformed(format!(
                    "{other:?} is not a list-append operation"
                )))
            }
        }
        Ok(())
    }
}

/// A read with its repeats dropped, so that it compares with others as a version.
struct Version<'a> {
    source: &'a Operation,
    distinct: Vec<i64>,
    /// Whether it is a prefix of the key's longest read.
    is_prefix: bool,
}

#[derive(Default)]
struct KeyAnomalies<'a> {
    duplicates: Vec<Found<'a, DuplicateElement>>,
    unexpected: Vec<Found<'a, UnexpectedElement>>,
    aborted_reads: Vec<Found<'a, AbortedRead>>,
    incompatible_orders: Vec<Found<'a, IncompatibleOrder>>,
    lost_appends: Vec<Found<'a, LostAppend>>,
}

impl<'a> KeyAnomalies<'a> {
    fn validity(&self) -> Validity {
        let found = self.duplicates.len()
            + self.unexpected.len()
            + self.aborted_reads.len()
            + self.incompatible_orders.len()
            + self.lost_appends.len();
        if found == 0 {
            Validity::Valid
        } else {
            Validity::Invalid
        }
    }

    fn absorb(&mut self, other: &mut KeyAnomalies<'a>) {
        self.duplicates.append(&mut other.duplicates);
        self.unexpected.append(&mut other.unexpected);
        self.aborted_reads.append(&mut other.aborted_reads);
        self.incompatible_orders
            .append(&mut other.incompatible_orders);
        self.lost_appends.append(&mut other.lost_appends);
    }
}

struct KeyAnalysis<'a> {
    appends: HashMap<i64, &'a Operation>,
    /// Sorted by invocation.
    reads: Vec<Version<'a>>,
    /// The longest read without repeats: the order of the appends as far as reads show.
    longest: Vec<i64>,
    anomalies: KeyAnomalies<'a>,
}

impl<'a> KeyAnalysis<'a> {
    /// Whether all reads agree with the longest, so that it orders the appends.
    fn ordered(&self) -> bool {
        self.anomalies.incompatible_orders.is_empty()
    }

    /// The key's append of `element`, unless it failed.
    fn possible_append(&self, element: i64) -> Option<&'a Operation> {
        self.appends
            .get(&element)
            .copied()
            .filter(|append| append.outcome != Outcome::Fail)
    }
}

/// Looks for duplicated, unexpected and aborted elements, read by read in invocation
/// order so that each element is reported at the earliest read that shows it. Reads
/// mostly repeat or extend earlier ones, so the elements of the longest clean read so far
/// are looked at once rather than again in every read that shares them.
struct ElementCheck<'h, 'a> {
    key: Option<&'a str>,
    appends: &'h HashMap<i64, &'a Operation>,
    anomalies: KeyAnomalies<'a>,
    /// Elements already reported as unexpected or aborted.
    reported: HashSet<i64>,
    /// A read without duplicates whose elements have all been looked at; a read that
    /// extends it without repeating any element replaces it.
    clean: Vec<i64>,
    clean_set: HashSet<i64>,
}

impl<'a> ElementCheck<'_, 'a> {
    /// The read's elements with repeats dropped, keeping first occurrences.
    fn distinct(&mut self, read: &'a Operation, elements: Vec<i64>) -> Vec<i64> {
        let shared = elements
            .iter()
            .zip(&self.clean)
            .take_while(|(one, other)| one == other)
            .count();
        if shared == elements.len() {
            return elements;
        }
        if shared == self.clean.len() {
            let added = &elements[shared..];
            let mut fresh = HashSet::with_capacity(added.len());
            let clean_set = &self.clean_set;
            if added
                .iter()
                .all(|&element| !clean_set.contains(&element) && fresh.insert(element))
            {
                for &element in added {
                    self.check_writer(read, element);
                }
                self.clean.extend_from_slice(added);
                self.clean_set.extend(fresh);
                return elements;
            }
        }
        self.check_all(read, &elements)
    }

    fn check_all(&mut self, read: &'a Operation, elements: &[i64]) -> Vec<i64> {
        let mut occurrences: HashMap<i64, usize> = HashMap::new();
        let mut distinct = Vec::with_capacity(elements.len());
        for &element in elements {
            let seen = occurrences.entry(element).or_insert(0);
            *seen += 1;
            if *seen == 1 {
                distinct.push(element);
            }
        }
        for &element in &distinct {
            let count = occurrences[&element];
            if count > 1 {
                let key = self.key;
                let found = Found::new(read.invoke_time, move || DuplicateElement {
                    key: key.map(str::to_string),
                    element,
                    occurrences: count,
                    read: read.clone(),
                });
                self.anomalies.duplicates.push(found);
            }
            self.check_writer(read, element);
        }
        distinct
    }

    /// Reports the element if no append to the key wrote it or its append failed.
    fn check_writer(&mut self, read: &'a Operation, element: i64) {
        let append = self.appends.get(&element).copied();
        let misplaced = !matches!(append, Some(append) if append.outcome != Outcome::Fail);
        if !misplaced || !self.reported.insert(element) {
            return;
        }
        let key = self.key.map(str::to_string);
        match append {
            Some(append) => {
                let found = Found::new(read.invoke_time, move || AbortedRead {
                    key,
                    element,
                    append: append.clone(),
                    read: read.clone(),
                });
                self.anomalies.aborted_reads.push(found);
            }
            None => {
                let found = Found::new(read.invoke_time, move || UnexpectedElement {
                    key,
                    element,
                    read: read.clone(),
                });
                self.anomalies.unexpected.push(found);
            }
        }
    }
}

fn check_key<'a>(key: Option<&'a str>, mut history: KeyHistory<'a>) -> KeyAnalysis<'a> {
    history
        .reads
        .sort_by_key(|read| (read.source.invoke_time, read.source.process));
    let mut elements = ElementCheck {
        key,
        appends: &history.appends,
        anomalies: KeyAnomalies::default(),
        reported: HashSet::new(),
        clean: Vec::new(),
        clean_set: HashSet::new(),
    };
    let mut reads: Vec<Version> = history
        .reads
        .into_iter()
        .map(|read| Version {
            source: read.source,
            distinct: elements.distinct(read.source, read.elements),
            is_prefix: false,
        })
        .collect();
    let mut anomalies = elements.anomalies;

    // The earliest invoked of the longest reads.
    let longest_index = reads
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, read)| read.distinct.len())
        .map(|(index, _)| index);
    let longest = longest_index.map_or_else(Vec::new, |index| reads[index].distinct.clone());
    for read in &mut reads {
        read.is_prefix = longest.starts_with(&read.distinct);
    }
    if let Some(index) = longest_index {
        let longest_read = reads[index].source;
        anomalies.incompatible_orders = reads
            .iter()
            .filter(|read| !read.is_prefix)
            .map(|read| {
                let read = read.source;
                Found::new(read.invoke_time, move || IncompatibleOrder {
                    key: key.map(str::to_string),
                    read: read.clone(),
                    longest: longest_read.clone(),
                })
            })
            .collect();
    }
    anomalies.lost_appends = lost_appends(key, &history.appends, &reads, &longest);
    KeyAnalysis {
        appends: history.appends,
        reads,
        longest,
        anomalies,
    }
}

/// Finds, for each acknowledged append, the earliest read invoked after the
/// acknowledgement that misses it. A read that is a prefix of the longest contains
/// exactly the elements before its length, so taking the appends in order of their
/// element's position in the longest read, the prefix reads missing the element only
/// accumulate; other reads are looked into one by one.
fn lost_appends<'a>(
    key: Option<&'a str>,
    appends: &HashMap<i64, &'a Operation>,
    reads: &[Version<'a>],
    longest: &[i64],
) -> Vec<Found<'a, LostAppend>> {
    let position: HashMap<i64, usize> = longest
        .iter()
        .enumerate()
        .map(|(index, &element)| (element, index))
        .collect();
    let mut acknowledged: Vec<(usize, i64, &'a Operation)> = appends
        .iter()
        .filter(|(_, append)| append.outcome == Outcome::Ok)
        .map(|(&element, &append)| {
            // Not in the longest read, so missing from every prefix of it.
            let at = position.get(&element).copied().unwrap_or(usize::MAX);
            (at, element, append)
        })
        .collect();
    acknowledged.sort_unstable_by_key(|&(at, element, _)| (at, element));
    let mut prefixes_by_length: Vec<(usize, usize)> = reads
        .iter()
        .enumerate()
        .filter(|(_, read)| read.is_prefix)
        .map(|(index, read)| (read.distinct.len(), index))
        .collect();
    prefixes_by_length.sort_unstable();
    let others: Vec<(usize, HashSet<i64>)> = reads
        .iter()
        .enumerate()
        .filter(|(_, read)| !read.is_prefix)
        .map(|(index, read)| (index, read.distinct.iter().copied().collect()))
        .collect();

    let mut lost = Vec::new();
    let mut missing = BTreeSet::new();
    let mut next_prefix = 0;
    for (at, element, append) in acknowledged {
        while let Some(&(length, index)) = prefixes_by_length.get(next_prefix) {
            if length > at {
                break;
            }
            missing.insert(index);
            next_prefix += 1;
        }
        let first = reads.partition_point(|read| read.source.invoke_time <= append.complete_time);
        let among_prefixes = missing.range(first..).next().copied();
        let among_others = others
            .iter()
            .find(|(index, contents)| *index >= first && !contents.contains(&element))
            .map(|(index, _)| *index);
        let earliest = match (among_prefixes, among_others) {
            (Some(one), Some(other)) => Some(one.min(other)),
            (one, other) => one.or(other),
        };
        if let Some(index) = earliest {
            let read = reads[index].source;
            lost.push(Found::new(read.invoke_time, move || LostAppend {
                key: key.map(str::to_string),
                element,
                append: append.clone(),
                read: read.clone(),
            }));
        }
    }
    lost
}

/// Outgoing edges of each node: (target, bits of the kinds that connect them).
type Edges = Vec<Vec<(usize, u8)>>;

/// The dependency graph over ok reads and the appends, not failed, that reads saw.
#[derive(Default)]
struct Graph<'a> {
    operations: Vec<&'a Operation>,
    edges: Edges,
}

impl<'a> Graph<'a> {
    fn add_node(&mut self, operation: &'a Operation) -> usize {
        self.operations.push(operation);
        self.edges.push(Vec::new());
        self.operations.len() - 1
    }

    fn add_edge(&mut self, from: usize, to: usize, kind: EdgeKind) {
        self.edges[from].push((to, kind.bit()));
    }

    fn append_node(
        &mut self,
        key: &KeyAnalysis<'a>,
        nodes: &mut HashMap<i64, usize>,
        element: i64,
    ) -> Option<usize> {
        if let Some(&node) = nodes.get(&element) {
            return Some(node);
        }
        let node = self.add_node(key.possible_append(element)?);
        nodes.insert(element, node);
        Some(node)
    }

    /// Adds the key's reads and the ww, wr and rw edges its reads show. A key whose reads
    /// disagree has no known order, so only wr edges, which each read shows itself, are
    /// added for it.
    fn add_key(&mut self, key: &KeyAnalysis<'a>) {
        let mut append_nodes = HashMap::new();
        // (position in the longest read, node) of each append in it that did not fail.
        let mut chain: Vec<(usize, usize)> = Vec::new();
        if key.ordered() {
            for (position, &element) in key.longest.iter().enumerate() {
                if let Some(node) = self.append_node(key, &mut append_nodes, element) {
                    chain.push((position, node));
                }
            }
            for pair in chain.windows(2) {
                self.add_edge(pair[0].1, pair[1].1, EdgeKind::Ww);
            }
        }
        for read in &key.reads {
            let node = self.add_node(read.source);
            let last_written = read
                .distinct
                .iter()
                .rev()
                .find_map(|&element| self.append_node(key, &mut append_nodes, element));
            if let Some(writer) = last_written {
                self.add_edge(writer, node, EdgeKind::Wr);
            }
            let after = chain.partition_point(|&(position, _)| position < read.distinct.len());
            if let Some(&(_, next_writer)) = chain.get(after) {
                self.add_edge(node, next_writer, EdgeKind::Rw);
            }
        }
    }

    /// Links each operation to those invoked after it completed, sparsely: an operation
    /// stays linked to new invocations only until one invoked after its completion itself
    /// completes, which then links them in its place. Every real-time precedence is thus
    /// a path, and an operation has edges to about as many others as run concurrently.
    fn add_realtime_edges(&mut self) {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * self.operations.len());
        for (node, operation) in self.operations.iter().enumerate() {
            events.push((operation.invoke_time, false, node));
            if operation.complete_time != NEVER {
                events.push((operation.complete_time, true, node));
            }
        }
        // Invocations before completions at equal times: such operations are concurrent.
        events.sort_unstable();
        let mut frontier: Vec<usize> = Vec::new();
        for (_, is_completion, node) in events {
            if is_completion {
                let invoked = self.operations[node].invoke_time;
                let operations = &self.operations;
                frontier.retain(|&earlier| operations[earlier].complete_time >= invoked);
                frontier.push(node);
            } else {
                for &earlier in &frontier {
                    self.add_edge(earlier, node, EdgeKind::Realtime);
                }
            }
        }
    }

    fn find_cycles(mut self) -> BTreeMap<CycleKind, Vec<Found<'a, Cycle>>> {
        for targets in &mut self.edges {
            merge_parallel_edges(targets);
        }
        let mut cycles: BTreeMap<CycleKind, Vec<Found<Cycle>>> = BTreeMap::new();
        let mut local_index = vec![usize::MAX; self.operations.len()];
        for component in components(&self.edges, ALL_KINDS) {
            for (local, &node) in component.iter().enumerate() {
                local_index[node] = local;
            }
            let local_edges: Edges = component
                .iter()
                .map(|&node| {
                    self.edges[node]
                        .iter()
                        .filter(|&&(target, _)| local_index[target] != usize::MAX)
                        .map(|&(target, kinds)| (local_index[target], kinds))
                        .collect()
                })
                .collect();
            for &node in &component {
                local_index[node] = usize::MAX;
            }
            let Some(steps) = weakest_cycle(&local_edges) else {
                continue;
            };
            let mut steps: Vec<(&'a Operation, EdgeKind)> = steps
                .into_iter()
                .map(|(local, kind)| (self.operations[component[local]], kind))
                .collect();
            let first = (0..steps.len())
                .min_by_key(|&index| (steps[index].0.invoke_time, steps[index].0.process))
                .unwrap_or(0);
            steps.rotate_left(first);
            let edges: Vec<EdgeKind> = steps.iter().map(|&(_, kind)| kind).collect();
            let kind = classify(&edges);
            let at = steps
                .first()
                .map_or(0, |(operation, _)| operation.invoke_time);
            let found = Found::new(at, move || Cycle {
                operations: steps
                    .into_iter()
                    .map(|(operation, _)| operation.clone())
                    .collect(),
                edges,
            });
            cycles.entry(kind).or_default().push(found);
        }
        cycles
    }
}

/// The shortest cycle of the weakest kind found among strongly connected nodes.
fn weakest_cycle(edges: &Edges) -> Option<Vec<(usize, EdgeKind)>> {
    STAGES.iter().find_map(|stage| shortest_cycle(edges, stage))
}

/// One entry per target, with the kinds of all edges to it.
fn merge_parallel_edges(targets: &mut Vec<(usize, u8)>) {
    targets.sort_unstable();
    targets.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 |= later.1;
        }
        same
    });
}

/// Tarjan's strongly connected components of more than one node, over the edges with a
/// kind in `kinds`; iterative, so that long chains cannot overflow the stack.
fn components(edges: &Edges, kinds: u8) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let nodes = edges.len();
    let mut index = vec![UNVISITED; nodes];
    let mut lowlink = vec![0; nodes];
    let mut on_stack = vec![false; nodes];
    let mut stack = Vec::new();
    let mut found = Vec::new();
    let mut next_index = 0;
    // (node, how many of its edges were followed)
    let mut calls: Vec<(usize, usize)> = Vec::new();
    for root in 0..nodes {
        if index[root] != UNVISITED {
            continue;
        }
        index[root] = next_index;
        lowlink[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));
        while let Some(&mut (node, ref mut followed)) = calls.last_mut() {
            if let Some(&(target, edge_kinds)) = edges[node].get(*followed) {
                *followed += 1;
                if edge_kinds & kinds == 0 {
                    continue;
                }
                if index[target] == UNVISITED {
                    index[target] = next_index;
                    lowlink[target] = next_index;
                    next_index += 1;
                    stack.push(target);
                    on_stack[target] = true;
                    calls.push((target, 0));
                } else if on_stack[target] {
                    lowlink[node] = lowlink[node].min(index[target]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(caller, _)) = calls.last() {
                lowlink[caller] = lowlink[caller].min(lowlink[node]);
            }
            if lowlink[node] != index[node] {
                continue;
            }
            let mut component = Vec::new();
            while let Some(member) = stack.pop() {
                on_stack[member] = false;
                component.push(member);
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                found.push(component);
            }
        }
    }
    found
}

/// One pass of the search: the edge kinds it may use, and whether its cycles must have
/// exactly one rw edge.
struct Stage {
    kinds: u8,
    one_rw: bool,
}

const NOT_REALTIME: u8 = ALL_KINDS & !EdgeKind::Realtime.bit();

/// Weakest kinds first; each stage runs only where the earlier ones found no cycle. The
/// kind is then read off the cycle found, so it is right even where a stage gave up.
const STAGES: [Stage; 8] = [
    Stage {
        kinds: EdgeKind::Ww.bit(),
        one_rw: false,
    },
    Stage {
        kinds: EdgeKind::Ww.bit() | EdgeKind::Wr.bit(),
        one_rw: false,
    },
    Stage {
        kinds: NOT_REALTIME,
        one_rw: true,
    },
    Stage {
        kinds: NOT_REALTIME,
        one_rw: false,
    },
    Stage {
        kinds: EdgeKind::Ww.bit() | EdgeKind::Realtime.bit(),
        one_rw: false,
    },
    Stage {
        kinds: ALL_KINDS & !EdgeKind::Rw.bit(),
        one_rw: false,
    },
    Stage {
        kinds: ALL_KINDS,
        one_rw: true,
    },
    Stage {
        kinds: ALL_KINDS,
        one_rw: false,
    },
];

/// The shortest cycle the stage allows through any of the nodes tried, as (node, kind of
/// the edge to the next node). Without the rw limit, nodes on no cycle of the stage's
/// edges are skipped, so a cycle is found whenever one exists; with it, every such cycle
/// passes through an rw edge's target, and those are tried until [`SEARCH_STEPS`] (so it
/// may miss one).
fn shortest_cycle(edges: &Edges, stage: &Stage) -> Option<Vec<(usize, EdgeKind)>> {
    let starts: Vec<usize> = if stage.one_rw {
        let rw = EdgeKind::Rw.bit() & stage.kinds;
        let targets: BTreeSet<usize> = edges
            .iter()
            .flatten()
            .filter(|&&(_, kinds)| kinds & rw != 0)
            .map(|&(target, _)| target)
            .collect();
        targets.into_iter().collect()
    } else {
        let mut on_cycles: Vec<usize> = components(edges, stage.kinds).concat();
        on_cycles.sort_unstable();
        on_cycles
    };
    let mut parent = vec![None; edges.len() * if stage.one_rw { 2 } else { 1 }];
    let mut steps = 0;
    let mut best: Option<Vec<(usize, EdgeKind)>> = None;
    for start in starts {
        // No self-loops exist, so two edges is as short as a cycle gets.
        if steps >= SEARCH_STEPS || best.as_ref().is_some_and(|cycle| cycle.len() <= 2) {
            break;
        }
        let Some(cycle) = cycle_through(edges, start, stage, &mut parent, &mut steps) else {
            continue;
        };
        if best.as_ref().is_some_and(|best| best.len() <= cycle.len()) {
            continue;
        }
        best = Some(cycle);
    }
    best
}

/// Breadth-first search for the shortest cycle back to `start`. With the rw limit, a
/// node is visited once before and once after the cycle's rw edge. `parent` holds, for
/// each state (node * layers + rw edges used), the state before it and the edge's kind;
/// it is left empty again, so that one allocation serves every start.
fn cycle_through(
    edges: &Edges,
    start: usize,
    stage: &Stage,
    parent: &mut [Option<(usize, EdgeKind)>],
    steps: &mut usize,
) -> Option<Vec<(usize, EdgeKind)>> {
    let layers = if stage.one_rw { 2 } else { 1 };
    let mut reached = Vec::new();
    let mut queue = VecDeque::from([(start, 0)]);
    let mut cycle = None;
    'search: while let Some((node, used)) = queue.pop_front() {
        let state = node * layers + used;
        for &(target, kinds) in &edges[node] {
            *steps += 1;
            for (kind, next_used) in transitions(kinds & stage.kinds, used, stage.one_rw)
                .into_iter()
                .flatten()
            {
                if target == start {
                    let mut found = vec![(node, kind)];
                    let mut current = state;
                    while let Some((previous, kind)) = parent[current] {
                        found.push((previous / layers, kind));
                        current = previous;
                    }
                    found.reverse();
                    cycle = Some(found);
                    break 'search;
                }
                let next = target * layers + next_used;
                if parent[next].is_none() {
                    parent[next] = Some((state, kind));
                    reached.push(next);
                    queue.push_back((target, next_used));
                }
            }
        }
    }
    for state in reached {
        parent[state] = None;
    }
    cycle
}

/// The ways to follow an edge with these kinds, having used `used` rw edges: as its
/// preferred other kind, and as rw where that is allowed and needed.
fn transitions(kinds: u8, used: usize, one_rw: bool) -> [Option<(EdgeKind, usize)>; 2] {
    let other = LABEL_PREFERENCE
        .into_iter()
        .find(|kind| kinds & kind.bit() != 0);
    let rw_allowed =
        kinds & EdgeKind::Rw.bit() != 0 && if one_rw { used == 0 } else { other.is_none() };
    [
        other.map(|kind| (kind, used)),
        rw_allowed.then_some((EdgeKind::Rw, used + usize::from(one_rw))),
    ]
}

fn classify(edges: &[EdgeKind]) -> CycleKind {
    let rw = edges.iter().filter(|&&kind| kind == EdgeKind::Rw).count();
    let wr = edges.contains(&EdgeKind::Wr);
    let realtime = edges.contains(&EdgeKind::Realtime);
    let adjacent_rw = (0..edges.len()).any(|index| {
        edges[index] == EdgeKind::Rw && edges[(index + 1) % edges.len()] == EdgeKind::Rw
    });
    match (rw, wr, adjacent_rw, realtime) {
        (0, false, _, false) => CycleKind::G0,
        (0, false, _, true) => CycleKind::G0Realtime,
        (0, true, _, false) => CycleKind::G1c,
        (0, true, _, true) => CycleKind::G1cRealtime,
        (1, _, _, false) => CycleKind::GSingle,
        (1, _, _, true) => CycleKind::GSingleRealtime,
        (_, _, false, false) => CycleKind::GNonadjacent,
        (_, _, false, true) => CycleKind::GNonadjacentRealtime,
        (_, _, true, false) => CycleKind::G2Item,
        (_, _, true, true) => CycleKind::G2ItemRealtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{failed, indeterminate, on_key, operation, Generator};
    use serde_json::json;
    use EdgeKind::{Realtime, Rw, Wr, Ww};

    fn append(process: u64, element: i64, start: u64, end: u64) -> Operation {
        operation(process, "append", json!(element), Value::Null, start, end)
    }

    fn read(process: u64, list: &[i64], start: u64, end: u64) -> Operation {
        operation(process, "read", Value::Null, json!(list), start, end)
    }

    fn check(history: &[Operation]) -> ListAppendReport {
        check_list_append(history).unwrap()
    }

    /// Counts of duplicates, unexpected, aborted reads, incompatible orders, lost appends.
    fn key_counts(report: &ListAppendReport) -> [usize; 5] {
        [
            report.duplicates.count,
            report.unexpected.count,
            report.aborted_reads.count,
            report.incompatible_orders.count,
            report.lost_appends.count,
        ]
    }

    fn cycle_kinds(report: &ListAppendReport) -> Vec<(CycleKind, usize)> {
        report
            .cycles
            .iter()
            .map(|(kind, found)| (*kind, found.count))
            .collect()
    }

    /// The only cycle found, which must be of `kind`.
    fn only_cycle(report: &ListAppendReport, kind: CycleKind) -> &Cycle {
        assert_eq!(cycle_kinds(report), vec![(kind, 1)], "{report:?}");
        &report.cycles[&kind].examples[0]
    }

    #[test]
    fn valid_concurrent_history() {
        let history = [
            on_key(append(0, 1, 0, 10), "x"),
            on_key(append(1, 2, 1, 5), "x"),
            // Concurrent with both appends, which took effect as [2, 1].
            on_key(read(2, &[], 0, 2), "x"),
            on_key(read(3, &[2], 3, 6), "x"),
            indeterminate(on_key(append(1, 3, 6, 7), "x")),
            failed(on_key(append(4, 4, 7, 8), "x")),
            on_key(read(2, &[2, 1], 11, 12), "x"),
            on_key(append(5, 10, 0, 1), "y"),
            indeterminate(on_key(append(6, 11, 2, 3), "y")),
            on_key(read(7, &[10], 2, 3), "y"),
            on_key(read(7, &[10, 11], 4, 5), "y"),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!(key_counts(&report), [0; 5]);
        assert!(report.cycles.is_empty());
        let sizes = [
            report.keys_checked,
            report.reads_checked,
            report.appends_checked,
        ];
        assert_eq!(sizes, [2, 5, 6]);
    }

    #[test]
    fn lost_append_is_reported_with_the_earliest_read_missing_it() {
        let history = [
            append(0, 1, 0, 1),
            append(1, 2, 2, 3),
            // Invoked before the acknowledgement, or at its very time, so they may miss 2.
            read(2, &[1], 2, 8),
            read(4, &[1], 3, 12),
            read(3, &[1], 4, 5),
            read(3, &[1], 9, 10),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(key_counts(&report), [0, 0, 0, 0, 1]);
        assert_eq!(
            report.lost_appends.examples,
            vec![LostAppend {
                key: None,
                element: 2,
                append: history[1].clone(),
                read: history[4].clone(),
            }]
        );
        // No read saw 2, so no dependency places it.
        assert!(report.cycles.is_empty());

        // Reads that disagree with the longest are searched too.
        let disagreeing = [
            append(0, 1, 0, 1),
            append(1, 2, 2, 5),
            append(2, 3, 2, 20),
            read(3, &[1, 2], 6, 7),
            read(3, &[1, 3], 8, 9),
            read(3, &[1], 10, 11),
        ];
        let report = check(&disagreeing);
        assert_eq!(key_counts(&report), [0, 0, 0, 1, 1]);
        assert_eq!(report.lost_appends.examples[0].read, disagreeing[4]);
    }

    #[test]
    fn incompatible_orders_report_both_reads() {
        let history = [
            on_key(append(0, 1, 0, 10), "k"),
            on_key(append(1, 2, 0, 10), "k"),
            on_key(append(2, 3, 0, 10), "k"),
            on_key(read(3, &[1], 1, 2), "k"),
            on_key(read(3, &[1, 2], 3, 4), "k"),
            on_key(read(4, &[1, 3], 3, 4), "k"),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(key_counts(&report), [0, 0, 0, 1, 0]);
        assert_eq!(
            report.incompatible_orders.examples,
            vec![IncompatibleOrder {
                key: Some("k".to_string()),
                read: history[5].clone(),
                longest: history[4].clone(),
            }]
        );
        assert!(report.cycles.is_empty());
    }

    #[test]
    fn duplicate_elements_are_reported_per_read_and_element() {
        let history = [
            append(0, 1, 0, 1),
            append(0, 2, 2, 3),
            read(1, &[1], 2, 3),
            // Repeats an element of the read before, then its own.
            read(1, &[1, 2, 1], 4, 5),
            read(1, &[1, 2, 1, 2, 2], 6, 7),
            read(1, &[1, 2], 8, 9),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        // Without repeats the reads are prefixes of [1, 2], so nothing else is wrong.
        assert_eq!(key_counts(&report), [3, 0, 0, 0, 0]);
        assert!(report.cycles.is_empty());
        let found: Vec<(i64, usize)> = report
            .duplicates
            .examples
            .iter()
            .map(|duplicate| (duplicate.element, duplicate.occurrences))
            .collect();
        assert_eq!(found, vec![(1, 2), (1, 2), (2, 3)]);
        assert_eq!(report.duplicates.examples[0].read, history[3]);
        assert_eq!(report.duplicates.examples[2].read, history[4]);
    }

    #[test]
    fn element_no_append_wrote_is_unexpected() {
        let history = [
            on_key(append(0, 1, 0, 1), "x"),
            on_key(append(0, 5, 0, 1), "y"),
            on_key(read(1, &[1, 7], 2, 3), "x"),
            // 5 was appended, but to another key.
            on_key(read(1, &[1, 7, 5], 4, 5), "x"),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(key_counts(&report), [0, 2, 0, 0, 0]);
        assert_eq!(
            report.unexpected.examples,
            vec![
                UnexpectedElement {
                    key: Some("x".to_string()),
                    element: 7,
                    read: history[2].clone(),
                },
                UnexpectedElement {
                    key: Some("x".to_string()),
                    element: 5,
                    read: history[3].clone(),
                },
            ]
        );
    }

    #[test]
    fn failed_append_that_shows_up_is_an_aborted_read() {
        let not_shown = [
            append(0, 1, 0, 1),
            failed(append(1, 2, 2, 3)),
            read(0, &[1], 4, 5),
        ];
        assert_eq!(check(&not_shown).valid, Validity::Valid);

        let shown = [
            append(0, 1, 0, 1),
            failed(append(1, 2, 2, 3)),
            read(0, &[1, 2], 4, 5),
            read(0, &[1, 2], 6, 7),
        ];
        let report = check(&shown);
        assert_eq!(report.valid, Validity::Invalid);
        // Counted once, at the first read that shows it.
        assert_eq!(key_counts(&report), [0, 0, 1, 0, 0]);
        assert_eq!(
            report.aborted_reads.examples,
            vec![AbortedRead {
                key: None,
                element: 2,
                append: shown[1].clone(),
                read: shown[2].clone(),
            }]
        );
        assert!(report.cycles.is_empty());
    }

    #[test]
    fn indeterminate_append_may_show_up_or_not() {
        let shown_late = [
            append(0, 1, 0, 1),
            indeterminate(append(1, 2, 2, 3)),
            read(0, &[1], 4, 5),
            read(0, &[1, 2], 6, 7),
        ];
        let report = check(&shown_late);
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        let never_shown = [indeterminate(append(1, 2, 2, 3)), read(0, &[], 4, 5)];
        assert_eq!(check(&never_shown).valid, Validity::Valid);
    }

    #[test]
    fn stale_read_is_g_single_realtime() {
        // The second read misses 1, which the first read, completed before it was
        // invoked, saw; the append was not acknowledged by then, so nothing is lost.
        let history = [append(0, 1, 0, 10), read(1, &[1], 2, 3), read(2, &[], 4, 5)];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(key_counts(&report), [0; 5]);
        let cycle = only_cycle(&report, CycleKind::GSingleRealtime);
        assert_eq!(cycle.operations, history.to_vec());
        assert_eq!(
            cycle.edges,
            vec![EdgeKind::Wr, EdgeKind::Realtime, EdgeKind::Rw]
        );
    }

    #[test]
    fn read_missing_an_acknowledged_append_is_lost_and_g_single_realtime() {
        let history = [append(0, 1, 0, 1), read(1, &[], 2, 3), read(1, &[1], 4, 5)];
        let report = check(&history);
        assert_eq!(key_counts(&report), [0, 0, 0, 0, 1]);
        assert_eq!(report.lost_appends.examples[0].read, history[1]);
        let cycle = only_cycle(&report, CycleKind::GSingleRealtime);
        assert_eq!(cycle.operations, history[..2].to_vec());
        assert_eq!(cycle.edges, vec![EdgeKind::Realtime, EdgeKind::Rw]);
    }

    #[test]
    fn read_of_an_append_invoked_after_it_completed_is_g1c_realtime() {
        let history = [read(0, &[1], 0, 1), append(1, 1, 2, 3)];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(key_counts(&report), [0; 5]);
        let cycle = only_cycle(&report, CycleKind::G1cRealtime);
        assert_eq!(cycle.operations, history.to_vec());
        assert_eq!(cycle.edges, vec![EdgeKind::Realtime, EdgeKind::Wr]);
    }

    #[test]
    fn appends_ordered_against_real_time_are_g0_realtime() {
        // 2 was acknowledged before 1 was invoked, yet the list holds 1 first.
        let history = [
            append(0, 2, 0, 1),
            append(1, 1, 2, 3),
            read(2, &[1, 2], 4, 5),
        ];
        let report = check(&history);
        assert_eq!(key_counts(&report), [0; 5]);
        let cycle = only_cycle(&report, CycleKind::G0Realtime);
        assert_eq!(cycle.operations, history[..2].to_vec());
        assert_eq!(cycle.edges, vec![EdgeKind::Realtime, EdgeKind::Ww]);
    }

    #[test]
    fn real_time_reaches_through_operations_on_other_keys() {
        // Each operation's real-time edges stop at the next one to complete, so the
        // stale read of x is reached through the operations on y.
        let history = [
            on_key(append(0, 1, 0, 1), "x"),
            on_key(append(1, 10, 2, 3), "y"),
            on_key(read(1, &[10], 4, 5), "y"),
            on_key(append(1, 11, 6, 7), "y"),
            on_key(read(2, &[10, 11], 8, 9), "y"),
            on_key(read(3, &[], 10, 11), "x"),
            on_key(read(3, &[1], 12, 13), "x"),
        ];
        let report = check(&history);
        assert_eq!(key_counts(&report), [0, 0, 0, 0, 1]);
        let cycle = only_cycle(&report, CycleKind::GSingleRealtime);
        // The ww edge between y's appends is a shorter way than through y's first read.
        let expected: Vec<Operation> = [0, 1, 3, 4, 5]
            .iter()
            .map(|&index| history[index].clone())
            .collect();
        assert_eq!(cycle.operations, expected);
        assert_eq!(
            cycle.edges,
            vec![
                EdgeKind::Realtime,
                EdgeKind::Ww,
                EdgeKind::Wr,
                EdgeKind::Realtime,
                EdgeKind::Rw
            ]
        );
    }

    /// A graph from (from, to, kinds) triples.
    fn graph(nodes: usize, edges: &[(usize, usize, &[EdgeKind])]) -> Edges {
        let mut graph = vec![Vec::new(); nodes];
        for &(from, to, kinds) in edges {
            let bits = kinds.iter().fold(0, |bits, kind| bits | kind.bit());
            graph[from].push((to, bits));
        }
        graph
    }

    fn weakest(edges: &Edges) -> (CycleKind, Vec<(usize, EdgeKind)>) {
        let cycle = weakest_cycle(edges).unwrap();
        let kinds: Vec<EdgeKind> = cycle.iter().map(|&(_, kind)| kind).collect();
        (classify(&kinds), cycle)
    }

    #[test]
    fn cycles_of_write_dependencies_are_g0_and_g1c() {
        // ww both ways, one of them also in real time: the plainer reading wins.
        let g0 = graph(2, &[(0, 1, &[Ww, Realtime]), (1, 0, &[Ww])]);
        assert_eq!(weakest(&g0), (CycleKind::G0, vec![(0, Ww), (1, Ww)]));

        // Multi-operation transactions on two keys: T0 appends to x and reads y, T1
        // appends to y and reads x, each seeing the other's append. A shorter cycle with
        // an rw edge is passed over for the weaker kind.
        let g1c = graph(
            3,
            &[
                (0, 1, &[Wr]),
                (1, 2, &[Ww]),
                (2, 0, &[Wr]),
                (1, 0, &[Rw, Realtime]),
            ],
        );
        assert_eq!(
            weakest(&g1c),
            (CycleKind::G1c, vec![(0, Wr), (1, Ww), (2, Wr)])
        );
    }

    #[test]
    fn the_shortest_cycle_is_found_from_any_start() {
        // The search from node 0 finds the long cycle first and passes through 4 and 5.
        let edges = graph(
            6,
            &[
                (0, 1, &[Ww]),
                (1, 2, &[Ww]),
                (2, 3, &[Ww]),
                (3, 0, &[Ww]),
                (3, 4, &[Ww]),
                (4, 5, &[Ww]),
                (5, 4, &[Ww]),
            ],
        );
        assert_eq!(weakest(&edges), (CycleKind::G0, vec![(4, Ww), (5, Ww)]));
    }

    #[test]
    fn cycles_with_anti_dependencies_are_classified_by_their_rw_edges() {
        // Two rw edges back and forth, or one through a longer way round.
        let single = graph(
            3,
            &[(0, 1, &[Rw]), (1, 0, &[Rw]), (1, 2, &[Ww]), (2, 0, &[Wr])],
        );
        assert_eq!(
            weakest(&single),
            (CycleKind::GSingle, vec![(0, Rw), (1, Ww), (2, Wr)])
        );
        let adjacent = graph(2, &[(0, 1, &[Rw]), (1, 0, &[Rw])]);
        assert_eq!(weakest(&adjacent).0, CycleKind::G2Item);
        let nonadjacent = graph(
            4,
            &[(0, 1, &[Rw]), (1, 2, &[Wr]), (2, 3, &[Rw]), (3, 0, &[Ww])],
        );
        assert_eq!(weakest(&nonadjacent).0, CycleKind::GNonadjacent);
        let realtime = graph(
            4,
            &[
                (0, 1, &[Rw]),
                (1, 2, &[Realtime]),
                (2, 3, &[Rw]),
                (3, 0, &[Rw]),
            ],
        );
        assert_eq!(weakest(&realtime).0, CycleKind::G2ItemRealtime);
        let acyclic = graph(3, &[(0, 1, &[Rw]), (1, 2, &[Ww]), (0, 2, &[Realtime])]);
        assert_eq!(weakest_cycle(&acyclic), None);
    }

    #[test]
    fn strongly_connected_components_survive_long_chains() {
        // A ring of a million nodes would overflow a recursive search's stack.
        let nodes = 1_000_000;
        let ring: Edges = (0..nodes)
            .map(|node| vec![((node + 1) % nodes, Ww.bit())])
            .collect();
        let found = components(&ring, ALL_KINDS);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), nodes);
        assert!(components(&ring, Wr.bit()).is_empty());
    }

    #[test]
    fn evidence_is_capped_but_counted() {
        let history: Vec<Operation> = (0..20)
            .map(|index| read(0, &[100 + index], 2 * index as u64, 2 * index as u64 + 1))
            .collect();
        let report = check(&history);
        assert_eq!(report.unexpected.count, 20);
        assert_eq!(report.unexpected.examples.len(), EVIDENCE_LIMIT);
        assert_eq!(report.unexpected.examples[0].read, history[0]);
        // Every read is a single element, none a prefix of the first.
        assert_eq!(report.incompatible_orders.count, 19);
    }

    #[test]
    fn malformed_values_are_errors() {
        let text_append = operation(2, "append", json!("a"), Value::Null, 5, 6);
        let error = check_list_append(&[text_append]).unwrap_err();
        assert_eq!((error.process, error.invoke_time), (2, 5));
        assert!(error.to_string().contains("not an integer"), "{error}");
        // Even a failed append must say what it tried to append.
        let fractional = failed(operation(0, "append", json!(1.5), Value::Null, 0, 1));
        assert!(check_list_append(&[fractional]).is_err());

        for value in [
            json!({"list": [1]}),
            json!([1, "2"]),
            json!([[1]]),
            Value::Null,
        ] {
            let bad_read = operation(0, "read", Value::Null, value.clone(), 0, 1);
            let error = check_list_append(&[bad_read]).unwrap_err();
            assert!(
                error.to_string().contains("not an array of integers"),
                "{value}"
            );
        }
        let unknown = operation(0, "cas", json!([1, 2]), Value::Null, 0, 1);
        assert!(check_list_append(&[unknown]).is_err());

        let twice = [append(0, 1, 0, 1), failed(append(1, 1, 2, 3))];
        let error = check_list_append(&twice).unwrap_err();
        assert!(error.to_string().contains("unique per key"), "{error}");
        let other_keys = [
            on_key(append(0, 1, 0, 1), "a"),
            on_key(append(1, 1, 2, 3), "b"),
        ];
        assert_eq!(check(&other_keys).valid, Validity::Valid);
        // Reads without an answer carry nothing to check.
        let unanswered = indeterminate(operation(0, "read", Value::Null, json!("?"), 0, 1));
        assert_eq!(check(&[unanswered]).valid, Validity::Valid);
    }

    #[test]
    fn report_serializes_for_results_json() {
        let history = [
            on_key(append(0, 1, 0, 1), "k"),
            on_key(read(1, &[], 2, 3), "k"),
            on_key(read(1, &[1], 4, 5), "k"),
        ];
        let json = serde_json::to_value(check(&history)).unwrap();
        assert_eq!(json["valid"], json!(false));
        assert_eq!(json["lost_appends"]["count"], json!(1));
        assert_eq!(json["lost_appends"]["examples"][0]["key"], json!("k"));
        assert_eq!(json["duplicates"], json!({"count": 0, "examples": []}));
        let cycles = json["cycles"].as_object().unwrap();
        assert_eq!(cycles.keys().collect::<Vec<_>>(), ["G-single-realtime"]);
        let cycle = &cycles["G-single-realtime"]["examples"][0];
        assert_eq!(cycle["edges"], json!(["realtime", "rw"]));
        assert_eq!(cycle["operations"][1]["f"], json!("read"));
    }

    /// Clients against real lists on a few keys: each operation takes effect at one tick
    /// between its invocation and completion, unless it failed, or at random if it is
    /// indeterminate.
    fn simulated_history(seed: u64, operations: u64) -> Vec<Operation> {
        let mut generator = Generator(seed);
        let mut timed: Vec<(u64, Operation)> = (0..operations)
            .map(|index| {
                let start = generator.below(10 * operations);
                let effect = start + generator.below(30);
                let end = effect + generator.below(30);
                let mut operation = if generator.below(2) == 0 {
                    read(index, &[], start, end)
                } else {
                    append(index, index as i64, start, end)
                };
                operation = match generator.below(10) {
                    0 => failed(operation),
                    1 => indeterminate(operation),
                    _ => operation,
                };
                let key = ["a", "b", "c"][generator.below(3) as usize];
                (effect, on_key(operation, key))
            })
            .collect();
        timed.sort_by_key(|(effect, _)| *effect);
        let mut lists: HashMap<Option<String>, Vec<i64>> = HashMap::new();
        for (_, operation) in &mut timed {
            if !generator.takes_effect(operation.outcome) {
                continue;
            }
            let list = lists.entry(operation.key.clone()).or_default();
            match operation.invoke_value.as_i64() {
                Some(element) => list.push(element),
                None if operation.outcome == Outcome::Ok => {
                    operation.completion_value = json!(list);
                }
                None => {}
            }
        }
        timed.into_iter().map(|(_, operation)| operation).collect()
    }

    fn list(operation: &Operation) -> Vec<i64> {
        serde_json::from_value(operation.completion_value.clone()).unwrap_or_default()
    }

    #[test]
    fn simulated_lists_pass_and_each_corruption_is_caught() {
        let mut stale_reads = 0;
        for seed in 101..=120 {
            let history = simulated_history(seed, 400);
            let clean = check(&history);
            let busy = clean.reads_checked > 100;
            assert!(
                clean.valid == Validity::Valid && busy,
                "seed {seed}: {clean:?}"
            );
            let ok_reads: Vec<usize> = (0..history.len())
                .filter(|&index| history[index].function == "read")
                .filter(|&index| history[index].outcome == Outcome::Ok)
                .collect();

            // A late read forgets an element acknowledged before it was invoked.
            let (reader, position) = ok_reads
                .iter()
                .rev()
                .find_map(|&index| {
                    let seen = list(&history[index]);
                    seen.iter()
                        .position(|element| {
                            history.iter().any(|append| {
                                append.invoke_value == json!(element)
                                    && append.outcome == Outcome::Ok
                                    && append.complete_time < history[index].invoke_time
                            })
                        })
                        .map(|position| (index, position))
                })
                .unwrap();
            let mut forgetful = history.clone();
            let truncated = list(&history[reader])[..position].to_vec();
            forgetful[reader].completion_value = json!(truncated);
            let report = check(&forgetful);
            assert!(report.lost_appends.count >= 1, "seed {seed}: {report:?}");

            // Two reads disagree on which of two elements came first.
            let swapped = ok_reads
                .iter()
                .find(|&&index| {
                    let seen = list(&history[index]);
                    seen.len() >= 2
                        && ok_reads.iter().any(|&other| {
                            other != index
                                && history[other].key == history[index].key
                                && list(&history[other]).starts_with(&seen[..2])
                        })
                })
                .copied()
                .unwrap();
            let mut reordered = history.clone();
            let mut seen = list(&history[swapped]);
            seen.swap(0, 1);
            reordered[swapped].completion_value = json!(seen);
            let report = check(&reordered);
            assert!(report.incompatible_orders.count >= 1, "seed {seed}");

            // A read invoked after another read of its key saw something sees nothing.
            // It must not be the key's longest read, which orders the appends; the only
            // new edge is then its rw edge to the first append.
            let longer_or_earlier = |one: usize, other: usize| {
                let (one_length, other_length) =
                    (list(&history[one]).len(), list(&history[other]).len());
                one_length > other_length
                    || (one_length == other_length
                        && history[one].invoke_time < history[other].invoke_time)
            };
            let stale = ok_reads.iter().find_map(|&seeing| {
                let key = &history[seeing].key;
                let same_key: Vec<usize> = ok_reads
                    .iter()
                    .copied()
                    .filter(|&other| history[other].key == *key)
                    .collect();
                let later = same_key.iter().copied().find(|&other| {
                    history[other].invoke_time > history[seeing].complete_time
                        && same_key
                            .iter()
                            .any(|&rival| longer_or_earlier(rival, other))
                });
                later.filter(|_| !list(&history[seeing]).is_empty())
            });
            let Some(stale) = stale else {
                continue;
            };
            stale_reads += 1;
            let mut emptied = history.clone();
            emptied[stale].completion_value = json!([]);
            let report = check(&emptied);
            assert_eq!(
                report.cycles.keys().copied().collect::<Vec<_>>(),
                vec![CycleKind::GSingleRealtime],
                "seed {seed}"
            );
        }
        assert!(
            stale_reads >= 10,
            "only {stale_reads} seeds had a stale read to make"
        );
    }
}
