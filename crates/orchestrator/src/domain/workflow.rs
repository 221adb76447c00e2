//! Workflows: a DAG of steps, each run as a task once its dependencies succeeded, and the rules
//! that move a workflow on when one of its steps' tasks ends ([`progress`]).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sutazai_types::{TaskId, TaskStatus, WorkflowId};

use super::dag::{self, DagNode};
use super::task::{TaskLimits, TaskRequest, TaskSpec};
use super::validation::ValidationError;

/// Longest workflow name.
const MAX_NAME_CHARS: usize = 200;

/// Most workflows nested in one another through `parent_workflow_id`, the top one included.
pub const MAX_WORKFLOW_DEPTH: u32 = 3;

/// Refuses a child of a workflow that is already `parent_depth` deep (1 for a top-level one)
/// when the child would be nested deeper than [`MAX_WORKFLOW_DEPTH`].
pub fn check_child_depth(parent_depth: u32, field: &str) -> Result<(), ValidationError> {
    if parent_depth >= MAX_WORKFLOW_DEPTH {
        return Err(ValidationError::new(
            field,
            format!(
                "workflows nest at most {MAX_WORKFLOW_DEPTH} deep, and this one would be {} deep",
                parent_depth.saturating_add(1)
            ),
        ));
    }
    Ok(())
}

/// What a workflow does when a step fails or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Cancel the active steps and skip the waiting ones.
    Stop,
    /// Skip only the steps that depend on the failed one, directly or not.
    Continue,
}

impl FailurePolicy {
    /// The name stored in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Continue => "continue",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Stop, Self::Continue].into_iter().find(|policy| policy.as_str() == text)
    }
}

/// Where a workflow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowStatus {
    /// Some step is not terminal.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// Every step is terminal and one failed (or was skipped because one failed).
    Failed,
    /// Every step is terminal, none failed, and one was cancelled.
    Cancelled,
}

impl WorkflowStatus {
    /// The name stored in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Its dependencies have not all succeeded; no task yet.
    Waiting,
    /// Its task exists and is not terminal.
    Active,
    /// Its task succeeded.
    Succeeded,
    /// Its task failed.
    Failed,
    /// Its task was cancelled.
    Cancelled,
    /// It never ran: a dependency failed or the workflow stopped.
    Skipped,
}

impl StepStatus {
    /// The name stored in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Active => "active",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Waiting, Self::Active, Self::Succeeded, Self::Failed, Self::Cancelled, Self::Skipped]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Whether the step will not change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Waiting | Self::Active)
    }

    /// The step status a terminal task status gives its step.
    pub fn of_finished_task(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Succeeded => Self::Succeeded,
            TaskStatus::Cancelled => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

/// A step as submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRequest {
    /// Unique within the workflow.
    pub step_id: String,
    /// The task template.
    pub task: TaskRequest,
    /// Steps that must succeed first.
    pub depends_on: Vec<String>,
}

/// A workflow as submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRequest {
    /// Display name.
    pub name: String,
    /// The steps, in submission order.
    pub steps: Vec<StepRequest>,
    /// Stop or continue after a failure.
    pub failure_policy: FailurePolicy,
}

/// A validated step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// Unique within the workflow.
    pub step_id: String,
    /// The task template; its payload is the step's own input.
    pub task: TaskSpec,
    /// Steps that must succeed first, without repeats.
    pub depends_on: Vec<String>,
}

/// A validated workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    /// Display name.
    pub name: String,
    /// The steps, in submission order.
    pub steps: Vec<StepSpec>,
    /// Stop or continue after a failure.
    pub failure_policy: FailurePolicy,
}

impl WorkflowSpec {
    /// Validates every step like a task (fields named `steps[i].…`) and the graph.
    pub fn parse(request: WorkflowRequest, limits: &TaskLimits) -> Result<Self, ValidationError> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ValidationError::new("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        if request.steps.len() > limits.max_workflow_steps {
            return Err(ValidationError::new(
                "steps",
                format!("must hold at most {} steps", limits.max_workflow_steps),
            ));
        }
        let nodes: Vec<DagNode<'_>> = request
            .steps
            .iter()
            .map(|step| DagNode { id: &step.step_id, depends_on: &step.depends_on })
            .collect();
        dag::check(&nodes)?;
        let mut steps = Vec::with_capacity(request.steps.len());
        for (position, step) in request.steps.into_iter().enumerate() {
            let task = TaskSpec::parse(step.task, limits, &format!("steps[{position}]."))?;
            let mut depends_on: Vec<String> = Vec::with_capacity(step.depends_on.len());
            for dependency in step.depends_on {
                if !depends_on.contains(&dependency) {
                    depends_on.push(dependency);
                }
            }
            steps.push(StepSpec { step_id: step.step_id, task, depends_on });
        }
        Ok(Self { name, steps, failure_policy: request.failure_policy })
    }
}

