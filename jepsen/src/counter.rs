//! Checking counters: keys that clients only increment (Redis INCRBY) and read.
//!
//! A counter's value is the sum of the increments applied so far, so each read can be
//! bounded without searching for an order. It must include every increment acknowledged
//! before the read was invoked, and may include at most the increments of adds invoked
//! before it completed that did not fail. Below that window an acknowledged increment was
//! lost; above it the store invented one, or applied an add it reported as failed.
//!
//! INCRBY answers with the counter's new value. Where the client recorded it, that value
//! is bounded the same way, with the add's own increment always included. It also tells
//! which stretch of the counter's growth the add made, (new value - increment, new value],
//! and since each applied add grows the counter by its own stretch, two adds whose
//! stretches overlap cannot both be right: one of them overwrote the other's effect.
//!
//! Increments must be non-negative: the workload only counts up, and a negative one would
//! turn each bound's contributions around. It is reported as malformed instead.
//!
//! As in the register checker, an operation completed "before" another only if its
//! completion time is strictly earlier than the other's invocation; at equal timestamps
//! the two count as concurrent, which can hide a violation but never invent one.

use serde::Serialize;
use serde_json::Value;

use crate::history::{Operation, Outcome};
use crate::linearizable::{MalformedOperation, Validity};
use crate::report::{check_by_key, Report};

/// Violations of each kind shown per key: the earliest invoked, enough to start from.
const EVIDENCE_LIMIT: usize = 8;

/// A read, or an add's returned value, outside the window of values it could show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutOfBounds {
    /// The read, or the acknowledged add whose returned value is out of bounds.
    pub operation: Operation,
    /// What the operation saw; a read of null counts as 0.
    pub value: i64,
    /// Increments acknowledged before the operation was invoked, plus an add's own.
    pub lower: i64,
    /// Increments of adds, acknowledged or indeterminate, invoked before the operation
    /// completed.
    pub upper: i64,
}

/// Two acknowledged adds whose returned values claim overlapping stretches of the
/// counter's growth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConflictingReturns {
    /// The one with the lower returned value.
    pub first: Operation,
    pub second: Operation,
}

/// The check of one key's counter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CounterKeyReport {
    /// None for operations recorded without a key.
    pub key: Option<String>,
    pub valid: Validity,
    /// Reads that completed `ok`.
    pub reads_checked: usize,
    /// Acknowledged adds that recorded the counter's new value.
    pub returns_checked: usize,
    /// Values below their lower bound: an acknowledged increment was lost.
    pub lost_count: usize,
    pub lost: Vec<OutOfBounds>,
    /// Values above their upper bound: an increment was invented, or a failed add took
    /// effect.
    pub invented_count: usize,
    pub invented: Vec<OutOfBounds>,
    /// Pairs found adjacent in order of returned value; any overlap shows up as one.
    pub conflicting_returns_count: usize,
    pub conflicting_returns: Vec<ConflictingReturns>,
}

/// The check of a whole history; never unknown.
pub type CounterReport = Report<CounterKeyReport>;

/// Checks each key as an independent counter that starts at 0 (absent). Every operation
/// is validated first, so a malformed history fails before anything is checked.
pub fn check_counters(operations: &[Operation]) -> Result<CounterReport, MalformedOperation> {
    check_by_key(operations, KeyHistory::record, check_key, |key| key.valid)
}

/// An add that was acknowledged or is indeterminate; failed ones never count.
struct Add<'a> {
    source: &'a Operation,
    increment: i64,
    /// The counter's new value, where an acknowledged add recorded it.
    returned: Option<i64>,
}

struct Read<'a> {
    source: &'a Operation,
    value: i64,
}

#[derive(Default)]
struct KeyHistory<'a> {
    adds: Vec<Add<'a>>,
    reads: Vec<Read<'a>>,
    /// Sum of all counted increments, kept so that no partial sum can overflow.
    total: i64,
}

