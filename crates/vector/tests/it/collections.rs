//! Collections: create, read, list, delete; names, dimensions, duplicates; tokens and roles.

use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{assert_status, flat, num, point, query, spawn, with_token};

fn hnsw(m: u32) -> Option<pb::IndexConfig> {
    Some(pb::IndexConfig {
        kind: Some(pb::index_config::Kind::Hnsw(pb::HnswIndexConfig { m, ef_construction: 0, ef_search: 0 })),
    })
}

#[tokio::test]
async fn create_get_list_and_delete() {
    let mut service = spawn().await;
    let created = service.create("docs", 3, pb::DistanceMetric::Cosine, None).await;
    assert_eq!(created.name, "docs");
    assert_eq!(created.dimension, 3);
    assert_eq!(created.metric, i32::from(pb::DistanceMetric::Cosine));
    assert_eq!(created.point_count, 0);
    assert!(created.created_at.is_some());
    assert!(created.last_snapshot_at.is_none());
    // Unset index: HNSW with the server defaults filled in.
    assert_eq!(
        created.index,
        Some(pb::IndexConfig {
            kind: Some(pb::index_config::Kind::Hnsw(pb::HnswIndexConfig {
                m: u32::try_from(sutazai_vector_index::DEFAULT_HNSW_M).unwrap(),
                ef_construction: u32::try_from(sutazai_vector_index::DEFAULT_HNSW_EF_CONSTRUCTION).unwrap(),
                ef_search: u32::try_from(sutazai_vector_index::DEFAULT_HNSW_EF_SEARCH).unwrap(),
            }))
        })
    );
    let ivf = Some(pb::IndexConfig {
        kind: Some(pb::index_config::Kind::Ivf(pb::IvfIndexConfig { nlist: 16, nprobe: 0 })),
    });
    let with_ivf = service.create("by-ivf", 2, pb::DistanceMetric::L2, ivf).await;
    assert_eq!(
        with_ivf.index,
        Some(pb::IndexConfig {
            kind: Some(pb::index_config::Kind::Ivf(pb::IvfIndexConfig {
                nlist: 16,
                nprobe: u32::try_from(sutazai_vector_index::default_ivf_nprobe(16)).unwrap(),
            }))
        })
    );
    service.create("a_flat", 2, pb::DistanceMetric::Ip, flat()).await;

    service
        .upsert(
            "docs",
            vec![point(num(1), vec![1.0, 0.0, 0.0], None), point(num(2), vec![0.0, 1.0, 0.0], None)],
        )
        .await;
    let read = service.collection("docs").await.unwrap();
    assert_eq!(read.point_count, 2);
    assert!(read.memory_bytes > 0);

    let request =
        service.request(pb::ListCollectionsRequest { page: Some(pb::PageRequest { skip: 1, limit: 1 }) });
    let listed = service.client.list_collections(request).await.unwrap().into_inner();
    assert_eq!(
        listed.collections.iter().map(|collection| collection.name.as_str()).collect::<Vec<_>>(),
        ["by-ivf"]
    );
    assert_eq!(listed.page, Some(pb::PageInfo { total: 3, skip: 1, limit: 1 }));
    let request = service.request(pb::ListCollectionsRequest { page: None });
    let listed = service.client.list_collections(request).await.unwrap().into_inner();
    let names: Vec<&str> = listed.collections.iter().map(|collection| collection.name.as_str()).collect();
    assert_eq!(names, ["a_flat", "by-ivf", "docs"]);
    assert_eq!(listed.page.unwrap().limit, 50);
    let request =
        service.request(pb::ListCollectionsRequest { page: Some(pb::PageRequest { skip: 0, limit: 1001 }) });
    let status = service.client.list_collections(request).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "page.limit: ");

    let request = service.admin_request(pb::DeleteCollectionRequest { name: "docs".to_owned() });
    service.client.delete_collection(request).await.unwrap();
    assert!(!service.data_dir.path().join("docs").exists(), "the directory is gone");
    let status = service.collection("docs").await.unwrap_err();
    assert_status(&status, Code::NotFound, "collection `docs` not found");
    let request = service.admin_request(pb::DeleteCollectionRequest { name: "docs".to_owned() });
    let status = service.client.delete_collection(request).await.unwrap_err();
    assert_status(&status, Code::NotFound, "collection `docs` not found");
    // The name is free again, and the new collection starts empty.
    let again = service.create("docs", 3, pb::DistanceMetric::L2, flat()).await;
    assert_eq!(again.point_count, 0);
}

