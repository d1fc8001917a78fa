//! The `tessera` binary: Redis-style flags, an optional redis.conf-style file, logs on stderr,
//! and a clean stop on SIGTERM, SIGINT or SHUTDOWN.

use clap::Parser;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use tessera::Config;
use tessera_cluster::wal::Durability;
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// A Redis-compatible key-value and cache store: thread-per-core, shared-nothing.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// redis.conf-style file of `directive value` lines; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// TCP port to listen on.
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    bind: Option<String>,
    /// Event-loop threads, one per core [default: the cores available].
    #[arg(long)]
    threads: Option<usize>,
    /// Number of logical databases (SELECT 0..N-1).
    #[arg(long)]
    databases: Option<usize>,
    /// Most simultaneous client connections.
    #[arg(long)]
    maxclients: Option<usize>,
    /// The password clients must give (AUTH or HELLO AUTH) before running commands. A
    /// config file keeps it out of the process list.
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// What cluster nodes prove to each other on the Raft port (the same on every node). A
    /// config file keeps it out of the process list.
    #[arg(long, value_name = "SECRET")]
    cluster_secret: Option<String>,
    /// Close client connections idle for this many seconds (0: never).
    #[arg(long)]
    timeout: Option<u64>,
    /// debug, verbose, notice or warning.
    #[arg(long)]
    loglevel: Option<String>,
    /// This node's id in its cluster (a positive integer); with --members or --join, makes
    /// the node a member of a replicated cluster.
    #[arg(long)]
    node_id: Option<u64>,
    /// Every member of the cluster as id@host:port (client addresses, comma-separated); each
    /// node's Raft port is its client port + 10000.
    #[arg(long, requires = "node_id", conflicts_with = "join")]
    members: Option<String>,
    /// A running cluster's member (host:port) to learn the cluster from: the node starts
    /// holding nothing, until `tessera cluster add-node` makes it a member.
    #[arg(
        long,
        value_name = "HOST:PORT",
        requires = "node_id",
        conflicts_with = "bootstrap"
    )]
    join: Option<String>,
    /// Replicas of each partition (at most the number of members).
    #[arg(long, default_value_t = tessera_cluster::placement::DEFAULT_REPLICAS)]
    replicas: usize,
    /// Partitions of the cluster, fixed when it is created.
    #[arg(long, default_value_t = tessera_cluster::placement::DEFAULT_PARTITIONS)]
    partitions: u32,
    /// Create the cluster's Raft groups: give it to the members when the cluster is first
    /// started, not when a member restarts.
    #[arg(long)]
    bootstrap: bool,
    /// When a write is acknowledged: fsync (on disk on a majority; the default in a
    /// cluster), os (written to the OS), memory (replicated in memory only, for caches). On a
    /// node without --members, fsync or os makes it a cluster of one that keeps its data.
    #[arg(long, value_name = "fsync|os|memory")]
    durability: Option<String>,
    /// Where the node keeps its logs and snapshots [default: ./tessera-node-<id>].
    #[arg(long, value_name = "DIR")]
    dir: Option<String>,
    /// Relay requests for partitions led by other nodes instead of answering -MOVED, so
    /// clients that know nothing of clusters can use any node.
    #[arg(long)]
    cluster_forwarding: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Cluster operations.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// Runs a local cluster of N nodes, one process each, on 127.0.0.1 ports P..P+N-1, in the
    /// foreground until Ctrl-C.
    Dev {
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// Where the nodes' logs (and data) go.
        #[arg(long, default_value = "tessera-cluster")]
        dir: String,
        #[arg(long, default_value_t = tessera_cluster::placement::DEFAULT_REPLICAS)]
        replicas: usize,
        /// Event-loop threads per node.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// fsync, os or memory (see the node's --durability).
        #[arg(long, default_value = "fsync")]
        durability: String,
    },
    /// Creates a cluster of nodes each started with only --node-id, --port and --dir.
    Create {
        /// Every member as id@host:port (client addresses, comma-separated).
        nodes: String,
        #[arg(long, default_value_t = tessera_cluster::placement::DEFAULT_REPLICAS)]
        replicas: usize,
    },
    /// Adds a node (started with --join) to a running cluster; partitions then move to it a
    /// few at a time, while writes go on.
    AddNode {
        /// Any member of the cluster.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
        seed: String,
        /// The new node as id@host:port (its client address).
        node: String,
        /// Wait until every partition is on its new replicas.
        #[arg(long)]
        wait: bool,
    },
    /// Removes a node from a running cluster; its partitions move to the others.
    RemoveNode {
        /// Any member of the cluster.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
        seed: String,
        /// The node's id.
        id: u64,
        /// Wait until every partition is on its new replicas and the node is forgotten.
        #[arg(long)]
        wait: bool,
    },
    /// Shows the members, each partition's leader, voters and target, and how many move.
    Status {
        /// Any member of the cluster.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
        seed: String,
    },
}

