//! Server configuration: Redis-compatible directive names, read from a redis.conf-style file
//! and the command line, changed at run time with CONFIG SET where that is safe.

use std::fmt::Write as _;
use tessera_storage::object::EncodingLimits;

/// `client-output-buffer-limit` for one client class: a hard limit, and a soft limit that may
/// be exceeded for at most `soft_seconds`. Zero means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: String,
    pub threads: usize,
    pub databases: usize,
    pub maxclients: usize,
    /// The default user's password; empty: none, every connection may run commands.
    pub requirepass: String,
    /// What cluster nodes prove to each other on the Raft port; empty: nothing.
    pub cluster_secret: String,
    /// Close connections idle for this many seconds (0: never).
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub output_normal: OutputLimit,
    pub output_replica: OutputLimit,
    pub output_pubsub: OutputLimit,
    pub hz: u32,
    pub loglevel: String,
    /// When small hashes, lists and sets take their large forms.
    pub encodings: EncodingLimits,
    /// `notify-keyspace-events` as flags (`tessera_storage::notify`).
    pub notify_keyspace_events: u32,
    pub config_file: Option<String>,
    /// Set when the node is a member of a replicated cluster.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            databases: 16,
            maxclients: 10000,
            requirepass: String::new(),
            cluster_secret: String::new(),
            timeout: 0,
            tcp_keepalive: 300,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            output_normal: OutputLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0,
            },
            output_replica: OutputLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            output_pubsub: OutputLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
            hz: 10,
            loglevel: "notice".into(),
            encodings: EncodingLimits::default(),
            notify_keyspace_events: 0,
            config_file: None,
            cluster: None,
        }
    }
}

/// Whether a directive can change while the server runs.
#[derive(PartialEq, Eq)]
enum Mutability {
    Startup,
    Runtime,
}

/// Directives Redis has that Tessera accepts in a config file but that do not apply to it
/// (persistence of a single-node cache, daemonizing); they are logged and otherwise ignored.
const IGNORED: &[&str] = &[
    "save",
    "appendonly",
    "daemonize",
    "supervised",
    "pidfile",
    "logfile",
    "protected-mode",
    "tcp-backlog",
    "always-show-logo",
    "set-proc-title",
    "stop-writes-on-bgsave-error",
    "rdbcompression",
    "rdbchecksum",
    "dbfilename",
    "appendfilename",
    "appendfsync",
];

const DIRECTIVES: &[(&str, Mutability)] = &[
    ("port", Mutability::Startup),
    ("bind", Mutability::Startup),
    ("io-threads", Mutability::Startup),
    ("databases", Mutability::Startup),
    ("maxclients", Mutability::Runtime),
    ("requirepass", Mutability::Runtime),
    ("cluster-secret", Mutability::Startup),
    ("timeout", Mutability::Runtime),
    ("tcp-keepalive", Mutability::Runtime),
    ("proto-max-bulk-len", Mutability::Runtime),
    ("client-query-buffer-limit", Mutability::Runtime),
    ("client-output-buffer-limit", Mutability::Runtime),
    ("hz", Mutability::Runtime),
    ("notify-keyspace-events", Mutability::Runtime),
    ("loglevel", Mutability::Startup),
    ("hash-max-listpack-entries", Mutability::Runtime),
    ("hash-max-listpack-value", Mutability::Runtime),
    ("set-max-intset-entries", Mutability::Runtime),
    ("set-max-listpack-entries", Mutability::Runtime),
    ("set-max-listpack-value", Mutability::Runtime),
    ("list-max-listpack-size", Mutability::Runtime),
    ("zset-max-listpack-entries", Mutability::Runtime),
    ("zset-max-listpack-value", Mutability::Runtime),
];

/// Names Redis still accepts from before listpacks replaced ziplists.
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

/// Parses a Redis memory amount: `1024`, `64kb`, `512mb`, `1gb` (binary) or `1k`, `1m`,
/// `1g` (decimal), as `memtoull` does.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit() && c != '-') {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mul = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// A numeric directive, checked against its range with Redis's wording.
fn int_in<T: TryFrom<i64>>(value: &str, min: i64, max: i64) -> Result<T, String> {
    let n: i64 = value
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if !(min..=max).contains(&n) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    T::try_from(n).map_err(|_| format!("argument must be between {min} and {max} inclusive"))
}

const INT_MAX: i64 = i32::MAX as i64;

