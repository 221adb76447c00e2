//! Two arbitrator replicas on one Postgres and one Redis, racing a thousand acquires of mixed
//! amounts on a 20-unit pool: at no moment do the live leases hold more than the pool has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tonic::Code;

use crate::{Backing, TestArbitrator, custom, lease, settings};

const CAPACITY: u64 = 20;
const TASKS: usize = 50;
const ACQUIRES_PER_TASK: usize = 20;

/// A granted lease's live interval by the Redis clock, in milliseconds: [acquired, expires).
#[derive(Debug, Clone, Copy)]
struct Interval {
    from_ms: i64,
    until_ms: i64,
    amount: u64,
}

fn millis(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp.seconds * 1000 + i64::from(timestamp.nanos) / 1_000_000
}

#[tokio::test]
async fn two_replicas_never_over_allocate() {
    let backing = Backing::new().await;
    let first = Arc::new(TestArbitrator::start(&backing, settings()).await);
    let second = Arc::new(TestArbitrator::start(&backing, settings()).await);
    let token = backing.service("racer");
    let race = custom("race");

    // Both replicas' ListPools are watched throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for replica in [Arc::clone(&first), Arc::clone(&second)] {
        let (stop, max_seen, token, race) =
            (Arc::clone(&stop), Arc::clone(&max_seen), token.clone(), race.clone());
        watchers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let pool = replica.pool(&token, &race).await;
                assert!(pool.allocated <= CAPACITY, "listed over capacity: {pool:?}");
                max_seen.fetch_max(pool.allocated, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    let mut racers = Vec::new();
    for task in 0..TASKS {
        let replica = if task % 2 == 0 { Arc::clone(&first) } else { Arc::clone(&second) };
        let (token, race) = (token.clone(), race.clone());
        racers.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            let mut denied = 0_u32;
            for _ in 0..ACQUIRES_PER_TASK {
                let (amount, wait_ms, pause_ms) = {
                    let mut random = rand::rng();
                    (
                        random.random_range(1..=5_u64),
                        [0_u32, 0, 200, 600][random.random_range(0..4)],
                        random.random_range(0..30_u64),
                    )
                };
                let mut request = lease(race.clone(), amount, 1, 0, &format!("racer-{task}"));
                request.wait_timeout_ms = wait_ms;
                match replica.acquire(&token, request).await {
                    Ok(response) => {
                        let lease = response.lease.unwrap();
                        granted.push(Interval {
                            from_ms: millis(lease.acquired_at.as_ref().unwrap()),
                            until_ms: millis(lease.expires_at.as_ref().unwrap()),
                            amount,
                        });
                    }
                    Err(status) => {
                        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                        denied += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            (granted, denied)
        }));
    }
    let mut intervals = Vec::new();
    let mut denied = 0;
    for racer in racers {
        let (granted, denials) = racer.await.unwrap();
        intervals.extend(granted);
        denied += denials;
    }
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        watcher.await.unwrap();
    }
    assert_eq!(intervals.len() + denied as usize, TASKS * ACQUIRES_PER_TASK);

    // The held amount only rises at a grant, so checking at every grant checks every moment.
    let mut busiest = 0;
    for grant in &intervals {
        let live: u64 = intervals
            .iter()
            .filter(|other| other.from_ms <= grant.from_ms && grant.from_ms < other.until_ms)
            .map(|other| other.amount)
            .sum();
        assert!(live <= CAPACITY, "{live} held at {} ms: {grant:?}", grant.from_ms);
        busiest = busiest.max(live);
    }
    // The race was real: the pool filled up, requests were turned away, and leases kept coming
    // as others expired.
    assert!(busiest >= CAPACITY - 4, "busiest moment held only {busiest}");
    assert!(denied > 100, "only {denied} denials");
    assert!(intervals.len() > 20, "only {} grants", intervals.len());
    assert!(max_seen.load(Ordering::Relaxed) > 0);

    // Once everything expired, both replicas agree the pool is empty.
    for replica in [&first, &second] {
        sutazai_testkit::wait_for("the pool to drain", Duration::from_secs(3), || async {
            replica.pool(&token, &race).await.allocated == 0
        })
        .await;
    }
}
