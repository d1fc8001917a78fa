//! Linearizability checking for read/write/compare-and-set registers.
//!
//! Every key is its own register and linearizability is compositional, so each key's
//! operations are checked apart, which keeps every search small. The search follows Wing
//! & Gong: pick an operation that may take effect next, apply it to a model register,
//! and backtrack when some operation's completion passes without it having been applied.
//! As Lowe proposed, every (set of applied operations, register value) state is
//! remembered, so states reached by different orders are explored once; that is what
//! makes histories of thousands of operations tractable.
//!
//! Indeterminate (`info`) operations may take effect at any time after their invocation
//! or never, so each one multiplies the states. Three sound reductions keep them in
//! check: a state is covered by an explored one that applied fewer of them; identical
//! ones are interchangeable, so only the earliest unapplied is tried; and writes of a
//! value that no operation observes are left out. Even so, many indeterminate writes
//! drawn from a few values can exhaust the budget, and running out of it answers
//! `Unknown`, never `Valid`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::history::{Operation, Outcome, NEVER};
use crate::report::{self, check_by_key};

/// Operations shown before and beside the one that could not be linearized: enough to
/// see how the register got its value, few enough to read.
const EVIDENCE_LIMIT: usize = 16;

/// Search steps between looks at the clock, which costs more than a step.
const CLOCK_CHECK_INTERVAL: u64 = 4096;

/// Limits on one key's search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Distinct (applied set, value) states to explore before giving up.
    pub max_states: u64,
    pub max_duration: Duration,
}

impl Default for Budget {
    /// A million states keeps the memo within a few hundred MB even for keys with a
    /// few thousand operations.
    fn default() -> Self {
        Budget {
            max_states: 1_000_000,
            max_duration: Duration::from_secs(60),
        }
    }
}

/// Serialized as Jepsen's `:valid?`: true, false or "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => serializer.serialize_bool(true),
            Validity::Invalid => serializer.serialize_bool(false),
            Validity::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

/// Why a key's history cannot be linearized, shown at the deepest point the search
/// reached.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counterexample {
    /// An operation that had to take effect before it completed but could not follow
    /// the longest linearizable prefix found.
    pub blocked: Operation,
    /// Length of that prefix.
    pub linearized_count: usize,
    /// The prefix's last operations, in the order they took effect.
    pub linearized_tail: Vec<Operation>,
    /// The register after the prefix; null means the key is absent.
    pub value_after_prefix: Option<i64>,
    /// Operations invoked before `blocked` completed and not in the prefix: none of
    /// them could come next either. The latest invoked are kept.
    pub concurrent: Vec<Operation>,
    pub concurrent_omitted: usize,
}

/// One key's verdict; serialized as a "verdict" field beside the key's other fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum KeyVerdict {
    Valid,
    Invalid(Box<Counterexample>),
    Unknown { reason: String },
}

impl KeyVerdict {
    pub fn validity(&self) -> Validity {
        match self {
            KeyVerdict::Valid => Validity::Valid,
            KeyVerdict::Invalid(_) => Validity::Invalid,
            KeyVerdict::Unknown { .. } => Validity::Unknown,
        }
    }
}

/// The check of one key's register.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyReport {
    /// None for operations recorded without a key.
    pub key: Option<String>,
    /// Operations the search had to place. Failed operations, indeterminate reads and
    /// indeterminate writes of values nothing observes cannot change the verdict and are
    /// dropped first.
    pub operations_checked: usize,
    pub states_explored: u64,
    #[serde(flatten)]
    pub verdict: KeyVerdict,
}

/// The check of a whole history of registers.
pub type Report = report::Report<KeyReport>;

/// An operation that is not a register operation with well-formed values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedOperation {
    pub process: u64,
    pub invoke_time: u64,
    pub reason: String,
}

impl MalformedOperation {
    /// The error for `operation`, found malformed for `reason`.
    pub fn of(operation: &Operation, reason: String) -> Self {
        MalformedOperation {
            process: operation.process,
            invoke_time: operation.invoke_time,
            reason,
        }
    }
}

impl fmt::Display for MalformedOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "operation of process {} invoked at {} ns: {}",
            self.process, self.invoke_time, self.reason
        )
    }
}

impl std::error::Error for MalformedOperation {}

