//! Starting and stopping a node: the state every core shares (configuration, the slot → core
//! map, the cross-core queues) and the handle that owns the core threads.

use crate::config::Config;
use crate::core::Core;
use crate::mailbox::Mailbox;
use crate::net::socket;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;
use tessera_protocol::SLOT_COUNT;

/// Slot ranges per core: a partition is a contiguous slot range, owned by exactly one core.
pub const PARTITIONS_PER_CORE: usize = 16;

/// What all cores of a node share. Only the mailboxes are on the data path; everything else
/// is read at connection set-up, by admin commands or by the periodic tick.
pub struct Shared {
    pub config: RwLock<Config>,
    /// Bumped by CONFIG SET so that cores refresh their copy of the configuration.
    pub config_epoch: AtomicU64,
    pub cores: usize,
    /// The core that owns each hash slot.
    pub slot_owner: Vec<u16>,
    /// The partitions: contiguous slot ranges, in slot order.
    pub partitions: Vec<std::ops::Range<u16>>,
    pub mailboxes: Vec<Mailbox>,
    pub next_client_id: AtomicU64,
    pub clients: AtomicUsize,
    /// Clients in a blocking command.
    pub blocked_clients: AtomicUsize,
    /// Connections per core, for balancing new ones.
    pub core_clients: Vec<AtomicUsize>,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub shutdown: AtomicBool,
    /// Cores that finished their in-flight work after shutdown began.
    pub quiescent: AtomicUsize,
    pub started: Instant,
    pub run_id: String,
    pub port: u16,
    pub listener: i32,
    /// This node's Raft side, when it is a member of a replicated cluster.
    pub cluster: OnceLock<tessera_cluster::node::Node>,
    /// Each slot's count of writes applied from the log, for WATCH in a cluster.
    pub slot_versions: tessera_cluster::replica::SlotVersions,
    /// Set while CLUSTER CREATE starts this node's Raft side, so only one does.
    pub creating: AtomicBool,
}

pub use tessera_storage::clock::unix_ms;

/// The slot ranges of `count` partitions, in slot order.
pub fn partition_ranges(count: usize) -> Vec<std::ops::Range<u16>> {
    (0..count as u32)
        .map(|p| tessera_cluster::routing::slots_of(p, count as u32))
        .collect()
}

/// Maps slots to cores: `partitions` contiguous partitions (a cluster's, or
/// `cores * PARTITIONS_PER_CORE` on a node of its own), each core getting the same number. Partitions are dealt in the order of a hash of their index, not
/// round robin: CRC16 is linear, so keys that differ only in their last characters
/// ("user:1", "user:2", ...) share slot bits, and a regular pattern would put them all on one
/// core.
pub fn slot_owners(cores: usize, partitions: usize) -> Vec<u16> {
    let mix = |p: usize| {
        let mut x = (p as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^ (x >> 32)
    };
    let mut order: Vec<usize> = (0..partitions).collect();
    order.sort_by_key(|&p| mix(p));
    let mut core_of = vec![0u16; partitions];
    for (rank, &p) in order.iter().enumerate() {
        core_of[p] = (rank % cores) as u16;
    }
    (0..SLOT_COUNT)
        .map(|slot| core_of[slot * partitions / SLOT_COUNT])
        .collect()
}

impl Shared {
    pub fn owner(&self, slot: u16) -> usize {
        self.slot_owner[slot as usize] as usize
    }

    /// Where the cluster's partitions are led, when this node is a cluster member.
    pub fn routing(&self) -> Option<&tessera_cluster::routing::Routing> {
        self.cluster.get().map(|node| &*node.routing)
    }

    pub fn begin_shutdown(&self) {
        if !self.shutdown.swap(true, Ordering::SeqCst) {
            tracing::info!("shutting down: finishing in-flight requests");
        }
        for mailbox in &self.mailboxes {
            mailbox.wake();
        }
    }
}

/// A running node.
pub struct ServerHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The port the node listens on (useful when started on port 0).
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Asks every core to stop accepting, finish what is in flight and exit.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Waits for every core to exit.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        socket::close(self.shared.listener);
    }
}

