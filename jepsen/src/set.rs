//! Checking sets that clients only add to (Redis SADD) and read whole (SMEMBERS).
//!
//! The sets only grow, so once an element is known to be in one (its add was
//! acknowledged, or a read returned it) every read invoked afterwards must return it;
//! one that does not shows the element was lost. And a read may only return elements
//! whose add, acknowledged or indeterminate, was invoked before the read completed;
//! anything else is unexpected: never added, added too late, or added by an add the store
//! reported as failed. A read returning an element twice is not a set.
//!
//! Elements are compared as recorded, so the integer 1 and the string "1" differ: a
//! client must record reads in the same form as its adds. An element may be added more
//! than once; its earliest acknowledgement and earliest invocations then count.
//!
//! As in the register checker, an operation completed "before" another only if its
//! completion time is strictly earlier than the other's invocation; at equal timestamps
//! the two count as concurrent, which can hide a violation but never invent one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::history::{Operation, Outcome};
use crate::linearizable::{MalformedOperation, Validity};
use crate::report::{check_by_key, Report};

/// Violations of each kind shown per key: the earliest, enough to start from.
const EVIDENCE_LIMIT: usize = 8;

/// A set member, serialized as the plain JSON integer or string it was recorded as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Element {
    Integer(i64),
    Text(String),
}

/// An element known to be in the set that a later read did not return.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostElement {
    pub element: Element,
    /// Its acknowledged add, or else its indeterminate one.
    pub add: Operation,
    /// A read that returned the element and completed before `missing_from` was
    /// invoked; only given when the add was not acknowledged by then.
    pub seen_in: Option<Operation>,
    /// The earliest invoked read that should have returned the element and did not.
    pub missing_from: Operation,
}

/// Why a read should not have returned an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnexpectedReason {
    /// No add of the element was ever invoked.
    NeverAdded,
    /// Only failed adds of the element were invoked before the read completed.
    FailedAddTookEffect,
    /// Every add of the element was invoked after the read completed.
    ReadBeforeAdd,
}

/// An element returned by a read that could not have contained it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnexpectedElement {
    pub element: Element,
    pub reason: UnexpectedReason,
    /// The earliest invoked read that returned it unexpectedly.
    pub read: Operation,
    /// The failed add, or the earliest add invoked after the read; None if never added.
    pub add: Option<Operation>,
}

/// An element that one read returned more than once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuplicateElement {
    pub element: Element,
    pub read: Operation,
    pub occurrences: usize,
}

/// Jepsen-style tallies of one key's elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SetCounts {
    /// Elements some add (of any outcome) tried to insert.
    pub attempted: usize,
    /// Elements with an acknowledged add.
    pub acknowledged: usize,
    pub lost: usize,
    /// Elements some read returned unexpectedly.
    pub unexpected: usize,
    /// Elements with no acknowledged add, returned by a read that completed after one
    /// of their indeterminate adds was invoked.
    pub recovered: usize,
    /// Acknowledged elements, not lost, that no read was invoked after the
    /// acknowledgement to confirm: unchecked rather than lost.
    pub never_read: usize,
    /// (read, element) pairs where the read returned the element more than once.
    pub duplicated: usize,
}

/// The check of one key's set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetKeyReport {
    /// None for operations recorded without a key.
    pub key: Option<String>,
    pub valid: Validity,
    /// Reads that completed `ok`.
    pub reads_checked: usize,
    pub counts: SetCounts,
    /// The first few of each kind, earliest first.
    pub lost: Vec<LostElement>,
    pub unexpected: Vec<UnexpectedElement>,
    pub duplicates: Vec<DuplicateElement>,
}

/// The check of a whole history; never unknown.
pub type SetReport = Report<SetKeyReport>;

/// Checks each key as an independent set that starts empty. Every operation is
/// validated first, so a malformed history fails before anything is checked.
pub fn check_sets(operations: &[Operation]) -> Result<SetReport, MalformedOperation> {
    check_by_key(operations, KeyHistory::record, check_key, |key| key.valid)
}

/// The adds of one element that matter to the checks.
#[derive(Default)]
struct ElementAdds<'a> {
    /// The earliest completed acknowledged add.
    acknowledged: Option<&'a Operation>,
    /// The earliest invoked add that was acknowledged or is indeterminate.
    possible: Option<&'a Operation>,
    /// The earliest invoked failed add.
    failed: Option<&'a Operation>,
}

