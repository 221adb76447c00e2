//! Workflows: a diamond passes its outputs along, bad graphs are refused, the failure policies
//! stop or continue, and a planner's output runs as a child workflow.

use serde_json::{Value, json};
use sutazai_proto::json::to_proto_value;
use sutazai_proto::v1 as pb;
use sutazai_types::messages::TaskMessage;
use sutazai_types::{AgentId, TaskId};
use tonic::Code;

use crate::{TestOrchestrator, assert_status, assigned, failed, id_of, json_of, task_request};

fn step(id: &str, task_type: &str, payload: Value, depends_on: &[&str]) -> pb::WorkflowStepSpec {
    pb::WorkflowStepSpec {
        step_id: id.to_owned(),
        task_type: task_type.to_owned(),
        payload: Some(to_proto_value(&payload)),
        depends_on: depends_on.iter().map(|dep| (*dep).to_owned()).collect(),
        priority: 5,
        capabilities: Vec::new(),
        max_retries: Some(0),
        timeout_s: None,
    }
}

fn workflow(
    name: &str,
    steps: Vec<pb::WorkflowStepSpec>,
    policy: pb::WorkflowFailurePolicy,
) -> pb::SubmitWorkflowRequest {
    pb::SubmitWorkflowRequest {
        name: name.to_owned(),
        steps,
        failure_policy: policy.into(),
        owner: "alice".to_owned(),
        idempotency_key: String::new(),
        parent_workflow_id: String::new(),
    }
}

fn task_of(workflow: &pb::Workflow, step_id: &str) -> TaskId {
    let step = workflow.steps.iter().find(|step| step.step_id == step_id).unwrap();
    step.task_id.parse().unwrap()
}

fn step_status(workflow: &pb::Workflow, step_id: &str) -> pb::WorkflowStepStatus {
    let step = workflow.steps.iter().find(|step| step.step_id == step_id).unwrap();
    pb::WorkflowStepStatus::try_from(step.status).unwrap()
}

/// Waits for the step's task to exist and returns its id and the payload it was published with.
async fn started_step(app: &TestOrchestrator, workflow_id: &str, step_id: &str) -> (TaskId, Value) {
    crate::wait_for_step(app, workflow_id, step_id).await;
    let task_id = task_of(&app.workflow(workflow_id).await, step_id);
    let (ready, _) = app.coordinator_tasks.ready(task_id, 1).await;
    (task_id, ready.payload)
}

#[tokio::test]
async fn a_diamond_passes_outputs_to_its_join() {
    let app = TestOrchestrator::start().await;
    let steps = vec![
        step("fetch", "fetch", json!({"url": "u"}), &[]),
        step("summarize", "summarize", json!({"words": 20}), &["fetch"]),
        step("review", "review", json!({}), &["fetch"]),
        step("report", "report", json!({"format": "md"}), &["summarize", "review"]),
    ];
    let submitted = app
        .submit_workflow(&app.user("alice"), workflow("diamond", steps, pb::WorkflowFailurePolicy::Stop))
        .await
        .unwrap();
    assert_eq!(submitted.status, i32::from(pb::WorkflowStatus::Running));
    assert_eq!(step_status(&submitted, "fetch"), pb::WorkflowStepStatus::Active);
    assert_eq!(step_status(&submitted, "report"), pb::WorkflowStepStatus::Waiting);

    let (fetch, fetch_payload) = started_step(&app, &submitted.id, "fetch").await;
    assert_eq!(fetch_payload, json!({"input": {"url": "u"}, "dependencies": {}}));
    app.run_to_success(fetch, 1, json!({"output": "page text", "model": "m"})).await;
    let (summarize, summarize_payload) = started_step(&app, &submitted.id, "summarize").await;
    let (review, review_payload) = started_step(&app, &submitted.id, "review").await;
    assert_eq!(summarize_payload, json!({"input": {"words": 20}, "dependencies": {"fetch": "page text"}}));
    assert_eq!(review_payload["dependencies"], json!({"fetch": "page text"}));
    app.run_to_success(summarize, 1, json!({"output": "short"})).await;
    assert_eq!(step_status(&app.workflow(&submitted.id).await, "report"), pb::WorkflowStepStatus::Waiting);
    app.run_to_success(review, 1, json!({"output": {"findings": []}})).await;
    let (report, report_payload) = started_step(&app, &submitted.id, "report").await;
    assert_eq!(
        report_payload,
        json!({"input": {"format": "md"}, "dependencies": {"summarize": "short", "review": {"findings": []}}})
    );
    app.run_to_success(report, 1, json!({"output": "# report"})).await;

    let done = app.wait_workflow(&submitted.id, pb::WorkflowStatus::Succeeded).await;
    assert!(done.finished_at.is_some());
    let report_step = done.steps.iter().find(|step| step.step_id == "report").unwrap();
    assert_eq!(json_of(report_step.output.as_ref()), json!({"output": "# report"}));
    assert_eq!(report_step.task_status, i32::from(pb::TaskStatus::Succeeded));
    app.finish().await;
}

