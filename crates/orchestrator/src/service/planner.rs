//! Running a planner's output: when a succeeding task asked for it, the DAG in its output is
//! validated and stored as a child workflow in the same transaction, and the child's id is added
//! to the task's result. An invalid plan is the task's failure, not a success with no effect.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::Orchestrator;
use crate::domain::plan::{plan_request, wants_plan};
use crate::domain::task::Task;
use crate::domain::validation::ValidationError;
use crate::domain::workflow::{WorkflowSpec, check_child_depth};
use crate::error::OrchestratorError;
use crate::store;

impl Orchestrator {
    /// The result to store for a succeeding task: unchanged unless the task asked for its plan to
    /// run, then with `child_workflow_id`; or the plan's validation error.
    pub(crate) async fn run_plan_if_asked(
        &self,
        connection: &mut PgConnection,
        task: &Task,
        result: Value,
        now: DateTime<Utc>,
    ) -> Result<Result<Value, ValidationError>, OrchestratorError> {
        if !wants_plan(&task.payload) {
            return Ok(Ok(result));
        }
        let spec = match plan_request(&result, task.priority)
            .and_then(|request| WorkflowSpec::parse(request, self.limits()))
        {
            Ok(spec) => spec,
            Err(error) => return Ok(Err(error)),
        };
        let parent = task.step.as_ref().map(|step| step.workflow_id);
        if let Some(parent_id) = parent {
            let parent_depth = store::workflows::depth(connection, parent_id).await?;
            if let Err(error) = check_child_depth(parent_depth, "output.workflow") {
                return Ok(Err(error));
            }
        }
        let (child_id, _created) =
            self.create_workflow(connection, &task.owner, spec, None, parent, now).await?;
        tracing::info!(task_id = %task.id, workflow_id = %child_id, "planner output started as a child workflow");
        let mut fields = match result {
            Value::Object(fields) => fields,
            other => {
                let mut wrapped = Map::new();
                wrapped.insert("output".to_owned(), other);
                wrapped
            }
        };
        fields.insert("child_workflow_id".to_owned(), Value::String(child_id.to_string()));
        Ok(Ok(Value::Object(fields)))
    }
}
