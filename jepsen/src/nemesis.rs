//! Faults, and the schedule that injects them: one at a time, each held for an interval
//! and healed before the next, every start and stop recorded in the history so the plots
//! can shade it and a reader can line anomalies up with it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::history::{EventType, Process};
use crate::net::links_between;
use crate::nodes::Nodes;
use crate::recorder::Recorder;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Cut the network: random halves, one node alone, a partition's leader alone, two
    /// halves joined by one bridging node, or a ring of overlapping majorities.
    Partition,
    /// SIGKILL a minority of the nodes (or a leader), restart them when it stops.
    Kill,
    /// SIGSTOP a minority of the nodes (or a leader), SIGCONT when it stops.
    Pause,
    /// Packet loss, and delay where the kernel has netem, on some nodes.
    Netem,
    /// Remove a node from the cluster, then wipe it and add it back.
    Membership,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::Netem,
        Fault::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Netem => "netem",
            Fault::Membership => "membership",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|fault| fault.name() == name)
    }
}

/// What a started fault did, so that stopping it undoes exactly that.
enum Active {
    Partition,
    Killed(Vec<u64>),
    Paused(Vec<u64>),
    Degraded,
    Removed(u64),
}

pub struct Nemesis<'a> {
    pub nodes: &'a Mutex<Nodes>,
    pub recorder: &'a Recorder,
    pub faults: Vec<Fault>,
    pub interval: Duration,
    /// Keys whose partitions' leaders are worth isolating, killing or pausing.
    pub hot_keys: Vec<String>,
}

/// Loss and delay the netem fault applies.
const LOSS_PERCENT: u32 = 20;
const DELAY_MS: u32 = 50;
/// How long a membership change may take to settle.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(90);

