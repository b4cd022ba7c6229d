//! Anti-entropy of the replica task: Merkle trees of key digests compared root first.
//!
//! Every gossip interval the replica sends the root hash of its [`MerkleTree`] to one random
//! peer ([`Message::Tree`] at level 0). A peer whose root differs answers with its hashes of
//! the root's children; whoever receives hashes answers with its own hashes of the children of
//! every node that differs, one level deeper each time, so the exchange descends into the
//! differing subtrees only. At the leaves, the digests of every key of the differing leaves go
//! over ([`Message::LeafDigests`]), and the states of the keys whose digests differ are
//! exchanged both ways ([`Message::Gossip`] with a request). Replicas in sync exchange one root
//! hash per round; replicas that differ find the differing keys in `depth + 1` round trips,
//! whatever the number of keys.
//!
//! The tree is kept up to date as keys change: a changed key is marked dirty and folded into
//! the tree (O(depth) XORs) before the tree is next used. Values loaded from the durable store
//! are folded in at the first use, one digest per key and no more (the digests are cached).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Replica;
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::replicator::merkle::FANOUT;
use crate::replicator::protocol::Message;

/// A replica whose digests encode in at most this many bytes sends them all instead of its
/// root: as cheap as a tree walk's first messages, and one round trip to repair instead of
/// `depth + 2`.
const WHOLE_DIGESTS_BYTES: usize = 1000;
/// The most keys [`WHOLE_DIGESTS_BYTES`] can hold (a key takes at least 12 bytes).
const WHOLE_DIGESTS_MAX_KEYS: usize = WHOLE_DIGESTS_BYTES / 12;

impl Replica {
    /// Marks `key` as changed: its digest is folded into the tree before the tree is next used.
    /// The name goes in shared with `data` (no copy) when the key is there already.
    pub(super) fn tree_changed(&mut self, key: &str) {
        if !self.tree_dirty.contains(key) {
            let name = self
                .data
                .get_key_value(key)
                .map_or_else(|| Arc::from(key), |(k, _)| Arc::clone(k));
            self.tree_dirty.insert(name);
        }
    }

    /// Folds the digests of every changed key into the tree.
    pub(super) fn refresh_tree(&mut self) {
        if self.tree_dirty.is_empty() {
            return;
        }
        for key in std::mem::take(&mut self.tree_dirty) {
            let new = self.digest(&key);
            // Entries are never removed from `data` (a deleted key keeps its tombstone).
            let Some((name, e)) = super::entry_mut(&mut self.data, &key) else {
                continue;
            };
            let old = e.replace_in_tree(new);
            // The name `data` holds, shared with the leaf list.
            self.tree.update(name, old, new);
        }
    }

    /// The most node hashes in one [`Message::Tree`]: about `max_gossip_bytes` of them.
    fn tree_nodes_per_message(&self) -> usize {
        (self.settings.max_gossip_bytes / 16).max(FANOUT)
    }

    /// Starts an anti-entropy round with `peer`: sends it the root hash, or, when this
    /// replica's digests encode in at most [`WHOLE_DIGESTS_BYTES`], all of them.
    pub(super) fn send_tree_root(&mut self, peer: &ReplicaId) {
        self.refresh_tree();
        if self.data.len() <= WHOLE_DIGESTS_MAX_KEYS {
            let keys: Vec<String> = self.data.keys().map(|k| k.to_string()).collect();
            let digests: Vec<(String, u64)> = keys
                .into_iter()
                .filter_map(|k| self.digest(&k).map(|d| (k, d)))
                .collect();
            // A key, its length and a digest varint (at most 10 bytes).
            let size: usize = digests.iter().map(|(k, _)| k.len() + 12).sum();
            if size <= WHOLE_DIGESTS_BYTES {
                self.transport.send(
                    peer,
                    Message::LeafDigests {
                        depth: self.tree.depth(),
                        leaves: Vec::new(),
                        whole: true,
                        digests,
                    },
                );
                return;
            }
        }
        self.transport.send(
            peer,
            Message::Tree {
                depth: self.tree.depth(),
                level: 0,
                nodes: vec![(0, self.tree.root())],
            },
        );
    }

    /// Whether a peer's tree message fits this replica's tree; logs when it does not.
    fn same_tree_shape(&self, from: &UniqueReplicaId, depth: u8, level: u8) -> bool {
        if depth != self.tree.depth() || level > depth {
            tracing::warn!(replica = %self.self_id, %from, their_depth = depth, level,
                our_depth = self.tree.depth(),
                "anti-entropy tree of another depth ignored: every replica of a cluster needs \
                 the same anti_entropy_depth setting");
            return false;
        }
        true
    }

