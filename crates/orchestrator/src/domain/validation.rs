//! The one validation failure type of the domain: which field broke which rule.

/// A field of a request breaks a rule. Shown to clients as `validation_failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field, as the proto names it (`priority`, `steps[2].task_type`, `steps`).
    pub field: String,
    /// The rule it breaks.
    pub message: String,
}

impl ValidationError {
    /// `field` breaks the rule described by `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
