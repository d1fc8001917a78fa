//! Partition placement: which nodes hold each partition's replicas.
//!
//! Rendezvous (highest-random-weight) hashing: every (node, partition) pair gets a
//! pseudo-random score, and a partition's replicas are the `R` nodes with the highest scores,
//! best first (the first is the preferred leader). A node joining takes a replica only where
//! it outscores the current `R`-th replica, which happens for about `R / (N + 1)` of the
//! partitions, so about `1 / (N + 1)` of all replicas move, all of them to the new node; a
//! node leaving moves exactly its own replicas. No ring and no virtual nodes to tune: the
//! spread is as even as the hash.
//!
//! The score must never change between versions or machines (every node computes placement
//! on its own and they must agree), so it is a fixed hash, not the standard library's
//! randomly seeded one.

use std::collections::BTreeSet;

/// A node's identity in the cluster.
pub type NodeId = u64;

/// Partitions of a new cluster unless its creator asks for more: 64 partitions of 256 hash
/// slots each spread evenly over a 3-node cluster (about 21 leaders per node) while keeping
/// the Raft groups per node small. A cluster expected to grow past ~20 nodes, or to move
/// partitions in smaller steps, wants more (up to one partition per slot, 16384).
pub const DEFAULT_PARTITIONS: u32 = 64;

/// Replicas per partition unless configured otherwise.
pub const DEFAULT_REPLICAS: usize = 3;

/// A 64-bit mix of the node and the partition (SplitMix64's finalizer over both).
fn score(node: NodeId, partition: u32) -> u64 {
    let mut x = node
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(partition).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The nodes holding `partition`'s replicas, best first: `replicas` of them, or every node
/// when there are fewer.
pub fn replicas_of(partition: u32, nodes: &BTreeSet<NodeId>, replicas: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u64, NodeId)> = nodes.iter().map(|&n| (score(n, partition), n)).collect();
    // Highest score first; the node id breaks (astronomically unlikely) ties.
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().take(replicas).map(|(_, n)| n).collect()
}

/// Every partition's replica set, partition by partition.
pub fn place(partitions: u32, nodes: &BTreeSet<NodeId>, replicas: usize) -> Vec<Vec<NodeId>> {
    (0..partitions)
        .map(|p| replicas_of(p, nodes, replicas))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: impl IntoIterator<Item = NodeId>) -> BTreeSet<NodeId> {
        ids.into_iter().collect()
    }

    /// (partition, node) pairs: the replicas a placement holds.
    fn replica_pairs(placement: &[Vec<NodeId>]) -> BTreeSet<(u32, NodeId)> {
        placement
            .iter()
            .enumerate()
            .flat_map(|(p, set)| set.iter().map(move |&n| (p as u32, n)))
            .collect()
    }

    #[test]
    fn each_partition_gets_distinct_replicas_and_placement_is_stable() {
        let cluster = nodes(1..=5);
        let placement = place(DEFAULT_PARTITIONS, &cluster, 3);
        for set in &placement {
            assert_eq!(set.len(), 3);
            assert_eq!(set.iter().collect::<BTreeSet<_>>().len(), 3);
        }
        assert_eq!(placement, place(DEFAULT_PARTITIONS, &cluster, 3));
        // Fewer nodes than the replication factor: every node holds every partition.
        let small = place(4, &nodes([7, 9]), 3);
        assert!(small
            .iter()
            .all(|s| s.len() == 2 && s.contains(&7) && s.contains(&9)));
    }

    #[test]
    fn adding_a_node_moves_about_one_nth_of_the_replicas_and_only_to_it() {
        let partitions = 4096;
        for n in [3u64, 5, 10] {
            let before = place(partitions, &nodes(1..=n), 3);
            let after = place(partitions, &nodes(1..=n + 1), 3);
            let (old, new) = (replica_pairs(&before), replica_pairs(&after));
            let arrived: Vec<_> = new.difference(&old).collect();
            assert!(
                arrived.iter().all(|&&(_, node)| node == n + 1),
                "only the new node gains"
            );
            let expected = (partitions as usize * 3) as f64 / (n + 1) as f64;
            let moved = arrived.len() as f64;
            assert!(
                (moved - expected).abs() < expected * 0.1,
                "n={n}: moved {moved}, expected ~{expected}"
            );
            // Each partition changes by at most one replica, and keeps the others' order.
            for (b, a) in before.iter().zip(&after) {
                let kept: Vec<_> = a.iter().filter(|&&x| x != n + 1).collect();
                assert!(b.len() - kept.len() <= 1);
                assert!(kept.iter().all(|x| b.contains(x)));
            }
        }
    }

    #[test]
    fn removing_a_node_moves_exactly_its_replicas() {
        let partitions = 1024;
        let before = place(partitions, &nodes(1..=6), 3);
        let after = place(partitions, &nodes([1, 2, 4, 5, 6]), 3);
        let (old, new) = (replica_pairs(&before), replica_pairs(&after));
        let left: BTreeSet<_> = old.difference(&new).collect();
        assert!(left.iter().all(|&&(_, node)| node == 3));
        assert_eq!(
            left.len(),
            old.iter().filter(|(_, node)| *node == 3).count()
        );
    }

    #[test]
    fn replicas_and_preferred_leaders_spread_evenly() {
        let partitions = 3000;
        let cluster = nodes([11, 22, 33, 44, 55]);
        let placement = place(partitions, &cluster, 3);
        for &node in &cluster {
            let held = placement.iter().filter(|s| s.contains(&node)).count() as f64;
            let leads = placement.iter().filter(|s| s[0] == node).count() as f64;
            let (held_share, lead_share) = (partitions as f64 * 3.0 / 5.0, partitions as f64 / 5.0);
            assert!(
                (held - held_share).abs() < held_share * 0.1,
                "node {node} holds {held}"
            );
            assert!(
                (leads - lead_share).abs() < lead_share * 0.15,
                "node {node} leads {leads}"
            );
        }
    }
}