impl<'a> ElementAdds<'a> {
    fn record(&mut self, add: &'a Operation) {
        match add.outcome {
            Outcome::Ok => {
                keep_earliest(&mut self.acknowledged, add, completed_earlier);
                keep_earliest(&mut self.possible, add, invoked_earlier);
            }
            Outcome::Info => keep_earliest(&mut self.possible, add, invoked_earlier),
            Outcome::Fail => keep_earliest(&mut self.failed, add, invoked_earlier),
        }
    }

    /// The earliest invoked add of any outcome.
    fn first_invoked(&self) -> Option<&'a Operation> {
        match (self.possible, self.failed) {
            (Some(possible), Some(failed)) if invoked_earlier(failed, possible) => Some(failed),
            (Some(possible), _) => Some(possible),
            (None, failed) => failed,
        }
    }
}

fn invoked_earlier(candidate: &Operation, current: &Operation) -> bool {
    candidate.invoke_time < current.invoke_time
}

fn completed_earlier(candidate: &Operation, current: &Operation) -> bool {
    candidate.complete_time < current.complete_time
}

fn keep_earliest<'a>(
    slot: &mut Option<&'a Operation>,
    candidate: &'a Operation,
    earlier: fn(&Operation, &Operation) -> bool,
) {
    let replace = match slot {
        Some(current) => earlier(candidate, current),
        None => true,
    };
    if replace {
        *slot = Some(candidate);
    }
}

struct Read<'a> {
    source: &'a Operation,
    /// Each element returned, with how many times.
    contents: BTreeMap<Element, usize>,
}

#[derive(Default)]
struct KeyHistory<'a> {
    adds: BTreeMap<Element, ElementAdds<'a>>,
    reads: Vec<Read<'a>>,
}

impl<'a> KeyHistory<'a> {
    fn record(&mut self, operation: &'a Operation) -> Result<(), MalformedOperation> {
        let malformed = |reason| MalformedOperation::of(operation, reason);
        match operation.function.as_str() {
            "add" => {
                let element = element(&operation.invoke_value)
                    .map_err(|reason| malformed(format!("add of {reason}")))?;
                self.adds.entry(element).or_default().record(operation);
            }
            "read" => {
                if operation.outcome != Outcome::Ok {
                    return Ok(());
                }
                let Value::Array(values) = &operation.completion_value else {
                    return Err(malformed(format!(
                        "read returned {}, not an array",
                        operation.completion_value
                    )));
                };
                let mut contents = BTreeMap::new();
                for value in values {
                    let element = element(value)
                        .map_err(|reason| malformed(format!("read returned {reason}")))?;
                    *contents.entry(element).or_insert(0) += 1;
                }
                self.reads.push(Read {
                    source: operation,
                    contents,
                });
            }
            other => return Err(malformed(format!("{other:?} is not a set operation"))),
        }
        Ok(())
    }
}

fn element(value: &Value) -> Result<Element, String> {
    match value {
        Value::String(text) => Ok(Element::Text(text.clone())),
        Value::Number(number) => number
            .as_i64()
            .map(Element::Integer)
            .ok_or_else(|| format!("{number}, not an integer in i64 range")),
        other => Err(format!("{other}, not an integer or string element")),
    }
}

/// Where an element was first seen by reads.
struct Sighting<'r, 'a> {
    /// The read returning it that completed first.
    earliest_completed: &'r Read<'a>,
    /// Whether a read that completed after an acknowledged or indeterminate add was
    /// invoked returned it.
    after_possible_add: bool,
}

