//! The test network without root: every node on its own loopback address, and in front of
//! each one a TCP proxy at the address the other nodes know it by. Node-to-node traffic
//! (Raft, and requests relayed to leaders) passes through the proxies, which stall a
//! connection while its two ends are cut off from each other and slow it down under
//! netem; the test's clients reach the nodes directly, as in the namespaced network.
//!
//! All nodes dial from 127.0.0.1, so a proxy tells which node opened a connection by its
//! source port: /proc/net/tcp names the socket's inode, and the node whose process holds
//! that inode among its file descriptors is the one. A connection no node owns (a client,
//! a probe) is never cut.
//!
//! TCP loses nothing, so "loss" here is what a lossy link does to a TCP stream: some
//! chunks arrive a retransmission timeout late.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::net::Network;
use crate::rng::Rng;

const CLIENT_PORT: u16 = 6379;
const RAFT_PORT: u16 = CLIENT_PORT + 10_000;
/// How long a stalled or idle pump waits before looking at the faults again.
const POLL: Duration = Duration::from_millis(50);
/// A lost segment's cost on a TCP stream: about one minimum retransmission timeout.
const RETRANSMISSION_DELAY: Duration = Duration::from_millis(200);

/// Where node `node` listens: 127.0.1.(10+node).
fn real_ip(node: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 10 + node as u8)
}

/// Where the other nodes reach node `node`, through its proxy: 127.0.0.(10+node).
fn proxy_ip(node: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + node as u8)
}

#[derive(Default)]
struct Faults {
    /// (from, to): `to` hears nothing from `from`.
    cut: BTreeSet<(u64, u64)>,
    /// Nodes whose incoming traffic is degraded: (loss percent, delay).
    degraded: HashMap<u64, (u32, Duration)>,
    /// Each running node's process id, to tell who opened a connection.
    pids: HashMap<u64, u32>,
}

pub struct Proxies {
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
}

impl Proxies {
    pub fn create(nodes: &[u64]) -> Result<Proxies, String> {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let stop = Arc::new(AtomicBool::new(false));
        for &node in nodes {
            for port in [CLIENT_PORT, RAFT_PORT] {
                let from = SocketAddr::from((proxy_ip(node), port));
                let to = SocketAddr::from((real_ip(node), port));
                let listener = TcpListener::bind(from).map_err(|e| format!("proxy {from}: {e}"))?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| format!("proxy {from}: {e}"))?;
                let (faults, stop) = (faults.clone(), stop.clone());
                thread::spawn(move || accept_loop(listener, node, to, faults, stop));
            }
        }
        Ok(Proxies { faults, stop })
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .expect("no proxy thread panics holding the faults")
    }
}

impl Network for Proxies {
    fn kind(&self) -> &'static str {
        "loopback with a TCP proxy per node"
    }

    fn delay_supported(&self) -> bool {
        true
    }

    /// Where node `node` serves the test's clients (directly, not through its proxy).
    fn client_address(&self, node: u64) -> SocketAddr {
        SocketAddr::from((real_ip(node), CLIENT_PORT))
    }

    /// Where the other nodes reach node `node`: its proxy.
    fn advertised_address(&self, node: u64) -> SocketAddr {
        SocketAddr::from((proxy_ip(node), CLIENT_PORT))
    }

    fn started(&self, node: u64, pid: Option<u32>) {
        let mut faults = self.faults();
        match pid {
            Some(pid) => faults.pids.insert(node, pid),
            None => faults.pids.remove(&node),
        };
    }

    fn partition(&self, links_cut: &BTreeSet<(u64, u64)>) -> Result<(), String> {
        self.faults().cut = links_cut.clone();
        Ok(())
    }

    fn heal_partition(&self) -> Result<(), String> {
        self.faults().cut.clear();
        Ok(())
    }

    fn degrade(&self, nodes: &[u64], loss_percent: u32, delay_ms: u32) -> Result<(), String> {
        let delay = Duration::from_millis(u64::from(delay_ms));
        let mut faults = self.faults();
        for &node in nodes {
            faults.degraded.insert(node, (loss_percent, delay));
        }
        Ok(())
    }

    fn heal_degradation(&self) -> Result<(), String> {
        self.faults().degraded.clear();
        Ok(())
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn accept_loop(
    listener: TcpListener,
    node: u64,
    target: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let (inbound, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => continue,
        };
        let pids = faults.lock().expect("not poisoned").pids.clone();
        let source = owner_of(from, inbound.local_addr().ok(), &pids);
        let Ok(outbound) = TcpStream::connect(target) else {
            continue;
        };
        let link = Link {
            source,
            node,
            faults: faults.clone(),
            stop: stop.clone(),
        };
        for (from, to) in pipes(inbound, outbound) {
            let link = link.clone();
            thread::spawn(move || link.pump(from, to));
        }
    }
}

