//! Defaults, parameter validation and input validation.

use sutazai_vector_index::{
    DEFAULT_HNSW_EF_CONSTRUCTION, DEFAULT_HNSW_EF_SEARCH, DEFAULT_HNSW_M, DEFAULT_IVF_NLIST, Index,
    IndexConfig, IndexError, Metric, SearchParams, default_ivf_nprobe,
};

fn invalid_field(result: Result<Index, IndexError>) -> &'static str {
    match result {
        Err(IndexError::InvalidParameter { field, .. }) => field,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn zero_fields_take_the_defaults() {
    let hnsw = IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 }.with_defaults();
    assert_eq!(
        hnsw,
        IndexConfig::Hnsw {
            m: DEFAULT_HNSW_M,
            ef_construction: DEFAULT_HNSW_EF_CONSTRUCTION,
            ef_search: DEFAULT_HNSW_EF_SEARCH,
        }
    );
    let ivf = IndexConfig::Ivf { nlist: 0, nprobe: 0 }.with_defaults();
    assert_eq!(
        ivf,
        IndexConfig::Ivf { nlist: DEFAULT_IVF_NLIST, nprobe: default_ivf_nprobe(DEFAULT_IVF_NLIST) }
    );
    // a given nlist gets a matching nprobe; given values are kept
    assert_eq!(
        IndexConfig::Ivf { nlist: 64, nprobe: 0 }.with_defaults(),
        IndexConfig::Ivf { nlist: 64, nprobe: default_ivf_nprobe(64) }
    );
    assert_eq!(
        IndexConfig::Hnsw { m: 8, ef_construction: 0, ef_search: 7 }.with_defaults(),
        IndexConfig::Hnsw { m: 8, ef_construction: DEFAULT_HNSW_EF_CONSTRUCTION, ef_search: 7 }
    );
    let index = Index::new(4, Metric::Cosine, IndexConfig::Ivf { nlist: 0, nprobe: 0 }).expect("index");
    assert_eq!(index.config(), &ivf);
    assert_eq!(index.dimension(), 4);
    assert_eq!(index.metric(), Metric::Cosine);
}

#[test]
fn out_of_range_parameters_name_their_field() {
    let hnsw = |m, ef_construction, ef_search| IndexConfig::Hnsw { m, ef_construction, ef_search };
    assert_eq!(invalid_field(Index::new(4, Metric::L2, hnsw(1, 10, 10))), "m");
    assert_eq!(invalid_field(Index::new(4, Metric::L2, hnsw(129, 10, 10))), "m");
    assert_eq!(invalid_field(Index::new(4, Metric::L2, hnsw(16, 10_001, 10))), "ef_construction");
    assert_eq!(invalid_field(Index::new(4, Metric::L2, hnsw(16, 10, 10_001))), "ef_search");
    assert_eq!(
        invalid_field(Index::new(4, Metric::L2, IndexConfig::Ivf { nlist: 65_537, nprobe: 1 })),
        "nlist"
    );
    assert_eq!(invalid_field(Index::new(4, Metric::L2, IndexConfig::Ivf { nlist: 8, nprobe: 9 })), "nprobe");
    assert_eq!(invalid_field(Index::new(0, Metric::L2, IndexConfig::Flat)), "dimension");
    assert!(IndexConfig::Hnsw { m: 2, ef_construction: 1, ef_search: 10_000 }.validate().is_ok());
    assert!(IndexConfig::Ivf { nlist: 65_536, nprobe: 65_536 }.validate().is_ok());
}

#[test]
fn bad_vectors_and_queries_are_refused_without_effect() {
    let index = Index::new(3, Metric::L2, IndexConfig::Flat).expect("index");
    assert_eq!(index.upsert(0, &[1.0, 2.0]), Err(IndexError::DimensionMismatch { expected: 3, actual: 2 }));
    assert_eq!(index.upsert(0, &[1.0, f32::NAN, 0.0]), Err(IndexError::NonFinite { index: 1 }));
    assert_eq!(index.upsert(0, &[1.0, 0.0, f32::INFINITY]), Err(IndexError::NonFinite { index: 2 }));
    assert!(matches!(
        index.upsert(u32::MAX, &[1.0, 0.0, 0.0]),
        Err(IndexError::InvalidParameter { field: "slot", .. })
    ));
    // a batch with one bad item applies nothing
    let good = [1.0, 0.0, 0.0];
    let bad = [1.0, 0.0];
    assert!(index.upsert_batch(&[(1, &good), (2, &bad)]).is_err());
    assert!(index.is_empty());
    assert!(!index.contains(1));

    let params = SearchParams::top(3);
    assert!(matches!(index.search(&[1.0], &params, None), Err(IndexError::DimensionMismatch { .. })));
    assert!(matches!(
        index.search(&[f32::NAN, 0.0, 0.0], &params, None),
        Err(IndexError::NonFinite { index: 0 })
    ));
    let zero_ef = SearchParams { k: 3, ef: Some(0), nprobe: None };
    assert!(matches!(
        index.search(&good, &zero_ef, None),
        Err(IndexError::InvalidParameter { field: "ef", .. })
    ));
    let zero_nprobe = SearchParams { k: 3, ef: None, nprobe: Some(0) };
    assert!(matches!(
        index.search(&good, &zero_nprobe, None),
        Err(IndexError::InvalidParameter { field: "nprobe", .. })
    ));
    assert!(matches!(
        index.search_batch(&[&good, &bad], &params, None),
        Err(IndexError::DimensionMismatch { .. })
    ));
}

#[test]
fn scores_follow_the_metric_convention() {
    assert!(!Metric::L2.higher_is_better());
    assert!(Metric::InnerProduct.higher_is_better());
    assert!(Metric::Cosine.higher_is_better());

    let cosine = Index::new(2, Metric::Cosine, IndexConfig::Flat).expect("index");
    cosine.upsert(0, &[3.0, 4.0]).expect("upsert");
    cosine.upsert(1, &[-1.0, 0.0]).expect("upsert");
    let stored = cosine.get(0).expect("stored");
    assert!((stored[0] - 0.6).abs() < 1e-6 && (stored[1] - 0.8).abs() < 1e-6, "stored normalized");
    let hits = cosine.search(&[6.0, 8.0], &SearchParams::top(2), None).expect("search");
    assert_eq!(hits[0].slot, 0);
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert!((hits[1].score + 0.6).abs() < 1e-6);

    let l2 = Index::new(2, Metric::L2, IndexConfig::Flat).expect("index");
    l2.upsert(0, &[3.0, 4.0]).expect("upsert");
    assert_eq!(l2.search(&[0.0, 0.0], &SearchParams::top(1), None).expect("search")[0].score, 25.0);
}