/// Checks each key's operations as an independent register whose initial value is
/// absent. Every operation is validated before any search starts, so a malformed
/// history fails fast.
pub fn check_registers(
    operations: &[Operation],
    budget: &Budget,
) -> Result<Report, MalformedOperation> {
    check_by_key(
        operations,
        |key_operations: &mut Vec<_>, operation| {
            key_operations.extend(register_operation(operation)?);
            Ok(())
        },
        |key, key_operations| check_register(key, key_operations, budget),
        |key| key.verdict.validity(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    Read(Option<i64>),
    Write(i64),
    CompareAndSet { expected: i64, new: i64 },
}

impl Action {
    /// The register's value after this action, or None if it cannot take effect on
    /// `current`. An indeterminate cas that would fail is indistinguishable from one
    /// that never happened, which the search covers by not applying it.
    fn apply(self, current: Option<i64>) -> Option<Option<i64>> {
        match self {
            Action::Read(seen) => (seen == current).then_some(current),
            Action::Write(value) => Some(Some(value)),
            Action::CompareAndSet { expected, new } => {
                (current == Some(expected)).then_some(Some(new))
            }
        }
    }

    /// The value this action needs to find in the register to take effect, if any.
    fn observed(self) -> Option<i64> {
        match self {
            Action::Read(seen) => seen,
            Action::Write(_) => None,
            Action::CompareAndSet { expected, .. } => Some(expected),
        }
    }

    fn written(self) -> Option<i64> {
        match self {
            Action::Read(_) => None,
            Action::Write(value) | Action::CompareAndSet { new: value, .. } => Some(value),
        }
    }
}

struct RegisterOperation<'a> {
    source: &'a Operation,
    action: Action,
}

/// Translates an operation for the search; None for operations that cannot affect
/// the register: `fail` ones (definitely not applied) and reads without an answer.
fn register_operation(
    operation: &Operation,
) -> Result<Option<RegisterOperation<'_>>, MalformedOperation> {
    let malformed = |reason| MalformedOperation::of(operation, reason);
    let action = match operation.function.as_str() {
        "read" => {
            if operation.outcome != Outcome::Ok {
                return Ok(None);
            }
            let seen = match &operation.completion_value {
                Value::Null => None,
                value => Some(value.as_i64().ok_or_else(|| {
                    malformed(format!("read returned {value}, not an integer or null"))
                })?),
            };
            Action::Read(seen)
        }
        "write" => Action::Write(operation.invoke_value.as_i64().ok_or_else(|| {
            malformed(format!(
                "write of {}, not an integer",
                operation.invoke_value
            ))
        })?),
        "cas" => {
            let pair = match operation.invoke_value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => expected.as_i64().zip(new.as_i64()),
                _ => None,
            };
            let (expected, new) = pair.ok_or_else(|| {
                malformed(format!(
                    "cas of {}, not [expected, new] integers",
                    operation.invoke_value
                ))
            })?;
            Action::CompareAndSet { expected, new }
        }
        other => return Err(malformed(format!("{other:?} is not a register operation"))),
    };
    if operation.outcome == Outcome::Fail {
        return Ok(None);
    }
    Ok(Some(RegisterOperation {
        source: operation,
        action,
    }))
}

fn check_register(
    key: Option<&str>,
    mut operations: Vec<RegisterOperation>,
    budget: &Budget,
) -> KeyReport {
    // After an indeterminate write of a value that nothing observes, only a write can
    // follow, so leaving it out loses no linearization; and every optional operation
    // left in multiplies the states to explore.
    let observed: HashSet<i64> = operations
        .iter()
        .filter_map(|operation| operation.action.observed())
        .collect();
    operations.retain(|operation| {
        let unobserved_write = operation
            .action
            .written()
            .is_some_and(|value| !observed.contains(&value));
        operation.source.complete_time != NEVER || !unobserved_write
    });
    operations.sort_by_key(|operation| operation.source.invoke_time);
    let operations_checked = operations.len();
    let mut search = Search::new(operations);
    let verdict = search.run(budget);
    KeyReport {
        key: key.map(str::to_string),
        operations_checked,
        states_explored: search.states_explored,
        verdict,
    }
}

/// An entry of the event list: an operation's invocation or completion. Operations
/// that never completed have no completion entry: nothing forces them to take effect.
#[derive(Clone, Copy)]
enum Slot {
    Call(usize),
    Return(usize),
    /// The head and tail sentinels; only the tail is ever reached by a scan.
    Boundary,
}

const HEAD: usize = 0;

/// Invocations and completions in time order, as a doubly linked list over indices.
/// Applying an operation unlinks its two entries; undoing relinks them in reverse order,
/// which restores the list exactly because their neighbours' links still point at them.
struct EventList {
    slots: Vec<Slot>,
    next: Vec<usize>,
    previous: Vec<usize>,
    call_slot: Vec<usize>,
    return_slot: Vec<Option<usize>>,
}

