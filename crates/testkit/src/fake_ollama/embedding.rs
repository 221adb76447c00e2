//! The deterministic fake embedding: a word-hashing bag of pseudo-random directions plus a
//! whole-text component, L2-normalized.

use super::hashing::{fnv1a_64, splitmix64};

/// The deterministic embedding the fake returns for `text` at `dimension` (see the
/// [`fake_ollama`](super) module docs), so tests can compute the vector a stored document should
/// have.
pub fn fake_embedding(text: &str, dimension: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; dimension];
    for word in text.split_whitespace() {
        let token = word.trim_matches(|character: char| !character.is_alphanumeric()).to_lowercase();
        if token.is_empty() {
            continue;
        }
        add_pseudo_random_direction(&mut vector, fnv1a_64(token.as_bytes()), 1.0);
    }
    // The whole-text part keeps texts with the same words in another order or case apart, and
    // makes the vector non-zero even for empty or punctuation-only input.
    const WHOLE_TEXT_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
    add_pseudo_random_direction(&mut vector, fnv1a_64(text.as_bytes()) ^ WHOLE_TEXT_SALT, 0.25);
    normalize_l2(&mut vector);
    vector
}

/// Adds `weight` times a pseudo-random vector with components uniform in [-1, 1) seeded by
/// `seed`.
fn add_pseudo_random_direction(vector: &mut [f32], seed: u64, weight: f32) {
    let mut state = seed;
    for component in vector.iter_mut() {
        let unit = (splitmix64(&mut state) >> 11) as f64 / (1_u64 << 53) as f64;
        *component += weight * (unit * 2.0 - 1.0) as f32;
    }
}

pub(super) fn normalize_l2(vector: &mut [f32]) {
    let norm =
        vector.iter().map(|component| f64::from(*component) * f64::from(*component)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for component in vector.iter_mut() {
            *component = (f64::from(*component) / norm) as f32;
        }
    }
}
