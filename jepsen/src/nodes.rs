//! The tessera processes under test: started, killed, paused and restarted by the runner
//! and its nemesis, each with its data directory and log in the run's folder.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::net::Network;
use crate::resp::{Connection, Reply};

/// How the nodes are started.
pub struct NodeSettings {
    pub binary: PathBuf,
    pub replicas: usize,
    pub partitions: u32,
    /// A planted bug the binary should switch on (it must be built with the
    /// `planted-bugs` feature).
    pub planted_bug: Option<String>,
}

struct Node {
    id: u64,
    child: Option<Child>,
    paused: bool,
    folder: PathBuf,
}

pub struct Nodes {
    settings: NodeSettings,
    network: Box<dyn Network>,
    nodes: Vec<Node>,
    members: String,
}

/// How long a node may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Nodes {
    pub fn new(
        settings: NodeSettings,
        network: Box<dyn Network>,
        ids: &[u64],
        run: &Path,
    ) -> Nodes {
        let members = ids
            .iter()
            .map(|&id| format!("{id}@{}", network.advertised_address(id)))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ids
            .iter()
            .map(|&id| Node {
                id,
                child: None,
                paused: false,
                folder: run.join(format!("n{id}")),
            })
            .collect();
        Nodes {
            settings,
            network,
            nodes,
            members,
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    pub fn network(&self) -> &dyn Network {
        self.network.as_ref()
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .expect("nodes are only named by their ids")
    }

    /// Starts node `id` as a member; `bootstrap` only when the cluster is first formed.
    pub fn start(&mut self, id: u64, bootstrap: bool) -> Result<(), String> {
        let mut cluster = vec!["--members".to_string(), self.members.clone()];
        if bootstrap {
            cluster.push("--bootstrap".into());
        }
        self.spawn(id, cluster)
    }

    /// Starts node `id`, wiped, to join the cluster through member `seed`.
    pub fn start_joining(&mut self, id: u64, seed: u64) -> Result<(), String> {
        let seed = self.network.advertised_address(seed).to_string();
        self.spawn(id, vec!["--join".into(), seed])
    }

    fn spawn(&mut self, id: u64, cluster: Vec<String>) -> Result<(), String> {
        let address = self.network.client_address(id);
        let (program, mut args) = self
            .network
            .wrap(id, &self.settings.binary.to_string_lossy());
        let folder = self.node(id).folder.clone();
        fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        args.extend(
            [
                "--bind",
                &address.ip().to_string(),
                "--port",
                &address.port().to_string(),
                "--node-id",
                &id.to_string(),
                "--replicas",
                &self.settings.replicas.to_string(),
                "--partitions",
                &self.settings.partitions.to_string(),
                "--threads",
                "1",
                "--durability",
                "fsync",
                "--cluster-forwarding",
                "--dir",
                &folder.join("data").to_string_lossy(),
            ]
            .map(String::from),
        );
        args.extend(cluster);
        let log_path = folder.join("node.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = Command::new(&program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if let Some(bug) = &self.settings.planted_bug {
            command.env("TESSERA_PLANTED_BUG", bug);
        }
        let child = command.spawn().map_err(|e| format!("{program}: {e}"))?;
        self.network.started(id, Some(child.id()));
        let node = self.node(id);
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Deletes node `id`'s data, as for a machine replaced after its removal.
    pub fn wipe(&mut self, id: u64) {
        let _ = fs::remove_dir_all(self.node(id).folder.join("data"));
    }

    /// Whether node `via` reports `id` as an active member (`member`) or not listed at all,
    /// with no partition moving.
    pub fn membership_settled(&self, via: u64, id: u64, member: bool) -> bool {
        let Some(Reply::Bulk(Some(text))) = self.ask(via, &[b"CLUSTER", b"ROSTER"]) else {
            return false;
        };
        let text = String::from_utf8_lossy(&text);
        let id = id.to_string();
        let listed = |active: bool| {
            text.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                matches!(words.as_slice(), ["member", i, _, _, state] if *i == id && (!active || *state == "active"))
            })
        };
        let done = if member { listed(true) } else { !listed(false) };
        done && text.lines().any(|line| line.trim() == "moving 0")
    }

    pub fn running(&self, id: u64) -> bool {
        self.nodes
            .iter()
            .any(|node| node.id == id && node.child.is_some())
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill(&mut self, id: u64) {
        let node = self.node(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
        self.network.started(id, None);
    }

    fn signal(&mut self, id: u64, signal: libc::c_int) -> bool {
        let node = self.node(id);
        let Some(child) = &node.child else {
            return false;
        };
        // SAFETY: kill with a pid this runner spawned and has not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) == 0 }
    }

    pub fn pause(&mut self, id: u64) -> bool {
        let paused = self.signal(id, libc::SIGSTOP);
        self.node(id).paused |= paused;
        paused
    }

    pub fn resume(&mut self, id: u64) {
        if self.node(id).paused {
            self.signal(id, libc::SIGCONT);
            self.node(id).paused = false;
        }
    }

    /// Stops every node, SIGTERM first, and waits for them.
    pub fn stop_all(&mut self) {
        let ids = self.ids();
        for &id in &ids {
            self.resume(id);
            self.signal(id, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &mut self.nodes {
            let Some(mut child) = node.child.take() else {
                continue;
            };
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One request to one node, on a fresh connection.
    pub fn ask(&self, id: u64, args: &[&[u8]]) -> Option<Reply> {
        let mut connection =
            Connection::open(self.network.client_address(id), PROBE_TIMEOUT).ok()?;
        connection.call(args).ok()
    }

    /// Waits until every running node says its cluster is ok.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            loop {
                let info = self.ask(node.id, &[b"CLUSTER", b"INFO"]);
                let ok = matches!(&info, Some(Reply::Bulk(Some(text))) if contains(text, b"cluster_state:ok"));
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "node {} not ready after {timeout:?}: {info:?}",
                        node.id
                    ));
                }
                thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// The leader of `key`'s partition, from the first node that answers CLUSTER SLOTS.
    pub fn leader_of(&self, key: &[u8]) -> Option<u64> {
        let slot = slot_of(key);
        self.nodes.iter().find_map(|node| {
            let Some(Reply::Array(Some(ranges))) = self.ask(node.id, &[b"CLUSTER", b"SLOTS"])
            else {
                return None;
            };
            ranges.iter().find_map(|range| {
                let Reply::Array(Some(fields)) = range else {
                    return None;
                };
                let (Some(Reply::Integer(first)), Some(Reply::Integer(last))) =
                    (fields.first(), fields.get(1))
                else {
                    return None;
                };
                if !(*first..=*last).contains(&i64::from(slot)) {
                    return None;
                }
                let Some(Reply::Array(Some(master))) = fields.get(2) else {
                    return None;
                };
                let Some(Reply::Bulk(Some(host))) = master.first() else {
                    return None;
                };
                let host = String::from_utf8_lossy(host);
                self.nodes
                    .iter()
                    .find(|n| self.network.advertised_address(n.id).ip().to_string() == host)
                    .map(|n| n.id)
            })
        })
    }

    /// Removes every node's data, which only a failed run needs kept for inspection.
    pub fn remove_data(&mut self) {
        for id in self.ids() {
            self.wipe(id);
        }
    }

    pub fn log_files(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .map(|node| node.folder.join("node.log"))
            .filter(|path| path.exists())
            .collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Redis Cluster's hash slot: CRC16 (XMODEM) of the key, or of its first non-empty
/// `{hash tag}`, modulo 16384.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_ne!(slot_of(b"{}x"), slot_of(b"x"));
    }
}
