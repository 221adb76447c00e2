//! Points: upsert, read, delete by id, search; ids, vectors and k checked as the contract says.

use serde_json::json;
use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{assert_status, flat, hit_ids, num, payload_json, point, query, spawn, text};

#[tokio::test]
async fn upsert_get_replace_and_delete_with_string_and_numeric_ids() {
    let mut service = spawn().await;
    service.create("docs", 3, pb::DistanceMetric::L2, flat()).await;
    let upserted = service
        .upsert(
            "docs",
            vec![
                point(num(7), vec![1.0, 2.0, 3.0], Some(json!({"kind": "number", "n": 7}))),
                point(text("7"), vec![4.0, 5.0, 6.0], Some(json!({"kind": "string"}))),
                point(text("doc-ü"), vec![0.5, 0.25, -1.5], None),
            ],
        )
        .await;
    assert_eq!(upserted, 3);

    let number = service.get("docs", num(7)).await.unwrap();
    assert_eq!(number.id, Some(num(7)));
    assert_eq!(number.vector, [1.0, 2.0, 3.0]);
    assert_eq!(payload_json(number.payload.as_ref()), json!({"kind": "number", "n": 7}));
    let string = service.get("docs", text("7")).await.unwrap();
    assert_eq!(string.vector, [4.0, 5.0, 6.0]);
    assert_eq!(payload_json(string.payload.as_ref()), json!({"kind": "string"}));
    let unicode = service.get("docs", text("doc-ü")).await.unwrap();
    assert!(unicode.payload.is_none());

    let status = service.get("docs", num(8)).await.unwrap_err();
    assert_status(&status, Code::NotFound, "point 8 not found");
    let status = service.get("docs", text("8")).await.unwrap_err();
    assert_status(&status, Code::NotFound, "point \"8\" not found");

    // Upsert by id replaces vector and payload.
    service.upsert("docs", vec![point(num(7), vec![9.0, 9.0, 9.0], None)]).await;
    let replaced = service.get("docs", num(7)).await.unwrap();
    assert_eq!(replaced.vector, [9.0, 9.0, 9.0]);
    assert!(replaced.payload.is_none());
    assert_eq!(service.collection("docs").await.unwrap().point_count, 3);

    let request = service.request(pb::DeletePointsRequest {
        collection: "docs".to_owned(),
        selector: Some(pb::delete_points_request::Selector::Ids(pb::PointIdList {
            ids: vec![num(7), num(7), text("missing")],
        })),
    });
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 1);
    assert_eq!(service.get("docs", num(7)).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(service.get("docs", text("7")).await.unwrap().vector, [4.0, 5.0, 6.0], "the string id stays");
    assert_eq!(service.collection("docs").await.unwrap().point_count, 2);
}

#[tokio::test]
async fn bad_vectors_and_ids_refuse_the_whole_batch() {
    let mut service = spawn().await;
    service.create("docs", 3, pb::DistanceMetric::L2, None).await;
    let good = || point(num(1), vec![1.0, 1.0, 1.0], None);
    let cases = [
        (point(num(2), vec![1.0, 1.0], None), "points[1].vector: expected 3 components, got 2"),
        (
            point(num(2), vec![1.0, f32::NAN, 1.0], None),
            "points[1].vector: component 1 is not a finite number",
        ),
        (
            point(num(2), vec![1.0, 1.0, f32::INFINITY], None),
            "points[1].vector: component 2 is not a finite number",
        ),
        (
            point(num(2), vec![f32::NEG_INFINITY, 1.0, 1.0], None),
            "points[1].vector: component 0 is not a finite number",
        ),
        (point(text(""), vec![1.0, 1.0, 1.0], None), "points[1].id: must be 1 to 256 bytes"),
        (point(text(&"x".repeat(257)), vec![1.0, 1.0, 1.0], None), "points[1].id: must be 1 to 256 bytes"),
        (pb::Point { id: None, vector: vec![1.0, 1.0, 1.0], payload: None }, "points[1].id: required"),
    ];
    for (bad, expected) in cases {
        let request =
            service.request(pb::UpsertRequest { collection: "docs".to_owned(), points: vec![good(), bad] });
        let status = service.client.upsert(request).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, expected);
    }
    let request = service.request(pb::UpsertRequest { collection: "docs".to_owned(), points: vec![] });
    assert_status(
        &service.client.upsert(request).await.unwrap_err(),
        Code::InvalidArgument,
        "points: must hold at least one point",
    );
    assert_eq!(
        service.collection("docs").await.unwrap().point_count,
        0,
        "nothing of a refused batch is stored"
    );
    assert_eq!(service.get("docs", num(1)).await.unwrap_err().code(), Code::NotFound);
    assert!(
        service
            .get("docs", text(&"x".repeat(256)))
            .await
            .is_err_and(|status| status.code() == Code::NotFound)
    );
}

