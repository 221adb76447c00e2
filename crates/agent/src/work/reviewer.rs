//! `reviewer`: reviews code or a diff and returns findings as JSON. Payload
//! `{code | diff, focus?}`; output `{"findings": [{severity, line?, message}]}`. The model's JSON
//! is read tolerantly (fences, chatter around it, `{"findings": [...]}`), but no finding is ever
//! made up: an answer that is not JSON gives no findings, with the raw answer and the parse error
//! beside them, and a malformed item is left out and reported the same way.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::answer::{extract_json, fence_for};
use super::conversation::Conversation;
use super::error::WorkError;
use super::payload::{Payload, invalid, kind_of};
use super::{TaskInput, Tools};
use crate::profiles::Profile;

/// What is reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject<'a> {
    /// Whole code.
    Code(&'a str),
    /// A diff.
    Diff(&'a str),
}

/// What the task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReviewRequest<'a> {
    /// The code or diff (a diff when both are given: it is what changed).
    pub(crate) subject: Subject<'a>,
    /// What to look at especially.
    pub(crate) focus: Option<&'a str>,
}

impl<'a> ReviewRequest<'a> {
    /// Reads the payload.
    pub(crate) fn read(payload: &'a Value) -> Result<Self, WorkError> {
        let payload = Payload::of(payload)?;
        let subject = match (payload.optional_text("diff")?, payload.optional_text("code")?) {
            (Some(diff), _) => Subject::Diff(diff),
            (None, Some(code)) => Subject::Code(code),
            (None, None) => return Err(invalid("code", "(or `diff`) is required")),
        };
        Ok(Self { subject, focus: payload.optional_text("focus")? })
    }

    /// The user message.
    pub(crate) fn prompt(&self) -> String {
        let (what, text) = match self.subject {
            Subject::Code(code) => ("code", code),
            Subject::Diff(diff) => ("diff", diff),
        };
        let focus = self.focus.map(|focus| format!(", focusing on {focus}")).unwrap_or_default();
        let fence = fence_for(text);
        format!(
            "Review this {what}{focus}:\n{fence}\n{}\n{fence}\n\n\
             Answer with only a JSON array of findings, each an object \
             {{\"severity\": \"critical\" | \"major\" | \"minor\" | \"info\", \
             \"line\": the line number or null, \"message\": what is wrong and how to fix it}}. \
             Answer [] when you find nothing.",
            text.trim_end()
        )
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    /// As the model rated it, lower-cased; `unspecified` when it gave none.
    pub(crate) severity: String,
    /// The line it is about, when the model said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    /// What is wrong.
    pub(crate) message: String,
}

impl Finding {
    fn from_value(value: &Value) -> Result<Self, String> {
        let Value::Object(fields) = value else {
            return Err(format!("is {}, not an object", kind_of(value)));
        };
        let message = match fields.get("message") {
            Some(Value::String(message)) if !message.trim().is_empty() => message.trim().to_owned(),
            _ => return Err("has no message".to_owned()),
        };
        let severity = match fields.get("severity") {
            Some(Value::String(severity)) if !severity.trim().is_empty() => severity.trim().to_lowercase(),
            _ => "unspecified".to_owned(),
        };
        Ok(Self { severity, line: line_of(fields), message })
    }
}

fn line_of(fields: &Map<String, Value>) -> Option<u64> {
    match fields.get("line")? {
        Value::Number(number) => number.as_u64().filter(|line| *line > 0),
        Value::String(text) => text.trim().parse::<u64>().ok().filter(|line| *line > 0),
        _ => None,
    }
}

/// The findings read from an answer, and what could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Review {
    /// Every well-formed finding.
    pub(crate) findings: Vec<Finding>,
    /// Why (part of) the answer was not usable.
    pub(crate) parse_error: Option<String>,
}

