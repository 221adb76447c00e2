//! Documents: texts embedded with the configured model and stored as points whose payload holds
//! the text under `text` (unless the caller set that key), and text queries embedded the same way.

use std::sync::Arc;

use serde_json::{Map, Value};
use sutazai_llm::LlmClient;

use super::point_id::PointId;
use super::points::NewPoint;
use crate::error::VectorError;

/// The payload key the text is stored under.
pub const TEXT_KEY: &str = "text";

/// A text to embed and store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// The point's id.
    pub id: PointId,
    /// The text (not blank).
    pub text: String,
    /// Extra payload.
    pub payload: Option<Map<String, Value>>,
}

/// Embeds texts with one model of the LLM provider.
#[derive(Debug, Clone)]
pub struct Embedder {
    llm: Arc<LlmClient>,
    model: String,
    batch_size: usize,
}

impl Embedder {
    /// Embeds with `model` through `llm`, `batch_size` texts per call.
    pub fn new(llm: Arc<LlmClient>, model: impl Into<String>, batch_size: usize) -> Self {
        Self { llm, model: model.into(), batch_size: batch_size.max(1) }
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, VectorError> {
        let expected = texts.len();
        let mut vectors = Vec::with_capacity(expected);
        let mut remaining = texts.into_iter().peekable();
        while remaining.peek().is_some() {
            let batch: Vec<String> = remaining.by_ref().take(self.batch_size).collect();
            let batch_len = batch.len();
            let embedded = self.llm.embed(&self.model, batch).await?;
            if embedded.len() != batch_len {
                return Err(VectorError::Unavailable(format!(
                    "the embedding model `{}` returned {} vectors for {batch_len} texts",
                    self.model,
                    embedded.len()
                )));
            }
            vectors.extend(embedded);
        }
        Ok(vectors)
    }
}

/// Checks that `documents` can be stored: at least one, at most `max_documents`, no blank text.
pub fn check_documents(documents: &[NewDocument], max_documents: usize) -> Result<(), VectorError> {
    if documents.is_empty() || documents.len() > max_documents {
        return Err(VectorError::validation(
            "documents",
            format!("must hold 1 to {max_documents} documents"),
        ));
    }
    for (position, document) in documents.iter().enumerate() {
        if document.text.trim().is_empty() {
            return Err(VectorError::validation(format!("documents[{position}].text"), "must not be empty"));
        }
    }
    Ok(())
}

/// The points of embedded documents: each vector checked against the collection's `dimension`
/// (a mismatch means the model does not fit the collection), the text added to the payload.
pub fn document_points(
    documents: Vec<NewDocument>,
    vectors: Vec<Vec<f32>>,
    dimension: usize,
    model: &str,
) -> Result<Vec<NewPoint>, VectorError> {
    let mut points = Vec::with_capacity(documents.len());
    for (document, vector) in documents.into_iter().zip(vectors) {
        if vector.len() != dimension {
            return Err(VectorError::validation(
                "collection",
                format!(
                    "the embedding model `{model}` returns {}-dimensional vectors, the collection has dimension {dimension}",
                    vector.len()
                ),
            ));
        }
        let mut payload = document.payload.unwrap_or_default();
        if !payload.contains_key(TEXT_KEY) {
            payload.insert(TEXT_KEY.to_owned(), Value::String(document.text));
        }
        points.push(NewPoint { id: document.id, vector, payload: Some(payload) });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;

    fn document(id: u64, text: &str, payload: Option<Value>) -> NewDocument {
        NewDocument {
            id: PointId::Num(id),
            text: text.to_owned(),
            payload: payload.and_then(|value| value.as_object().cloned()),
        }
    }

    #[test]
    fn text_goes_into_the_payload_unless_set() {
        let points = document_points(
            vec![document(1, "hello", None), document(2, "world", Some(json!({"text": "mine", "k": 1})))],
            vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            2,
            "m",
        )
        .unwrap();
        assert_eq!(points[0].payload, json!({"text": "hello"}).as_object().cloned());
        assert_eq!(points[1].payload, json!({"text": "mine", "k": 1}).as_object().cloned());
        let error = document_points(vec![document(1, "x", None)], vec![vec![1.0]], 2, "m").unwrap_err();
        assert!(error.to_string().contains("returns 1-dimensional vectors"), "{error}");
    }

    #[test]
    fn documents_are_checked() {
        assert!(check_documents(&[], 5).is_err());
        let error = check_documents(&[document(1, "a", None), document(2, "  ", None)], 5).unwrap_err();
        assert_eq!(error.to_string(), "documents[1].text: must not be empty");
        assert!(check_documents(&[document(1, "a", None), document(2, "b", None)], 1).is_err());
    }
}
