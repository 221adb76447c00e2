//! Payload filters in search and delete: match, in, range, must_not, nested should, dotted paths;
//! a filtered search still fills k when k points match.

use serde_json::{Value, json};
use sutazai_proto::json::to_proto_value;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::condition::Condition as Kind;
use tonic::Code;

use crate::{TestVector, assert_status, hit_ids, num, point, query, spawn, spawn_with};

fn matching(key: &str, value: Value) -> pb::Condition {
    pb::Condition { key: key.to_owned(), condition: Some(Kind::Match(to_proto_value(&value))) }
}

fn one_of(key: &str, values: &[Value]) -> pb::Condition {
    pb::Condition {
        key: key.to_owned(),
        condition: Some(Kind::In(pb::ValueList { values: values.iter().map(to_proto_value).collect() })),
    }
}

fn range(key: &str, range: pb::Range) -> pb::Condition {
    pb::Condition { key: key.to_owned(), condition: Some(Kind::Range(range)) }
}

fn nested(filter: pb::Filter) -> pb::Condition {
    pb::Condition { key: String::new(), condition: Some(Kind::Filter(filter)) }
}

/// 1000 points on a line (point i at (i, 0)), payloads with a group (i % 100), a parity, a
/// nested author, and a list of tags.
async fn thousand_points(service: &mut TestVector, index: Option<pb::IndexConfig>) {
    service.create("docs", 2, pb::DistanceMetric::L2, index).await;
    for chunk in 0..4_u64 {
        let points = (chunk * 250..(chunk + 1) * 250)
            .map(|i| {
                let payload = json!({
                    "group": i % 100,
                    "even": i % 2 == 0,
                    "author": {"name": if i % 3 == 0 { "ada" } else { "bob" }, "year": 1900 + i % 50},
                    "tags": [format!("t{}", i % 7), "all"],
                });
                point(num(i), vec![i as f32, 0.0], Some(payload))
            })
            .collect();
        service.upsert("docs", points).await;
    }
}

async fn filtered(
    service: &mut TestVector,
    vector: Vec<f32>,
    k: u32,
    filter: pb::Filter,
) -> Vec<pb::ScoredPoint> {
    let request = pb::SearchRequest { filter: Some(filter), with_payload: true, ..query("docs", vector, k) };
    service.search(request).await.unwrap()
}

#[tokio::test]
async fn fifteen_matches_out_of_a_thousand_fill_k_of_ten() {
    let ivf = Some(pb::IndexConfig {
        kind: Some(pb::index_config::Kind::Ivf(pb::IvfIndexConfig { nlist: 16, nprobe: 1 })),
    });
    for index in [None, crate::flat(), ivf] {
        let mut service = spawn().await;
        thousand_points(&mut service, index).await;
        // Group 7 (10 points), group 42 by ada (4), and group 99 tagged t1 but not by ada (1).
        let filter = pb::Filter {
            should: vec![
                matching("group", json!(7)),
                nested(pb::Filter {
                    must: vec![matching("group", json!(42)), matching("author.name", json!("ada"))],
                    ..pb::Filter::default()
                }),
                nested(pb::Filter {
                    must: vec![
                        range("group", pb::Range { gt: Some(98.5), ..pb::Range::default() }),
                        matching("tags", json!("t1")),
                    ],
                    must_not: vec![matching("author.name", json!("ada"))],
                    ..pb::Filter::default()
                }),
            ],
            ..pb::Filter::default()
        };
        let matches: Vec<u64> = (0..1000_u64)
            .filter(|i| {
                i % 100 == 7 || (i % 100 == 42 && i % 3 == 0) || (i % 100 == 99 && i % 7 == 1 && i % 3 != 0)
            })
            .collect();
        assert_eq!(matches.len(), 15, "{matches:?}");
        // The nearest matching points to (1000, 0) are the largest matching ids.
        let hits = filtered(&mut service, vec![1000.0, 0.0], 10, filter.clone()).await;
        let expected: Vec<pb::PointId> = matches.iter().rev().take(10).map(|i| num(*i)).collect();
        assert_eq!(hit_ids(&hits), expected, "{index:?}");
        let all = filtered(&mut service, vec![1000.0, 0.0], 100, filter).await;
        assert_eq!(all.len(), 15, "k larger than the matches returns every match ({index:?})");
    }
}

