//! One conversation of a profile with its model: the system prompt, the turns, the token usage
//! summed over every call, and the result JSON the contract asks for —
//! `{"output", "model", "prompt": [messages sent], "usage"}` — so the prompts and outputs live
//! with the task.

use serde_json::{Value, json};
use sutazai_llm::{CachePolicy, ChatMessage, ChatRequest, LlmClient, Usage};

use super::error::WorkError;
use crate::profiles::Profile;

/// A conversation in progress.
#[derive(Debug)]
pub(crate) struct Conversation<'a> {
    llm: &'a LlmClient,
    profile: &'a Profile,
    messages: Vec<ChatMessage>,
    /// How many messages the last call sent (the rest is its answer).
    sent: usize,
    usage: Usage,
    model: String,
}

impl<'a> Conversation<'a> {
    /// A conversation of `profile` opened with `system_prompt` (the profile's own, possibly with
    /// recalled memory added).
    pub(crate) fn new(llm: &'a LlmClient, profile: &'a Profile, system_prompt: String) -> Self {
        Self {
            llm,
            profile,
            messages: vec![ChatMessage::system(system_prompt)],
            sent: 0,
            usage: Usage::default(),
            model: String::new(),
        }
    }

    /// Sends `user_message` with everything said before, and returns the model's answer.
    /// Answers are never taken from the response cache: a task asks for fresh work.
    pub(crate) async fn ask(&mut self, user_message: String) -> Result<String, WorkError> {
        self.messages.push(ChatMessage::user(user_message));
        let request = ChatRequest {
            model: self.profile.model.name.clone(),
            messages: self.messages.clone(),
            temperature: self.profile.temperature,
            max_tokens: self.profile.max_tokens,
            ..ChatRequest::default()
        };
        let outcome = self.llm.chat(request, CachePolicy::Bypass).await?;
        let response = outcome.response;
        self.sent = self.messages.len();
        self.usage.prompt_tokens += response.usage.prompt_tokens;
        self.usage.completion_tokens += response.usage.completion_tokens;
        self.model = response.model;
        let answer = response.message.content;
        self.messages.push(ChatMessage::assistant(answer.clone()));
        Ok(answer)
    }

    /// The task's result with `output`.
    pub(crate) fn finish(self, output: Value) -> Value {
        let prompt = &self.messages[..self.sent];
        json!({
            "output": output,
            "model": self.model,
            "prompt": prompt,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
        })
    }
}
