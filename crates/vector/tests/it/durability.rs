//! Durability: what was acknowledged survives a restart on the same data directory (points,
//! payloads, replacements, deletes, whole collections), through snapshots and log replay, and a
//! torn log tail is cut instead of failing the start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sutazai_proto::json::to_proto_value;
use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{TestVector, flat, hit_ids, num, payload_json, point, query, spawn, spawn_with, text};

/// The log segments of a collection, oldest first.
fn segments(directory: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .collect();
    found.sort();
    found
}

fn delete_ids(collection: &str, ids: Vec<pb::PointId>) -> pb::DeletePointsRequest {
    pb::DeletePointsRequest {
        collection: collection.to_owned(),
        selector: Some(pb::delete_points_request::Selector::Ids(pb::PointIdList { ids })),
    }
}

async fn write_history(service: &mut TestVector) -> pb::Collection {
    let created = service.create("docs", 3, pb::DistanceMetric::Cosine, None).await;
    service.create("plain", 2, pb::DistanceMetric::L2, flat()).await;
    service.create("doomed", 2, pb::DistanceMetric::L2, flat()).await;
    let points = (0..200_u64)
        .map(|i| {
            point(
                num(i),
                vec![i as f32 + 1.0, 2.0, -(i as f32)],
                Some(json!({"i": i, "half": i % 2, "name": format!("p{i}")})),
            )
        })
        .collect();
    service.upsert("docs", points).await;
    service
        .upsert("docs", vec![point(text("7"), vec![0.1, 0.2, 0.3], Some(json!({"kind": "string id"})))])
        .await;
    // Replace one, delete some by id and some by filter.
    service.upsert("docs", vec![point(num(3), vec![9.0, 9.0, 9.0], Some(json!({"replaced": true})))]).await;
    let request = service.request(delete_ids("docs", vec![num(10), num(11), num(999)]));
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 2);
    let filter = pb::Filter {
        must: vec![pb::Condition {
            key: "i".to_owned(),
            condition: Some(pb::condition::Condition::Range(pb::Range {
                gte: Some(150.0),
                ..pb::Range::default()
            })),
        }],
        ..pb::Filter::default()
    };
    let request = service.request(pb::DeletePointsRequest {
        collection: "docs".to_owned(),
        selector: Some(pb::delete_points_request::Selector::Filter(filter)),
    });
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 50);
    // A point whose id is later re-used after its delete.
    let request = service.request(delete_ids("docs", vec![num(20)]));
    service.client.delete_points(request).await.unwrap();
    service.upsert("docs", vec![point(num(20), vec![2.0, 0.0, 0.0], Some(json!({"again": true})))]).await;
    service.upsert("plain", vec![point(text("a"), vec![1.0, 1.0], None)]).await;
    let request = service.admin_request(pb::DeleteCollectionRequest { name: "doomed".to_owned() });
    service.client.delete_collection(request).await.unwrap();
    created
}

async fn assert_history(service: &mut TestVector, created: &pb::Collection) {
    let docs = service.collection("docs").await.unwrap();
    assert_eq!(docs.point_count, 200 + 1 - 2 - 50);
    assert_eq!(docs.created_at, created.created_at);
    assert_eq!(docs.index, created.index);
    assert_eq!(docs.metric, i32::from(pb::DistanceMetric::Cosine));
    let kept = service.get("docs", num(42)).await.unwrap();
    assert_eq!(kept.vector, [43.0, 2.0, -42.0]);
    assert_eq!(payload_json(kept.payload.as_ref()), json!({"i": 42, "half": 0, "name": "p42"}));
    let replaced = service.get("docs", num(3)).await.unwrap();
    assert_eq!(replaced.vector, [9.0, 9.0, 9.0]);
    assert_eq!(payload_json(replaced.payload.as_ref()), json!({"replaced": true}));
    let again = service.get("docs", num(20)).await.unwrap();
    assert_eq!(payload_json(again.payload.as_ref()), json!({"again": true}));
    assert_eq!(service.get("docs", text("7")).await.unwrap().vector, [0.1, 0.2, 0.3]);
    for gone in [10, 11, 150, 199] {
        assert_eq!(service.get("docs", num(gone)).await.unwrap_err().code(), Code::NotFound, "{gone}");
    }
    let hits = service.search(query("docs", vec![9.0, 9.0, 9.0], 1)).await.unwrap();
    assert_eq!(hit_ids(&hits), [num(3)]);
    assert_eq!(service.get("plain", text("a")).await.unwrap().vector, [1.0, 1.0]);
    assert_eq!(service.collection("doomed").await.unwrap_err().code(), Code::NotFound);
    let request = service.request(pb::ListCollectionsRequest { page: None });
    let names: Vec<String> = service
        .client
        .list_collections(request)
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|collection| collection.name)
        .collect();
    assert_eq!(names, ["docs", "plain"]);
}

#[tokio::test]
async fn a_restart_replays_the_log() {
    let mut service = spawn().await;
    let created = write_history(&mut service).await;
    assert_history(&mut service, &created).await;
    let mut service = service.restart().await;
    assert_history(&mut service, &created).await;
    assert!(service.collection("docs").await.unwrap().last_snapshot_at.is_none());
    // And the restarted service keeps writing where the log ended.
    service.upsert("plain", vec![point(num(1), vec![0.0, 0.0], None)]).await;
    let mut service = service.restart().await;
    assert_history(&mut service, &created).await;
    assert_eq!(service.get("plain", num(1)).await.unwrap().vector, [0.0, 0.0]);
}