#[tokio::test]
async fn cycles_and_unknown_dependencies_are_rejected() {
    let app = TestOrchestrator::start().await;
    let alice = app.user("alice");
    let cycle = vec![
        step("a", "t", json!({}), &[]),
        step("b", "t", json!({}), &["a", "c"]),
        step("c", "t", json!({}), &["b"]),
    ];
    assert_status(
        app.submit_workflow(&alice, workflow("cyclic", cycle, pb::WorkflowFailurePolicy::Stop)).await,
        Code::InvalidArgument,
        "steps: cycle in depends_on: b → c → b",
    );
    let unknown = vec![step("a", "t", json!({}), &["ghost"])];
    assert_status(
        app.submit_workflow(&alice, workflow("dangling", unknown, pb::WorkflowFailurePolicy::Stop)).await,
        Code::InvalidArgument,
        "steps: step `a` depends on unknown step `ghost`",
    );
    let mut bad_step = step("a", "t", json!({}), &[]);
    bad_step.priority = 12;
    assert_status(
        app.submit_workflow(&alice, workflow("bad", vec![bad_step], pb::WorkflowFailurePolicy::Stop)).await,
        Code::InvalidArgument,
        "steps[0].priority: must be between 0 and 9",
    );
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orchestrator.workflows").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 0);
    app.finish().await;
}

/// `a` and `b` run at once, `c` waits for `a`.
fn fork(policy: pb::WorkflowFailurePolicy) -> pb::SubmitWorkflowRequest {
    let steps = vec![
        step("a", "t", json!({}), &[]),
        step("b", "t", json!({}), &[]),
        step("c", "t", json!({}), &["a"]),
    ];
    workflow("fork", steps, policy)
}

async fn fail_step(app: &TestOrchestrator, task_id: TaskId) {
    let agent = AgentId::new();
    app.deliver(assigned(task_id, 1, agent, "")).await;
    app.deliver(failed(task_id, 1, agent, "broken input", false)).await;
}

#[tokio::test]
async fn stop_cancels_running_steps_and_skips_the_rest() {
    let app = TestOrchestrator::start().await;
    let submitted =
        app.submit_workflow(&app.user("alice"), fork(pb::WorkflowFailurePolicy::Stop)).await.unwrap();
    let (a, _) = started_step(&app, &submitted.id, "a").await;
    let (b, _) = started_step(&app, &submitted.id, "b").await;
    fail_step(&app, a).await;
    let stopped = app.wait_workflow(&submitted.id, pb::WorkflowStatus::Failed).await;
    assert_eq!(step_status(&stopped, "a"), pb::WorkflowStepStatus::Failed);
    assert_eq!(step_status(&stopped, "b"), pb::WorkflowStepStatus::Cancelled);
    assert_eq!(step_status(&stopped, "c"), pb::WorkflowStepStatus::Skipped);
    let b_step = stopped.steps.iter().find(|step| step.step_id == "b").unwrap();
    assert_eq!(b_step.error, "workflow stopped: step `a` failed");
    assert_eq!(b_step.task_status, i32::from(pb::TaskStatus::Cancelled));
    // The agent running b is told to stop.
    let withdrawal = app.coordinator_tasks.cancelled(b).await;
    assert_eq!(withdrawal.reason, "workflow stopped: step `a` failed");
    app.finish().await;
}

#[tokio::test]
async fn continue_skips_only_the_dependants_of_a_failed_step() {
    let app = TestOrchestrator::start().await;
    let submitted =
        app.submit_workflow(&app.user("alice"), fork(pb::WorkflowFailurePolicy::Continue)).await.unwrap();
    let (a, _) = started_step(&app, &submitted.id, "a").await;
    let (b, _) = started_step(&app, &submitted.id, "b").await;
    fail_step(&app, a).await;
    let running = app.workflow(&submitted.id).await;
    assert_eq!(running.status, i32::from(pb::WorkflowStatus::Running));
    assert_eq!(step_status(&running, "c"), pb::WorkflowStepStatus::Skipped);
    assert_eq!(step_status(&running, "b"), pb::WorkflowStepStatus::Active);
    app.run_to_success(b, 1, json!({"output": "fine"})).await;
    let finished = app.wait_workflow(&submitted.id, pb::WorkflowStatus::Failed).await;
    assert_eq!(step_status(&finished, "b"), pb::WorkflowStepStatus::Succeeded);
    app.finish().await;
}

