//! Talking to a running cluster from outside it: `tessera cluster add-node`, `remove-node`
//! and `status`, what a joining node asks a member before it starts, and the readiness check
//! of `tessera cluster dev`. A small blocking RESP2 client is all they need.

use crate::cluster::parse_members;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tessera_cluster::routing::Member;
use tessera_protocol::frame;

/// How long `--wait` waits for partitions to reach their new replicas.
const MOVE_WAIT: Duration = Duration::from_secs(120);
/// The longest reply read: a roster of thousands of members fits many times over.
const MAX_REPLY: usize = 64 << 20;
/// How long a joining node keeps asking its seed for the member list.
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// The password this process gives cluster members before each request: a node's own
/// requirepass (a cluster's members share one), or `REDISCLI_AUTH` for the command-line tools,
/// as redis-cli reads it. Unset or empty: none.
static PASSWORD: OnceLock<String> = OnceLock::new();

/// Sets the password of `PASSWORD`; the first call wins.
pub fn use_password(password: String) {
    let _ = PASSWORD.set(password);
}

/// Sends one command to `address` (after AUTH when there is a password) and reads its reply:
/// a status or bulk string as text, an error reply as `Err`.
pub fn request(address: &str, args: &[&str]) -> Result<String, String> {
    let stream = TcpStream::connect(address).map_err(|e| format!("{address}: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| e.to_string())?;
    let password = PASSWORD.get().filter(|p| !p.is_empty());
    let mut commands = password.map_or(Vec::new(), |p| frame::request(&["AUTH", p]));
    commands.extend(frame::request(args));
    (&stream)
        .write_all(&commands)
        .map_err(|e| format!("{address}: {e}"))?;
    let mut reader = BufReader::new(stream);
    if password.is_some() {
        read_reply(&mut reader, address).map_err(|e| format!("{address}: AUTH: {e}"))?;
    }
    read_reply(&mut reader, address)
}

fn read_reply(reader: &mut BufReader<TcpStream>, address: &str) -> Result<String, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("{address}: {e}"))?;
    let line = line.trim_end();
    match (line.get(..1), line.get(1..)) {
        (Some("+"), Some(text)) => Ok(text.to_string()),
        (Some("-"), Some(text)) => Err(text.to_string()),
        (Some("$"), Some(len)) => {
            let len: usize = len
                .parse()
                .ok()
                .filter(|&n| n <= MAX_REPLY)
                .ok_or_else(|| format!("{address}: no reply ({line})"))?;
            let mut body = vec![0; len + 2];
            reader
                .read_exact(&mut body)
                .map_err(|e| format!("{address}: {e}"))?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(format!("{address}: an unexpected reply ({line})")),
    }
}

/// What a joining node learns from a member: the cluster's members, partitions and
/// replication factor.
pub struct Joined {
    pub members: Vec<Member>,
    pub partitions: u32,
    pub replicas: usize,
}

/// Reads `CLUSTER ROSTER` text.
fn parse_roster(text: &str) -> Result<Joined, String> {
    let (mut partitions, mut replicas, mut members) = (None, None, Vec::new());
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["partitions", n] => partitions = n.parse().ok(),
            ["replicas", n] => replicas = n.parse().ok(),
            ["member", id, client, _raft, _state] => {
                members.extend(parse_members(&format!("{id}@{client}"))?)
            }
            _ => {}
        }
    }
    let usable = |p: u32| p > 0 && p as usize <= tessera_protocol::SLOT_COUNT;
    match (partitions, replicas) {
        (Some(partitions), Some(replicas))
            if usable(partitions) && replicas > 0 && !members.is_empty() =>
        {
            Ok(Joined {
                members,
                partitions,
                replicas,
            })
        }
        _ => Err("the seed's member list is incomplete or malformed".into()),
    }
}

