//! Inserting into the graph: linking a new node on every layer, pruning full neighbour lists with
//! the HNSW heuristic, and keeping every node reachable.

use std::sync::atomic::Ordering;

use super::{Graph, Node, Scored, lock, pack_entry, with_visited};

impl Graph {
    /// Connects a published node into every layer up to its level (HNSW paper, algorithm 1).
    pub(super) fn link(&self, id: u32, level: usize, vector: &[f32]) {
        let Some((entry, top_level)) = self.entry_point().or_else(|| self.install_first(id, level)) else {
            return; // this node is the first and is now the entry point
        };
        let Some(entry_node) = self.node(entry) else {
            return;
        };
        let mut nearest = Scored { distance: self.distance(vector, &entry_node.vector), node: entry };
        for layer in (level + 1..=top_level).rev() {
            nearest = self.greedy_closest(vector, nearest, layer);
        }
        let capacity = self.node_count.load(Ordering::Relaxed) as usize;
        with_visited(capacity, |visited| {
            let mut entry_points = vec![nearest];
            for layer in (0..=level.min(top_level)).rev() {
                visited.reset(capacity);
                let candidates = self.search_layer(
                    vector,
                    &entry_points,
                    self.params.ef_construction,
                    layer,
                    visited,
                    |candidate, _| candidate != id,
                );
                let neighbours = self.select_neighbours(&candidates, self.params.m);
                self.set_own_links(id, layer, &neighbours);
                let mut linked_back = false;
                for neighbour in &neighbours {
                    linked_back |= self.add_link(neighbour.node, id, layer);
                }
                if !linked_back && let Some(nearest) = neighbours.first() {
                    // Every neighbour's heuristic dropped the new node: nothing points at it, so no
                    // search could reach it. That happens to points far from the existing data
                    // (a new cluster, drifting embeddings); its nearest neighbour links it anyway.
                    self.force_link(nearest.node, id, layer);
                }
                if !candidates.is_empty() {
                    entry_points = candidates;
                }
            }
        });
        if level > top_level {
            let _guard = lock(&self.entry_lock);
            if self.entry_point().is_none_or(|(_, current_top)| level > current_top) {
                self.entry.store(pack_entry(id, level), Ordering::Release);
            }
        }
    }

    /// Writes a new node's list on `layer`. Concurrent inserts may already have linked back to it
    /// (they can reach it through upper layers before this layer is done), so those links are
    /// merged in rather than overwritten, and the union is pruned like any full list.
    pub(super) fn set_own_links(&self, id: u32, layer: usize, neighbours: &[Scored]) {
        let Some(node) = self.node(id) else {
            return;
        };
        let capacity = if layer == 0 { self.m0 } else { self.params.m };
        let _guard = lock(&node.link_lock);
        let mut candidates = neighbours.to_vec();
        for linked in self.links_of(node, layer) {
            if candidates.iter().any(|scored| scored.node == linked) {
                continue;
            }
            if let Some(linked_node) = self.node(linked) {
                candidates.push(Scored {
                    distance: self.distance(&node.vector, &linked_node.vector),
                    node: linked,
                });
            }
        }
        let ids: Vec<u32> = if candidates.len() <= capacity {
            candidates.iter().map(|scored| scored.node).collect()
        } else {
            candidates.sort_unstable();
            self.select_neighbours(&candidates, capacity).iter().map(|scored| scored.node).collect()
        };
        self.write_links(node, layer, &ids);
    }

    /// HNSW paper's neighbour-selection heuristic (algorithm 4, as in hnswlib): walking candidates
    /// nearest first, keep one only if it is closer to the base than to every neighbour kept so
    /// far. That spreads links across directions, which keeps clustered data navigable.
    pub(super) fn select_neighbours(&self, candidates: &[Scored], max: usize) -> Vec<Scored> {
        if candidates.len() <= max {
            return candidates.to_vec();
        }
        let mut selected: Vec<(Scored, &Node)> = Vec::with_capacity(max);
        for candidate in candidates {
            if selected.len() >= max {
                break;
            }
            let Some(node) = self.node(candidate.node) else {
                continue;
            };
            let diverse = selected
                .iter()
                .all(|(_, kept)| self.distance(&node.vector, &kept.vector) >= candidate.distance);
            if diverse {
                selected.push((*candidate, node));
            }
        }
        selected.into_iter().map(|(scored, _)| scored).collect()
    }