impl EventList {
    fn new(operations: &[RegisterOperation]) -> Self {
        let mut events = Vec::with_capacity(2 * operations.len());
        for (index, operation) in operations.iter().enumerate() {
            events.push((operation.source.invoke_time, false, Slot::Call(index)));
            if operation.source.complete_time != NEVER {
                events.push((operation.source.complete_time, true, Slot::Return(index)));
            }
        }
        // At equal timestamps the real order is unknowable, so invocations go first:
        // the operations then count as concurrent, which can hide a violation but never
        // invent one.
        events.sort_by_key(|&(time, is_return, _)| (time, is_return));

        let mut slots = Vec::with_capacity(events.len() + 2);
        let mut call_slot = vec![HEAD; operations.len()];
        let mut return_slot = vec![None; operations.len()];
        slots.push(Slot::Boundary);
        for (_, _, slot) in events {
            match slot {
                Slot::Call(operation) => call_slot[operation] = slots.len(),
                Slot::Return(operation) => return_slot[operation] = Some(slots.len()),
                Slot::Boundary => {}
            }
            slots.push(slot);
        }
        slots.push(Slot::Boundary);
        let tail = slots.len() - 1;
        EventList {
            next: (0..slots.len()).map(|slot| (slot + 1).min(tail)).collect(),
            previous: (0..slots.len())
                .map(|slot| slot.saturating_sub(1))
                .collect(),
            slots,
            call_slot,
            return_slot,
        }
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn unlink(&mut self, slot: usize) {
        let (previous, next) = (self.previous[slot], self.next[slot]);
        self.next[previous] = next;
        self.previous[next] = previous;
    }

    fn relink(&mut self, slot: usize) {
        let (previous, next) = (self.previous[slot], self.next[slot]);
        self.next[previous] = slot;
        self.previous[next] = slot;
    }

    fn remove_operation(&mut self, operation: usize) {
        self.unlink(self.call_slot[operation]);
        if let Some(slot) = self.return_slot[operation] {
            self.unlink(slot);
        }
    }

    fn restore_operation(&mut self, operation: usize) {
        if let Some(slot) = self.return_slot[operation] {
            self.relink(slot);
        }
        self.relink(self.call_slot[operation]);
    }
}

/// Whether an operation has to take effect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Obligation {
    /// Completed `ok`: it took effect before its completion.
    Required,
    /// Indeterminate: it may take effect at any time after its invocation, or never.
    Optional,
}

/// A set of operations, one bit each.
struct OperationSet {
    words: Vec<u64>,
}

impl OperationSet {
    fn new(operations: usize) -> Self {
        OperationSet {
            words: vec![0; operations.div_ceil(64)],
        }
    }

    fn insert(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    fn remove(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }

    fn contains(&self, bit: usize) -> bool {
        self.words[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn state_key(&self, value: Option<i64>) -> StateKey {
        let full_words = self
            .words
            .iter()
            .take_while(|&&word| word == u64::MAX)
            .count();
        let used_words = self
            .words
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |last| last + 1);
        StateKey {
            full_words,
            frontier: self.words[full_words..used_words.max(full_words)].into(),
            value,
        }
    }
}

fn is_subset(small: &[u64], large: &[u64]) -> bool {
    small
        .iter()
        .zip(large)
        .all(|(small, large)| small & !large == 0)
}

/// The applied required operations and the register value. Deep in a long history the
/// early operations are all applied and the late ones not yet, so only the words between
/// those runs are stored; the count of full leading words and the stored length imply
/// the rest.
#[derive(PartialEq, Eq, Hash)]
struct StateKey {
    full_words: usize,
    frontier: Box<[u64]>,
    value: Option<i64>,
}

/// States already explored. Required operations and the value must match exactly; an
/// explored state also covers every state that applied more optional operations besides,
/// since leaving an optional operation unapplied is always allowed: whatever can follow
/// the larger set can follow the smaller one.
#[derive(Default)]
struct Memo {
    optional_sets: HashMap<StateKey, Vec<Box<[u64]>>>,
}

impl Memo {
    /// Records a state unless an explored one covers it; true if it is new.
    fn insert(
        &mut self,
        required: &OperationSet,
        optional: &OperationSet,
        value: Option<i64>,
    ) -> bool {
        let explored = self
            .optional_sets
            .entry(required.state_key(value))
            .or_default();
        if explored.iter().any(|set| is_subset(set, &optional.words)) {
            return false;
        }
        // Sets the new one covers would now only slow the subset scans.
        explored.retain(|set| !is_subset(&optional.words, set));
        explored.push(optional.words.as_slice().into());
        true
    }
}

struct Step {
    operation: usize,
    value_before: Option<i64>,
}

/// Where an operation stands in the search's bookkeeping.
struct Placement {
    obligation: Obligation,
    /// Its bit in the applied set of its obligation.
    bit: usize,
    /// For an optional operation, the latest optional one invoked before it with the
    /// same action. Once both are invoked they are interchangeable, so the later is only
    /// tried after the earlier has been applied: otherwise every copy would lead to its
    /// own, equivalent, states.
    identical_earlier: Option<usize>,
}

struct Search<'a> {
    operations: Vec<RegisterOperation<'a>>,
    placements: Vec<Placement>,
    list: EventList,
    applied_required: OperationSet,
    applied_optional: OperationSet,
    memo: Memo,
    /// The operations applied so far, in the order they took effect.
    path: Vec<Step>,
    value: Option<i64>,
    states_explored: u64,
}

impl<'a> Search<'a> {
    /// `operations` must be sorted by invocation time.
    fn new(operations: Vec<RegisterOperation<'a>>) -> Self {
        let (mut required, mut optional) = (0, 0);
        let mut latest_optional: HashMap<Action, usize> = HashMap::new();
        let mut placements = Vec::with_capacity(operations.len());
        for (index, operation) in operations.iter().enumerate() {
            let placement = if operation.source.complete_time == NEVER {
                optional += 1;
                Placement {
                    obligation: Obligation::Optional,
                    bit: optional - 1,
                    identical_earlier: latest_optional.insert(operation.action, index),
                }
            } else {
                required += 1;
                Placement {
                    obligation: Obligation::Required,
                    bit: required - 1,
                    identical_earlier: None,
                }
            };
            placements.push(placement);
        }
        Search {
            list: EventList::new(&operations),
            placements,
            applied_required: OperationSet::new(required),
            applied_optional: OperationSet::new(optional),
            operations,
            memo: Memo::default(),
            path: Vec::new(),
            value: None,
            states_explored: 0,
        }
    }

