//! Total and per-holder limits on a configured 8-core host, and what ListPools reports.

use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{Backing, TestArbitrator, assert_status, cpu, lease, policy, settings};

#[tokio::test]
async fn cpu_is_limited_in_total_and_per_holder() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let admin = backing.admin();
    let stored = arbitrator.set_policy(&admin, policy(cpu(), 80.0, 30.0, 1.0, true)).await.unwrap();
    assert_eq!(stored, policy(cpu(), 80.0, 30.0, 1.0, true));

    let (alice, bob, carol, dave) =
        (backing.user("alice"), backing.user("bob"), backing.user("carol"), backing.user("dave"));
    let first = arbitrator.acquire(&alice, lease(cpu(), 2000, 60, 0, "alice")).await.unwrap();
    let granted = first.lease.unwrap();
    assert_eq!((granted.amount, granted.holder.as_str(), granted.ttl_s), (2000, "alice", 60));
    assert!(first.preempted_lease_ids.is_empty());

    // 2400 per holder (30 % of 8000): alice's second 1000 would make 3000.
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1000, 60, 0, "alice")).await,
        Code::AlreadyExists,
        "cpu: holder alice holds 2000 of 2400 millicores allowed per holder, 1000 requested",
    );
    arbitrator.acquire(&bob, lease(cpu(), 2000, 60, 0, "bob")).await.unwrap();
    // An empty holder is the caller itself.
    let carols = arbitrator.acquire(&carol, lease(cpu(), 2000, 60, 0, "")).await.unwrap();
    assert_eq!(carols.lease.unwrap().holder, "carol");
    // 6400 in total (80 %): 6000 are held.
    assert_status(
        arbitrator.acquire(&dave, lease(cpu(), 1000, 60, 0, "dave")).await,
        Code::AlreadyExists,
        "cpu: 6000 of 6400 millicores allocated, 1000 requested",
    );

    let pools = arbitrator.pools(&dave, pb::ResourceKind::Cpu).await;
    assert_eq!(
        pools,
        [pb::ResourcePool {
            resource: Some(cpu()),
            capacity: 8000,
            allocated: 6000,
            available: 400,
            active_leases: 3
        }]
    );
    // Every kind without a filter, in kind then name order.
    let all = arbitrator.pools(&dave, pb::ResourceKind::Unspecified).await;
    let names: Vec<(i32, String)> =
        all.iter().map(|pool| pool.resource.as_ref().map(|r| (r.kind, r.name.clone())).unwrap()).collect();
    assert_eq!(
        names,
        [
            (pb::ResourceKind::Cpu.into(), String::new()),
            (pb::ResourceKind::Memory.into(), String::new()),
            (pb::ResourceKind::Gpu.into(), String::new()),
            (pb::ResourceKind::LlmSlots.into(), crate::MODEL.to_owned()),
            (pb::ResourceKind::Custom.into(), "licenses".to_owned()),
            (pb::ResourceKind::Custom.into(), "race".to_owned()),
        ]
    );
    assert_eq!(all[1].capacity, 16 << 30);

    // The policy reads back as set, and the stored row names who set it.
    let read = arbitrator
        .rpc
        .clone()
        .get_policy(crate::authed(pb::GetPolicyRequest { resource: Some(cpu()) }, &backing.admin()))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(read, policy(cpu(), 80.0, 30.0, 1.0, true));
    let pool = backing.pool().await;
    let updated_by: String =
        sqlx::query_scalar("SELECT updated_by FROM arbitrator.policies WHERE resource = 'cpu'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(updated_by, "test");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM arbitrator.audit_log WHERE action = 'resource_policy_set' AND target = 'cpu'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    pool.close().await;
}

#[tokio::test]
async fn oversubscription_raises_the_limit_and_a_policy_change_applies_at_once() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let (admin, alice) = (backing.admin(), backing.user("alice"));
    arbitrator.set_policy(&admin, policy(cpu(), 100.0, 50.0, 1.5, true)).await.unwrap();
    // 12000 in total, 6000 per holder.
    arbitrator.acquire(&alice, lease(cpu(), 6000, 60, 0, "alice")).await.unwrap();
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 60, 0, "alice")).await,
        Code::AlreadyExists,
        "cpu: holder alice holds 6000 of 6000 millicores allowed per holder, 1 requested",
    );
    let bob = backing.user("bob");
    arbitrator.acquire(&bob, lease(cpu(), 6000, 60, 0, "bob")).await.unwrap();
    let pool = arbitrator.pool(&alice, &cpu()).await;
    assert_eq!((pool.capacity, pool.allocated, pool.available), (8000, 12_000, 0));
    // When both limits are exceeded the pool's is the reason given.
    assert_status(
        arbitrator.acquire(&alice, lease(cpu(), 1, 60, 0, "alice")).await,
        Code::AlreadyExists,
        "cpu: 12000 of 12000 millicores allocated, 1 requested",
    );

    // Lowering the limit takes nothing away from live leases but stops new ones.
    arbitrator.set_policy(&admin, policy(cpu(), 50.0, 100.0, 1.0, true)).await.unwrap();
    assert_status(
        arbitrator.acquire(&backing.user("carol"), lease(cpu(), 1, 60, 0, "carol")).await,
        Code::AlreadyExists,
        "cpu: 12000 of 4000 millicores allocated, 1 requested",
    );
}

#[tokio::test]
async fn every_sweep_replaces_stale_limits_in_redis() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    // Limits left behind by a replica with another configuration: nothing may be leased.
    let mut redis = sutazai_kit::redis::connect(&backing.redis.settings()).await.unwrap();
    let limits_key = format!("{}limits", backing.live_prefix());
    let _: i64 =
        redis::cmd("HSET").arg(&limits_key).arg("gpu").arg("0 0 0").query_async(&mut redis).await.unwrap();
    sutazai_testkit::wait_for("a sweep to republish the limits", std::time::Duration::from_secs(3), || {
        let (mut redis, limits_key) = (redis.clone(), limits_key.clone());
        async move {
            let stored: String =
                redis::cmd("HGET").arg(&limits_key).arg("gpu").query_async(&mut redis).await.unwrap();
            stored == "1 1 1"
        }
    })
    .await;
    let alice = backing.user("alice");
    arbitrator.acquire(&alice, lease(crate::gpu(), 1, 60, 0, "")).await.unwrap();
}
