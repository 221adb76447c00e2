//! A collection's in-memory state: the engine index and the point table, and the operations on
//! them. Writes are applied by the collection's writer only (and by replay at start), in log
//! order; searches and reads run concurrently with them.
//!
//! Lock order and visibility: an upsert stages its points in fresh slots (not yet current: their
//! ids still map to the old slots), inserts the vectors into the index outside the table lock,
//! then switches the ids to the new slots and takes the old and deleted vectors out of the index
//! while holding the table's write lock. A search admits only current slots and holds the table's
//! read lock from the engine call until its hits are mapped to ids, so a write is seen whole or
//! not at all and no slot is freed and reused under a search.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sutazai_vector_index::{Hit, Index, Metric, SearchParams, SlotId};

use super::filter::Filter;
use super::point_id::PointId;
use super::points::{NewPoint, PointEntry, PointTable};
use super::spec::{CollectionSpec, engine_error};
use crate::error::VectorError;

/// What [`CollectionState::for_each_point`] calls with each point: id, vector as given, payload.
pub type PointVisitor<'visit> = dyn FnMut(&PointId, &[f32], Option<&Map<String, Value>>) + 'visit;

/// Fewest tombstones worth a compaction.
pub const COMPACT_MIN_TOMBSTONES: usize = 1024;

/// Most hits fetched beyond k + 1 to order a tie at the k-th place by id; past it, which of the
/// tied points make the cut is the engine's choice.
pub const MAX_TIE_EXTRA_FETCH: usize = 1024;

/// A search as the state runs it (already validated).
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Hits per query.
    pub k: usize,
    /// HNSW candidate list size, when overridden.
    pub ef: Option<usize>,
    /// IVF cells probed, when overridden.
    pub nprobe: Option<usize>,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
}

/// One hit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    /// The point.
    pub id: PointId,
    /// Squared L2 distance (smaller is better) or similarity (larger is better).
    pub score: f32,
    /// Its payload, when asked for (and it has one).
    pub payload: Option<Map<String, Value>>,
    /// Its vector, when asked for.
    pub vector: Option<Vec<f32>>,
}

/// A stored point.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    /// Its id.
    pub id: PointId,
    /// The vector as it was given.
    pub vector: Vec<f32>,
    /// Its payload.
    pub payload: Option<Map<String, Value>>,
}

/// The state of one collection.
#[derive(Debug)]
pub struct CollectionState {
    spec: CollectionSpec,
    index: Index,
    table: RwLock<PointTable>,
    last_snapshot_at: Mutex<Option<DateTime<Utc>>>,
}

impl CollectionState {
    /// An empty collection of `spec`.
    pub fn new(spec: CollectionSpec) -> Result<Self, VectorError> {
        let index = Index::new(spec.dimension, spec.metric, spec.index.clone())
            .map_err(|error| engine_error(error, "index."))?;
        Ok(Self {
            spec,
            index,
            table: RwLock::new(PointTable::default()),
            last_snapshot_at: Mutex::new(None),
        })
    }

    /// The collection's shape, with the engine's defaults filled in.
    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// The index configuration the engine runs with.
    pub fn index_config(&self) -> &sutazai_vector_index::IndexConfig {
        self.index.config()
    }

    /// Live points.
    pub fn len(&self) -> usize {
        self.read_table().len()
    }

    /// Whether the collection holds no point.
    pub fn is_empty(&self) -> bool {
        self.read_table().is_empty()
    }