#[tokio::test]
async fn duplicates_unknown_names_and_dimensions() {
    let mut service = spawn().await;
    service.create("docs", 4, pb::DistanceMetric::L2, None).await;
    let request = service.request(pb::CreateCollectionRequest {
        name: "docs".to_owned(),
        dimension: 4,
        metric: pb::DistanceMetric::L2.into(),
        index: None,
    });
    let status = service.client.create_collection(request).await.unwrap_err();
    assert_status(&status, Code::AlreadyExists, "collection `docs` already exists");

    let status = service.collection("nope").await.unwrap_err();
    assert_status(&status, Code::NotFound, "collection `nope` not found");
    let request = service.request(pb::UpsertRequest {
        collection: "nope".to_owned(),
        points: vec![point(num(1), vec![0.0; 4], None)],
    });
    let status = service.client.upsert(request).await.unwrap_err();
    assert_status(&status, Code::NotFound, "collection `nope` not found");

    for bad in ["a/b", "..", "A", &"a".repeat(65), ""] {
        let request = service.request(pb::CreateCollectionRequest {
            name: bad.to_owned(),
            dimension: 4,
            metric: pb::DistanceMetric::L2.into(),
            index: None,
        });
        let status = service.client.create_collection(request).await.unwrap_err();
        // bad_request and validation_failed share InvalidArgument; the field tells them apart.
        assert_status(
            &status,
            Code::InvalidArgument,
            "name: must be 1 to 64 characters of a-z, 0-9, `_` and `-`",
        );
        let status = service.collection(bad).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, "name: must be 1 to 64");
        let request = service.request(pb::SnapshotRequest { collection: bad.to_owned() });
        let status = service.client.snapshot(request).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, "collection: must be 1 to 64");
    }
    let entries: Vec<String> = std::fs::read_dir(service.data_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 2, "only .lock and docs: {entries:?}");

    for (dimension, metric, index, expected) in [
        (0, pb::DistanceMetric::L2, None, "dimension: must be between 1 and 65536"),
        (65_537, pb::DistanceMetric::L2, None, "dimension: must be between 1 and 65536"),
        (4, pb::DistanceMetric::Unspecified, None, "metric: must be l2, ip or cosine"),
        (4, pb::DistanceMetric::L2, hnsw(1), "index.m: 1 is outside 2..=128"),
    ] {
        let request = service.request(pb::CreateCollectionRequest {
            name: "other".to_owned(),
            dimension,
            metric: metric.into(),
            index,
        });
        let status = service.client.create_collection(request).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, expected);
    }
}

#[tokio::test]
async fn every_rpc_needs_a_token_and_deleting_a_collection_an_admin() {
    let mut service = spawn().await;
    service.create("docs", 2, pb::DistanceMetric::L2, None).await;

    let status = service
        .client
        .get_collection(tonic::Request::new(pb::GetCollectionRequest { name: "docs".to_owned() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let request = tonic::Request::new(pb::UpsertRequest {
        collection: "docs".to_owned(),
        points: vec![point(num(1), vec![0.0, 0.0], None)],
    });
    assert_eq!(service.client.upsert(request).await.unwrap_err().code(), Code::Unauthenticated);
    let request = with_token(pb::ListCollectionsRequest { page: None }, "not-a-jwt");
    assert_eq!(service.client.list_collections(request).await.unwrap_err().code(), Code::Unauthenticated);
    let foreign = sutazai_testkit::TestIssuer::start().await;
    let request = with_token(pb::ListCollectionsRequest { page: None }, &foreign.admin_token());
    assert_eq!(service.client.list_collections(request).await.unwrap_err().code(), Code::Unauthenticated);

    let request = service.request(pb::DeleteCollectionRequest { name: "docs".to_owned() });
    let status = service.client.delete_collection(request).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "deleting a collection requires the `admin` role");
    let service_account = with_token(
        pb::DeleteCollectionRequest { name: "docs".to_owned() },
        &service.issuer.service_token("agent", &["vectors:write"]),
    );
    assert_eq!(
        service.client.delete_collection(service_account).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(service.collection("docs").await.unwrap().name, "docs", "still there");
}

#[tokio::test]
async fn reads_need_the_read_scope_and_writes_the_write_scope() {
    let mut service = spawn().await;
    service.create("docs", 2, pb::DistanceMetric::L2, flat()).await;
    let reader = service.issuer.user_token("reader", &["vectors:read"]);
    let writer = service.issuer.user_token("writer", &["vectors:write"]);
    let nobody = service.issuer.user_token("nobody", &[]);
    let upsert = || pb::UpsertRequest {
        collection: "docs".to_owned(),
        points: vec![point(num(1), vec![0.0, 0.0], None)],
    };
    for token in [&reader, &nobody] {
        let status = service.client.upsert(with_token(upsert(), token)).await.unwrap_err();
        assert_status(&status, Code::PermissionDenied, "requires the `vectors:write` scope");
        let request = with_token(pb::SnapshotRequest { collection: "docs".to_owned() }, token);
        let status = service.client.snapshot(request).await.unwrap_err();
        assert_status(&status, Code::PermissionDenied, "requires the `vectors:write` scope");
    }
    assert_eq!(service.client.upsert(with_token(upsert(), &writer)).await.unwrap().into_inner().upserted, 1);
    for token in [&writer, &nobody] {
        let request = with_token(pb::GetCollectionRequest { name: "docs".to_owned() }, token);
        let status = service.client.get_collection(request).await.unwrap_err();
        assert_status(&status, Code::PermissionDenied, "requires the `vectors:read` scope");
        let request = with_token(query("docs", vec![0.0, 0.0], 1), token);
        let status = service.client.search(request).await.unwrap_err();
        assert_status(&status, Code::PermissionDenied, "requires the `vectors:read` scope");
    }
    let request = with_token(query("docs", vec![0.0, 0.0], 1), &reader);
    assert_eq!(service.client.search(request).await.unwrap().into_inner().results[0].hits.len(), 1);
    let request = service.admin_request(query("docs", vec![0.0, 0.0], 1));
    assert_eq!(service.client.search(request).await.unwrap().into_inner().results[0].hits.len(), 1);
}