impl<'a> KeyHistory<'a> {
    fn record(&mut self, operation: &'a Operation) -> Result<(), MalformedOperation> {
        let malformed = |reason| MalformedOperation::of(operation, reason);
        match operation.function.as_str() {
            "add" => {
                let increment = operation
                    .invoke_value
                    .as_i64()
                    .filter(|increment| *increment >= 0)
                    .ok_or_else(|| {
                        malformed(format!(
                            "add of {}, not a non-negative integer",
                            operation.invoke_value
                        ))
                    })?;
                let returned = match (&operation.outcome, &operation.completion_value) {
                    (Outcome::Ok, Value::Null) | (Outcome::Fail | Outcome::Info, _) => None,
                    (Outcome::Ok, value) => Some(value.as_i64().ok_or_else(|| {
                        malformed(format!("add returned {value}, not an integer or null"))
                    })?),
                };
                if operation.outcome == Outcome::Fail {
                    return Ok(());
                }
                self.total = self.total.checked_add(increment).ok_or_else(|| {
                    malformed("increments on this key add up past i64::MAX".to_string())
                })?;
                self.adds.push(Add {
                    source: operation,
                    increment,
                    returned,
                });
            }
            "read" => {
                if operation.outcome != Outcome::Ok {
                    return Ok(());
                }
                let value = match &operation.completion_value {
                    Value::Null => 0,
                    value => value.as_i64().ok_or_else(|| {
                        malformed(format!("read returned {value}, not an integer or null"))
                    })?,
                };
                self.reads.push(Read {
                    source: operation,
                    value,
                });
            }
            other => return Err(malformed(format!("{other:?} is not a counter operation"))),
        }
        Ok(())
    }
}

/// Increments summed in time order, to look up how much had accrued by a given time.
struct RunningTotal {
    times: Vec<u64>,
    /// `totals[i]` is the sum of the first `i` increments, so it has one more entry.
    totals: Vec<i64>,
}

impl RunningTotal {
    /// The increments' sum must fit in an i64, as [`KeyHistory::total`] ensures.
    fn new(mut entries: Vec<(u64, i64)>) -> Self {
        entries.sort_unstable_by_key(|&(time, _)| time);
        let mut totals = Vec::with_capacity(entries.len() + 1);
        let mut total = 0;
        totals.push(total);
        for &(_, increment) in &entries {
            total += increment;
            totals.push(total);
        }
        RunningTotal {
            times: entries.into_iter().map(|(time, _)| time).collect(),
            totals,
        }
    }

    fn strictly_before(&self, time: u64) -> i64 {
        self.totals[self.times.partition_point(|&at| at < time)]
    }

    fn up_to(&self, time: u64) -> i64 {
        self.totals[self.times.partition_point(|&at| at <= time)]
    }
}

fn check_key(key: Option<&str>, history: KeyHistory) -> CounterKeyReport {
    let acknowledged = RunningTotal::new(
        history
            .adds
            .iter()
            .filter(|add| add.source.outcome == Outcome::Ok)
            .map(|add| (add.source.complete_time, add.increment))
            .collect(),
    );
    let invoked = RunningTotal::new(
        history
            .adds
            .iter()
            .map(|add| (add.source.invoke_time, add.increment))
            .collect(),
    );
    let bounded = |operation: &Operation, value: i64, own_increment: i64| OutOfBounds {
        operation: operation.clone(),
        value,
        // An add is not acknowledged before its own invocation, so this stays within
        // the key's total.
        lower: acknowledged.strictly_before(operation.invoke_time) + own_increment,
        upper: invoked.up_to(operation.complete_time),
    };
    let read_checks = history
        .reads
        .iter()
        .map(|read| bounded(read.source, read.value, 0));
    let returning: Vec<&Add> = history
        .adds
        .iter()
        .filter(|add| add.returned.is_some())
        .collect();
    let return_checks = returning.iter().filter_map(|add| {
        add.returned
            .map(|value| bounded(add.source, value, add.increment))
    });
    let mut checks: Vec<OutOfBounds> = read_checks
        .chain(return_checks)
        .filter(|check| check.value < check.lower || check.value > check.upper)
        .collect();
    checks.sort_by_key(|check| (check.operation.invoke_time, check.operation.process));
    let (lost, invented): (Vec<OutOfBounds>, Vec<OutOfBounds>) = checks
        .into_iter()
        .partition(|check| check.value < check.lower);
    let conflicting_returns = conflicting_returns(&returning);

    let valid = if lost.is_empty() && invented.is_empty() && conflicting_returns.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    CounterKeyReport {
        key: key.map(str::to_string),
        valid,
        reads_checked: history.reads.len(),
        returns_checked: returning.len(),
        lost_count: lost.len(),
        lost: first_few(lost),
        invented_count: invented.len(),
        invented: first_few(invented),
        conflicting_returns_count: conflicting_returns.len(),
        conflicting_returns: first_few(conflicting_returns),
    }
}