#[tokio::test]
async fn a_planner_output_runs_as_a_child_workflow() {
    let app = TestOrchestrator::start().await;
    let planning = vec![step("plan", "plan", json!({"goal": "ship it", "run_plan": true}), &[])];
    let parent = app
        .submit_workflow(&app.user("alice"), workflow("planned", planning, pb::WorkflowFailurePolicy::Stop))
        .await
        .unwrap();
    let (planner, _) = started_step(&app, &parent.id, "plan").await;
    let plan = json!({"workflow": {"name": "ship", "steps": [
        {"id": "code", "type": "code", "payload": {"spec": "add a flag", "run_plan": true}},
        {"id": "review", "type": "review", "depends_on": ["code"], "priority": 8}
    ]}});
    app.run_to_success(planner, 1, json!({"output": plan, "model": "m"})).await;
    let planner_task = app.wait_status(&planner.to_string(), pb::TaskStatus::Succeeded).await;
    let result = json_of(planner_task.result.as_ref());
    let child_id = result["child_workflow_id"].as_str().unwrap().to_owned();
    assert_eq!(result["output"], plan);

    let child = app.workflow(&child_id).await;
    assert_eq!((child.name.as_str(), child.parent_workflow_id.as_str()), ("ship", parent.id.as_str()));
    assert_eq!(child.owner, "alice");
    assert_eq!(step_status(&child, "code"), pb::WorkflowStepStatus::Active);
    assert_eq!(step_status(&child, "review"), pb::WorkflowStepStatus::Waiting);
    // A planned step does not plan again: its `run_plan` is dropped.
    let (_, code_payload) = started_step(&app, &child_id, "code").await;
    assert_eq!(code_payload, json!({"input": {"spec": "add a flag"}, "dependencies": {}}));
    app.wait_workflow(&parent.id, pb::WorkflowStatus::Succeeded).await;

    // An invalid plan fails the planner task instead.
    let mut request = task_request("alice", "plan", json!({"run_plan": true}));
    request.max_retries = Some(0);
    let lone = app.submit(&app.user("alice"), request).await.unwrap().task.unwrap();
    let cyclic = json!({"workflow": {"name": "loop", "steps": [
        {"id": "x", "type": "t", "depends_on": ["y"]}, {"id": "y", "type": "t", "depends_on": ["x"]}
    ]}});
    app.run_to_success(id_of(&lone), 1, json!({"output": cyclic})).await;
    let rejected = app.wait_status(&lone.id, pb::TaskStatus::Failed).await;
    assert_eq!(rejected.error, "invalid plan: steps: cycle in depends_on: x → y → x");
    let dead = app
        .coordinator_tasks
        .all()
        .iter()
        .filter(|received| matches!(&received.message, TaskMessage::Ready(ready) if ready.task_type == "t"))
        .count();
    assert_eq!(dead, 0, "no step of the invalid plan was started");
    app.finish().await;
}

#[tokio::test]
async fn workflows_nest_at_most_three_deep() {
    let app = TestOrchestrator::start().await;
    let alice = app.user("alice");
    let nested = |name: &str, parent: &str, steps| pb::SubmitWorkflowRequest {
        parent_workflow_id: parent.to_owned(),
        ..workflow(name, steps, pb::WorkflowFailurePolicy::Stop)
    };
    let top =
        app.submit_workflow(&alice, nested("top", "", vec![step("a", "t", json!({}), &[])])).await.unwrap();
    let middle = app
        .submit_workflow(&alice, nested("middle", &top.id, vec![step("a", "t", json!({}), &[])]))
        .await
        .unwrap();
    let planning = vec![step("plan", "plan", json!({"goal": "more", "run_plan": true}), &[])];
    let deepest = app.submit_workflow(&alice, nested("deepest", &middle.id, planning)).await.unwrap();
    assert_status(
        app.submit_workflow(&alice, nested("too deep", &deepest.id, vec![step("a", "t", json!({}), &[])]))
            .await,
        Code::InvalidArgument,
        "parent_workflow_id: workflows nest at most 3 deep, and this one would be 4 deep",
    );
    // A planner in the deepest workflow cannot start a fourth level either.
    let (planner, _) = started_step(&app, &deepest.id, "plan").await;
    let plan = json!({"workflow": {"name": "child", "steps": [{"id": "x", "type": "t"}]}});
    app.run_to_success(planner, 1, json!({"output": plan})).await;
    let rejected = app.wait_status(&planner.to_string(), pb::TaskStatus::Failed).await;
    assert_eq!(
        rejected.error,
        "invalid plan: output.workflow: workflows nest at most 3 deep, and this one would be 4 deep"
    );
    app.wait_workflow(&deepest.id, pb::WorkflowStatus::Failed).await;
    app.finish().await;
}
