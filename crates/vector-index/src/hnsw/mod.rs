//! HNSW index: the graph (`graph.rs`) plus search strategy (when an exact scan beats the graph)
//! and compaction (rebuilding the graph without tombstones while it stays in use).
//!
//! The current graph sits behind an `RwLock<Arc<Graph>>` that is only ever held for the instant it
//! takes to clone the `Arc`: inserts and searches run on their clone concurrently, and the only
//! exclusive holder is compaction's final swap.

mod arena;
mod graph;
mod visited;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use crate::sync::{read, write};
use crate::topk::Neighbor;
use crate::{SlotFilter, SlotId};
use graph::Graph;
pub(crate) use graph::GraphParams;

/// With a filter, an exact scan of the matching points is chosen when the estimated match count
/// `n` satisfies `n^2 < FILTER_SCAN_FACTOR * ef * live`. A graph search that admits a fraction `s`
/// of nodes computes roughly `10 * ef / s` distances, a scan `s * live`; they cross there.
const FILTER_SCAN_FACTOR: usize = 10;

#[derive(Debug)]
pub(crate) struct HnswIndex {
    params: GraphParams,
    ef_search: usize,
    exact_search_below: usize,
    graph: RwLock<Arc<Graph>>,
    /// Held by a running compaction; a second one returns at once.
    compacting: Mutex<()>,
}

impl HnswIndex {
    pub(crate) fn new(params: GraphParams, ef_search: usize, exact_search_below: usize) -> Self {
        Self {
            params,
            ef_search,
            exact_search_below,
            graph: RwLock::new(Arc::new(Graph::new(params))),
            compacting: Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<Graph> {
        Arc::clone(&read(&self.graph))
    }

    /// Applies an idempotent mutation to the current graph, and again to its successor if a
    /// compaction retired the graph meanwhile.
    ///
    /// Compaction sets `retired` and then reads every slot entry; a mutation writes its slot entry
    /// and then reads `retired`, all `SeqCst`. So either the mutation sees `retired` (and repeats
    /// itself on the new graph, which is published by the time the pointer lock is free again) or
    /// compaction sees the mutation's slot entry (and copies it across). Nothing is lost either way.
    fn mutate<R>(&self, operation: impl Fn(&Graph) -> R) -> R {
        let mut graph = self.current();
        let result = operation(&graph);
        while graph.retired.load(Ordering::SeqCst) {
            graph = self.current();
            operation(&graph);
        }
        result
    }

    pub(crate) fn upsert(&self, slot: SlotId, vector: &[f32]) {
        self.mutate(|graph| graph.insert(slot, vector));
    }

    pub(crate) fn upsert_batch(&self, items: &[(SlotId, Vec<f32>)]) {
        self.mutate(|graph| {
            items.par_iter().with_max_len(16).for_each(|(slot, vector)| graph.insert(*slot, vector));
        });
    }

    pub(crate) fn remove(&self, slot: SlotId) -> bool {
        self.mutate(|graph| graph.remove(slot))
    }

    pub(crate) fn get(&self, slot: SlotId) -> Option<Vec<f32>> {
        self.current().vector(slot).map(<[f32]>::to_vec)
    }

    pub(crate) fn contains(&self, slot: SlotId) -> bool {
        self.current().slot_node(slot).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.current().len()
    }

    pub(crate) fn tombstones(&self) -> usize {
        self.current().tombstones()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.current().memory_bytes()
    }

    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Neighbor> {
        self.search_in(&self.current(), query, k, ef, filter)
    }

    pub(crate) fn search_batch(
        &self,
        queries: &[&[f32]],
        k: usize,
        ef: Option<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Vec<Neighbor>> {
        let graph = self.current();
        queries.par_iter().map(|query| self.search_in(&graph, query, k, ef, filter)).collect()
    }

    fn search_in(
        &self,
        graph: &Graph,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Neighbor> {
        let live = graph.len();
        if k == 0 || live == 0 {
            return Vec::new();
        }
        let ef = ef.unwrap_or(self.ef_search).max(k);
        if live <= self.exact_search_below {
            return graph.exact_search(query, k, filter);
        }
        if let Some(filter) = filter {
            let matches = graph.estimate_matches(filter);
            if matches.saturating_mul(matches) < FILTER_SCAN_FACTOR * ef * live {
                return graph.exact_search(query, k, Some(filter));
            }
        }
        let hits = graph.search_graph(query, k, ef, filter);
        if hits.len() < k {
            // The walk ran out of reachable admitted nodes (a selective filter the sample missed,
            // or tombstones cutting off a region): the scan finds every match there is.
            return graph.exact_search(query, k, filter);
        }
        hits
    }

    /// Rebuilds the graph from the live points, dropping tombstones, while the old graph keeps
    /// serving; changes made meanwhile are carried over before the swap. Returns at once if a
    /// compaction is already running.
    pub(crate) fn compact(&self) {
        let Ok(_compacting) = self.compacting.try_lock() else {
            return;
        };
        let old = self.current();
        let snapshot = old.live_entries();
        let fresh = Graph::new(self.params);
        snapshot.par_iter().with_max_len(16).for_each(|(slot, node)| {
            if let Some(vector) = old.vector_of_node(*node) {
                fresh.insert(*slot, vector);
            }
        });
        let mut pointer = write(&self.graph);
        old.retired.store(true, Ordering::SeqCst);
        let mut snapshot_nodes = vec![None; old.slot_bound() as usize];
        for (slot, node) in &snapshot {
            snapshot_nodes[*slot as usize] = Some(*node);
        }
        for slot in 0..old.slot_bound() {
            let now = old.slot_node(slot);
            if now == snapshot_nodes.get(slot as usize).copied().flatten() {
                continue;
            }
            match now.and_then(|node| old.vector_of_node(node)) {
                Some(vector) => fresh.insert(slot, vector),
                None => {
                    fresh.remove(slot);
                }
            }
        }
        *pointer = Arc::new(fresh);
    }
}
