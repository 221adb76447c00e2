//! Exact scans of contiguous rows (Flat chunks, IVF lists): which rows are admitted (live, passing
//! the filter) is decided first, then their distances are computed with the multi-row kernel when
//! most rows are admitted, or row by row when few are (a selective filter should not pay for
//! rejected rows' distances). Both paths give bit-identical distances.

use std::cell::RefCell;

use crate::SlotId;
use crate::distance::DistanceFn;
use crate::simd::{PANEL_ROWS, SCREEN_QUERIES, ScreenFn, ScreenTask};
use crate::topk::{Neighbor, TopK};

/// Rows whose admission is decided, and distances computed, together.
pub(crate) const SCAN_BLOCK_ROWS: usize = 256;

/// Reusable buffers for scanning blocks of rows.
#[derive(Debug, Default)]
pub(crate) struct BlockScan {
    /// (row within the block, slot) of the admitted rows, ascending.
    pub(crate) admitted: Vec<(usize, SlotId)>,
    distances: Vec<f32>,
}

impl BlockScan {
    /// Offers every admitted row of `rows` (row-major, `query.len()` floats per row) to `top`.
    pub(crate) fn push_admitted(
        &mut self,
        distance: DistanceFn,
        query: &[f32],
        rows: &[f32],
        top: &mut TopK,
    ) {
        let dimension = query.len();
        let (Some(&(first, _)), Some(&(last, _))) = (self.admitted.first(), self.admitted.last()) else {
            return;
        };
        let span = last + 1 - first;
        if self.admitted.len() * 2 >= span {
            self.distances.resize(span, 0.0);
            distance.distances_to_rows(
                query,
                &rows[first * dimension..(last + 1) * dimension],
                &mut self.distances,
            );
            let mut bound = top.bound();
            for &(row, slot) in &self.admitted {
                let distance = self.distances[row - first];
                // `<=`: an equal distance may still win on the slot
                if distance <= bound {
                    top.push(Neighbor { distance, slot });
                    bound = top.bound();
                }
            }
        } else {
            for &(row, slot) in &self.admitted {
                let vector = &rows[row * dimension..(row + 1) * dimension];
                top.push(Neighbor { distance: distance.distance(query, vector), slot });
            }
        }
    }
}

/// Screened scanning of a block for a tile of queries (see [`crate::simd::ScreenTask`]): rows
/// are packed into panels once per block, screened for up to eight queries per kernel call, and
/// only rows that may enter a query's top k get the exact distance. Results are bit-identical to
/// [`BlockScan::push_admitted`].
#[derive(Debug, Default)]
pub(crate) struct Screener {
    panels: Vec<f32>,
    row_norms: Vec<f32>,
    /// Per panel: bit `j` set when row `32 * panel + j` is admitted.
    admitted_bits: Vec<u32>,
    slots: Vec<SlotId>,
    masks: Vec<u32>,
    bounds: Vec<f32>,
}

/// Everything about the block and the tile that the screener needs.
#[derive(Debug)]
pub(crate) struct ScreenedBlock<'a> {
    pub(crate) screen: ScreenFn,
    pub(crate) l2: bool,
    pub(crate) distance: DistanceFn,
    pub(crate) queries: &'a [&'a [f32]],
    pub(crate) query_norms: &'a [f32],
    /// The block's rows, row-major.
    pub(crate) rows: &'a [f32],
    /// `|x|^2` per row of the block.
    pub(crate) norms: &'a [f32],
    /// (row within the block, slot), ascending.
    pub(crate) admitted: &'a [(usize, SlotId)],
}