/// Both directions of a proxied connection, each as (read side, write side).
fn pipes(inbound: TcpStream, outbound: TcpStream) -> Vec<(TcpStream, TcpStream)> {
    let clones = inbound
        .try_clone()
        .and_then(|i| Ok((i, outbound.try_clone()?)));
    match clones {
        Ok((inbound_copy, outbound_copy)) => {
            vec![(inbound, outbound), (outbound_copy, inbound_copy)]
        }
        Err(_) => Vec::new(),
    }
}

#[derive(Clone)]
struct Link {
    /// The node that opened the connection, if a node did.
    source: Option<u64>,
    /// The node behind the proxy.
    node: u64,
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
}

impl Link {
    /// What to do with the next chunk: None while the link is cut, else how late to
    /// deliver it.
    fn policy(&self, rng: &mut Rng) -> Option<Duration> {
        let faults = self.faults.lock().expect("not poisoned");
        let Some(source) = self.source else {
            return Some(Duration::ZERO);
        };
        let cut =
            faults.cut.contains(&(source, self.node)) || faults.cut.contains(&(self.node, source));
        if cut {
            return None;
        }
        // Either end degraded slows the stream, as a lossy link would both ways.
        let degraded = faults
            .degraded
            .get(&self.node)
            .or(faults.degraded.get(&source));
        Some(match degraded {
            Some(&(loss, delay)) if rng.percent(loss) => delay + RETRANSMISSION_DELAY,
            Some(&(_, delay)) => delay,
            None => Duration::ZERO,
        })
    }

    /// Copies `from` to `to` until either closes, holding chunks back under the faults.
    fn pump(self, mut from: TcpStream, mut to: TcpStream) {
        let mut rng =
            Rng::new(u64::from(from.local_addr().map_or(0, |a| a.port())) << 16 | self.node);
        let _ = from.set_read_timeout(Some(POLL));
        let mut buffer = vec![0u8; 64 * 1024];
        while !self.stop.load(Ordering::Relaxed) {
            // A cut link reads nothing: the sender's data waits, as it would for
            // retransmission across a partition, and arrives if the link heals in time.
            let Some(delay) = self.policy(&mut rng) else {
                thread::sleep(POLL);
                continue;
            };
            let read = match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(_) => break,
            };
            if !delay.is_zero() {
                thread::sleep(delay);
            }
            if to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
}

/// The node whose process owns the socket at `peer` connected to `local`, found through
/// /proc (the socket's inode, then the process holding it).
fn owner_of(peer: SocketAddr, local: Option<SocketAddr>, pids: &HashMap<u64, u32>) -> Option<u64> {
    let local = local?;
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = socket_inode(&table, peer, local)?;
    let wanted = format!("socket:[{inode}]");
    pids.iter().find_map(|(&node, &pid)| {
        let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| {
                fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
            })
            .then_some(node)
    })
}

/// The inode of the IPv4 socket bound at `local_end` and connected to `remote_end`, from
/// /proc/net/tcp's text (addresses as little-endian hex, then the inode in column 10).
fn socket_inode(table: &str, local_end: SocketAddr, remote_end: SocketAddr) -> Option<u64> {
    let hex = |address: SocketAddr| match address {
        SocketAddr::V4(v4) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        )),
        SocketAddr::V6(_) => None,
    };
    let (local_end, remote_end) = (hex(local_end)?, hex(remote_end)?);
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local_end.as_str()) && fields.get(2) == Some(&remote_end.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_found_in_proc_net_tcp_by_both_ends() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:C350 0C00007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 20 4 30 10 -1\n";
        let local = SocketAddr::from(([127, 0, 0, 1], 50000));
        let remote = SocketAddr::from(([127, 0, 0, 12], 6379));
        assert_eq!(socket_inode(table, local, remote), Some(4242));
        assert_eq!(socket_inode(table, remote, local), None);
    }

    #[test]
    fn the_owner_of_a_connection_is_the_process_that_opened_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let me = HashMap::from([(7, std::process::id())]);
        assert_eq!(owner_of(peer, accepted.local_addr().ok(), &me), Some(7));
        let stranger = HashMap::from([(7, 1)]);
        assert_eq!(owner_of(peer, accepted.local_addr().ok(), &stranger), None);
        drop(client);
    }
}
