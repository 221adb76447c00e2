//! HNSW and IVF with default parameters reach recall@10 >= 0.95 against exact search, on clustered
//! and on uniform data (20k points each).

use std::time::Instant;

use sutazai_vector_index::{Hit, Index, IndexConfig, Metric, SearchParams, SlotId};

use crate::common::{as_slices, clustered, recall, uniform};

const POINTS: usize = 20_000;
const QUERIES: usize = 200;
const K: usize = 10;
const RECALL_GOAL: f64 = 0.95;

struct DataSet {
    name: &'static str,
    dimension: usize,
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

fn clustered_set() -> DataSet {
    // queries come from the same generator (same seed, so the same centers), past the base points
    let mut all = clustered(POINTS + QUERIES, 64, 100, 42);
    let queries = all.split_off(POINTS);
    DataSet { name: "clustered-64d", dimension: 64, base: all, queries }
}

fn uniform_set() -> DataSet {
    DataSet {
        name: "uniform-32d",
        dimension: 32,
        base: uniform(POINTS, 32, 7),
        queries: uniform(QUERIES, 32, 8),
    }
}

fn build(data: &DataSet, config: IndexConfig) -> Index {
    let index = Index::new(data.dimension, Metric::L2, config).expect("index");
    // in batches, as the service would ingest, so IVF trains part-way through and assigns the rest
    let items: Vec<(SlotId, &[f32])> = (0..).zip(as_slices(&data.base)).collect();
    for batch in items.chunks(2_500) {
        index.upsert_batch(batch).expect("upsert batch");
    }
    assert_eq!(index.len(), POINTS);
    index
}

fn exact(data: &DataSet) -> Vec<Vec<Hit>> {
    build(data, IndexConfig::Flat)
        .search_batch(&as_slices(&data.queries), &SearchParams::top(K), None)
        .expect("exact search")
}

fn measure(data: &DataSet, config: IndexConfig) -> f64 {
    let truth = exact(data);
    let started = Instant::now();
    let index = build(data, config.clone());
    let build_time = started.elapsed();
    assert!(index.is_trained());
    let started = Instant::now();
    let found = index.search_batch(&as_slices(&data.queries), &SearchParams::top(K), None).expect("search");
    let search_time = started.elapsed();
    // the single-query path gives the same answers
    for (query, hits) in data.queries.iter().zip(&found).take(20) {
        assert_eq!(&index.search(query, &SearchParams::top(K), None).expect("search"), hits);
    }
    let measured = recall(&truth, &found, K);
    eprintln!(
        "{} {:?}: recall@{K} {measured:.4} (build {build_time:.2?}, {QUERIES} queries {search_time:.2?})",
        data.name,
        index.config()
    );
    measured
}

fn hnsw_defaults() -> IndexConfig {
    IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 }
}

fn ivf_defaults() -> IndexConfig {
    IndexConfig::Ivf { nlist: 0, nprobe: 0 }
}

#[test]
fn hnsw_defaults_reach_the_recall_goal_on_clustered_data() {
    let measured = measure(&clustered_set(), hnsw_defaults());
    assert!(measured >= RECALL_GOAL, "recall {measured}");
}

#[test]
fn hnsw_defaults_reach_the_recall_goal_on_uniform_data() {
    let measured = measure(&uniform_set(), hnsw_defaults());
    assert!(measured >= RECALL_GOAL, "recall {measured}");
}

#[test]
fn ivf_defaults_reach_the_recall_goal_on_clustered_data() {
    let measured = measure(&clustered_set(), ivf_defaults());
    assert!(measured >= RECALL_GOAL, "recall {measured}");
}

#[test]
fn ivf_defaults_reach_the_recall_goal_on_uniform_data() {
    let measured = measure(&uniform_set(), ivf_defaults());
    assert!(measured >= RECALL_GOAL, "recall {measured}");
}

#[test]
#[ignore = "parameter sweep for tuning defaults"]
fn sweep_ivf_nprobe() {
    for data in [uniform_set(), clustered_set()] {
        let truth = exact(&data);
        let index = build(&data, ivf_defaults());
        for nprobe in [16, 32, 48, 64, 96, 128] {
            let params = SearchParams { k: K, ef: None, nprobe: Some(nprobe) };
            let started = Instant::now();
            let found = index.search_batch(&as_slices(&data.queries), &params, None).expect("search");
            eprintln!(
                "{} nprobe {nprobe}: {:.4} in {:.2?}",
                data.name,
                recall(&truth, &found, K),
                started.elapsed()
            );
        }
    }
}

#[test]
#[ignore = "parameter sweep for tuning defaults"]
fn sweep_hnsw_ef() {
    for data in [uniform_set(), clustered_set()] {
        let truth = exact(&data);
        let index = build(&data, hnsw_defaults());
        for ef in [32, 48, 64, 96, 128] {
            let params = SearchParams { k: K, ef: Some(ef), nprobe: None };
            let found = index.search_batch(&as_slices(&data.queries), &params, None).expect("search");
            eprintln!("{} ef {ef}: {:.4}", data.name, recall(&truth, &found, K));
        }
    }
}
