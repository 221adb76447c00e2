//! Exact search: vectors stored by slot in fixed-size chunks and scanned in full.
//!
//! Row `slot % CHUNK_ROWS` of chunk `slot / CHUNK_ROWS` holds the vector, so slots (dense, reused
//! by the service) need no map and a replaced vector is overwritten in place. Each chunk has its own
//! lock: an upsert blocks only scans of its chunk, and only for one row copy. The chunk list has an
//! outer lock taken exclusively only to append chunks; a search copies the list of chunk handles and
//! lets go of it, so no lock is held while rayon runs (a thread waiting in rayon may run another
//! task that takes the same lock, which deadlocks on a re-entered `RwLock` with a writer queued).
//!
//! A batch of queries is scanned as a blocked computation: a tile of queries walks the rows in
//! blocks small enough to stay in L2, so each stored vector is read from memory once per tile
//! instead of once per query. Every (query, row) pair still goes through the same distance kernel
//! as a single search, so batched and single results are bit-identical.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::config::Metric;
use crate::distance::{DistanceFn, kernels, squared_norm};
use crate::scan::{BlockScan, SCAN_BLOCK_ROWS, ScreenedBlock, with_screener};
use crate::simd::{PANEL_ROWS, ScreenFn};
use crate::sync::{read, write};
use crate::topk::{Neighbor, TopK};
use crate::{SlotFilter, SlotId};

/// Rows per chunk: large enough that per-chunk locking and task overhead vanish in a scan, small
/// enough that a sparse slot range does not allocate much.
const CHUNK_ROWS: usize = 1024;

/// Bytes of stored vectors one block of a batched scan covers; a tile of queries re-reads them
/// from L2 rather than from memory.
const BLOCK_BYTES: usize = 256 * 1024;

/// Most queries scanned together in a batch tile: each block of stored rows is read (and, when
/// screening, packed) once per tile, so larger tiles amortize more; their vectors stay in L2.
const QUERY_TILE: usize = 64;

/// A single query's scan is split across threads once it covers this many floats (1 MiB): below
/// that, task start-up costs more than the scan.
const PARALLEL_SCAN_FLOATS: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Chunk {
    /// `live.len() * dimension` floats, row-major; grows to the highest row written.
    vectors: Vec<f32>,
    /// `|x|^2` per row, for screening batched scans.
    norms: Vec<f32>,
    live: Vec<bool>,
}

/// Brute-force index over slots.
#[derive(Debug)]
pub(crate) struct FlatIndex {
    dimension: usize,
    distance: DistanceFn,
    /// The batched-scan screening kernel, where the CPU has one.
    screen: Option<ScreenFn>,
    l2: bool,
    chunks: RwLock<Vec<Arc<RwLock<Chunk>>>>,
    live_count: AtomicUsize,
}

fn chunk_and_row(slot: SlotId) -> (usize, usize) {
    let slot = slot as usize;
    (slot / CHUNK_ROWS, slot % CHUNK_ROWS)
}

impl FlatIndex {
    pub(crate) fn new(dimension: usize, metric: Metric) -> Self {
        Self {
            dimension,
            distance: DistanceFn::for_metric(metric),
            screen: kernels().screen,
            l2: metric == Metric::L2,
            chunks: RwLock::new(Vec::new()),
            live_count: AtomicUsize::new(0),
        }
    }

