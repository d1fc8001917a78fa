//! INFO: the sections and field names Redis tools parse (server, clients, memory, stats, cpu,
//! keyspace), gathered from every core.

use crate::admin::{work, REDIS_VERSION};
use crate::conn::Conn;
use crate::core::Core;
use crate::dispatch::{run_multi, Flow};
use crate::multi::{on_every_core, reply_with};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tessera_protocol::Args;

/// What one core reports.
#[derive(Default)]
struct CoreReport {
    /// Per database: keys, keys with a deadline.
    keyspace: Vec<(usize, usize)>,
    memory: usize,
    expired: u64,
    hits: u64,
    misses: u64,
    commands: u64,
    net_input: u64,
    net_output: u64,
    /// Per partition this core owns: (partition index, keys, bytes) over every database.
    partitions: Vec<(usize, usize, u64)>,
}

fn report(core: &mut Core) -> CoreReport {
    let mut r = CoreReport::default();
    for db in 0..core.store.databases() {
        let ks = core.store.keyspace(db);
        r.keyspace
            .push(ks.map_or((0, 0), |ks| (ks.len(), ks.volatile())));
        r.memory += ks.map_or(0, |ks| ks.memory());
        r.expired += ks.map_or(0, |ks| ks.expired());
    }
    r.hits = core.store.stats.hits;
    r.misses = core.store.stats.misses;
    r.commands = core.stats.commands;
    r.net_input = core.stats.net_input;
    r.net_output = core.stats.net_output;
    let shared = core.shared.clone();
    for (p, range) in shared
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, r)| shared.owner(r.start) == core.id)
    {
        let (mut keys, mut bytes) = (0, 0);
        for db in (0..core.store.databases()).filter_map(|db| core.store.keyspace(db)) {
            for slot in range.clone() {
                keys += db.slot_len(slot);
                bytes += db.slot_memory(slot);
            }
        }
        r.partitions.push((p, keys, bytes));
    }
    r
}

/// Resident set size of this process, from /proc.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

fn human(bytes: u64) -> String {
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in units {
        if bytes >= size {
            return format!("{:.2}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

fn cpu_seconds() -> (f64, f64) {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a valid out-parameter.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_stime), secs(usage.ru_utime))
}

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

pub fn run(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let mut wanted: Vec<String> = args
        .tail(1)
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default")
    {
        wanted = SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    let resp3 = conn.resp3;
    run_multi(core, conn, idx, move |core| {
        let shared = core.shared.clone();
        let config = core.config.clone();
        on_every_core(
            core,
            || work(report),
            move |results| {
                let reports: Vec<CoreReport> = results
                    .into_iter()
                    .filter_map(|r| r.downcast::<CoreReport>().ok())
                    .map(|b| *b)
                    .collect();
                let mut text = String::new();
                let uptime = shared.started.elapsed().as_secs();
                let rss = rss_bytes();
                let used: u64 = reports.iter().map(|r| r.memory as u64).sum::<u64>() + 1024 * 1024;
                for section in SECTIONS.iter().filter(|s| wanted.iter().any(|w| w == *s)) {
                    if !text.is_empty() {
                        text.push_str("\r\n");
                    }
                    let _ = write!(
                        text,
                        "# {}{}\r\n",
                        section[..1].to_uppercase(),
                        &section[1..]
                    );
                    let mut field = |name: &str, value: &dyn std::fmt::Display| {
                        let _ = write!(text, "{name}:{value}\r\n");
                    };
                    match *section {
                        "server" => {
                            field("redis_version", &REDIS_VERSION);
                            field("tessera_version", &env!("CARGO_PKG_VERSION"));
                            field("redis_mode", &"standalone");
                            field(
                                "os",
                                &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
                            );
                            field("arch_bits", &64);
                            field("multiplexing_api", &"epoll");
                            field("process_id", &std::process::id());
                            field("run_id", &shared.run_id);
                            field("tcp_port", &shared.port);
                            field("uptime_in_seconds", &uptime);
                            field("uptime_in_days", &(uptime / 86400));
                            field("hz", &config.hz);
                            field("io_threads_active", &shared.cores);
                            field(
                                "executable",
                                &std::env::current_exe()
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_default(),
                            );
                            field(
                                "config_file",
                                &config.config_file.clone().unwrap_or_default(),
                            );
                        }
                        "clients" => {
                            field("connected_clients", &shared.clients.load(Ordering::Relaxed));
                            field("maxclients", &config.maxclients);
                            field(
                                "blocked_clients",
                                &shared.blocked_clients.load(Ordering::Relaxed),
                            );
                        }
                        "memory" => {
                            field("used_memory", &used);
                            field("used_memory_human", &human(used));
                            field("used_memory_rss", &rss);
                            field("used_memory_rss_human", &human(rss));
                            field(
                                "used_memory_dataset",
                                &reports.iter().map(|r| r.memory).sum::<usize>(),
                            );
                            field("maxmemory", &0);
                            field("maxmemory_human", &"0B");
                            field("maxmemory_policy", &"noeviction");
                            field("mem_allocator", &"jemalloc");
                        }
                        "persistence" => {
                            field("loading", &0);
                            field("rdb_changes_since_last_save", &0);
                            field("aof_enabled", &0);
                        }
                        "stats" => {
                            field(
                                "total_connections_received",
                                &shared.connections_received.load(Ordering::Relaxed),
                            );
                            field(
                                "total_commands_processed",
                                &reports.iter().map(|r| r.commands).sum::<u64>(),
                            );
                            field(
                                "total_net_input_bytes",
                                &reports.iter().map(|r| r.net_input).sum::<u64>(),
                            );
                            field(
                                "total_net_output_bytes",
                                &reports.iter().map(|r| r.net_output).sum::<u64>(),
                            );
                            field(
                                "rejected_connections",
                                &shared.rejected_connections.load(Ordering::Relaxed),
                            );
                            field(
                                "expired_keys",
                                &reports.iter().map(|r| r.expired).sum::<u64>(),
                            );
                            field("evicted_keys", &0);
                            field(
                                "keyspace_hits",
                                &reports.iter().map(|r| r.hits).sum::<u64>(),
                            );
                            field(
                                "keyspace_misses",
                                &reports.iter().map(|r| r.misses).sum::<u64>(),
                            );
                        }
                        "replication" => {
                            field("role", &"master");
                            field("connected_slaves", &0);
                        }
                        "cpu" => {
                            let (sys, user) = cpu_seconds();
                            field("used_cpu_sys", &format!("{sys:.6}"));
                            field("used_cpu_user", &format!("{user:.6}"));
                        }
                        _ => {
                            let databases = reports.first().map_or(0, |r| r.keyspace.len());
                            for db in 0..databases {
                                let keys: usize = reports.iter().map(|r| r.keyspace[db].0).sum();
                                let expires: usize = reports.iter().map(|r| r.keyspace[db].1).sum();
                                if keys > 0 {
                                    field(
                                        &format!("db{db}"),
                                        &format!("keys={keys},expires={expires},avg_ttl=0"),
                                    );
                                }
                            }
                        }
                    }
                }
                reply_with(resp3, |w| w.verbatim(text.as_bytes()))
            },
        )
    })
}
