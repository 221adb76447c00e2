//! The breaker's behaviour through its public calls, on a clock the tests move by hand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

#[derive(Debug)]
struct FakeClock(Mutex<Instant>);

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TestError {
    /// The downstream is down.
    Down,
    /// The downstream refused our input: it is healthy.
    BadInput,
}

impl BreakerFailure for TestError {
    fn counts_as_failure(&self) -> bool {
        *self == TestError::Down
    }
}

const OPEN: Duration = Duration::from_secs(30);

fn breaker(name: &str, threshold: u32) -> (Arc<CircuitBreaker>, Arc<FakeClock>) {
    let clock = FakeClock::new();
    let settings = BreakerSettings { failure_threshold: threshold, open_ms: 30_000 };
    let breaker = Arc::new(CircuitBreaker::with_clock(name, settings, clock.clone()));
    (breaker, clock)
}

async fn fail(breaker: &CircuitBreaker) -> Result<(), BreakerError<TestError>> {
    breaker.call(async { Err::<(), _>(TestError::Down) }).await
}

async fn succeed(breaker: &CircuitBreaker) -> Result<u32, BreakerError<TestError>> {
    breaker.call(async { Ok::<_, TestError>(7) }).await
}

#[tokio::test]
async fn opens_after_the_threshold_of_consecutive_failures() {
    let (breaker, _clock) = breaker("orchestrator", 3);
    for attempt in 1..=2 {
        assert!(matches!(fail(&breaker).await, Err(BreakerError::Inner(TestError::Down))));
        assert_eq!(breaker.state(), BreakerState::Closed, "after {attempt} failures");
    }
    assert!(matches!(fail(&breaker).await, Err(BreakerError::Inner(TestError::Down))));
    assert_eq!(breaker.state(), BreakerState::Open);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.consecutive_failures, 3);
    assert!(snapshot.opened_at.is_some());
    assert_eq!(snapshot.retry_after_ms, Some(30_000));
}

#[tokio::test]
async fn client_errors_and_successes_do_not_open_the_circuit() {
    let (breaker, _clock) = breaker("vector", 2);
    fail(&breaker).await.unwrap_err();
    let refused = breaker.call(async { Err::<(), _>(TestError::BadInput) }).await;
    assert!(matches!(refused, Err(BreakerError::Inner(TestError::BadInput))));
    assert_eq!(breaker.snapshot().consecutive_failures, 0, "a 4xx-like answer proves the downstream is up");
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed, "the failures were not consecutive");
    assert_eq!(succeed(&breaker).await.unwrap(), 7);
}

#[tokio::test]
async fn an_open_circuit_fails_fast_without_running_the_call() {
    let (breaker, clock) = breaker("hardware", 1);
    fail(&breaker).await.unwrap_err();
    clock.advance(Duration::from_secs(10));
    let ran = AtomicBool::new(false);
    let result = breaker
        .call(async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        })
        .await;
    match result {
        Err(BreakerError::Open { downstream, retry_after }) => {
            assert_eq!(&*downstream, "hardware");
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("expected an open circuit, got {other:?}"),
    }
    assert!(!ran.load(Ordering::SeqCst), "the downstream must not be called while open");
    let api_error = fail(&breaker).await.unwrap_err().into_api_error(|_| unreachable!("open"));
    assert_eq!(api_error.detail(), "hardware unavailable (circuit open)");
}

