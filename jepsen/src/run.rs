//! One test run, start to finish: network and nodes up, clients and nemesis for the time
//! limit, a final heal and recovery window, final reads, then the checkers, results.json,
//! the plots and the index page in the run's folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::history::{pair_operations, EventType, Operation, Outcome, Process};
use crate::linearizable::{Budget, Validity};
use crate::nemesis::{Fault, Nemesis};
use crate::net;
use crate::nodes::{NodeSettings, Nodes};
use crate::plot;
use crate::recorder::Recorder;
use crate::report::worst;
use crate::resp::{CallError, Connection};
use crate::rng::Rng;
use crate::workload::{Completion, Kind, Op, Workload};

pub struct Options {
    pub nodes: u64,
    pub time_limit: Duration,
    pub faults: Vec<Fault>,
    pub workloads: Vec<Kind>,
    pub concurrency: usize,
    /// Operations per second, all clients together.
    pub rate: f64,
    pub nemesis_interval: Duration,
    pub recovery: Duration,
    pub client_timeout: Duration,
    pub seed: u64,
    /// The proxied loopback network even as root.
    pub proxies: bool,
    pub store: PathBuf,
    pub node_settings: NodeSettings,
}

/// How long the nodes may take to form the cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final reads may keep retrying, all together: a cluster that cannot
/// answer them in this time shows it in the history as failed reads.
const FINAL_READS_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the test and writes its folder; errors are the harness's own.
pub fn run(options: Options) -> Result<(Validity, PathBuf), String> {
    let folder = options.store.join(run_name(&options));
    fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    point_latest_at(&options.store, &folder);
    println!("run folder: {}", folder.display());
    let ids: Vec<u64> = (1..=options.nodes).collect();
    let network = net::create(&ids, options.proxies)?;
    println!("network: {}", network.kind());
    let recorder = Recorder::create(&folder.join("history.jsonl"))
        .map_err(|e| format!("history.jsonl: {e}"))?;
    let mut nodes = Nodes::new(options.node_settings, network, &ids, &folder);
    for &id in &ids {
        nodes.start(id, true)?;
    }
    nodes.wait_ready(READY_TIMEOUT)?;
    println!(
        "{} nodes ready; running for {:?}",
        ids.len(),
        options.time_limit
    );
    let workloads: Vec<Workload> = options
        .workloads
        .iter()
        .map(|&k| Workload::new(k))
        .collect();
    let nodes = Mutex::new(nodes);
    let phase = Phases::default();
    let nemesis = Nemesis {
        nodes: &nodes,
        recorder: &recorder,
        faults: options.faults.clone(),
        interval: options.nemesis_interval,
        hot_keys: workloads
            .iter()
            .flat_map(|w| (0..4).map(move |k| format!("{}-{k}", w.kind().name())))
            .collect(),
    };
    let addresses: Vec<_> = {
        let nodes = nodes.lock().expect("not poisoned yet");
        ids.iter()
            .map(|&id| nodes.network().client_address(id))
            .collect()
    };
    let recovered = thread::scope(|scope| -> Result<Vec<bool>, String> {
        let clients: Vec<_> = (0..options.concurrency)
            .map(|index| {
                let client = Client {
                    index,
                    concurrency: options.concurrency,
                    address: addresses[index % addresses.len()],
                    workload: &workloads[index % workloads.len()],
                    recorder: &recorder,
                    phase: &phase,
                    pause: Duration::from_secs_f64(options.concurrency as f64 / options.rate),
                    timeout: options.client_timeout,
                };
                let seed = options.seed.wrapping_add(index as u64 + 1);
                scope.spawn(move || client.run(seed))
            })
            .collect();
        let nemesis_thread = scope.spawn(|| nemesis.run(options.seed, &phase.nemesis_done));
        thread::sleep(options.time_limit);
        phase.nemesis_done.store(true, Ordering::Relaxed);
        let nemesis_result = nemesis_thread.join().expect("the nemesis does not panic");
        let healed = nemesis.heal_all().and(nemesis_result);
        if healed.is_ok() {
            phase.healed_at.store(recorder.now(), Ordering::Relaxed);
            println!("healed; recovery window of {:?}", options.recovery);
            thread::sleep(options.recovery);
        }
        phase.clients_done.store(true, Ordering::Relaxed);
        let recovered = clients
            .into_iter()
            .map(|client| client.join().expect("clients do not panic"))
            .collect();
        healed.map(|()| recovered)
    })?;
    final_reads(
        &workloads,
        &addresses,
        &recorder,
        options.concurrency,
        options.client_timeout,
    );
    let mut nodes = nodes.into_inner().expect("not poisoned");
    nodes.stop_all();
    let events = recorder
        .finish()
        .map_err(|e| format!("history.jsonl: {e}"))?;
    let operations = pair_operations(&events).map_err(|e| e.to_string())?;
    let (verdict, results) = check(&workloads, &operations, &recovered);
    write(
        &folder,
        "results.json",
        &serde_json::to_string_pretty(&results).expect("plain JSON"),
    )?;
    let latency = plot::latency_svg(&events).map_err(|e| e.to_string())?;
    write(&folder, "latency.svg", &latency)?;
    let throughput = plot::throughput_svg(&events).map_err(|e| e.to_string())?;
    write(&folder, "throughput.svg", &throughput)?;
    let name = folder
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into());
    let logs: Vec<String> = nodes
        .log_files()
        .iter()
        .filter_map(|path| path.strip_prefix(&folder).ok())
        .map(|path| path.to_string_lossy().into_owned())
        .collect();
    write(
        &folder,
        "index.html",
        &plot::index_html(&name, &results["valid"].to_string(), &logs),
    )?;
    if verdict == Validity::Valid {
        nodes.remove_data();
    }
    Ok((verdict, folder))
}

