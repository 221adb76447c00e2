//! Flat search equals the brute-force reference exactly: same slots, same order (ties by slot),
//! same score bits, for every metric, single and batched, with and without a filter.

use sutazai_vector_index::{Index, IndexConfig, Metric, SearchParams, SlotId};

use crate::common::{Rng, as_slices, brute_force, uniform};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

/// Live points of a Flat index built with gaps in the slot range, duplicated vectors (exact ties),
/// removals and a replacement.
fn build(metric: Metric, count: usize, dimension: usize, seed: u64) -> (Index, Vec<(SlotId, Vec<f32>)>) {
    let index = Index::new(dimension, metric, IndexConfig::Flat).expect("flat index");
    let mut vectors = uniform(count, dimension, seed);
    // every 50th vector duplicates its predecessor: equal scores, so order falls to the slot
    for position in (50..count).step_by(50) {
        vectors[position] = vectors[position - 1].clone();
    }
    // slots skip every 7th number, so chunks have holes that must never be returned
    let slots: Vec<SlotId> = (0..).filter(|slot| slot % 7 != 3).take(count).collect();
    let items: Vec<(SlotId, &[f32])> = slots.iter().copied().zip(as_slices(&vectors)).collect();
    index.upsert_batch(&items).expect("upsert batch");
    let mut live: Vec<(SlotId, Vec<f32>)> = slots.iter().copied().zip(vectors).collect();
    // remove every 11th, replace one
    for (slot, _) in live.iter().step_by(11) {
        assert!(index.remove(*slot));
    }
    live = live
        .into_iter()
        .enumerate()
        .filter(|(position, _)| position % 11 != 0)
        .map(|(_, item)| item)
        .collect();
    let replacement = uniform(1, dimension, seed ^ 99).remove(0);
    index.upsert(live[5].0, &replacement).expect("replace");
    live[5].1 = replacement;
    assert_eq!(index.len(), live.len());
    (index, live)
}

fn queries(live: &[(SlotId, Vec<f32>)], dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut queries = uniform(30, dimension, seed);
    // queries equal to stored vectors, including a duplicated one
    queries.extend([live[3].1.clone(), live[48].1.clone(), live[200].1.clone()]);
    queries
}

fn check_exact(metric: Metric, count: usize, dimension: usize, seed: u64) {
    let (index, live) = build(metric, count, dimension, seed);
    let queries = queries(&live, dimension, seed + 1);
    let filter = |slot: SlotId| slot.is_multiple_of(3);
    for k in [1, 10, 57] {
        let params = SearchParams::top(k);
        let mut singles = Vec::new();
        for query in &queries {
            let expected = brute_force(metric, &live, query, k, |_| true);
            let single = index.search(query, &params, None).expect("search");
            assert_eq!(single, expected, "{metric:?} k={k} single");
            singles.push(single);

            let expected_filtered = brute_force(metric, &live, query, k, filter);
            let filtered = index.search(query, &params, Some(&filter)).expect("filtered search");
            assert_eq!(filtered, expected_filtered, "{metric:?} k={k} filtered");
        }
        let batched = index.search_batch(&as_slices(&queries), &params, None).expect("batch");
        assert_eq!(batched, singles, "{metric:?} k={k} batched equals single");
        let batched_filtered =
            index.search_batch(&as_slices(&queries), &params, Some(&filter)).expect("filtered batch");
        for (query, hits) in queries.iter().zip(&batched_filtered) {
            assert_eq!(
                hits,
                &brute_force(metric, &live, query, k, filter),
                "{metric:?} k={k} filtered batch"
            );
        }
    }
}

#[test]
fn flat_equals_brute_force_on_a_large_index_for_every_metric() {
    // 3 chunks of 1024 rows x 100 floats: big enough for the parallel single-query scan
    for metric in METRICS {
        check_exact(metric, 3000, 100, 11);
    }
}

#[test]
fn flat_equals_brute_force_on_a_small_odd_dimension_index() {
    // dimension 37 exercises every kernel tail; small enough for the sequential scan
    for metric in METRICS {
        check_exact(metric, 600, 37, 23);
    }
}

#[test]
fn flat_returns_everything_when_k_exceeds_the_live_count() {
    let index = Index::new(3, Metric::L2, IndexConfig::Flat).expect("flat index");
    index.upsert(4, &[1.0, 0.0, 0.0]).expect("upsert");
    index.upsert(2, &[1.0, 0.0, 0.0]).expect("upsert");
    let hits = index.search(&[1.0, 0.0, 0.0], &SearchParams::top(10), None).expect("search");
    let slots: Vec<SlotId> = hits.iter().map(|hit| hit.slot).collect();
    assert_eq!(slots, vec![2, 4], "a tie is ordered by slot");
    assert_eq!(index.search(&[1.0, 0.0, 0.0], &SearchParams::top(0), None).expect("search"), vec![]);
}

#[test]
fn random_query_batches_match_single_searches_bit_for_bit() {
    let mut rng = Rng::new(5);
    let index = Index::new(64, Metric::InnerProduct, IndexConfig::Flat).expect("flat index");
    let vectors = uniform(2000, 64, 3);
    let items: Vec<(SlotId, &[f32])> = (0..).zip(as_slices(&vectors)).collect();
    index.upsert_batch(&items).expect("upsert batch");
    let queries = uniform(64 + rng.below(64), 64, 9);
    let params = SearchParams::top(25);
    let batched = index.search_batch(&as_slices(&queries), &params, None).expect("batch");
    for (query, hits) in queries.iter().zip(&batched) {
        let single = index.search(query, &params, None).expect("search");
        let single_bits: Vec<(SlotId, u32)> =
            single.iter().map(|hit| (hit.slot, hit.score.to_bits())).collect();
        let batched_bits: Vec<(SlotId, u32)> =
            hits.iter().map(|hit| (hit.slot, hit.score.to_bits())).collect();
        assert_eq!(batched_bits, single_bits);
    }
}

#[test]
fn batched_search_stays_exact_where_norms_dwarf_distances() {
    // Points far from the origin with a tiny spread: |q|^2 + |x|^2 - 2 q.x cancels badly here, so
    // any shortcut through that identity must not decide the ranking.
    let dimension = 48;
    for metric in METRICS {
        let index = Index::new(dimension, metric, IndexConfig::Flat).expect("flat index");
        let mut rng = Rng::new(17);
        let points: Vec<(SlotId, Vec<f32>)> = (0..1_500)
            .map(|slot| (slot, (0..dimension).map(|_| 1_000.0 + rng.unit() * 0.01).collect()))
            .collect();
        let items: Vec<(SlotId, &[f32])> =
            points.iter().map(|(slot, vector)| (*slot, vector.as_slice())).collect();
        index.upsert_batch(&items).expect("upsert batch");
        let queries: Vec<Vec<f32>> =
            (0..40).map(|_| (0..dimension).map(|_| 1_000.0 + rng.unit() * 0.01).collect()).collect();
        let params = SearchParams::top(7);
        let batched = index.search_batch(&as_slices(&queries), &params, None).expect("batch");
        for (query, hits) in queries.iter().zip(&batched) {
            assert_eq!(hits, &brute_force(metric, &points, query, 7, |_| true), "{metric:?}");
        }
    }
}
