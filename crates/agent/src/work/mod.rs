//! The work of each profile kind: read the payload, talk to the model (and the tools), shape the
//! output. Nothing here knows about RabbitMQ; the runtime calls [`perform`] once per attempt and
//! publishes what it returns.
//!
//! Every profile but noop returns the contract's result `{"output", "model", "prompt", "usage"}`
//! (see [`conversation`]); noop returns `{"output": <payload>}`.

pub(crate) mod answer;
pub(crate) mod coder;
pub(crate) mod conversation;
pub(crate) mod dag;
pub(crate) mod error;
pub(crate) mod memory_chat;
pub(crate) mod noop;
pub(crate) mod payload;
pub(crate) mod planner;
pub(crate) mod reviewer;
pub(crate) mod shell;
pub(crate) mod summarizer;

use std::sync::Arc;

use serde_json::Value;
use sutazai_llm::LlmClient;
use sutazai_types::TaskId;

pub(crate) use error::WorkError;

use crate::clients::memory::MemoryStore;
use crate::profiles::{AgentKind, Profile};

/// What the profiles work with besides their own settings.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The LLM (its inference slots leased from the arbitrator when configured).
    pub(crate) llm: Arc<LlmClient>,
    /// Memory in the vector service, for memory-chat.
    pub(crate) memory: Option<MemoryStore>,
    /// Past exchanges memory-chat recalls per message.
    pub(crate) memory_recall: u32,
}

/// One attempt's task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskInput<'a> {
    /// The task.
    pub(crate) task_id: TaskId,
    /// Its type.
    pub(crate) task_type: &'a str,
    /// Who it belongs to.
    pub(crate) owner: &'a str,
    /// Its payload, as submitted.
    pub(crate) payload: &'a Value,
}

/// Runs one attempt of `input` with `profile`: the task's result, or why there is none.
pub(crate) async fn perform(
    profile: &Profile,
    tools: &Tools,
    input: &TaskInput<'_>,
) -> Result<Value, WorkError> {
    if !profile.accepts(input.task_type) {
        return Err(WorkError::UnsupportedTaskType {
            profile: profile.name.clone(),
            task_type: input.task_type.to_owned(),
            accepted: profile.task_types.join(", "),
        });
    }
    match profile.kind {
        AgentKind::Noop => Ok(noop::run(input.payload)),
        AgentKind::Coder => coder::run(profile, tools, input).await,
        AgentKind::Reviewer => reviewer::run(profile, tools, input).await,
        AgentKind::Summarizer => summarizer::run(profile, tools, input).await,
        AgentKind::Shell => shell::run(profile, tools, input).await,
        AgentKind::Planner => planner::run(profile, tools, input).await,
        AgentKind::MemoryChat => memory_chat::run(profile, tools, input).await,
    }
}