fn check_key(key: Option<&str>, mut history: KeyHistory) -> SetKeyReport {
    history
        .reads
        .sort_by_key(|read| (read.source.invoke_time, read.source.process));
    let reads = &history.reads;
    let no_adds = ElementAdds::default();

    let mut duplicates = Vec::new();
    let mut unexpected = Vec::new();
    let mut unexpected_elements = BTreeSet::new();
    let mut sightings: BTreeMap<&Element, Sighting> = BTreeMap::new();
    for read in reads {
        for (element, &occurrences) in &read.contents {
            if occurrences > 1 {
                duplicates.push(DuplicateElement {
                    element: element.clone(),
                    read: read.source.clone(),
                    occurrences,
                });
            }
            let adds = history.adds.get(element).unwrap_or(&no_adds);
            let possible_before_completion = adds
                .possible
                .filter(|add| add.invoke_time <= read.source.complete_time);
            if possible_before_completion.is_none() && unexpected_elements.insert(element) {
                unexpected.push(describe_unexpected(element, adds, read.source));
            }
            let sighting = sightings.entry(element).or_insert(Sighting {
                earliest_completed: read,
                after_possible_add: false,
            });
            if completed_earlier(read.source, sighting.earliest_completed.source) {
                sighting.earliest_completed = read;
            }
            sighting.after_possible_add |= possible_before_completion.is_some();
        }
    }

    let mut counts = SetCounts {
        attempted: history.adds.len(),
        unexpected: unexpected.len(),
        duplicated: duplicates.len(),
        ..SetCounts::default()
    };
    let latest_read_invocation = reads.iter().map(|read| read.source.invoke_time).max();
    let mut lost = Vec::new();
    for (element, adds) in &history.adds {
        let sighting = sightings.get(element);
        if adds.acknowledged.is_none()
            && adds.possible.is_some()
            && sighting.is_some_and(|sighting| sighting.after_possible_add)
        {
            counts.recovered += 1;
        }
        // Elements only failed adds tried to insert are unexpected wherever they show, and
        // never owed to a read.
        let Some(add) = adds.acknowledged.or(adds.possible) else {
            continue;
        };
        let found = find_loss(element, adds, sighting, reads);
        if let Some(acknowledged) = adds.acknowledged {
            counts.acknowledged += 1;
            let read_after =
                latest_read_invocation.is_some_and(|time| time > acknowledged.complete_time);
            if found.is_none() && !read_after {
                counts.never_read += 1;
            }
        }
        if let Some((missing_from, seen_in)) = found {
            lost.push(LostElement {
                element: element.clone(),
                add: add.clone(),
                seen_in: seen_in.cloned(),
                missing_from: missing_from.clone(),
            });
        }
    }
    counts.lost = lost.len();
    lost.sort_by(|one, other| {
        (one.missing_from.invoke_time, &one.element)
            .cmp(&(other.missing_from.invoke_time, &other.element))
    });

    let valid = if counts.lost + counts.unexpected + counts.duplicated == 0 {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    SetKeyReport {
        key: key.map(str::to_string),
        valid,
        reads_checked: reads.len(),
        counts,
        lost: first_few(lost),
        unexpected: first_few(unexpected),
        duplicates: first_few(duplicates),
    }
}

fn describe_unexpected(
    element: &Element,
    adds: &ElementAdds,
    read: &Operation,
) -> UnexpectedElement {
    let failed_before_completion = adds
        .failed
        .filter(|add| add.invoke_time <= read.complete_time);
    let (reason, add) = match (failed_before_completion, adds.first_invoked()) {
        (Some(failed), _) => (UnexpectedReason::FailedAddTookEffect, Some(failed)),
        (None, Some(later)) => (UnexpectedReason::ReadBeforeAdd, Some(later)),
        (None, None) => (UnexpectedReason::NeverAdded, None),
    };
    UnexpectedElement {
        element: element.clone(),
        reason,
        read: read.clone(),
        add: add.cloned(),
    }
}

/// The earliest invoked read that misses `element` although it was known to be in the
/// set before the read was invoked, with the read that showed it when the add's
/// acknowledgement came too late to.
fn find_loss<'a>(
    element: &Element,
    adds: &ElementAdds<'a>,
    sighting: Option<&Sighting<'_, 'a>>,
    reads: &[Read<'a>],
) -> Option<(&'a Operation, Option<&'a Operation>)> {
    let acknowledged_at = adds.acknowledged.map(|add| add.complete_time);
    let seen = sighting.map(|sighting| sighting.earliest_completed.source);
    let known_from = acknowledged_at
        .into_iter()
        .chain(seen.map(|read| read.complete_time))
        .min()?;
    let first_bound = reads.partition_point(|read| read.source.invoke_time <= known_from);
    let missing_from = reads[first_bound..]
        .iter()
        .find(|read| !read.contents.contains_key(element))?
        .source;
    let acknowledged_before = acknowledged_at.is_some_and(|at| at < missing_from.invoke_time);
    let seen_in = if acknowledged_before { None } else { seen };
    Some((missing_from, seen_in))
}

fn first_few<T>(mut evidence: Vec<T>) -> Vec<T> {
    evidence.truncate(EVIDENCE_LIMIT);
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{add, failed, indeterminate, on_key, only_key, operation, Generator};
    use serde_json::json;

    fn read(process: u64, seen: Value, invoke_time: u64, complete_time: u64) -> Operation {
        operation(
            process,
            "read",
            Value::Null,
            seen,
            invoke_time,
            complete_time,
        )
    }

    fn check(operations: &[Operation]) -> SetReport {
        check_sets(operations).unwrap()
    }

    /// The only key's report, which must be invalid.
    fn invalid_key(history: &[Operation]) -> SetKeyReport {
        let report = only_key(check(history));
        assert_eq!(report.valid, Validity::Invalid, "{report:?}");
        report
    }

    #[test]
    fn valid_history_with_concurrency() {
        let history = [
            read(0, json!([]), 0, 1),
            add(1, 1, 2, 3),
            add(2, 2, 4, 10),
            // Concurrent with the add of 2, so may return it or not.
            read(0, json!([1]), 5, 6),
            read(0, json!([2, 1]), 7, 8),
            operation(3, "add", json!("x"), Value::Null, 9, 10),
            read(1, json!([1, "x", 2]), 11, 12),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!(report.reads_checked, 4);
        assert_eq!(
            report.counts,
            SetCounts {
                attempted: 3,
                acknowledged: 3,
                ..SetCounts::default()
            }
        );
    }

    #[test]
    fn lost_acknowledged_add_is_invalid() {
        let history = [
            add(0, 1, 0, 1),
            add(1, 2, 0, 1),
            read(2, json!([2]), 2, 3),
            read(2, json!([2]), 4, 5),
        ];
        let report = invalid_key(&history);
        assert_eq!(report.counts.lost, 1);
        assert_eq!(
            report.lost,
            vec![LostElement {
                element: Element::Integer(1),
                add: history[0].clone(),
                seen_in: None,
                missing_from: history[2].clone(),
            }]
        );
    }

    #[test]
    fn element_disappearing_between_reads_is_invalid() {
        // The add is still pending, so only the first read shows 1 was in the set.
        let history = [
            add(0, 1, 0, 100),
            read(1, json!([1]), 2, 3),
            read(1, json!([]), 4, 5),
        ];
        let report = invalid_key(&history);
        assert_eq!(report.counts.lost, 1);
        let loss = &report.lost[0];
        assert_eq!(loss.add, history[0]);
        assert_eq!(loss.seen_in.as_ref(), Some(&history[1]));
        assert_eq!(loss.missing_from, history[2]);

        // Overlapping reads may disagree: the later one may have taken effect first.
        let concurrent = [
            add(0, 1, 0, 100),
            read(1, json!([1]), 2, 5),
            read(2, json!([]), 4, 6),
        ];
        assert_eq!(check(&concurrent).valid, Validity::Valid);
    }

    #[test]
    fn element_never_added_is_invalid() {
        let history = [add(0, 1, 0, 1), read(1, json!([1, 7]), 2, 3)];
        let report = invalid_key(&history);
        assert_eq!(report.counts.unexpected, 1);
        assert_eq!(
            report.unexpected,
            vec![UnexpectedElement {
                element: Element::Integer(7),
                reason: UnexpectedReason::NeverAdded,
                read: history[1].clone(),
                add: None,
            }]
        );
    }

    #[test]
    fn element_read_before_its_add_was_invoked_is_invalid() {
        let history = [read(0, json!([1]), 0, 1), add(1, 1, 2, 3)];
        let report = invalid_key(&history);
        assert_eq!(report.unexpected[0].reason, UnexpectedReason::ReadBeforeAdd);
        assert_eq!(report.unexpected[0].add.as_ref(), Some(&history[1]));
    }

    #[test]
    fn failed_add_that_shows_up_is_invalid() {
        let history = [
            add(0, 1, 0, 1),
            failed(add(1, 2, 2, 3)),
            read(0, json!([1]), 4, 5),
            read(0, json!([1, 2]), 6, 7),
            read(0, json!([1, 2]), 8, 9),
        ];
        let report = invalid_key(&history);
        // Counted once, at the first read that shows it.
        assert_eq!(report.counts.unexpected, 1);
        let unexpected = &report.unexpected[0];
        assert_eq!(unexpected.reason, UnexpectedReason::FailedAddTookEffect);
        assert_eq!(unexpected.read, history[3]);
        assert_eq!(unexpected.add.as_ref(), Some(&history[1]));
        assert_eq!(
            (report.counts.attempted, report.counts.acknowledged),
            (2, 1)
        );
        assert_eq!(report.counts.lost, 0);
    }

    #[test]
    fn indeterminate_add_that_shows_up_is_recovered() {
        let history = [
            indeterminate(add(0, 1, 0, 1)),
            read(1, json!([]), 2, 3),
            read(1, json!([1]), 4, 5),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!(report.counts.recovered, 1);
        assert_eq!(report.counts.acknowledged, 0);

        let never_shown = [indeterminate(add(0, 1, 0, 1)), read(1, json!([]), 2, 3)];
        let report = only_key(check(&never_shown));
        assert_eq!(report.valid, Validity::Valid);
        assert_eq!(report.counts.recovered, 0);

        // Once shown it is in the set, like any other element.
        let then_gone = [
            indeterminate(add(0, 1, 0, 1)),
            read(1, json!([1]), 2, 3),
            read(1, json!([]), 4, 5),
        ];
        assert_eq!(only_key(check(&then_gone)).counts.lost, 1);
    }

    #[test]
    fn acknowledged_element_without_later_read_is_never_read_not_lost() {
        let history = [
            add(0, 1, 0, 1),
            read(1, json!([]), 0, 5),
            add(0, 2, 2, 10),
            read(1, json!([1]), 6, 7),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!(report.counts.never_read, 1);
        assert_eq!(report.counts.lost, 0);
    }

    #[test]
    fn duplicate_in_a_read_is_invalid() {
        let history = [add(0, 1, 0, 1), read(1, json!([1, 1, 1]), 2, 3)];
        let report = invalid_key(&history);
        assert_eq!(report.counts.duplicated, 1);
        assert_eq!(
            report.duplicates,
            vec![DuplicateElement {
                element: Element::Integer(1),
                read: history[1].clone(),
                occurrences: 3,
            }]
        );
    }

    #[test]
    fn integer_and_string_elements_differ() {
        let history = [add(0, 1, 0, 1), read(1, json!(["1"]), 2, 3)];
        let report = only_key(check(&history));
        assert_eq!((report.counts.lost, report.counts.unexpected), (1, 1));
    }

    #[test]
    fn repeated_adds_of_an_element_count_their_earliest() {
        // The failed attempt is followed by one that succeeds: no violation.
        let history = [
            failed(add(0, 1, 0, 1)),
            add(0, 1, 2, 3),
            read(1, json!([1]), 4, 5),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!(
            (report.counts.attempted, report.counts.acknowledged),
            (1, 1)
        );
    }

    #[test]
    fn keys_are_checked_independently() {
        let history = [
            on_key(add(0, 1, 0, 1), "a"),
            on_key(read(1, json!([1]), 2, 3), "a"),
            on_key(read(1, json!([1]), 4, 5), "b"),
        ];
        let report = check(&history);
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(
            report
                .keys
                .iter()
                .map(|key| (key.key.as_deref(), key.valid))
                .collect::<Vec<_>>(),
            vec![(Some("a"), Validity::Valid), (Some("b"), Validity::Invalid)]
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let not_array = read(2, json!({"members": [1]}), 5, 6);
        let error = check_sets(&[not_array]).unwrap_err();
        assert_eq!((error.process, error.invoke_time), (2, 5));
        assert!(error.to_string().contains("not an array"), "{error}");
        assert!(check_sets(&[read(0, Value::Null, 0, 1)]).is_err());

        let object_add = operation(1, "add", json!({"x": 1}), Value::Null, 0, 1);
        let error = check_sets(&[object_add]).unwrap_err();
        assert!(
            error.to_string().contains("not an integer or string"),
            "{error}"
        );

        let float_member = read(0, json!([1.5]), 0, 1);
        assert!(check_sets(&[float_member]).is_err());
        let nested_member = read(0, json!([[1]]), 0, 1);
        assert!(check_sets(&[nested_member]).is_err());
        let unknown = operation(0, "remove", json!(1), Value::Null, 0, 1);
        assert!(check_sets(&[unknown]).is_err());
        // Reads without an answer carry nothing to check.
        let unanswered = indeterminate(read(0, json!("?"), 0, 1));
        assert_eq!(check(&[unanswered]).valid, Validity::Valid);
    }

    #[test]
    fn report_serializes_for_results_json() {
        let history = [
            on_key(operation(0, "add", json!("a"), Value::Null, 0, 1), "s"),
            on_key(read(1, json!([]), 2, 3), "s"),
        ];
        let json = serde_json::to_value(check(&history)).unwrap();
        assert_eq!(json["valid"], json!(false));
        let key = &json["keys"][0];
        assert_eq!(key["key"], json!("s"));
        assert_eq!(key["valid"], json!(false));
        assert_eq!(key["counts"]["lost"], json!(1));
        assert_eq!(key["lost"][0]["element"], json!("a"));
        assert_eq!(key["lost"][0]["seen_in"], Value::Null);
        assert_eq!(key["lost"][0]["missing_from"]["process"], json!(1));
        let reason = serde_json::to_value(UnexpectedReason::FailedAddTookEffect).unwrap();
        assert_eq!(reason, json!("failed_add_took_effect"));
    }

    /// Clients against a real set: each operation takes effect at one tick between its
    /// invocation and completion; some clients give up (info), and the add may have
    /// taken effect or not; some adds are refused (fail) without effect.
    fn simulated_history(seed: u64, operations: usize) -> Vec<Operation> {
        let mut generator = Generator(seed);
        let mut history = Vec::with_capacity(operations);
        let mut effect_times = Vec::with_capacity(operations);
        for index in 0..operations {
            let invoke_time = generator.below(10 * operations as u64);
            let effect_time = invoke_time + generator.below(30);
            let complete_time = effect_time + generator.below(30);
            let operation = if generator.below(3) == 0 {
                read(index as u64, Value::Null, invoke_time, complete_time)
            } else {
                add(index as u64, index as i64, invoke_time, complete_time)
            };
            let operation = match generator.below(10) {
                0 => failed(operation),
                1 => indeterminate(operation),
                _ => operation,
            };
            history.push(operation);
            effect_times.push(effect_time);
        }
        let mut order: Vec<usize> = (0..operations).collect();
        order.sort_by_key(|&index| effect_times[index]);
        let mut members = Vec::new();
        for index in order {
            let operation = &mut history[index];
            if !generator.takes_effect(operation.outcome) {
                continue;
            }
            if operation.function == "add" {
                members.push(operation.invoke_value.clone());
            } else if operation.outcome == Outcome::Ok {
                operation.completion_value = Value::Array(members.clone());
            }
        }
        history
    }

    #[test]
    fn simulated_histories_are_valid_until_corrupted() {
        for seed in 1..=20 {
            let history = simulated_history(seed, 300);
            let report = only_key(check(&history));
            assert_eq!(report.valid, Validity::Valid, "seed {seed}: {report:?}");
            assert!(report.reads_checked > 50, "seed {seed}");
            assert!(report.counts.recovered > 0, "seed {seed}");

            // The last read loses its first member.
            let last_read = history
                .iter()
                .enumerate()
                .filter(|(_, operation)| {
                    operation.function == "read"
                        && operation
                            .completion_value
                            .as_array()
                            .is_some_and(|m| m.len() > 1)
                })
                .max_by_key(|(_, operation)| operation.invoke_time)
                .map(|(index, _)| index)
                .unwrap();
            let mut lost = history.clone();
            let members = lost[last_read].completion_value.as_array_mut().unwrap();
            let removed = members.remove(0);
            assert_eq!(
                only_key(check(&lost)).counts.lost,
                1,
                "seed {seed}: {removed}"
            );

            // Or returns a member nobody added.
            let mut invented = history.clone();
            let members = invented[last_read].completion_value.as_array_mut().unwrap();
            members.push(json!(-1));
            assert_eq!(
                only_key(check(&invented)).counts.unexpected,
                1,
                "seed {seed}"
            );
        }
    }
}
