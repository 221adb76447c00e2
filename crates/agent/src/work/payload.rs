//! Reading a task's payload: required and optional fields with errors that name the field, so a
//! submitter learns exactly what to fix (a bad payload is never retried).

use serde_json::{Map, Value};

use super::error::WorkError;

/// What a JSON value is, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error for `field`.
pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> WorkError {
    WorkError::InvalidPayload { field: field.into(), problem: problem.into() }
}

/// A payload object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Payload<'a> {
    fields: &'a Map<String, Value>,
}

impl<'a> Payload<'a> {
    /// The payload, which must be an object.
    pub(crate) fn of(value: &'a Value) -> Result<Self, WorkError> {
        match value {
            Value::Object(fields) => Ok(Self { fields }),
            other => Err(WorkError::PayloadNotAnObject { found: kind_of(other) }),
        }
    }

    /// A field's value, `None` when absent or null.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name).filter(|value| !value.is_null())
    }

    /// A text field that must be present and not blank.
    pub(crate) fn required_text(&self, name: &str) -> Result<&'a str, WorkError> {
        self.optional_text(name)?.ok_or_else(|| invalid(name, "is required"))
    }

    /// A text field that may be absent (or null, or blank).
    pub(crate) fn optional_text(&self, name: &str) -> Result<Option<&'a str>, WorkError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(invalid(name, format!("must be a string, not {}", kind_of(other)))),
        }
    }

    /// A list of non-blank strings that may be absent.
    pub(crate) fn optional_text_list(&self, name: &str) -> Result<Option<Vec<&'a str>>, WorkError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let Value::Array(items) = value else {
            return Err(invalid(name, format!("must be an array of strings, not {}", kind_of(value))));
        };
        let mut texts = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(text) if !text.trim().is_empty() => texts.push(text.trim()),
                Value::String(_) => return Err(invalid(format!("{name}[{index}]"), "must not be empty")),
                other => {
                    return Err(invalid(
                        format!("{name}[{index}]"),
                        format!("must be a string, not {}", kind_of(other)),
                    ));
                }
            }
        }
        Ok(Some(texts))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_named_in_every_error() {
        let value = json!({"spec": 3, "blank": "  ", "fields": ["a", 2]});
        let payload = Payload::of(&value).unwrap();
        assert_eq!(
            payload.required_text("missing").unwrap_err().to_string(),
            "payload field `missing` is required"
        );
        assert_eq!(
            payload.required_text("blank").unwrap_err().to_string(),
            "payload field `blank` is required"
        );
        assert_eq!(
            payload.required_text("spec").unwrap_err().to_string(),
            "payload field `spec` must be a string, not a number"
        );
        assert_eq!(
            payload.optional_text_list("fields").unwrap_err().to_string(),
            "payload field `fields[1]` must be a string, not a number"
        );
        assert_eq!(
            Payload::of(&json!([1])).unwrap_err().to_string(),
            "the payload must be a JSON object, not an array"
        );
    }

    #[test]
    fn absent_and_null_are_the_same() {
        let value = json!({"language": null});
        let payload = Payload::of(&value).unwrap();
        assert_eq!(payload.optional_text("language").unwrap(), None);
        assert_eq!(payload.optional_text_list("fields").unwrap(), None);
    }
}
