//! Distance kernels: the portable ones, the process-wide choice between them and the SIMD ones in
//! `simd.rs`, and the mapping of each [`Metric`] to a "smaller is better" distance.
//!
//! Every index kind ranks by one internal distance where smaller is better: squared L2 for
//! [`Metric::L2`], the negated dot product for inner product and cosine. Negation is exact, so the
//! score reported to callers (`-distance` for similarities) has the kernel's bits.

use std::sync::OnceLock;

use crate::config::Metric;
use crate::simd::PairKernel;

/// One kernel set: a single-pair and a multi-row kernel per metric, with one accumulation order.
/// The multi-row kernels (`out[i]` = distance from the query to row `i` of a row-major matrix)
/// are bit-identical to calling the single kernel per row; they are faster because the query is
/// loaded once for several rows and the rows' independent sums overlap in the pipeline.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub(crate) l2_squared: PairKernel,
    pub(crate) dot: PairKernel,
    pub(crate) l2_squared_rows: fn(&[f32], &[f32], &mut [f32]),
    pub(crate) dot_rows: fn(&[f32], &[f32], &mut [f32]),
    /// Batched-scan screening (see `simd::ScreenTask`), where the CPU has a kernel for it.
    pub(crate) screen: Option<crate::simd::ScreenFn>,
    pub(crate) name: &'static str,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name)
    }
}

const PORTABLE: Kernels = Kernels {
    l2_squared: PairKernel::portable(l2_squared_scalar),
    dot: PairKernel::portable(dot_scalar),
    l2_squared_rows: l2_squared_rows_scalar,
    dot_rows: dot_rows_scalar,
    screen: None,
    name: "portable",
};

/// The kernels for this process, detected once. All indexes use the same ones, so results are
/// reproducible within a process and [`l2_squared`] / [`inner_product`] give exactly the numbers the
/// indexes rank by.
pub(crate) fn kernels() -> Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    *CHOSEN.get_or_init(|| crate::simd::detect().unwrap_or(PORTABLE))
}

/// Name of the kernel set in use (`"avx512"`, `"avx2+fma"` or `"portable"`), for benchmark logs.
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// Squared Euclidean distance with the kernel the indexes use (bit-identical to their scores).
/// Extra components of the longer slice are ignored.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    kernels().l2_squared.call(a, b)
}

/// Dot product with the kernel the indexes use (bit-identical to their scores).
/// Extra components of the longer slice are ignored.
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    kernels().dot.call(a, b)
}

/// `|vector|^2` with the dot kernel.
pub(crate) fn squared_norm(vector: &[f32]) -> f32 {
    kernels().dot.call(vector, vector)
}

/// `vector` scaled to unit length, as cosine indexes store vectors and queries. A zero vector stays
/// zero (its cosine with anything is then 0).
pub fn normalized(vector: &[f32]) -> Vec<f32> {
    let mut copy = vector.to_vec();
    normalize_in_place(&mut copy);
    copy
}

pub(crate) fn normalize_in_place(vector: &mut [f32]) {
    let norm = f64::from(inner_product(vector, vector)).sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inverse = (1.0 / norm) as f32;
        for component in vector.iter_mut() {
            *component *= inverse;
        }
    }
}

/// The distance an index ranks by: one kernel (single and multi-row) and whether to negate it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DistanceFn {
    kernel: PairKernel,
    rows_kernel: fn(&[f32], &[f32], &mut [f32]),
    negate: bool,
}

impl DistanceFn {
    /// The ranking distance for `metric` (cosine vectors arrive normalized, so it is a dot product).
    pub(crate) fn for_metric(metric: Metric) -> Self {
        let kernels = kernels();
        match metric {
            Metric::L2 => {
                Self { kernel: kernels.l2_squared, rows_kernel: kernels.l2_squared_rows, negate: false }
            }
            Metric::InnerProduct | Metric::Cosine => {
                Self { kernel: kernels.dot, rows_kernel: kernels.dot_rows, negate: true }
            }
        }
    }

