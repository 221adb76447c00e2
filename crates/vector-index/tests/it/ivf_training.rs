//! IVF answers exactly until trained, trains by itself at the threshold, and can be retrained.

use sutazai_vector_index::{Index, IndexConfig, IndexOptions, Metric, SearchParams, SlotId};

use crate::common::{as_slices, brute_force, clustered};

#[test]
fn untrained_ivf_answers_exactly_then_trains_at_the_threshold() {
    let dimension = 16;
    let vectors = clustered(3_000, dimension, 20, 77);
    let points: Vec<(SlotId, Vec<f32>)> = (0..).zip(vectors.clone()).collect();
    let index = Index::with_options(
        dimension,
        Metric::L2,
        IndexConfig::Ivf { nlist: 32, nprobe: 2 },
        IndexOptions { ivf_train_threshold: Some(2_000), ..IndexOptions::default() },
    )
    .expect("index");
    let items: Vec<(SlotId, &[f32])> = (0..).zip(as_slices(&vectors)).collect();

    index.upsert_batch(&items[..1_999]).expect("upsert");
    assert!(!index.is_trained());
    let query = &vectors[2_500];
    let exact = brute_force(Metric::L2, &points[..1_999], query, 10, |_| true);
    assert_eq!(
        index.search(query, &SearchParams::top(10), None).expect("search"),
        exact,
        "untrained is exact"
    );

    // the upsert that reaches the threshold trains
    index.upsert(1_999, &vectors[1_999]).expect("upsert");
    assert!(index.is_trained());
    assert_eq!(index.len(), 2_000);
    // later points are assigned to lists; each point is still found by its own vector
    index.upsert_batch(&items[2_000..]).expect("upsert");
    for (slot, vector) in points.iter().step_by(97) {
        let hits = index.search(vector, &SearchParams::top(1), None).expect("search");
        assert_eq!(hits[0].score, 0.0);
        assert_eq!(hits[0].slot, *slot);
    }
    // probing every list is exact again
    let everything = SearchParams { k: 10, ef: None, nprobe: Some(32) };
    assert_eq!(
        index.search(query, &everything, None).expect("search"),
        brute_force(Metric::L2, &points, query, 10, |_| true)
    );
}

#[test]
fn explicit_training_and_compaction_keep_every_point() {
    let dimension = 8;
    let vectors = clustered(600, dimension, 10, 5);
    let index = Index::new(dimension, Metric::InnerProduct, IndexConfig::Ivf { nlist: 16, nprobe: 16 })
        .expect("index");
    let items: Vec<(SlotId, &[f32])> = (0..).zip(as_slices(&vectors)).collect();
    index.upsert_batch(&items).expect("upsert");
    assert!(!index.is_trained(), "600 points are below the default threshold of 1000");
    index.train();
    assert!(index.is_trained());
    for slot in (0..600).step_by(3) {
        assert!(index.remove(slot));
    }
    index.compact();
    assert_eq!(index.len(), 400);
    let points: Vec<(SlotId, Vec<f32>)> = (0..).zip(vectors).filter(|(slot, _)| slot % 3 != 0).collect();
    for (slot, vector) in &points {
        assert_eq!(index.get(*slot).as_ref(), Some(vector));
    }
    // all 16 lists probed: exact
    let query = &points[7].1;
    assert_eq!(
        index.search(query, &SearchParams::top(20), None).expect("search"),
        brute_force(Metric::InnerProduct, &points, query, 20, |_| true)
    );
}

#[test]
fn training_needs_at_least_one_point_per_list() {
    let index = Index::new(2, Metric::L2, IndexConfig::Ivf { nlist: 8, nprobe: 1 }).expect("index");
    index.upsert(0, &[1.0, 2.0]).expect("upsert");
    index.train();
    assert!(!index.is_trained());
    assert_eq!(index.search(&[1.0, 2.0], &SearchParams::top(1), None).expect("search")[0].slot, 0);
}