#[tokio::test]
async fn match_in_range_must_not_lists_and_missing_fields() {
    let mut service = spawn().await;
    thousand_points(&mut service, crate::flat()).await;
    service.upsert("docs", vec![point(num(5000), vec![0.5, 0.0], None)]).await;
    let count = |hits: &[pb::ScoredPoint]| hits.len();

    let ada = filtered(
        &mut service,
        vec![0.0, 0.0],
        1000,
        pb::Filter { must: vec![matching("author.name", json!("ada"))], ..pb::Filter::default() },
    )
    .await;
    assert_eq!(count(&ada), 334);
    let tagged = filtered(
        &mut service,
        vec![0.0, 0.0],
        1000,
        pb::Filter { must: vec![matching("tags", json!("t3"))], ..pb::Filter::default() },
    )
    .await;
    assert_eq!(count(&tagged), (0..1000).filter(|i| i % 7 == 3).count(), "a list field matches any element");
    let years = filtered(
        &mut service,
        vec![0.0, 0.0],
        1000,
        pb::Filter {
            must: vec![range(
                "author.year",
                pb::Range { gt: Some(1945.0), lte: Some(1947.0), ..pb::Range::default() },
            )],
            ..pb::Filter::default()
        },
    )
    .await;
    assert_eq!(count(&years), 40);
    // must_not keeps the point without any payload.
    let not_even = filtered(
        &mut service,
        vec![0.0, 0.0],
        1000,
        pb::Filter { must_not: vec![matching("even", json!(true))], ..pb::Filter::default() },
    )
    .await;
    assert_eq!(count(&not_even), 501);
    assert_eq!(hit_ids(&not_even)[0], num(5000));
    let neither = filtered(
        &mut service,
        vec![0.0, 0.0],
        1000,
        pb::Filter {
            must: vec![one_of("group", &[json!(1), json!("1")])],
            must_not: vec![one_of("author.name", &[json!("bob")])],
            ..pb::Filter::default()
        },
    )
    .await;
    assert_eq!(hit_ids(&neither), [num(201), num(501), num(801)]);
    let none = filtered(
        &mut service,
        vec![0.0, 0.0],
        10,
        pb::Filter { must: vec![matching("nope.deeper", json!(1))], ..pb::Filter::default() },
    )
    .await;
    assert!(none.is_empty());

    let bad = pb::Filter { must: vec![range("group", pb::Range::default())], ..pb::Filter::default() };
    let request = pb::SearchRequest { filter: Some(bad), ..query("docs", vec![0.0, 0.0], 1) };
    assert_status(
        &service.search(request).await.unwrap_err(),
        Code::InvalidArgument,
        "filter.must[0].range: needs at least one of",
    );
    let bad = pb::Filter { should: vec![matching("", json!(1))], ..pb::Filter::default() };
    let request = pb::SearchRequest { filter: Some(bad), ..query("docs", vec![0.0, 0.0], 1) };
    assert_status(
        &service.search(request).await.unwrap_err(),
        Code::InvalidArgument,
        "filter.should[0].key: ",
    );
}

#[tokio::test]
async fn delete_by_filter_counts_what_existed() {
    let mut service = spawn().await;
    thousand_points(&mut service, None).await;
    let delete = |filter: pb::Filter| pb::DeletePointsRequest {
        collection: "docs".to_owned(),
        selector: Some(pb::delete_points_request::Selector::Filter(filter)),
    };
    let group_five = pb::Filter { must: vec![matching("group", json!(5))], ..pb::Filter::default() };
    let request = service.request(delete(group_five.clone()));
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 10);
    let request = service.request(delete(group_five.clone()));
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 0, "already gone");
    assert_eq!(service.collection("docs").await.unwrap().point_count, 990);
    assert_eq!(service.get("docs", num(105)).await.unwrap_err().code(), Code::NotFound);
    assert!(filtered(&mut service, vec![0.0, 0.0], 10, group_five).await.is_empty());

    let request = service.request(delete(pb::Filter::default()));
    assert_status(
        &service.client.delete_points(request).await.unwrap_err(),
        Code::InvalidArgument,
        "filter: must hold at least one condition",
    );
    assert_eq!(service.collection("docs").await.unwrap().point_count, 990);
    let request = service.request(pb::DeletePointsRequest { collection: "docs".to_owned(), selector: None });
    assert_status(
        &service.client.delete_points(request).await.unwrap_err(),
        Code::InvalidArgument,
        "selector: ",
    );
    let bad = pb::Filter { must: vec![pb::Condition::default()], ..pb::Filter::default() };
    let request = service.request(delete(bad));
    assert_status(
        &service.client.delete_points(request).await.unwrap_err(),
        Code::InvalidArgument,
        "filter.must[0]: needs one of",
    );
    // An empty filter nested anywhere matches every point, so it is refused like the top level.
    let nested_empty = pb::Filter {
        must: vec![matching("group", json!(6))],
        must_not: vec![pb::Condition {
            key: String::new(),
            condition: Some(Kind::Filter(pb::Filter {
                should: vec![pb::Condition {
                    key: String::new(),
                    condition: Some(Kind::Filter(pb::Filter::default())),
                }],
                ..pb::Filter::default()
            })),
        }],
        ..pb::Filter::default()
    };
    let request = service.request(delete(nested_empty));
    assert_status(
        &service.client.delete_points(request).await.unwrap_err(),
        Code::InvalidArgument,
        "filter: every nested filter must hold at least one condition",
    );
    assert_eq!(service.collection("docs").await.unwrap().point_count, 990);
}

#[tokio::test]
async fn searches_are_capped_in_total_hits() {
    let mut service = spawn_with(crate::NO_LLM, |settings| settings.max_search_queries = 1000).await;
    thousand_points(&mut service, None).await;
    let mut request = query("docs", vec![0.0, 0.0], 10_000);
    request.queries = vec![pb::QueryVector { vector: vec![0.0, 0.0] }; 101];
    let status = service.client.search(service.request(request)).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "k: 101 queries × k 10000 exceed 1000000 hits per request");
    let mut request = query("docs", vec![0.0, 0.0], 10_000);
    request.queries = vec![pb::QueryVector { vector: vec![0.0, 0.0] }; 100];
    let results = service.client.search(service.request(request)).await.unwrap().into_inner().results;
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|hits| hits.hits.len() == 1000));
}