    fn run(&mut self, budget: &Budget) -> KeyVerdict {
        let started = Instant::now();
        let mut steps_until_clock_check = CLOCK_CHECK_INTERVAL;
        let mut deepest: Option<Counterexample> = None;
        // Scanning from the head, the calls met before the first return are exactly the
        // operations invoked before the earliest pending completion: the only ones that
        // may take effect next. Each state tries its required candidates first and its
        // optional ones in a second scan, so states that applied fewer optional
        // operations are explored first, and those cover the others in the memo.
        let mut slot = self.list.first();
        let mut trying = Obligation::Required;
        loop {
            steps_until_clock_check -= 1;
            if steps_until_clock_check == 0 {
                steps_until_clock_check = CLOCK_CHECK_INTERVAL;
                if started.elapsed() > budget.max_duration {
                    return KeyVerdict::Unknown {
                        reason: format!(
                            "gave up after {:?} and {} states (limit {:?})",
                            started.elapsed(),
                            self.states_explored,
                            budget.max_duration
                        ),
                    };
                }
            }
            match self.list.slots[slot] {
                // No completion is left, so every required operation has taken effect.
                Slot::Boundary => return KeyVerdict::Valid,
                Slot::Call(operation) => {
                    if self.placements[operation].obligation != trying || !self.apply(operation) {
                        slot = self.list.next[slot];
                        continue;
                    }
                    if self.states_explored > budget.max_states {
                        return KeyVerdict::Unknown {
                            reason: format!("gave up after exploring {} states", budget.max_states),
                        };
                    }
                    slot = self.list.first();
                    trying = Obligation::Required;
                }
                Slot::Return(_) if trying == Obligation::Required => {
                    slot = self.list.first();
                    trying = Obligation::Optional;
                }
                Slot::Return(blocked) => {
                    // `blocked` completed, yet nothing applied so far lets it take effect.
                    let counterexample = match deepest.take() {
                        Some(found) if found.linearized_count >= self.path.len() => found,
                        _ => self.describe_dead_end(blocked, slot),
                    };
                    let Some(step) = self.path.pop() else {
                        return KeyVerdict::Invalid(Box::new(counterexample));
                    };
                    deepest = Some(counterexample);
                    let (set, bit) = self.applied_set(step.operation);
                    set.remove(bit);
                    self.list.restore_operation(step.operation);
                    self.value = step.value_before;
                    slot = self.list.next[self.list.call_slot[step.operation]];
                    trying = self.placements[step.operation].obligation;
                }
            }
        }
    }

    fn applied_set(&mut self, operation: usize) -> (&mut OperationSet, usize) {
        let placement = &self.placements[operation];
        let set = match placement.obligation {
            Obligation::Required => &mut self.applied_required,
            Obligation::Optional => &mut self.applied_optional,
        };
        (set, placement.bit)
    }

    /// Applies `operation` if it can take effect now and leads to an unexplored state.
    fn apply(&mut self, operation: usize) -> bool {
        if let Some(earlier) = self.placements[operation].identical_earlier {
            if !self.applied_optional.contains(self.placements[earlier].bit) {
                return false;
            }
        }
        let Some(value_after) = self.operations[operation].action.apply(self.value) else {
            return false;
        };
        let (set, bit) = self.applied_set(operation);
        set.insert(bit);
        if !self
            .memo
            .insert(&self.applied_required, &self.applied_optional, value_after)
        {
            let (set, bit) = self.applied_set(operation);
            set.remove(bit);
            return false;
        }
        self.states_explored += 1;
        self.path.push(Step {
            operation,
            value_before: self.value,
        });
        self.value = value_after;
        self.list.remove_operation(operation);
        true
    }

