//! The crate's only `unsafe`: AVX-512 and AVX2+FMA distance kernels chosen at run time, and a cache
//! prefetch hint.
//!
//! Release builds target plain x86-64 (SSE2), so the portable kernels in `distance.rs` vectorize to
//! 4-wide SSE at best; these kernels use 16-wide (AVX-512) or 8-wide FMA (AVX2) registers when the
//! CPU has them, which is 2-4x faster on the scans and graph walks that dominate every search.
//!
//! Soundness rests on one rule: a `#[target_feature]` function is only reachable through
//! [`detect`], which hands out the function pointers after `is_x86_feature_detected!` confirmed the
//! features. The remaining `unsafe` blocks are unaligned loads whose bounds the loop conditions
//! establish. Each kernel keeps several independent accumulators because FMA latency (4 cycles) is
//! longer than its issue interval; the reduction order is fixed, so a kernel returns bit-identical
//! results for the same inputs wherever it is called from (single and batched search agree exactly).

#![allow(unsafe_code)]

use crate::distance::Kernels;

/// A pair kernel that is safe to call. It holds either a plain function or a `#[target_feature]`
/// kernel, and the latter are only wrapped by [`detect`] after the CPU confirmed their features,
/// so calling one never executes an unsupported instruction. Holding the target-feature function
/// itself (rather than a safe wrapper around it) saves a call per distance: wrappers cannot inline
/// code compiled for other features, and the graph search makes millions of these calls.
#[derive(Clone, Copy)]
pub(crate) struct PairKernel(unsafe fn(&[f32], &[f32]) -> f32);

impl std::fmt::Debug for PairKernel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PairKernel")
    }
}

impl PairKernel {
    /// A kernel that needs no CPU feature.
    pub(crate) const fn portable(kernel: fn(&[f32], &[f32]) -> f32) -> Self {
        Self(kernel)
    }

    /// The kernel's result for `a` and `b`; components past the shorter slice are ignored.
    #[inline(always)]
    pub(crate) fn call(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: see the type's docs: a `PairKernel` only holds a plain function or a kernel
        // whose CPU features `detect()` confirmed. The kernels read only `min(a.len(), b.len())`
        // floats of each slice.
        unsafe { (self.0)(a, b) }
    }
}

/// Rows per screening panel (two AVX-512 registers).
pub(crate) const PANEL_ROWS: usize = 32;

/// Queries screened together (two accumulators each, 16 of the 32 registers).
pub(crate) const SCREEN_QUERIES: usize = 8;

/// One screening call: up to [`SCREEN_QUERIES`] queries against blocks of stored rows packed as
/// panels, deciding per (query, row) whether the row could enter the query's current top k.
///
/// Screening computes dot products GEMM-style (one FMA per 16 pairs and dimension, no per-pair
/// horizontal sums), derives the approximate distance `|q|^2 + |x|^2 - 2 q.x` (L2) or `-q.x`, and
/// rejects a row only if `approximate - margin > bound`, where the margin,
/// `margin_scale * (|q|^2 + |x|^2)`, exceeds the combined rounding error of the approximation and
/// of the exact kernel. A rejected row's exact distance is therefore certainly above the bound,
/// and the rows that pass are ranked by the exact kernel: results stay bit-identical to a plain
/// scan while most distances cost a third of the work. NaN or infinite values never reject.
#[derive(Debug)]
pub(crate) struct ScreenTask<'a> {
    pub(crate) l2: bool,
    pub(crate) queries: &'a [&'a [f32]],
    /// `|q|^2` per query.
    pub(crate) query_norms: &'a [f32],
    /// Current admission bound per query (`+inf` while its top k is not full).
    pub(crate) bounds: &'a [f32],
    /// Panel-major: panel `p` holds, for each dimension `k`, rows `32p..32p+32` at
    /// `panels[(p * dimension + k) * 32 ..][..32]`.
    pub(crate) panels: &'a [f32],
    /// `|x|^2` per packed row (a multiple of 32 long).
    pub(crate) row_norms: &'a [f32],
    pub(crate) margin_scale: f32,
}