    /// Adds `new_id` to `target`'s list on `layer`, re-selecting the list with the heuristic when
    /// it is full. Returns whether `new_id` is in the list afterwards.
    pub(super) fn add_link(&self, target: u32, new_id: u32, layer: usize) -> bool {
        let (Some(target_node), Some(new_node)) = (self.node(target), self.node(new_id)) else {
            return false;
        };
        if layer > target_node.level {
            return false;
        }
        let capacity = if layer == 0 { self.m0 } else { self.params.m };
        let _guard = lock(&target_node.link_lock);
        let existing = self.links_of(target_node, layer);
        if existing.contains(&new_id) {
            return true;
        }
        if existing.len() < capacity {
            let mut extended = existing;
            extended.push(new_id);
            self.write_links(target_node, layer, &extended);
            return true;
        }
        let mut candidates: Vec<Scored> = existing
            .iter()
            .filter_map(|&id| {
                let node = self.node(id)?;
                Some(Scored { distance: self.distance(&target_node.vector, &node.vector), node: id })
            })
            .collect();
        candidates
            .push(Scored { distance: self.distance(&target_node.vector, &new_node.vector), node: new_id });
        candidates.sort_unstable();
        let mut kept: Vec<u32> =
            self.select_neighbours(&candidates, capacity).iter().map(|scored| scored.node).collect();
        if layer == 0 {
            self.keep_last_in_links(&candidates, &mut kept, new_id);
        }
        self.write_links(target_node, layer, &kept);
        kept.contains(&new_id)
    }

    /// Swaps into `kept` any dropped candidate whose only layer-0 in-link is this list, in place of
    /// the farthest kept node that other lists also link to. Counts are read without locks, so
    /// this is best effort; it removes most orphans that pruning would otherwise create.
    pub(super) fn keep_last_in_links(&self, candidates: &[Scored], kept: &mut [u32], new_id: u32) {
        // in-links of `id` that come from this list now (the new node is not in it yet)
        let held_here = |id: u32| u32::from(id != new_id);
        // linked from elsewhere too: losing this list's link leaves it reachable
        let linked_elsewhere = |id: u32| self.in_links(id) > held_here(id);
        for dropped in candidates.iter().map(|scored| scored.node) {
            if kept.contains(&dropped) || linked_elsewhere(dropped) {
                continue;
            }
            // the most redundantly linked kept node, never the nearest one
            let replaceable = kept
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, id)| linked_elsewhere(**id))
                .max_by_key(|(_, id)| self.in_links(**id) - held_here(**id))
                .map(|(position, _)| position);
            if let Some(position) = replaceable {
                kept[position] = dropped;
            }
        }
    }

    /// Puts `new_id` into `target`'s list on `layer`, in place of the farthest link if full.
    pub(super) fn force_link(&self, target: u32, new_id: u32, layer: usize) {
        let Some(target_node) = self.node(target) else {
            return;
        };
        if layer > target_node.level {
            return;
        }
        let capacity = if layer == 0 { self.m0 } else { self.params.m };
        let _guard = lock(&target_node.link_lock);
        let mut links = self.links_of(target_node, layer);
        if links.contains(&new_id) {
            return;
        }
        if links.len() < capacity {
            links.push(new_id);
        } else {
            let farthest = links
                .iter()
                .enumerate()
                .filter_map(|(position, id)| {
                    let node = self.node(*id)?;
                    Some((self.distance(&target_node.vector, &node.vector), position))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(links.len() - 1, |(_, position)| position);
            links[farthest] = new_id;
        }
        self.write_links(target_node, layer, &links);
    }
}