impl Screener {
    pub(crate) fn scan(&mut self, block: &ScreenedBlock<'_>, tops: &mut [TopK]) {
        let Some(dimension) = block.queries.first().map(|query| query.len()) else {
            return;
        };
        let Some(&(last_row, _)) = block.admitted.last() else {
            return;
        };
        let panel_count = last_row / PANEL_ROWS + 1;
        self.pack(block, dimension, panel_count);
        // Screening and exact scoring both assume `|q - x|^2 <= 2 (|q|^2 + |x|^2)`, so the margin
        // covers (d + 2) roundings of each side with a 4x safety factor: (d + 8) * 2^-20.
        let margin_scale = (dimension + 8) as f32 / (1u32 << 20) as f32;
        let groups = block.queries.chunks(SCREEN_QUERIES).zip(block.query_norms.chunks(SCREEN_QUERIES));
        for (group_index, (queries, query_norms)) in groups.enumerate() {
            let group_tops = &mut tops[group_index * SCREEN_QUERIES..][..queries.len()];
            self.bounds.clear();
            self.bounds.extend(group_tops.iter().map(TopK::bound));
            self.masks.resize(queries.len() * panel_count, 0);
            let task = ScreenTask {
                l2: block.l2,
                queries,
                query_norms,
                bounds: &self.bounds,
                panels: &self.panels[..panel_count * PANEL_ROWS * dimension],
                row_norms: &self.row_norms[..panel_count * PANEL_ROWS],
                margin_scale,
            };
            (block.screen)(&task, &mut self.masks);
            for (query_index, (query, top)) in queries.iter().zip(group_tops.iter_mut()).enumerate() {
                let mut bound = top.bound();
                let masks = &self.masks[query_index * panel_count..][..panel_count];
                for (panel, (mask, admitted)) in masks.iter().zip(&self.admitted_bits).enumerate() {
                    let mut candidates = mask & admitted;
                    while candidates != 0 {
                        let row = panel * PANEL_ROWS + candidates.trailing_zeros() as usize;
                        candidates &= candidates - 1;
                        let vector = &block.rows[row * dimension..(row + 1) * dimension];
                        let distance = block.distance.distance(query, vector);
                        if distance <= bound {
                            top.push(Neighbor { distance, slot: self.slots[row] });
                            bound = top.bound();
                        }
                    }
                }
            }
        }
    }

    /// Packs the block's rows into panels and notes the admitted ones. Lanes past the block's end
    /// and rows that are not admitted keep stale values: their screening results are masked off.
    fn pack(&mut self, block: &ScreenedBlock<'_>, dimension: usize, panel_count: usize) {
        let packed_rows = panel_count * PANEL_ROWS;
        grow(&mut self.panels, packed_rows * dimension);
        grow(&mut self.row_norms, packed_rows);
        grow(&mut self.slots, packed_rows);
        self.admitted_bits.clear();
        self.admitted_bits.resize(panel_count, 0);
        for &(row, slot) in block.admitted {
            self.admitted_bits[row / PANEL_ROWS] |= 1 << (row % PANEL_ROWS);
            self.slots[row] = slot;
        }
        let block_rows = block.norms.len().min(packed_rows);
        self.row_norms[..block_rows].copy_from_slice(&block.norms[..block_rows]);
        // dimension-major within a panel: contiguous writes, and the 32 rows being read stay in L1
        for panel in 0..panel_count {
            let first_row = panel * PANEL_ROWS;
            let lanes = block_rows.saturating_sub(first_row).min(PANEL_ROWS);
            let panel_rows = &block.rows[first_row * dimension..(first_row + lanes) * dimension];
            let packed =
                &mut self.panels[panel * dimension * PANEL_ROWS..(panel + 1) * dimension * PANEL_ROWS];
            for (k, packed_column) in packed.chunks_exact_mut(PANEL_ROWS).enumerate() {
                for (lane, value) in packed_column[..lanes].iter_mut().enumerate() {
                    *value = panel_rows[lane * dimension + k];
                }
            }
        }
    }
}

/// Grows `buffer` to at least `length` without clearing what it holds.
fn grow<T: Clone + Default>(buffer: &mut Vec<T>, length: usize) {
    if buffer.len() < length {
        buffer.resize(length, T::default());
    }
}

thread_local! {
    /// Screening buffers are a few hundred KiB; reusing them per thread avoids an allocation (and
    /// its page faults) per query tile.
    static SCREENER: RefCell<Screener> = RefCell::new(Screener::default());
}

/// Runs `work` with this thread's screener (a fresh one if it is busy).
pub(crate) fn with_screener<R>(work: impl FnOnce(&mut Screener) -> R) -> R {
    SCREENER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut screener) => work(&mut screener),
        Err(_) => work(&mut Screener::default()),
    })
}
