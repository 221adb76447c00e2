//! Who may call what: cleanups and restores need an admin, path-revealing scans an admin or a
//! service account, metrics any verified caller; no token is unauthenticated. An unset `dry_run`
//! is a dry run.

use sutazai_proto::v1 as pb;

use crate::{DAY, authorized, optimize_request, spawn, tree_digest, write_aged};

#[tokio::test]
async fn non_admins_cannot_clean_or_restore() {
    let hardware = spawn().await;
    write_aged(&hardware.root().join("x.tmp"), b"temp", DAY * 30);
    let before = tree_digest(hardware.root());
    let mut client = hardware.client().await;
    let user = hardware.user();
    let service = hardware.issuer.service_token("arbitrator", &["hardware:read"]);

    for token in [&user, &service] {
        let request =
            pb::OptimizeRequest { dry_run: Some(false), ..optimize_request(pb::OptimizeKind::Storage) };
        let status = client.optimize(authorized(request, token)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(status.message(), "requires the `admin` role");
        let restore = pb::RestoreQuarantineRequest {
            quarantine_id: uuid::Uuid::now_v7().to_string(),
            requested_by: "x".into(),
        };
        let status = client.restore_quarantine(authorized(restore, token)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
    assert_eq!(tree_digest(hardware.root()), before);

    // Scans reveal paths: admins and services only.
    let scan = || pb::AnalyzeStorageRequest { path: hardware.under_root("") };
    let status = client.analyze_storage(authorized(scan(), &user)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let analysis = client.analyze_storage(authorized(scan(), &service)).await.unwrap().into_inner();
    assert_eq!(analysis.file_count, 1);
    let status =
        client.list_quarantine(authorized(pb::ListQuarantineRequest::default(), &user)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // No token, or a forged one.
    let status = client.analyze_storage(tonic::Request::new(scan())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status =
        client.get_metrics(authorized(pb::GetMetricsRequest::default(), "not.a.token")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let refused = crate::audit_lines()
        .into_iter()
        .find(|line| line.contains("action=\"optimize\"") && line.contains("outcome=\"refused\""))
        .unwrap();
    assert!(refused.contains("actor=alice") && refused.contains("code=forbidden"), "{refused}");
}

#[tokio::test]
async fn an_unset_dry_run_changes_nothing() {
    let hardware = spawn().await;
    write_aged(&hardware.root().join("x.tmp"), b"temp", DAY * 30);
    let before = tree_digest(hardware.root());
    let response = hardware.optimize(optimize_request(pb::OptimizeKind::Storage)).await.unwrap();
    assert!(response.dry_run);
    assert_eq!(response.actions.len(), 1);
    assert_eq!(response.actions[0].outcome, pb::OptimizeActionOutcome::Planned as i32);
    assert_eq!(tree_digest(hardware.root()), before);
    assert!(hardware.quarantine().await.is_empty());

    let performed = hardware
        .optimize(pb::OptimizeRequest { dry_run: Some(false), ..optimize_request(pb::OptimizeKind::Storage) })
        .await
        .unwrap();
    assert!(!performed.dry_run);
    assert_eq!(performed.actions[0].outcome, pb::OptimizeActionOutcome::Performed as i32);
    assert!(!hardware.root().join("x.tmp").exists());
}