/// Screening kernel: writes `masks[query * panels + panel]`, bit `j` set when row `32 * panel + j`
/// may enter that query's top k.
pub(crate) type ScreenFn = fn(&ScreenTask<'_>, &mut [u32]);

/// The fastest kernels this CPU supports, or `None` when only the portable ones apply.
pub(crate) fn detect() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Kernels {
                l2_squared: PairKernel(x86::L2_SQUARED_AVX512),
                dot: PairKernel(x86::DOT_AVX512),
                l2_squared_rows: x86::l2_squared_rows_avx512_checked,
                dot_rows: x86::dot_rows_avx512_checked,
                screen: Some(x86::screen_avx512_checked),
                name: "avx512",
            });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Some(Kernels {
                l2_squared: PairKernel(x86::L2_SQUARED_AVX2),
                dot: PairKernel(x86::DOT_AVX2),
                l2_squared_rows: x86::l2_squared_rows_avx2_checked,
                dot_rows: x86::dot_rows_avx2_checked,
                screen: None,
                name: "avx2+fma",
            });
        }
    }
    None
}

/// Hints the CPU to pull the cache line at the start of `value` in. The graph search issues it for
/// a batch of neighbours before touching any of them, so their cache misses overlap instead of
/// queueing one behind the other. A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch is a hint that never faults, and the pointer comes from a live
        // reference. SSE is part of the x86-64 baseline, so no feature check is needed.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

