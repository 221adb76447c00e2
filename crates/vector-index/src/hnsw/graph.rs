//! One HNSW graph: nodes in append-only storage, neighbour lists as atomics written under a
//! per-node lock, and a slot table saying which node currently holds each slot.
//!
//! Concurrency without a global lock:
//! - A node (its slot, level, vector) is immutable once published in `nodes`; readers follow
//!   references into the append-only storage with no lock.
//! - Neighbour lists are arrays of `AtomicU32` (count, then ids). Writers serialize on the node's
//!   own mutex and never hold two node locks at once, so there is no lock order to get wrong.
//!   Readers load without locking: a list being rewritten may be read half old, half new, which
//!   only ever yields valid node ids (hnswlib reads its lists the same way, racily, in C++).
//! - A node is linked only after it is published, and links are stored with `Release` and loaded
//!   with `Acquire`, so any id a reader finds is a published node.
//! - Deleting or replacing a slot swaps its entry in the slot table and flags the old node
//!   `removed`; the node stays in the graph as a tombstone, still traversed (that keeps the graph
//!   connected) but never returned. `compact` (in `mod.rs`) rebuilds without tombstones.
//!
//! Inserting lives in `graph/build.rs`, walking (greedy descent, beam search) in `graph/walk.rs`.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::arena::Segmented;
use super::visited::{VisitedSet, with_visited};
use crate::distance::DistanceFn;
use crate::rng::{mix, unit_interval};
use crate::simd::prefetch;
use crate::sync::lock;
use crate::topk::{Neighbor, TopK};
use crate::{SlotFilter, SlotId};

mod build;
mod walk;

/// Highest layer a node can be drawn into; with m >= 2 reaching it is a 1-in-2^16 event per node.
const MAX_LEVEL: usize = 16;

const NO_ENTRY: u64 = u64::MAX;

/// Build parameters shared by the graphs an index creates (compaction builds a new one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GraphParams {
    pub(crate) dimension: usize,
    pub(crate) distance: DistanceFn,
    pub(crate) m: usize,
    pub(crate) ef_construction: usize,
    pub(crate) seed: u64,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) slot: SlotId,
    level: usize,
    pub(crate) vector: Box<[f32]>,
    /// Layer 0: `[count, id; 2m]`, then each upper layer: `[count, id; m]`.
    links: Box<[AtomicU32]>,
    /// Serializes writers of `links`.
    link_lock: Mutex<()>,
    /// How many layer-0 lists contain this node. Pruning avoids dropping a node's last in-link:
    /// a node nobody links to cannot be found by any search.
    in_links: AtomicU32,
    /// Set once no slot points here any more (removed or replaced). Searches check this flag
    /// instead of the slot table: it sits in the node record they have already loaded. A node is
    /// returnable from when it is linked until this is set, so for an instant during a
    /// replacement both the old and the new node can match; results keep one hit per slot.
    removed: AtomicBool,
}

/// A node id with its distance to the current query; ordered by distance, then id.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    distance: f32,
    node: u32,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance.total_cmp(&other.distance).then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
pub(crate) struct Graph {
    params: GraphParams,
    /// Links per node on layer 0.
    m0: usize,
    level_multiplier: f64,
    nodes: Segmented<OnceLock<Node>>,
    /// Ids handed out so far; ids below it are published or about to be.
    node_count: AtomicU32,
    /// Slot -> node id + 1 (0: the slot is empty).
    slots: Segmented<AtomicU32>,
    /// One past the highest slot ever written.
    slot_bound: AtomicU32,
    /// `(level << 32) | node` of the entry point, or `NO_ENTRY`.
    entry: AtomicU64,
    /// Taken only to install the first node or raise the entry point's level.
    entry_lock: Mutex<()>,
    live: AtomicUsize,
    /// Bytes of node vectors and link arrays.
    node_bytes: AtomicUsize,
    /// Set by compaction just before it replaces this graph; see `HnswIndex::mutate`.
    pub(crate) retired: AtomicBool,
}

impl Node {
    fn layer_range(&self, layer: usize, m0: usize, m: usize) -> (usize, usize) {
        if layer == 0 { (0, m0) } else { (1 + m0 + (layer - 1) * (1 + m), m) }
    }
}

