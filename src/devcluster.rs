//! `tessera cluster dev`: a local cluster for development and tests — N nodes on 127.0.0.1,
//! one process each, in the foreground. It reports ready once every node's CLUSTER INFO says
//! `cluster_state:ok`, and stops every node on Ctrl-C (or when one of them dies).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Plan {
    pub nodes: u64,
    pub base_port: u16,
    /// Where each node's log (`node-<id>.log`) and data (`node-<id>/`) go.
    pub dir: PathBuf,
    pub replicas: usize,
    pub partitions: u32,
    pub threads: usize,
    pub durability: String,
}

/// How long the nodes have to elect every partition's leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn port_of(plan: &Plan, id: u64) -> u16 {
    plan.base_port + (id - 1) as u16
}

fn start_node(plan: &Plan, id: u64, members: &str) -> std::io::Result<Child> {
    let log = std::fs::File::create(plan.dir.join(format!("node-{id}.log")))?;
    Command::new(std::env::current_exe()?)
        .args(["--port", &port_of(plan, id).to_string()])
        .args(["--node-id", &id.to_string(), "--members", members])
        .args(["--replicas", &plan.replicas.to_string()])
        .args(["--partitions", &plan.partitions.to_string()])
        .args(["--threads", &plan.threads.to_string()])
        .args(["--durability", &plan.durability])
        .arg("--dir")
        .arg(plan.dir.join(format!("node-{id}")))
        .arg("--bootstrap")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// Waits for a stop signal on `signals` for up to `timeout`; true if one came.
fn stop_signalled(signals: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: signals,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is a valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if ready > 0 {
        let mut info = [0u8; 128];
        // SAFETY: signalfd reads fill a 128-byte siginfo record.
        unsafe { libc::read(signals, info.as_mut_ptr() as *mut libc::c_void, info.len()) };
        return true;
    }
    false
}

fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

/// Runs the cluster until a stop signal; returns the process's exit code.
pub fn run(plan: &Plan, signals: i32) -> i32 {
    if plan.nodes == 0 || u64::from(plan.base_port) + plan.nodes > 55536 {
        eprintln!("tessera: --nodes and --base-port leave no room for the Raft ports (+10000)");
        return 1;
    }
    if let Err(e) = std::fs::create_dir_all(&plan.dir) {
        eprintln!("tessera: cannot create {}: {e}", plan.dir.display());
        return 1;
    }
    let members: Vec<String> = (1..=plan.nodes)
        .map(|id| format!("{id}@127.0.0.1:{}", port_of(plan, id)))
        .collect();
    let members = members.join(",");
    let mut children = Vec::new();
    for id in 1..=plan.nodes {
        match start_node(plan, id, &members) {
            Ok(child) => children.push(child),
            Err(e) => {
                eprintln!("tessera: cannot start node {id}: {e}");
                stop_all(&mut children);
                return 1;
            }
        }
    }
    println!(
        "starting {} nodes on 127.0.0.1:{}..{} (logs in {})",
        plan.nodes,
        plan.base_port,
        port_of(plan, plan.nodes),
        plan.dir.display()
    );
    let started = Instant::now();
    let mut ready = false;
    loop {
        if stop_signalled(signals, Duration::from_millis(200)) {
            stop_all(&mut children);
            return 0;
        }
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!(
                    "tessera: node {} exited ({status}); stopping the others",
                    i + 1
                );
                stop_all(&mut children);
                return 1;
            }
        }
        if !ready {
            let ok =
                |id| crate::clusteradmin::cluster_ok(&format!("127.0.0.1:{}", port_of(plan, id)));
            if (1..=plan.nodes).all(ok) {
                ready = true;
                println!(
                    "cluster ready: redis-cli -c -p {} (Ctrl-C stops every node)",
                    plan.base_port
                );
            } else if started.elapsed() > READY_TIMEOUT {
                eprintln!("tessera: the cluster did not become ready; see the node logs");
                stop_all(&mut children);
                return 1;
            }
        }
    }
}