fn build_config(cli: &Cli) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(path) = &cli.config {
        config.load_file(path)?;
    }
    let flags: [(&str, Option<String>); 9] = [
        ("port", cli.port.map(|v| v.to_string())),
        ("bind", cli.bind.clone()),
        ("io-threads", cli.threads.map(|v| v.to_string())),
        ("databases", cli.databases.map(|v| v.to_string())),
        ("maxclients", cli.maxclients.map(|v| v.to_string())),
        ("requirepass", cli.requirepass.clone()),
        ("cluster-secret", cli.cluster_secret.clone()),
        ("timeout", cli.timeout.map(|v| v.to_string())),
        ("loglevel", cli.loglevel.clone()),
    ];
    for (name, value) in flags {
        if let Some(value) = value {
            config
                .set(name, &value, true)
                .map_err(|e| format!("--{name}: {e}"))?;
        }
    }
    if cli.partitions == 0 || cli.partitions as usize > tessera_protocol::SLOT_COUNT {
        return Err("--partitions: must be between 1 and 16384".into());
    }
    if cli.replicas == 0 {
        return Err("--replicas: must be at least 1".into());
    }
    let durability: Option<Durability> = match &cli.durability {
        Some(text) => Some(text.parse().map_err(|e| format!("--durability: {e}"))?),
        None => None,
    };
    let (mut partitions, mut replicas) = (cli.partitions, cli.replicas);
    let (node_id, members, durability, bootstrap) = match (cli.node_id, &cli.members, &cli.join) {
        (Some(node_id), Some(members), _) => {
            let members =
                tessera::cluster::parse_members(members).map_err(|e| format!("--members: {e}"))?;
            // A cluster's writes are acknowledged once on disk on a majority, unless told.
            (
                node_id,
                members,
                durability.unwrap_or(Durability::Fsync),
                cli.bootstrap,
            )
        }
        (Some(node_id), None, Some(seed)) => {
            tessera::clusteradmin::use_password(config.requirepass.clone());
            let joined = tessera::clusteradmin::fetch_roster(seed)?;
            let member = joined.members.iter().any(|m| m.id == node_id);
            let dir = cli
                .dir
                .clone()
                .unwrap_or_else(|| format!("tessera-node-{node_id}"));
            let has_data = durability != Some(Durability::Memory)
                && std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
            if member && !has_data {
                // An empty node taking a member's place would vote without the member's log.
                return Err(format!(
                    "node {node_id} is a member already; remove it first \
                     (tessera cluster remove-node) or join with a new id"
                ));
            }
            (partitions, replicas) = (joined.partitions, joined.replicas);
            let durability = durability.unwrap_or(Durability::Fsync);
            (node_id, joined.members, durability, false)
        }
        // Only its id: a member restarting from what its directory holds, or a node waiting
        // for `tessera cluster create`.
        (Some(node_id), None, None) => {
            let durability = durability.unwrap_or(Durability::Fsync);
            if durability == Durability::Memory {
                return Err("--node-id needs --members or --join with --durability memory".into());
            }
            let dir = cli
                .dir
                .clone()
                .unwrap_or_else(|| format!("tessera-node-{node_id}"));
            match tessera_cluster::roster::load(std::path::Path::new(&dir)) {
                Some(kept) => {
                    (partitions, replicas) = (kept.shape.partitions, kept.shape.replicas);
                    let members = kept.roster.members.into_values().collect();
                    (node_id, members, durability, false)
                }
                None if has_logs(&dir) => {
                    return Err(format!(
                        "{dir} holds a node's logs but no member list: restart it with \
                         --members or --join"
                    ))
                }
                None => (node_id, Vec::new(), durability, false),
            }
        }
        // A node on its own is a cluster of one with replication factor 1 when it is to keep
        // its data; otherwise it serves from memory alone, without a log.
        _ => match durability.filter(|d| *d != Durability::Memory) {
            Some(durability) => {
                let me = format!("1@{}:{}", config.bind, config.port);
                let members = tessera::cluster::parse_members(&me)?;
                (1, members, durability, true)
            }
            None => return Ok(config),
        },
    };
    let dir = cli.dir.clone().map(PathBuf::from).or_else(|| {
        (durability != Durability::Memory).then(|| format!("tessera-node-{node_id}").into())
    });
    config.cluster = Some(tessera::cluster::ClusterConfig {
        node_id,
        members,
        partitions,
        replicas,
        bootstrap,
        joining: cli.join.is_some(),
        forwarding: cli.cluster_forwarding,
        durability,
        dir,
    });
    Ok(config)
}