    /// Compares a peer's node hashes with this replica's and answers with the next level of
    /// every differing node (or, at the leaves, with the digests of their keys).
    pub(super) fn on_tree(
        &mut self,
        from: &UniqueReplicaId,
        depth: u8,
        level: u8,
        nodes: Vec<(u32, u64)>,
    ) {
        if !self.same_tree_shape(from, depth, level) {
            return;
        }
        self.refresh_tree();
        let width = self.tree.width(level);
        let differing: Vec<usize> = nodes
            .iter()
            .filter_map(|&(i, h)| {
                let i = usize::try_from(i).ok().filter(|i| *i < width)?;
                (self.tree.node(level, i) != Some(h)).then_some(i)
            })
            .collect();
        if differing.is_empty() {
            if level == 0 && !nodes.is_empty() {
                self.confirm_all();
            }
            return;
        }
        let to = from.replica();
        if level == 0 && self.defers_anti_entropy(to) {
            // A peer's round while a stream runs: it resumes after it (see `defers_anti_entropy`).
            tracing::debug!(replica = %self.self_id, %from,
                "anti-entropy round of a peer deferred: a stream is running");
            return;
        }
        if level < depth {
            let next = level + 1;
            let children = differing
                .iter()
                .flat_map(|&i| i * FANOUT..(i + 1) * FANOUT)
                .take(self.tree_nodes_per_message())
                .filter_map(|c| Some((u32::try_from(c).ok()?, self.tree.node(next, c)?)))
                .collect();
            self.transport.send(
                to,
                Message::Tree {
                    depth,
                    level: next,
                    nodes: children,
                },
            );
        } else {
            self.send_leaf_digests(to, &differing);
        }
    }

    /// Sends the digests of every key in `leaves`, whole leaves per message, at most about
    /// `max_gossip_entries` digests per message.
    fn send_leaf_digests(&mut self, to: &ReplicaId, leaves: &[usize]) {
        let per_message = self.settings.max_gossip_entries.max(1);
        let mut covered = Vec::new();
        let mut digests = Vec::new();
        for &leaf in leaves {
            let Ok(index) = u32::try_from(leaf) else {
                continue;
            };
            for key in self.tree.keys_of_leaf(leaf).to_vec() {
                if let Some(d) = self.digest(&key) {
                    digests.push((key.to_string(), d));
                }
            }
            covered.push(index);
            if digests.len() >= per_message {
                self.transport.send(
                    to,
                    Message::LeafDigests {
                        depth: self.tree.depth(),
                        whole: false,
                        leaves: std::mem::take(&mut covered),
                        digests: std::mem::take(&mut digests),
                    },
                );
            }
        }
        if !covered.is_empty() {
            self.transport.send(
                to,
                Message::LeafDigests {
                    depth: self.tree.depth(),
                    whole: false,
                    leaves: covered,
                    digests,
                },
            );
        }
    }

    /// Compares a peer's digests of whole leaves (or of all its keys, `whole`) with this
    /// replica's keys of those leaves (or all its keys):
    /// sends the states that differ or the peer lacks, and asks for the ones that differ or
    /// this replica lacks. Keys found equal are confirmed (see `Entry::confirmed`).
    pub(super) fn on_leaf_digests(
        &mut self,
        from: &UniqueReplicaId,
        depth: u8,
        leaves: Vec<u32>,
        whole: bool,
        digests: Vec<(String, u64)>,
    ) {
        if !self.same_tree_shape(from, depth, depth) {
            return;
        }
        self.refresh_tree();
        let theirs: BTreeMap<String, u64> = digests.into_iter().collect();
        let width = self.tree.width(depth);
        let mut mine: Vec<Arc<str>> = Vec::new();
        if whole {
            mine.extend(
                self.data
                    .iter()
                    .filter(|(_, e)| e.in_tree().is_some())
                    .map(|(k, _)| k.clone()),
            );
        }
        for leaf in leaves {
            if let Some(leaf) = usize::try_from(leaf).ok().filter(|l| *l < width) {
                mine.extend_from_slice(self.tree.keys_of_leaf(leaf));
            }
        }
        let mut send = Vec::new();
        let mut request = Vec::new();
        for key in &mine {
            let my_digest = self.digest(key);
            match theirs.get(&**key) {
                None => send.push(key.to_string()),
                Some(d) if Some(*d) != my_digest => {
                    send.push(key.to_string());
                    request.push(key.to_string());
                }
                Some(_) => self.confirm(key),
            }
        }
        let mine: BTreeSet<&str> = mine.iter().map(|k| &**k).collect();
        for key in theirs.keys() {
            // Keys this replica lacks, or holds without a digest in the tree yet.
            if !mine.contains(key.as_str()) {
                request.push(key.clone());
            }
        }
        if !send.is_empty() || !request.is_empty() {
            self.send_entries(from.replica(), send.iter(), request);
        }
    }

    /// A peer's root equals this replica's: every key's digest is the peer's, so every loaded
    /// value is confirmed (once: later loads do not happen).
    fn confirm_all(&mut self) {
        if !self.maybe_unconfirmed {
            return;
        }
        for e in self.data.values_mut() {
            if e.in_tree().is_some() {
                e.set_confirmed();
            }
        }
        self.maybe_unconfirmed = self.data.values().any(|e| !e.confirmed());
    }
}