    /// Stores `vector` (already validated and, for cosine, normalized) at `slot`.
    pub(crate) fn upsert(&self, slot: SlotId, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dimension);
        let (chunk_index, row) = chunk_and_row(slot);
        self.ensure_chunks(chunk_index + 1);
        let chunk = Arc::clone(&read(&self.chunks)[chunk_index]);
        let mut chunk = write(&chunk);
        if chunk.live.len() <= row {
            chunk.live.resize(row + 1, false);
            chunk.norms.resize(row + 1, 0.0);
            chunk.vectors.resize((row + 1) * self.dimension, 0.0);
        }
        chunk.vectors[row * self.dimension..(row + 1) * self.dimension].copy_from_slice(vector);
        chunk.norms[row] = squared_norm(vector);
        if !chunk.live[row] {
            chunk.live[row] = true;
            self.live_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ensure_chunks(&self, count: usize) {
        if read(&self.chunks).len() >= count {
            return;
        }
        let mut chunks = write(&self.chunks);
        while chunks.len() < count {
            chunks.push(Arc::new(RwLock::new(Chunk::default())));
        }
    }

    pub(crate) fn remove(&self, slot: SlotId) -> bool {
        let (chunk_index, row) = chunk_and_row(slot);
        let Some(chunk) = self.chunk(chunk_index) else {
            return false;
        };
        let mut chunk = write(&chunk);
        match chunk.live.get_mut(row) {
            Some(live) if *live => {
                *live = false;
                self.live_count.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn get(&self, slot: SlotId) -> Option<Vec<f32>> {
        let (chunk_index, row) = chunk_and_row(slot);
        let chunk = self.chunk(chunk_index)?;
        let chunk = read(&chunk);
        if !chunk.live.get(row).copied().unwrap_or(false) {
            return None;
        }
        Some(chunk.vectors[row * self.dimension..(row + 1) * self.dimension].to_vec())
    }

    pub(crate) fn contains(&self, slot: SlotId) -> bool {
        let (chunk_index, row) = chunk_and_row(slot);
        self.chunk(chunk_index).is_some_and(|chunk| read(&chunk).live.get(row).copied().unwrap_or(false))
    }

    fn chunk(&self, chunk_index: usize) -> Option<Arc<RwLock<Chunk>>> {
        read(&self.chunks).get(chunk_index).cloned()
    }

    /// The current chunk handles; the outer lock is released on return.
    fn chunk_handles(&self) -> Vec<Arc<RwLock<Chunk>>> {
        read(&self.chunks).clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.live_count.load(Ordering::Relaxed)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let chunks = read(&self.chunks);
        let mut bytes = std::mem::size_of::<Self>()
            + chunks.capacity()
                * (std::mem::size_of::<Arc<RwLock<Chunk>>>() + std::mem::size_of::<RwLock<Chunk>>());
        for chunk in chunks.iter() {
            let chunk = read(chunk);
            bytes += (chunk.vectors.capacity() + chunk.norms.capacity()) * std::mem::size_of::<f32>()
                + chunk.live.capacity();
        }
        bytes
    }

    /// The `k` nearest live slots passing `filter`, best first, exact.
    pub(crate) fn search(&self, query: &[f32], k: usize, filter: Option<&SlotFilter<'_>>) -> Vec<Neighbor> {
        if k == 0 {
            return Vec::new();
        }
        let chunks = self.chunk_handles();
        let stored_floats = chunks.len() * CHUNK_ROWS * self.dimension;
        if stored_floats < PARALLEL_SCAN_FLOATS || rayon::current_num_threads() == 1 {
            let mut top = TopK::new(k);
            for (chunk_index, chunk) in chunks.iter().enumerate() {
                self.scan_chunk(query, &read(chunk), chunk_index, filter, &mut top);
            }
            return top.into_sorted();
        }
        // Per-chunk top-k lists merged by the same total order give exactly the sequential result.
        chunks
            .par_iter()
            .enumerate()
            .fold(
                || TopK::new(k),
                |mut top, (chunk_index, chunk)| {
                    self.scan_chunk(query, &read(chunk), chunk_index, filter, &mut top);
                    top
                },
            )
            .reduce(
                || TopK::new(k),
                |mut left, right| {
                    left.merge(right);
                    left
                },
            )
            .into_sorted()
    }

    fn scan_chunk(
        &self,
        query: &[f32],
        chunk: &Chunk,
        chunk_index: usize,
        filter: Option<&SlotFilter<'_>>,
        top: &mut TopK,
    ) {
        let mut scan = BlockScan::default();
        let mut block_start = 0;
        while block_start < chunk.live.len() {
            let block_end = (block_start + SCAN_BLOCK_ROWS).min(chunk.live.len());
            self.admit_rows(&mut scan, chunk, chunk_index, block_start..block_end, filter);
            let rows = &chunk.vectors[block_start * self.dimension..block_end * self.dimension];
            scan.push_admitted(self.distance, query, rows, top);
            block_start = block_end;
        }
    }

    /// Fills `scan.admitted` with the live rows of `range` that pass `filter`, numbered from the
    /// start of the range.
    fn admit_rows(
        &self,
        scan: &mut BlockScan,
        chunk: &Chunk,
        chunk_index: usize,
        range: std::ops::Range<usize>,
        filter: Option<&SlotFilter<'_>>,
    ) {
        let first_slot = chunk_index * CHUNK_ROWS;
        scan.admitted.clear();
        for row in range.clone() {
            let slot = (first_slot + row) as SlotId;
            if chunk.live[row] && filter.is_none_or(|filter| filter(slot)) {
                scan.admitted.push((row - range.start, slot));
            }
        }
    }

    /// One exact result list per query. Few queries: each is split across threads like a single
    /// search. Many: query tiles run in parallel, each tile scanning the rows block by block.
    pub(crate) fn search_batch(
        &self,
        queries: &[&[f32]],
        k: usize,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Vec<Neighbor>> {
        if k == 0 {
            return vec![Vec::new(); queries.len()];
        }
        let threads = rayon::current_num_threads();
        if queries.len() < 2 * threads {
            return queries.iter().map(|query| self.search(query, k, filter)).collect();
        }
        // Smaller tiles when there are few queries, so every thread gets work.
        let tile = queries.len().div_ceil(2 * threads).clamp(1, QUERY_TILE);
        let chunks = self.chunk_handles();
        queries
            .par_chunks(tile)
            .flat_map_iter(|tile_queries| self.scan_tile(&chunks, tile_queries, k, filter))
            .collect()
    }

    fn scan_tile(
        &self,
        chunks: &[Arc<RwLock<Chunk>>],
        queries: &[&[f32]],
        k: usize,
        filter: Option<&SlotFilter<'_>>,
    ) -> Vec<Vec<Neighbor>> {
        let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k)).collect();
        let block_rows = (BLOCK_BYTES / (self.dimension * std::mem::size_of::<f32>())).clamp(8, CHUNK_ROWS);
        if let Some(screen) = self.screen
            && queries.len() > 1
        {
            self.scan_tile_screened(screen, chunks, queries, filter, block_rows, &mut tops);
            return tops.into_iter().map(TopK::into_sorted).collect();
        }
        // admission (liveness, filter) is decided once per block for the whole tile
        let mut scan = BlockScan::default();
        for (chunk_index, chunk) in chunks.iter().enumerate() {
            let chunk = read(chunk);
            let rows = chunk.live.len();
            let mut block_start = 0;
            while block_start < rows {
                let block_end = (block_start + block_rows).min(rows);
                self.admit_rows(&mut scan, &chunk, chunk_index, block_start..block_end, filter);
                let block = &chunk.vectors[block_start * self.dimension..block_end * self.dimension];
                for (query, top) in queries.iter().zip(tops.iter_mut()) {
                    scan.push_admitted(self.distance, query, block, top);
                }
                block_start = block_end;
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }

    /// `scan_tile` with screening: blocks are whole panels, rows that cannot enter a query's top
    /// k are rejected GEMM-style, the rest are scored exactly (same results, less work).
    fn scan_tile_screened(
        &self,
        screen: ScreenFn,
        chunks: &[Arc<RwLock<Chunk>>],
        queries: &[&[f32]],
        filter: Option<&SlotFilter<'_>>,
        block_rows: usize,
        tops: &mut [TopK],
    ) {
        let block_rows = (block_rows / PANEL_ROWS).max(1) * PANEL_ROWS;
        let query_norms: Vec<f32> = queries.iter().map(|query| squared_norm(query)).collect();
        let mut scan = BlockScan::default();
        with_screener(|screener| {
            for (chunk_index, chunk) in chunks.iter().enumerate() {
                let chunk = read(chunk);
                let rows = chunk.live.len();
                let mut block_start = 0;
                while block_start < rows {
                    let block_end = (block_start + block_rows).min(rows);
                    self.admit_rows(&mut scan, &chunk, chunk_index, block_start..block_end, filter);
                    let block = ScreenedBlock {
                        screen,
                        l2: self.l2,
                        distance: self.distance,
                        queries,
                        query_norms: &query_norms,
                        rows: &chunk.vectors[block_start * self.dimension..block_end * self.dimension],
                        norms: &chunk.norms[block_start..block_end],
                        admitted: &scan.admitted,
                    };
                    screener.scan(&block, tops);
                    block_start = block_end;
                }
            }
        });
    }
}
