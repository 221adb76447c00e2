//! The inference slots the gateway and the agents share: one `llm_slots` lease per LLM call, and
//! the local semaphore whenever the arbitrator cannot be used.

use std::sync::Arc;
use std::time::Duration;

use sutazai_arbitrator::client::LeaseClient;
use sutazai_arbitrator::client::slots::ArbitratedSlots;
use sutazai_kit::breaker::{BreakerSettings, CircuitBreaker};
use sutazai_llm::{InferenceSlots, LlmError};
use tonic::transport::Channel;

use crate::{Backing, MODEL, TestArbitrator, llm_slots, settings};

const PROVIDER: &str = "ollama";
const MODEL_NAME: &str = "smollm2:135m";

#[tokio::test]
async fn each_call_holds_a_lease_and_a_full_pool_makes_the_call_unavailable() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let token = backing.service("agent-worker");
    assert_eq!(format!("{PROVIDER}/{MODEL_NAME}"), MODEL);
    let slots = ArbitratedSlots::new(
        LeaseClient::new(arbitrator.channel(), token.clone()),
        4,
        Duration::from_millis(200),
    );

    let held = slots.acquire(PROVIDER, MODEL_NAME).await.unwrap();
    assert_eq!(arbitrator.pool(&token, &llm_slots(MODEL)).await.allocated, 1);
    // The local pool has room, but the model's one slot is taken: waited for, then refused.
    match slots.acquire(PROVIDER, MODEL_NAME).await.unwrap_err() {
        LlmError::Unavailable { reason } => {
            assert_eq!(reason, format!("every inference slot of {MODEL} is busy"))
        }
        other => panic!("{other:?}"),
    }
    drop(held);
    sutazai_testkit::wait_for(
        "the dropped permit's lease to be released",
        Duration::from_secs(2),
        || async { arbitrator.pool(&token, &llm_slots(MODEL)).await.allocated == 0 },
    )
    .await;
    assert!(slots.acquire(PROVIDER, MODEL_NAME).await.is_ok());
}

#[tokio::test]
async fn without_a_pool_or_a_reachable_arbitrator_the_local_slots_bound_the_calls() {
    let backing = Backing::new().await;
    let arbitrator = TestArbitrator::start(&backing, settings()).await;
    let token = backing.service("agent-worker");

    // No pool for the model: the local semaphore (one slot) decides.
    let slots =
        ArbitratedSlots::new(LeaseClient::new(arbitrator.channel(), token.clone()), 1, Duration::ZERO);
    let first = slots.acquire(PROVIDER, "unpooled:1b").await.unwrap();
    let second =
        tokio::time::timeout(Duration::from_millis(200), slots.acquire(PROVIDER, "unpooled:1b")).await;
    assert!(second.is_err(), "the second call waits for the local slot");
    drop(first);
    assert!(slots.acquire(PROVIDER, "unpooled:1b").await.is_ok());

    // The arbitrator down: after the breaker opens, calls no longer even try it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    let breaker = Arc::new(CircuitBreaker::new(
        "arbitrator",
        BreakerSettings { failure_threshold: 1, open_ms: 60_000 },
    ));
    let slots = ArbitratedSlots::new(LeaseClient::new(unreachable, token), 2, Duration::ZERO)
        .with_breaker(Arc::clone(&breaker));
    let _local = slots.acquire(PROVIDER, MODEL_NAME).await.unwrap();
    assert_eq!(breaker.snapshot().state, sutazai_kit::breaker::BreakerState::Open);
    let _also_local = slots.acquire(PROVIDER, MODEL_NAME).await.unwrap();
}
