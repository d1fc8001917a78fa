//! The test network. As root: each node in its own network namespace, joined to the others
//! by veth pairs on one bridge, so that partitions and packet loss act on real packets.
//! Without root, [`crate::proxy`] stands in: a fault-injecting TCP proxy per node.
//!
//! Faults are iptables rules inside the receiving node's namespace, in chains of the
//! runner's own so each kind heals apart: `tessera-cut` drops everything from the nodes
//! it is cut off from, `tessera-loss` drops a share of every packet. Delay needs the
//! kernel's netem queueing discipline; where the kernel lacks it (some sandboxes' kernels
//! do), [`Network::delay_supported`] says so and the nemesis injects loss alone.
//! The clients stay in the runner's namespace and reach every node over the bridge, as
//! Jepsen's clients reach every node whatever the partition.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use crate::proxy::Proxies;

/// The network the nodes run in, and where faults are injected.
pub trait Network: Send {
    fn kind(&self) -> &'static str;

    /// Where node `node` listens, and where the test's clients reach it.
    fn client_address(&self, node: u64) -> SocketAddr;

    /// Where the other nodes reach node `node`: its address in the member list.
    fn advertised_address(&self, node: u64) -> SocketAddr {
        self.client_address(node)
    }

    /// The program and arguments that run `program` as node `node`.
    fn wrap(&self, _node: u64, program: &str) -> (String, Vec<String>) {
        (program.to_string(), Vec::new())
    }

    /// Tells the network which process is node `node` now (None: it is not running).
    fn started(&self, _node: u64, _pid: Option<u32>) {}

    /// Whether `degrade` delays packets as well as dropping some.
    fn delay_supported(&self) -> bool;

    /// Replaces the partition in force: for each `(from, to)`, `to` hears nothing from `from`.
    fn partition(&self, links_cut: &BTreeSet<(u64, u64)>) -> Result<(), String>;

    fn heal_partition(&self) -> Result<(), String>;

    /// Loses `loss_percent` of what `nodes` receive and delays it by about `delay_ms`.
    fn degrade(&self, nodes: &[u64], loss_percent: u32, delay_ms: u32) -> Result<(), String>;

    fn heal_degradation(&self) -> Result<(), String>;
}

/// Namespaces when this process is root and `proxies` is not asked for; proxies too when
/// making namespaces fails (a container without the right to), said on stderr.
pub fn create(nodes: &[u64], proxies: bool) -> Result<Box<dyn Network>, String> {
    if !proxies && Namespaces::available() {
        match Namespaces::create(nodes) {
            Ok(namespaces) => return Ok(Box::new(namespaces)),
            Err(why) => {
                clear_leftovers();
                eprintln!("network namespaces unavailable ({why}); using proxies");
            }
        }
    }
    Ok(Box::new(Proxies::create(nodes)?))
}

/// Every namespace and link the runner makes carries this prefix, so a run can clear what
/// an earlier, interrupted run left behind.
const PREFIX: &str = "tessera-j";
const BRIDGE: &str = "tessera-jbr";
/// The subnet of the test network: the bridge (the clients' side) is .1, node i is .10+i.
const SUBNET: [u8; 3] = [10, 77, 0];
const CLIENT_PORT: u16 = 6379;
const CUT_CHAIN: &str = "tessera-cut";
const LOSS_CHAIN: &str = "tessera-loss";

/// Runs a command to completion; its stderr explains a failure.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

pub struct Namespaces {
    nodes: Vec<u64>,
    delay_supported: bool,
}

fn namespace(node: u64) -> String {
    format!("{PREFIX}{node}")
}

fn ip(node: u64) -> Ipv4Addr {
    let [a, b, c] = SUBNET;
    Ipv4Addr::new(a, b, c, 10 + node as u8)
}