/// Whether `dir` holds a cluster node's write-ahead logs.
fn has_logs(dir: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("wal-"))
    })
}

fn init_logging(level: &str) {
    let filter = match level {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft narrates every election at info and warn level; its errors stay.
                .unwrap_or_else(|_| format!("{filter},openraft=error").into()),
        )
        .init();
}

/// Blocks SIGINT and SIGTERM in every thread and returns a signalfd that reports them.
fn signal_fd() -> i32 {
    // SAFETY: standard signal-mask set-up before any thread is spawned.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    }
}

/// Waits until a stop signal arrives or a client asked for SHUTDOWN.
fn wait_for_stop(fd: i32, handle: &tessera::ServerHandle) {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        if ready > 0 {
            let mut info = [0u8; 128];
            // SAFETY: signalfd reads fill a 128-byte siginfo record.
            unsafe { libc::read(fd, info.as_mut_ptr() as *mut libc::c_void, info.len()) };
            tracing::info!("received a stop signal");
            handle.shutdown();
            return;
        }
        if handle.shared().shutdown.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Runs a `tessera cluster` command; returns the process's exit code.
fn cluster_command(cli: &Cli, command: &ClusterCommand) -> i32 {
    use tessera::clusteradmin;
    // The nodes of `cluster dev` have no password, whatever the environment says.
    if !matches!(command, ClusterCommand::Dev { .. }) {
        clusteradmin::use_password(std::env::var("REDISCLI_AUTH").unwrap_or_default());
    }
    match command {
        ClusterCommand::AddNode { seed, node, wait } => clusteradmin::add_node(seed, node, *wait),
        ClusterCommand::RemoveNode { seed, id, wait } => {
            clusteradmin::remove_node(seed, *id, *wait)
        }
        ClusterCommand::Status { seed } => clusteradmin::status(seed),
        ClusterCommand::Create { nodes, replicas } => {
            clusteradmin::create(nodes, cli.partitions, *replicas)
        }
        ClusterCommand::Dev {
            nodes,
            base_port,
            dir,
            replicas,
            threads,
            durability,
        } => {
            if let Err(e) = durability.parse::<Durability>() {
                eprintln!("tessera: --durability: {e}");
                return 1;
            }
            let plan = tessera::devcluster::Plan {
                nodes: *nodes,
                base_port: *base_port,
                dir: dir.into(),
                replicas: *replicas,
                partitions: cli.partitions,
                threads: *threads,
                durability: durability.clone(),
            };
            tessera::devcluster::run(&plan, signal_fd())
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(Command::Cluster { command }) = &cli.command {
        std::process::exit(cluster_command(&cli, command));
    }
    let config = match build_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tessera: {e}");
            std::process::exit(1);
        }
    };
    init_logging(&config.loglevel);
    let signals = signal_fd();
    let handle = match tessera::start(config) {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            std::process::exit(1);
        }
    };
    wait_for_stop(signals, &handle);
    handle.join();
    tracing::info!("Tessera is now ready to exit, bye bye...");
}
