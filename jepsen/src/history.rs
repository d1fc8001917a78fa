//! Operation histories in Jepsen's format.
//!
//! A test records each client request twice: an `invoke` event when it is sent and a
//! completion (`ok`, `fail` or `info`) when the answer arrives or the client gives up.
//! Nemesis actions go into the same stream so a reader can see which faults were active
//! when. Events are stored as JSON lines with Jepsen's field names, so the files read like
//! any other Jepsen history and stay readable if a test dies half-way.
//! [`pair_operations`] turns the event stream into one record per client operation, which
//! is what checkers consume.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Completion time of an operation that may take effect at any time after its
/// invocation: one that ended `info` or never completed.
pub const NEVER: u64 = u64::MAX;

const NEMESIS: &str = "nemesis";

/// Who recorded an event. Serialized as Jepsen does: the client's integer id, or the
/// string `"nemesis"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => serializer.serialize_u64(*id),
            Process::Nemesis => serializer.serialize_str(NEMESIS),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ProcessVisitor)
    }
}

struct ProcessVisitor;

impl Visitor<'_> for ProcessVisitor {
    type Value = Process;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a non-negative integer client id or \"nemesis\"")
    }

    fn visit_u64<E: de::Error>(self, id: u64) -> Result<Process, E> {
        Ok(Process::Client(id))
    }

    fn visit_i64<E: de::Error>(self, id: i64) -> Result<Process, E> {
        u64::try_from(id)
            .map(Process::Client)
            .map_err(|_| E::invalid_value(Unexpected::Signed(id), &self))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Process, E> {
        if name == NEMESIS {
            Ok(Process::Nemesis)
        } else {
            Err(E::invalid_value(Unexpected::Str(name), &self))
        }
    }
}

/// Jepsen's event types: `invoke` starts an operation; `ok` (it happened), `fail` (it
/// definitely did not happen) and `info` (unknown: it may happen at any later time, or
/// never) complete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub process: Process,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// What was asked: "read", "write", "cas", or for the nemesis e.g. "start-partition".
    #[serde(rename = "f")]
    pub function: String,
    /// For registers: read is null on invoke and the value read (or null) on `ok`;
    /// write is the integer written; cas is `[expected, new]`.
    #[serde(default)]
    pub value: Value,
    /// Nanoseconds since the test started.
    pub time: u64,
    /// The register's key, for workloads that use several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends one event as a JSON line, so a runner can record as it goes.
pub fn write_event<W: Write>(mut writer: W, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut writer, event)?;
    writer.write_all(b"\n")
}

/// Writes a whole history as JSON lines.
pub fn write_history<W: Write>(mut writer: W, events: &[Event]) -> io::Result<()> {
    for event in events {
        write_event(&mut writer, event)?;
    }
    writer.flush()
}

/// Why a history file could not be read; `line` counts from 1.
#[derive(Debug)]
pub enum ReadHistoryError {
    Io { line: usize, source: io::Error },
    Malformed { line: usize, reason: String },
}

impl fmt::Display for ReadHistoryError {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ReadHistoryError::Io { line, source } => {
                write!(formatter, "history line {line}: cannot read: {source}")
            }
            ReadHistoryError::Malformed { line, reason } => {
                write!(formatter, "history line {line}: {reason}")
            }
        }
    }
}

impl std::error::Error for ReadHistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadHistoryError::Io { source, .. } => Some(source),
            ReadHistoryError::Malformed { .. } => None,
        }
    }
}

/// Reads a history written as JSON lines. Blank lines are skipped: they carry nothing
/// and are easy to leave behind when a file is edited by hand.
pub fn read_history<R: BufRead>(reader: R) -> Result<Vec<Event>, ReadHistoryError> {
    let mut events = Vec::new();
    for (index, text) in reader.lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|source| ReadHistoryError::Io { line, source })?;
        if text.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&text).map_err(|error| ReadHistoryError::Malformed {
            line,
            reason: describe_json_error(&error),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// serde_json ends its messages with "at line 1 column N", which would contradict the
/// history line number around it; keep only the column.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(reason) => format!("{reason} (column {})", error.column()),
        None => message,
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// Indeterminate, or the history ended before the operation completed.
    Info,
}

/// A client operation: its invocation joined with its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation {
    pub process: u64,
    #[serde(rename = "f")]
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub invoke_value: Value,
    pub outcome: Outcome,
    /// Null when the operation never completed.
    pub completion_value: Value,
    pub invoke_time: u64,
    /// [`NEVER`] for `info` outcomes: such an operation may take effect at any time after
    /// its invocation. Serialized as null.
    #[serde(serialize_with = "serialize_completion_time")]
    pub complete_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn serialize_completion_time<S: Serializer>(time: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    if *time == NEVER {
        serializer.serialize_none()
    } else {
        serializer.serialize_u64(*time)
    }
}

/// Why events could not be paired; `index` is the event's position in the history,
/// counting from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingError {
    InvokeWhilePending {
        process: u64,
        index: usize,
        pending_index: usize,
    },
    CompletionWithoutInvoke {
        process: u64,
        index: usize,
    },
    MismatchedCompletion {
        process: u64,
        index: usize,
        reason: String,
    },
}

