//! Priority preemption on a one-GPU host: a strictly higher priority revokes the lowest-priority
//! (then newest) leases, the holder learns it on renewal and through pub/sub, equal priorities
//! never preempt, and many contending requests all finish (the original deadlocked here).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tonic::Code;

use crate::{Backing, MODEL, TestArbitrator, assert_status, gpu, lease, llm_slots, policy, settings};

#[tokio::test]
async fn a_higher_priority_preempts_and_the_holder_learns_it() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let alice = backing.user("alice");
    let scheduler = backing.service("scheduler");

    // Listen where alice's preemption notices are published before anything happens.
    let client = redis::Client::open(sutazai_testkit::redis_url()).unwrap();
    let mut notices = client.get_async_pubsub().await.unwrap();
    notices.subscribe(format!("{}preempted:alice", backing.live_prefix())).await.unwrap();

    let low = arbitrator.acquire(&alice, lease(gpu(), 1, 600, 1, "alice")).await.unwrap().lease.unwrap();
    let started = Instant::now();
    let high = arbitrator.acquire(&scheduler, lease(gpu(), 1, 600, 7, "agent-9")).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "preemption took {:?}", started.elapsed());
    assert_eq!(high.preempted_lease_ids, std::slice::from_ref(&low.id));
    let high_lease = high.lease.unwrap();
    assert_eq!((high_lease.holder.as_str(), high_lease.priority), ("agent-9", 7));

    // The holder's next renewal says why it lost the GPU.
    assert_status(
        arbitrator.renew(&alice, &low.id, 0).await,
        Code::AlreadyExists,
        &format!("lease {} was preempted by a higher-priority request", low.id),
    );
    // Releasing it finds nothing to release.
    assert_eq!(arbitrator.release(&alice, &low.id, "").await.unwrap_err().code(), Code::NotFound);

    let message =
        tokio::time::timeout(Duration::from_secs(2), notices.on_message().next()).await.unwrap().unwrap();
    let notice: serde_json::Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(notice["lease_id"], low.id);
    assert_eq!(notice["resource"], "gpu");
    assert_eq!(notice["holder"], "alice");
    assert_eq!(notice["preempted_by"], high_lease.id);
    assert_eq!(notice["preempted_by_priority"], 7);

    // Equal priority never preempts; lower even less.
    assert_status(
        arbitrator.acquire(&backing.admin(), lease(gpu(), 1, 600, 7, "admin")).await,
        Code::AlreadyExists,
        "gpu: 1 of 1 devices allocated, 1 requested",
    );
    assert_status(
        arbitrator.acquire(&alice, lease(gpu(), 1, 600, 3, "alice")).await,
        Code::AlreadyExists,
        "gpu: 1 of 1 devices allocated, 1 requested",
    );

    // The journal has both, linked.
    assert_eq!(backing.recorded_status(&low.id).await, "preempted");
    assert_eq!(backing.recorded_status(&high_lease.id).await, "active");
    let pool = backing.pool().await;
    let preempted_by: String =
        sqlx::query_scalar("SELECT preempted_by::text FROM arbitrator.leases WHERE id = $1::uuid")
            .bind(&low.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(preempted_by, high_lease.id);
    pool.close().await;
    let gpu_pool = arbitrator.pool(&alice, &gpu()).await;
    assert_eq!((gpu_pool.allocated, gpu_pool.active_leases, gpu_pool.available), (1, 1, 0));

    // Forgotten by the live view (its mark flushed), the preemption is still reported from the
    // journal.
    let mut redis = sutazai_kit::redis::connect(&backing.redis.settings()).await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}lease:{}", backing.live_prefix(), low.id))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(arbitrator.renew(&alice, &low.id, 0).await.unwrap_err().code(), Code::AlreadyExists);
    // ... but only to its holder: another user's renewal of it finds nothing.
    assert_eq!(arbitrator.renew(&backing.user("bob"), &low.id, 0).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn preemption_takes_the_lowest_priority_then_newest_and_only_what_is_needed() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let scheduler = backing.service("scheduler");
    let licenses = crate::custom("licenses");
    // Five licenses: priorities 2, 1, 1, 3 (the second priority-1 lease is newer).
    let mut ids = Vec::new();
    for (priority, amount) in [(2, 1), (1, 1), (1, 2), (3, 1)] {
        let granted =
            arbitrator.acquire(&scheduler, lease(licenses.clone(), amount, 600, priority, "batch")).await;
        ids.push(granted.unwrap().lease.unwrap().id);
    }
    // Three more at priority 4: the two priority-1 leases (3 licenses) make room, newest first;
    // nothing else goes.
    let urgent = arbitrator.acquire(&scheduler, lease(licenses.clone(), 3, 600, 4, "urgent")).await.unwrap();
    assert_eq!(urgent.preempted_lease_ids, [ids[2].clone(), ids[1].clone()]);
    // Nothing lower than 2 is left to take for a request of 2 needing 2: denied, nothing revoked.
    assert_status(
        arbitrator.acquire(&scheduler, lease(licenses.clone(), 2, 600, 2, "other")).await,
        Code::AlreadyExists,
        "custom:licenses: 5 of 5 units allocated, 2 requested",
    );
    // Priority 5 needing 2 walks priority 2, then 3, then 4: the first two free exactly enough,
    // so the priority-4 lease stays.
    let second = arbitrator.acquire(&scheduler, lease(licenses.clone(), 2, 600, 5, "other")).await.unwrap();
    assert_eq!(second.preempted_lease_ids, [ids[0].clone(), ids[3].clone()]);
    let pool = arbitrator.pool(&scheduler, &licenses).await;
    assert_eq!((pool.allocated, pool.active_leases), (5, 2));

    // With preemption off, a higher priority waits its turn like everyone else.
    arbitrator
        .set_policy(&backing.admin(), policy(licenses.clone(), 100.0, 100.0, 1.0, false))
        .await
        .unwrap();
    assert_status(
        arbitrator.acquire(&scheduler, lease(licenses.clone(), 1, 600, 9, "vip")).await,
        Code::AlreadyExists,
        "custom:licenses: 5 of 5 units allocated, 1 requested",
    );
}

