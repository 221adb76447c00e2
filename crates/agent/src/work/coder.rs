//! `coder`: writes code from a spec, or changes given code to meet it. Payload
//! `{spec, language?, code?}`; output: the code as text (the first fenced block of the answer, or
//! the whole answer when the model gave bare code).

use serde_json::Value;

use super::answer::{code_or_text, fence_for};
use super::conversation::Conversation;
use super::error::WorkError;
use super::payload::Payload;
use super::{TaskInput, Tools};
use crate::profiles::Profile;

/// What the task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeRequest<'a> {
    /// What the code must do.
    pub(crate) spec: &'a str,
    /// The programming language, when the submitter chose one.
    pub(crate) language: Option<&'a str>,
    /// Existing code to change.
    pub(crate) code: Option<&'a str>,
}

impl<'a> CodeRequest<'a> {
    /// Reads the payload.
    pub(crate) fn read(payload: &'a Value) -> Result<Self, WorkError> {
        let payload = Payload::of(payload)?;
        Ok(Self {
            spec: payload.required_text("spec")?,
            language: payload.optional_text("language")?,
            code: payload.optional_text("code")?,
        })
    }

    /// The user message.
    pub(crate) fn prompt(&self) -> String {
        let language = self.language.map(|language| format!("{language} ")).unwrap_or_default();
        let mut prompt = format!("Write {language}code for this specification:\n{}\n", self.spec.trim());
        if let Some(code) = self.code {
            let fence = fence_for(code);
            let info = self.language.unwrap_or_default();
            prompt.push_str(&format!(
                "\nChange this existing code so that it meets the specification:\n{fence}{info}\n{}\n{fence}\n",
                code.trim_end()
            ));
        }
        prompt.push_str("\nAnswer with the complete code in one fenced code block.");
        prompt
    }
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let request = CodeRequest::read(input.payload)?;
    let mut conversation = Conversation::new(&tools.llm, profile, profile.system_prompt.clone());
    let answer = conversation.ask(request.prompt()).await?;
    Ok(conversation.finish(Value::String(code_or_text(&answer))))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_prompt_carries_the_spec_the_language_and_the_code() {
        let payload = json!({"spec": "add two numbers", "language": "rust", "code": "fn add() {}"});
        let prompt = CodeRequest::read(&payload).unwrap().prompt();
        assert_eq!(
            prompt,
            "Write rust code for this specification:\nadd two numbers\n\n\
             Change this existing code so that it meets the specification:\n```rust\nfn add() {}\n```\n\n\
             Answer with the complete code in one fenced code block."
        );
    }

    #[test]
    fn the_spec_is_required() {
        let error = CodeRequest::read(&json!({"language": "go"})).unwrap_err();
        assert_eq!(error.to_string(), "payload field `spec` is required");
    }
}
