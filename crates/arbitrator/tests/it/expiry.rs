//! A lease not renewed stops counting at its expiry, is not renewable after it, and is marked
//! expired in the journal by the sweeper.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::{Backing, TestArbitrator, cpu, lease, settings};

#[tokio::test]
async fn an_unrenewed_lease_is_gone_within_its_ttl() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let granted = arbitrator.acquire(&alice, lease(cpu(), 1500, 2, 0, "alice")).await.unwrap().lease.unwrap();
    let started = Instant::now();
    let expires_at = granted.expires_at.unwrap();
    let acquired_at = granted.acquired_at.unwrap();
    assert_eq!(expires_at.seconds - acquired_at.seconds - i64::from(expires_at.nanos < acquired_at.nanos), 2);
    assert_eq!(arbitrator.pool(&alice, &cpu()).await.allocated, 1500);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Still held well before its expiry.
    let pool = arbitrator.pool(&alice, &cpu()).await;
    assert_eq!((pool.allocated, pool.active_leases), (1500, 1));

    let mut gone_after = None;
    while started.elapsed() < Duration::from_secs(3) {
        let pool = arbitrator.pool(&alice, &cpu()).await;
        if pool.allocated == 0 {
            assert_eq!((pool.active_leases, pool.available), (0, 8000));
            gone_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone_after = gone_after.expect("the lease still counted 3 s after it was granted");
    assert!(gone_after >= Duration::from_millis(1900), "gone too early: {gone_after:?}");

    let renewal = arbitrator.renew(&alice, &granted.id, 0).await.unwrap_err();
    assert_eq!(renewal.code(), Code::NotFound, "{renewal:?}");
    assert_eq!(renewal.message(), format!("lease {} not found", granted.id));
    let release = arbitrator.release(&alice, &granted.id, "").await.unwrap_err();
    assert_eq!(release.code(), Code::NotFound);

    sutazai_testkit::wait_for("the sweeper to mark the lease expired", Duration::from_secs(3), || async {
        backing.recorded_status(&granted.id).await == "expired"
    })
    .await;
}

#[tokio::test]
async fn renewal_extends_from_now_and_may_change_the_ttl() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let granted = arbitrator.acquire(&alice, lease(cpu(), 1000, 1, 0, "alice")).await.unwrap().lease.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let renewed = arbitrator.renew(&alice, &granted.id, 0).await.unwrap();
        assert_eq!((renewed.ttl_s, renewed.amount, renewed.acquired_at), (1, 1000, granted.acquired_at));
    }
    // Two seconds after the grant a 1 s lease is still held, because it was renewed.
    assert_eq!(arbitrator.pool(&alice, &cpu()).await.allocated, 1000);
    let longer = arbitrator.renew(&alice, &granted.id, 30).await.unwrap();
    assert_eq!(longer.ttl_s, 30);
    let remaining = longer.expires_at.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((29..=30).contains(&remaining), "{remaining}");
    let pool = backing.pool().await;
    let (ttl_s, status): (i32, String) =
        sqlx::query_as("SELECT ttl_s, status FROM arbitrator.leases WHERE id = $1::uuid")
            .bind(&granted.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((ttl_s, status.as_str()), (30, "active"));
    pool.close().await;
}
