//! The one error type of the engine: bad input (dimension, non-finite values) and bad parameters.
//!
//! The engine has no I/O, so every failure is the caller's input; the service maps these to
//! `InvalidArgument` / HTTP 400.

/// Why an index call was refused. Nothing is applied when a call returns an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// A vector or query does not have the index's dimension.
    #[error("vector has dimension {actual}, the index expects {expected}")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The length of the vector that was passed.
        actual: usize,
    },
    /// A vector component is NaN or infinite; `index` is the first such component.
    #[error("vector component {index} is not a finite number")]
    NonFinite {
        /// Position of the first non-finite component.
        index: usize,
    },
    /// A configuration or search parameter is out of range; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidParameter {
        /// The parameter's name as spelled in [`crate::IndexConfig`] or [`crate::SearchParams`]
        /// (`"m"`, `"nprobe"`, `"k"`, ...), or `"dimension"` / `"slot"`.
        field: &'static str,
        /// What is wrong with it, lowercase.
        reason: String,
    },
}

impl IndexError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { field, reason: reason.into() }
    }
}