/// Flags the run's threads watch.
#[derive(Default)]
struct Phases {
    nemesis_done: AtomicBool,
    clients_done: AtomicBool,
    /// When the final heal finished, in history time (0 until then).
    healed_at: AtomicU64,
}

struct Client<'a> {
    index: usize,
    concurrency: usize,
    address: std::net::SocketAddr,
    workload: &'a Workload,
    recorder: &'a Recorder,
    phase: &'a Phases,
    /// Between one operation's completion and the next's invocation.
    pause: Duration,
    timeout: Duration,
}

impl Client<'_> {
    /// Runs operations until told to stop; says whether one succeeded after the heal.
    fn run(&self, seed: u64) -> bool {
        let mut rng = Rng::new(seed);
        let mut process = self.index as u64;
        let mut connection: Option<Connection> = None;
        let mut recovered = false;
        // Spread the clients' first operations over one pause.
        thread::sleep(self.pause.mul_f64(rng.below(1000) as f64 / 1000.0));
        while !self.phase.clients_done.load(Ordering::Relaxed) {
            let op = self.workload.next(&mut rng);
            let invoked = self.recorder.now();
            let completion = perform(
                &mut connection,
                self.address,
                self.timeout,
                self.workload,
                &op,
                self.recorder,
                process,
            );
            let healed_at = self.phase.healed_at.load(Ordering::Relaxed);
            recovered |=
                completion.event_type == EventType::Ok && healed_at > 0 && invoked > healed_at;
            if completion.event_type == EventType::Info {
                // Jepsen's rule: a process whose operation is indeterminate never issues
                // another, so a fresh process id takes over.
                process += self.concurrency as u64;
            }
            thread::sleep(self.pause);
        }
        recovered
    }
}

/// Performs `op` as `process`, recording its invocation and completion; the connection is
/// (re)opened as needed and dropped after any error on it.
fn perform(
    connection: &mut Option<Connection>,
    address: std::net::SocketAddr,
    timeout: Duration,
    workload: &Workload,
    op: &Op,
    recorder: &Recorder,
    process: u64,
) -> Completion {
    let process_id = Process::Client(process);
    recorder.record(
        process_id,
        EventType::Invoke,
        op.f,
        op.value.clone(),
        Some(&op.key),
        None,
    );
    if connection.is_none() {
        *connection = Connection::open(address, timeout).ok();
    }
    let args: Vec<&[u8]> = op.command.iter().map(Vec::as_slice).collect();
    let completion = match connection.as_mut().map(|c| c.call(&args)) {
        None => Completion::not_sent(format!("cannot connect to {address}")),
        Some(Ok(reply)) => workload.complete(op, reply),
        Some(Err(error)) => {
            *connection = None;
            match error {
                CallError::NotSent(_) => Completion::not_sent(error.describe()),
                CallError::NoReply(_) => Completion::indeterminate(error.describe()),
            }
        }
    };
    let value = match completion.event_type {
        EventType::Ok => completion.value.clone(),
        _ => op.value.clone(),
    };
    recorder.record(
        process_id,
        completion.event_type,
        op.f,
        value,
        Some(&op.key),
        completion.error.clone(),
    );
    completion
}

