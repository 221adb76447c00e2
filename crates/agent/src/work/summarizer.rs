//! `summarizer`: summarizes a text or several documents, or extracts named fields from them.
//! Payload `{text | documents, fields?}`, where `documents` holds strings or `{text, title?}`
//! objects. Output: the summary as text; with `fields`, `{"fields": {name: value or null}}`
//! read from the model's JSON — or, when the answer holds no usable JSON object,
//! `{"fields": null, "raw", "parse_error"}`: nothing is filled in that the model did not say.

use serde_json::{Map, Value, json};

use super::answer::extract_json;
use super::conversation::Conversation;
use super::error::WorkError;
use super::payload::{Payload, invalid, kind_of};
use super::{TaskInput, Tools};
use crate::profiles::Profile;

/// One input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document<'a> {
    /// Its title, when given.
    pub(crate) title: Option<&'a str>,
    /// Its text.
    pub(crate) text: &'a str,
}

/// What is summarized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// One text.
    Text(&'a str),
    /// Several documents.
    Documents(Vec<Document<'a>>),
}

/// What the task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SummaryRequest<'a> {
    /// The input.
    pub(crate) source: Source<'a>,
    /// Fields to extract; empty for a summary.
    pub(crate) fields: Vec<&'a str>,
}

fn read_documents(value: &Value) -> Result<Vec<Document<'_>>, WorkError> {
    let Value::Array(items) = value else {
        return Err(invalid("documents", format!("must be an array, not {}", kind_of(value))));
    };
    if items.is_empty() {
        return Err(invalid("documents", "must hold at least one document"));
    }
    let mut documents = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let document = match item {
            Value::String(text) => Document { title: None, text },
            Value::Object(_) => {
                let fields = Payload::of(item)?;
                let text = fields
                    .required_text("text")
                    .map_err(|_| invalid(format!("documents[{index}].text"), "is required"))?;
                let title = fields
                    .optional_text("title")
                    .map_err(|_| invalid(format!("documents[{index}].title"), "must be a string"))?;
                Document { title, text }
            }
            other => {
                return Err(invalid(
                    format!("documents[{index}]"),
                    format!("must be a string or an object with `text`, not {}", kind_of(other)),
                ));
            }
        };
        if document.text.trim().is_empty() {
            return Err(invalid(format!("documents[{index}]"), "must not be empty"));
        }
        documents.push(document);
    }
    Ok(documents)
}

impl<'a> SummaryRequest<'a> {
    /// Reads the payload.
    pub(crate) fn read(payload: &'a Value) -> Result<Self, WorkError> {
        let fields_of = Payload::of(payload)?;
        let source = match (fields_of.optional_text("text")?, fields_of.get("documents")) {
            (Some(text), _) => Source::Text(text),
            (None, Some(documents)) => Source::Documents(read_documents(documents)?),
            (None, None) => return Err(invalid("text", "(or `documents`) is required")),
        };
        let fields = fields_of.optional_text_list("fields")?.unwrap_or_default();
        Ok(Self { source, fields })
    }

    fn source_text(&self) -> String {
        match &self.source {
            Source::Text(text) => format!("the following text:\n\n{}", text.trim()),
            Source::Documents(documents) => {
                let mut text = format!("the following {} documents together:", documents.len());
                for (index, document) in documents.iter().enumerate() {
                    let title = document.title.map(|title| format!(" ({title})")).unwrap_or_default();
                    text.push_str(&format!("\n\nDocument {}{title}:\n{}", index + 1, document.text.trim()));
                }
                text
            }
        }
    }

    /// The user message.
    pub(crate) fn prompt(&self) -> String {
        if self.fields.is_empty() {
            return format!("Summarize {}\n\nAnswer with the summary only.", self.source_text());
        }
        let names: Vec<String> = self.fields.iter().map(|field| format!("\"{field}\"")).collect();
        format!(
            "Extract these fields from {}\n\nFields: {}.\nAnswer with only a JSON object with exactly these keys; \
             use null for a field the text does not state.",
            self.source_text(),
            names.join(", ")
        )
    }
}

/// The requested fields from the model's answer: each key's value, null when the model left it
/// out; an error when the answer holds no JSON object.
pub(crate) fn extracted_fields(answer: &str, fields: &[&str]) -> Result<Map<String, Value>, String> {
    let object = match extract_json(answer)? {
        Value::Object(object) => object,
        other => return Err(format!("expected a JSON object of fields, got {}", kind_of(&other))),
    };
    let mut extracted = Map::new();
    for field in fields {
        extracted.insert((*field).to_owned(), object.get(*field).cloned().unwrap_or(Value::Null));
    }
    Ok(extracted)
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let request = SummaryRequest::read(input.payload)?;
    let mut conversation = Conversation::new(&tools.llm, profile, profile.system_prompt.clone());
    let answer = conversation.ask(request.prompt()).await?;
    let output = if request.fields.is_empty() {
        Value::String(answer.trim().to_owned())
    } else {
        match extracted_fields(&answer, &request.fields) {
            Ok(fields) => json!({"fields": fields}),
            Err(parse_error) => json!({"fields": null, "raw": answer, "parse_error": parse_error}),
        }
    };
    Ok(conversation.finish(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_numbered_with_their_titles() {
        let payload = json!({"documents": ["first text", {"title": "Memo", "text": "second text"}]});
        let request = SummaryRequest::read(&payload).unwrap();
        assert_eq!(
            request.prompt(),
            "Summarize the following 2 documents together:\n\nDocument 1:\nfirst text\n\n\
             Document 2 (Memo):\nsecond text\n\nAnswer with the summary only."
        );
    }

    #[test]
    fn fields_are_asked_for_by_name() {
        let payload = json!({"text": "Invoice 42 from ACME", "fields": ["number", "vendor"]});
        let prompt = SummaryRequest::read(&payload).unwrap().prompt();
        assert!(
            prompt.starts_with("Extract these fields from the following text:\n\nInvoice 42 from ACME"),
            "{prompt}"
        );
        assert!(prompt.contains("Fields: \"number\", \"vendor\"."), "{prompt}");
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let cases = [
            (json!({}), "payload field `text` (or `documents`) is required"),
            (json!({"documents": []}), "payload field `documents` must hold at least one document"),
            (json!({"documents": [{"title": "x"}]}), "payload field `documents[0].text` is required"),
            (
                json!({"documents": [3]}),
                "payload field `documents[0]` must be a string or an object with `text`, not a number",
            ),
            (
                json!({"text": "t", "fields": "a"}),
                "payload field `fields` must be an array of strings, not a string",
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(SummaryRequest::read(&payload).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn only_the_requested_fields_are_kept_and_missing_ones_are_null() {
        let fields =
            extracted_fields("```json\n{\"number\": 42, \"extra\": true}\n```", &["number", "vendor"])
                .unwrap();
        assert_eq!(Value::Object(fields), json!({"number": 42, "vendor": null}));
        assert!(extracted_fields("no idea", &["number"]).is_err());
        assert_eq!(
            extracted_fields("[1]", &["a"]).unwrap_err(),
            "expected a JSON object of fields, got an array"
        );
    }
}
