//! `shell`: proposes shell commands for a goal, as text for a person to read. Payload
//! `{goal, os?}`; output `{"commands": text, "os", "executed": false}`. Nothing here — nor
//! anywhere in this crate — runs a process: the marker states what the code guarantees.

use serde_json::{Value, json};

use super::answer::code_or_text;
use super::conversation::Conversation;
use super::error::WorkError;
use super::payload::Payload;
use super::{TaskInput, Tools};
use crate::profiles::Profile;

/// The system the commands are for when the payload names none.
const DEFAULT_OS: &str = "Linux (bash)";

/// What the task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellRequest<'a> {
    /// What the commands should achieve.
    pub(crate) goal: &'a str,
    /// The system they are for.
    pub(crate) os: &'a str,
}

impl<'a> ShellRequest<'a> {
    /// Reads the payload.
    pub(crate) fn read(payload: &'a Value) -> Result<Self, WorkError> {
        let payload = Payload::of(payload)?;
        Ok(Self {
            goal: payload.required_text("goal")?,
            os: payload.optional_text("os")?.unwrap_or(DEFAULT_OS),
        })
    }

    /// The user message.
    pub(crate) fn prompt(&self) -> String {
        format!(
            "Propose shell commands for {} that achieve this goal:\n{}\n\n\
             They will be shown to a person, who decides whether to run them; nothing is executed. \
             Answer with the commands in one fenced code block, each preceded by a comment line saying what it does.",
            self.os,
            self.goal.trim()
        )
    }
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let request = ShellRequest::read(input.payload)?;
    let mut conversation = Conversation::new(&tools.llm, profile, profile.system_prompt.clone());
    let answer = conversation.ask(request.prompt()).await?;
    let output = json!({"commands": code_or_text(&answer), "os": request.os, "executed": false});
    Ok(conversation.finish(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_defaults_to_linux() {
        let payload = json!({"goal": "list big files"});
        let request = ShellRequest::read(&payload).unwrap();
        assert_eq!(request.os, DEFAULT_OS);
        assert!(request.prompt().starts_with(
            "Propose shell commands for Linux (bash) that achieve this goal:\nlist big files\n"
        ));
        let error = ShellRequest::read(&json!({"os": "macOS"})).unwrap_err();
        assert_eq!(error.to_string(), "payload field `goal` is required");
    }
}
