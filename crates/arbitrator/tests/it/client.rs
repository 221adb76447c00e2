//! The lease client other crates use: a guard that renews in the background, releases on drop,
//! and tells its holder when the lease was preempted.

use std::time::{Duration, Instant};

use sutazai_arbitrator::client::{LeaseClient, LeaseError, Resource};

use crate::{Backing, MODEL, TestArbitrator, lease, llm_slots, settings};

#[tokio::test]
async fn a_guard_renews_while_held_and_releases_on_drop() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let token = backing.service("gateway");
    let client = LeaseClient::new(arbitrator.channel(), token.clone());
    let slot = Resource::LlmSlots(MODEL.to_owned());

    let guard = client.acquire(slot.clone(), 1, 1, 0, "gateway", 0).await.unwrap();
    assert_eq!(guard.lease().ttl_s, 1);
    // Three ttls later the one-second lease is still held: the guard renewed it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(guard.lost_reason(), None);
    assert_eq!(arbitrator.pool(&token, &llm_slots(MODEL)).await.allocated, 1);
    match client.acquire(slot.clone(), 1, 1, 0, "gateway", 0).await.unwrap_err() {
        LeaseError::Denied(reason) => {
            assert_eq!(reason, format!("llm_slots:{MODEL}: 1 of 1 slots allocated, 1 requested"))
        }
        other => panic!("{other:?}"),
    }

    guard.release().await.unwrap();

    // A second caller waits; dropping a guard hands the slot over at once, long before its ttl.
    let held = client.acquire(slot.clone(), 1, 60, 0, "gateway", 0).await.unwrap();
    let dropped_id = held.id().to_owned();
    let waiting = {
        let (client, slot) = (client.clone(), slot.clone());
        tokio::spawn(async move {
            let outcome = client.acquire(slot, 1, 30, 0, "gateway", 5000).await;
            (outcome, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dropped_at = Instant::now();
    drop(held);
    let (next, granted_at) = tokio::time::timeout(Duration::from_secs(2), waiting).await.unwrap().unwrap();
    let next = next.unwrap();
    let handoff = granted_at.duration_since(dropped_at);
    assert!(handoff < Duration::from_millis(300), "handoff took {handoff:?}");
    assert_eq!(arbitrator.pool(&token, &llm_slots(MODEL)).await.allocated, 1);
    sutazai_testkit::wait_for(
        "the dropped lease to be recorded released",
        Duration::from_secs(2),
        || async { backing.recorded_status(&dropped_id).await == "released" },
    )
    .await;
    let id = next.id().to_owned();
    next.release().await.unwrap();
    assert_eq!(arbitrator.pool(&token, &llm_slots(MODEL)).await.allocated, 0);
    assert_eq!(backing.recorded_status(&id).await, "released");
}

#[tokio::test]
async fn a_guard_reports_the_lease_lost_once_renewals_fail_past_its_expiry() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let client = LeaseClient::new(arbitrator.channel(), backing.service("gateway"));
    let mut guard =
        client.acquire(Resource::LlmSlots(MODEL.to_owned()), 1, 1, 0, "gateway", 0).await.unwrap();
    // The arbitrator is gone: every renewal fails as unavailable, never as not_found.
    arbitrator.stop().await;
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost()).await.unwrap();
    assert_eq!(reason, format!("lease {} expired before a renewal got through", guard.id()));
}

#[tokio::test]
async fn a_guard_learns_it_was_preempted() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let client = LeaseClient::with_token_provider(arbitrator.channel(), {
        let alice = alice.clone();
        move || alice.clone()
    });
    let mut guard = client.acquire(Resource::LlmSlots(MODEL.to_owned()), 1, 3, 1, "", 0).await.unwrap();
    assert_eq!(guard.lease().holder, "alice");
    let urgent =
        arbitrator.acquire(&backing.admin(), lease(llm_slots(MODEL), 1, 60, 8, "admin")).await.unwrap();
    assert_eq!(urgent.preempted_lease_ids, [guard.id().to_owned()]);
    // The guard renews every second; its next renewal learns of the preemption.
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost()).await.unwrap();
    assert_eq!(reason, format!("lease {} was preempted by a higher-priority request", guard.id()));
    assert_eq!(guard.lost_reason(), Some(reason));
    assert!(
        matches!(guard.release().await, Err(LeaseError::Rejected(status)) if status.code() == tonic::Code::NotFound)
    );
}