/// Runs `args` inside `node`'s namespace.
fn in_namespace(node: u64, args: &[&str]) -> Result<(), String> {
    let ns = namespace(node);
    let mut full = vec!["netns", "exec", ns.as_str()];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Removes what an earlier run left: namespaces, then the bridge and veth ends still
/// in this namespace. Errors mean there was nothing to remove.
fn clear_leftovers() {
    if let Ok(output) = Command::new("ip").args(["netns", "list"]).output() {
        let listing = String::from_utf8_lossy(&output.stdout);
        for name in listing.split_whitespace() {
            if name.starts_with(PREFIX) && name[PREFIX.len()..].parse::<u64>().is_ok() {
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }
    if let Ok(output) = Command::new("ip").args(["-o", "link", "show"]).output() {
        let listing = String::from_utf8_lossy(&output.stdout);
        for line in listing.lines() {
            // "7: tessera-jv1@if2: <...>": the name, less any "@peer".
            let name = line.split(": ").nth(1).and_then(|n| n.split('@').next());
            if let Some(name) = name.filter(|name| name.starts_with(PREFIX)) {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
}

impl Namespaces {
    /// Whether this process may make namespaces: it must be root.
    fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn create(nodes: &[u64]) -> Result<Namespaces, String> {
        clear_leftovers();
        let [a, b, c] = SUBNET;
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", BRIDGE],
        )?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        for &node in nodes {
            let ns = namespace(node);
            let veth = format!("{PREFIX}v{node}");
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &veth, "master", BRIDGE, "up"])?;
            let address = format!("{}/24", ip(node));
            run("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            for chain in [CUT_CHAIN, LOSS_CHAIN] {
                in_namespace(node, &["iptables", "-N", chain])?;
                in_namespace(node, &["iptables", "-A", "INPUT", "-j", chain])?;
            }
        }
        let first = nodes.first().copied().unwrap_or(1);
        let probe = [
            "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms",
        ];
        let delay_supported = in_namespace(first, &probe).is_ok();
        if delay_supported {
            in_namespace(first, &["tc", "qdisc", "del", "dev", "eth0", "root"])?;
        }
        Ok(Namespaces {
            nodes: nodes.to_vec(),
            delay_supported,
        })
    }
}

impl Network for Namespaces {
    fn kind(&self) -> &'static str {
        "network namespaces"
    }

    fn delay_supported(&self) -> bool {
        self.delay_supported
    }

    fn client_address(&self, node: u64) -> SocketAddr {
        SocketAddr::from((ip(node), CLIENT_PORT))
    }

    fn wrap(&self, node: u64, program: &str) -> (String, Vec<String>) {
        let args = ["netns", "exec", &namespace(node), program];
        ("ip".into(), args.iter().map(|a| a.to_string()).collect())
    }

    fn partition(&self, links_cut: &BTreeSet<(u64, u64)>) -> Result<(), String> {
        self.heal_partition()?;
        for &(from, to) in links_cut {
            let source = ip(from).to_string();
            in_namespace(
                to,
                &["iptables", "-A", CUT_CHAIN, "-s", &source, "-j", "DROP"],
            )?;
        }
        Ok(())
    }

    fn heal_partition(&self) -> Result<(), String> {
        for &node in &self.nodes {
            in_namespace(node, &["iptables", "-F", CUT_CHAIN])?;
        }
        Ok(())
    }

    /// Delay only where the kernel has netem: each packet by `delay_ms` ± half as much.
    fn degrade(&self, nodes: &[u64], loss_percent: u32, delay_ms: u32) -> Result<(), String> {
        let probability = format!("{:.3}", f64::from(loss_percent) / 100.0);
        for &node in nodes {
            in_namespace(
                node,
                &[
                    "iptables",
                    "-A",
                    LOSS_CHAIN,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &probability,
                    "-j",
                    "DROP",
                ],
            )?;
            if self.delay_supported {
                let (delay, jitter) = (format!("{delay_ms}ms"), format!("{}ms", delay_ms / 2));
                in_namespace(
                    node,
                    &[
                        "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", &delay,
                        &jitter,
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn heal_degradation(&self) -> Result<(), String> {
        for &node in &self.nodes {
            in_namespace(node, &["iptables", "-F", LOSS_CHAIN])?;
            if self.delay_supported {
                // Fails only when no qdisc was added.
                let _ = in_namespace(node, &["tc", "qdisc", "del", "dev", "eth0", "root"]);
            }
        }
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        clear_leftovers();
    }
}

/// The links to cut so that each node hears only its own component (and nodes in no
/// component, which bridge them).
pub fn links_between(components: &[Vec<u64>]) -> BTreeSet<(u64, u64)> {
    let mut cut = BTreeSet::new();
    for (i, one) in components.iter().enumerate() {
        for other in &components[i + 1..] {
            for &a in one {
                for &b in other {
                    cut.insert((a, b));
                    cut.insert((b, a));
                }
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_cut_off_from_each_other_in_both_directions_and_a_bridge_from_none() {
        let cut = links_between(&[vec![1, 2], vec![4, 5]]);
        assert_eq!(cut.len(), 8);
        assert!(cut.contains(&(1, 4)) && cut.contains(&(4, 1)));
        assert!(!cut.contains(&(1, 2)));
        assert!(!cut.iter().any(|&(a, b)| a == 3 || b == 3));
    }
}
