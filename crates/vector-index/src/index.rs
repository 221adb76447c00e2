//! [`Index`]: the one public handle. It validates input, normalizes for cosine, and dispatches to
//! the index kind chosen by [`IndexConfig`]; results come back as [`Hit`]s in the caller's score
//! convention.

use std::collections::HashMap;

use crate::SlotId;
use crate::config::{IndexConfig, IndexOptions, MAX_DIMENSION, Metric, SearchParams};
use crate::distance::{DistanceFn, normalize_in_place};
use crate::error::IndexError;
use crate::flat::FlatIndex;
use crate::hnsw::{GraphParams, HnswIndex};
use crate::ivf::IvfIndex;
use crate::topk::Neighbor;

/// A search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The matching slot.
    pub slot: SlotId,
    /// Squared L2 distance for [`Metric::L2`] (smaller is better); dot product of the (for cosine,
    /// normalized) vectors otherwise (larger is better).
    pub score: f32,
}

#[derive(Debug)]
enum Engine {
    Flat(FlatIndex),
    Ivf(IvfIndex),
    Hnsw(HnswIndex),
}

/// A vector index over slots: `Send + Sync`, every method takes `&self`, and inserts, deletes and
/// searches may run concurrently from any number of threads.
///
/// Filters passed to [`Index::search`] run while the index is mid-search and must not call back
/// into the same index.
#[derive(Debug)]
pub struct Index {
    dimension: usize,
    metric: Metric,
    config: IndexConfig,
    engine: Engine,
}

impl Index {
    /// An empty index. Zero fields of `config` take their defaults; the result is then validated.
    pub fn new(dimension: usize, metric: Metric, config: IndexConfig) -> Result<Index, IndexError> {
        Self::with_options(dimension, metric, config, IndexOptions::default())
    }

