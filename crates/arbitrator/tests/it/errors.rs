//! Every refusal with its exact code and message: authentication, validation, unknown pools and
//! leases, who may act for whom, and admin-only policy changes. Plus the operational endpoints.

use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{
    Backing, TestArbitrator, assert_status, authed, cpu, custom, gpu, lease, llm_slots, policy, settings,
};

#[tokio::test]
async fn every_call_needs_a_valid_token() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let mut rpc = arbitrator.rpc.clone();
    let anonymous = rpc.list_pools(pb::ListPoolsRequest { kind: 0 }).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let forged = rpc.acquire_lease(authed(lease(cpu(), 1, 60, 0, ""), "not.a.token")).await.unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    let other_issuer = sutazai_testkit::TestIssuer::start().await;
    let foreign = rpc
        .renew_lease(authed(
            pb::RenewLeaseRequest { lease_id: uuid::Uuid::nil().to_string(), ttl_s: 0 },
            &other_issuer.admin_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::Unauthenticated);
    for status in [
        rpc.release_lease(pb::ReleaseLeaseRequest::default()).await.unwrap_err(),
        rpc.get_policy(pb::GetPolicyRequest { resource: Some(cpu()) }).await.unwrap_err(),
        rpc.set_policy(pb::SetPolicyRequest::default()).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let invalid = Code::InvalidArgument;
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 0, 60, 0, "")).await,
        invalid,
        "amount: must be at least 1",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 0, 0, "")).await,
        invalid,
        "ttl_s: must be between 1 and 3600",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 3601, 0, "")).await,
        invalid,
        "ttl_s: must be between 1 and 3600",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 60, 10, "")).await,
        invalid,
        "priority: must be between 0 and 9",
    );
    let mut waiting_too_long = lease(cpu(), 1, 60, 0, "");
    waiting_too_long.wait_timeout_ms = 10_001;
    assert_status(
        arbitrator.acquire(&alice, waiting_too_long).await,
        invalid,
        "wait_timeout_ms: must be at most 10000",
    );
    let unnamed = pb::ResourceRef { kind: pb::ResourceKind::Unspecified.into(), name: String::new() };
    assert_status(
        arbitrator.acquire(&alice, lease(unnamed, 1, 60, 0, "")).await,
        invalid,
        "resource.kind: must be cpu, memory, gpu, llm_slots or custom",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(custom(""), 1, 60, 0, "")).await,
        invalid,
        "resource.name: `custom` needs a pool name",
    );
    let mut no_resource = lease(cpu(), 1, 60, 0, "");
    no_resource.resource = None;
    assert_status(arbitrator.acquire(&alice, no_resource).await, invalid, "resource: is required");
    assert_status(
        arbitrator.acquire(&backing.service("gateway"), lease(cpu(), 1, 60, 0, &"x".repeat(201))).await,
        invalid,
        "holder: must be at most 200 printable bytes",
    );
    assert_status(arbitrator.renew(&alice, "lease-1", 0).await, invalid, "lease_id: must be a UUID");
    assert_status(arbitrator.release(&alice, "lease-1", "").await, invalid, "lease_id: must be a UUID");
}

#[tokio::test]
async fn unknown_pools_and_leases_are_not_found() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    assert_status(
        arbitrator.acquire(&alice, lease(custom("nope"), 1, 60, 0, "")).await,
        Code::NotFound,
        "resource `custom:nope` not found",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(llm_slots("ollama/llama3.2:1b"), 1, 60, 0, "")).await,
        Code::NotFound,
        "resource `llm_slots:ollama/llama3.2:1b` not found",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_status(
        arbitrator.renew(&alice, &unknown, 0).await,
        Code::NotFound,
        &format!("lease {unknown} not found"),
    );
    assert_status(
        arbitrator.release(&alice, &unknown, "").await,
        Code::NotFound,
        &format!("lease {unknown} not found"),
    );
    // Policies are for admins and services; a user learns nothing, not even which pools exist.
    assert_status(
        arbitrator
            .rpc
            .clone()
            .get_policy(authed(pb::GetPolicyRequest { resource: Some(custom("nope")) }, &alice))
            .await,
        Code::PermissionDenied,
        "reading a policy needs the `admin` role or a service token",
    );
    let admin = backing.admin();
    let policy_of_nothing = arbitrator
        .rpc
        .clone()
        .get_policy(authed(pb::GetPolicyRequest { resource: Some(custom("nope")) }, &admin))
        .await
        .unwrap_err();
    assert_eq!(policy_of_nothing.code(), Code::NotFound);
    // A pool without a stored policy has the configured default.
    let default = arbitrator
        .rpc
        .clone()
        .get_policy(authed(pb::GetPolicyRequest { resource: Some(gpu()) }, &backing.service("scheduler")))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(default, policy(gpu(), 100.0, 100.0, 1.0, true));
}

