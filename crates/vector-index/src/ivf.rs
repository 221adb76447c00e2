//! IVF-Flat: k-means centroids partition the vectors into inverted lists; a query scans the lists of
//! its `nprobe` nearest centroids exactly.
//!
//! Until trained, everything lives in one list that every query scans, so answers are exact (the
//! same as `Flat`). Training runs automatically inside the upsert that brings the index to the
//! training threshold: k-means++ and Lloyd on a sample of at most 256 points per list, then every
//! point is reassigned. Later points go to their nearest centroid; `compact` retrains on the data
//! as it is then.
//!
//! One `RwLock` guards the lists: an upsert holds it exclusively for a row copy, a search holds it
//! shared for one query. Distances to centroids are computed before the lock is taken (against a
//! snapshot whose generation is checked under the lock), and training's heavy parts (k-means,
//! reassignment) run on copies with no lock held, so rayon never runs while a lock is held.
//!
//! Points are assigned and probed by L2 for L2 and cosine, and by inner product for inner product
//! (as FAISS does), so a query equal to a stored vector always probes that vector's list first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use crate::distance::DistanceFn;
use crate::kmeans;
use crate::rng::SplitMix64;
use crate::scan::{BlockScan, SCAN_BLOCK_ROWS};
use crate::sync::{read, write};
use crate::topk::{Neighbor, TopK};
use crate::{SlotFilter, SlotId};

/// Most points k-means sees per centroid (FAISS's default cap): more only slows training.
const MAX_TRAINING_POINTS_PER_LIST: usize = 256;

/// Fewest points trained on per centroid, and so the default training threshold is
/// `max(39 * nlist, MIN_TRAINING_POINTS)` (39 is FAISS's warning threshold).
pub(crate) const MIN_TRAINING_POINTS_PER_LIST: usize = 39;
pub(crate) const MIN_TRAINING_POINTS: usize = 1000;

const NO_LIST: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Location {
    list: u32,
    position: u32,
}

const ABSENT: Location = Location { list: NO_LIST, position: 0 };

#[derive(Debug, Default)]
struct InvertedList {
    slots: Vec<SlotId>,
    /// `slots.len() * dimension` floats, row-major.
    vectors: Vec<f32>,
}

#[derive(Debug)]
struct IvfState {
    /// `nlist * dimension` floats once trained; empty before.
    centroids: Arc<Vec<f32>>,
    /// Bumped whenever `centroids` change; an assignment computed against an older generation is
    /// recomputed under the lock.
    generation: u64,
    /// Bumped on every mutation; lets training apply a reassignment computed off-lock only if
    /// nothing changed meanwhile.
    version: u64,
    /// One list until trained, `nlist` after.
    lists: Vec<InvertedList>,
    /// By slot.
    locations: Vec<Location>,
    live: usize,
}

/// The IVF-Flat index.
#[derive(Debug)]
pub(crate) struct IvfIndex {
    dimension: usize,
    distance: DistanceFn,
    coarse: DistanceFn,
    nlist: usize,
    nprobe: usize,
    train_threshold: usize,
    seed: u64,
    state: RwLock<IvfState>,
    /// Held while training; a second trainer returns at once instead of waiting.
    training: Mutex<()>,
    /// Mirrors `IvfState::live` so `len` needs no lock.
    live: AtomicUsize,
}

impl IvfState {
    fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    fn location(&self, slot: SlotId) -> Location {
        self.locations.get(slot as usize).copied().unwrap_or(ABSENT)
    }

    fn detach(&mut self, slot: SlotId, dimension: usize) -> bool {
        let location = self.location(slot);
        if location.list == NO_LIST {
            return false;
        }
        let list = &mut self.lists[location.list as usize];
        let position = location.position as usize;
        let last = list.slots.len() - 1;
        list.slots.swap_remove(position);
        if position != last {
            // move the last row into the hole and repoint its slot
            let (head, tail) = list.vectors.split_at_mut(last * dimension);
            head[position * dimension..(position + 1) * dimension].copy_from_slice(&tail[..dimension]);
            let moved = list.slots[position];
            self.locations[moved as usize].position = position as u32;
        }
        list.vectors.truncate(last * dimension);
        self.locations[slot as usize] = ABSENT;
        self.live -= 1;
        self.version += 1;
        true
    }