/// After the heal: one successful read of every key the collection workloads used,
/// retried through every node, so the checkers see what the cluster kept.
fn final_reads(
    workloads: &[Workload],
    addresses: &[std::net::SocketAddr],
    recorder: &Recorder,
    concurrency: usize,
    timeout: Duration,
) {
    // Process ids past every client's, so none is reused.
    let mut process = 1_000_000 + concurrency as u64;
    let mut connection = None;
    let deadline = Instant::now() + FINAL_READS_TIMEOUT;
    for workload in workloads {
        for op in workload.final_reads() {
            let mut attempt = 0;
            loop {
                let address = addresses[attempt % addresses.len()];
                let completion = perform(
                    &mut connection,
                    address,
                    timeout,
                    workload,
                    &op,
                    recorder,
                    process,
                );
                if completion.event_type == EventType::Info {
                    process += 1;
                }
                if completion.event_type == EventType::Ok || Instant::now() > deadline {
                    break;
                }
                connection = None;
                attempt += 1;
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Runs each workload's checker on its operations, and the recovery check.
fn check(
    workloads: &[Workload],
    operations: &[Operation],
    recovered: &[bool],
) -> (Validity, Value) {
    let mut results = BTreeMap::new();
    let mut verdicts = Vec::new();
    let budget = Budget::default();
    for workload in workloads {
        let mine: Vec<Operation> = operations
            .iter()
            .filter(|op| op.key.as_deref().is_some_and(|key| workload.owns(key)))
            .cloned()
            .collect();
        let counts = outcome_counts(&mine);
        let (validity, report) = match workload.check(&mine, &budget) {
            Ok(checked) => checked,
            Err(malformed) => (
                Validity::Unknown,
                json!({ "malformed": malformed.to_string() }),
            ),
        };
        verdicts.push(validity);
        results.insert(
            workload.kind().name().to_string(),
            json!({ "valid": validity, "operations": counts, "report": report }),
        );
    }
    let unrecovered: Vec<usize> = recovered
        .iter()
        .enumerate()
        .filter(|(_, &ok)| !ok)
        .map(|(client, _)| client)
        .collect();
    if !unrecovered.is_empty() {
        verdicts.push(Validity::Invalid);
    }
    let valid = worst(verdicts);
    let results = json!({
        "valid": valid,
        "workloads": results,
        "recovery": {
            "valid": unrecovered.is_empty(),
            "clients_without_success_after_heal": unrecovered,
        },
    });
    (valid, results)
}

fn outcome_counts(operations: &[Operation]) -> Value {
    let mut counts: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
    for op in operations {
        let outcome = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *counts
            .entry(op.function.clone())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    json!(counts)
}

fn write(folder: &Path, name: &str, text: &str) -> Result<(), String> {
    fs::write(folder.join(name), text).map_err(|e| format!("{name}: {e}"))
}

/// `<UTC time>-<workloads>`, sortable by time.
fn run_name(options: &Options) -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let workloads: Vec<&str> = options.workloads.iter().map(|k| k.name()).collect();
    format!("{}-{}", utc_stamp(seconds), workloads.join("+"))
}

/// `YYYYMMDDTHHMMSS` for seconds since the Unix epoch (civil-from-days, proleptic
/// Gregorian).
fn utc_stamp(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `store/latest` names the newest run; a failure to make the link costs nothing.
fn point_latest_at(store: &Path, folder: &Path) {
    let link = store.join("latest");
    let _ = fs::remove_file(&link);
    if let Some(name) = folder.file_name() {
        let _ = std::os::unix::fs::symlink(name, link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_carry_the_utc_time() {
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000");
        assert_eq!(utc_stamp(1_796_208_792), "20261202T105312");
    }
}