impl Graph {
    pub(crate) fn new(params: GraphParams) -> Self {
        Self {
            params,
            m0: 2 * params.m,
            level_multiplier: 1.0 / (params.m as f64).ln(),
            nodes: Segmented::default(),
            node_count: AtomicU32::new(0),
            slots: Segmented::default(),
            slot_bound: AtomicU32::new(0),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            live: AtomicUsize::new(0),
            node_bytes: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
        }
    }

    #[inline(always)]
    fn node(&self, id: u32) -> Option<&Node> {
        self.nodes.get(id)?.get()
    }

    #[inline(always)]
    fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        self.params.distance.distance(a, b)
    }

    /// Neighbour ids of `node` on `layer`, read without locking (see the module docs).
    #[inline]
    fn for_each_link(&self, node: &Node, layer: usize, mut visit: impl FnMut(u32)) {
        if layer > node.level {
            return;
        }
        let (start, capacity) = node.layer_range(layer, self.m0, self.params.m);
        let count = (node.links[start].load(Ordering::Acquire) as usize).min(capacity);
        for link in &node.links[start + 1..start + 1 + count] {
            visit(link.load(Ordering::Acquire));
        }
    }

    #[inline(always)]
    fn prefetch_links(&self, node: &Node, layer: usize) {
        if layer <= node.level {
            let (start, _) = node.layer_range(layer, self.m0, self.params.m);
            prefetch(&node.links[start]);
        }
    }

    fn links_of(&self, node: &Node, layer: usize) -> Vec<u32> {
        let mut links = Vec::with_capacity(self.m0);
        self.for_each_link(node, layer, |id| links.push(id));
        links
    }

    /// Overwrites `node`'s list on `layer` and keeps layer-0 in-link counts in step; the caller
    /// holds `node.link_lock`.
    fn write_links(&self, node: &Node, layer: usize, ids: &[u32]) {
        let (start, capacity) = node.layer_range(layer, self.m0, self.params.m);
        let ids = &ids[..ids.len().min(capacity)];
        if layer == 0 {
            let old = self.links_of(node, 0);
            for id in ids.iter().filter(|id| !old.contains(id)) {
                self.adjust_in_links(*id, true);
            }
            for id in old.iter().filter(|id| !ids.contains(id)) {
                self.adjust_in_links(*id, false);
            }
        }
        for (link, id) in node.links[start + 1..start + 1 + capacity].iter().zip(ids) {
            link.store(*id, Ordering::Release);
        }
        node.links[start].store(ids.len() as u32, Ordering::Release);
    }

    fn adjust_in_links(&self, id: u32, added: bool) {
        if let Some(node) = self.node(id) {
            if added {
                node.in_links.fetch_add(1, Ordering::Relaxed);
            } else {
                node.in_links.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn in_links(&self, id: u32) -> u32 {
        self.node(id).map_or(0, |node| node.in_links.load(Ordering::Relaxed))
    }

    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Nodes in the graph that no slot points at any more.
    pub(crate) fn tombstones(&self) -> usize {
        (self.node_count.load(Ordering::Relaxed) as usize).saturating_sub(self.len())
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.nodes.allocated_bytes()
            + self.slots.allocated_bytes()
            + self.node_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn slot_bound(&self) -> u32 {
        self.slot_bound.load(Ordering::SeqCst)
    }

    /// The node currently holding `slot`. `SeqCst` pairs with `retired` (see `HnswIndex::mutate`).
    pub(crate) fn slot_node(&self, slot: SlotId) -> Option<u32> {
        let value = self.slots.get(slot)?.load(Ordering::SeqCst);
        value.checked_sub(1)
    }

    pub(crate) fn vector_of_node(&self, id: u32) -> Option<&[f32]> {
        self.node(id).map(|node| &*node.vector)
    }

    pub(crate) fn vector(&self, slot: SlotId) -> Option<&[f32]> {
        self.vector_of_node(self.slot_node(slot)?)
    }

    /// Flags the node a slot entry pointed at (`entry` is node id + 1) as a tombstone.
    fn retire(&self, entry: u32) {
        if let Some(node) = entry.checked_sub(1).and_then(|id| self.node(id)) {
            node.removed.store(true, Ordering::Release);
        }
    }

    /// Empties `slot`; its node becomes a tombstone. Returns whether the slot was live.
    pub(crate) fn remove(&self, slot: SlotId) -> bool {
        let Some(entry) = self.slots.get(slot) else {
            return false;
        };
        let previous = entry.swap(0, Ordering::SeqCst);
        if previous != 0 {
            self.live.fetch_sub(1, Ordering::Relaxed);
            self.retire(previous);
        }
        previous != 0
    }

    /// Adds `vector` as a new node and points `slot` at it; a node that held the slot before
    /// becomes a tombstone.
    pub(crate) fn insert(&self, slot: SlotId, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.params.dimension);
        let id = self.node_count.fetch_add(1, Ordering::Relaxed);
        assert!(id < u32::MAX - 1, "hnsw graph is full (2^32 - 2 nodes); compact it");
        let level = self.random_level(id);
        let link_count = 1 + self.m0 + level * (1 + self.params.m);
        let node = Node {
            slot,
            level,
            vector: vector.into(),
            links: (0..link_count).map(|_| AtomicU32::new(0)).collect(),
            link_lock: Mutex::new(()),
            in_links: AtomicU32::new(0),
            removed: AtomicBool::new(false),
        };
        self.node_bytes
            .fetch_add((vector.len() + link_count) * std::mem::size_of::<u32>(), Ordering::Relaxed);
        // a fresh id: nobody else sets this cell
        let _ = self.nodes.get_or_allocate(id).set(node);
        self.link(id, level, vector);
        let previous = self.slots.get_or_allocate(slot).swap(id + 1, Ordering::SeqCst);
        if previous == 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
        } else {
            self.retire(previous);
        }
        self.slot_bound.fetch_max(slot + 1, Ordering::SeqCst);
    }

    /// Layer drawn from the exponential distribution with scale `1 / ln(m)` (HNSW paper's `mL`),
    /// derived from the id so that builds are reproducible.
    fn random_level(&self, id: u32) -> usize {
        let uniform = unit_interval(mix(self.params.seed ^ u64::from(id)));
        ((-uniform.ln() * self.level_multiplier) as usize).min(MAX_LEVEL)
    }

    fn entry_point(&self) -> Option<(u32, usize)> {
        let packed = self.entry.load(Ordering::Acquire);
        (packed != NO_ENTRY).then_some(((packed & 0xffff_ffff) as u32, (packed >> 32) as usize))
    }

    /// Makes `id` the entry point if the graph is empty; otherwise returns the entry point.
    fn install_first(&self, id: u32, level: usize) -> Option<(u32, usize)> {
        let _guard = lock(&self.entry_lock);
        if let Some(existing) = self.entry_point() {
            return Some(existing);
        }
        self.entry.store(pack_entry(id, level), Ordering::Release);
        None
    }

    /// Exact k nearest live slots passing `filter`, by walking the slot table.
    pub(crate) fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Neighbor> {
        let mut top = TopK::new(k);
        for slot in 0..self.slot_bound() {
            let Some(vector) = self.vector(slot) else {
                continue;
            };
            if let Some(filter) = filter
                && !filter(slot)
            {
                continue;
            }
            top.push(Neighbor { distance: self.distance(query, vector), slot });
        }
        top.into_sorted()
    }

    /// Estimated number of live slots passing `filter`, from an evenly spaced sample of slots.
    pub(crate) fn estimate_matches(&self, filter: &SlotFilter<'_>) -> usize {
        const SAMPLE: u32 = 256;
        let bound = self.slot_bound();
        let step = (bound / SAMPLE).max(1);
        let mut live_seen = 0usize;
        let mut matched = 0usize;
        let mut slot = 0;
        while slot < bound {
            if self.slot_node(slot).is_some() {
                live_seen += 1;
                if filter(slot) {
                    matched += 1;
                }
            }
            slot += step;
        }
        if live_seen == 0 {
            return 0;
        }
        matched * self.len() / live_seen
    }

    /// Live (slot, node) pairs in slot order.
    pub(crate) fn live_entries(&self) -> Vec<(SlotId, u32)> {
        (0..self.slot_bound()).filter_map(|slot| Some((slot, self.slot_node(slot)?))).collect()
    }
}

fn pack_entry(id: u32, level: usize) -> u64 {
    ((level as u64) << 32) | u64::from(id)
}