    fn attach(&mut self, slot: SlotId, vector: &[f32], list_index: u32, dimension: usize) {
        self.detach(slot, dimension);
        let list = &mut self.lists[list_index as usize];
        let position = list.slots.len() as u32;
        list.slots.push(slot);
        list.vectors.extend_from_slice(vector);
        if self.locations.len() <= slot as usize {
            self.locations.resize(slot as usize + 1, ABSENT);
        }
        self.locations[slot as usize] = Location { list: list_index, position };
        self.live += 1;
        self.version += 1;
    }

    fn vector(&self, slot: SlotId, dimension: usize) -> Option<&[f32]> {
        let location = self.location(slot);
        if location.list == NO_LIST {
            return None;
        }
        let position = location.position as usize;
        Some(&self.lists[location.list as usize].vectors[position * dimension..(position + 1) * dimension])
    }
}

impl IvfIndex {
    pub(crate) fn new(
        dimension: usize,
        distance: DistanceFn,
        coarse: DistanceFn,
        nlist: usize,
        nprobe: usize,
        train_threshold: Option<usize>,
        seed: u64,
    ) -> Self {
        let train_threshold =
            train_threshold.unwrap_or((MIN_TRAINING_POINTS_PER_LIST * nlist).max(MIN_TRAINING_POINTS));
        Self {
            dimension,
            distance,
            coarse,
            nlist,
            nprobe,
            train_threshold,
            seed,
            state: RwLock::new(IvfState {
                centroids: Arc::new(Vec::new()),
                generation: 0,
                version: 0,
                lists: vec![InvertedList::default()],
                locations: Vec::new(),
                live: 0,
            }),
            training: Mutex::new(()),
            live: AtomicUsize::new(0),
        }
    }

    pub(crate) fn is_trained(&self) -> bool {
        read(&self.state).is_trained()
    }

    fn list_for(&self, centroids: &[f32], vector: &[f32]) -> u32 {
        if centroids.is_empty() {
            return 0;
        }
        kmeans::nearest_centroid(vector, centroids, self.dimension, self.coarse)
    }

    fn centroid_snapshot(&self) -> (Arc<Vec<f32>>, u64) {
        let state = read(&self.state);
        (Arc::clone(&state.centroids), state.generation)
    }

    /// Applies prepared vectors; `lists[i]` was computed against `generation`.
    fn apply(&self, items: &[(SlotId, Vec<f32>)], lists: &[u32], generation: u64) {
        let mut state = write(&self.state);
        let stale = state.generation != generation;
        let centroids = Arc::clone(&state.centroids);
        for ((slot, vector), list) in items.iter().zip(lists) {
            let list = if stale { self.list_for(&centroids, vector) } else { *list };
            state.attach(*slot, vector, list, self.dimension);
        }
        self.live.store(state.live, Ordering::Relaxed);
    }

    pub(crate) fn upsert_batch(&self, items: &[(SlotId, Vec<f32>)]) {
        let (centroids, generation) = self.centroid_snapshot();
        let lists: Vec<u32> = if items.len() > 64 {
            items.par_iter().map(|(_, vector)| self.list_for(&centroids, vector)).collect()
        } else {
            items.iter().map(|(_, vector)| self.list_for(&centroids, vector)).collect()
        };
        self.apply(items, &lists, generation);
        if centroids.is_empty() && self.len() >= self.train_threshold {
            self.train();
        }
    }

