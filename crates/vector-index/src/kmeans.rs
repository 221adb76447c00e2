//! k-means for the IVF coarse quantizer: k-means++ seeding, then Lloyd iterations with parallel
//! assignment and FAISS-style splitting of empty clusters.
//!
//! Clustering is always in L2 geometry (cosine vectors arrive normalized, so that is the usual
//! spherical approximation); how points are then assigned to lists is the IVF's business.

use rayon::prelude::*;

use crate::distance::DistanceFn;
use crate::rng::SplitMix64;

/// Lloyd iterations at most. FAISS trains IVF quantizers with 10-25; past ~15 the lists barely move.
const MAX_ITERATIONS: usize = 15;

/// Stop early once fewer than this fraction of points change cluster in an iteration.
const CONVERGED_CHANGE_FRACTION: f64 = 0.001;

/// Relative perturbation when an empty cluster takes half of a large one (FAISS uses 1/1024).
const SPLIT_EPSILON: f32 = 1.0 / 1024.0;

/// Clusters `points` (row-major, `dimension` floats each) into `clusters` centroids, returned
/// row-major. Needs at least one point; with fewer points than clusters, duplicate centroids result.
pub(crate) fn train(points: &[f32], dimension: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let point_count = points.len() / dimension;
    debug_assert!(point_count > 0 && clusters > 0);
    let l2 = DistanceFn::l2();
    let mut rng = SplitMix64::new(seed);
    let mut centroids = seed_plus_plus(points, dimension, clusters, &mut rng);
    let mut assignments = vec![u32::MAX; point_count];
    for _ in 0..MAX_ITERATIONS {
        let fresh = assign_all(points, dimension, &centroids, l2);
        let changed = fresh.iter().zip(&assignments).filter(|(new, old)| new != old).count();
        assignments = fresh;
        recompute_centroids(points, dimension, &assignments, &mut centroids, &mut rng);
        if (changed as f64) < CONVERGED_CHANGE_FRACTION * point_count as f64 {
            break;
        }
    }
    centroids
}

/// k-means++: each next centroid is a point drawn with probability proportional to its squared
/// distance from the nearest centroid so far.
fn seed_plus_plus(points: &[f32], dimension: usize, clusters: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let point_count = points.len() / dimension;
    let l2 = DistanceFn::l2();
    let row = |index: usize| &points[index * dimension..(index + 1) * dimension];
    let mut centroids = Vec::with_capacity(clusters * dimension);
    let first = rng.below(point_count);
    centroids.extend_from_slice(row(first));
    let mut nearest: Vec<f32> =
        (0..point_count).into_par_iter().map(|index| l2.distance(row(index), row(first))).collect();
    for _ in 1..clusters {
        let total: f64 = nearest.iter().map(|distance| f64::from(*distance)).sum();
        let chosen = if total > 0.0 && total.is_finite() {
            let target = rng.next_unit() * total;
            let mut cumulative = 0.0;
            let mut chosen = point_count - 1;
            for (index, distance) in nearest.iter().enumerate() {
                cumulative += f64::from(*distance);
                if cumulative >= target {
                    chosen = index;
                    break;
                }
            }
            chosen
        } else {
            // every point coincides with a centroid already: any point will do
            rng.below(point_count)
        };
        let chosen_row = row(chosen).to_vec();
        centroids.extend_from_slice(&chosen_row);
        nearest.par_iter_mut().enumerate().for_each(|(index, distance)| {
            let candidate = l2.distance(row(index), &chosen_row);
            if candidate < *distance {
                *distance = candidate;
            }
        });
    }
    centroids
}

/// Index of the nearest centroid by `distance`, ties to the lower index.
pub(crate) fn nearest_centroid(
    vector: &[f32],
    centroids: &[f32],
    dimension: usize,
    distance: DistanceFn,
) -> u32 {
    let mut best = 0u32;
    let mut best_distance = f32::INFINITY;
    for (index, centroid) in centroids.chunks_exact(dimension).enumerate() {
        let candidate = distance.distance(vector, centroid);
        if candidate < best_distance {
            best_distance = candidate;
            best = index as u32;
        }
    }
    best
}

