//! Filtered search: the filter is applied during the search, and k hits come back whenever k
//! matching points exist, however selective the filter.

use sutazai_vector_index::{Index, IndexConfig, IndexOptions, Metric, SearchParams, SlotId};

use crate::common::{as_slices, brute_force, clustered, recall};

const POINTS: usize = 6_000;
const DIMENSION: usize = 24;

fn points() -> Vec<(SlotId, Vec<f32>)> {
    (0..).zip(clustered(POINTS, DIMENSION, 40, 3)).collect()
}

fn queries() -> Vec<Vec<f32>> {
    clustered(50, DIMENSION, 40, 3003)
}

fn build(config: IndexConfig, points: &[(SlotId, Vec<f32>)]) -> Index {
    // exact_search_below 0: even this small HNSW answers from its graph
    let options = IndexOptions { exact_search_below: 0, ..IndexOptions::default() };
    let index = Index::with_options(DIMENSION, Metric::L2, config, options).expect("index");
    let items: Vec<(SlotId, &[f32])> =
        points.iter().map(|(slot, vector)| (*slot, vector.as_slice())).collect();
    index.upsert_batch(&items).expect("upsert batch");
    index
}

fn configs() -> [IndexConfig; 2] {
    [IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 }, IndexConfig::Ivf { nlist: 64, nprobe: 4 }]
}

#[test]
fn a_very_selective_filter_still_returns_the_exact_k_best_matches() {
    let points = points();
    // 30 of 6000 points match: HNSW switches to an exact scan of them, IVF widens its probe
    let filter = |slot: SlotId| slot % 200 == 7;
    for config in configs() {
        let index = build(config.clone(), &points);
        for query in queries() {
            let hits = index.search(&query, &SearchParams::top(10), Some(&filter)).expect("search");
            assert_eq!(hits, brute_force(Metric::L2, &points, &query, 10, filter), "{config:?}");
        }
    }
}

#[test]
fn fewer_matches_than_k_returns_all_of_them() {
    let points = points();
    let filter = |slot: SlotId| slot == 5 || slot == 4_000 || slot == 5_999;
    for config in configs() {
        let index = build(config.clone(), &points);
        let hits = index.search(&queries()[0], &SearchParams::top(10), Some(&filter)).expect("search");
        let mut slots: Vec<SlotId> = hits.iter().map(|hit| hit.slot).collect();
        slots.sort_unstable();
        assert_eq!(slots, vec![5, 4_000, 5_999], "{config:?}");
    }
}

#[test]
fn a_broad_filter_searches_the_graph_and_returns_only_matches() {
    let points = points();
    // half the points match: too many for the scan fallback, so HNSW walks its graph through the
    // non-matching half and admits only matching nodes
    let filter = |slot: SlotId| slot % 2 == 1;
    let queries = queries();
    let truth: Vec<_> =
        queries.iter().map(|query| brute_force(Metric::L2, &points, query, 10, filter)).collect();
    for config in configs() {
        let index = build(config.clone(), &points);
        let found =
            index.search_batch(&as_slices(&queries), &SearchParams::top(10), Some(&filter)).expect("search");
        for hits in &found {
            assert_eq!(hits.len(), 10, "{config:?}");
            assert!(hits.iter().all(|hit| filter(hit.slot)), "{config:?}");
        }
        let measured = recall(&truth, &found, 10);
        assert!(measured >= 0.95, "{config:?} filtered recall {measured}");
    }
}

#[test]
fn a_filter_that_rejects_the_nearest_points_skips_them() {
    let points = points();
    for config in configs() {
        let index = build(config.clone(), &points);
        let query = &points[123].1;
        let unfiltered = index.search(query, &SearchParams::top(5), None).expect("search");
        assert_eq!(unfiltered[0].slot, 123);
        let excluded: Vec<SlotId> = unfiltered.iter().map(|hit| hit.slot).collect();
        let filter = |slot: SlotId| !excluded.contains(&slot);
        let filtered = index.search(query, &SearchParams::top(5), Some(&filter)).expect("search");
        assert_eq!(filtered.len(), 5);
        assert!(filtered.iter().all(|hit| !excluded.contains(&hit.slot)), "{config:?}");
        assert_eq!(filtered, brute_force(Metric::L2, &points, query, 5, filter), "{config:?}");
    }
}