    /// The engine's memory plus the estimated memory of ids, payloads and kept vectors.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.read_table().memory_bytes()
    }

    /// Whether removed and replaced graph nodes have piled up enough to rebuild the index: at
    /// least [`COMPACT_MIN_TOMBSTONES`] and a quarter of the live points. Searches skip
    /// tombstones, but they still cost memory and search time.
    pub fn needs_compaction(&self) -> bool {
        let tombstones = self.index.tombstones();
        tombstones >= COMPACT_MIN_TOMBSTONES && tombstones.saturating_mul(4) >= self.len()
    }

    /// Rebuilds the index without tombstones; searches and writes go on meanwhile.
    pub fn compact(&self) {
        self.index.compact();
    }

    /// When the last snapshot was written.
    pub fn last_snapshot_at(&self) -> Option<DateTime<Utc>> {
        *self.last_snapshot_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a written snapshot.
    pub fn set_last_snapshot_at(&self, at: DateTime<Utc>) {
        *self.last_snapshot_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    // A panic while holding a lock leaves the table as the last completed step left it; reads
    // and the next writes can go on, so poisoning is not propagated.
    fn read_table(&self) -> RwLockReadGuard<'_, PointTable> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_table(&self) -> RwLockWriteGuard<'_, PointTable> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks a write's vectors: the collection's dimension, every component finite. `field`
    /// names the list (`points`), each error its position in it.
    pub fn check_points(&self, field: &str, points: &[NewPoint]) -> Result<(), VectorError> {
        for (position, point) in points.iter().enumerate() {
            self.check_vector(&format!("{field}[{position}].vector"), &point.vector)?;
        }
        Ok(())
    }

    /// Checks one vector against the collection's dimension and for finite components.
    pub fn check_vector(&self, field: &str, vector: &[f32]) -> Result<(), VectorError> {
        if vector.len() != self.spec.dimension {
            return Err(VectorError::validation(
                field,
                format!("expected {} components, got {}", self.spec.dimension, vector.len()),
            ));
        }
        if let Some(position) = vector.iter().position(|component| !component.is_finite()) {
            return Err(VectorError::validation(
                field,
                format!("component {position} is not a finite number"),
            ));
        }
        Ok(())
    }

    /// Inserts or replaces `points` (already checked); a later point with the same id wins.
    ///
    /// Every point goes into a fresh slot first, invisible to searches (its id still maps to its
    /// old slot, if any). The engine inserts them outside the table lock; then, under the write
    /// lock, the ids switch to the new slots and the old slots leave the engine. A search
    /// therefore sees the whole write or none of it, and a hit's payload always belongs to the
    /// vector that was scored.
    pub fn apply_upsert(&self, points: Vec<NewPoint>) -> Result<u64, VectorError> {
        let count = points.len() as u64;
        let keep_original = self.spec.metric == Metric::Cosine;
        let mut position_of_id: HashMap<PointId, usize> = HashMap::with_capacity(points.len());
        let mut unique: Vec<NewPoint> = Vec::with_capacity(points.len());
        for point in points {
            match position_of_id.get(&point.id) {
                Some(&position) => unique[position] = point,
                None => {
                    position_of_id.insert(point.id.clone(), unique.len());
                    unique.push(point);
                }
            }
        }
        let mut staged: Vec<(SlotId, Vec<f32>)> = Vec::with_capacity(unique.len());
        {
            let mut table = self.write_table();
            for point in unique {
                let original = keep_original.then(|| point.vector.clone().into_boxed_slice());
                let entry = PointEntry { id: point.id, payload: point.payload, original };
                let Some(slot) = table.stage(entry) else {
                    for (slot, _) in &staged {
                        table.discard(*slot);
                    }
                    return Err(VectorError::Unavailable(
                        "the collection holds the most points it can".to_owned(),
                    ));
                };
                staged.push((slot, point.vector));
            }
        }
        let items: Vec<(SlotId, &[f32])> =
            staged.iter().map(|(slot, vector)| (*slot, vector.as_slice())).collect();
        let inserted = self.index.upsert_batch(&items);
        let mut table = self.write_table();
        if let Err(error) = inserted {
            for (slot, _) in &staged {
                self.index.remove(*slot);
                table.discard(*slot);
            }
            return Err(engine_error(error, "points."));
        }
        for (slot, _) in &staged {
            if let Some(replaced) = table.publish(*slot) {
                self.index.remove(replaced);
            }
        }
        Ok(count)
    }

    /// Removes the points with `ids`; returns how many existed.
    pub fn apply_delete_ids(&self, ids: &[PointId]) -> u64 {
        let mut table = self.write_table();
        let mut deleted = 0;
        for id in ids {
            if let Some(slot) = table.remove(id) {
                self.index.remove(slot);
                deleted += 1;
            }
        }
        deleted
    }

    /// Removes the points whose payload matches `filter`; returns how many.
    pub fn apply_delete_filter(&self, filter: &Filter) -> u64 {
        let mut table = self.write_table();
        let doomed: Vec<PointId> = table
            .iter()
            .filter(|(_, entry)| filter.matches(entry.payload.as_ref()))
            .map(|(_, entry)| entry.id.clone())
            .collect();
        for id in &doomed {
            if let Some(slot) = table.remove(id) {
                self.index.remove(slot);
            }
        }
        doomed.len() as u64
    }

    /// The point with `id`.
    pub fn get(&self, id: &PointId) -> Option<StoredPoint> {
        let table = self.read_table();
        let slot = table.slot_of(id)?;
        let entry = table.entry(slot)?;
        let vector = self.vector_of(slot, entry)?;
        Some(StoredPoint { id: entry.id.clone(), vector, payload: entry.payload.clone() })
    }

    /// The vector as given: the kept original for cosine, else the engine's copy.
    fn vector_of(&self, slot: SlotId, entry: &PointEntry) -> Option<Vec<f32>> {
        match &entry.original {
            Some(original) => Some(original.to_vec()),
            None => self.index.get(slot),
        }
    }

    /// Calls `visit` with every live point (id, vector as given, payload) while writes wait. A
    /// point whose vector the engine lacks is an internal error: a snapshot without it would
    /// silently lose an acknowledged write, so the caller keeps the log instead.
    pub fn for_each_point(&self, visit: &mut PointVisitor<'_>) -> Result<(), VectorError> {
        let table = self.read_table();
        for (slot, entry) in table.iter() {
            let Some(vector) = self.vector_of(slot, entry) else {
                return Err(VectorError::Internal(format!(
                    "point {} (slot {slot}) has no vector in the index",
                    entry.id
                )));
            };
            visit(&entry.id, &vector, entry.payload.as_ref());
        }
        Ok(())
    }

    /// The `k` best points for each query (already checked), best first, ties by id.
    pub fn search(
        &self,
        queries: &[Vec<f32>],
        options: &SearchOptions,
    ) -> Result<Vec<Vec<ScoredPoint>>, VectorError> {
        let guard = self.read_table();
        let table: &PointTable = &guard;
        let filter = options.filter.as_ref().filter(|filter| !filter.is_empty());
        // Always given: staged slots of a write in progress are in the engine but not current.
        let predicate = |slot: SlotId| {
            table.is_current(slot)
                && table
                    .entry(slot)
                    .is_some_and(|entry| filter.is_none_or(|filter| filter.matches(entry.payload.as_ref())))
        };
        let predicate_ref: Option<&(dyn Fn(SlotId) -> bool + Sync)> = Some(&predicate);
        // One more than k shows whether a tie at the k-th place continues past it.
        let first_fetch = options.k.saturating_add(1);
        let params = SearchParams { k: first_fetch, ef: options.ef, nprobe: options.nprobe };
        let query_slices: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let batches = self
            .index
            .search_batch(&query_slices, &params, predicate_ref)
            .map_err(|error| engine_error(error, ""))?;
        let mut results = Vec::with_capacity(queries.len());
        // Ties past k are fetched up to a bound, so a collection of equal scores cannot turn one
        // search into a scan of everything (and an HNSW candidate list of that size).
        let fetch_limit = options.k.saturating_add(1).saturating_add(MAX_TIE_EXTRA_FETCH).min(table.len());
        for (query, mut hits) in query_slices.iter().zip(batches) {
            let mut fetch = first_fetch;
            while tie_continues(&hits, options.k, fetch) && fetch < fetch_limit {
                fetch = fetch.saturating_mul(2).min(fetch_limit);
                let params = SearchParams { k: fetch, ef: options.ef, nprobe: options.nprobe };
                hits = self
                    .index
                    .search(query, &params, predicate_ref)
                    .map_err(|error| engine_error(error, ""))?;
            }
            results.push(self.finish_hits(table, hits, options));
        }
        Ok(results)
    }

    /// Maps slots to points, orders ties by id, keeps k.
    fn finish_hits(&self, table: &PointTable, hits: Vec<Hit>, options: &SearchOptions) -> Vec<ScoredPoint> {
        let mut found: Vec<(SlotId, &PointEntry, f32)> = hits
            .iter()
            .filter(|hit| table.is_current(hit.slot))
            .filter_map(|hit| Some((hit.slot, table.entry(hit.slot)?, hit.score)))
            .collect();
        let higher_is_better = self.spec.metric.higher_is_better();
        found.sort_by(|left, right| {
            let by_score = left.2.partial_cmp(&right.2).unwrap_or(Ordering::Equal);
            let by_score = if higher_is_better { by_score.reverse() } else { by_score };
            by_score.then_with(|| left.1.id.cmp(&right.1.id))
        });
        found.truncate(options.k);
        found
            .into_iter()
            .map(|(slot, entry, score)| ScoredPoint {
                id: entry.id.clone(),
                score,
                payload: if options.with_payload { entry.payload.clone() } else { None },
                vector: if options.with_vector { self.vector_of(slot, entry) } else { None },
            })
            .collect()
    }
}

/// Whether `hits` (asked for `fetch`) may leave out points that tie with the k-th hit: the
/// engine filled the request and the hit after the k-th scores the same. Ties are then resolved
/// by id only once the whole tied group is fetched.
fn tie_continues(hits: &[Hit], k: usize, fetch: usize) -> bool {
    if hits.len() < fetch || hits.len() <= k || k == 0 {
        return false;
    }
    hits[hits.len() - 1].score == hits[k - 1].score
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;
    use sutazai_vector_index::IndexConfig;

    use super::*;
    use crate::domain::filter::{Condition, KeyPath};

    fn state(metric: Metric, index: IndexConfig) -> CollectionState {
        CollectionState::new(CollectionSpec::new(2, metric, Some(index)).unwrap()).unwrap()
    }

    fn point(id: PointId, vector: [f32; 2], payload: Option<Value>) -> NewPoint {
        NewPoint {
            id,
            vector: vector.to_vec(),
            payload: payload.and_then(|value| value.as_object().cloned()),
        }
    }

    fn ids(hits: &[ScoredPoint]) -> Vec<PointId> {
        hits.iter().map(|hit| hit.id.clone()).collect()
    }

    #[test]
    fn upsert_replace_delete_and_get() {
        let state = state(Metric::L2, IndexConfig::Flat);
        state
            .apply_upsert(vec![
                point(PointId::Num(1), [0.0, 0.0], Some(json!({"a": 1}))),
                point(PointId::Str("1".into()), [1.0, 0.0], None),
                point(PointId::Num(1), [5.0, 5.0], Some(json!({"a": 2}))),
            ])
            .unwrap();
        assert_eq!(state.len(), 2);
        let stored = state.get(&PointId::Num(1)).unwrap();
        assert_eq!(stored.vector, [5.0, 5.0]);
        assert_eq!(stored.payload, json!({"a": 2}).as_object().cloned());
        assert_eq!(state.apply_delete_ids(&[PointId::Str("1".into()), PointId::Str("nope".into())]), 1);
        assert!(state.get(&PointId::Str("1".into())).is_none());
        state.apply_upsert(vec![point(PointId::Num(2), [1.0, 1.0], None)]).unwrap();
        let hits =
            state.search(&[vec![1.0, 1.0]], &SearchOptions { k: 5, ..SearchOptions::default() }).unwrap();
        assert_eq!(ids(&hits[0]), [PointId::Num(2), PointId::Num(1)]);
        assert_eq!(hits[0][0].score, 0.0);
        assert_eq!(hits[0][1].score, 32.0, "squared distance from (1,1) to (5,5)");
    }

    #[test]
    fn cosine_keeps_the_vector_as_given() {
        let state = state(Metric::Cosine, IndexConfig::Flat);
        state.apply_upsert(vec![point(PointId::Num(1), [3.0, 4.0], None)]).unwrap();
        assert_eq!(state.get(&PointId::Num(1)).unwrap().vector, [3.0, 4.0]);
        let hits = state
            .search(&[vec![6.0, 8.0]], &SearchOptions { k: 1, with_vector: true, ..SearchOptions::default() })
            .unwrap();
        assert!((hits[0][0].score - 1.0).abs() < 1e-6);
        assert_eq!(hits[0][0].vector.as_deref(), Some(&[3.0, 4.0][..]));
    }

    #[test]
    fn ties_are_ordered_by_id_even_past_k() {
        let state = state(Metric::L2, IndexConfig::Flat);
        // Slots follow insertion, so the engine's slot order is the reverse of id order here.
        let points: Vec<NewPoint> =
            (0..20_u64).rev().map(|number| point(PointId::Num(number), [1.0, 1.0], None)).collect();
        state.apply_upsert(points).unwrap();
        state.apply_upsert(vec![point(PointId::Str("near".into()), [0.0, 0.0], None)]).unwrap();
        let hits =
            state.search(&[vec![0.0, 0.0]], &SearchOptions { k: 4, ..SearchOptions::default() }).unwrap();
        assert_eq!(
            ids(&hits[0]),
            [PointId::Str("near".into()), PointId::Num(0), PointId::Num(1), PointId::Num(2)]
        );
    }

    #[test]
    fn filtered_search_fills_k_and_delete_by_filter_counts() {
        let state = state(Metric::L2, IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 });
        let points: Vec<NewPoint> = (0..1000_u64)
            .map(|number| {
                let angle = number as f32 * 0.01;
                point(
                    PointId::Num(number),
                    [angle.cos() * number as f32, angle.sin()],
                    Some(json!({"group": number % 100})),
                )
            })
            .collect();
        state.apply_upsert(points).unwrap();
        let filter = Filter {
            must: vec![Condition::In {
                key: KeyPath::parse("group").unwrap(),
                values: vec![json!(7), json!(8)],
            }],
            ..Filter::default()
        };
        let options = SearchOptions {
            k: 10,
            filter: Some(filter.clone()),
            with_payload: true,
            ..SearchOptions::default()
        };
        let hits = state.search(&[vec![0.0, 0.0]], &options).unwrap();
        assert_eq!(hits[0].len(), 10);
        assert!(hits[0].iter().all(|hit| filter.matches(hit.payload.as_ref())));
        assert_eq!(state.apply_delete_filter(&filter), 20);
        assert_eq!(state.len(), 980);
        let hits = state.search(&[vec![0.0, 0.0]], &options).unwrap();
        assert!(hits[0].is_empty());
    }

    #[test]
    fn piled_up_tombstones_call_for_a_compaction() {
        let state = state(Metric::L2, IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 });
        let points: Vec<NewPoint> =
            (0..2000_u64).map(|number| point(PointId::Num(number), [number as f32, 1.0], None)).collect();
        state.apply_upsert(points).unwrap();
        assert!(!state.needs_compaction());
        let doomed: Vec<PointId> = (0..1500_u64).map(PointId::Num).collect();
        assert_eq!(state.apply_delete_ids(&doomed), 1500);
        assert!(state.needs_compaction());
        state.compact();
        assert!(!state.needs_compaction());
        let hits =
            state.search(&[vec![1999.0, 1.0]], &SearchOptions { k: 2, ..SearchOptions::default() }).unwrap();
        assert_eq!(ids(&hits[0]), [PointId::Num(1999), PointId::Num(1998)]);
    }

    #[test]
    fn searches_never_see_half_applied_replacements() {
        let state = std::sync::Arc::new(state(
            Metric::L2,
            IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 },
        ));
        // The payload records the vector's first component, so a hit whose payload belongs to
        // another version of the point than the scored vector shows.
        let version = |round: u32| -> Vec<NewPoint> {
            (0..300_u64)
                .map(|number| {
                    let first = (round * 1000) as f32 + number as f32;
                    point(PointId::Num(number), [first, 0.0], Some(json!({"first": first})))
                })
                .collect()
        };
        state.apply_upsert(version(0)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let searcher = {
            let state = std::sync::Arc::clone(&state);
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let options = SearchOptions { k: 20, with_payload: true, ..SearchOptions::default() };
                let mut searches = 0_u32;
                while !stop.load(std::sync::atomic::Ordering::Acquire) || searches == 0 {
                    let query = [(searches % 5) as f32 * 1000.0, 0.0];
                    let hits = state.search(&[query.to_vec()], &options).unwrap();
                    let rounds: std::collections::BTreeSet<u64> = hits[0]
                        .iter()
                        .map(|hit| {
                            let first = hit.payload.as_ref().unwrap()["first"].as_f64().unwrap() as f32;
                            let expected = (first - query[0]).powi(2);
                            assert_eq!(hit.score, expected, "payload {first} scored as another vector");
                            (first / 1000.0) as u64
                        })
                        .collect();
                    assert_eq!(rounds.len(), 1, "one search saw two versions of the batch: {rounds:?}");
                    assert_eq!(hits[0].len(), 20);
                    searches += 1;
                }
            })
        };
        for round in 1..5 {
            state.apply_upsert(version(round)).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        searcher.join().unwrap();
        assert_eq!(state.len(), 300);
        assert_eq!(state.get(&PointId::Num(7)).unwrap().vector, [4007.0, 0.0]);
    }

    #[test]
    fn vectors_are_checked() {
        let state = state(Metric::L2, IndexConfig::Flat);
        let error =
            state.check_points("points", &[point(PointId::Num(1), [0.0, f32::NAN], None)]).unwrap_err();
        assert_eq!(error.to_string(), "points[0].vector: component 1 is not a finite number");
        let error = state.check_vector("queries[2].vector", &[1.0]).unwrap_err();
        assert_eq!(error.to_string(), "queries[2].vector: expected 2 components, got 1");
    }
}