/// Binds the listener and starts one event-loop thread per configured core.
pub fn start(config: Config) -> std::io::Result<ServerHandle> {
    let cores = config.threads.max(1);
    let fd_limit = socket::raise_fd_limit();
    if (fd_limit as usize) < config.maxclients + 32 {
        tracing::warn!(
            fd_limit,
            maxclients = config.maxclients,
            "open-files limit is below maxclients"
        );
    }
    let (listener, local) = socket::listen(&config.bind, config.port)?;
    let partitions = config
        .cluster
        .as_ref()
        .map_or(cores * PARTITIONS_PER_CORE, |c| c.partitions as usize);
    let run_id: String = {
        let seed = unix_ms() ^ (std::process::id() as u64) << 20;
        let mut x = seed | 1;
        (0..40)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_digit((x % 16) as u32, 16).unwrap_or('0')
            })
            .collect()
    };
    let shared = Arc::new(Shared {
        config: RwLock::new(config.clone()),
        config_epoch: AtomicU64::new(0),
        cores,
        slot_owner: slot_owners(cores, partitions),
        partitions: partition_ranges(partitions),
        mailboxes: (0..cores)
            .map(|_| Mailbox::new(cores))
            .collect::<std::io::Result<_>>()?,
        next_client_id: AtomicU64::new(1),
        clients: AtomicUsize::new(0),
        blocked_clients: AtomicUsize::new(0),
        core_clients: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
        connections_received: AtomicU64::new(0),
        rejected_connections: AtomicU64::new(0),
        shutdown: AtomicBool::new(false),
        quiescent: AtomicUsize::new(0),
        started: Instant::now(),
        run_id,
        port: local.port(),
        listener,
        cluster: OnceLock::new(),
        slot_versions: Default::default(),
        creating: AtomicBool::new(false),
    });
    tracing::info!(address = %local, cores, "Tessera is ready to accept connections");
    let mut threads = Vec::with_capacity(cores);
    for id in 0..cores {
        let core = Core::new(id, shared.clone())?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("tessera-core-{id}"))
                .spawn(move || core.run())?,
        );
    }
    let handle = ServerHandle { shared, threads };
    // The cores run first: recovering a partition loads its snapshot through its core. Until
    // the node is up they answer keyed requests with -TRYAGAIN.
    if let Some(cluster) = config.cluster.as_ref().filter(|c| !c.members.is_empty()) {
        match crate::cluster::start(&handle.shared, cluster) {
            Ok(node) => {
                let _ = handle.shared.cluster.set(node);
                tracing::info!(
                    node = cluster.node_id,
                    members = cluster.members.len(),
                    partitions = cluster.partitions,
                    durability = ?cluster.durability,
                    "joined the cluster"
                );
            }
            Err(e) => {
                handle.shutdown();
                handle.join();
                return Err(e);
            }
        }
    } else if let Some(cluster) = &config.cluster {
        tracing::info!(
            node = cluster.node_id,
            "waiting to be made a member by tessera cluster create"
        );
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_owns_an_equal_share_of_partitions() {
        for cores in [1, 2, 3, 8] {
            let owners = slot_owners(cores, cores * PARTITIONS_PER_CORE);
            let mut counts = vec![0usize; cores];
            owners.iter().for_each(|&c| counts[c as usize] += 1);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= PARTITIONS_PER_CORE, "{counts:?}");
            let runs = owners.windows(2).filter(|w| w[0] != w[1]).count() + 1;
            assert!(
                runs <= cores * PARTITIONS_PER_CORE,
                "partitions are contiguous slot ranges"
            );
        }
    }

    #[test]
    fn short_sequential_keys_spread_over_cores() {
        let owners = slot_owners(2, 2 * PARTITIONS_PER_CORE);
        let cores: std::collections::HashSet<u16> = (0..20)
            .map(|i| owners[tessera_protocol::key_slot(format!("atom:{i}").as_bytes()) as usize])
            .collect();
        assert_eq!(cores.len(), 2);
    }
}
