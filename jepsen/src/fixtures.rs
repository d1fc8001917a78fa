//! Hand-written operations for the checkers' tests.

use crate::history::{Operation, Outcome, NEVER};
use crate::linearizable::Validity;
use crate::report::Report;
use serde_json::{json, Value};

/// An operation of the default key that completed `ok`.
pub fn operation(
    process: u64,
    function: &str,
    invoke_value: Value,
    completion_value: Value,
    invoke_time: u64,
    complete_time: u64,
) -> Operation {
    Operation {
        process,
        function: function.to_string(),
        key: None,
        invoke_value,
        outcome: Outcome::Ok,
        completion_value,
        invoke_time,
        complete_time,
        error: None,
    }
}

/// An add (Redis INCRBY or SADD) of `value` that recorded no answer.
pub fn add(process: u64, value: i64, invoke_time: u64, complete_time: u64) -> Operation {
    operation(
        process,
        "add",
        json!(value),
        Value::Null,
        invoke_time,
        complete_time,
    )
}

/// A read that saw `seen` (None: nothing).
pub fn read(process: u64, seen: Option<i64>, invoke_time: u64, complete_time: u64) -> Operation {
    operation(
        process,
        "read",
        Value::Null,
        json!(seen),
        invoke_time,
        complete_time,
    )
}

pub fn failed(mut operation: Operation) -> Operation {
    operation.outcome = Outcome::Fail;
    operation
}

/// The operation as a client that timed out records it: no answer, no end.
pub fn indeterminate(mut operation: Operation) -> Operation {
    operation.outcome = Outcome::Info;
    operation.completion_value = Value::Null;
    operation.complete_time = NEVER;
    operation
}

pub fn on_key(mut operation: Operation, key: &str) -> Operation {
    operation.key = Some(key.to_string());
    operation
}

/// A history on keys "a", "b" and none in which only key b is wrong: `update` (process,
/// value, invoke time, complete time) sets a to 1 and b to 5, and b's read sees 1.
pub fn only_key_b_wrong(update: fn(u64, i64, u64, u64) -> Operation) -> [Operation; 5] {
    [
        on_key(update(0, 1, 0, 1), "a"),
        on_key(update(1, 5, 0, 1), "b"),
        on_key(read(0, Some(1), 2, 3), "a"),
        on_key(read(1, Some(1), 2, 3), "b"),
        read(2, None, 4, 5),
    ]
}

/// Checks the verdicts on [`only_key_b_wrong`]'s history: overall, then of each key.
pub fn assert_only_key_b_invalid(valid: Validity, key_verdicts: Vec<(Option<&str>, Validity)>) {
    assert_eq!(valid, Validity::Invalid);
    assert_eq!(
        key_verdicts,
        vec![
            (None, Validity::Valid),
            (Some("a"), Validity::Valid),
            (Some("b"), Validity::Invalid),
        ]
    );
}

/// A tiny xorshift generator, so generated histories are the same on every run.
pub struct Generator(pub u64);

impl Generator {
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }

    /// Whether an operation with this outcome took effect: an indeterminate one did or
    /// did not, at random.
    pub fn takes_effect(&mut self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info => self.below(2) == 0,
        }
    }
}

/// The report of the history's one key.
pub fn only_key<K: std::fmt::Debug>(mut report: Report<K>) -> K {
    assert_eq!(report.keys.len(), 1, "{report:?}");
    report.keys.remove(0)
}
