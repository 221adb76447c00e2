//! The `rag` option of chat: the documents of a vector collection nearest to the last user
//! message are retrieved through the vector service's `QueryDocuments` (with the caller's token,
//! so a caller reads only what the token allows), put in the prompt as one system message, and
//! returned with the answer as `passages`.
//!
//! A passage's text is the `text` field of the point's payload, where `UpsertDocuments` stores
//! the embedded text; a hit without a string `text` (a point stored as a bare vector) is not a
//! passage and is skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sutazai_kit::auth::{Principal, require_scope};
use sutazai_kit::http::ApiError;
use sutazai_llm::{ChatMessage, ChatRequest, ChatRole};
use sutazai_proto::json::from_proto_struct;
use sutazai_proto::v1 as pb;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use crate::downstream::VECTOR;
use crate::http::AppState;

/// Passages retrieved when `top_k` is absent.
const DEFAULT_TOP_K: u32 = 4;
/// Most passages one chat may retrieve: more would crowd out the question in a small context.
const MAX_TOP_K: u64 = 20;
/// The scope a caller needs to read a collection (the vector routes' read scope).
const VECTORS_READ_SCOPE: &str = "vectors:read";
/// The payload key `UpsertDocuments` stores a document's text under.
const TEXT_KEY: &str = "text";
/// The first line of the passages' system message.
const PASSAGES_PREAMBLE: &str = "Use the following passages to answer. Cite them by [n].";

/// `rag` in a chat body: answer from the documents of a vector collection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RagOptions {
    /// The collection whose documents (stored with `POST /api/v1/vectors/collections/{name}/documents`)
    /// are searched with the text of the last user message.
    collection: String,
    /// Passages to retrieve, 1 to 20; 4 when absent.
    top_k: Option<u64>,
    /// Keeps only passages whose score is at least this. Scores are similarities on cosine and ip
    /// collections; on an l2 collection the score is a distance and `min_score` is refused.
    min_score: Option<f32>,
}

/// A retrieval the options asked for, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Retrieval {
    collection: String,
    top_k: u32,
    min_score: Option<f32>,
    /// The text searched with: the last user message.
    question: String,
}

impl RagOptions {
    /// Checks the options for `request`, before any call; a bad value is a 422 naming
    /// `rag.<field>`.
    pub(crate) fn check(&self, request: &ChatRequest) -> Result<Retrieval, ApiError> {
        if self.collection.is_empty() {
            return Err(ApiError::validation("rag.collection", "must not be empty"));
        }
        let top_k = match self.top_k {
            None => DEFAULT_TOP_K,
            Some(top_k) => match u32::try_from(top_k) {
                Ok(top_k) if (1..=MAX_TOP_K).contains(&u64::from(top_k)) => top_k,
                _ => {
                    return Err(ApiError::validation(
                        "rag.top_k",
                        format!("must be between 1 and {MAX_TOP_K}"),
                    ));
                }
            },
        };
        if self.min_score.is_some_and(|min_score| !min_score.is_finite()) {
            return Err(ApiError::validation("rag.min_score", "must be a finite number"));
        }
        let question = question(request)?.to_owned();
        Ok(Retrieval { collection: self.collection.clone(), top_k, min_score: self.min_score, question })
    }
}

/// A point id as JSON: a number or a string, as it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum PassageId {
    Num(u64),
    Str(String),
}

impl std::fmt::Display for PassageId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Num(number) => write!(formatter, "{number}"),
            Self::Str(text) => formatter.write_str(text),
        }
    }
}

/// One retrieved passage, as it was put in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Passage {
    /// The point id of the document.
    id: PassageId,
    /// The similarity for cosine and ip collections, the distance for l2 (smaller is closer).
    score: f32,
    /// The document's stored text.
    text: String,
}

/// The text passages are searched with: the last user message, which must not be blank.
fn question(request: &ChatRequest) -> Result<&str, ApiError> {
    let last_user = request.messages.iter().rev().find(|message| message.role == ChatRole::User);
    match last_user {
        Some(message) if !message.content.trim().is_empty() => Ok(&message.content),
        Some(_) => Err(ApiError::validation("rag", "the last user message is blank: nothing to search with")),
        None => Err(ApiError::validation("rag", "needs a user message to search with")),
    }
}