/// A step with its live state, as reported by GetWorkflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStep {
    /// Unique within the workflow.
    pub step_id: String,
    /// The task type of its task.
    pub task_type: String,
    /// Steps it waits for.
    pub depends_on: Vec<String>,
    /// Where it is.
    pub status: StepStatus,
    /// Its task once created.
    pub task_id: Option<TaskId>,
    /// Its task's status once created.
    pub task_status: Option<TaskStatus>,
    /// Its task's result once succeeded.
    pub output: Option<Value>,
    /// Why its task failed or was cancelled.
    pub error: Option<String>,
}

/// A stored workflow with its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// Time-ordered id.
    pub id: WorkflowId,
    /// Display name.
    pub name: String,
    /// Where it is.
    pub status: WorkflowStatus,
    /// Stop or continue after a failure.
    pub failure_policy: FailurePolicy,
    /// The steps, in submission order.
    pub steps: Vec<WorkflowStep>,
    /// Who it belongs to.
    pub owner: String,
    /// The workflow whose planner step created it.
    pub parent_workflow_id: Option<WorkflowId>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// When every step was terminal.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The payload a step's task receives: its own input and each dependency's output.
pub fn step_task_payload(input: &Value, dependency_outputs: Map<String, Value>) -> Value {
    let mut payload = Map::new();
    payload.insert("input".to_owned(), input.clone());
    payload.insert("dependencies".to_owned(), Value::Object(dependency_outputs));
    Value::Object(payload)
}

/// The output a step hands to its dependants: the agent result's `output` (the result also holds
/// the model, prompt and usage), or the whole result when it has no `output`.
pub fn step_output(result: &Value) -> Value {
    match result.get("output") {
        Some(output) => output.clone(),
        None => result.clone(),
    }
}

/// A step's state as progression sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepState {
    /// Unique within the workflow.
    pub step_id: String,
    /// Steps it waits for.
    pub depends_on: Vec<String>,
    /// Where it is.
    pub status: StepStatus,
}

/// What to do after a step's task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Waiting steps whose dependencies all succeeded: create their tasks.
    pub start: Vec<String>,
    /// Active steps to cancel (the stop policy).
    pub cancel: Vec<String>,
    /// Waiting steps that will never run.
    pub skip: Vec<String>,
    /// The workflow's final status once every step is terminal.
    pub finished: Option<WorkflowStatus>,
}

/// Moves the workflow on after step `finished_step` ended with `outcome` (a terminal step status).
/// `steps` is updated to the state after the returned actions.
pub fn progress(
    steps: &mut [StepState],
    finished_step: &str,
    outcome: StepStatus,
    policy: FailurePolicy,
) -> Progress {
    debug_assert!(outcome.is_terminal() && outcome != StepStatus::Skipped);
    let mut actions = Progress::default();
    for step in steps.iter_mut().filter(|step| step.step_id == finished_step) {
        step.status = outcome;
    }
    if outcome == StepStatus::Succeeded {
        let succeeded: Vec<String> = steps
            .iter()
            .filter(|step| step.status == StepStatus::Succeeded)
            .map(|step| step.step_id.clone())
            .collect();
        for step in steps.iter_mut() {
            if step.status == StepStatus::Waiting && step.depends_on.iter().all(|dep| succeeded.contains(dep))
            {
                step.status = StepStatus::Active;
                actions.start.push(step.step_id.clone());
            }
        }
    } else {
        match policy {
            FailurePolicy::Stop => {
                for step in steps.iter_mut() {
                    match step.status {
                        StepStatus::Active => {
                            step.status = StepStatus::Cancelled;
                            actions.cancel.push(step.step_id.clone());
                        }
                        StepStatus::Waiting => {
                            step.status = StepStatus::Skipped;
                            actions.skip.push(step.step_id.clone());
                        }
                        _ => {}
                    }
                }
            }
            FailurePolicy::Continue => {
                // Steps are few (bounded by max_workflow_steps), so a fixed point over the list is
                // clearer than building a reverse index.
                let mut unreachable = vec![finished_step.to_owned()];
                let mut changed = true;
                while changed {
                    changed = false;
                    for step in steps.iter_mut() {
                        if step.status == StepStatus::Waiting
                            && step.depends_on.iter().any(|dep| unreachable.contains(dep))
                        {
                            step.status = StepStatus::Skipped;
                            unreachable.push(step.step_id.clone());
                            actions.skip.push(step.step_id.clone());
                            changed = true;
                        }
                    }
                }
            }
        }
    }
    actions.finished = final_status(steps);
    actions
}

