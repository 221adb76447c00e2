//! Strategies with real agents: round robin, switched on at runtime, spreads tasks evenly over
//! three agents; capability match never hands a task to an agent lacking its capability.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde_json::json;
use sutazai_proto::v1 as pb;
use sutazai_types::messages::TaskMessage;

use super::{Pipeline, authed, task_request};

/// Submits `count` tasks and waits until all succeeded; returns how many each agent ran.
async fn run_tasks(
    pipeline: &Pipeline,
    count: usize,
    task_type: &str,
    capabilities: &[&str],
) -> HashMap<String, usize> {
    let mut submitted = Vec::new();
    for index in 0..count {
        let payload = json!({"text": format!("document {index}"), "index": index});
        submitted.push(pipeline.submit(task_request("alice", task_type, payload, 5, capabilities)).await.id);
    }
    let mut ran = HashMap::new();
    let done =
        join_all(submitted.iter().map(|task_id| pipeline.wait_status(task_id, pb::TaskStatus::Succeeded)))
            .await;
    for task in done {
        assert_eq!(task.attempt, 1);
        *ran.entry(task.assigned_agent).or_insert(0) += 1;
    }
    ran
}

#[tokio::test]
async fn round_robin_over_three_agents_gives_each_the_same_share() {
    let mut pipeline = Pipeline::start().await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(pipeline.worker(&["wide-noop"]).await.agent("wide-noop").to_string());
    }
    pipeline.wait_online(3).await;
    let strategy = pb::DispatchStrategy {
        kind: pb::DispatchStrategyKind::RoundRobin.into(),
        owner_fairness: true,
        max_active_per_owner: 0,
        assignment_lease_s: 30,
        updated_at: None,
        updated_by: String::new(),
    };
    let request = pb::SetStrategyRequest { strategy: Some(strategy), updated_by: "test".to_owned() };
    pipeline.coordinator_rpc().set_strategy(authed(request, &pipeline.admin())).await.unwrap();

    let ran = run_tasks(&pipeline, 6, "noop", &["noop"]).await;
    let shares: Vec<usize> = agents.iter().map(|agent| ran.get(agent).copied().unwrap_or(0)).collect();
    assert_eq!(shares, [2, 2, 2], "{ran:?}");
    pipeline.finish().await;
}

#[tokio::test]
async fn capability_match_never_picks_an_agent_lacking_the_capability() {
    let mut pipeline = Pipeline::start().await;
    // The noop agent is idle, has more slots and would run any task type; it lacks `summarizer`.
    let generalist = pipeline.worker(&["wide-noop"]).await.agent("wide-noop");
    let summarizer = pipeline.worker(&["summarizer"]).await.agent("summarizer");
    pipeline.wait_online(2).await;
    let ran = run_tasks(&pipeline, 4, "summarize", &["summarizer"]).await;
    assert_eq!(ran, HashMap::from([(summarizer.to_string(), 4)]));
    let to_generalist = pipeline
        .observed
        .all()
        .into_iter()
        .filter(
            |message| matches!(message, TaskMessage::Assigned(assigned) if assigned.agent_id == generalist),
        )
        .count();
    assert_eq!(to_generalist, 0);
    pipeline.finish().await;
}