/// The passages of `retrieval`, best first.
pub(crate) async fn retrieve(
    state: &AppState,
    principal: &Principal,
    retrieval: &Retrieval,
) -> Result<Vec<Passage>, ApiError> {
    require_scope(principal, VECTORS_READ_SCOPE)?;
    if retrieval.min_score.is_some() {
        refuse_min_score_on_distances(state, &retrieval.collection).await?;
    }
    let request = pb::QueryDocumentsRequest {
        collection: retrieval.collection.clone(),
        text: retrieval.question.clone(),
        k: retrieval.top_k,
        filter: None,
        with_payload: true,
    };
    let response = state
        .downstreams
        .call(VECTOR, state.downstreams.vector().query_documents(request))
        .await
        .map_err(collection_error)?;
    Ok(passages_of(response.hits, retrieval.min_score))
}

/// On an l2 collection the score is a distance, where a lower bound means nothing useful.
async fn refuse_min_score_on_distances(state: &AppState, collection: &str) -> Result<(), ApiError> {
    let request = pb::GetCollectionRequest { name: collection.to_owned() };
    let response = state
        .downstreams
        .call(VECTOR, state.downstreams.vector().get_collection(request))
        .await
        .map_err(collection_error)?;
    let metric = response.collection.map(|collection| collection.metric());
    if metric == Some(pb::DistanceMetric::L2) {
        return Err(ApiError::validation(
            "rag.min_score",
            "the collection's metric is l2, whose scores are distances; min_score applies to cosine and ip collections",
        ));
    }
    Ok(())
}

/// The vector service names the collection `collection`; in a chat body it is `rag.collection`.
fn collection_error(error: ApiError) -> ApiError {
    match error.code() {
        ServiceErrorCode::NotFound => {
            ApiError::new(ServiceErrorCode::NotFound, format!("rag.collection: {}", error.detail()))
        }
        ServiceErrorCode::ValidationFailed | ServiceErrorCode::BadRequest => {
            match error.detail().strip_prefix("collection: ") {
                Some(reason) => ApiError::validation("rag.collection", reason),
                None => error,
            }
        }
        _ => error,
    }
}

/// The hits that carry a text, in order, down to `min_score`.
fn passages_of(hits: Vec<pb::ScoredPoint>, min_score: Option<f32>) -> Vec<Passage> {
    let mut passages = Vec::with_capacity(hits.len());
    for hit in hits {
        if min_score.is_some_and(|min_score| hit.score < min_score) {
            continue;
        }
        let id = match hit.id.and_then(|id| id.kind) {
            Some(pb::point_id::Kind::Num(number)) => PassageId::Num(number),
            Some(pb::point_id::Kind::Str(text)) => PassageId::Str(text),
            None => continue,
        };
        let mut payload = hit.payload.as_ref().map(from_proto_struct).unwrap_or_default();
        let Some(Value::String(text)) = payload.remove(TEXT_KEY) else { continue };
        passages.push(Passage { id, score: hit.score, text });
    }
    passages
}

/// The system message that carries `passages`, numbered from 1 in order.
fn passages_message(passages: &[Passage]) -> String {
    let mut message = PASSAGES_PREAMBLE.to_owned();
    for (index, passage) in passages.iter().enumerate() {
        message.push_str(&format!("\n[{}] (id {}) {}", index + 1, passage.id, passage.text.trim()));
    }
    message
}