#[tokio::test]
async fn search_orders_by_score_then_id_and_checks_k() {
    let mut service = spawn().await;
    service.create("l2", 2, pb::DistanceMetric::L2, flat()).await;
    service
        .upsert(
            "l2",
            vec![
                point(text("b"), vec![1.0, 0.0], Some(json!({"n": 1}))),
                point(num(5), vec![0.0, 1.0], Some(json!({"n": 2}))),
                point(text("a"), vec![-1.0, 0.0], None),
                point(num(9), vec![3.0, 4.0], None),
            ],
        )
        .await;
    let hits = service.search(query("l2", vec![0.0, 0.0], 10)).await.unwrap();
    // Three tie at distance 1: numeric ids first, then strings in order; then the far one.
    assert_eq!(hit_ids(&hits), [num(5), text("a"), text("b"), num(9)]);
    assert_eq!(hits.iter().map(|hit| hit.score).collect::<Vec<_>>(), [1.0, 1.0, 1.0, 25.0]);
    assert!(hits.iter().all(|hit| hit.payload.is_none() && hit.vector.is_empty()), "not asked for");

    let request =
        pb::SearchRequest { with_payload: true, with_vector: true, ..query("l2", vec![0.9, 0.0], 2) };
    let hits = service.search(request).await.unwrap();
    assert_eq!(hit_ids(&hits), [text("b"), num(5)]);
    assert_eq!(payload_json(hits[0].payload.as_ref()), json!({"n": 1}));
    assert_eq!(hits[0].vector, [1.0, 0.0]);
    assert!((hits[0].score - 0.01).abs() < 1e-6);

    for bad_k in [0, 10_001] {
        let status = service.search(query("l2", vec![0.0, 0.0], bad_k)).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, "k: must be between 1 and 10000");
    }
    let status = service.search(query("l2", vec![0.0], 1)).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "queries[0].vector: expected 2 components, got 1");
    let status = service.search(query("l2", vec![0.0, f32::NAN], 1)).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "queries[0].vector: component 1 is not a finite number");
    let status = service
        .search(pb::SearchRequest { ef: Some(0), ..query("l2", vec![0.0, 0.0], 1) })
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "ef: must be at least 1");

    // Several queries, answered in order; inner product and cosine score by similarity.
    service.create("ip", 2, pb::DistanceMetric::Ip, None).await;
    service
        .upsert("ip", vec![point(num(1), vec![1.0, 0.0], None), point(num(2), vec![2.0, 2.0], None)])
        .await;
    let request = service.request(pb::SearchRequest {
        collection: "ip".to_owned(),
        queries: vec![
            pb::QueryVector { vector: vec![1.0, 0.0] },
            pb::QueryVector { vector: vec![-1.0, 0.0] },
        ],
        k: 2,
        ..pb::SearchRequest::default()
    });
    let results = service.client.search(request).await.unwrap().into_inner().results;
    assert_eq!(hit_ids(&results[0].hits), [num(2), num(1)]);
    assert_eq!(results[0].hits.iter().map(|hit| hit.score).collect::<Vec<_>>(), [2.0, 1.0]);
    assert_eq!(hit_ids(&results[1].hits), [num(1), num(2)]);
    let request = service.request(pb::SearchRequest {
        collection: "ip".to_owned(),
        queries: vec![],
        k: 1,
        ..pb::SearchRequest::default()
    });
    assert_status(
        &service.client.search(request).await.unwrap_err(),
        Code::InvalidArgument,
        "queries: must hold 1 to 100",
    );

    service.create("cos", 2, pb::DistanceMetric::Cosine, None).await;
    service
        .upsert("cos", vec![point(num(1), vec![3.0, 4.0], None), point(num(2), vec![-4.0, 3.0], None)])
        .await;
    let hits = service
        .search(pb::SearchRequest { with_vector: true, ..query("cos", vec![6.0, 8.0], 2) })
        .await
        .unwrap();
    assert_eq!(hit_ids(&hits), [num(1), num(2)]);
    assert!((hits[0].score - 1.0).abs() < 1e-6 && hits[1].score.abs() < 1e-6);
    assert_eq!(hits[0].vector, [3.0, 4.0], "the vector as given, not the normalized one");
    assert_eq!(service.get("cos", num(2)).await.unwrap().vector, [-4.0, 3.0]);
}

#[tokio::test]
async fn concurrent_writers_are_all_durable_and_visible() {
    let service = spawn().await;
    let mut client = service.client.clone();
    let request = service.request(pb::CreateCollectionRequest {
        name: "busy".to_owned(),
        dimension: 4,
        metric: pb::DistanceMetric::L2.into(),
        index: None,
    });
    client.create_collection(request).await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8_u64 {
        let mut client = service.client.clone();
        let token = service.issuer.user_token("writer", &["vectors:write"]);
        writers.spawn(async move {
            for batch in 0..25_u64 {
                let points = (0..4_u64)
                    .map(|offset| {
                        let id = writer * 1000 + batch * 4 + offset;
                        point(num(id), vec![id as f32, 1.0, 2.0, 3.0], None)
                    })
                    .collect();
                let request =
                    crate::with_token(pb::UpsertRequest { collection: "busy".to_owned(), points }, &token);
                assert_eq!(client.upsert(request).await.unwrap().into_inner().upserted, 4);
            }
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.unwrap();
    }
    let mut service = service;
    assert_eq!(service.collection("busy").await.unwrap().point_count, 800);
    assert_eq!(service.get("busy", num(7_099)).await.unwrap().vector, [7_099.0, 1.0, 2.0, 3.0]);
    // The gauges are set just after the writer has answered the batch's callers, so the last
    // commit's value may show a moment after its upsert returned.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let metrics = loop {
        let metrics =
            reqwest::get(format!("http://{}/metrics", service.address)).await.unwrap().text().await.unwrap();
        if metrics.contains("vector_points{collection=\"busy\"} 800") || std::time::Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(metrics.contains("vector_points{collection=\"busy\"} 800"), "{metrics}");
    assert!(metrics.contains("vector_upsert_duration_seconds_count{collection=\"busy\"} 200"), "{metrics}");
    assert!(metrics.contains("vector_wal_group_commit_writes"));
}