/// Asks `seed` for the cluster's member list, retrying while it starts.
pub fn fetch_roster(seed: &str) -> Result<Joined, String> {
    let started = Instant::now();
    loop {
        let answer = request(seed, &["CLUSTER", "ROSTER"]).and_then(|text| parse_roster(&text));
        match answer {
            Ok(joined) => return Ok(joined),
            Err(why) if started.elapsed() > JOIN_WAIT => {
                return Err(format!("cannot learn the cluster from {seed}: {why}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Whether the node at `address` answers CLUSTER INFO with `cluster_state:ok`.
pub fn cluster_ok(address: &str) -> bool {
    request(address, &["CLUSTER", "INFO"]).is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// Whether the roster text says no partition is moving and member `id` is as `wanted`:
/// listed as active after an add, not listed at all after a removal.
fn settled(text: &str, id: &str, wanted: bool) -> bool {
    let present = text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        matches!(words.as_slice(), ["member", i, _, _, "active"] if *i == id)
    });
    let listed = text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        matches!(words.as_slice(), ["member", i, ..] if *i == id)
    });
    let done = if wanted { present } else { !listed };
    done && text.lines().any(|line| line.trim() == "moving 0")
}

/// Sends a roster change to `seed` and, with `wait`, waits until every partition reached
/// its new replicas. Returns the process's exit code.
fn change(seed: &str, args: &[&str], id: &str, wanted: bool, wait: bool) -> i32 {
    if let Err(why) = request(seed, args) {
        eprintln!("tessera: {why}");
        return 1;
    }
    println!("the member list changed; partitions move to their new replicas");
    if !wait {
        return 0;
    }
    let started = Instant::now();
    while started.elapsed() < MOVE_WAIT {
        if request(seed, &["CLUSTER", "ROSTER"]).is_ok_and(|text| settled(&text, id, wanted)) {
            println!("every partition is on its new replicas");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("tessera: partitions were still moving after {MOVE_WAIT:?}");
    1
}

/// `tessera cluster add-node`: `node` is `id@host:port`.
pub fn add_node(seed: &str, node: &str, wait: bool) -> i32 {
    let member = match parse_members(node) {
        Ok(mut members) if members.len() == 1 => members.remove(0),
        Ok(_) => {
            eprintln!("tessera: add one node at a time");
            return 1;
        }
        Err(why) => {
            eprintln!("tessera: {why}");
            return 1;
        }
    };
    let id = member.id.to_string();
    change(
        seed,
        &["CLUSTER", "ADDNODE", &id, &member.client],
        &id,
        true,
        wait,
    )
}

/// `tessera cluster remove-node`.
pub fn remove_node(seed: &str, id: u64, wait: bool) -> i32 {
    let id = id.to_string();
    change(seed, &["CLUSTER", "REMOVENODE", &id], &id, false, wait)
}

/// How long `create` waits for the new cluster to elect every partition's leader.
const CREATE_WAIT: Duration = Duration::from_secs(60);

/// `tessera cluster create`: makes the nodes listed (each started with only its id, port and
/// data directory) the members of a new cluster, then waits until every one serves.
pub fn create(nodes: &str, partitions: u32, replicas: usize) -> i32 {
    let members = match parse_members(nodes) {
        Ok(members) => members,
        Err(why) => {
            eprintln!("tessera: {why}");
            return 1;
        }
    };
    // Every node must answer before any is asked, so a typo does not create half a cluster.
    for member in &members {
        if let Err(why) = request(&member.client, &["PING"]) {
            eprintln!("tessera: node {} ({}): {why}", member.id, member.client);
            return 1;
        }
    }
    let (partitions, replicas) = (partitions.to_string(), replicas.to_string());
    for member in &members {
        let args = ["CLUSTER", "CREATE", &partitions, &replicas, nodes];
        if let Err(why) = request(&member.client, &args) {
            eprintln!("tessera: node {} ({}): {why}", member.id, member.client);
            return 1;
        }
    }
    let started = Instant::now();
    while started.elapsed() < CREATE_WAIT {
        if members.iter().all(|m| cluster_ok(&m.client)) {
            println!("cluster ready: {} members", members.len());
            return 0;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("tessera: the cluster did not become ready; see the node logs");
    1
}

/// `tessera cluster status`.
pub fn status(seed: &str) -> i32 {
    match request(seed, &["CLUSTER", "ROSTER"]) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(why) => {
            eprintln!("tessera: {why}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROSTER: &str = "partitions 4\nreplicas 3\n\
        member 1 127.0.0.1:7001 127.0.0.1:17001 active\n\
        member 4 127.0.0.1:7004 127.0.0.1:17004 leaving\n\
        partition 0 leader 1 voters 1,4 target 1\nmoving 1\n";

    #[test]
    fn a_joining_node_reads_the_members_and_shape_of_the_cluster() {
        let joined = parse_roster(ROSTER).unwrap();
        assert_eq!((joined.partitions, joined.replicas), (4, 3));
        let ids: Vec<u64> = joined.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 4]);
        assert_eq!(joined.members[1].raft, "127.0.0.1:17004");
        assert!(parse_roster("partitions 4\n").is_err());
        assert!(parse_roster(&ROSTER.replace("partitions 4", "partitions 0")).is_err());
    }

    #[test]
    fn waiting_ends_once_the_member_is_in_or_out_and_nothing_moves() {
        assert!(!settled(ROSTER, "1", true), "still moving");
        let still = ROSTER.replace("moving 1", "moving 0");
        assert!(settled(&still, "1", true));
        assert!(!settled(&still, "4", true), "leaving is not in");
        assert!(!settled(&still, "4", false), "leaving is not out yet");
        assert!(settled(&still, "9", false));
    }
}