/// `request` with the passages as a system message after the caller's own system messages (so
/// the caller's instructions come first); unchanged when nothing was retrieved.
pub(crate) fn with_passages(request: &ChatRequest, passages: &[Passage]) -> ChatRequest {
    let mut prompted = request.clone();
    if passages.is_empty() {
        return prompted;
    }
    let position = prompted.messages.iter().position(|message| message.role != ChatRole::System).unwrap_or(0);
    prompted.messages.insert(position, ChatMessage::system(passages_message(passages)));
    prompted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;
    use sutazai_proto::json::to_proto_struct;

    use super::*;

    fn options(value: Value) -> Result<Retrieval, ApiError> {
        let request = ChatRequest::new("m", vec![ChatMessage::user("colour?")]);
        serde_json::from_value::<RagOptions>(value).unwrap().check(&request)
    }

    fn hit(id: pb::point_id::Kind, score: f32, payload: Value) -> pb::ScoredPoint {
        pb::ScoredPoint {
            id: Some(pb::PointId { kind: Some(id) }),
            score,
            payload: payload.as_object().map(to_proto_struct),
            vector: Vec::new(),
        }
    }

    #[test]
    fn options_default_and_bounds() {
        assert_eq!(
            options(json!({"collection": "docs"})).unwrap(),
            Retrieval { collection: "docs".into(), top_k: 4, min_score: None, question: "colour?".into() }
        );
        assert_eq!(options(json!({"collection": "docs", "top_k": 20, "min_score": 0.5})).unwrap().top_k, 20);
        for top_k in [0_u64, 21, u64::from(u32::MAX) + 1] {
            let error = options(json!({"collection": "docs", "top_k": top_k})).unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
            assert_eq!(error.detail(), "rag.top_k: must be between 1 and 20");
        }
        let error = options(json!({"collection": ""})).unwrap_err();
        assert_eq!(error.detail(), "rag.collection: must not be empty");
        assert!(serde_json::from_value::<RagOptions>(json!({"collection": "a", "k": 3})).is_err());
    }

    #[test]
    fn the_question_is_the_last_user_message() {
        let request = ChatRequest::new(
            "m",
            vec![ChatMessage::user("first"), ChatMessage::assistant("reply"), ChatMessage::user("second")],
        );
        assert_eq!(question(&request).unwrap(), "second");
        let no_user = ChatRequest::new("m", vec![ChatMessage::system("be brief")]);
        assert_eq!(question(&no_user).unwrap_err().detail(), "rag: needs a user message to search with");
        let blank = ChatRequest::new("m", vec![ChatMessage::user("  ")]);
        assert_eq!(blank.messages.len(), 1);
        assert!(question(&blank).unwrap_err().detail().starts_with("rag: the last user message is blank"));
    }

    #[test]
    fn passages_come_from_the_stored_text_in_order() {
        let hits = vec![
            hit(
                pb::point_id::Kind::Str("doc-1".into()),
                0.9,
                json!({"text": "Teal is a colour.", "lang": "en"}),
            ),
            hit(pb::point_id::Kind::Num(7), 0.8, json!({"lang": "en"})),
            hit(pb::point_id::Kind::Num(8), 0.7, json!({"text": "Rex is a dog."})),
            hit(pb::point_id::Kind::Num(9), 0.2, json!({"text": "Far away."})),
        ];
        let passages = passages_of(hits.clone(), None);
        let ids: Vec<PassageId> = passages.iter().map(|passage| passage.id.clone()).collect();
        assert_eq!(ids, [PassageId::Str("doc-1".into()), PassageId::Num(8), PassageId::Num(9)]);
        assert_eq!(passages[1].text, "Rex is a dog.");
        assert_eq!(passages_of(hits, Some(0.5)).len(), 2);
        assert_eq!(
            serde_json::to_value(&passages[0]).unwrap(),
            json!({"id": "doc-1", "score": 0.9_f32, "text": "Teal is a colour."})
        );
    }

    #[test]
    fn passages_follow_the_callers_system_messages() {
        let passages = vec![
            Passage { id: PassageId::Str("doc-1".into()), score: 0.9, text: "Teal is a colour.\n".into() },
            Passage { id: PassageId::Num(8), score: 0.7, text: "Rex is a dog.".into() },
        ];
        let request =
            ChatRequest::new("m", vec![ChatMessage::system("be brief"), ChatMessage::user("colour?")]);
        let prompted = with_passages(&request, &passages);
        assert_eq!(prompted.messages.len(), 3);
        assert_eq!(prompted.messages[0].content, "be brief");
        assert_eq!(
            prompted.messages[1],
            ChatMessage::system(
                "Use the following passages to answer. Cite them by [n].\n[1] (id doc-1) Teal is a colour.\n[2] (id 8) Rex is a dog."
            )
        );
        assert_eq!(prompted.messages[2].content, "colour?");
        assert_eq!(with_passages(&request, &[]), request);
    }

    #[test]
    fn vector_errors_name_the_rag_field() {
        let missing = collection_error(ApiError::new(ServiceErrorCode::NotFound, "collection `x` not found"));
        assert_eq!(missing.code(), ServiceErrorCode::NotFound);
        assert_eq!(missing.detail(), "rag.collection: collection `x` not found");
        let bad_name = collection_error(ApiError::new(
            ServiceErrorCode::ValidationFailed,
            "collection: must be 1 to 64 characters of a-z, 0-9, `_` and `-`",
        ));
        assert_eq!(bad_name.detail(), "rag.collection: must be 1 to 64 characters of a-z, 0-9, `_` and `-`");
        let down = collection_error(ApiError::unavailable("vector"));
        assert_eq!(down.detail(), "vector unavailable");
    }
}
