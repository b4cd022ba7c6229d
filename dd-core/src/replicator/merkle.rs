//! A Merkle tree of key digests for anti-entropy (in the style of Riak's TicTac trees).
//!
//! Every key falls into one leaf, chosen by the top bits of a hash of its name; a key
//! contributes `xxh3(key, seed = digest)` to its leaf, and every node holds the XOR of its
//! children (so of every key below it). Changing a key's digest is therefore O(depth): its old
//! contribution is XORed out of the path from its leaf to the root and the new one in; there is
//! never a full rehash. Two replicas compare their trees root first (see
//! [`Message::Tree`](super::protocol::Message::Tree)): replicas in sync exchange one root hash
//! per round, and replicas that differ descend only into the differing nodes, so the cost of a
//! round follows the difference, not the number of keys.
//!
//! The fan-out is [`FANOUT`] (16) at every level; a tree of depth `d` has `16^d` leaves.

use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Children per node.
pub(crate) const FANOUT: usize = 16;
/// Bits of a node index per level (`FANOUT == 1 << BITS`).
const BITS: u32 = 4;
/// The deepest tree allowed (16^5 = 1M leaves: 8 MiB of leaf hashes).
pub(crate) const MAX_DEPTH: u8 = 5;

/// A Merkle tree over `(key, digest)` pairs, plus the keys of every leaf.
pub(crate) struct MerkleTree {
    depth: u8,
    /// `levels[0]` is the root (one node), `levels[depth]` the leaves.
    levels: Vec<Vec<u64>>,
    /// The keys currently contributing to each leaf (names shared with the replica's key map).
    leaf_keys: Vec<Vec<Arc<str>>>,
}

impl MerkleTree {
    /// An empty tree of `depth` levels below the root (clamped to `1..=MAX_DEPTH`).
    pub(crate) fn new(depth: u8) -> Self {
        let depth = depth.clamp(1, MAX_DEPTH);
        let levels = (0..=u32::from(depth))
            .map(|l| vec![0u64; 1usize << (BITS * l)])
            .collect();
        Self {
            depth,
            levels,
            leaf_keys: vec![Vec::new(); 1usize << (BITS * u32::from(depth))],
        }
    }

    /// Levels below the root.
    pub(crate) fn depth(&self) -> u8 {
        self.depth
    }

    /// The root hash (0 for an empty tree).
    pub(crate) fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The leaf `key` belongs to.
    pub(crate) fn leaf_of(&self, key: &str) -> usize {
        let h = xxh3_64(key.as_bytes());
        usize::try_from(h >> (64 - BITS * u32::from(self.depth))).unwrap_or(0)
    }

    /// Nodes in `level` (0 for levels that do not exist).
    pub(crate) fn width(&self, level: u8) -> usize {
        self.levels.get(usize::from(level)).map_or(0, Vec::len)
    }

    /// The hash of node `index` of `level`, if it exists.
    pub(crate) fn node(&self, level: u8, index: usize) -> Option<u64> {
        self.levels.get(usize::from(level))?.get(index).copied()
    }

    /// The keys of leaf `leaf` (empty for a leaf that does not exist).
    pub(crate) fn keys_of_leaf(&self, leaf: usize) -> &[Arc<str>] {
        self.leaf_keys.get(leaf).map_or(&[], Vec::as_slice)
    }

    /// Replaces the contribution of `key`: `old` is the digest it contributed so far (`None`: it
    /// was not in the tree), `new` the digest it contributes from now on (`None`: it leaves).
    pub(crate) fn update(&mut self, key: &Arc<str>, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let leaf = self.leaf_of(key);
        let contribution = |d: Option<u64>| d.map_or(0, |d| xxh3_64_with_seed(key.as_bytes(), d));
        let delta = contribution(old) ^ contribution(new);
        for (l, level) in self.levels.iter_mut().enumerate() {
            let shift = BITS * (u32::from(self.depth) - u32::try_from(l).unwrap_or(0));
            if let Some(node) = level.get_mut(leaf >> shift) {
                *node ^= delta;
            }
        }
        if let Some(keys) = self.leaf_keys.get_mut(leaf) {
            match (old, new) {
                (None, Some(_)) => keys.push(Arc::clone(key)),
                (Some(_), None) => keys.retain(|k| k != key),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn k(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn root_depends_on_the_set_of_pairs_not_on_the_order_of_updates() {
        let mut a = MerkleTree::new(3);
        let mut b = MerkleTree::new(3);
        for i in 0..1000u64 {
            a.update(&k(&format!("k{i}")), None, Some(i));
        }
        for i in (0..1000u64).rev() {
            b.update(&k(&format!("k{i}")), None, Some(i * 7));
            b.update(&k(&format!("k{i}")), Some(i * 7), Some(i));
        }
        assert_eq!(a.root(), b.root());
        assert_ne!(a.root(), 0);
        b.update(&k("k5"), Some(5), Some(6));
        assert_ne!(a.root(), b.root());
        let leaf = b.leaf_of("k5");
        assert_ne!(a.node(3, leaf), b.node(3, leaf));
        // Only the path of k5 differs.
        let differing = (0..a.width(3))
            .filter(|&i| a.node(3, i) != b.node(3, i))
            .count();
        assert_eq!(differing, 1);
        b.update(&k("k5"), Some(6), Some(5));
        assert_eq!(a.root(), b.root());
    }

    #[test]
    fn keys_leave_their_leaf_and_the_tree() {
        let mut t = MerkleTree::new(2);
        t.update(&k("x"), None, Some(1));
        let leaf = t.leaf_of("x");
        assert_eq!(t.keys_of_leaf(leaf), [k("x")]);
        t.update(&k("x"), Some(1), None);
        assert!(t.keys_of_leaf(leaf).is_empty());
        assert_eq!(t.root(), 0);
        assert_eq!(t.width(0), 1);
        assert_eq!(t.width(2), FANOUT * FANOUT);
        assert_eq!(t.width(3), 0);
    }

    #[test]
    fn depth_is_clamped() {
        assert_eq!(MerkleTree::new(0).depth(), 1);
        assert_eq!(MerkleTree::new(200).depth(), MAX_DEPTH);
    }
}