impl Review {
    /// Reads `answer`.
    pub(crate) fn parse(answer: &str) -> Self {
        let items = match extract_json(answer) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Object(mut object)) => match object.remove("findings") {
                Some(Value::Array(items)) => items,
                _ => {
                    return Self::unreadable(
                        "expected a JSON array of findings, got an object without `findings`",
                    );
                }
            },
            Ok(other) => {
                return Self::unreadable(format!(
                    "expected a JSON array of findings, got {}",
                    kind_of(&other)
                ));
            }
            Err(error) => return Self::unreadable(error),
        };
        let mut findings = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match Finding::from_value(item) {
                Ok(finding) => findings.push(finding),
                Err(problem) => problems.push(format!("finding {} {problem}", index + 1)),
            }
        }
        let parse_error = (!problems.is_empty()).then(|| problems.join("; "));
        Self { findings, parse_error }
    }

    fn unreadable(problem: impl Into<String>) -> Self {
        Self { findings: Vec::new(), parse_error: Some(problem.into()) }
    }

    /// The profile's output; with the raw answer whenever something was not usable.
    pub(crate) fn output(&self, answer: &str) -> Value {
        match &self.parse_error {
            None => json!({"findings": self.findings}),
            Some(parse_error) => {
                json!({"findings": self.findings, "raw": answer, "parse_error": parse_error})
            }
        }
    }
}

/// Runs one attempt.
pub(crate) async fn run(profile: &Profile, tools: &Tools, input: &TaskInput<'_>) -> Result<Value, WorkError> {
    let request = ReviewRequest::read(input.payload)?;
    let mut conversation = Conversation::new(&tools.llm, profile, profile.system_prompt.clone());
    let answer = conversation.ask(request.prompt()).await?;
    let review = Review::parse(&answer);
    Ok(conversation.finish(review.output(&answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_is_preferred_and_one_subject_is_required() {
        let both = json!({"code": "a", "diff": "b", "focus": "safety"});
        let request = ReviewRequest::read(&both).unwrap();
        assert_eq!(request.subject, Subject::Diff("b"));
        assert!(request.prompt().starts_with("Review this diff, focusing on safety:\n```\nb\n```\n"));
        let error = ReviewRequest::read(&json!({"focus": "x"})).unwrap_err();
        assert_eq!(error.to_string(), "payload field `code` (or `diff`) is required");
    }

    #[test]
    fn findings_are_read_tolerantly() {
        let answer = "Here you go:\n```json\n[{\"severity\": \"Major\", \"line\": \"3\", \"message\": \"unchecked index\"},\
                      {\"message\": \"naming\"}]\n```";
        let review = Review::parse(answer);
        assert_eq!(
            review.findings,
            [
                Finding { severity: "major".into(), line: Some(3), message: "unchecked index".into() },
                Finding { severity: "unspecified".into(), line: None, message: "naming".into() },
            ]
        );
        assert_eq!(review.parse_error, None);
        assert_eq!(
            review.output(answer),
            json!({"findings": [
                {"severity": "major", "line": 3, "message": "unchecked index"},
                {"severity": "unspecified", "message": "naming"}
            ]})
        );
        let wrapped = Review::parse("{\"findings\": []}");
        assert_eq!(wrapped, Review { findings: Vec::new(), parse_error: None });
    }

    #[test]
    fn prose_gives_no_findings_and_the_raw_answer() {
        let answer = "The code looks fine to me.";
        let review = Review::parse(answer);
        assert!(review.findings.is_empty());
        let output = review.output(answer);
        assert_eq!(output["raw"], answer);
        assert!(output["parse_error"].as_str().unwrap().starts_with("the answer is not JSON"));
    }

    #[test]
    fn malformed_items_are_left_out_and_reported() {
        let answer = "[{\"severity\": \"minor\", \"message\": \"ok\"}, {\"severity\": \"major\"}, 7]";
        let review = Review::parse(answer);
        assert_eq!(review.findings.len(), 1);
        assert_eq!(
            review.parse_error.as_deref(),
            Some("finding 2 has no message; finding 3 is a number, not an object")
        );
        assert_eq!(review.output(answer)["raw"], answer);
    }
}