#[tokio::test]
async fn half_open_lets_exactly_one_probe_through_and_its_success_closes() {
    let (breaker, clock) = breaker("auth", 1);
    fail(&breaker).await.unwrap_err();
    clock.advance(OPEN);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    let (release_probe, probe_may_finish) = tokio::sync::oneshot::channel::<()>();
    let probe_started = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn({
        let breaker = Arc::clone(&breaker);
        let probe_started = Arc::clone(&probe_started);
        async move {
            breaker
                .call(async move {
                    probe_started.store(true, Ordering::SeqCst);
                    let _ = probe_may_finish.await;
                    Ok::<_, TestError>(1)
                })
                .await
        }
    });
    while !probe_started.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }

    let calls_while_probing = AtomicUsize::new(0);
    for _ in 0..3 {
        let second = breaker
            .call(async {
                calls_while_probing.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TestError>(2)
            })
            .await;
        assert!(second.as_ref().is_err_and(BreakerError::is_open), "{second:?}");
    }
    assert_eq!(calls_while_probing.load(Ordering::SeqCst), 0, "only the probe reaches the downstream");

    release_probe.send(()).unwrap();
    assert_eq!(probe.await.unwrap().unwrap(), 1);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().opened_at, None);
    assert_eq!(succeed(&breaker).await.unwrap(), 7);
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_for_another_interval() {
    let (breaker, clock) = breaker("coordinator", 2);
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    clock.advance(OPEN);
    assert!(matches!(fail(&breaker).await, Err(BreakerError::Inner(TestError::Down))), "the probe ran");
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.snapshot().consecutive_failures, 3);
    clock.advance(OPEN - Duration::from_secs(1));
    assert!(succeed(&breaker).await.is_err_and(|error| error.is_open()), "still within the new interval");
    clock.advance(Duration::from_secs(1));
    assert_eq!(succeed(&breaker).await.unwrap(), 7);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_cancelled_probe_does_not_block_probing() {
    let (breaker, clock) = breaker("arbitrator", 1);
    fail(&breaker).await.unwrap_err();
    clock.advance(OPEN);
    let hanging_probe = breaker.call(std::future::pending::<Result<(), TestError>>());
    // Poll it once so it takes the probe slot, then drop it as a timeout would.
    let timed_out = tokio::time::timeout(Duration::from_millis(10), hanging_probe).await;
    assert!(timed_out.is_err());
    assert_eq!(succeed(&breaker).await.unwrap(), 7, "the next caller probes");
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn reset_closes_every_circuit_in_the_registry() {
    let registry = BreakerRegistry::new(BreakerSettings { failure_threshold: 1, open_ms: 60_000 });
    let orchestrator = registry.get("orchestrator");
    assert!(Arc::ptr_eq(&orchestrator, &registry.get("orchestrator")), "one breaker per downstream");
    let _vector = registry.get("vector");
    orchestrator.call(async { Err::<(), _>(TestError::Down) }).await.unwrap_err();
    assert_eq!(registry.snapshot()["orchestrator"].state, BreakerState::Open);
    assert_eq!(registry.snapshot()["vector"].state, BreakerState::Closed);

    registry.reset_all();
    let snapshot = registry.snapshot();
    assert_eq!(snapshot["orchestrator"].state, BreakerState::Closed);
    assert_eq!(snapshot["orchestrator"].consecutive_failures, 0);
    assert_eq!(orchestrator.call(async { Ok::<_, TestError>(()) }).await.unwrap(), ());
}

#[tokio::test]
async fn snapshot_serializes_for_the_health_endpoint() {
    let (breaker, _clock) = breaker("llm", 1);
    let closed = serde_json::to_value(breaker.snapshot()).unwrap();
    assert_eq!(
        closed,
        serde_json::json!({"state": "closed", "consecutive_failures": 0, "failure_threshold": 1, "open_ms": 30_000})
    );
    fail(&breaker).await.unwrap_err();
    let open = serde_json::to_value(breaker.snapshot()).unwrap();
    assert_eq!(open["state"], "open");
    assert_eq!(open["retry_after_ms"], 30_000);
    assert!(open["opened_at"].as_str().unwrap().ends_with('Z'), "{open}");
}

#[tokio::test]
async fn state_gauge_and_transition_counter_follow_the_circuit() {
    let downstream = format!("gauge_test_{}", uuid::Uuid::new_v4().simple());
    let handle = crate::metrics::prometheus();
    let (breaker, clock) = breaker(&downstream, 1);
    fail(&breaker).await.unwrap_err();
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!("circuit_breaker_state{{downstream=\"{downstream}\"}} 1")),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!(
            "circuit_breaker_transitions_total{{downstream=\"{downstream}\",to=\"open\"}} 1"
        )),
        "{rendered}"
    );
    clock.advance(OPEN);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!("circuit_breaker_state{{downstream=\"{downstream}\"}} 2")),
        "{rendered}"
    );
}
