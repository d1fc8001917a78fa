//! What the clients do: each workload draws operations, turns them into Redis commands,
//! reads the replies into history values, and picks its checker.
//!
//! Keys are used for a bounded number of operations and then retired for fresh ones, as
//! Jepsen's independent keys are, so each key's history stays small enough to check and
//! a test that runs longer checks more keys, not harder ones. Values written are unique
//! per workload, which lets the checkers tell every write apart.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::history::{EventType, Operation};
use crate::linearizable::{self, Budget, MalformedOperation, Validity};
use crate::resp::Reply;
use crate::rng::Rng;
use crate::{counter, list_append, set};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// GET, SET and SET IFEQ on registers: linearizability.
    Register,
    /// INCRBY and GET: no acknowledged increment lost, none invented.
    Counter,
    /// SADD and SMEMBERS: no acknowledged add lost, no element invented.
    Set,
    /// RPUSH and LRANGE: Elle's list-append anomalies.
    ListAppend,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Register, Kind::Counter, Kind::Set, Kind::ListAppend];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Counter => "counter",
            Kind::Set => "set",
            Kind::ListAppend => "list-append",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Keys in use at once, and operations on a key before it is retired.
    fn key_plan(self) -> (usize, usize) {
        match self {
            Kind::Register => (8, 120),
            Kind::Counter => (4, 1000),
            Kind::Set | Kind::ListAppend => (4, 300),
        }
    }
}

/// One client operation: what the history records and the command that performs it.
#[derive(Clone, Debug)]
pub struct Op {
    pub f: &'static str,
    pub key: String,
    pub value: Value,
    pub command: Vec<Vec<u8>>,
}

/// How an operation ended, for its completion event.
pub struct Completion {
    pub event_type: EventType,
    pub value: Value,
    pub error: Option<String>,
}

impl Completion {
    fn ok(value: Value) -> Completion {
        Completion {
            event_type: EventType::Ok,
            value,
            error: None,
        }
    }

    fn failed(event_type: EventType, error: String) -> Completion {
        Completion {
            event_type,
            value: Value::Null,
            error: Some(error),
        }
    }

    /// A request that never reached the server definitely did nothing.
    pub fn not_sent(error: String) -> Completion {
        Completion::failed(EventType::Fail, error)
    }

    /// No reply: the operation may or may not have taken effect.
    pub fn indeterminate(error: String) -> Completion {
        Completion::failed(EventType::Info, error)
    }
}

/// Errors after which the server guarantees the request did not run: a redirect, no
/// leader or quorum, or a node not ready. Anything else (UNCERTAIN, or an error this
/// harness does not know) may have left an effect, so it is indeterminate.
const NOT_RUN: [&str; 4] = ["MOVED ", "ASK ", "CLUSTERDOWN ", "TRYAGAIN "];

fn error_completion(message: String) -> Completion {
    let event_type = if NOT_RUN.iter().any(|prefix| message.starts_with(prefix)) {
        EventType::Fail
    } else {
        EventType::Info
    };
    Completion::failed(event_type, message)
}

fn unexpected(reply: &Reply) -> Completion {
    Completion::indeterminate(format!("unexpected reply {reply:?}"))
}