    /// [`Index::new`] with non-default [`IndexOptions`].
    pub fn with_options(
        dimension: usize,
        metric: Metric,
        config: IndexConfig,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(IndexError::invalid(
                "dimension",
                format!("{dimension} is outside 1..={MAX_DIMENSION}"),
            ));
        }
        let config = config.with_defaults();
        config.validate()?;
        let distance = DistanceFn::for_metric(metric);
        let engine = match config {
            IndexConfig::Flat => Engine::Flat(FlatIndex::new(dimension, metric)),
            IndexConfig::Ivf { nlist, nprobe } => {
                let coarse = match metric {
                    Metric::InnerProduct => distance,
                    Metric::L2 | Metric::Cosine => DistanceFn::l2(),
                };
                Engine::Ivf(IvfIndex::new(
                    dimension,
                    distance,
                    coarse,
                    nlist,
                    nprobe,
                    options.ivf_train_threshold,
                    options.seed,
                ))
            }
            IndexConfig::Hnsw { m, ef_construction, ef_search } => Engine::Hnsw(HnswIndex::new(
                GraphParams {
                    dimension,
                    distance,
                    m,
                    ef_construction: ef_construction.max(m),
                    seed: options.seed,
                },
                ef_search,
                options.exact_search_below,
            )),
        };
        Ok(Index { dimension, metric, config, engine })
    }

    /// Length every vector and query must have.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// How vectors are compared.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The configuration with defaults filled in.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Checks dimension and finiteness and returns the vector as stored (normalized for cosine).
    fn prepare(&self, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
        if vector.len() != self.dimension {
            return Err(IndexError::DimensionMismatch { expected: self.dimension, actual: vector.len() });
        }
        if let Some(index) = vector.iter().position(|value| !value.is_finite()) {
            return Err(IndexError::NonFinite { index });
        }
        let mut prepared = vector.to_vec();
        if self.metric == Metric::Cosine {
            normalize_in_place(&mut prepared);
        }
        Ok(prepared)
    }

    fn check_slot(slot: SlotId) -> Result<(), IndexError> {
        if slot == SlotId::MAX {
            return Err(IndexError::invalid("slot", "u32::MAX is reserved"));
        }
        Ok(())
    }

    /// Inserts or replaces the vector at `slot`. Validates dimension and finiteness first.
    /// `SlotId::MAX` is reserved and refused.
    pub fn upsert(&self, slot: SlotId, vector: &[f32]) -> Result<(), IndexError> {
        Self::check_slot(slot)?;
        let prepared = self.prepare(vector)?;
        match &self.engine {
            Engine::Flat(flat) => flat.upsert(slot, &prepared),
            Engine::Ivf(ivf) => ivf.upsert_batch(&[(slot, prepared)]),
            Engine::Hnsw(hnsw) => hnsw.upsert(slot, &prepared),
        }
        Ok(())
    }

    /// Upserts many; for IVF may trigger training. All are validated before any is applied (the
    /// error is the first invalid item's). When a slot appears more than once, the last one wins.
    /// HNSW inserts the batch in parallel.
    pub fn upsert_batch(&self, items: &[(SlotId, &[f32])]) -> Result<(), IndexError> {
        let mut prepared = Vec::with_capacity(items.len());
        for (slot, vector) in items {
            Self::check_slot(*slot)?;
            prepared.push((*slot, self.prepare(vector)?));
        }
        let prepared = keep_last_per_slot(prepared);
        match &self.engine {
            Engine::Flat(flat) => {
                for (slot, vector) in &prepared {
                    flat.upsert(*slot, vector);
                }
            }
            Engine::Ivf(ivf) => ivf.upsert_batch(&prepared),
            Engine::Hnsw(hnsw) => hnsw.upsert_batch(&prepared),
        }
        Ok(())
    }

    /// Tombstones the slot; returns whether it was live. The slot may be upserted again at once.
    pub fn remove(&self, slot: SlotId) -> bool {
        match &self.engine {
            Engine::Flat(flat) => flat.remove(slot),
            Engine::Ivf(ivf) => ivf.remove(slot),
            Engine::Hnsw(hnsw) => hnsw.remove(slot),
        }
    }

    /// Whether `slot` holds a live vector.
    pub fn contains(&self, slot: SlotId) -> bool {
        match &self.engine {
            Engine::Flat(flat) => flat.contains(slot),
            Engine::Ivf(ivf) => ivf.contains(slot),
            Engine::Hnsw(hnsw) => hnsw.contains(slot),
        }
    }

    /// The stored vector; for [`Metric::Cosine`] that is the normalized one.
    pub fn get(&self, slot: SlotId) -> Option<Vec<f32>> {
        match &self.engine {
            Engine::Flat(flat) => flat.get(slot),
            Engine::Ivf(ivf) => ivf.get(slot),
            Engine::Hnsw(hnsw) => hnsw.get(slot),
        }
    }

    /// Live points.
    pub fn len(&self) -> usize {
        match &self.engine {
            Engine::Flat(flat) => flat.len(),
            Engine::Ivf(ivf) => ivf.len(),
            Engine::Hnsw(hnsw) => hnsw.len(),
        }
    }

    /// Whether there are no live points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removed or replaced HNSW nodes still in the graph (reclaimed by [`Index::compact`]); always
    /// 0 for Flat and IVF, which reclaim at once.
    pub fn tombstones(&self) -> usize {
        match &self.engine {
            Engine::Hnsw(hnsw) => hnsw.tombstones(),
            Engine::Flat(_) | Engine::Ivf(_) => 0,
        }
    }

    /// Approximate heap bytes: vectors plus index structures (allocated capacity, tombstones
    /// included).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.engine {
                Engine::Flat(flat) => flat.memory_bytes(),
                Engine::Ivf(ivf) => ivf.memory_bytes(),
                Engine::Hnsw(hnsw) => hnsw.memory_bytes(),
            }
    }

    /// Whether an IVF index has trained its centroids (`true` for other kinds, which need none).
    pub fn is_trained(&self) -> bool {
        match &self.engine {
            Engine::Ivf(ivf) => ivf.is_trained(),
            Engine::Flat(_) | Engine::Hnsw(_) => true,
        }
    }

    /// Trains an IVF index now on a sample of what it holds (retrains if trained) and reassigns
    /// every point. Needs at least `nlist` points; a no-op otherwise and for other kinds.
    pub fn train(&self) {
        if let Engine::Ivf(ivf) = &self.engine {
            ivf.train();
        }
    }

    fn prepare_query(&self, query: &[f32], params: &SearchParams) -> Result<Vec<f32>, IndexError> {
        params.validate()?;
        self.prepare(query)
    }

    fn to_hits(&self, neighbors: Vec<Neighbor>) -> Vec<Hit> {
        let negate = self.metric.higher_is_better();
        neighbors
            .into_iter()
            .map(|neighbor| Hit {
                slot: neighbor.slot,
                score: if negate { -neighbor.distance } else { neighbor.distance },
            })
            .collect()
    }

    /// k best live slots, best first, ties by slot ascending. `filter` is consulted during the
    /// search: HNSW walks through non-matching nodes but only returns matching ones, and falls
    /// back to an exact scan of the matching points when the filter is very selective or the walk
    /// found fewer than `k`; IVF probes further lists until `k` matches are found. So a filtered
    /// search returns `k` hits whenever `k` matching points exist.
    pub fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&(dyn Fn(SlotId) -> bool + Sync)>,
    ) -> Result<Vec<Hit>, IndexError> {
        let query = self.prepare_query(query, params)?;
        let neighbors = match &self.engine {
            Engine::Flat(flat) => flat.search(&query, params.k, filter),
            Engine::Ivf(ivf) => ivf.search(&query, params.k, params.nprobe, filter),
            Engine::Hnsw(hnsw) => hnsw.search(&query, params.k, params.ef, filter),
        };
        Ok(self.to_hits(neighbors))
    }

    /// One result list per query, in order; parallel across queries (rayon's global pool) and, for
    /// Flat, blocked so each stored vector is read once per tile of queries. Results equal those
    /// of [`Index::search`] query by query. All queries are validated first.
    pub fn search_batch(
        &self,
        queries: &[&[f32]],
        params: &SearchParams,
        filter: Option<&(dyn Fn(SlotId) -> bool + Sync)>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        let mut prepared = Vec::with_capacity(queries.len());
        for query in queries {
            prepared.push(self.prepare_query(query, params)?);
        }
        let prepared: Vec<&[f32]> = prepared.iter().map(Vec::as_slice).collect();
        let results = match &self.engine {
            Engine::Flat(flat) => flat.search_batch(&prepared, params.k, filter),
            Engine::Ivf(ivf) => ivf.search_batch(&prepared, params.k, params.nprobe, filter),
            Engine::Hnsw(hnsw) => hnsw.search_batch(&prepared, params.k, params.ef, filter),
        };
        Ok(results.into_iter().map(|neighbors| self.to_hits(neighbors)).collect())
    }

    /// Rebuilds internal structures: HNSW builds a fresh graph without tombstones while the old one
    /// keeps serving (changes made meanwhile are carried over, then the graphs swap in an instant);
    /// IVF retrains on the current data and reassigns (searches wait for the final reassignment,
    /// computed beforehand off-lock); Flat has nothing to rebuild. Returns at once if a compaction
    /// of this index is already running.
    pub fn compact(&self) {
        match &self.engine {
            Engine::Flat(_) => {}
            Engine::Ivf(ivf) => ivf.compact(),
            Engine::Hnsw(hnsw) => hnsw.compact(),
        }
    }
}

/// Drops all but the last item per slot, keeping the survivors in input order.
fn keep_last_per_slot(items: Vec<(SlotId, Vec<f32>)>) -> Vec<(SlotId, Vec<f32>)> {
    let mut last_position: HashMap<SlotId, usize> = HashMap::with_capacity(items.len());
    for (position, (slot, _)) in items.iter().enumerate() {
        last_position.insert(*slot, position);
    }
    if last_position.len() == items.len() {
        return items;
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(position, (slot, _))| last_position.get(slot) == Some(position))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_upsert_of_a_slot_in_a_batch_wins() {
        let items = vec![(1, vec![1.0]), (2, vec![2.0]), (1, vec![3.0])];
        assert_eq!(keep_last_per_slot(items), vec![(2, vec![2.0]), (1, vec![3.0])]);
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Index>();
    }
}
