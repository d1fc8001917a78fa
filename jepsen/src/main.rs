//! `tessera-jepsen test`: runs a Jepsen-style test of a tessera cluster and says whether
//! its history was valid. Exit status: 0 valid, 1 anomaly found, 2 unknown or harness
//! error.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use tessera_jepsen::linearizable::Validity;
use tessera_jepsen::nemesis::Fault;
use tessera_jepsen::nodes::NodeSettings;
use tessera_jepsen::run::{run, Options};
use tessera_jepsen::workload::Kind;

#[derive(Parser, Debug)]
#[command(name = "tessera-jepsen", about)]
enum Cli {
    /// Starts a cluster in network namespaces, runs workloads under faults, checks the
    /// history and writes a run folder under --store.
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
struct TestArgs {
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Seconds of workload under faults, before the final heal and recovery window.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Faults, comma-separated: partition, kill, pause, netem, membership, all, or none.
    #[arg(long, default_value = "partition,kill")]
    nemesis: String,
    /// Workloads, comma-separated: register, counter, set, list-append, or all.
    #[arg(long, default_value = "register")]
    workload: String,
    /// A bug to switch on in the server, to show the test catches it: ack-before-commit
    /// or stale-follower-read. The server is built with its planted-bugs feature for it.
    #[arg(long)]
    planted_bug: Option<String>,
    /// Client threads [default: 2 per node, at least 2 per workload].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Operations per second, all clients together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds between faults, and how long each is held.
    #[arg(long, default_value_t = 8)]
    nemesis_interval: u64,
    /// Seconds after the final heal in which every client must succeed again.
    #[arg(long, default_value_t = 20)]
    recovery: u64,
    /// Seconds a client waits for a reply before recording the operation indeterminate.
    #[arg(long, default_value_t = 3.0)]
    client_timeout: f64,
    /// Partitions of the cluster under test: few, so faults hit leaders often.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Seed of the run's random choices [default: from the clock]; printed for replay.
    #[arg(long)]
    seed: Option<u64>,
    /// Use the loopback network with a TCP proxy per node, as without root, instead of
    /// network namespaces.
    #[arg(long)]
    proxies: bool,
    /// Where run folders go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/store"))]
    store: PathBuf,
    /// The tessera binary [default: built here with cargo].
    #[arg(long)]
    binary: Option<PathBuf>,
}

const PLANTED_BUGS: [&str; 2] = ["ack-before-commit", "stale-follower-read"];

fn parse_list<T: Copy>(
    text: &str,
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    match text {
        "all" => Ok(all.to_vec()),
        "none" | "" => Ok(Vec::new()),
        _ => text
            .split(',')
            .map(|name| parse(name.trim()).ok_or_else(|| format!("unknown name {name:?}")))
            .collect(),
    }
}

/// Builds the server with cargo, with the planted-bugs feature in a target directory of
/// its own so the ordinary binary is never the bugged one.
fn build_server(planted: bool) -> Result<PathBuf, String> {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let target = if planted {
        workspace.join("target/planted")
    } else {
        workspace.join("target")
    };
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(&workspace)
        .args(["build", "--release", "-p", "tessera", "--bin", "tessera"])
        .arg("--target-dir")
        .arg(&target);
    if planted {
        command.args(["--features", "planted-bugs"]);
    }
    let status = command.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the server failed ({status})"));
    }
    Ok(target.join("release/tessera"))
}

fn options(args: TestArgs) -> Result<Options, String> {
    let faults = parse_list(&args.nemesis, &Fault::ALL, Fault::parse)?;
    let workloads = parse_list(&args.workload, &Kind::ALL, Kind::parse)?;
    if workloads.is_empty() {
        return Err("at least one workload is needed".into());
    }
    if args.nodes == 0 || args.nodes > 9 || args.replicas == 0 || args.replicas as u64 > args.nodes
    {
        return Err("--nodes must be 1 to 9 and --replicas 1 to --nodes".into());
    }
    if let Some(bug) = &args.planted_bug {
        if !PLANTED_BUGS.contains(&bug.as_str()) {
            return Err(format!(
                "unknown planted bug {bug:?}; known: {PLANTED_BUGS:?}"
            ));
        }
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(args.rate) || !positive(args.client_timeout) {
        return Err("--rate and --client-timeout must be positive".into());
    }
    let binary = match args.binary {
        Some(binary) => binary,
        None => build_server(args.planted_bug.is_some())?,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("seed {seed}");
    let concurrency = args
        .concurrency
        .unwrap_or(2 * args.nodes as usize)
        .max(2 * workloads.len());
    Ok(Options {
        nodes: args.nodes,
        time_limit: Duration::from_secs(args.time_limit),
        faults,
        workloads,
        concurrency,
        rate: args.rate,
        nemesis_interval: Duration::from_secs(args.nemesis_interval),
        recovery: Duration::from_secs(args.recovery),
        client_timeout: Duration::from_secs_f64(args.client_timeout),
        seed,
        proxies: args.proxies,
        store: args.store,
        node_settings: NodeSettings {
            binary,
            replicas: args.replicas,
            partitions: args.partitions,
            planted_bug: args.planted_bug,
        },
    })
}

fn main() -> ExitCode {
    let Cli::Test(args) = Cli::parse();
    let outcome = options(args).and_then(run);
    match outcome {
        Ok((verdict, folder)) => {
            println!("{verdict:?}: {}", folder.join("results.json").display());
            ExitCode::from(match verdict {
                Validity::Valid => 0,
                Validity::Invalid => 1,
                Validity::Unknown => 2,
            })
        }
        Err(error) => {
            eprintln!("tessera-jepsen: {error}");
            ExitCode::from(2)
        }
    }
}
