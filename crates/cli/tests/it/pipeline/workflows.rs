//! Workflows through real agents: a diamond (a → b, a → c, b + c → d) runs each step after its
//! dependencies and hands their outputs on; a cycle is refused naming the steps.

use serde_json::{Value, json};
use sutazai_proto::json::to_proto_value;
use sutazai_proto::v1 as pb;
use tonic::Code;

use super::{PATIENCE, Pipeline, json_of, time_of};

fn step(id: &str, depends_on: &[&str]) -> pb::WorkflowStepSpec {
    pb::WorkflowStepSpec {
        step_id: id.to_owned(),
        task_type: "noop".to_owned(),
        payload: Some(to_proto_value(&json!({"step": id}))),
        depends_on: depends_on.iter().map(|dependency| (*dependency).to_owned()).collect(),
        priority: 5,
        capabilities: vec!["noop".to_owned()],
        max_retries: Some(0),
        timeout_s: None,
    }
}

fn workflow(name: &str, steps: Vec<pb::WorkflowStepSpec>) -> pb::SubmitWorkflowRequest {
    pb::SubmitWorkflowRequest {
        name: name.to_owned(),
        steps,
        failure_policy: pb::WorkflowFailurePolicy::Stop.into(),
        owner: "alice".to_owned(),
        idempotency_key: String::new(),
        parent_workflow_id: String::new(),
    }
}

fn step_of<'a>(workflow: &'a pb::Workflow, step_id: &str) -> &'a pb::WorkflowStep {
    workflow.steps.iter().find(|step| step.step_id == step_id).unwrap()
}

#[tokio::test]
async fn a_diamond_runs_on_real_agents_and_hands_outputs_to_its_join() {
    let mut pipeline = Pipeline::start().await;
    pipeline.worker(&["wide-noop"]).await;
    let submitted = pipeline
        .submit_workflow(workflow(
            "diamond",
            vec![step("a", &[]), step("b", &["a"]), step("c", &["a"]), step("d", &["b", "c"])],
        ))
        .await
        .unwrap();
    sutazai_testkit::wait_for("the workflow to succeed", PATIENCE, || async {
        pipeline.workflow(&submitted.id).await.status == i32::from(pb::WorkflowStatus::Succeeded)
    })
    .await;
    let done = pipeline.workflow(&submitted.id).await;
    assert!(done.finished_at.is_some());

    let mut tasks = std::collections::HashMap::new();
    for step_id in ["a", "b", "c", "d"] {
        let step = step_of(&done, step_id);
        assert_eq!(step.status, i32::from(pb::WorkflowStepStatus::Succeeded), "step {step_id}");
        let task = pipeline.task(&step.task_id).await;
        assert_eq!(task.workflow_id, done.id);
        // A noop agent's output is the payload it was given.
        assert_eq!(json_of(step.output.as_ref()), json!({"output": json_of(task.payload.as_ref())}));
        tasks.insert(step_id, task);
    }
    let output_of = |step_id: &str| -> Value { json_of(tasks[step_id].result.as_ref())["output"].clone() };
    let a_output = json!({"input": {"step": "a"}, "dependencies": {}});
    assert_eq!(output_of("a"), a_output);
    let b_output = json!({"input": {"step": "b"}, "dependencies": {"a": a_output}});
    assert_eq!(output_of("b"), b_output);
    assert_eq!(output_of("c"), json!({"input": {"step": "c"}, "dependencies": {"a": a_output}}));
    // The join's task got both branches' outputs.
    let d_payload = json_of(tasks["d"].payload.as_ref());
    assert_eq!(
        d_payload,
        json!({"input": {"step": "d"}, "dependencies": {"b": output_of("b"), "c": output_of("c")}})
    );

    // Each step started only after its dependencies finished.
    let started = |step_id: &str| time_of(tasks[step_id].started_at.as_ref());
    let finished = |step_id: &str| time_of(tasks[step_id].finished_at.as_ref());
    assert!(started("b") >= finished("a") && started("c") >= finished("a"));
    assert!(started("d") >= finished("b") && started("d") >= finished("c"));
    pipeline.finish().await;
}

#[tokio::test]
async fn a_cycle_is_rejected_naming_its_steps() {
    let pipeline = Pipeline::start().await;
    let cyclic = vec![step("a", &[]), step("b", &["a", "c"]), step("c", &["b"])];
    let refused = pipeline.submit_workflow(workflow("cyclic", cyclic)).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::InvalidArgument, "steps: cycle in depends_on: b → c → b")
    );
    // Nothing was stored or dispatched.
    assert!(pipeline.tasks(pb::TaskStatus::Unspecified).await.is_empty());
    assert_eq!(pipeline.pending_stats().await.pending, 0);
    pipeline.finish().await;
}