    /// Plain squared L2, used where geometry matters regardless of the metric (k-means).
    pub(crate) fn l2() -> Self {
        Self::for_metric(Metric::L2)
    }

    #[inline(always)]
    pub(crate) fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        let raw = self.kernel.call(a, b);
        if self.negate { -raw } else { raw }
    }

    /// `out[i]` = `distance(query, row i of rows)`, bit-identical to calling `distance` per row.
    /// `rows` holds at least `out.len()` rows of `query.len()` floats.
    #[inline]
    pub(crate) fn distances_to_rows(self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        (self.rows_kernel)(query, rows, out);
        if self.negate {
            for distance in out.iter_mut() {
                *distance = -*distance;
            }
        }
    }
}

/// Lanes of the portable kernels: four SSE registers' worth, so LLVM keeps four independent
/// accumulator chains when it vectorizes the inner loop for plain x86-64.
const PORTABLE_LANES: usize = 16;

pub(crate) fn l2_squared_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; PORTABLE_LANES];
    let a_chunks = a.chunks_exact(PORTABLE_LANES);
    let b_chunks = b.chunks_exact(PORTABLE_LANES);
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (a_chunk, b_chunk) in a_chunks.zip(b_chunks) {
        for lane in 0..PORTABLE_LANES {
            let diff = a_chunk[lane] - b_chunk[lane];
            lanes[lane] += diff * diff;
        }
    }
    let mut total = reduce_lanes(lanes);
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += (x - y) * (x - y);
    }
    total
}

fn l2_squared_rows_scalar(query: &[f32], rows: &[f32], out: &mut [f32]) {
    for (row, distance) in rows.chunks_exact(query.len().max(1)).zip(out.iter_mut()) {
        *distance = l2_squared_scalar(query, row);
    }
}

fn dot_rows_scalar(query: &[f32], rows: &[f32], out: &mut [f32]) {
    for (row, distance) in rows.chunks_exact(query.len().max(1)).zip(out.iter_mut()) {
        *distance = dot_scalar(query, row);
    }
}

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; PORTABLE_LANES];
    let a_chunks = a.chunks_exact(PORTABLE_LANES);
    let b_chunks = b.chunks_exact(PORTABLE_LANES);
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (a_chunk, b_chunk) in a_chunks.zip(b_chunks) {
        for lane in 0..PORTABLE_LANES {
            lanes[lane] += a_chunk[lane] * b_chunk[lane];
        }
    }
    let mut total = reduce_lanes(lanes);
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += x * y;
    }
    total
}

fn reduce_lanes(lanes: [f32; PORTABLE_LANES]) -> f32 {
    // pairwise, in a fixed order
    let mut width = PORTABLE_LANES;
    let mut values = lanes;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            values[lane] += values[lane + width];
        }
    }
    values[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
    }

    #[test]
    fn portable_kernels_agree_with_a_double_precision_sum() {
        for len in [0usize, 1, 7, 15, 16, 17, 33, 128, 129] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let l2 = l2_squared_scalar(&a, &b);
            assert!((f64::from(l2) - naive_l2(&a, &b)).abs() < 1e-4, "len {len}");
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x * *y)).sum();
            assert!((f64::from(dot_scalar(&a, &b)) - dot).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn dispatched_kernels_agree_with_a_double_precision_sum() {
        let a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..100).map(|i| (i as f32 * 0.11).cos()).collect();
        assert!((f64::from(l2_squared(&a, &b)) - naive_l2(&a, &b)).abs() < 1e-4);
    }

    #[test]
    fn normalizing_gives_unit_length_and_keeps_zero() {
        let unit = normalized(&[3.0, 4.0]);
        assert!((unit[0] - 0.6).abs() < 1e-6 && (unit[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalized(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn similarity_metrics_rank_by_negated_dot_product() {
        let distance = DistanceFn::for_metric(Metric::InnerProduct);
        assert_eq!(distance.distance(&[1.0, 2.0], &[3.0, 4.0]), -11.0);
        assert_eq!(DistanceFn::l2().distance(&[1.0, 2.0], &[3.0, 4.0]), 8.0);
    }
}