impl Config {
    /// Applies one directive; `startup` allows directives that cannot change at run time.
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), String> {
        let mut name = name.to_ascii_lowercase();
        if let Some((_, current)) = ALIASES.iter().find(|(old, _)| *old == name) {
            name = current.to_string();
        }
        if IGNORED.contains(&name.as_str()) {
            tracing::info!(directive = %name, "directive has no effect in Tessera; ignored");
            return Ok(());
        }
        let Some((_, mutability)) = DIRECTIVES.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        if *mutability == Mutability::Startup && !startup {
            return Err(format!("Unsupported CONFIG parameter: {name}"));
        }
        let memory =
            |v: &str| parse_memory(v).ok_or_else(|| "argument must be a memory value".to_string());
        match name.as_str() {
            "port" => self.port = int_in(value, 0, 65535)?,
            "bind" => {
                self.bind = value
                    .split_whitespace()
                    .next()
                    .unwrap_or("127.0.0.1")
                    .to_string()
            }
            "io-threads" => self.threads = int_in(value, 1, 128)?,
            "databases" => {
                self.databases = int_in(value, 1, INT_MAX)?;
            }
            "maxclients" => self.maxclients = int_in(value, 1, u32::MAX as i64)?,
            "requirepass" => self.requirepass = value.to_string(),
            "cluster-secret" => self.cluster_secret = value.to_string(),
            "timeout" => self.timeout = int_in(value, 0, INT_MAX)?,
            "tcp-keepalive" => self.tcp_keepalive = int_in(value, 0, INT_MAX)?,
            "proto-max-bulk-len" => {
                let v = memory(value)?;
                if v < 1024 * 1024 {
                    return Err("argument must be a memory value of at least 1mb".into());
                }
                self.proto_max_bulk_len = v;
            }
            "client-query-buffer-limit" => {
                let v = memory(value)?;
                if v < 1024 * 1024 {
                    return Err("argument must be a memory value of at least 1mb".into());
                }
                self.client_query_buffer_limit = v;
            }
            "client-output-buffer-limit" => self.set_output_limits(value)?,
            "hash-max-listpack-entries" => {
                self.encodings.hash_max_listpack_entries = int_in(value, 0, i64::MAX)?
            }
            "hash-max-listpack-value" => {
                self.encodings.hash_max_listpack_value = int_in(value, 0, i64::MAX)?
            }
            "set-max-intset-entries" => {
                self.encodings.set_max_intset_entries = int_in(value, 0, i64::MAX)?
            }
            "set-max-listpack-entries" => {
                self.encodings.set_max_listpack_entries = int_in(value, 0, i64::MAX)?
            }
            "set-max-listpack-value" => {
                self.encodings.set_max_listpack_value = int_in(value, 0, i64::MAX)?
            }
            "list-max-listpack-size" => {
                self.encodings.list_max_listpack_size = int_in(value, i32::MIN as i64, INT_MAX)?
            }
            "zset-max-listpack-entries" => {
                self.encodings.zset_max_listpack_entries = int_in(value, 0, i64::MAX)?
            }
            "zset-max-listpack-value" => {
                self.encodings.zset_max_listpack_value = int_in(value, 0, i64::MAX)?
            }
            "hz" => self.hz = int_in::<u32>(value, 0, INT_MAX)?.clamp(1, 500),
            "notify-keyspace-events" => {
                self.notify_keyspace_events = tessera_storage::notify::parse(value)?
            }
            "loglevel" => {
                let level = value.to_ascii_lowercase();
                if !["debug", "verbose", "notice", "warning", "nothing"].contains(&level.as_str()) {
                    return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into());
                }
                self.loglevel = level;
            }
            _ => unreachable!("every directive in DIRECTIVES is handled"),
        }
        Ok(())
    }

    /// `client-output-buffer-limit <class> <hard> <soft> <soft seconds>`, repeated.
    fn set_output_limits(&mut self, value: &str) -> Result<(), String> {
        let words: Vec<&str> = value.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut updated = Vec::new();
        for group in words.chunks(4) {
            let bad = || {
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                    .to_string()
            };
            let limit = OutputLimit {
                hard: parse_memory(group[1]).ok_or_else(bad)?,
                soft: parse_memory(group[2]).ok_or_else(bad)?,
                soft_seconds: group[3].parse().map_err(|_| bad())?,
            };
            let class = group[0].to_ascii_lowercase();
            match class.as_str() {
                "normal" | "replica" | "slave" | "pubsub" => updated.push((class, limit)),
                _ => {
                    return Err(
                        "Invalid client class specified in buffer limit configuration.".into(),
                    )
                }
            }
        }
        for (class, limit) in updated {
            match class.as_str() {
                "normal" => self.output_normal = limit,
                "pubsub" => self.output_pubsub = limit,
                _ => self.output_replica = limit,
            }
        }
        Ok(())
    }

    /// Reads a redis.conf-style file: one `directive value...` per line, `#` comments.
    pub fn load_file(&mut self, path: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {path}: {e}"))?;
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = value.trim().trim_matches('"');
            self.set(name, value, true)
                .map_err(|e| format!("{path}:{}: '{line}': {e}", lineno + 1))?;
        }
        self.config_file = Some(path.to_string());
        Ok(())
    }

    /// Every directive with its current value, for CONFIG GET.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let limits = {
            let mut s = String::new();
            for (class, l) in [
                ("normal", self.output_normal),
                ("slave", self.output_replica),
                ("pubsub", self.output_pubsub),
            ] {
                let _ = write!(
                    s,
                    "{}{} {} {} {}",
                    if s.is_empty() { "" } else { " " },
                    class,
                    l.hard,
                    l.soft,
                    l.soft_seconds
                );
            }
            s
        };
        vec![
            ("port", self.port.to_string()),
            ("bind", self.bind.clone()),
            ("io-threads", self.threads.to_string()),
            ("databases", self.databases.to_string()),
            ("maxclients", self.maxclients.to_string()),
            ("requirepass", self.requirepass.clone()),
            ("cluster-secret", self.cluster_secret.clone()),
            ("timeout", self.timeout.to_string()),
            ("tcp-keepalive", self.tcp_keepalive.to_string()),
            ("proto-max-bulk-len", self.proto_max_bulk_len.to_string()),
            (
                "client-query-buffer-limit",
                self.client_query_buffer_limit.to_string(),
            ),
            ("client-output-buffer-limit", limits),
            ("hz", self.hz.to_string()),
            (
                "notify-keyspace-events",
                tessera_storage::notify::format(self.notify_keyspace_events),
            ),
            ("loglevel", self.loglevel.clone()),
            (
                "hash-max-listpack-entries",
                self.encodings.hash_max_listpack_entries.to_string(),
            ),
            (
                "hash-max-listpack-value",
                self.encodings.hash_max_listpack_value.to_string(),
            ),
            (
                "set-max-intset-entries",
                self.encodings.set_max_intset_entries.to_string(),
            ),
            (
                "set-max-listpack-entries",
                self.encodings.set_max_listpack_entries.to_string(),
            ),
            (
                "set-max-listpack-value",
                self.encodings.set_max_listpack_value.to_string(),
            ),
            (
                "list-max-listpack-size",
                self.encodings.list_max_listpack_size.to_string(),
            ),
            (
                "zset-max-listpack-entries",
                self.encodings.zset_max_listpack_entries.to_string(),
            ),
            (
                "zset-max-listpack-value",
                self.encodings.zset_max_listpack_value.to_string(),
            ),
            ("save", String::new()),
            ("appendonly", "no".into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_follow_redis() {
        assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("12xb"), None);
    }

    #[test]
    fn directives_apply_and_validate() {
        let mut c = Config::default();
        c.set("timeout", "30", false).unwrap();
        assert_eq!(c.timeout, 30);
        assert!(
            c.set("port", "7000", false).is_err(),
            "port is fixed at run time"
        );
        assert!(c.set("nonsense", "1", true).is_err());
        c.set("client-output-buffer-limit", "normal 10mb 5mb 10", false)
            .unwrap();
        assert_eq!(
            c.output_normal,
            OutputLimit {
                hard: 10 << 20,
                soft: 5 << 20,
                soft_seconds: 10
            }
        );
        assert!(c
            .set("client-output-buffer-limit", "bogus 1 1 1", false)
            .is_err());
        assert!(c.set("proto-max-bulk-len", "10", false).is_err());
    }

    #[test]
    fn config_file_lines_are_read() {
        let path = std::env::temp_dir().join(format!("tessera-conf-{}", std::process::id()));
        std::fs::write(&path, "# comment\nport 7001\n\nsave \"\"\nmaxclients 50\n").unwrap();
        let mut c = Config::default();
        c.load_file(path.to_str().unwrap()).unwrap();
        assert_eq!((c.port, c.maxclients), (7001, 50));
        std::fs::write(&path, "bogus-directive 1\n").unwrap();
        assert!(Config::default().load_file(path.to_str().unwrap()).is_err());
        let _ = std::fs::remove_file(path);
    }
}
