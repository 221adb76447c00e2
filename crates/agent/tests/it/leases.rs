//! LLM calls hold an `llm_slots` lease of the arbitrator, taken in the name of the worker's
//! service account: with one slot for the model, a profile with three slots sends the model one
//! call at a time (the worker's own semaphore alone would allow four).

use std::time::Duration;

use serde_json::json;
use sutazai_types::messages::TaskMessage;

use crate::services::{self, CLIENT_ID, Wanted};
use crate::{MODEL, Options, spawn_with};

#[tokio::test]
async fn concurrent_tasks_reach_the_llm_one_at_a_time_under_a_one_slot_lease() {
    let services = services::start(Wanted { vector: false, arbitrator: true }, "http://127.0.0.1:9").await;
    let worker =
        spawn_with(Options { reach: services.reach.clone(), ..Options::profiles(&["leased"]) }).await;

    // One task first, so the model list is fetched (and cached) before the calls are slowed.
    let warm_up = worker.assign("leased", json!({"text": "warm up"})).await;
    assert!(matches!(worker.observer.outcome(warm_up.task_id).await, TaskMessage::Succeeded(_)));

    worker.ollama.set_latency(Duration::from_millis(300));
    let mut tasks = Vec::new();
    for index in 0..3 {
        tasks.push(worker.assign("leased", json!({"text": format!("document {index}")})).await);
    }
    for task in &tasks {
        let outcome = worker.observer.outcome(task.task_id).await;
        assert!(matches!(outcome, TaskMessage::Succeeded(_)), "{outcome:?}");
    }
    assert_eq!(worker.ollama.max_concurrent_requests(), 1);

    // Each call's lease is in the arbitrator's journal, held by the worker's service account.
    let pool = sqlx::PgPool::connect(services.database.url()).await.unwrap();
    let resource = format!("llm_slots:ollama/{MODEL}");
    sutazai_testkit::wait_for("four released leases in the journal", Duration::from_secs(10), || {
        let (pool, resource) = (pool.clone(), resource.clone());
        async move {
            let holders: Vec<String> = sqlx::query_scalar(
                "SELECT holder FROM arbitrator.leases WHERE resource = $1 AND status = 'released'",
            )
            .bind(&resource)
            .fetch_all(&pool)
            .await
            .unwrap();
            holders.len() == 4 && holders.iter().all(|holder| holder == CLIENT_ID)
        }
    })
    .await;
    pool.close().await;
    worker.finish().await;
    services.finish().await;
}