#[tokio::test]
async fn users_act_only_for_themselves() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let (alice, bob) = (backing.user("alice"), backing.user("bob"));
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 60, 0, "bob")).await,
        Code::PermissionDenied,
        "holder: a user may only lease in its own name",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 60, 6, "alice")).await,
        Code::PermissionDenied,
        "priority above 5 needs the `admin` role or a service token",
    );
    // Services and admins may name any holder and any priority.
    let for_agent =
        arbitrator.acquire(&backing.service("coordinator"), lease(cpu(), 1, 60, 9, "agent-3")).await.unwrap();
    assert_eq!(for_agent.lease.unwrap().holder, "agent-3");
    arbitrator.acquire(&backing.admin(), lease(cpu(), 1, 60, 8, "bob")).await.unwrap();

    // Another holder's lease is invisible to a user: renewal and release find nothing.
    let alices = arbitrator.acquire(&alice, lease(cpu(), 1000, 60, 0, "")).await.unwrap().lease.unwrap();
    let missing = format!("lease {} not found", alices.id);
    assert_status(arbitrator.release(&bob, &alices.id, "").await, Code::NotFound, &missing);
    assert_status(arbitrator.release(&bob, &alices.id, "bob").await, Code::NotFound, &missing);
    assert_status(arbitrator.renew(&bob, &alices.id, 0).await, Code::NotFound, &missing);
    assert_status(
        arbitrator.release(&bob, &alices.id, "alice").await,
        Code::PermissionDenied,
        "holder: a user may only release its own leases",
    );
    // Naming the wrong holder finds nothing even for a service; the right one releases.
    let service = backing.service("gateway");
    assert_status(arbitrator.release(&service, &alices.id, "carol").await, Code::NotFound, &missing);
    arbitrator.renew(&service, &alices.id, 0).await.unwrap();
    arbitrator.release(&alice, &alices.id, "").await.unwrap();
    assert_status(arbitrator.release(&alice, &alices.id, "").await, Code::NotFound, &missing);

    // An admin releases anyone's lease.
    let bobs = arbitrator.acquire(&bob, lease(cpu(), 500, 60, 0, "")).await.unwrap().lease.unwrap();
    arbitrator.release(&backing.admin(), &bobs.id, "").await.unwrap();
    assert_eq!(backing.recorded_status(&bobs.id).await, "released");
}

#[tokio::test]
async fn policies_are_admin_only_and_checked() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let (admin, alice) = (backing.admin(), backing.user("alice"));
    assert_status(
        arbitrator.set_policy(&alice, policy(cpu(), 80.0, 30.0, 1.0, true)).await,
        Code::PermissionDenied,
        "setting a policy needs the `admin` role",
    );
    assert_status(
        arbitrator.set_policy(&backing.service("gateway"), policy(cpu(), 80.0, 30.0, 1.0, true)).await,
        Code::PermissionDenied,
        "setting a policy needs the `admin` role",
    );
    let invalid = Code::InvalidArgument;
    for (bad, message) in [
        (
            policy(cpu(), 0.0, 30.0, 1.0, true),
            "max_allocation_percent: must be greater than 0 and at most 100",
        ),
        (
            policy(cpu(), 100.1, 30.0, 1.0, true),
            "max_allocation_percent: must be greater than 0 and at most 100",
        ),
        (
            policy(cpu(), f64::NAN, 30.0, 1.0, true),
            "max_allocation_percent: must be greater than 0 and at most 100",
        ),
        (
            policy(cpu(), 80.0, -5.0, 1.0, true),
            "max_per_holder_percent: must be greater than 0 and at most 100",
        ),
        (policy(cpu(), 80.0, 30.0, 0.5, true), "oversubscription_ratio: must be between 1 and 1000"),
        (
            policy(cpu(), 80.0, 30.0, f64::INFINITY, true),
            "oversubscription_ratio: must be between 1 and 1000",
        ),
    ] {
        assert_status(arbitrator.set_policy(&admin, bad).await, invalid, message);
    }
    assert_status(
        arbitrator.set_policy(&admin, policy(custom("nope"), 80.0, 30.0, 1.0, true)).await,
        Code::NotFound,
        "resource `custom:nope` not found",
    );
    assert_status(
        arbitrator.rpc.clone().set_policy(authed(pb::SetPolicyRequest::default(), &admin)).await.map(|_| ()),
        invalid,
        "policy: is required",
    );
    // Nothing was stored by the refused calls.
    let pool = backing.pool().await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM arbitrator.policies").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0);
    pool.close().await;
}

#[tokio::test]
async fn probes_and_metrics_are_served() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    arbitrator.acquire(&alice, lease(cpu(), 100, 60, 0, "")).await.unwrap();
    let _ = arbitrator.acquire(&alice, lease(cpu(), 100_000, 60, 0, "")).await.unwrap_err();
    let http = reqwest::Client::new();
    let base = format!("http://{}", arbitrator.address);
    assert_eq!(http.get(format!("{base}/livez")).send().await.unwrap().status(), 200);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["postgres"]["status"], "ok");
    assert_eq!(report["checks"]["redis"]["status"], "ok");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("arbitrator_lease_requests_total{kind=\"cpu\",outcome=\"granted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("arbitrator_lease_requests_total{kind=\"cpu\",outcome=\"denied\"}"),
        "{metrics}"
    );
}