impl Nemesis<'_> {
    fn log(&self, event_type: EventType, f: &str, value: Value) {
        self.recorder
            .record(Process::Nemesis, event_type, f, value, None, None);
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes
            .lock()
            .expect("no thread panics holding the nodes")
    }

    /// Injects faults until `stop`, then heals whatever is active.
    pub fn run(&self, seed: u64, stop: &AtomicBool) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let sleep = |duration: Duration| {
            let until = Instant::now() + duration;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(50));
            }
        };
        while !stop.load(Ordering::Relaxed) && !self.faults.is_empty() {
            sleep(self.interval);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let fault = *rng.pick(&self.faults);
            let name = format!("start-{}", fault.name());
            self.log(EventType::Invoke, &name, Value::Null);
            let (active, what) = self.start(fault, &mut rng)?;
            self.log(EventType::Info, &name, what);
            sleep(self.interval);
            self.stop(fault, active)?;
        }
        Ok(())
    }

    /// Every fault the runner may have left, healed: used after the run, and after errors.
    pub fn heal_all(&self) -> Result<(), String> {
        self.log(EventType::Invoke, "heal", Value::Null);
        let mut nodes = self.nodes();
        nodes.network().heal_partition()?;
        nodes.network().heal_degradation()?;
        for id in nodes.ids() {
            nodes.resume(id);
            if !nodes.running(id) {
                nodes.start(id, false)?;
            }
        }
        drop(nodes);
        self.log(EventType::Info, "heal", Value::Null);
        Ok(())
    }

    fn stop(&self, fault: Fault, active: Active) -> Result<(), String> {
        let name = format!("stop-{}", fault.name());
        self.log(EventType::Invoke, &name, Value::Null);
        let what = {
            let mut nodes = self.nodes();
            match active {
                Active::Partition => {
                    nodes.network().heal_partition()?;
                    Value::Null
                }
                Active::Degraded => {
                    nodes.network().heal_degradation()?;
                    Value::Null
                }
                Active::Killed(ids) => {
                    for &id in &ids {
                        nodes.start(id, false)?;
                    }
                    json!({ "restarted": ids })
                }
                Active::Paused(ids) => {
                    for &id in &ids {
                        nodes.resume(id);
                    }
                    json!({ "resumed": ids })
                }
                Active::Removed(id) => {
                    drop(nodes);
                    self.add_back(id)?;
                    json!({ "added": id })
                }
            }
        };
        self.log(EventType::Info, &name, what);
        Ok(())
    }

    /// A leader worth hitting: of a random hot key's partition.
    fn some_leader(&self, nodes: &Nodes, rng: &mut Rng) -> Option<u64> {
        let key = (!self.hot_keys.is_empty()).then(|| rng.pick(&self.hot_keys).clone())?;
        nodes.leader_of(key.as_bytes())
    }

    /// A minority of the nodes, or a partition's leader, to kill or pause.
    fn victims(&self, nodes: &Nodes, rng: &mut Rng) -> (Vec<u64>, &'static str) {
        let mut ids = nodes.ids();
        if rng.percent(40) {
            if let Some(leader) = self.some_leader(nodes, rng) {
                return (vec![leader], "leader");
            }
        }
        rng.shuffle(&mut ids);
        let most = ((ids.len() - 1) / 2).max(1);
        ids.truncate(1 + rng.below(most));
        ids.sort_unstable();
        (ids, "minority")
    }

    fn start(&self, fault: Fault, rng: &mut Rng) -> Result<(Active, Value), String> {
        let mut nodes = self.nodes();
        Ok(match fault {
            Fault::Partition => {
                let (components, kind) = self.components(&nodes, rng);
                let cut = if kind == "ring" {
                    ring_links(&nodes.ids())
                } else {
                    links_between(&components)
                };
                nodes.network().partition(&cut)?;
                let value = json!({ "kind": kind, "components": components });
                (Active::Partition, value)
            }
            Fault::Kill | Fault::Pause => {
                let (ids, kind) = self.victims(&nodes, rng);
                let killing = fault == Fault::Kill;
                for &id in &ids {
                    if killing {
                        nodes.kill(id);
                    } else {
                        nodes.pause(id);
                    }
                }
                let mut value = json!({ "kind": kind });
                let (active, done) = if killing {
                    (Active::Killed(ids.clone()), "killed")
                } else {
                    (Active::Paused(ids.clone()), "paused")
                };
                value[done] = json!(ids);
                (active, value)
            }
            Fault::Netem => {
                let mut ids = nodes.ids();
                rng.shuffle(&mut ids);
                ids.truncate(1 + rng.below(ids.len()));
                ids.sort_unstable();
                nodes.network().degrade(&ids, LOSS_PERCENT, DELAY_MS)?;
                let delay = nodes.network().delay_supported().then_some(DELAY_MS);
                let value =
                    json!({ "nodes": ids, "loss_percent": LOSS_PERCENT, "delay_ms": delay });
                (Active::Degraded, value)
            }
            Fault::Membership => {
                let ids = nodes.ids();
                let id = *rng.pick(&ids);
                drop(nodes);
                self.remove(id)?;
                (Active::Removed(id), json!({ "removed": id }))
            }
        })
    }

    /// Components to cut the cluster into, and the name of the shape.
    fn components(&self, nodes: &Nodes, rng: &mut Rng) -> (Vec<Vec<u64>>, &'static str) {
        let mut ids = nodes.ids();
        rng.shuffle(&mut ids);
        let n = ids.len();
        let alone = |one: u64, ids: &[u64]| {
            let rest: Vec<u64> = ids.iter().copied().filter(|&id| id != one).collect();
            vec![vec![one], rest]
        };
        match rng.below(5) {
            0 => {
                if let Some(leader) = self.some_leader(nodes, rng) {
                    return (alone(leader, &ids), "isolate-leader");
                }
                (alone(ids[0], &ids), "isolate-one")
            }
            1 => (alone(ids[0], &ids), "isolate-one"),
            // Two halves and one node that hears both: it is cut from no one.
            2 if n >= 3 => {
                let half = (n - 1) / 2;
                let components = vec![ids[1..=half].to_vec(), ids[half + 1..].to_vec()];
                (components, "bridge")
            }
            3 if n >= 5 => (Vec::new(), "ring"),
            _ => {
                let half = n / 2;
                (vec![ids[..half].to_vec(), ids[half..].to_vec()], "halves")
            }
        }
    }

    fn others_than(&self, id: u64) -> Vec<u64> {
        let mut ids = self.nodes().ids();
        ids.retain(|&n| n != id);
        ids
    }

    /// Asks a member other than `id` to remove node `id`, and waits until it is out.
    fn remove(&self, id: u64) -> Result<(), String> {
        let others = self.others_than(id);
        let id_text = id.to_string();
        self.change_membership(
            &others,
            &[b"CLUSTER", b"REMOVENODE", id_text.as_bytes()],
            id,
            false,
        )?;
        let mut nodes = self.nodes();
        nodes.kill(id);
        nodes.wipe(id);
        Ok(())
    }

    /// Starts the wiped node `id` empty, joining through another member, and adds it back.
    fn add_back(&self, id: u64) -> Result<(), String> {
        let others = self.others_than(id);
        let address = {
            let mut nodes = self.nodes();
            nodes.start_joining(id, others[0])?;
            nodes.network().advertised_address(id).to_string()
        };
        // The node checks the member list when it starts, and refuses to join empty as a
        // member it already names: it must have read the list before it is added.
        let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
        while self.nodes().ask(id, &[b"PING"]).is_none() {
            if Instant::now() > deadline {
                return Err(format!("node {id} did not start to join the cluster"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        let id_text = id.to_string();
        let args: [&[u8]; 4] = [
            b"CLUSTER",
            b"ADDNODE",
            id_text.as_bytes(),
            address.as_bytes(),
        ];
        self.change_membership(&others, &args, id, true)
    }

    /// Sends a membership change until some member accepts it, then waits until every
    /// member in `via` sees `id` in (or out) and no partition moving.
    fn change_membership(
        &self,
        via: &[u64],
        args: &[&[u8]],
        id: u64,
        member: bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
        let mut asked = false;
        let mut last = String::new();
        while Instant::now() < deadline {
            let nodes = self.nodes();
            for &node in via {
                if asked {
                    break;
                }
                match nodes.ask(node, args) {
                    Some(crate::resp::Reply::Status(_)) => asked = true,
                    reply => last = format!("{reply:?}"),
                }
            }
            // Every other member must see it: a node joining learns the members from one.
            if asked
                && via
                    .iter()
                    .all(|&node| nodes.membership_settled(node, id, member))
            {
                return Ok(());
            }
            drop(nodes);
            thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "membership change of node {id} did not settle in {MEMBERSHIP_TIMEOUT:?} (last reply {last})"
        ))
    }
}

/// The links a ring of overlapping majorities lacks: each node hears only the nodes within
/// n/2 places of it, so every node sees a majority but no two see the same one.
fn ring_links(ids: &[u64]) -> BTreeSet<(u64, u64)> {
    let n = ids.len();
    // Itself and `reach` nodes either side: a majority.
    let reach = (n / 2).div_ceil(2);
    let mut cut = BTreeSet::new();
    for i in 0..n {
        for j in 0..n {
            let distance = i.abs_diff(j).min(n - i.abs_diff(j));
            if distance > reach {
                cut.insert((ids[i], ids[j]));
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_leaves_each_node_a_majority_of_its_own() {
        let ids = [1, 2, 3, 4, 5];
        let cut = ring_links(&ids);
        let heard = |node: u64| {
            ids.iter()
                .filter(|&&other| !cut.contains(&(other, node)))
                .count()
        };
        assert!(ids.iter().all(|&node| heard(node) == 3), "{cut:?}");
        assert!(cut.contains(&(1, 3)) && cut.contains(&(3, 1)));
        assert!(!cut.contains(&(1, 5)));
    }
}
