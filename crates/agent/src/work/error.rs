//! [`WorkError`]: why an attempt failed, and whether another attempt could succeed — the
//! `retryable` flag of the `Failed` message, which decides whether the orchestrator retries.

use sutazai_llm::LlmError;
use sutazai_types::ServiceErrorCode;

use crate::clients::memory::MemoryError;

/// Why an attempt produced no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkError {
    /// The task's payload is not what the profile reads.
    #[error("payload field `{field}` {problem}")]
    InvalidPayload {
        /// The field, with its path inside the payload (`documents[1].text`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The payload is not a JSON object.
    #[error("the payload must be a JSON object, not {found}")]
    PayloadNotAnObject {
        /// What it is instead.
        found: &'static str,
    },
    /// The profile does not take this type of task.
    #[error("profile `{profile}` does not take tasks of type `{task_type}`; it takes {accepted}")]
    UnsupportedTaskType {
        /// The profile.
        profile: String,
        /// The task's type.
        task_type: String,
        /// The types it takes.
        accepted: String,
    },
    /// The task has no owner, and the profile keeps per-owner state.
    #[error("the task has no owner, and {profile} keeps its memory per owner")]
    NoOwner {
        /// The profile.
        profile: String,
    },
    /// The profile needs a tool this worker was started without.
    #[error("profile `{profile}` needs the {tool} tool, which this worker was started without")]
    ToolMissing {
        /// The profile.
        profile: String,
        /// The tool.
        tool: &'static str,
    },
    /// The LLM call failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Memory (the vector service) failed.
    #[error("memory: {0}")]
    Memory(#[from] MemoryError),
    /// The model answered, but not with anything the profile can use, even after being told what
    /// was wrong.
    #[error("the model's answer is unusable: {0}")]
    UnusableAnswer(String),
    /// The attempt ran into the profile's timeout.
    #[error("the attempt did not finish within the profile's timeout of {timeout_ms} ms")]
    AttemptTimedOut {
        /// The profile's `timeout_s` in milliseconds.
        timeout_ms: u64,
    },
    /// The task's deadline passed (before or during the attempt).
    #[error("the task's deadline passed before the attempt finished")]
    DeadlinePassed,
}

impl WorkError {
    /// Whether another attempt may succeed: outages and timeouts may pass; a bad payload, a
    /// refused request, a passed deadline or an unusable answer (after a repair turn) repeat.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidPayload { .. }
            | Self::PayloadNotAnObject { .. }
            | Self::UnsupportedTaskType { .. }
            | Self::NoOwner { .. }
            | Self::ToolMissing { .. }
            | Self::UnusableAnswer(_)
            | Self::DeadlinePassed => false,
            Self::Llm(error) => matches!(
                error.code(),
                ServiceErrorCode::Unavailable
                    | ServiceErrorCode::Timeout
                    | ServiceErrorCode::TooManyRequests
                    | ServiceErrorCode::Internal
            ),
            Self::Memory(error) => error.is_retryable(),
            Self::AttemptTimedOut { .. } => true,
        }
    }

    /// A short label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::InvalidPayload { .. } | Self::PayloadNotAnObject { .. } => "invalid_payload",
            Self::UnsupportedTaskType { .. } => "unsupported_task_type",
            Self::NoOwner { .. } => "no_owner",
            Self::ToolMissing { .. } => "tool_missing",
            Self::Llm(_) => "llm",
            Self::Memory(_) => "memory",
            Self::UnusableAnswer(_) => "unusable_answer",
            Self::AttemptTimedOut { .. } => "attempt_timeout",
            Self::DeadlinePassed => "deadline_passed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_retried_and_refusals_are_not() {
        assert!(WorkError::Llm(LlmError::unavailable("connection refused")).is_retryable());
        assert!(WorkError::Llm(LlmError::Timeout { timeout_ms: 5 }).is_retryable());
        assert!(WorkError::AttemptTimedOut { timeout_ms: 5 }.is_retryable());
        let unknown_model = LlmError::UnknownModel { model: "x".into(), available: Vec::new() };
        assert!(!WorkError::Llm(unknown_model).is_retryable());
        assert!(!WorkError::DeadlinePassed.is_retryable());
        let missing = WorkError::InvalidPayload { field: "spec".into(), problem: "is required".into() };
        assert!(!missing.is_retryable());
        assert_eq!(missing.to_string(), "payload field `spec` is required");
    }
}
