//! `sutazai vector import`: fvecs, npy and JSONL files upserted into a running `serve vector`.

use std::path::Path;
use std::process::Output;

use serde_json::json;
use sutazai_proto::json::from_proto_struct;
use sutazai_proto::v1 as pb;
use sutazai_testkit::{TestIssuer, TestRedis};

use crate::vector_crash::{VectorProcess, authorized};

fn fvecs(path: &Path, rows: u64, dimension: usize) {
    let mut bytes = Vec::new();
    for row in 0..rows {
        bytes.extend_from_slice(&i32::try_from(dimension).unwrap().to_le_bytes());
        for component in 0..dimension {
            bytes.extend_from_slice(&(row as f32 + component as f32 / 10.0).to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn npy(path: &Path, rows: u64, dimension: usize) {
    let dictionary = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dimension}), }}");
    let mut header = dictionary.into_bytes();
    // numpy pads the header with spaces so the data starts 64-byte aligned, ending in a newline.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(&header);
    for row in 0..rows {
        for component in 0..dimension {
            bytes.extend_from_slice(&(-(row as f32) - component as f32).to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

async fn import(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sutazai"))
            .args(&args)
            .env_clear()
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fvecs_npy_and_jsonl_files_are_imported() {
    let issuer = TestIssuer::start().await;
    let redis = TestRedis::new();
    let data_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let service =
        VectorProcess::start(&issuer, &redis, data_dir.path(), files.path().join("service.log")).await;
    let token = issuer.service_token("importer", &["vectors:write", "vectors:read"]);
    let url = format!("http://{}", service.address);
    let base = |file: &Path, collection: &str| -> Vec<String> {
        [
            "vector",
            "import",
            file.to_str().unwrap(),
            "--collection",
            collection,
            "--url",
            &url,
            "--token",
            &token,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    let fvecs_file = files.path().join("base.fvecs");
    fvecs(&fvecs_file, 250, 4);
    let mut args = base(&fvecs_file, "sift");
    args.extend(["--create-dimension", "4", "--batch", "64", "--index", "flat"].map(str::to_owned));
    let output = import(args).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("imported 250 points into `sift` in "),
        "{}",
        text(&output)
    );

    let npy_file = files.path().join("more.npy");
    npy(&npy_file, 30, 4);
    let output = import(base(&npy_file, "sift")).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let jsonl_file = files.path().join("docs.jsonl");
    std::fs::write(
        &jsonl_file,
        "{\"id\": \"doc-1\", \"vector\": [1, 2, 3, 4], \"payload\": {\"lang\": \"en\"}}\n\n{\"id\": 7000, \"vector\": [0.5, 0, 0, 0]}\n",
    )
    .unwrap();
    let mut args = base(&jsonl_file, "sift");
    args.extend(["--create-dimension", "4"].map(str::to_owned));
    let output = import(args).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("collection `sift` exists; importing into it"));

    let mut client = service.client().await;
    let request = authorized(pb::GetCollectionRequest { name: "sift".to_owned() }, &token);
    let collection = client.get_collection(request).await.unwrap().into_inner().collection.unwrap();
    // fvecs rows 0..250, of which npy rows 0..30 replaced; plus two JSONL points.
    assert_eq!(collection.point_count, 252);
    let get = |id: pb::point_id::Kind| {
        authorized(
            pb::GetPointRequest { collection: "sift".to_owned(), id: Some(pb::PointId { kind: Some(id) }) },
            &token,
        )
    };
    let row = client.get_point(get(pb::point_id::Kind::Num(249))).await.unwrap().into_inner().point.unwrap();
    assert_eq!(row.vector, [249.0, 249.1, 249.2, 249.3]);
    let replaced =
        client.get_point(get(pb::point_id::Kind::Num(29))).await.unwrap().into_inner().point.unwrap();
    assert_eq!(replaced.vector, [-29.0, -30.0, -31.0, -32.0]);
    let document = client
        .get_point(get(pb::point_id::Kind::Str("doc-1".to_owned())))
        .await
        .unwrap()
        .into_inner()
        .point
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(from_proto_struct(document.payload.as_ref().unwrap())),
        json!({"lang": "en"})
    );

    // A vector of the wrong dimension stops the import with the service's reason.
    let bad_file = files.path().join("bad.jsonl");
    std::fs::write(&bad_file, "{\"id\": 1, \"vector\": [1, 2, 3]}\n").unwrap();
    let output = import(base(&bad_file, "sift")).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("points[0].vector: expected 4 components, got 3"), "{}", text(&output));
    let output = import(base(&files.path().join("missing.fvecs"), "sift")).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("missing.fvecs"), "{}", text(&output));
    let mut no_token = base(&fvecs_file, "sift");
    no_token.truncate(no_token.len() - 2);
    let output = import(no_token).await;
    assert_eq!(output.status.code(), Some(2), "clap refuses a missing --token: {}", text(&output));
}
