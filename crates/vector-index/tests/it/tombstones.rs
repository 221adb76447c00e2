//! Deletes leave tombstones that are never returned, freed slots can be reused at once, and
//! compaction drops tombstones while the index stays usable.

use std::collections::HashMap;

use sutazai_vector_index::{Index, IndexConfig, IndexOptions, Metric, SearchParams, SlotId};

use crate::common::{as_slices, brute_force, clustered, recall, uniform};

const DIMENSION: usize = 16;

fn graph_only_hnsw() -> Index {
    Index::with_options(
        DIMENSION,
        Metric::L2,
        IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 },
        IndexOptions { exact_search_below: 0, ..IndexOptions::default() },
    )
    .expect("index")
}

/// Every live point keeps its vector and is found by it, except that a graph built by parallel
/// inserts may leave a rare node without in-links (HNSW pruning; measured: at most 1 of 2,500
/// when the test shares the cores with other tests), so up to 0.2 % may be missed — never
/// answered with a removed slot.
fn assert_found_by_own_vector(index: &Index, live: &HashMap<SlotId, Vec<f32>>) {
    let mut missed = Vec::new();
    for (slot, vector) in live {
        let hits = index.search(vector, &SearchParams::top(1), None).expect("search");
        assert!(live.contains_key(&hits[0].slot), "removed slot {} returned", hits[0].slot);
        if (hits[0].slot, hits[0].score) != (*slot, 0.0) {
            missed.push(*slot);
        }
        assert_eq!(index.get(*slot).as_ref(), Some(vector));
    }
    assert!(
        missed.len() * 500 <= live.len(),
        "{} of {} points not found by their own vector: {missed:?}",
        missed.len(),
        live.len()
    );
}

#[test]
fn hnsw_tombstones_are_never_returned_and_compaction_removes_them() {
    let index = graph_only_hnsw();
    // same clusters for the base and for the vectors that reuse slots later
    let mut vectors = clustered(3_700, DIMENSION, 30, 8);
    let fresh = vectors.split_off(3_000);
    let items: Vec<(SlotId, &[f32])> = (0..).zip(as_slices(&vectors)).collect();
    index.upsert_batch(&items).expect("upsert");
    let mut live: HashMap<SlotId, Vec<f32>> = (0..).zip(vectors.clone()).collect();

    for slot in (0..3_000).step_by(3) {
        assert!(index.remove(slot));
        assert!(!index.remove(slot), "a second remove finds nothing");
        live.remove(&slot);
    }
    assert_eq!((index.len(), index.tombstones()), (2_000, 1_000));
    assert!(!index.contains(0) && index.get(0).is_none());
    // querying with removed vectors never returns their slots
    for slot in (0..3_000u32).step_by(3).take(200) {
        let hits = index.search(&vectors[slot as usize], &SearchParams::top(20), None).expect("search");
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|hit| live.contains_key(&hit.slot)));
    }

    // freed slots are reused with new vectors; live slots are replaced
    for (position, vector) in fresh.iter().enumerate() {
        let slot = if position < 500 { position as SlotId * 3 } else { position as SlotId * 3 + 1 };
        index.upsert(slot, vector).expect("upsert");
        live.insert(slot, vector.clone());
    }
    assert_eq!((index.len(), index.tombstones()), (2_500, 1_200));
    assert_found_by_own_vector(&index, &live);

    let before = index.memory_bytes();
    index.compact();
    assert_eq!((index.len(), index.tombstones()), (2_500, 0));
    assert!(index.memory_bytes() < before, "{} !< {before}", index.memory_bytes());
    assert_found_by_own_vector(&index, &live);

    let points: Vec<(SlotId, Vec<f32>)> = live.iter().map(|(slot, vector)| (*slot, vector.clone())).collect();
    let queries = clustered(100, DIMENSION, 30, 8_008);
    let truth: Vec<_> =
        queries.iter().map(|query| brute_force(Metric::L2, &points, query, 10, |_| true)).collect();
    let found = index.search_batch(&as_slices(&queries), &SearchParams::top(10), None).expect("search");
    let measured = recall(&truth, &found, 10);
    // Compaction rebuilds the graph with parallel inserts; sharing the cores with other tests
    // changes their interleaving and the graph with it (0.949 seen under load, 1.0 alone). The
    // recall goal itself is checked on fresh indexes in `recall.rs`; this checks the rebuilt
    // graph is still a working one.
    assert!(measured >= 0.9, "recall after compaction {measured}");
}

#[test]
fn freed_slots_are_reused_in_every_index_kind() {
    for config in [
        IndexConfig::Flat,
        IndexConfig::Ivf { nlist: 4, nprobe: 1 },
        IndexConfig::Hnsw { m: 4, ef_construction: 20, ef_search: 10 },
    ] {
        let index = Index::with_options(
            2,
            Metric::L2,
            config.clone(),
            IndexOptions { exact_search_below: 0, ivf_train_threshold: Some(8), ..IndexOptions::default() },
        )
        .expect("index");
        for slot in 0..10u32 {
            index.upsert(slot, &[slot as f32, 0.0]).expect("upsert");
        }
        assert!(index.remove(4));
        assert!(!index.contains(4));
        let hits = index.search(&[4.0, 0.0], &SearchParams::top(3), None).expect("search");
        assert!(hits.iter().all(|hit| hit.slot != 4), "{config:?}");
        index.upsert(4, &[100.0, 100.0]).expect("reuse");
        assert_eq!(index.get(4), Some(vec![100.0, 100.0]));
        let hits = index.search(&[100.0, 100.0], &SearchParams::top(1), None).expect("search");
        assert_eq!((hits[0].slot, hits[0].score), (4, 0.0), "{config:?}");
        assert_eq!(index.len(), 10);
        index.compact();
        assert_eq!(index.len(), 10, "{config:?}");
        assert_eq!(index.get(4), Some(vec![100.0, 100.0]));
    }
}

#[test]
fn upserts_and_removes_during_compaction_are_kept() {
    let index = graph_only_hnsw();
    let vectors = uniform(4_000, DIMENSION, 1);
    let items: Vec<(SlotId, &[f32])> = (0..2_000).zip(as_slices(&vectors[..2_000])).collect();
    index.upsert_batch(&items).expect("upsert");
    for slot in 0..500 {
        index.remove(slot);
    }
    std::thread::scope(|scope| {
        scope.spawn(|| index.compact());
        scope.spawn(|| {
            // new slots, removals and replacements racing the rebuild
            for slot in 2_000..2_600u32 {
                index.upsert(slot, &vectors[slot as usize]).expect("upsert");
                index.remove(slot - 1_000);
                index.upsert(slot - 1_400, &vectors[slot as usize + 1_000]).expect("replace");
            }
        });
    });
    let mut expected: HashMap<SlotId, Vec<f32>> = HashMap::new();
    for slot in 500..2_000u32 {
        expected.insert(slot, vectors[slot as usize].clone());
    }
    for slot in 2_000..2_600u32 {
        expected.insert(slot, vectors[slot as usize].clone());
        expected.remove(&(slot - 1_000));
        expected.insert(slot - 1_400, vectors[slot as usize + 1_000].clone());
    }
    assert_eq!(index.len(), expected.len());
    for slot in 0..2_600 {
        assert_eq!(index.get(slot).as_ref(), expected.get(&slot), "slot {slot}");
    }
    assert_found_by_own_vector(&index, &expected);
}