    fn describe_dead_end(&self, blocked: usize, return_slot: usize) -> Counterexample {
        let source = |operation: usize| self.operations[operation].source.clone();
        let tail_start = self.path.len().saturating_sub(EVIDENCE_LIMIT);
        let linearized_tail = self.path[tail_start..]
            .iter()
            .map(|step| source(step.operation))
            .collect();
        let mut concurrent = Vec::new();
        let mut slot = self.list.first();
        while slot != return_slot {
            match self.list.slots[slot] {
                Slot::Call(operation) if operation != blocked => concurrent.push(operation),
                Slot::Boundary => break,
                _ => {}
            }
            slot = self.list.next[slot];
        }
        let concurrent_omitted = concurrent.len().saturating_sub(EVIDENCE_LIMIT);
        Counterexample {
            blocked: source(blocked),
            linearized_count: self.path.len(),
            linearized_tail,
            value_after_prefix: self.value,
            concurrent: concurrent[concurrent_omitted..]
                .iter()
                .map(|&operation| source(operation))
                .collect(),
            concurrent_omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        assert_only_key_b_invalid, failed, indeterminate, on_key, only_key_b_wrong, operation,
        read, Generator,
    };
    use serde_json::json;

    fn write(process: u64, value: i64, invoke_time: u64, complete_time: u64) -> Operation {
        operation(
            process,
            "write",
            json!(value),
            json!(value),
            invoke_time,
            complete_time,
        )
    }

    fn cas(
        process: u64,
        expected: i64,
        new: i64,
        invoke_time: u64,
        complete_time: u64,
    ) -> Operation {
        let pair = json!([expected, new]);
        operation(
            process,
            "cas",
            pair.clone(),
            pair,
            invoke_time,
            complete_time,
        )
    }

    fn check(operations: &[Operation]) -> Report {
        check_registers(operations, &Budget::default()).unwrap()
    }

    fn validity(operations: &[Operation]) -> Validity {
        check(operations).valid
    }

    fn counterexample(operations: &[Operation]) -> Counterexample {
        let report = check(operations);
        match &report.keys[..] {
            [KeyReport {
                verdict: KeyVerdict::Invalid(counterexample),
                ..
            }] => (**counterexample).clone(),
            _ => panic!("expected one invalid key: {report:?}"),
        }
    }

    #[test]
    fn valid_sequential_history() {
        let history = [
            read(0, None, 0, 1),
            write(0, 1, 2, 3),
            read(1, Some(1), 4, 5),
            cas(1, 1, 2, 6, 7),
            read(0, Some(2), 8, 9),
            write(1, 3, 10, 11),
            read(1, Some(3), 12, 13),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Valid);
        assert_eq!(report.keys.len(), 1);
        assert_eq!(report.keys[0].operations_checked, history.len());
    }

    #[test]
    fn valid_concurrent_history_needs_reordering() {
        // Write 1 is invoked first, but write 2 must take effect before it for the reads
        // to make sense; the search tries write 1 first and has to backtrack.
        let history = [
            write(0, 1, 0, 10),
            write(1, 2, 1, 3),
            read(2, Some(2), 2, 4),
            read(2, Some(1), 5, 6),
        ];
        assert_eq!(validity(&history), Validity::Valid);
    }

    #[test]
    fn stale_read_is_invalid() {
        let history = [write(0, 1, 0, 1), write(0, 2, 2, 3), read(1, Some(1), 4, 5)];
        let counterexample = counterexample(&history);
        assert_eq!(counterexample.blocked, history[2]);
        assert_eq!(counterexample.linearized_count, 2);
        assert_eq!(counterexample.linearized_tail, history[..2].to_vec());
        assert_eq!(counterexample.value_after_prefix, Some(2));
        assert!(counterexample.concurrent.is_empty());
    }

    #[test]
    fn read_of_a_value_never_written_is_invalid() {
        let history = [write(0, 1, 0, 1), read(1, Some(7), 0, 2)];
        assert_eq!(validity(&history), Validity::Invalid);
        assert_eq!(counterexample(&history).blocked, history[1]);
    }

    #[test]
    fn read_cannot_see_a_write_invoked_after_it_completed() {
        let history = [read(0, Some(1), 0, 1), write(1, 1, 2, 3)];
        assert_eq!(validity(&history), Validity::Invalid);
    }

    #[test]
    fn lost_acknowledged_write_is_invalid() {
        let history = [write(0, 1, 0, 1), read(1, None, 2, 3), read(0, None, 4, 5)];
        assert_eq!(validity(&history), Validity::Invalid);
        assert_eq!(counterexample(&history).blocked, history[1]);
    }

    #[test]
    fn cas_that_succeeded_on_a_different_value_is_invalid() {
        let history = [
            write(0, 1, 0, 1),
            cas(1, 2, 3, 2, 3),
            read(0, Some(3), 4, 5),
        ];
        assert_eq!(validity(&history), Validity::Invalid);
        assert_eq!(counterexample(&history).blocked, history[1]);
    }

    #[test]
    fn failed_cas_must_not_take_effect() {
        let value_kept = [
            write(0, 1, 0, 1),
            failed(cas(1, 1, 3, 2, 3)),
            read(0, Some(1), 4, 5),
        ];
        assert_eq!(validity(&value_kept), Validity::Valid);
        let value_changed = [
            write(0, 1, 0, 1),
            failed(cas(1, 1, 3, 2, 3)),
            read(0, Some(3), 4, 5),
        ];
        assert_eq!(validity(&value_changed), Validity::Invalid);
    }

    #[test]
    fn indeterminate_cas_may_take_effect_later() {
        let history = [
            write(0, 1, 0, 1),
            indeterminate(cas(1, 1, 5, 2, 3)),
            read(0, Some(1), 10, 11),
            read(0, Some(5), 12, 13),
        ];
        assert_eq!(validity(&history), Validity::Valid);
    }

    #[test]
    fn indeterminate_write_that_later_shows_up_is_valid() {
        let history = [
            write(0, 1, 0, 1),
            indeterminate(write(1, 2, 2, 3)),
            read(0, Some(1), 100, 101),
            read(2, Some(2), 200, 201),
            read(0, Some(2), 300, 301),
        ];
        assert_eq!(validity(&history), Validity::Valid);
    }

    #[test]
    fn indeterminate_write_that_never_shows_up_is_valid() {
        let history = [
            write(0, 1, 0, 1),
            indeterminate(write(1, 2, 2, 3)),
            read(0, Some(1), 100, 101),
            read(2, Some(1), 200, 201),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Valid);
        // Nothing reads 2, so the indeterminate write is left out of the search.
        assert_eq!(report.keys[0].operations_checked, 3);
    }

    #[test]
    fn indeterminate_write_cannot_take_effect_before_its_invocation() {
        let history = [
            write(0, 1, 0, 1),
            read(0, Some(2), 2, 3),
            indeterminate(write(1, 2, 4, 5)),
        ];
        assert_eq!(validity(&history), Validity::Invalid);
    }

    #[test]
    fn indeterminate_read_is_ignored() {
        let history = [
            write(0, 1, 0, 1),
            indeterminate(read(1, None, 2, 3)),
            read(0, Some(1), 4, 5),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Valid);
        assert_eq!(report.keys[0].operations_checked, 2);
    }

    #[test]
    fn failed_write_read_later_is_invalid() {
        let history = [
            write(0, 1, 0, 1),
            failed(write(1, 2, 2, 3)),
            read(0, Some(2), 4, 5),
        ];
        assert_eq!(validity(&history), Validity::Invalid);
    }

    #[test]
    fn keys_are_checked_independently() {
        let report = check(&only_key_b_wrong(write));
        let verdicts = report.keys.iter();
        let verdicts = verdicts.map(|key| (key.key.as_deref(), key.verdict.validity()));
        assert_only_key_b_invalid(report.valid, verdicts.collect());
    }

    /// Writes of distinct values, all concurrent, then a read of a value none of them
    /// wrote: proving it invalid means trying every subset of the writes.
    fn ambiguous_history(writes: usize) -> Vec<Operation> {
        let mut history: Vec<Operation> = (0..writes)
            .map(|index| write(index as u64, index as i64, index as u64, 1_000))
            .collect();
        history.push(read(writes as u64, Some(-1), 2_000, 2_001));
        history
    }

    #[test]
    fn exhausted_budget_is_unknown_not_valid() {
        let history = ambiguous_history(20);
        let tiny = Budget {
            max_states: 1_000,
            max_duration: Duration::from_secs(60),
        };
        let report = check_registers(&history, &tiny).unwrap();
        assert_eq!(report.valid, Validity::Unknown);
        assert!(matches!(report.keys[0].verdict, KeyVerdict::Unknown { .. }));

        let no_time = Budget {
            max_states: u64::MAX,
            max_duration: Duration::ZERO,
        };
        assert_eq!(
            check_registers(&history, &no_time).unwrap().valid,
            Validity::Unknown
        );

        // The same shape, small enough for the default budget, is proven invalid.
        assert_eq!(validity(&ambiguous_history(8)), Validity::Invalid);
    }

    #[test]
    fn malformed_operations_are_errors() {
        let bad_write = operation(3, "write", json!("x"), json!("x"), 7, 8);
        let error = check_registers(&[bad_write], &Budget::default()).unwrap_err();
        assert_eq!((error.process, error.invoke_time), (3, 7));
        assert!(error.to_string().contains("not an integer"), "{error}");

        let bad_cas = operation(1, "cas", json!([1]), Value::Null, 0, 1);
        assert!(check_registers(&[bad_cas], &Budget::default()).is_err());
        let bad_read = read(1, None, 0, 1);
        let bad_read = Operation {
            completion_value: json!([1, 2]),
            ..bad_read
        };
        assert!(check_registers(&[bad_read], &Budget::default()).is_err());
        let unknown = operation(1, "append", json!(1), Value::Null, 0, 1);
        assert!(check_registers(&[unknown], &Budget::default()).is_err());
    }

    #[test]
    fn report_serializes_for_results_json() {
        let report = check(&[
            on_key(write(0, 1, 0, 1), "a"),
            on_key(read(1, Some(2), 2, 3), "a"),
        ]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["valid"], json!(false));
        let key = &json["keys"][0];
        assert_eq!(key["key"], json!("a"));
        assert_eq!(key["verdict"], json!("invalid"));
        assert_eq!(key["blocked"]["completion_value"], json!(2));
        assert_eq!(key["value_after_prefix"], json!(1));

        let unknown = serde_json::to_value(Validity::Unknown).unwrap();
        assert_eq!(unknown, json!("unknown"));
        let valid = serde_json::to_value(check(&[]).valid).unwrap();
        assert_eq!(valid, json!(true));
    }

    /// Decides linearizability by trying every order of every admissible subset of the
    /// operations, written independently of the search so the two can be compared.
    fn linearizable_by_enumeration(operations: &[Operation]) -> bool {
        fn extend(operations: &[&Operation], placed: &mut [bool], value: Option<i64>) -> bool {
            let must_place = |operation: &Operation| operation.outcome == Outcome::Ok;
            if operations
                .iter()
                .zip(placed.iter())
                .all(|(operation, &placed)| placed || !must_place(operation))
            {
                return true;
            }
            for next in 0..operations.len() {
                let candidate = operations[next];
                let completed_before = |index: usize| {
                    let other = operations[index];
                    !placed[index]
                        && must_place(other)
                        && other.complete_time < candidate.invoke_time
                };
                if placed[next] || (0..operations.len()).any(completed_before) {
                    continue;
                }
                let value_after = match candidate.function.as_str() {
                    "read" if candidate.completion_value == json!(value) => value,
                    "write" => candidate.invoke_value.as_i64(),
                    "cas" if json!(value) == candidate.invoke_value[0] => {
                        candidate.invoke_value[1].as_i64()
                    }
                    _ => continue,
                };
                placed[next] = true;
                if extend(operations, placed, value_after) {
                    return true;
                }
                placed[next] = false;
            }
            false
        }
        // Failed operations did not happen; a read without an answer shows nothing.
        let relevant: Vec<&Operation> = operations
            .iter()
            .filter(|operation| {
                operation.outcome == Outcome::Ok
                    || (operation.outcome == Outcome::Info && operation.function != "read")
            })
            .collect();
        extend(&relevant, &mut vec![false; relevant.len()], None)
    }

    fn random_operation(generator: &mut Generator, process: u64) -> Operation {
        let mut value = || generator.below(3) as i64;
        let (first, second) = (value(), value());
        let invoke_time = generator.below(20);
        let complete_time = invoke_time + generator.below(25);
        let operation = match generator.below(3) {
            0 => {
                let seen = (first < 2).then_some(second);
                read(process, seen, invoke_time, complete_time)
            }
            1 => write(process, first, invoke_time, complete_time),
            _ => cas(process, first, second, invoke_time, complete_time),
        };
        match generator.below(8) {
            0..=2 => indeterminate(operation),
            3 => failed(operation),
            _ => operation,
        }
    }

    #[test]
    fn agrees_with_enumeration_on_small_random_histories() {
        let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
        let mut verdicts = [0; 2];
        for _ in 0..50_000 {
            let length = 1 + generator.below(9);
            let history: Vec<Operation> = (0..length)
                .map(|process| random_operation(&mut generator, process))
                .collect();
            let expected = if linearizable_by_enumeration(&history) {
                Validity::Valid
            } else {
                Validity::Invalid
            };
            assert_eq!(validity(&history), expected, "{history:#?}");
            verdicts[usize::from(expected == Validity::Valid)] += 1;
        }
        // Both verdicts must be common, or the comparison proves little.
        assert!(verdicts.iter().all(|&count| count > 10_000), "{verdicts:?}");
    }

    #[derive(Clone, Copy)]
    enum Request {
        Read,
        Write(i64),
        CompareAndSet { expected: i64, new: i64 },
    }

    #[derive(Clone, Copy)]
    struct InFlight {
        operation: usize,
        request: Request,
        effect_tick: u64,
        complete_tick: u64,
        crashes: bool,
        crashes_before_effect: bool,
    }

    struct Simulation {
        operations: usize,
        clients: u64,
        /// Each operation's client crashes with probability 1 / this.
        crash_one_in: u64,
        /// Every write a fresh value, rather than one of five as Jepsen's register
        /// workload does; that pins down far more orders.
        unique_values: bool,
        seed: u64,
    }

    impl Simulation {
        /// Runs clients against a real register: each operation takes effect at one tick
        /// between its invocation and completion, and a client that crashes (before or
        /// after its operation took effect) comes back as a new process.
        fn history(&self) -> Vec<Operation> {
            let mut generator = Generator(self.seed);
            let mut register: Option<i64> = None;
            let mut history: Vec<Operation> = Vec::new();
            let mut in_flight: Vec<Option<InFlight>> = vec![None; self.clients as usize];
            let mut processes: Vec<u64> = (0..self.clients).collect();
            let mut tick = 0;
            while history.len() < self.operations || in_flight.iter().any(Option::is_some) {
                tick += 1;
                for client in 0..self.clients as usize {
                    let time = tick * 100 + client as u64;
                    match in_flight[client] {
                        None if history.len() < self.operations => {
                            let (request, invoked) = self.invoke(
                                &mut generator,
                                processes[client],
                                register,
                                history.len(),
                                time,
                            );
                            let effect_tick = tick + 1 + generator.below(3);
                            in_flight[client] = Some(InFlight {
                                operation: history.len(),
                                request,
                                effect_tick,
                                complete_tick: effect_tick + 1 + generator.below(3),
                                crashes: generator.below(self.crash_one_in) == 0,
                                crashes_before_effect: generator.below(2) == 0,
                            });
                            history.push(invoked);
                        }
                        Some(flight) if flight.effect_tick == tick => {
                            if flight.crashes && flight.crashes_before_effect {
                                continue;
                            }
                            let operation = &mut history[flight.operation];
                            match flight.request {
                                Request::Read => operation.completion_value = json!(register),
                                Request::Write(value) => register = Some(value),
                                Request::CompareAndSet { expected, new } => {
                                    if register == Some(expected) {
                                        register = Some(new);
                                    } else {
                                        operation.outcome = Outcome::Fail;
                                    }
                                }
                            }
                        }
                        Some(flight) if flight.complete_tick == tick => {
                            in_flight[client] = None;
                            let operation = &mut history[flight.operation];
                            if flight.crashes {
                                *operation = indeterminate(operation.clone());
                                processes[client] += self.clients;
                            } else {
                                operation.complete_time = time;
                            }
                        }
                        None | Some(_) => {}
                    }
                }
            }
            history
        }

        fn invoke(
            &self,
            generator: &mut Generator,
            process: u64,
            register: Option<i64>,
            sequence: usize,
            time: u64,
        ) -> (Request, Operation) {
            let mut value = || {
                if self.unique_values {
                    sequence as i64
                } else {
                    generator.below(5) as i64
                }
            };
            let new = value();
            match generator.below(5) {
                0 | 1 => (Request::Read, read(process, None, time, NEVER)),
                2 | 3 => (Request::Write(new), write(process, new, time, NEVER)),
                _ => {
                    // With fresh values a random guess would never match.
                    let expected = if self.unique_values {
                        register.unwrap_or(0)
                    } else {
                        generator.below(5) as i64
                    };
                    let request = Request::CompareAndSet { expected, new };
                    (request, cas(process, expected, new, time, NEVER))
                }
            }
        }
    }

    #[test]
    fn simulated_histories_of_thousands_of_operations() {
        let simulations = [
            Simulation {
                operations: 500,
                clients: 5,
                crash_one_in: 30,
                unique_values: false,
                seed: 1,
            },
            Simulation {
                operations: 4_000,
                clients: 5,
                crash_one_in: 10,
                unique_values: true,
                seed: 2,
            },
            Simulation {
                operations: 4_000,
                clients: 10,
                crash_one_in: 10,
                unique_values: true,
                seed: 3,
            },
        ];
        for simulation in simulations {
            let history = simulation.history();
            let report = check(&history);
            assert_eq!(report.valid, Validity::Valid, "{report:?}");

            // A read in the second half returns a value nobody wrote.
            let mut corrupted = history.clone();
            let read_index = (history.len() / 2..history.len())
                .find(|&index| {
                    let operation = &history[index];
                    operation.function == "read" && operation.outcome == Outcome::Ok
                })
                .unwrap();
            corrupted[read_index].completion_value = json!(-1);
            let report = check(&corrupted);
            assert_eq!(
                report.valid,
                Validity::Invalid,
                "{:?}",
                report.keys[0].states_explored
            );
        }
    }
}