#[tokio::test]
async fn snapshots_cover_the_log_and_restore_with_its_tail() {
    let mut service = spawn().await;
    let created = write_history(&mut service).await;
    let directory = service.data_dir.path().join("docs");
    assert_eq!(segments(&directory).len(), 1);
    let request = service.request(pb::SnapshotRequest { collection: "docs".to_owned() });
    let snapshot = service.client.snapshot(request).await.unwrap().into_inner();
    assert_eq!(snapshot.point_count, 149);
    assert!(snapshot.size_bytes > 149 * 12, "{}", snapshot.size_bytes);
    assert_eq!(std::fs::metadata(directory.join("snapshot.bin")).unwrap().len(), snapshot.size_bytes);
    let listed = segments(&directory);
    assert_eq!(listed.len(), 1, "the covered segment is gone: {listed:?}");
    assert!(listed[0].ends_with("wal-00000000000000000002.log"));
    assert_eq!(service.collection("docs").await.unwrap().last_snapshot_at, snapshot.created_at);
    // Writes after the snapshot go to the new segment and are replayed over the snapshot.
    service
        .upsert("docs", vec![point(num(500), vec![5.0, 0.0, 0.0], Some(json!({"after": "snapshot"})))])
        .await;
    let request = service.request(delete_ids("docs", vec![num(42)]));
    service.client.delete_points(request).await.unwrap();

    let mut service = service.restart().await;
    let docs = service.collection("docs").await.unwrap();
    assert_eq!(docs.point_count, 149);
    assert_eq!(docs.last_snapshot_at, snapshot.created_at);
    assert_eq!(docs.created_at, created.created_at);
    assert_eq!(service.get("docs", num(42)).await.unwrap_err().code(), Code::NotFound);
    let after = service.get("docs", num(500)).await.unwrap();
    assert_eq!(payload_json(after.payload.as_ref()), json!({"after": "snapshot"}));
    let replaced = service.get("docs", num(3)).await.unwrap();
    assert_eq!(replaced.vector, [9.0, 9.0, 9.0], "cosine vectors come back as given, from the snapshot too");
    let request = service.request(pb::SnapshotRequest { collection: "missing".to_owned() });
    assert_eq!(service.client.snapshot(request).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_writes_go_on() {
    let mut service = spawn().await;
    let created = write_history(&mut service).await;
    service.stop().await;
    let directory = service.data_dir.path().join("docs");
    let newest = segments(&directory).pop().unwrap();
    let valid_length = std::fs::metadata(&newest).unwrap().len();
    // A frame header promising more than is there, then noise: what a crash mid-append leaves.
    let mut file = std::fs::OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5]).unwrap();
    drop(file);

    let mut service = service.restart().await;
    assert_history(&mut service, &created).await;
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), valid_length, "the tail was cut");
    service.upsert("docs", vec![point(num(777), vec![1.0, 1.0, 1.0], None)]).await;
    // Garbage again, this time bytes that do not even form a frame header.
    let mut file = std::fs::OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&[0xff; 5]).unwrap();
    drop(file);
    let mut service = service.restart().await;
    assert_eq!(service.get("docs", num(777)).await.unwrap().vector, [1.0, 1.0, 1.0]);
    let request = service.request(delete_ids("docs", vec![num(777)]));
    assert_eq!(service.client.delete_points(request).await.unwrap().into_inner().deleted, 1);
    assert_history(&mut service, &created).await;
}

#[tokio::test]
async fn a_growing_log_is_snapshotted_automatically() {
    let mut service = spawn_with(crate::NO_LLM, |settings| settings.snapshot_log_bytes = 64 * 1024).await;
    service.create("big", 64, pb::DistanceMetric::L2, None).await;
    // 300 points of 64 floats and a payload: about 100 KiB of log.
    for batch in 0..3_u64 {
        let points = (batch * 100..(batch + 1) * 100)
            .map(|i| point(num(i), vec![i as f32; 64], Some(json!({"batch": batch}))))
            .collect();
        service.upsert("big", points).await;
    }
    let directory = service.data_dir.path().join("big");
    sutazai_testkit::wait_for("an automatic snapshot", Duration::from_secs(10), || {
        let snapshot = directory.join("snapshot.bin");
        let directory = directory.clone();
        async move { snapshot.exists() && segments(&directory).len() == 1 }
    })
    .await;
    assert!(service.collection("big").await.unwrap().last_snapshot_at.is_some());
    let mut service = service.restart().await;
    assert_eq!(service.collection("big").await.unwrap().point_count, 300);
    assert_eq!(service.get("big", num(299)).await.unwrap().vector, vec![299.0; 64]);
    let filter = pb::Filter {
        must: vec![pb::Condition {
            key: "batch".to_owned(),
            condition: Some(pb::condition::Condition::Match(to_proto_value(&json!(1)))),
        }],
        ..pb::Filter::default()
    };
    let hits = service
        .search(pb::SearchRequest { filter: Some(filter), ..query("big", vec![0.0; 64], 3) })
        .await
        .unwrap();
    assert_eq!(hit_ids(&hits), [num(100), num(101), num(102)]);
}
