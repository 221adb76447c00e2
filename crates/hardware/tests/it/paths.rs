//! The path attack suite. Each attack is refused with its exact code, at the service and over
//! gRPC, and an inotify watch on the directory outside the root proves nothing there was opened
//! or read — neither by the refused requests nor by scans of a tree holding a symlink to it.

use std::os::unix::fs::symlink;

use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;

use crate::{ReadWatch, TestHardware, authorized, optimize_request, spawn, write_aged};

/// Asserts every path-taking entry point refuses `path` with `code`.
async fn assert_refused(hardware: &TestHardware, path: &str, code: ServiceErrorCode) {
    let shown = path.chars().take(80).collect::<String>();
    let service = &hardware.service;
    assert_eq!(service.analyze_storage(path.to_owned()).await.unwrap_err().code(), code, "analyze {shown}");
    assert_eq!(
        service.find_duplicates(path.to_owned(), 0).await.unwrap_err().code(),
        code,
        "duplicates {shown}"
    );
    assert_eq!(
        service.find_large_files(path.to_owned(), 1, 10).await.unwrap_err().code(),
        code,
        "large {shown}"
    );

    let mut client = hardware.client().await;
    let admin = hardware.admin();
    let status = client
        .analyze_storage(authorized(pb::AnalyzeStorageRequest { path: path.to_owned() }, &admin))
        .await
        .unwrap_err();
    assert_eq!(status.code(), code.grpc_code(), "grpc analyze {shown}: {status:?}");
    assert!(status.message().starts_with("path: "), "{}", status.message());
    let status = client
        .find_duplicates(authorized(
            pb::FindDuplicatesRequest { path: path.to_owned(), min_size_bytes: 0 },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), code.grpc_code(), "grpc duplicates {shown}");
    let status = client
        .find_large_files(authorized(
            pb::FindLargeFilesRequest { path: path.to_owned(), min_size_bytes: 1, limit: 5 },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), code.grpc_code(), "grpc large files {shown}");
    for kind in [pb::OptimizeKind::Storage, pb::OptimizeKind::Logs, pb::OptimizeKind::Duplicates] {
        let request = pb::OptimizeRequest {
            path: Some(path.to_owned()),
            dry_run: Some(false),
            ..optimize_request(kind)
        };
        let status = hardware.optimize(request).await.unwrap_err();
        assert_eq!(status.code(), code.grpc_code(), "grpc optimize {kind:?} {shown}");
    }
}

#[tokio::test]
async fn attacks_are_refused_with_nothing_read() {
    let hardware = spawn().await;
    let root = hardware.root().to_path_buf();
    let outside = hardware.dirs.outside.clone();
    write_aged(&outside.join("secret.log"), b"the secret", crate::DAY * 30);
    write_aged(&outside.join("big.tmp"), &vec![7_u8; 4096], crate::DAY * 30);
    symlink(&outside, root.join("to_outside")).unwrap();
    symlink("/etc", root.join("to_etc")).unwrap();
    let watch = ReadWatch::new(&[&outside]);

    let relative_escape = "../".repeat(root.components().count()) + "etc";
    let attacks: Vec<(String, ServiceErrorCode)> = vec![
        ("/etc".to_owned(), ServiceErrorCode::Forbidden),
        ("/etc/shadow".to_owned(), ServiceErrorCode::Forbidden),
        ("../../etc".to_owned(), ServiceErrorCode::BadRequest),
        (relative_escape, ServiceErrorCode::BadRequest),
        (format!("{}/../../etc/shadow", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/../outside", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/../outside/secret.log", root.display()), ServiceErrorCode::Forbidden),
        // Percent-encoding is a literal name here: a missing entry under the root.
        (format!("{}/%2e%2e/%2e%2e/etc", root.display()), ServiceErrorCode::NotFound),
        (format!("{}/%2e%2e/outside", root.display()), ServiceErrorCode::NotFound),
        (format!("{}/..%2f..%2fetc", root.display()), ServiceErrorCode::NotFound),
        // A symlink under the root pointing out is judged by where it points.
        (format!("{}/to_etc", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/to_etc/passwd", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/to_outside", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/to_outside/secret.log", root.display()), ServiceErrorCode::Forbidden),
        (format!("{}/{}", root.display(), "a".repeat(5000)), ServiceErrorCode::BadRequest),
        (format!("{}/a\0b", root.display()), ServiceErrorCode::BadRequest),
        (String::new(), ServiceErrorCode::BadRequest),
        // The quarantine is never a scan target, and a missing path outside is no oracle.
        (hardware.service.quarantine_dir().display().to_string(), ServiceErrorCode::Forbidden),
        (format!("{}/missing", outside.display()), ServiceErrorCode::Forbidden),
    ];
    for (path, code) in &attacks {
        assert_refused(&hardware, path, *code).await;
    }
    assert_eq!(watch.events(), 0, "something under outside/ was opened or read");

    // The watch does see reads: the zero above is evidence, not a dead sensor.
    let _ = std::fs::read(outside.join("secret.log")).unwrap();
    assert!(watch.events() > 0);
    assert!(outside.join("secret.log").exists() && outside.join("big.tmp").exists());
}

#[tokio::test]
async fn scans_do_not_follow_a_symlink_out_of_the_tree() {
    let hardware = spawn().await;
    let root = hardware.root().to_path_buf();
    let outside = hardware.dirs.outside.clone();
    let content = vec![42_u8; 10_000];
    write_aged(&outside.join("copy.bin"), &content, crate::DAY);
    write_aged(&outside.join("huge.bin"), &vec![1_u8; 50_000], crate::DAY);
    write_aged(&root.join("data/copy.bin"), &content, crate::DAY);
    write_aged(&root.join("data/also.bin"), &content, crate::DAY);
    symlink(&outside, root.join("data/link_dir")).unwrap();
    symlink(outside.join("copy.bin"), root.join("data/link_file.bin")).unwrap();
    let watch = ReadWatch::new(&[&outside]);
    let mut client = hardware.client().await;
    let admin = hardware.admin();
    let start = hardware.under_root("data");

    let analysis = client
        .analyze_storage(authorized(pb::AnalyzeStorageRequest { path: start.clone() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((analysis.file_count, analysis.total_size_bytes, analysis.directory_count), (2, 20_000, 1));
    assert_eq!(analysis.path, root.join("data").display().to_string());

    let duplicates = client
        .find_duplicates(authorized(
            pb::FindDuplicatesRequest { path: start.clone(), min_size_bytes: 0 },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(duplicates.files_scanned, 2);
    assert_eq!(duplicates.groups.len(), 1);
    let mut paths = duplicates.groups[0].paths.clone();
    paths.sort();
    assert_eq!(paths, vec![format!("{start}/also.bin"), format!("{start}/copy.bin")]);

    let large = client
        .find_large_files(authorized(
            pb::FindLargeFilesRequest { path: start.clone(), min_size_bytes: 1, limit: 10 },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<&str> = large.files.iter().map(|file| file.path.as_str()).collect();
    assert!(listed.iter().all(|path| path.starts_with(&start) && !path.contains("link")), "{listed:?}");
    assert_eq!(listed.len(), 2);

    let storage = hardware
        .optimize(pb::OptimizeRequest {
            path: Some(start.clone()),
            days_old: Some(0),
            ..optimize_request(pb::OptimizeKind::Storage)
        })
        .await
        .unwrap();
    assert!(storage.actions.iter().all(|action| action.target.starts_with(&start)));

    assert_eq!(watch.events(), 0, "a scan followed a symlink out of the tree");
}
