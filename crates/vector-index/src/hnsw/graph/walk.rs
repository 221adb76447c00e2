//! Walking the graph: greedy descent through the upper layers and the beam search on a layer,
//! used by inserts (to find neighbours) and by queries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;

use super::{Graph, Node, Scored, VisitedSet, prefetch, with_visited};
use crate::SlotFilter;
use crate::topk::Neighbor;

impl Graph {
    /// Greedy walk on one upper layer: move to any closer neighbour until none is closer.
    pub(super) fn greedy_closest(&self, query: &[f32], start: Scored, layer: usize) -> Scored {
        let mut best = start;
        loop {
            let Some(node) = self.node(best.node) else {
                return best;
            };
            let mut improved = false;
            self.for_each_link(node, layer, |neighbour| {
                if let Some(candidate) = self.node(neighbour) {
                    let distance = self.distance(query, &candidate.vector);
                    if distance < best.distance {
                        best = Scored { distance, node: neighbour };
                        improved = true;
                    }
                }
            });
            if !improved {
                return best;
            }
        }
    }

    /// Beam search on one layer (HNSW paper, algorithm 2), returning up to `ef` nodes accepted by
    /// `admit`, nearest first. Nodes that `admit` rejects are still traversed: the walk goes through
    /// tombstones and filtered-out nodes, but only admitted nodes fill the result, and the search
    /// stops only once `ef` admitted nodes are closer than every unexpanded candidate.
    pub(super) fn search_layer(
        &self,
        query: &[f32],
        entry_points: &[Scored],
        ef: usize,
        layer: usize,
        visited: &mut VisitedSet,
        admit: impl Fn(u32, &Node) -> bool,
    ) -> Vec<Scored> {
        let mut candidates: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef + 1);
        for entry in entry_points {
            if !visited.insert(entry.node) {
                continue;
            }
            candidates.push(Reverse(*entry));
            if let Some(node) = self.node(entry.node)
                && admit(entry.node, node)
            {
                results.push(*entry);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
        let bound = |results: &BinaryHeap<Scored>| match results.peek() {
            Some(worst) if results.len() >= ef => worst.distance,
            _ => f32::INFINITY,
        };
        let mut worst_admitted = bound(&results);
        let mut fresh_ids: Vec<u32> = Vec::with_capacity(self.m0);
        let mut fresh: Vec<(u32, &Node)> = Vec::with_capacity(self.m0);
        while let Some(Reverse(current)) = candidates.pop() {
            if current.distance > worst_admitted {
                break;
            }
            let Some(node) = self.node(current.node) else {
                continue;
            };
            // Passes over the neighbours so that their cache misses overlap rather than queue:
            // prefetch the visited marks; check them and prefetch the node records (addresses
            // follow from the ids); read the records and prefetch the vectors; compute distances.
            fresh_ids.clear();
            self.for_each_link(node, layer, |neighbour| {
                visited.prefetch(neighbour);
                fresh_ids.push(neighbour);
            });
            fresh_ids.retain(|&neighbour| {
                let unvisited = visited.insert(neighbour);
                if unvisited && let Some(cell) = self.nodes.get(neighbour) {
                    prefetch(cell);
                }
                unvisited
            });
            // the next candidate's link list is read next round
            if let Some(Reverse(next)) = candidates.peek()
                && let Some(next_node) = self.node(next.node)
            {
                self.prefetch_links(next_node, layer);
            }
            fresh.clear();
            for &neighbour in &fresh_ids {
                if let Some(neighbour_node) = self.node(neighbour) {
                    prefetch(&*neighbour_node.vector);
                    fresh.push((neighbour, neighbour_node));
                }
            }
            for &(neighbour, neighbour_node) in &fresh {
                let distance = self.distance(query, &neighbour_node.vector);
                if distance >= worst_admitted && results.len() >= ef {
                    continue;
                }
                let scored = Scored { distance, node: neighbour };
                candidates.push(Reverse(scored));
                if admit(neighbour, neighbour_node) {
                    results.push(scored);
                    if results.len() > ef {
                        results.pop();
                    }
                    worst_admitted = bound(&results);
                }
            }
        }
        results.into_sorted_vec()
    }

    /// Approximate k nearest live nodes passing `filter`, best first, as (distance, slot); at most
    /// one result per slot.
    pub(crate) fn search_graph(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Neighbor> {
        let Some((entry, top_level)) = self.entry_point() else {
            return Vec::new();
        };
        let Some(entry_node) = self.node(entry) else {
            return Vec::new();
        };
        let mut nearest = Scored { distance: self.distance(query, &entry_node.vector), node: entry };
        for layer in (1..=top_level).rev() {
            nearest = self.greedy_closest(query, nearest, layer);
        }
        let capacity = self.node_count.load(Ordering::Relaxed) as usize;
        let found = with_visited(capacity, |visited| {
            self.search_layer(query, &[nearest], ef.max(k), 0, visited, |_, node| {
                !node.removed.load(Ordering::Acquire) && filter.is_none_or(|filter| filter(node.slot))
            })
        });
        let mut hits: Vec<Neighbor> = found
            .iter()
            .filter_map(|scored| {
                Some(Neighbor { distance: scored.distance, slot: self.node(scored.node)?.slot })
            })
            .collect();
        // A slot replaced mid-search can show up twice (old and new node): keep its best hit.
        hits.sort_unstable();
        let mut seen_slots = std::collections::HashSet::with_capacity(hits.len());
        hits.retain(|hit| seen_slots.insert(hit.slot));
        hits.truncate(k);
        hits
    }
}
