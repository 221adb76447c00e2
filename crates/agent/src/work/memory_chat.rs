//! `memory-chat`: a chat whose long-term memory lives in the vector service. Payload
//! `{message, conversation_id?}`. The owner's past exchanges most similar to the message are
//! recalled into the system prompt, the model answers, and the new exchange is remembered.
//! Output `{"reply", "recalled": [{"id", "score"}] (the recalled exchanges, in the order they are
//! in the prompt, most similar first; `score` is the cosine similarity), "remembered": id}`.
//!
//! Memory is per task owner (the user the task belongs to), across conversations: the
//! `conversation_id` is kept with each exchange but does not limit recall.

use serde_json::{Value, json};

use super::conversation::Conversation;
use super::error::WorkError;
use super::payload::Payload;
use super::{TaskInput, Tools};
use crate::clients::memory::{Exchange, Recollection, exchange_details};
use crate::profiles::{Profile, Tool};

/// What the task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChatTurn<'a> {
    /// The user's message.
    pub(crate) message: &'a str,
    /// The conversation it belongs to, when the caller keeps one.
    pub(crate) conversation_id: Option<&'a str>,
}

impl<'a> ChatTurn<'a> {
    /// Reads the payload.
    pub(crate) fn read(payload: &'a Value) -> Result<Self, WorkError> {
        let payload = Payload::of(payload)?;
        Ok(Self {
            message: payload.required_text("message")?,
            conversation_id: payload.optional_text("conversation_id")?,
        })
    }
}

/// The profile's system prompt followed by the recalled exchanges, most similar first.
pub(crate) fn system_prompt(base: &str, recalled: &[Recollection]) -> String {
    let mut prompt = base.trim_end().to_owned();
    if recalled.is_empty() {
        return prompt;
    }
    prompt.push_str("\n\nEarlier exchanges with this user that may be relevant (most similar first):");
    for (index, recollection) in recalled.iter().enumerate() {
        prompt.push_str(&format!("\n{}. user: {}", index + 1, recollection.user.trim()));
        if !recollection.assistant.is_empty() {
            prompt.push_str(&format!("\n   assistant: {}", recollection.assistant.trim()));
        }
    }
    prompt
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let turn = ChatTurn::read(input.payload)?;
    if input.owner.trim().is_empty() {
        return Err(WorkError::NoOwner { profile: profile.name.clone() });
    }
    // Startup refuses a memory-chat profile without the vector service; this only guards the
    // invariant.
    let Some(memory) = tools.memory.as_ref() else {
        return Err(WorkError::ToolMissing {
            profile: profile.name.clone(),
            tool: Tool::VectorMemory.as_str(),
        });
    };
    let recalled = memory.recall(input.owner, turn.message, tools.memory_recall).await?;
    let mut conversation =
        Conversation::new(&tools.llm, profile, system_prompt(&profile.system_prompt, &recalled));
    let reply = conversation.ask(turn.message.to_owned()).await?;
    let exchange = Exchange {
        id: uuid::Uuid::now_v7().to_string(),
        user: turn.message.to_owned(),
        assistant: reply.clone(),
        details: exchange_details(&input.task_id.to_string(), turn.conversation_id),
    };
    memory.remember(input.owner, &exchange).await?;
    Ok(conversation
        .finish(json!({"reply": reply, "recalled": recalled_view(&recalled), "remembered": exchange.id})))
}

/// The recalled exchanges as the result shows them: id and score, in prompt order.
fn recalled_view(recalled: &[Recollection]) -> Value {
    let items: Vec<Value> = recalled
        .iter()
        .map(|recollection| json!({"id": recollection.id, "score": recollection.score}))
        .collect();
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recalled_exchanges_follow_the_system_prompt() {
        let recalled = [
            Recollection {
                id: "1".into(),
                score: 0.75,
                user: "my cat is Tom".into(),
                assistant: "Nice name.".into(),
            },
            Recollection {
                id: "2".into(),
                score: 0.5,
                user: "an imported note".into(),
                assistant: String::new(),
            },
        ];
        assert_eq!(
            system_prompt("You remember.\n", &recalled),
            "You remember.\n\nEarlier exchanges with this user that may be relevant (most similar first):\n\
             1. user: my cat is Tom\n   assistant: Nice name.\n2. user: an imported note"
        );
        assert_eq!(system_prompt("You remember.", &[]), "You remember.");
        assert_eq!(recalled_view(&recalled), json!([{"id": "1", "score": 0.75}, {"id": "2", "score": 0.5}]));
    }

    #[test]
    fn the_message_is_required() {
        let error = ChatTurn::read(&json!({"conversation_id": "c1"})).unwrap_err();
        assert_eq!(error.to_string(), "payload field `message` is required");
    }
}