/// Nearest centroid of every point, in parallel.
pub(crate) fn assign_all(
    points: &[f32],
    dimension: usize,
    centroids: &[f32],
    distance: DistanceFn,
) -> Vec<u32> {
    points
        .par_chunks_exact(dimension)
        .with_min_len(64)
        .map(|point| nearest_centroid(point, centroids, dimension, distance))
        .collect()
}

fn recompute_centroids(
    points: &[f32],
    dimension: usize,
    assignments: &[u32],
    centroids: &mut [f32],
    rng: &mut SplitMix64,
) {
    let clusters = centroids.len() / dimension;
    let mut sums = vec![0.0f64; clusters * dimension];
    let mut counts = vec![0usize; clusters];
    for (point, &cluster) in points.chunks_exact(dimension).zip(assignments) {
        let cluster = cluster as usize;
        counts[cluster] += 1;
        for (sum, value) in sums[cluster * dimension..(cluster + 1) * dimension].iter_mut().zip(point) {
            *sum += f64::from(*value);
        }
    }
    for cluster in 0..clusters {
        if counts[cluster] == 0 {
            continue;
        }
        let count = counts[cluster] as f64;
        for (centroid, sum) in centroids[cluster * dimension..(cluster + 1) * dimension]
            .iter_mut()
            .zip(&sums[cluster * dimension..(cluster + 1) * dimension])
        {
            *centroid = (*sum / count) as f32;
        }
    }
    split_into_empty_clusters(dimension, centroids, &mut counts, rng);
}

/// An empty cluster takes over half of a cluster picked with probability proportional to its size:
/// both centroids move apart slightly from the original one (FAISS `split_clusters`).
fn split_into_empty_clusters(
    dimension: usize,
    centroids: &mut [f32],
    counts: &mut [usize],
    rng: &mut SplitMix64,
) {
    let total: usize = counts.iter().sum();
    for empty in 0..counts.len() {
        if counts[empty] != 0 {
            continue;
        }
        let splittable = total.saturating_sub(counts.iter().filter(|count| **count == 1).count());
        if splittable == 0 {
            return;
        }
        let mut target = rng.below(total);
        let mut donor = 0;
        for (cluster, count) in counts.iter().enumerate() {
            if target < *count {
                donor = cluster;
                break;
            }
            target -= count;
        }
        if counts[donor] <= 1 {
            continue;
        }
        let donor_row: Vec<f32> = centroids[donor * dimension..(donor + 1) * dimension].to_vec();
        for (index, value) in donor_row.iter().enumerate() {
            let sign = if index % 2 == 0 { 1.0 } else { -1.0 };
            centroids[empty * dimension + index] = value * (1.0 + sign * SPLIT_EPSILON);
            centroids[donor * dimension + index] = value * (1.0 - sign * SPLIT_EPSILON);
        }
        counts[empty] = counts[donor] / 2;
        counts[donor] -= counts[empty];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        // three tight blobs in 2-d
        let centers = [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0)];
        let mut points = Vec::new();
        for (index, (x, y)) in centers.iter().cycle().take(300).enumerate() {
            let jitter = (index % 7) as f32 * 0.01;
            points.extend_from_slice(&[x + jitter, y - jitter]);
        }
        let centroids = train(&points, 2, 3, 7);
        for (x, y) in centers {
            let nearest = centroids
                .chunks_exact(2)
                .map(|centroid| (centroid[0] - x).powi(2) + (centroid[1] - y).powi(2))
                .fold(f32::INFINITY, f32::min);
            assert!(nearest < 0.1, "no centroid near ({x}, {y}): {centroids:?}");
        }
    }

    #[test]
    fn more_clusters_than_distinct_points_still_returns_every_centroid() {
        let points = vec![1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0];
        let centroids = train(&points, 2, 4, 1);
        assert_eq!(centroids.len(), 8);
        assert!(centroids.iter().all(|value| value.is_finite()));
    }
}