// The kernels index accumulators by (row, block) in plain range loops: the indices spell out
// which operation feeds which accumulator, which is what bit-identical results depend on.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod x86 {
    use std::arch::x86_64::*;

    // The `*_checked` wrappers are the only way to reach the `#[target_feature]` kernels. They are
    // private to this module and handed out by `detect()` only after the feature check.

    macro_rules! checked_rows {
        ($rows:ident, $rows_checked:ident) => {
            pub(super) fn $rows_checked(query: &[f32], rows: &[f32], out: &mut [f32]) {
                assert!(rows.len() >= out.len() * query.len(), "rows too short for out");
                // SAFETY: `detect()` returns this function only when the CPU reports the features
                // `$rows` is compiled for; the assertion gives it the lengths it relies on.
                unsafe { $rows(query, rows, out) }
            }
        };
    }

    checked_rows!(l2_squared_rows_avx512, l2_squared_rows_avx512_checked);
    checked_rows!(dot_rows_avx512, dot_rows_avx512_checked);
    checked_rows!(l2_squared_rows_avx2, l2_squared_rows_avx2_checked);
    checked_rows!(dot_rows_avx2, dot_rows_avx2_checked);

    // The pair kernels as (unsafe) function pointers, for `PairKernel`: `detect()` wraps them only
    // after checking the CPU features.
    pub(super) const L2_SQUARED_AVX512: unsafe fn(&[f32], &[f32]) -> f32 = l2_squared_avx512;
    pub(super) const DOT_AVX512: unsafe fn(&[f32], &[f32]) -> f32 = dot_avx512;
    pub(super) const L2_SQUARED_AVX2: unsafe fn(&[f32], &[f32]) -> f32 = l2_squared_avx2;
    pub(super) const DOT_AVX2: unsafe fn(&[f32], &[f32]) -> f32 = dot_avx2;

    /// Rows a multi-row kernel handles per pass: the query chunk is loaded once for all of them,
    /// and their independent accumulator chains keep the FMA units busy.
    const ROWS_PER_PASS: usize = 4;

    // AVX-512: 16 lanes; the last len % 16 floats go through one masked step into the second
    // accumulator before the reduction.
    #[target_feature(enable = "avx512f")]
    fn avx512_group<const L2: bool, const R: usize>(query: &[f32], rows: [&[f32]; R]) -> [f32; R] {
        const LANES: usize = 16;
        let step = |a: __m512, b: __m512, acc: __m512| {
            if L2 {
                let diff = _mm512_sub_ps(a, b);
                _mm512_fmadd_ps(diff, diff, acc)
            } else {
                _mm512_fmadd_ps(a, b, acc)
            }
        };
        let len = query.len();
        debug_assert!(rows.iter().all(|row| row.len() >= len));
        let query_ptr = query.as_ptr();
        let mut row_ptrs = [std::ptr::null::<f32>(); R];
        for (pointer, row) in row_ptrs.iter_mut().zip(rows) {
            *pointer = row.as_ptr();
        }
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let mut offset = 0;
        while offset + 4 * LANES <= len {
            for block in 0..4 {
                let at = offset + block * LANES;
                // SAFETY: at + 16 <= offset + 64 <= len, and every row holds at least len floats.
                let query_lanes = unsafe { _mm512_loadu_ps(query_ptr.add(at)) };
                for row in 0..R {
                    // SAFETY: as above.
                    let row_lanes = unsafe { _mm512_loadu_ps(row_ptrs[row].add(at)) };
                    acc[row][block] = step(query_lanes, row_lanes, acc[row][block]);
                }
            }
            offset += 4 * LANES;
        }
        while offset + LANES <= len {
            // SAFETY: offset + 16 <= len, and every row holds at least len floats.
            let query_lanes = unsafe { _mm512_loadu_ps(query_ptr.add(offset)) };
            for row in 0..R {
                // SAFETY: as above.
                let row_lanes = unsafe { _mm512_loadu_ps(row_ptrs[row].add(offset)) };
                acc[row][0] = step(query_lanes, row_lanes, acc[row][0]);
            }
            offset += LANES;
        }
        let remaining = len - offset;
        if remaining > 0 {
            let mask: __mmask16 = (1u16 << remaining) - 1;
            // SAFETY: the mask enables only lanes offset..len, which are in bounds; masked-off
            // lanes are not accessed (AVX-512 masked loads suppress their faults).
            let query_lanes = unsafe { _mm512_maskz_loadu_ps(mask, query_ptr.add(offset)) };
            for row in 0..R {
                // SAFETY: as above.
                let row_lanes = unsafe { _mm512_maskz_loadu_ps(mask, row_ptrs[row].add(offset)) };
                acc[row][1] = step(query_lanes, row_lanes, acc[row][1]);
            }
        }
        let mut out = [0.0f32; R];
        for row in 0..R {
            let [first, second, third, fourth] = acc[row];
            let sum = _mm512_add_ps(_mm512_add_ps(first, second), _mm512_add_ps(third, fourth));
            out[row] = _mm512_reduce_add_ps(sum);
        }
        out
    }

    // AVX2: 8 lanes; the last len % 8 floats are added one by one after the reduction.
    #[target_feature(enable = "avx2,fma")]
    fn avx2_group<const L2: bool, const R: usize>(query: &[f32], rows: [&[f32]; R]) -> [f32; R] {
        const LANES: usize = 8;
        let step = |a: __m256, b: __m256, acc: __m256| {
            if L2 {
                let diff = _mm256_sub_ps(a, b);
                _mm256_fmadd_ps(diff, diff, acc)
            } else {
                _mm256_fmadd_ps(a, b, acc)
            }
        };
        let scalar = |x: f32, y: f32| if L2 { (x - y) * (x - y) } else { x * y };
        let len = query.len();
        debug_assert!(rows.iter().all(|row| row.len() >= len));
        let query_ptr = query.as_ptr();
        let mut row_ptrs = [std::ptr::null::<f32>(); R];
        for (pointer, row) in row_ptrs.iter_mut().zip(rows) {
            *pointer = row.as_ptr();
        }
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut offset = 0;
        while offset + 4 * LANES <= len {
            for block in 0..4 {
                let at = offset + block * LANES;
                // SAFETY: at + 8 <= offset + 32 <= len, and every row holds at least len floats.
                let query_lanes = unsafe { _mm256_loadu_ps(query_ptr.add(at)) };
                for row in 0..R {
                    // SAFETY: as above.
                    let row_lanes = unsafe { _mm256_loadu_ps(row_ptrs[row].add(at)) };
                    acc[row][block] = step(query_lanes, row_lanes, acc[row][block]);
                }
            }
            offset += 4 * LANES;
        }
        while offset + LANES <= len {
            // SAFETY: offset + 8 <= len, and every row holds at least len floats.
            let query_lanes = unsafe { _mm256_loadu_ps(query_ptr.add(offset)) };
            for row in 0..R {
                // SAFETY: as above.
                let row_lanes = unsafe { _mm256_loadu_ps(row_ptrs[row].add(offset)) };
                acc[row][0] = step(query_lanes, row_lanes, acc[row][0]);
            }
            offset += LANES;
        }
        let mut out = [0.0f32; R];
        for row in 0..R {
            let [first, second, third, fourth] = acc[row];
            let sum = _mm256_add_ps(_mm256_add_ps(first, second), _mm256_add_ps(third, fourth));
            let halves = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
            let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
            let single = _mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs));
            let mut total = _mm_cvtss_f32(single);
            for index in offset..len {
                total += scalar(query[index], rows[row][index]);
            }
            out[row] = total;
        }
        out
    }

    pub(super) fn screen_avx512_checked(task: &super::ScreenTask<'_>, masks: &mut [u32]) {
        use super::{PANEL_ROWS, SCREEN_QUERIES};
        let query_count = task.queries.len();
        let dimension = task.queries.first().map_or(0, |query| query.len());
        let panel_count = task.row_norms.len() / PANEL_ROWS;
        assert!(query_count <= SCREEN_QUERIES, "at most {SCREEN_QUERIES} queries per screen");
        assert!(task.queries.iter().all(|query| query.len() == dimension));
        assert!(task.query_norms.len() == query_count && task.bounds.len() == query_count);
        assert!(task.row_norms.len().is_multiple_of(PANEL_ROWS));
        assert!(task.panels.len() >= panel_count * dimension * PANEL_ROWS);
        assert!(masks.len() >= query_count * panel_count);
        // SAFETY: `detect()` returns this function only when the CPU reports avx512f; the
        // assertions establish every length the kernel reads or writes.
        unsafe {
            match query_count {
                1 => screen_avx512::<1>(task, masks),
                2 => screen_avx512::<2>(task, masks),
                3 => screen_avx512::<3>(task, masks),
                4 => screen_avx512::<4>(task, masks),
                5 => screen_avx512::<5>(task, masks),
                6 => screen_avx512::<6>(task, masks),
                7 => screen_avx512::<7>(task, masks),
                8 => screen_avx512::<8>(task, masks),
                _ => {}
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    fn screen_avx512<const Q: usize>(task: &super::ScreenTask<'_>, masks: &mut [u32]) {
        use super::PANEL_ROWS;
        let dimension = task.queries[0].len();
        let panel_count = task.row_norms.len() / PANEL_ROWS;
        let mut query_ptrs = [std::ptr::null::<f32>(); Q];
        for (pointer, query) in query_ptrs.iter_mut().zip(task.queries) {
            *pointer = query.as_ptr();
        }
        let two = _mm512_set1_ps(2.0);
        let scale = _mm512_set1_ps(task.margin_scale);
        for panel in 0..panel_count {
            let panel_ptr = task.panels[panel * dimension * PANEL_ROWS..].as_ptr();
            let mut acc = [[_mm512_setzero_ps(); 2]; Q];
            for k in 0..dimension {
                // SAFETY: the panel holds dimension * 32 floats from panel_ptr (asserted by the
                // caller), and k < dimension.
                let (low, high) = unsafe {
                    (
                        _mm512_loadu_ps(panel_ptr.add(k * PANEL_ROWS)),
                        _mm512_loadu_ps(panel_ptr.add(k * PANEL_ROWS + 16)),
                    )
                };
                for query in 0..Q {
                    // SAFETY: every query holds `dimension` floats and k < dimension.
                    let value = _mm512_set1_ps(unsafe { *query_ptrs[query].add(k) });
                    acc[query][0] = _mm512_fmadd_ps(value, low, acc[query][0]);
                    acc[query][1] = _mm512_fmadd_ps(value, high, acc[query][1]);
                }
            }
            let norms_ptr = task.row_norms[panel * PANEL_ROWS..].as_ptr();
            // SAFETY: row_norms holds panel_count * 32 floats.
            let row_norms = unsafe { [_mm512_loadu_ps(norms_ptr), _mm512_loadu_ps(norms_ptr.add(16))] };
            for query in 0..Q {
                let query_norm = _mm512_set1_ps(task.query_norms[query]);
                let bound = _mm512_set1_ps(task.bounds[query]);
                let mut mask = 0u32;
                for half in 0..2 {
                    let norm_sum = _mm512_add_ps(query_norm, row_norms[half]);
                    let approximate = if task.l2 {
                        _mm512_fnmadd_ps(two, acc[query][half], norm_sum)
                    } else {
                        _mm512_sub_ps(_mm512_setzero_ps(), acc[query][half])
                    };
                    let lower = _mm512_fnmadd_ps(scale, norm_sum, approximate);
                    // "not greater than", true for NaN: only a certain `lower > bound` rejects
                    let may_enter = _mm512_cmp_ps_mask::<_CMP_NGT_UQ>(lower, bound);
                    mask |= u32::from(may_enter) << (16 * half);
                }
                masks[query * panel_count + panel] = mask;
            }
        }
    }

    /// Generates the single and multi-row kernels of one metric from a group kernel.
    macro_rules! metric_kernels {
        ($feature:literal, $group:ident, $l2:literal, $single:ident, $rows:ident) => {
            #[target_feature(enable = $feature)]
            fn $single(a: &[f32], b: &[f32]) -> f32 {
                let len = a.len().min(b.len());
                let [distance] = $group::<$l2, 1>(&a[..len], [&b[..len]]);
                distance
            }

            #[target_feature(enable = $feature)]
            fn $rows(query: &[f32], rows: &[f32], out: &mut [f32]) {
                let dimension = query.len();
                if dimension == 0 {
                    out.fill(0.0);
                    return;
                }
                let mut row_groups = rows.chunks_exact(dimension * ROWS_PER_PASS);
                let mut out_groups = out.chunks_exact_mut(ROWS_PER_PASS);
                for (group, group_out) in (&mut row_groups).zip(&mut out_groups) {
                    let (first, rest) = group.split_at(dimension);
                    let (second, rest) = rest.split_at(dimension);
                    let (third, fourth) = rest.split_at(dimension);
                    let distances = $group::<$l2, ROWS_PER_PASS>(query, [first, second, third, fourth]);
                    group_out.copy_from_slice(&distances);
                }
                let rest = out_groups.into_remainder();
                for (row, slot) in row_groups.remainder().chunks_exact(dimension).zip(rest.iter_mut()) {
                    let [distance] = $group::<$l2, 1>(query, [row]);
                    *slot = distance;
                }
            }
        };
    }

    metric_kernels!("avx512f", avx512_group, true, l2_squared_avx512, l2_squared_rows_avx512);
    metric_kernels!("avx512f", avx512_group, false, dot_avx512, dot_rows_avx512);
    metric_kernels!("avx2,fma", avx2_group, true, l2_squared_avx2, l2_squared_rows_avx2);
    metric_kernels!("avx2,fma", avx2_group, false, dot_avx2, dot_rows_avx2);

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::distance::{dot_scalar, l2_squared_scalar};

        fn sample(len: usize, seed: u32) -> Vec<f32> {
            (0..len)
                .map(|index| {
                    let mixed = (index as u32 ^ seed).wrapping_mul(2_654_435_761);
                    (mixed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
                })
                .collect()
        }

        /// SIMD and scalar sums round differently; they must agree to within a few ulps of the sum
        /// of absolute terms.
        fn assert_close(simd: f32, scalar: f32, magnitude: f32, what: &str) {
            let tolerance = 1e-5 * magnitude.max(1.0);
            assert!((simd - scalar).abs() <= tolerance, "{what}: simd {simd} scalar {scalar}");
        }

        type Single = super::super::PairKernel;
        type Rows = fn(&[f32], &[f32], &mut [f32]);

        fn available() -> Vec<(&'static str, Single, Single, Rows, Rows)> {
            let mut kernels: Vec<(&'static str, Single, Single, Rows, Rows)> = Vec::new();
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push((
                    "avx512",
                    super::super::PairKernel(L2_SQUARED_AVX512),
                    super::super::PairKernel(DOT_AVX512),
                    l2_squared_rows_avx512_checked,
                    dot_rows_avx512_checked,
                ));
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push((
                    "avx2",
                    super::super::PairKernel(L2_SQUARED_AVX2),
                    super::super::PairKernel(DOT_AVX2),
                    l2_squared_rows_avx2_checked,
                    dot_rows_avx2_checked,
                ));
            }
            kernels
        }

        #[test]
        fn simd_kernels_match_the_scalar_kernels_for_every_length() {
            for (name, l2, dot, _, _) in available() {
                for len in 0..300 {
                    let a = sample(len, 17);
                    let b = sample(len, 91);
                    let l2_magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
                    let dot_magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
                    assert_close(l2.call(&a, &b), l2_squared_scalar(&a, &b), l2_magnitude, name);
                    assert_close(dot.call(&a, &b), dot_scalar(&a, &b), dot_magnitude, name);
                }
                // identical vectors are at distance exactly zero
                let a = sample(133, 5);
                assert_eq!(l2.call(&a, &a), 0.0, "{name}");
            }
        }

        #[test]
        fn multi_row_kernels_are_bit_identical_to_the_single_kernels() {
            for (name, l2, dot, l2_rows, dot_rows) in available() {
                for dimension in [1usize, 7, 8, 16, 17, 63, 64, 100, 128, 129] {
                    for row_count in 0..11 {
                        let query = sample(dimension, 3);
                        let rows = sample(dimension * row_count, 11);
                        let mut out = vec![f32::NAN; row_count];
                        for (single, multi) in [(l2, l2_rows), (dot, dot_rows)] {
                            multi(&query, &rows, &mut out);
                            for (row, distance) in rows.chunks_exact(dimension).zip(&out) {
                                assert_eq!(
                                    distance.to_bits(),
                                    single.call(&query, row).to_bits(),
                                    "{name} dimension {dimension} rows {row_count}"
                                );
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn screening_rejects_only_rows_whose_exact_distance_exceeds_the_bound() {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                return;
            }
            use crate::simd::{PANEL_ROWS, PairKernel, ScreenTask};
            let (l2_kernel, dot_kernel) = (PairKernel(L2_SQUARED_AVX512), PairKernel(DOT_AVX512));
            for (dimension, l2) in [(37usize, true), (128, true), (64, false), (5, false)] {
                let row_count = 3 * PANEL_ROWS;
                let rows = sample(row_count * dimension, 29);
                let query_data = sample(5 * dimension, 31);
                let queries: Vec<&[f32]> = query_data.chunks_exact(dimension).collect();
                let exact = |query: &[f32], row: usize| {
                    let vector = &rows[row * dimension..(row + 1) * dimension];
                    if l2 { l2_kernel.call(query, vector) } else { -dot_kernel.call(query, vector) }
                };
                // bound: the exact distance of row 7, so some rows pass and most do not
                let bounds: Vec<f32> = queries.iter().map(|query| exact(query, 7)).collect();
                let query_norms: Vec<f32> =
                    queries.iter().map(|query| dot_kernel.call(query, query)).collect();
                let row_norms: Vec<f32> =
                    rows.chunks_exact(dimension).map(|row| dot_kernel.call(row, row)).collect();
                let mut panels = vec![0.0f32; row_count * dimension];
                for (row, vector) in rows.chunks_exact(dimension).enumerate() {
                    for (k, value) in vector.iter().enumerate() {
                        panels[(row / PANEL_ROWS * dimension + k) * PANEL_ROWS + row % PANEL_ROWS] = *value;
                    }
                }
                let task = ScreenTask {
                    l2,
                    queries: &queries,
                    query_norms: &query_norms,
                    bounds: &bounds,
                    panels: &panels,
                    row_norms: &row_norms,
                    margin_scale: (dimension + 8) as f32 / (1u32 << 20) as f32,
                };
                let mut masks = vec![0u32; queries.len() * 3];
                screen_avx512_checked(&task, &mut masks);
                let mut rejected = 0;
                for (query_index, query) in queries.iter().enumerate() {
                    for row in 0..row_count {
                        let may_enter =
                            masks[query_index * 3 + row / PANEL_ROWS] & (1 << (row % PANEL_ROWS)) != 0;
                        if !may_enter {
                            rejected += 1;
                            assert!(
                                exact(query, row) > bounds[query_index],
                                "dimension {dimension} row {row}"
                            );
                        }
                    }
                    let row_seven = masks[query_index * 3] & (1 << 7) != 0;
                    assert!(row_seven, "the row at the bound itself must pass");
                }
                assert!(rejected > 0, "screening rejected nothing for dimension {dimension}");
            }
        }
    }
}
