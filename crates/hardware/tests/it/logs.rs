//! Log compression: `a.log` becomes a verified `a.log.gz` and the original goes to the
//! quarantine; other files are untouched; a negative `days_old` is refused naming the field.

use std::io::Read;

use flate2::read::GzDecoder;
use sutazai_hardware::audit::Actor;
use sutazai_hardware::domain::cleanup::CleanupKind;
use sutazai_hardware::domain::optimize::CleanupRequest;
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;

use crate::{optimize_request, spawn, write_aged};

#[tokio::test]
async fn compresses_a_log_and_leaves_the_rest() {
    let hardware = spawn().await;
    let root = hardware.root().to_path_buf();
    let log: Vec<u8> =
        (0..5_000_u32).flat_map(|line| format!("{line} INFO request served\n").into_bytes()).collect();
    let binary: Vec<u8> = (0..4096_u32).map(|value| (value * 31 % 256) as u8).collect();
    write_aged(&root.join("var/a.log"), &log, std::time::Duration::from_secs(5));
    write_aged(&root.join("var/b.bin"), &binary, std::time::Duration::from_secs(5));
    let bin_modified = std::fs::metadata(root.join("var/b.bin")).unwrap().modified().unwrap();

    let response = hardware
        .optimize(pb::OptimizeRequest {
            path: Some(hardware.under_root("var")),
            dry_run: Some(false),
            days_old: Some(0),
            ..optimize_request(pb::OptimizeKind::Logs)
        })
        .await
        .unwrap();
    assert!(!response.dry_run);
    assert_eq!(response.actions.len(), 1);
    let action = &response.actions[0];
    assert_eq!(action.kind, pb::OptimizeActionKind::CompressFile as i32);
    assert_eq!(action.outcome, pb::OptimizeActionOutcome::Performed as i32, "{}", action.detail);
    assert_eq!(action.target, root.join("var/a.log").display().to_string());

    assert!(!root.join("var/a.log").exists());
    let compressed = std::fs::read(root.join("var/a.log.gz")).unwrap();
    let mut decompressed = Vec::new();
    GzDecoder::new(compressed.as_slice()).read_to_end(&mut decompressed).unwrap();
    assert_eq!(decompressed, log);
    assert_eq!(action.reclaimed_bytes, log.len() as u64 - compressed.len() as u64);
    assert_eq!(std::fs::read(root.join("var/b.bin")).unwrap(), binary);
    assert_eq!(std::fs::metadata(root.join("var/b.bin")).unwrap().modified().unwrap(), bin_modified);
    let names: Vec<String> = std::fs::read_dir(root.join("var"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left behind: {names:?}");

    // The original is in the quarantine, restorable, not deleted.
    let entries = hardware.quarantine().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, action.quarantine_id);
    assert_eq!(entries[0].reason, pb::OptimizeKind::Logs as i32);
    assert_eq!(entries[0].original_path, root.join("var/a.log").display().to_string());
    hardware.restore(&action.quarantine_id).await.unwrap();
    assert_eq!(std::fs::read(root.join("var/a.log")).unwrap(), log);

    // With a.log.gz present, a second run skips a.log instead of overwriting the archive.
    let again = hardware
        .optimize(pb::OptimizeRequest {
            path: Some(hardware.under_root("var")),
            dry_run: Some(false),
            days_old: Some(0),
            ..optimize_request(pb::OptimizeKind::Logs)
        })
        .await
        .unwrap();
    assert_eq!(again.actions[0].outcome, pb::OptimizeActionOutcome::Skipped as i32);
    assert_eq!(again.actions[0].detail, format!("{} already exists", root.join("var/a.log.gz").display()));
    assert_eq!(std::fs::read(root.join("var/a.log.gz")).unwrap(), compressed);
}

#[tokio::test]
async fn negative_days_old_is_refused_naming_the_field() {
    let hardware = spawn().await;
    write_aged(&hardware.root().join("a.log"), b"x\n", crate::DAY * 2);
    let actor = Actor { name: "admin".into(), requested_by: "admin".into() };
    let request = CleanupRequest {
        kind: CleanupKind::Logs,
        path: Some(hardware.under_root("")),
        dry_run: Some(false),
        days_old: Some(-1),
        label: None,
    };
    let error = hardware.service.optimize(request, &actor).await.unwrap_err();
    assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
    assert_eq!(error.to_string(), "days_old: must be 0 or more");

    // Over gRPC the field is unsigned; -1 sent by a careless client arrives as u32::MAX.
    let status = hardware
        .optimize(pb::OptimizeRequest {
            days_old: Some(u32::MAX),
            dry_run: Some(false),
            ..optimize_request(pb::OptimizeKind::Logs)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "days_old: must be at most 36500");
    assert!(hardware.root().join("a.log").exists());
    assert!(hardware.quarantine().await.is_empty());
}
