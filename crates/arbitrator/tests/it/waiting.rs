//! Requests that wait for capacity: woken by a release (on any replica) rather than spinning, and
//! denied when their wait runs out.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::{Backing, TestArbitrator, assert_status, gpu, lease, settings};

#[tokio::test]
async fn a_waiting_request_gets_the_capacity_released_on_another_replica() {
    let backing = Backing::new().await;
    let first = TestArbitrator::start(&backing, settings()).await;
    let second = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let bob = backing.user("bob");
    for _ in 0..3 {
        let held = first.acquire(&alice, lease(gpu(), 1, 600, 0, "")).await.unwrap().lease.unwrap();
        let waiter = {
            let (rpc, bob) = (second.rpc.clone(), bob.clone());
            tokio::spawn(async move {
                let mut request = lease(gpu(), 1, 600, 0, "");
                request.wait_timeout_ms = 5000;
                let response = rpc.clone().acquire_lease(crate::authed(request, &bob)).await;
                (response.map(tonic::Response::into_inner), Instant::now())
            })
        };
        // Long enough for the waiter's polling to have backed off to its slowest pace.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!waiter.is_finished());
        let released_at = Instant::now();
        first.release(&alice, &held.id, "").await.unwrap();
        let (granted, granted_at) = waiter.await.unwrap();
        let lease = granted.unwrap().lease.unwrap();
        assert_eq!(lease.holder, "bob");
        let handoff = granted_at.duration_since(released_at);
        // Well under the slowest poll (250 ms): only the release's wake-up is this fast.
        assert!(handoff < Duration::from_millis(60), "handoff took {handoff:?}");
        second.release(&bob, &lease.id, "").await.unwrap();
    }
}

#[tokio::test]
async fn a_wait_that_runs_out_is_denied_with_the_reason() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    arbitrator.acquire(&alice, lease(gpu(), 1, 600, 0, "")).await.unwrap();
    let mut request = lease(gpu(), 1, 600, 0, "");
    request.wait_timeout_ms = 400;
    let started = Instant::now();
    assert_status(
        arbitrator.acquire(&backing.user("bob"), request).await,
        Code::AlreadyExists,
        "gpu: 1 of 1 devices allocated, 1 requested",
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_millis(1500), "{waited:?}");
}

#[tokio::test]
async fn a_waiting_request_gets_capacity_freed_by_expiry() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    arbitrator.acquire(&alice, lease(gpu(), 1, 1, 0, "")).await.unwrap();
    let mut request = lease(gpu(), 1, 600, 0, "");
    request.wait_timeout_ms = 3000;
    let started = Instant::now();
    let granted = arbitrator.acquire(&backing.user("bob"), request).await.unwrap().lease.unwrap();
    assert_eq!(granted.holder, "bob");
    // Expiry announces nothing; the bounded poll finds it within its slowest pace.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700) && waited < Duration::from_millis(1500), "{waited:?}");
}

#[tokio::test]
async fn a_request_cancelled_after_its_grant_leaves_no_lease() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    // Holding the journal's table lets the grant happen in Redis while its record cannot commit.
    let pool = backing.pool().await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE arbitrator.leases IN EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        arbitrator.acquire(&alice, lease(gpu(), 1, 600, 0, "")),
    )
    .await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert_eq!(arbitrator.pool(&alice, &gpu()).await.allocated, 1);
    blocker.rollback().await.unwrap();

    // Nobody will ever learn of the grant: it is recorded, then released.
    sutazai_testkit::wait_for("the abandoned grant to be released", Duration::from_secs(3), || {
        let pool = pool.clone();
        async move {
            let statuses: Vec<String> =
                sqlx::query_scalar("SELECT status FROM arbitrator.leases").fetch_all(&pool).await.unwrap();
            statuses == ["released"]
        }
    })
    .await;
    assert_eq!(arbitrator.pool(&alice, &gpu()).await.allocated, 0);
    pool.close().await;
}