/// Finds adds whose stretches (returned - increment, returned] overlap. In order of
/// returned value, an overlap between any two implies one between neighbours, so
/// comparing neighbours finds every conflicting add. Zero increments grow nothing and
/// cannot conflict.
fn conflicting_returns(returning: &[&Add]) -> Vec<ConflictingReturns> {
    let mut stretches: Vec<(i64, i64, &Operation)> = returning
        .iter()
        .filter(|add| add.increment > 0)
        .filter_map(|add| {
            add.returned
                .map(|returned| (returned, add.increment, add.source))
        })
        .collect();
    stretches.sort_by_key(|&(returned, _, source)| (returned, source.invoke_time, source.process));
    stretches
        .windows(2)
        .filter_map(|pair| {
            let [(first_end, _, first), (second_end, second_increment, second)] = pair else {
                return None;
            };
            // Widened: a returned value near i64::MIN minus its increment would overflow.
            let second_start = i128::from(*second_end) - i128::from(*second_increment);
            (i128::from(*first_end) > second_start).then(|| ConflictingReturns {
                first: (*first).clone(),
                second: (*second).clone(),
            })
        })
        .collect()
}

fn first_few<T>(mut evidence: Vec<T>) -> Vec<T> {
    evidence.truncate(EVIDENCE_LIMIT);
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        add, assert_only_key_b_invalid, failed, indeterminate, on_key, only_key, only_key_b_wrong,
        operation, read, Generator,
    };
    use serde_json::json;

    fn add_returning(
        process: u64,
        increment: i64,
        returned: i64,
        invoke_time: u64,
        complete_time: u64,
    ) -> Operation {
        Operation {
            completion_value: json!(returned),
            ..add(process, increment, invoke_time, complete_time)
        }
    }

    fn check(operations: &[Operation]) -> CounterReport {
        check_counters(operations).unwrap()
    }

    #[test]
    fn valid_concurrent_history() {
        let history = [
            read(0, None, 0, 1),
            add(1, 1, 2, 10),
            add(2, 2, 3, 6),
            // Concurrent with both adds: anything from 0 to 3 would do.
            read(0, Some(2), 4, 5),
            // The add of 2 was acknowledged before this read, the add of 1 is concurrent.
            read(0, Some(2), 7, 8),
            read(3, Some(3), 9, 11),
            add_returning(0, 1, 4, 12, 13),
            read(1, Some(4), 14, 15),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid, "{report:?}");
        assert_eq!((report.reads_checked, report.returns_checked), (5, 1));
        assert_eq!(
            (
                report.lost_count,
                report.invented_count,
                report.conflicting_returns_count
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn lost_increment_is_invalid_with_the_read_and_its_bounds() {
        let history = [
            add(0, 1, 0, 1),
            add(1, 1, 2, 3),
            add(2, 5, 4, 20),
            read(0, Some(1), 10, 11),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!((report.lost_count, report.invented_count), (1, 0));
        assert_eq!(
            report.lost,
            vec![OutOfBounds {
                operation: history[3].clone(),
                value: 1,
                lower: 2,
                upper: 7,
            }]
        );
    }

    #[test]
    fn invented_increment_is_invalid() {
        let history = [add(0, 1, 0, 1), read(1, Some(2), 2, 3)];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!((report.lost_count, report.invented_count), (0, 1));
        assert_eq!(report.invented[0].operation, history[1]);
        assert_eq!((report.invented[0].lower, report.invented[0].upper), (1, 1));
    }

    #[test]
    fn read_cannot_see_an_add_invoked_after_it_completed() {
        let history = [read(0, Some(1), 0, 1), add(1, 1, 2, 3)];
        assert_eq!(check(&history).valid, Validity::Invalid);
        // Invoked at the very time the read completed, the add counts as concurrent.
        let touching = [read(0, Some(1), 0, 2), add(1, 1, 2, 3)];
        assert_eq!(check(&touching).valid, Validity::Valid);
    }

    #[test]
    fn failed_add_that_shows_up_is_invalid() {
        let not_shown = [
            add(0, 1, 0, 1),
            failed(add(1, 1, 2, 3)),
            read(0, Some(1), 4, 5),
        ];
        assert_eq!(check(&not_shown).valid, Validity::Valid);
        let shown = [
            add(0, 1, 0, 1),
            failed(add(1, 1, 2, 3)),
            read(0, Some(2), 4, 5),
        ];
        let report = only_key(check(&shown));
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(report.invented_count, 1);
        assert_eq!((report.invented[0].lower, report.invented[0].upper), (1, 1));
    }

    #[test]
    fn indeterminate_add_may_or_may_not_show() {
        for seen in [1, 2] {
            let history = [
                add(0, 1, 0, 1),
                indeterminate(add(1, 1, 2, 3)),
                read(0, Some(seen), 100, 101),
            ];
            assert_eq!(check(&history).valid, Validity::Valid, "read {seen}");
        }
        // It may also show up late, after reads that missed it.
        let late = [
            add(0, 1, 0, 1),
            indeterminate(add(1, 1, 2, 3)),
            read(0, Some(1), 100, 101),
            read(0, Some(2), 200, 201),
        ];
        assert_eq!(check(&late).valid, Validity::Valid);
        // But not twice.
        let twice = [indeterminate(add(1, 1, 2, 3)), read(0, Some(2), 100, 101)];
        assert_eq!(check(&twice).valid, Validity::Invalid);
    }

    #[test]
    fn returned_value_outside_its_window_is_invalid() {
        let too_high = [add_returning(0, 1, 1, 0, 1), add_returning(0, 1, 3, 2, 3)];
        let report = only_key(check(&too_high));
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(report.invented_count, 1);
        let evidence = &report.invented[0];
        assert_eq!(evidence.operation, too_high[1]);
        assert_eq!((evidence.value, evidence.lower, evidence.upper), (3, 2, 2));

        // The second add returns what the first did: the first's increment was lost.
        let too_low = [add_returning(0, 1, 1, 0, 1), add_returning(1, 1, 1, 2, 3)];
        let report = only_key(check(&too_low));
        assert_eq!(report.valid, Validity::Invalid);
        assert_eq!(report.lost_count, 1);
        assert_eq!(report.lost[0].operation, too_low[1]);
        assert_eq!((report.lost[0].lower, report.lost[0].upper), (2, 2));
    }

    #[test]
    fn concurrent_adds_returning_the_same_value_conflict() {
        // Each value lies within its window, but two increments cannot both have taken
        // the counter from 0 to 1.
        let history = [
            add_returning(0, 1, 1, 0, 10),
            add_returning(1, 1, 1, 1, 11),
            read(2, Some(1), 12, 13),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Invalid);
        // The read misses one acknowledged increment as well.
        assert_eq!((report.lost_count, report.invented_count), (1, 0));
        assert_eq!(report.conflicting_returns_count, 1);
        assert_eq!(
            report.conflicting_returns,
            vec![ConflictingReturns {
                first: history[0].clone(),
                second: history[1].clone(),
            }]
        );

        // Stretches (0, 2] and (1, 3] overlap although no value repeats.
        let overlapping = [add_returning(0, 2, 2, 0, 10), add_returning(1, 2, 3, 1, 11)];
        assert_eq!(only_key(check(&overlapping)).conflicting_returns_count, 1);
        let adjoining = [add_returning(0, 2, 2, 0, 10), add_returning(1, 1, 3, 1, 11)];
        assert_eq!(check(&adjoining).valid, Validity::Valid);
        // Adds of zero leave the counter as it was, so equal returns are expected.
        let zero = [add_returning(0, 0, 0, 0, 10), add_returning(1, 0, 0, 1, 11)];
        assert_eq!(check(&zero).valid, Validity::Valid);
    }

    #[test]
    fn keys_are_checked_independently() {
        let report = check(&only_key_b_wrong(add));
        let verdicts = report
            .keys
            .iter()
            .map(|key| (key.key.as_deref(), key.valid));
        assert_only_key_b_invalid(report.valid, verdicts.collect());
    }

    #[test]
    fn evidence_is_capped_but_counted() {
        let mut history = vec![add(0, 1, 0, 1)];
        history.extend((0..20).map(|index| read(1, Some(0), 10 + 2 * index, 11 + 2 * index)));
        let report = only_key(check(&history));
        assert_eq!(report.lost_count, 20);
        assert_eq!(report.lost.len(), EVIDENCE_LIMIT);
        assert_eq!(report.lost[0].operation, history[1]);
    }

    #[test]
    fn malformed_operations_are_errors() {
        let negative = add(3, -1, 7, 8);
        let error = check_counters(&[negative]).unwrap_err();
        assert_eq!((error.process, error.invoke_time), (3, 7));
        assert!(error.to_string().contains("non-negative"), "{error}");

        let fractional = operation(0, "add", json!(1.5), Value::Null, 0, 1);
        assert!(check_counters(&[fractional]).is_err());
        // Even a failed add must say what it tried to add.
        let failed_text = failed(operation(0, "add", json!("one"), Value::Null, 0, 1));
        assert!(check_counters(&[failed_text]).is_err());
        let bad_return = operation(0, "add", json!(1), json!("2"), 0, 1);
        assert!(check_counters(&[bad_return]).is_err());
        let bad_read = operation(0, "read", Value::Null, json!([1]), 0, 1);
        assert!(check_counters(&[bad_read]).is_err());
        let unknown = operation(0, "write", json!(1), Value::Null, 0, 1);
        assert!(check_counters(&[unknown]).is_err());
        let overflow = [add(0, i64::MAX, 0, 1), indeterminate(add(1, 1, 2, 3))];
        let error = check_counters(&overflow).unwrap_err();
        assert_eq!(error.process, 1);
    }

    #[test]
    fn unanswered_reads_are_ignored() {
        let history = [
            add(0, 1, 0, 1),
            indeterminate(read(1, None, 2, 3)),
            failed(operation(2, "read", Value::Null, json!("?"), 4, 5)),
        ];
        let report = only_key(check(&history));
        assert_eq!(report.valid, Validity::Valid);
        assert_eq!(report.reads_checked, 0);
    }

    #[test]
    fn report_serializes_for_results_json() {
        let report = check(&[
            on_key(add(0, 1, 0, 1), "c"),
            on_key(read(1, None, 2, 3), "c"),
        ]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["valid"], json!(false));
        let key = &json["keys"][0];
        assert_eq!(key["key"], json!("c"));
        assert_eq!(key["valid"], json!(false));
        assert_eq!(key["lost_count"], json!(1));
        assert_eq!(key["lost"][0]["value"], json!(0));
        assert_eq!(key["lost"][0]["lower"], json!(1));
        assert_eq!(key["lost"][0]["operation"]["f"], json!("read"));
        assert_eq!(serde_json::to_value(check(&[]).valid).unwrap(), json!(true));
    }

    /// Clients against a real counter: each operation takes effect at one tick between
    /// its invocation and completion; some clients give up (info), before or after the
    /// effect, and some adds are refused (fail) without effect.
    fn simulated_history(seed: u64, operations: usize) -> Vec<Operation> {
        let mut generator = Generator(seed);
        let mut counter = 0;
        let mut history = Vec::with_capacity(operations);
        // Per operation: when it takes effect and when it completes.
        let mut schedule: Vec<(u64, u64)> = Vec::with_capacity(operations);
        for index in 0..operations {
            let invoke_time = generator.below(10 * operations as u64);
            let effect_time = invoke_time + generator.below(30);
            let complete_time = effect_time + generator.below(30);
            let operation = if generator.below(3) == 0 {
                read(index as u64, None, invoke_time, complete_time)
            } else {
                add(
                    index as u64,
                    1 + generator.below(3) as i64,
                    invoke_time,
                    complete_time,
                )
            };
            let operation = match generator.below(10) {
                0 => failed(operation),
                1 => indeterminate(operation),
                _ => operation,
            };
            history.push(operation);
            schedule.push((effect_time, complete_time));
        }
        let mut order: Vec<usize> = (0..operations).collect();
        order.sort_by_key(|&index| schedule[index].0);
        for index in order {
            let operation = &mut history[index];
            if !generator.takes_effect(operation.outcome) {
                continue;
            }
            if operation.function == "add" {
                counter += operation.invoke_value.as_i64().unwrap();
                if generator.below(2) == 0 && operation.outcome == Outcome::Ok {
                    operation.completion_value = json!(counter);
                }
            } else if operation.outcome == Outcome::Ok {
                operation.completion_value = json!(counter);
            }
        }
        history
    }

    #[test]
    fn simulated_histories_are_valid_until_corrupted() {
        for seed in 1..=20 {
            let history = simulated_history(seed, 300);
            let report = check(&history);
            assert_eq!(report.valid, Validity::Valid, "seed {seed}: {report:?}");
            let observed = report.keys[0].reads_checked + report.keys[0].returns_checked;
            assert!(observed > 50, "seed {seed}: only {observed} observations");

            let read_index = history
                .iter()
                .position(|operation| {
                    operation.function == "read" && operation.outcome == Outcome::Ok
                })
                .unwrap();
            // More than all the adds together could make.
            let mut invented = history.clone();
            invented[read_index].completion_value = json!(1_000);
            let report = check(&invented);
            assert_eq!(report.keys[0].invented_count, 1, "seed {seed}: {report:?}");
            // Below any lower bound.
            let mut lost = history.clone();
            lost[read_index].completion_value = json!(-1);
            let report = check(&lost);
            assert_eq!(report.keys[0].lost_count, 1, "seed {seed}: {report:?}");
        }
    }
}
