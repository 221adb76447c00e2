//! `planner`: turns a goal into a workflow DAG the orchestrator can run as a child workflow.
//! Payload `{goal}`; output `{"workflow": {name, steps: [{id, type, payload, depends_on}]}}`,
//! checked by [`super::dag::validate`] before it leaves the agent.
//!
//! An invalid plan (not JSON, unknown type, unknown dependency, a cycle) gets one repair turn in
//! the same attempt: the model is told exactly what is wrong and answers again. A second invalid
//! plan fails the task without retry — the model has seen the problem and repeated it, and a new
//! attempt (after a backoff) would only ask the same question again.

use serde_json::{Value, json};

use super::answer::extract_json;
use super::conversation::Conversation;
use super::dag::{self, PlannedWorkflow};
use super::error::WorkError;
use super::payload::Payload;
use super::{TaskInput, Tools};
use crate::profiles::Profile;

/// The user message for `goal`.
pub(crate) fn prompt(goal: &str) -> String {
    format!(
        "Goal: {}\n\nPlan this goal as a workflow. Answer with only a JSON object \
         {{\"name\": a short name, \"steps\": [{{\"id\": a short unique id, \"type\": one of {}, \
         \"payload\": the step's input as a JSON object, \"depends_on\": [ids of the steps whose output it needs]}}]}}. \
         Payloads by type: coder {{\"spec\", \"language\"}}, reviewer {{\"code\" or \"diff\", \"focus\"}}, \
         summarizer {{\"text\" or \"documents\", \"fields\"}}, shell {{\"goal\", \"os\"}}, planner {{\"goal\"}}, \
         memory-chat {{\"message\"}}. A step runs once all its dependencies succeeded and receives their outputs; \
         there must be no cycle.",
        goal.trim(),
        dag::step_types().join(", ")
    )
}

/// The message asking the model to fix its plan.
pub(crate) fn repair_prompt(problem: &str) -> String {
    format!("That plan is invalid: {problem}. Answer again with only the corrected JSON object.")
}

/// The checked plan in an answer, or what is wrong with it.
pub(crate) fn read_plan(answer: &str) -> Result<PlannedWorkflow, String> {
    dag::validate(&extract_json(answer)?)
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let goal = Payload::of(input.payload)?.required_text("goal")?;
    let mut conversation = Conversation::new(&tools.llm, profile, profile.system_prompt.clone());
    let first_answer = conversation.ask(prompt(goal)).await?;
    let workflow = match read_plan(&first_answer) {
        Ok(workflow) => workflow,
        Err(problem) => {
            tracing::info!(%problem, "the planner's workflow is invalid; asking the model to repair it");
            let second_answer = conversation.ask(repair_prompt(&problem)).await?;
            read_plan(&second_answer).map_err(|problem| {
                WorkError::UnusableAnswer(format!(
                    "the workflow is still invalid after a repair turn: {problem}"
                ))
            })?
        }
    };
    Ok(conversation.finish(json!({"workflow": workflow})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_lists_the_step_types() {
        let text = prompt(" ship a CLI ");
        assert!(text.starts_with("Goal: ship a CLI\n\n"), "{text}");
        assert!(text.contains("one of coder, reviewer, summarizer, shell, planner, memory-chat,"), "{text}");
    }

    #[test]
    fn a_fenced_plan_is_read_and_a_cyclic_one_refused() {
        let answer = "```json\n{\"name\": \"p\", \"steps\": [{\"id\": \"a\", \"type\": \"coder\"}]}\n```";
        assert_eq!(read_plan(answer).unwrap().steps.len(), 1);
        let cyclic = r#"{"steps": [{"id": "a", "type": "coder", "depends_on": ["b"]},
                                    {"id": "b", "type": "reviewer", "depends_on": ["a"]}]}"#;
        assert_eq!(read_plan(cyclic).unwrap_err(), "the steps `a`, `b` form a cycle (or wait on one)");
        assert!(
            read_plan("first write code, then review it").unwrap_err().starts_with("the answer is not JSON")
        );
    }
}
