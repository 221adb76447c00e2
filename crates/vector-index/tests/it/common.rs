//! Seeded data sets and the brute-force reference the indexes are checked against.

use sutazai_vector_index::{Hit, Metric, SlotId, inner_product, l2_squared, normalized};

/// SplitMix64: reproducible data without a random-number crate.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn gaussian(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// `count` vectors uniform in [-1, 1)^dimension.
pub(crate) fn uniform(count: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| (0..dimension).map(|_| rng.unit() * 2.0 - 1.0).collect()).collect()
}

/// `count` vectors around `clusters` Gaussian centers (spread 10) with unit noise: the shape of
/// embedding data, where neighbours sit in dense groups.
pub(crate) fn clustered(count: usize, dimension: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centers: Vec<Vec<f32>> =
        (0..clusters).map(|_| (0..dimension).map(|_| rng.gaussian() * 10.0).collect()).collect();
    (0..count)
        .map(|_| {
            let center = &centers[rng.below(clusters)];
            center.iter().map(|value| value + rng.gaussian()).collect()
        })
        .collect()
}

pub(crate) fn as_slices(vectors: &[Vec<f32>]) -> Vec<&[f32]> {
    vectors.iter().map(Vec::as_slice).collect()
}

/// Exact top-k over `(slot, vector)` pairs, ranked by the crate's own kernels (so scores are
/// bit-identical to what the indexes compute) with ties by slot ascending. For cosine both sides
/// are normalized with the crate's `normalized`, as the index does on the way in.
pub(crate) fn brute_force(
    metric: Metric,
    points: &[(SlotId, Vec<f32>)],
    query: &[f32],
    k: usize,
    filter: impl Fn(SlotId) -> bool,
) -> Vec<Hit> {
    let query = match metric {
        Metric::Cosine => normalized(query),
        _ => query.to_vec(),
    };
    let mut scored: Vec<Hit> = points
        .iter()
        .filter(|(slot, _)| filter(*slot))
        .map(|(slot, vector)| {
            let score = match metric {
                Metric::L2 => l2_squared(&query, vector),
                Metric::InnerProduct => inner_product(&query, vector),
                Metric::Cosine => inner_product(&query, &normalized(vector)),
            };
            Hit { slot: *slot, score }
        })
        .collect();
    scored.sort_by(|a, b| {
        // IEEE comparison, as the index ranks: -0.0 and 0.0 tie and fall back to the slot
        let by_score = if metric.higher_is_better() {
            b.score.partial_cmp(&a.score)
        } else {
            a.score.partial_cmp(&b.score)
        }
        .unwrap_or(std::cmp::Ordering::Equal);
        by_score.then(a.slot.cmp(&b.slot))
    });
    scored.truncate(k);
    scored
}

/// Mean fraction of the true top-k slots found in each result list.
pub(crate) fn recall(truth: &[Vec<Hit>], found: &[Vec<Hit>], k: usize) -> f64 {
    let mut hits = 0usize;
    for (expected, actual) in truth.iter().zip(found) {
        let expected: Vec<SlotId> = expected.iter().take(k).map(|hit| hit.slot).collect();
        hits += actual.iter().take(k).filter(|hit| expected.contains(&hit.slot)).count();
    }
    hits as f64 / (truth.len() * k) as f64
}