#[tokio::test]
async fn contending_priorities_never_deadlock() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let scheduler = backing.service("scheduler");
    let mut tasks = Vec::new();
    for index in 0..40_u32 {
        let rpc = arbitrator.rpc.clone();
        let token = scheduler.clone();
        let resource = if index % 2 == 0 { gpu() } else { llm_slots(crate::MODEL) };
        tasks.push(tokio::spawn(async move {
            let mut request = lease(resource, 1, 1, index % 10, &format!("agent-{index}"));
            request.wait_timeout_ms = 300;
            rpc.clone()
                .acquire_lease(crate::authed(request, &token))
                .await
                .map(|response| response.into_inner())
        }));
    }
    let all = futures_util::future::join_all(tasks);
    let outcomes = tokio::time::timeout(Duration::from_secs(10), all).await.expect("requests hung");
    let mut granted = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            Ok(response) => {
                assert!(response.lease.is_some());
                granted += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert!(granted >= 2, "{granted}");
    for resource in [gpu(), llm_slots(crate::MODEL)] {
        let pool = arbitrator.pool(&scheduler, &resource).await;
        assert_eq!(pool.capacity, 1);
        assert!(pool.allocated <= 1, "{pool:?}");
    }
}

#[tokio::test]
async fn a_user_preempts_only_its_own_leases() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let (alice, bob) = (backing.user("alice"), backing.user("bob"));
    let gateway = backing.service("gateway");

    // The gateway's inference slot at priority 0: no user's priority revokes it.
    let slot = arbitrator
        .acquire(&gateway, lease(llm_slots(MODEL), 1, 600, 0, "gateway"))
        .await
        .unwrap()
        .lease
        .unwrap();
    assert_status(
        arbitrator.acquire(&bob, lease(llm_slots(MODEL), 1, 600, 5, "")).await,
        Code::AlreadyExists,
        &format!("llm_slots:{MODEL}: 1 of 1 slots allocated, 1 requested"),
    );
    // Nor another user's lease.
    let relaxed = arbitrator.acquire(&alice, lease(gpu(), 1, 600, 0, "")).await.unwrap().lease.unwrap();
    assert_status(
        arbitrator.acquire(&bob, lease(gpu(), 1, 600, 5, "")).await,
        Code::AlreadyExists,
        "gpu: 1 of 1 devices allocated, 1 requested",
    );
    // A user's own lower-priority lease yields to its more urgent request.
    let urgent = arbitrator.acquire(&alice, lease(gpu(), 1, 600, 1, "")).await.unwrap();
    assert_eq!(urgent.preempted_lease_ids, std::slice::from_ref(&relaxed.id));

    // Admins and services preempt anyone's.
    let by_admin =
        arbitrator.acquire(&backing.admin(), lease(llm_slots(MODEL), 1, 600, 1, "admin")).await.unwrap();
    assert_eq!(by_admin.preempted_lease_ids, [slot.id]);
    let by_service = arbitrator.acquire(&gateway, lease(gpu(), 1, 600, 2, "gateway")).await.unwrap();
    assert_eq!(by_service.preempted_lease_ids, [urgent.lease.unwrap().id]);
}

#[tokio::test]
async fn a_victim_without_its_key_is_skipped_and_the_preemption_is_whole() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let scheduler = backing.service("scheduler");
    let licenses = crate::custom("licenses");
    // Five licenses: priority 1 (1), priority 2 (1), priority 3 (3).
    let mut ids = Vec::new();
    for (priority, amount) in [(1, 1), (2, 1), (3, 3)] {
        let granted =
            arbitrator.acquire(&scheduler, lease(licenses.clone(), amount, 600, priority, "batch")).await;
        ids.push(granted.unwrap().lease.unwrap().id);
    }
    // The middle victim's hash is lost; its id is still in the pool's preemption order.
    let mut redis = sutazai_kit::redis::connect(&backing.redis.settings()).await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}lease:{}", backing.live_prefix(), ids[1]))
        .query_async(&mut redis)
        .await
        .unwrap();

    // Four needed: the lost lease is skipped, the other two revoked, all in one step.
    let urgent = arbitrator.acquire(&scheduler, lease(licenses.clone(), 4, 600, 5, "urgent")).await.unwrap();
    assert_eq!(urgent.preempted_lease_ids, [ids[0].clone(), ids[2].clone()]);
    assert_eq!(backing.recorded_status(&ids[0]).await, "preempted");
    assert_eq!(backing.recorded_status(&ids[2]).await, "preempted");
    let in_order: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{}prio:custom:licenses", backing.live_prefix()))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(in_order, [urgent.lease.unwrap().id]);
}
