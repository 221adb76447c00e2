//! Three identical files, two of them sharing a basename in different directories: the dry run
//! plans two removals, the real run keeps the oldest and quarantines the other two under
//! distinct ids, both restore, and a restore onto an occupied path is a conflict.

use sutazai_proto::v1 as pb;

use crate::{DAY, audit_lines, authorized, optimize_request, spawn, tree_digest, write_aged};

#[tokio::test]
async fn keep_one_quarantine_two_restore_both() {
    let hardware = spawn().await;
    let root = hardware.root().to_path_buf();
    let content = b"identical content, three times".repeat(300);
    // c.txt is the oldest: the keep rule keeps it; the two `same.txt` go.
    write_aged(&root.join("c.txt"), &content, DAY * 3);
    write_aged(&root.join("a/same.txt"), &content, DAY);
    write_aged(&root.join("b/same.txt"), &content, DAY);
    write_aged(&root.join("other.txt"), b"not a duplicate", DAY * 5);
    let kept = root.join("c.txt").display().to_string();
    let first = root.join("a/same.txt").display().to_string();
    let second = root.join("b/same.txt").display().to_string();

    let found = hardware
        .client()
        .await
        .find_duplicates(authorized(
            pb::FindDuplicatesRequest { path: hardware.under_root(""), min_size_bytes: 0 },
            &hardware.admin(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.groups.len(), 1);
    assert_eq!(found.groups[0].paths, vec![kept.clone(), first.clone(), second.clone()]);
    assert_eq!(found.groups[0].size_bytes, content.len() as u64);
    assert_eq!(found.reclaimable_bytes, 2 * content.len() as u64);
    assert_eq!(found.files_scanned, 4);

    let request = |dry_run| pb::OptimizeRequest {
        path: Some(hardware.under_root("")),
        dry_run,
        ..optimize_request(pb::OptimizeKind::Duplicates)
    };
    let before = tree_digest(&root);
    let planned = hardware.optimize(request(None)).await.unwrap();
    assert!(planned.dry_run);
    let planned_targets: Vec<&str> = planned.actions.iter().map(|action| action.target.as_str()).collect();
    assert_eq!(planned_targets, vec![first.as_str(), second.as_str()]);
    assert!(planned.actions.iter().all(|action| action.outcome == pb::OptimizeActionOutcome::Planned as i32));
    assert!(planned.actions.iter().all(|action| action.detail == format!(
        "duplicate of {kept}; the oldest copy is kept (earliest modification time; ties: the smallest path)"
    )));
    assert_eq!(tree_digest(&root), before);

    let performed = hardware.optimize(request(Some(false))).await.unwrap();
    assert!(!performed.dry_run);
    let performed_targets: Vec<&str> =
        performed.actions.iter().map(|action| action.target.as_str()).collect();
    assert_eq!(performed_targets, planned_targets, "the real run executed a different plan");
    assert!(
        performed.actions.iter().all(|action| action.outcome == pb::OptimizeActionOutcome::Performed as i32)
    );
    assert_eq!(performed.reclaimed_bytes, 2 * content.len() as u64);
    assert!(root.join("c.txt").exists());
    assert!(!root.join("a/same.txt").exists() && !root.join("b/same.txt").exists());
    assert_eq!(std::fs::read(root.join("other.txt")).unwrap(), b"not a duplicate");

    let ids: Vec<String> = performed.actions.iter().map(|action| action.quarantine_id.clone()).collect();
    assert_ne!(ids[0], ids[1]);
    let entries = hardware.quarantine().await;
    assert_eq!(entries.len(), 2);
    // Newest first; both within the same second or so, same basename, distinct ids.
    assert_eq!(
        entries.iter().map(|entry| entry.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[0].clone()]
    );
    let seconds: Vec<i64> = entries.iter().map(|entry| entry.quarantined_at.unwrap().seconds).collect();
    assert!((seconds[0] - seconds[1]).abs() <= 1);
    for entry in &entries {
        assert_eq!(entry.reason, pb::OptimizeKind::Duplicates as i32);
        assert_eq!(entry.size_bytes, content.len() as u64);
        assert_eq!(entry.sha256, found.groups[0].sha256);
        assert_eq!(entry.purge_at.unwrap().seconds - entry.quarantined_at.unwrap().seconds, 3600);
    }

    // Both restore, each to its own directory, with the original bytes.
    let restored_first = hardware.restore(&ids[0]).await.unwrap();
    let restored_second = hardware.restore(&ids[1]).await.unwrap();
    assert_eq!(
        (restored_first.original_path.as_str(), restored_second.original_path.as_str()),
        (first.as_str(), second.as_str())
    );
    assert_eq!(std::fs::read(&first).unwrap(), content);
    assert_eq!(std::fs::read(&second).unwrap(), content);
    assert!(hardware.quarantine().await.is_empty());
    assert_eq!(hardware.restore(&ids[0]).await.unwrap_err().code(), tonic::Code::NotFound);

    // Quarantine again, then occupy one original path: restoring there is a conflict and
    // overwrites nothing; the entry stays restorable.
    let again = hardware.optimize(request(Some(false))).await.unwrap();
    assert_eq!(again.actions.len(), 2);
    std::fs::write(&first, b"someone else's new file").unwrap();
    let conflict = hardware.restore(&again.actions[0].quarantine_id).await.unwrap_err();
    assert_eq!(conflict.code(), tonic::Code::AlreadyExists);
    assert_eq!(conflict.message(), "something exists at the original path; nothing was overwritten");
    assert_eq!(std::fs::read(&first).unwrap(), b"someone else's new file");
    assert_eq!(hardware.quarantine().await.len(), 2);
    std::fs::remove_file(&first).unwrap();
    hardware.restore(&again.actions[0].quarantine_id).await.unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), content);

    let unknown = hardware.restore(&uuid::Uuid::now_v7().to_string()).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let malformed = hardware.restore("../../etc/passwd").await.unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert_eq!(malformed.message(), "quarantine_id: must be a UUID");

    // Every action was audited with who, what, where, whether dry, and how it went.
    let audit = audit_lines();
    let performed_line = audit
        .iter()
        .find(|line| {
            line.contains("action=\"quarantine_file\"")
                && line.contains("dry_run=false")
                && line.contains(&first)
        })
        .unwrap_or_else(|| panic!("no audit line for the real run: {audit:#?}"));
    assert!(performed_line.contains("actor=admin"), "{performed_line}");
    assert!(performed_line.contains("outcome=\"performed\""), "{performed_line}");
    assert!(audit.iter().any(|line| line.contains("action=\"quarantine_file\"")
        && line.contains("dry_run=true")
        && line.contains("outcome=\"planned\"")));
    assert!(
        audit
            .iter()
            .any(|line| line.contains("action=\"quarantine_restore\"")
                && line.contains("outcome=\"performed\""))
    );
    assert!(audit.iter().any(|line| line.contains("action=\"quarantine_restore\"")
        && line.contains("outcome=\"refused\"")
        && line.contains("code=conflict")));
}
