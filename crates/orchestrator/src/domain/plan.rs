//! Planner output: a succeeded task whose payload asked for it (`"run_plan": true`, or
//! `input.run_plan` for a workflow step) and whose result's `output.workflow` holds a DAG gets that
//! DAG run as a child workflow. The document is parsed here; an invalid one fails the task.
//!
//! A plan's steps never run plans of their own: `run_plan` is removed from their payloads, so a
//! planner cannot nest workflows without end by planning planners. (Nesting through
//! `parent_workflow_id` is bounded as well, see [`super::workflow::MAX_WORKFLOW_DEPTH`].)

use serde::Deserialize;
use serde_json::Value;
use sutazai_types::Priority;

use super::task::TaskRequest;
use super::validation::ValidationError;
use super::workflow::{FailurePolicy, StepRequest, WorkflowRequest};

/// Whether the task's payload asks for its output's plan to be run.
pub fn wants_plan(payload: &Value) -> bool {
    let flag = |value: Option<&Value>| value.and_then(Value::as_bool).unwrap_or(false);
    flag(payload.get("run_plan")) || flag(payload.pointer("/input/run_plan"))
}

#[derive(Deserialize)]
struct PlanDocument {
    name: String,
    steps: Vec<PlanStep>,
    #[serde(default)]
    failure_policy: Option<String>,
}

#[derive(Deserialize)]
struct PlanStep {
    id: String,
    #[serde(rename = "type")]
    task_type: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    priority: Option<u32>,
}

/// The workflow a planner's `result` describes at `output.workflow`. The output may be the JSON
/// itself or a string holding it (language models answer in text). Steps without a priority get
/// the planner task's own.
pub fn plan_request(result: &Value, planner_priority: Priority) -> Result<WorkflowRequest, ValidationError> {
    let output = result.get("output").ok_or_else(|| ValidationError::new("output", "is missing"))?;
    let parsed_text;
    let output = match output {
        Value::String(text) => {
            parsed_text = serde_json::from_str::<Value>(text).map_err(|error| {
                ValidationError::new("output", format!("is text that is not JSON: {error}"))
            })?;
            &parsed_text
        }
        other => other,
    };
    let document =
        output.get("workflow").ok_or_else(|| ValidationError::new("output.workflow", "is missing"))?;
    let plan: PlanDocument = serde_json::from_value(document.clone())
        .map_err(|error| ValidationError::new("output.workflow", error.to_string()))?;
    let failure_policy = match plan.failure_policy.as_deref() {
        None | Some("stop") => FailurePolicy::Stop,
        Some("continue") => FailurePolicy::Continue,
        Some(other) => {
            return Err(ValidationError::new(
                "output.workflow.failure_policy",
                format!("must be `stop` or `continue`, not `{other}`"),
            ));
        }
    };
    let steps = plan
        .steps
        .into_iter()
        .map(|step| StepRequest {
            step_id: step.id,
            depends_on: step.depends_on,
            task: TaskRequest {
                task_type: step.task_type,
                payload: without_run_plan(step.payload),
                priority: step.priority.unwrap_or(u32::from(planner_priority.value())),
                capabilities: step.capabilities,
                max_retries: None,
                timeout_s: None,
            },
        })
        .collect();
    Ok(WorkflowRequest { name: plan.name, steps, failure_policy })
}

/// `payload` without its `run_plan` flag (a step task reads it at `input.run_plan`, which is
/// this payload's `run_plan`).
fn without_run_plan(mut payload: Value) -> Value {
    if let Value::Object(fields) = &mut payload {
        fields.remove("run_plan");
    }
    payload
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn run_plan_is_read_from_the_payload_or_a_step_input() {
        assert!(wants_plan(&json!({"run_plan": true, "goal": "x"})));
        assert!(wants_plan(&json!({"input": {"run_plan": true}, "dependencies": {}})));
        assert!(!wants_plan(&json!({"run_plan": "yes"})));
        assert!(!wants_plan(&json!("goal")));
    }

    #[test]
    fn a_plan_becomes_a_workflow_request() {
        let result = json!({"output": {"workflow": {"name": "ship", "steps": [
            {"id": "code", "type": "code", "payload": {"spec": "x"}},
            {"id": "review", "type": "review", "depends_on": ["code"], "priority": 7}
        ]}}, "model": "m"});
        let request = plan_request(&result, Priority::try_from(3).unwrap()).unwrap();
        assert_eq!(request.name, "ship");
        assert_eq!(request.steps[0].task.priority, 3);
        assert_eq!(request.steps[1].task.priority, 7);
        assert_eq!(request.steps[1].depends_on, ["code"]);
        assert_eq!(request.failure_policy, FailurePolicy::Stop);
    }

    #[test]
    fn planned_steps_do_not_plan_again() {
        let result = json!({"output": {"workflow": {"name": "nest", "steps": [
            {"id": "again", "type": "planner", "payload": {"goal": "more", "run_plan": true}},
            {"id": "plain", "type": "planner", "payload": "goal"}
        ]}}});
        let request = plan_request(&result, Priority::NORMAL).unwrap();
        assert_eq!(request.steps[0].task.payload, json!({"goal": "more"}));
        assert_eq!(request.steps[1].task.payload, json!("goal"));
        let step_task =
            super::super::workflow::step_task_payload(&request.steps[0].task.payload, Default::default());
        assert!(!wants_plan(&step_task));
    }

    #[test]
    fn text_output_is_parsed_and_bad_plans_name_the_field() {
        let text = json!({"output": "{\"workflow\": {\"name\": \"n\", \"steps\": []}}"});
        assert_eq!(plan_request(&text, Priority::NORMAL).unwrap().steps.len(), 0);
        let missing = plan_request(&json!({"output": {"answer": 1}}), Priority::NORMAL).unwrap_err();
        assert_eq!(missing.field, "output.workflow");
        let malformed = plan_request(&json!({"output": {"workflow": {"steps": []}}}), Priority::NORMAL);
        assert_eq!(malformed.unwrap_err().to_string(), "output.workflow: missing field `name`");
    }
}