impl fmt::Display for PairingError {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PairingError::InvokeWhilePending {
                process,
                index,
                pending_index,
            } => write!(
                formatter,
                "event {index}: process {process} invokes again before its invocation at \
                 event {pending_index} completed"
            ),
            PairingError::CompletionWithoutInvoke { process, index } => write!(
                formatter,
                "event {index}: process {process} completes an operation it never invoked"
            ),
            PairingError::MismatchedCompletion {
                process,
                index,
                reason,
            } => write!(formatter, "event {index}: process {process}: {reason}"),
        }
    }
}

impl std::error::Error for PairingError {}

/// Joins each client invocation with the next completion of the same process, in
/// invocation order. Operations still pending when the history ends count as `info`.
/// Nemesis events are left out: they describe faults, not operations a checker must
/// order. After an `info` completion the process may invoke again (Jepsen would switch
/// to a fresh process id, but nothing is ambiguous if a client reuses its own).
pub fn pair_operations(events: &[Event]) -> Result<Vec<Operation>, PairingError> {
    let mut operations: Vec<Operation> = Vec::new();
    // For each process with an outstanding invocation: its index in `operations` and
    // the invoking event's index, for error messages.
    let mut pending: HashMap<u64, (usize, usize)> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let Process::Client(process) = event.process else {
            continue;
        };
        let outcome = match event.event_type {
            EventType::Invoke => {
                match pending.entry(process) {
                    Entry::Occupied(entry) => {
                        return Err(PairingError::InvokeWhilePending {
                            process,
                            index,
                            pending_index: entry.get().1,
                        })
                    }
                    Entry::Vacant(entry) => entry.insert((operations.len(), index)),
                };
                operations.push(Operation {
                    process,
                    function: event.function.clone(),
                    key: event.key.clone(),
                    invoke_value: event.value.clone(),
                    outcome: Outcome::Info,
                    completion_value: Value::Null,
                    invoke_time: event.time,
                    complete_time: NEVER,
                    error: None,
                });
                continue;
            }
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            EventType::Info => Outcome::Info,
        };
        let Some((operation_index, _)) = pending.remove(&process) else {
            return Err(PairingError::CompletionWithoutInvoke { process, index });
        };
        let operation = &mut operations[operation_index];
        let mismatch = |reason: String| PairingError::MismatchedCompletion {
            process,
            index,
            reason,
        };
        if event.function != operation.function {
            return Err(mismatch(format!(
                "completes {:?} but invoked {:?}",
                event.function, operation.function
            )));
        }
        match (&operation.key, &event.key) {
            (Some(invoked), Some(completed)) if invoked != completed => {
                return Err(mismatch(format!(
                    "completes key {completed:?} but invoked key {invoked:?}"
                )));
            }
            (None, Some(completed)) => operation.key = Some(completed.clone()),
            _ => {}
        }
        if event.time < operation.invoke_time {
            return Err(mismatch(format!(
                "completes at {} ns, before its invocation at {} ns",
                event.time, operation.invoke_time
            )));
        }
        operation.outcome = outcome;
        operation.completion_value = event.value.clone();
        operation.error = event.error.clone();
        if outcome != Outcome::Info {
            operation.complete_time = event.time;
        }
    }
    Ok(operations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(
        process: Process,
        event_type: EventType,
        function: &str,
        value: Value,
        time: u64,
    ) -> Event {
        Event {
            process,
            event_type,
            function: function.to_string(),
            value,
            time,
            key: None,
            error: None,
        }
    }

    fn client(id: u64) -> Process {
        Process::Client(id)
    }

    #[test]
    fn json_lines_round_trip_with_nemesis_events() {
        let partition = event(
            Process::Nemesis,
            EventType::Info,
            "start-partition",
            json!("majority"),
            5,
        );
        let mut timed_out = event(client(1), EventType::Info, "cas", json!([1, 2]), 40);
        timed_out.error = Some("timeout".to_string());
        let mut keyed_write = event(client(0), EventType::Invoke, "write", json!(3), 1);
        keyed_write.key = Some("r1".to_string());
        let history = vec![
            keyed_write,
            event(client(1), EventType::Invoke, "cas", json!([1, 2]), 2),
            partition,
            event(client(0), EventType::Ok, "write", json!(3), 10),
            event(client(2), EventType::Invoke, "read", Value::Null, 11),
            event(client(2), EventType::Ok, "read", Value::Null, 12),
            timed_out,
            event(
                Process::Nemesis,
                EventType::Info,
                "stop-partition",
                Value::Null,
                50,
            ),
        ];
        let mut bytes = Vec::new();
        write_history(&mut bytes, &history).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), history.len());
        assert!(text.contains(r#""process":"nemesis""#), "{text}");
        assert!(text.contains(r#""type":"invoke""#), "{text}");
        assert!(text.contains(r#""key":"r1""#), "{text}");
        assert!(text.contains(r#""error":"timeout""#), "{text}");
        assert_eq!(read_history(bytes.as_slice()).unwrap(), history);
    }

    #[test]
    fn reading_accepts_jepsen_lines_without_value_or_key() {
        let text = "{\"process\":3,\"type\":\"invoke\",\"f\":\"read\",\"time\":7}\n\n";
        let events = read_history(text.as_bytes()).unwrap();
        assert_eq!(
            events,
            vec![event(client(3), EventType::Invoke, "read", Value::Null, 7)]
        );
    }

    #[test]
    fn malformed_line_is_reported_with_its_number() {
        let text = concat!(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time\":1}\n",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time\":2}\n",
            "{\"process\":\"client\",\"type\":\"invoke\",\"f\":\"read\",\"time\":3}\n",
        );
        let error = read_history(text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ReadHistoryError::Malformed { line: 3, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("history line 3: "), "{message}");
        assert!(message.contains("nemesis"), "{message}");
        assert!(!message.contains("at line 1"), "{message}");

        let missing_time = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let message = read_history(missing_time.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("line 1") && message.contains("time"),
            "{message}"
        );

        let bad_type = "\n{\"process\":0,\"type\":\"done\",\"f\":\"read\",\"time\":1}\n";
        let error = read_history(bad_type.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ReadHistoryError::Malformed { line: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn pairing_across_processes_with_info_and_process_reuse() {
        let mut timeout = event(client(1), EventType::Info, "write", Value::Null, 6);
        timeout.error = Some("timeout".to_string());
        let history = vec![
            event(client(0), EventType::Invoke, "write", json!(1), 1),
            event(client(1), EventType::Invoke, "write", json!(2), 2),
            event(
                Process::Nemesis,
                EventType::Info,
                "start-partition",
                Value::Null,
                3,
            ),
            event(client(0), EventType::Ok, "write", json!(1), 4),
            event(client(0), EventType::Invoke, "cas", json!([1, 3]), 5),
            timeout,
            // Process 1 reuses its id after the indeterminate write.
            event(client(1), EventType::Invoke, "read", Value::Null, 7),
            event(client(0), EventType::Fail, "cas", json!([1, 3]), 8),
            event(client(1), EventType::Ok, "read", json!(2), 9),
            event(client(2), EventType::Invoke, "read", Value::Null, 10),
        ];
        let operations = pair_operations(&history).unwrap();
        let summary: Vec<_> = operations
            .iter()
            .map(|op| {
                (
                    op.process,
                    op.function.as_str(),
                    op.invoke_value.clone(),
                    op.outcome,
                    op.completion_value.clone(),
                    op.invoke_time,
                    op.complete_time,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, "write", json!(1), Outcome::Ok, json!(1), 1, 4),
                (1, "write", json!(2), Outcome::Info, Value::Null, 2, NEVER),
                (0, "cas", json!([1, 3]), Outcome::Fail, json!([1, 3]), 5, 8),
                (1, "read", Value::Null, Outcome::Ok, json!(2), 7, 9),
                (
                    2,
                    "read",
                    Value::Null,
                    Outcome::Info,
                    Value::Null,
                    10,
                    NEVER
                ),
            ]
        );
        assert_eq!(operations[1].error.as_deref(), Some("timeout"));
        let serialized = serde_json::to_value(&operations[1]).unwrap();
        assert_eq!(serialized["complete_time"], Value::Null);
    }

    #[test]
    fn pairing_rejects_a_second_invoke_before_completion() {
        let history = vec![
            event(client(4), EventType::Invoke, "write", json!(1), 1),
            event(client(4), EventType::Invoke, "write", json!(2), 2),
        ];
        assert_eq!(
            pair_operations(&history),
            Err(PairingError::InvokeWhilePending {
                process: 4,
                index: 1,
                pending_index: 0
            })
        );
    }

    #[test]
    fn pairing_rejects_inconsistent_completions() {
        let orphan = vec![event(client(1), EventType::Ok, "read", json!(1), 1)];
        assert_eq!(
            pair_operations(&orphan),
            Err(PairingError::CompletionWithoutInvoke {
                process: 1,
                index: 0
            })
        );

        let other_function = vec![
            event(client(1), EventType::Invoke, "read", Value::Null, 1),
            event(client(1), EventType::Ok, "write", json!(1), 2),
        ];
        assert!(matches!(
            pair_operations(&other_function),
            Err(PairingError::MismatchedCompletion { index: 1, .. })
        ));

        let mut invoke = event(client(1), EventType::Invoke, "read", Value::Null, 1);
        invoke.key = Some("a".to_string());
        let mut complete = event(client(1), EventType::Ok, "read", Value::Null, 2);
        complete.key = Some("b".to_string());
        assert!(matches!(
            pair_operations(&[invoke.clone(), complete]),
            Err(PairingError::MismatchedCompletion { index: 1, .. })
        ));

        let backwards = vec![
            invoke,
            event(client(1), EventType::Ok, "read", Value::Null, 0),
        ];
        assert!(matches!(
            pair_operations(&backwards),
            Err(PairingError::MismatchedCompletion { index: 1, .. })
        ));
    }
}