fn integer(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A list of integers from an array reply, as recorded for set and list reads.
fn integers(reply: &Reply) -> Option<Value> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    items
        .iter()
        .map(|item| match item {
            Reply::Bulk(Some(bytes)) => integer(bytes).map(Value::from),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

struct Keys {
    active: Vec<(u64, usize)>,
    next_key: u64,
    used: BTreeSet<u64>,
    next_value: i64,
    /// The value last written to each active key, for compare-and-set to expect.
    last_written: Vec<Option<i64>>,
}

pub struct Workload {
    kind: Kind,
    keys: Mutex<Keys>,
}

impl Workload {
    pub fn new(kind: Kind) -> Workload {
        let (active, _) = kind.key_plan();
        Workload {
            kind,
            keys: Mutex::new(Keys {
                active: (0..active as u64).map(|key| (key, 0)).collect(),
                next_key: active as u64,
                used: BTreeSet::new(),
                next_value: 1,
                last_written: vec![None; active],
            }),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn key_name(&self, key: u64) -> String {
        format!("{}-{key}", self.kind.name())
    }

    /// Whether `key` is one of this workload's.
    pub fn owns(&self, key: &str) -> bool {
        key.strip_prefix(self.kind.name())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|number| number.parse::<u64>().is_ok())
    }

    /// Draws the next operation.
    pub fn next(&self, rng: &mut Rng) -> Op {
        let (_, per_key) = self.kind.key_plan();
        let mut keys = self.keys.lock().expect("no client panics holding the keys");
        let slot = rng.below(keys.active.len());
        let (key, uses) = keys.active[slot];
        keys.used.insert(key);
        keys.active[slot].1 += 1;
        let value = keys.next_value;
        let name = self.key_name(key);
        let k = name.as_bytes().to_vec();
        let text = |n: i64| n.to_string().into_bytes();
        let op = |f, value, command: Vec<Vec<u8>>| Op {
            f,
            key: name.clone(),
            value,
            command,
        };
        let roll = rng.below(100);
        let write = |keys: &mut Keys| {
            keys.next_value += 1;
            keys.last_written[slot] = Some(value);
        };
        let drawn = match self.kind {
            Kind::Register if roll < 50 => self.read(name.clone()),
            Kind::Register => match keys.last_written[slot] {
                Some(expected) if roll >= 75 => {
                    write(&mut keys);
                    op(
                        "cas",
                        json!([expected, value]),
                        vec![
                            b"SET".to_vec(),
                            k,
                            text(value),
                            b"IFEQ".to_vec(),
                            text(expected),
                        ],
                    )
                }
                _ => {
                    write(&mut keys);
                    op("write", json!(value), vec![b"SET".to_vec(), k, text(value)])
                }
            },
            Kind::Counter if roll < 70 => {
                op("add", json!(1), vec![b"INCRBY".to_vec(), k, b"1".to_vec()])
            }
            Kind::Counter => self.read(name.clone()),
            Kind::Set if roll < 80 => {
                write(&mut keys);
                op("add", json!(value), vec![b"SADD".to_vec(), k, text(value)])
            }
            Kind::Set => self.read(name.clone()),
            Kind::ListAppend if roll < 70 => {
                write(&mut keys);
                op(
                    "append",
                    json!(value),
                    vec![b"RPUSH".to_vec(), k, text(value)],
                )
            }
            Kind::ListAppend => self.read(name.clone()),
        };
        if uses + 1 >= per_key {
            keys.active[slot] = (keys.next_key, 0);
            keys.next_key += 1;
            keys.last_written[slot] = None;
        }
        drawn
    }

    /// One read of every key used, for after the final heal: what the cluster kept.
    /// Registers need none: every read is checked against the writes around it.
    pub fn final_reads(&self) -> Vec<Op> {
        if self.kind == Kind::Register {
            return Vec::new();
        }
        let keys = self.keys.lock().expect("no client panics holding the keys");
        keys.used
            .iter()
            .map(|&key| self.read(self.key_name(key)))
            .collect()
    }

    /// A read of the whole value of `key`.
    fn read(&self, key: String) -> Op {
        let k = key.as_bytes().to_vec();
        let command = match self.kind {
            Kind::Register | Kind::Counter => vec![b"GET".to_vec(), k],
            Kind::Set => vec![b"SMEMBERS".to_vec(), k],
            Kind::ListAppend => vec![b"LRANGE".to_vec(), k, b"0".to_vec(), b"-1".to_vec()],
        };
        Op {
            f: "read",
            key,
            value: Value::Null,
            command,
        }
    }

    /// Reads a reply into the operation's completion.
    pub fn complete(&self, op: &Op, reply: Reply) -> Completion {
        if let Reply::Error(message) = reply {
            return error_completion(message);
        }
        let read = op.f == "read";
        match (self.kind, read, &reply) {
            (Kind::Register | Kind::Counter, true, Reply::Bulk(None)) => {
                Completion::ok(Value::Null)
            }
            (Kind::Register | Kind::Counter, true, Reply::Bulk(Some(bytes))) => {
                match integer(bytes) {
                    Some(n) => Completion::ok(json!(n)),
                    None => unexpected(&reply),
                }
            }
            (Kind::Register, false, Reply::Status(status)) if status == "OK" => {
                Completion::ok(Value::Null)
            }
            // SET ... IFEQ answers nil when the register held something else.
            (Kind::Register, false, Reply::Bulk(None)) if op.f == "cas" => Completion {
                event_type: EventType::Fail,
                value: Value::Null,
                error: Some("the register did not hold the expected value".into()),
            },
            (Kind::Counter, false, Reply::Integer(n)) => Completion::ok(json!(n)),
            (Kind::Set | Kind::ListAppend, false, Reply::Integer(_)) => Completion::ok(Value::Null),
            (Kind::Set | Kind::ListAppend, true, _) => match integers(&reply) {
                Some(values) => Completion::ok(values),
                None => unexpected(&reply),
            },
            _ => unexpected(&reply),
        }
    }

    /// Checks this workload's operations; the report goes into results.json.
    pub fn check(
        &self,
        operations: &[Operation],
        budget: &Budget,
    ) -> Result<(Validity, Value), MalformedOperation> {
        Ok(match self.kind {
            Kind::Register => {
                let report = linearizable::check_registers(operations, budget)?;
                (report.valid, to_json(&report))
            }
            Kind::Counter => {
                let report = counter::check_counters(operations)?;
                (report.valid, to_json(&report))
            }
            Kind::Set => {
                let report = set::check_sets(operations)?;
                (report.valid, to_json(&report))
            }
            Kind::ListAppend => {
                let report = list_append::check_list_append(operations)?;
                (report.valid, to_json(&report))
            }
        })
    }
}

fn to_json<T: serde::Serialize>(report: &T) -> Value {
    serde_json::to_value(report)
        .unwrap_or_else(|error| json!({ "error": format!("report not serializable: {error}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_retire_after_their_share_of_operations_and_values_never_repeat() {
        let workload = Workload::new(Kind::ListAppend);
        let mut rng = Rng::new(3);
        let ops: Vec<Op> = (0..5000).map(|_| workload.next(&mut rng)).collect();
        let mut per_key = std::collections::HashMap::new();
        let mut values = BTreeSet::new();
        for op in &ops {
            assert!(workload.owns(&op.key), "{}", op.key);
            *per_key.entry(op.key.clone()).or_insert(0) += 1;
            if op.f == "append" {
                assert!(values.insert(op.value.as_i64().unwrap()), "{:?}", op.value);
            }
        }
        assert!(per_key.values().all(|&count| count <= 300), "{per_key:?}");
        assert!(per_key.len() >= 5000 / 300);
        assert_eq!(workload.final_reads().len(), per_key.len());
    }

    #[test]
    fn compare_and_set_expects_the_last_value_written_to_its_key() {
        let workload = Workload::new(Kind::Register);
        let mut rng = Rng::new(9);
        let mut last = std::collections::HashMap::new();
        let mut cas_seen = 0;
        for _ in 0..2000 {
            let op = workload.next(&mut rng);
            match op.f {
                "write" => {
                    last.insert(op.key.clone(), op.value.clone());
                }
                "cas" => {
                    cas_seen += 1;
                    assert_eq!(Some(&op.value[0]), last.get(&op.key), "{op:?}");
                    assert_eq!(op.command[3], b"IFEQ");
                    last.insert(op.key.clone(), op.value[1].clone());
                }
                _ => assert_eq!(op.command[0], b"GET"),
            }
        }
        assert!(cas_seen > 200);
        assert!(!workload.owns("counter-1") && !workload.owns("register-x"));
    }

    #[test]
    fn replies_map_to_outcomes_that_never_claim_more_than_the_server_said() {
        let register = Workload::new(Kind::Register);
        let op = |f: &'static str| Op {
            f,
            key: "register-0".into(),
            value: Value::Null,
            command: Vec::new(),
        };
        let outcome = |workload: &Workload, f, reply| {
            let completion = workload.complete(&op(f), reply);
            (completion.event_type, completion.value)
        };
        let bulk = |text: &str| Reply::Bulk(Some(text.as_bytes().to_vec()));
        assert_eq!(
            outcome(&register, "read", bulk("12")),
            (EventType::Ok, json!(12))
        );
        assert_eq!(
            outcome(&register, "read", Reply::Bulk(None)),
            (EventType::Ok, Value::Null)
        );
        assert_eq!(
            outcome(&register, "cas", Reply::Bulk(None)).0,
            EventType::Fail
        );
        assert_eq!(
            outcome(&register, "write", Reply::Status("OK".into())).0,
            EventType::Ok
        );
        for (message, expected) in [
            ("MOVED 1 10.0.0.1:6379", EventType::Fail),
            ("CLUSTERDOWN no leader", EventType::Fail),
            ("TRYAGAIN lease", EventType::Fail),
            ("UNCERTAIN leadership changed", EventType::Info),
            ("ERR something new", EventType::Info),
        ] {
            let reply = Reply::Error(message.into());
            assert_eq!(outcome(&register, "write", reply).0, expected, "{message}");
        }
        assert_eq!(
            outcome(&register, "read", bulk("x")).0,
            EventType::Info,
            "an unreadable value is not a read"
        );
        let list = Workload::new(Kind::ListAppend);
        let array = Reply::Array(Some(vec![bulk("1"), bulk("2")]));
        assert_eq!(
            outcome(&list, "read", array),
            (EventType::Ok, json!([1, 2]))
        );
        let counter = Workload::new(Kind::Counter);
        assert_eq!(
            outcome(&counter, "add", Reply::Integer(5)),
            (EventType::Ok, json!(5))
        );
    }
}
