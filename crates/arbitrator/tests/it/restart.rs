//! Restarts: a new replica on the same Postgres and Redis carries on with the live view; with the
//! Redis keys flushed it restores the live leases from the journal (and only those).

use std::time::Duration;

use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{Backing, TestArbitrator, assert_status, cpu, custom, lease, settings};

async fn allocations(arbitrator: &TestArbitrator, token: &str) -> Vec<(u64, u32)> {
    arbitrator
        .pools(token, pb::ResourceKind::Unspecified)
        .await
        .into_iter()
        .map(|pool| (pool.allocated, pool.active_leases))
        .collect()
}

#[tokio::test]
async fn restarts_keep_and_restore_live_leases() {
    let backing = Backing::new().await;
    let alice = backing.user("alice");
    let first = TestArbitrator::start(&backing, settings()).await;
    let held = first.acquire(&alice, lease(cpu(), 3000, 600, 2, "alice")).await.unwrap().lease.unwrap();
    first.acquire(&alice, lease(custom("licenses"), 2, 600, 0, "alice")).await.unwrap();
    let released = first.acquire(&alice, lease(cpu(), 500, 600, 0, "alice")).await.unwrap().lease.unwrap();
    first.release(&alice, &released.id, "").await.unwrap();
    let before = allocations(&first, &alice).await;
    first.stop().await;

    // Same Redis: the live view is intact and simply carries on.
    let second = TestArbitrator::start(&backing, settings()).await;
    assert_eq!(allocations(&second, &alice).await, before);
    let renewed = second.renew(&alice, &held.id, 0).await.unwrap();
    assert_eq!((renewed.amount, renewed.holder.as_str(), renewed.priority), (3000, "alice", 2));
    // A short lease that will have expired by the time Redis is flushed.
    let short = second.acquire(&alice, lease(custom("race"), 4, 1, 0, "alice")).await.unwrap().lease.unwrap();
    second.stop().await;

    // Redis lost everything of this deployment: the journal's live leases come back, the released
    // one and the expired one do not.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    backing.redis.cleanup().await;
    let third = TestArbitrator::start(&backing, settings()).await;
    assert_eq!(allocations(&third, &alice).await, before);
    assert!(third.renew(&alice, &short.id, 0).await.is_err());
    let renewed = third.renew(&alice, &held.id, 0).await.unwrap();
    assert_eq!((renewed.amount, renewed.acquired_at), (3000, held.acquired_at));
    assert!(third.renew(&alice, &released.id, 0).await.is_err());
    third.release(&alice, &held.id, "").await.unwrap();
    assert_eq!(third.pool(&alice, &cpu()).await.allocated, 0);
    assert_eq!(backing.recorded_status(&held.id).await, "released");
    assert_eq!(backing.recorded_status(&released.id).await, "released");
}

#[tokio::test]
async fn a_running_replica_restores_after_redis_is_flushed() {
    let backing = Backing::new().await;
    let alice = backing.user("alice");
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let held = arbitrator.acquire(&alice, lease(cpu(), 2500, 600, 0, "alice")).await.unwrap().lease.unwrap();
    backing.redis.cleanup().await;
    // The sweeper (every 100 ms) notices the lost live view and rebuilds it.
    sutazai_testkit::wait_for("the live view to be restored", Duration::from_secs(3), || async {
        arbitrator.pool(&alice, &cpu()).await.allocated == 2500
    })
    .await;
    arbitrator.renew(&alice, &held.id, 0).await.unwrap();
}

#[tokio::test]
async fn after_a_flush_nothing_is_decided_before_the_restore() {
    let backing = Backing::new().await;
    let (alice, bob) = (backing.user("alice"), backing.user("bob"));
    // No sweep comes to the rescue: the requests themselves must notice and restore.
    let mut no_sweeps = settings();
    no_sweeps.sweep_interval_ms = 3_600_000;
    let arbitrator = TestArbitrator::start(&backing, no_sweeps).await;
    // Past the sweeper's immediate first tick.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = arbitrator.acquire(&alice, lease(cpu(), 6000, 600, 0, "")).await.unwrap().lease.unwrap();
    backing.redis.cleanup().await;

    // Granting from the emptied view would hand out capacity alice still holds.
    assert_status(
        arbitrator.acquire(&bob, lease(cpu(), 3000, 600, 0, "")).await,
        Code::AlreadyExists,
        "cpu: 6000 of 8000 millicores allocated, 3000 requested",
    );
    let granted = arbitrator.acquire(&bob, lease(cpu(), 2000, 600, 0, "")).await.unwrap().lease.unwrap();
    let pool = arbitrator.pool(&alice, &cpu()).await;
    assert_eq!((pool.allocated, pool.active_leases), (8000, 2));

    // Renewals and releases restore too, instead of answering not_found.
    backing.redis.cleanup().await;
    let renewed = arbitrator.renew(&alice, &held.id, 0).await.unwrap();
    assert_eq!((renewed.amount, renewed.acquired_at), (6000, held.acquired_at));
    backing.redis.cleanup().await;
    arbitrator.release(&bob, &granted.id, "").await.unwrap();
    let pool = arbitrator.pool(&alice, &cpu()).await;
    assert_eq!((pool.allocated, pool.active_leases), (6000, 1));
    assert_eq!(backing.recorded_status(&granted.id).await, "released");
}
