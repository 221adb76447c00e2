//! A small seeded generator (SplitMix64) for HNSW levels and k-means sampling, so a build is
//! reproducible from `IndexOptions::seed` without pulling in a random-number crate.

/// Stateless 64-bit mix: a good hash of `value`, used to derive per-node randomness from the node id.
pub(crate) fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in `(0, 1]` from 53 random bits (never 0, so `ln` is finite).
pub(crate) fn unit_interval(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `(0, 1]`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        unit_interval(self.next_u64())
    }

    /// Uniform in `0..bound` (`bound > 0`); the modulo bias is below 2^-40 for any bound used here.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        debug_assert!(bound > 0);
        (self.next_u64() % bound as u64) as usize
    }
}