/// The workflow's status once every step is terminal; `None` while one is not.
pub fn final_status(steps: &[StepState]) -> Option<WorkflowStatus> {
    if steps.iter().any(|step| !step.status.is_terminal()) {
        return None;
    }
    let any = |status: StepStatus| steps.iter().any(|step| step.status == status);
    Some(if steps.iter().all(|step| step.status == StepStatus::Succeeded) {
        WorkflowStatus::Succeeded
    } else if any(StepStatus::Failed) {
        WorkflowStatus::Failed
    } else if any(StepStatus::Cancelled) {
        WorkflowStatus::Cancelled
    } else {
        WorkflowStatus::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_nest_at_most_three_deep() {
        assert_eq!(check_child_depth(1, "parent_workflow_id"), Ok(()));
        assert_eq!(check_child_depth(2, "parent_workflow_id"), Ok(()));
        let error = check_child_depth(3, "output.workflow").unwrap_err();
        assert_eq!(
            error.to_string(),
            "output.workflow: workflows nest at most 3 deep, and this one would be 4 deep"
        );
    }

    fn diamond() -> Vec<StepState> {
        let step = |id: &str, deps: &[&str], status| StepState {
            step_id: id.to_owned(),
            depends_on: deps.iter().map(|dep| (*dep).to_owned()).collect(),
            status,
        };
        vec![
            step("a", &[], StepStatus::Active),
            step("b", &["a"], StepStatus::Waiting),
            step("c", &["a"], StepStatus::Waiting),
            step("d", &["b", "c"], StepStatus::Waiting),
            step("e", &[], StepStatus::Active),
        ]
    }

    #[test]
    fn success_starts_dependants_once_all_their_dependencies_succeeded() {
        let mut steps = diamond();
        let after_a = progress(&mut steps, "a", StepStatus::Succeeded, FailurePolicy::Stop);
        assert_eq!(after_a.start, ["b", "c"]);
        let after_b = progress(&mut steps, "b", StepStatus::Succeeded, FailurePolicy::Stop);
        assert!(after_b.start.is_empty());
        let after_c = progress(&mut steps, "c", StepStatus::Succeeded, FailurePolicy::Stop);
        assert_eq!(after_c.start, ["d"]);
        progress(&mut steps, "e", StepStatus::Succeeded, FailurePolicy::Stop);
        let done = progress(&mut steps, "d", StepStatus::Succeeded, FailurePolicy::Stop);
        assert_eq!(done.finished, Some(WorkflowStatus::Succeeded));
    }

    #[test]
    fn stop_cancels_active_steps_and_skips_waiting_ones() {
        let mut steps = diamond();
        let actions = progress(&mut steps, "a", StepStatus::Failed, FailurePolicy::Stop);
        assert_eq!(actions.cancel, ["e"]);
        assert_eq!(actions.skip, ["b", "c", "d"]);
        assert_eq!(actions.finished, Some(WorkflowStatus::Failed));
    }

    #[test]
    fn continue_skips_only_transitive_dependants() {
        let mut steps = diamond();
        progress(&mut steps, "a", StepStatus::Succeeded, FailurePolicy::Continue);
        let actions = progress(&mut steps, "b", StepStatus::Failed, FailurePolicy::Continue);
        assert_eq!(actions.skip, ["d"]);
        assert!(actions.cancel.is_empty() && actions.finished.is_none());
        progress(&mut steps, "c", StepStatus::Succeeded, FailurePolicy::Continue);
        let done = progress(&mut steps, "e", StepStatus::Succeeded, FailurePolicy::Continue);
        assert_eq!(done.finished, Some(WorkflowStatus::Failed));
    }

    #[test]
    fn a_cancelled_step_without_failures_cancels_the_workflow() {
        let mut steps = diamond();
        let actions = progress(&mut steps, "e", StepStatus::Cancelled, FailurePolicy::Stop);
        assert_eq!(actions.cancel, ["a"]);
        assert_eq!(actions.finished, Some(WorkflowStatus::Cancelled));
    }

    #[test]
    fn dependants_get_outputs_beside_the_input() {
        let mut outputs = Map::new();
        outputs.insert("a".into(), step_output(&serde_json::json!({"output": "A", "model": "m"})));
        outputs.insert("b".into(), step_output(&serde_json::json!(42)));
        let payload = step_task_payload(&serde_json::json!({"q": 1}), outputs);
        assert_eq!(payload, serde_json::json!({"input": {"q": 1}, "dependencies": {"a": "A", "b": 42}}));
    }
}