    pub(crate) fn remove(&self, slot: SlotId) -> bool {
        let mut state = write(&self.state);
        let removed = state.detach(slot, self.dimension);
        self.live.store(state.live, Ordering::Relaxed);
        removed
    }

    pub(crate) fn get(&self, slot: SlotId) -> Option<Vec<f32>> {
        read(&self.state).vector(slot, self.dimension).map(<[f32]>::to_vec)
    }

    pub(crate) fn contains(&self, slot: SlotId) -> bool {
        read(&self.state).location(slot).list != NO_LIST
    }

    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let state = read(&self.state);
        let lists: usize = state
            .lists
            .iter()
            .map(|list| {
                std::mem::size_of::<InvertedList>()
                    + list.slots.capacity() * std::mem::size_of::<SlotId>()
                    + list.vectors.capacity() * std::mem::size_of::<f32>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + state.centroids.capacity() * std::mem::size_of::<f32>()
            + state.locations.capacity() * std::mem::size_of::<Location>()
            + lists
    }

    /// Trains on a sample and reassigns every point. Does nothing while another training runs or
    /// while there are fewer points than lists.
    pub(crate) fn train(&self) {
        let Ok(_training) = self.training.try_lock() else {
            return;
        };
        let Some(sample) = self.training_sample() else {
            return;
        };
        let centroids = kmeans::train(&sample, self.dimension, self.nlist, self.seed);
        self.reassign_all(Arc::new(centroids));
    }

    fn training_sample(&self) -> Option<Vec<f32>> {
        let state = read(&self.state);
        if state.live < self.nlist {
            return None;
        }
        let mut rows: Vec<&[f32]> =
            state.lists.iter().flat_map(|list| list.vectors.chunks_exact(self.dimension)).collect();
        let sample_size = rows.len().min(self.nlist * MAX_TRAINING_POINTS_PER_LIST);
        // partial Fisher-Yates: the first `sample_size` rows become a uniform sample
        let mut rng = SplitMix64::new(self.seed ^ state.live as u64);
        for index in 0..sample_size {
            let pick = index + rng.below(rows.len() - index);
            rows.swap(index, pick);
        }
        Some(rows[..sample_size].concat())
    }

    /// Rebuilds the lists around `centroids`. Assignments are computed in parallel on a copy of the
    /// points with no lock held; if anything changed meanwhile they are recomputed under the lock.
    fn reassign_all(&self, centroids: Arc<Vec<f32>>) {
        let (version, slots, vectors) = {
            let state = read(&self.state);
            let slots: Vec<SlotId> = state.lists.iter().flat_map(|list| list.slots.iter().copied()).collect();
            let vectors: Vec<f32> =
                state.lists.iter().flat_map(|list| list.vectors.iter().copied()).collect();
            (state.version, slots, vectors)
        };
        let assignments = kmeans::assign_all(&vectors, self.dimension, &centroids, self.coarse);
        let mut state = write(&self.state);
        let (slots, vectors, assignments) = if state.version == version {
            (slots, vectors, assignments)
        } else {
            let slots: Vec<SlotId> = state.lists.iter().flat_map(|list| list.slots.iter().copied()).collect();
            let vectors: Vec<f32> =
                state.lists.iter().flat_map(|list| list.vectors.iter().copied()).collect();
            let assignments = vectors
                .chunks_exact(self.dimension)
                .map(|vector| self.list_for(&centroids, vector))
                .collect();
            (slots, vectors, assignments)
        };
        let mut counts = vec![0usize; self.nlist];
        for list in &assignments {
            counts[*list as usize] += 1;
        }
        state.lists = counts
            .iter()
            .map(|count| InvertedList {
                slots: Vec::with_capacity(*count),
                vectors: Vec::with_capacity(*count * self.dimension),
            })
            .collect();
        state.live = 0;
        state.locations.iter_mut().for_each(|location| *location = ABSENT);
        for ((slot, vector), list) in slots.iter().zip(vectors.chunks_exact(self.dimension)).zip(&assignments)
        {
            state.attach(*slot, vector, *list, self.dimension);
        }
        state.centroids = centroids;
        state.generation += 1;
        self.live.store(state.live, Ordering::Relaxed);
    }

    /// Retrains on the current data (once there is enough of it) and drops unused capacity.
    pub(crate) fn compact(&self) {
        if self.is_trained() || self.len() >= self.train_threshold {
            self.train();
        }
        let mut state = write(&self.state);
        for list in &mut state.lists {
            list.slots.shrink_to_fit();
            list.vectors.shrink_to_fit();
        }
    }

    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        nprobe: Option<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Neighbor> {
        if k == 0 {
            return Vec::new();
        }
        let nprobe = nprobe.unwrap_or(self.nprobe).max(1);
        let state = read(&self.state);
        let mut top = TopK::new(k);
        let mut scan = BlockScan::default();
        if !state.is_trained() {
            self.scan_list(query, &state.lists[0], filter, &mut scan, &mut top);
            return top.into_sorted();
        }
        let mut order: Vec<(f32, u32)> = state
            .centroids
            .chunks_exact(self.dimension)
            .enumerate()
            .map(|(list, centroid)| (self.coarse.distance(query, centroid), list as u32))
            .collect();
        if let Some(filter) = filter
            && self.estimate_matches(&state, filter) * self.nlist < state.live * nprobe.min(self.nlist)
        {
            // Fewer points match than the probed lists would hold: scanning every list, filter
            // first, computes fewer distances and is exact.
            for list in &state.lists {
                self.scan_list(query, list, Some(filter), &mut scan, &mut top);
            }
            return top.into_sorted();
        }
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Probe `nprobe` lists, then keep widening while fewer than k hits were found: a selective
        // filter (or tiny lists) must not leave the result short while matching points exist.
        for (probed, (_, list)) in order.iter().enumerate() {
            if probed >= nprobe && top.is_full() {
                break;
            }
            self.scan_list(query, &state.lists[*list as usize], filter, &mut scan, &mut top);
        }
        top.into_sorted()
    }

    /// Estimated number of points passing `filter`, from about 256 evenly spaced stored points.
    fn estimate_matches(&self, state: &IvfState, filter: &SlotFilter<'_>) -> usize {
        const SAMPLE: usize = 256;
        let step = (state.live / SAMPLE).max(1);
        let mut sampled = 0usize;
        let mut matched = 0usize;
        let mut skip = 0usize;
        for list in &state.lists {
            let mut position = skip;
            while position < list.slots.len() {
                sampled += 1;
                if filter(list.slots[position]) {
                    matched += 1;
                }
                position += step;
            }
            skip = position - list.slots.len();
        }
        if sampled == 0 {
            return 0;
        }
        matched * state.live / sampled
    }

    fn scan_list(
        &self,
        query: &[f32],
        list: &InvertedList,
        filter: Option<&SlotFilter<'_>>,
        scan: &mut BlockScan,
        top: &mut TopK,
    ) {
        let mut block_start = 0;
        while block_start < list.slots.len() {
            let block_end = (block_start + SCAN_BLOCK_ROWS).min(list.slots.len());
            scan.admitted.clear();
            for (row, slot) in list.slots[block_start..block_end].iter().enumerate() {
                if filter.is_none_or(|filter| filter(*slot)) {
                    scan.admitted.push((row, *slot));
                }
            }
            let rows = &list.vectors[block_start * self.dimension..block_end * self.dimension];
            scan.push_admitted(self.distance, query, rows, top);
            block_start = block_end;
        }
    }

    /// Queries in parallel; each takes the read lock for itself.
    pub(crate) fn search_batch(
        &self,
        queries: &[&[f32]],
        k: usize,
        nprobe: Option<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Vec<Neighbor>> {
        queries.par_iter().map(|query| self.search(query, k, nprobe, filter)).collect()
    }
}
