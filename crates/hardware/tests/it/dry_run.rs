//! A dry run of every cleanup lists exactly what a real run would do and changes nothing: the
//! digest of the whole tree (paths, sizes, modification times, contents) is the same after it.

use sutazai_proto::v1 as pb;

use crate::{DAY, optimize_request, spawn, spawn_with, tree_digest, write_aged};

fn outcome(action: &pb::OptimizeAction) -> pb::OptimizeActionOutcome {
    pb::OptimizeActionOutcome::try_from(action.outcome).unwrap()
}

fn kind(action: &pb::OptimizeAction) -> pb::OptimizeActionKind {
    pb::OptimizeActionKind::try_from(action.kind).unwrap()
}

/// Whether this process could drop the page cache, decided the way the service decides.
fn can_drop_caches() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid =
        status.lines().find(|line| line.starts_with("Uid:")).unwrap().split_whitespace().nth(2).unwrap();
    euid == "0" && std::fs::OpenOptions::new().write(true).open("/proc/sys/vm/drop_caches").is_ok()
}

#[tokio::test]
async fn every_dry_run_changes_nothing_and_lists_its_actions() {
    let hardware = spawn().await;
    let root = hardware.root().to_path_buf();
    let log_content: Vec<u8> =
        (0..20_000).flat_map(|line: u32| format!("GET /item/{line} 200\n").into_bytes()).collect();
    write_aged(&root.join("logs/app.log"), &log_content, DAY * 10);
    write_aged(&root.join("logs/fresh.log"), b"today", std::time::Duration::ZERO);
    write_aged(&root.join("logs/b.bin"), b"binary", DAY * 10);
    write_aged(&root.join("work/upload.tmp"), &[1_u8; 300], DAY * 9);
    write_aged(&root.join("work/.cache/blob"), &[2_u8; 400], DAY * 9);
    write_aged(&root.join("work/report.pdf"), &[3_u8; 500], DAY * 400);
    write_aged(&root.join("dups/one.dat"), &[9_u8; 1000], DAY * 3);
    write_aged(&root.join("dups/two.dat"), &[9_u8; 1000], DAY * 2);
    let before = tree_digest(&root);

    // storage, dry_run unset: the two temp/cache files older than 7 days (the default).
    let storage = hardware.optimize(optimize_request(pb::OptimizeKind::Storage)).await.unwrap();
    assert!(storage.dry_run);
    let mut targets: Vec<(&str, pb::OptimizeActionOutcome, u64)> = storage
        .actions
        .iter()
        .map(|action| (action.target.as_str(), outcome(action), action.reclaimed_bytes))
        .collect();
    targets.sort();
    let upload = root.join("work/upload.tmp").display().to_string();
    let blob = root.join("work/.cache/blob").display().to_string();
    assert_eq!(
        targets,
        vec![
            (blob.as_str(), pb::OptimizeActionOutcome::Planned, 400),
            (upload.as_str(), pb::OptimizeActionOutcome::Planned, 300)
        ]
    );
    assert!(storage.actions.iter().all(|action| kind(action) == pb::OptimizeActionKind::QuarantineFile));
    assert!(storage.actions.iter().all(|action| action.quarantine_id.is_empty()));
    assert_eq!(storage.reclaimed_bytes, 700);

    // logs, dry_run explicitly true: app.log only (fresh.log is too young, b.bin is no log).
    let logs = hardware
        .optimize(pb::OptimizeRequest { dry_run: Some(true), ..optimize_request(pb::OptimizeKind::Logs) })
        .await
        .unwrap();
    assert!(logs.dry_run);
    assert_eq!(logs.actions.len(), 1);
    let compress = &logs.actions[0];
    assert_eq!(compress.target, root.join("logs/app.log").display().to_string());
    assert_eq!(
        (kind(compress), outcome(compress)),
        (pb::OptimizeActionKind::CompressFile, pb::OptimizeActionOutcome::Planned)
    );
    // The saving is measured, not guessed: a repetitive log compresses to a small fraction.
    assert!(compress.reclaimed_bytes > log_content.len() as u64 / 2, "{}", compress.reclaimed_bytes);
    assert!(compress.reclaimed_bytes < log_content.len() as u64);

    // duplicates: the younger copy would go.
    let duplicates = hardware
        .optimize(pb::OptimizeRequest {
            path: Some(hardware.under_root("dups")),
            ..optimize_request(pb::OptimizeKind::Duplicates)
        })
        .await
        .unwrap();
    assert_eq!(duplicates.actions.len(), 1);
    assert_eq!(duplicates.actions[0].target, root.join("dups/two.dat").display().to_string());
    assert_eq!(outcome(&duplicates.actions[0]), pb::OptimizeActionOutcome::Planned);
    assert!(duplicates.actions[0].detail.contains(&root.join("dups/one.dat").display().to_string()));
    assert!(duplicates.actions[0].detail.contains("the oldest copy is kept"));

    // memory: planned when privileged, skipped with the reason otherwise.
    let memory = hardware.optimize(optimize_request(pb::OptimizeKind::Memory)).await.unwrap();
    assert_eq!(memory.actions.len(), 1);
    assert_eq!(kind(&memory.actions[0]), pb::OptimizeActionKind::DropCaches);
    assert_eq!(memory.actions[0].target, "/proc/sys/vm/drop_caches");
    assert!(memory.actions[0].detail.contains("page cache"));
    let expected = if can_drop_caches() {
        pb::OptimizeActionOutcome::Planned
    } else {
        pb::OptimizeActionOutcome::Skipped
    };
    assert_eq!(outcome(&memory.actions[0]), expected);

    // docker: disabled here, reported skipped.
    let docker = hardware
        .optimize(pb::OptimizeRequest {
            label: Some("sutazai.cleanup=true".into()),
            ..optimize_request(pb::OptimizeKind::Docker)
        })
        .await
        .unwrap();
    assert_eq!(docker.actions.len(), 1);
    assert_eq!(outcome(&docker.actions[0]), pb::OptimizeActionOutcome::Skipped);
    assert!(
        docker.actions[0].detail.contains("hardware.docker_enabled = false"),
        "{}",
        docker.actions[0].detail
    );

    assert_eq!(tree_digest(&root), before, "a dry run changed the tree");
    assert!(hardware.quarantine().await.is_empty());
}

#[tokio::test]
async fn docker_without_a_socket_is_skipped_even_when_enabled() {
    let hardware = spawn_with(|settings| settings.docker_enabled = true).await;
    if std::path::Path::new(sutazai_hardware::docker::DOCKER_SOCKET).exists() {
        panic!("this test expects a host without Docker");
    }
    for dry_run in [None, Some(false)] {
        let docker = hardware
            .optimize(pb::OptimizeRequest {
                label: Some("sutazai.cleanup=true".into()),
                dry_run,
                ..optimize_request(pb::OptimizeKind::Docker)
            })
            .await
            .unwrap();
        assert_eq!(docker.actions.len(), 1);
        assert_eq!(outcome(&docker.actions[0]), pb::OptimizeActionOutcome::Skipped);
        assert_eq!(docker.actions[0].detail, "skipped: no Docker socket at /var/run/docker.sock");
        assert_eq!(docker.reclaimed_bytes, 0);
    }
    let status = hardware.optimize(optimize_request(pb::OptimizeKind::Docker)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "label: is required for the `docker` cleanup");
}
