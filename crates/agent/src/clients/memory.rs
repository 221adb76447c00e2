//! Long-term memory in the vector service: each owner's past exchanges are documents of the
//! collection `memory-<owner>` (created on first use), embedded by the vector service, recalled by
//! similarity to a new message. The worker calls the service with its own service token.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sutazai_proto::json::{from_proto_struct, to_proto_struct};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use tonic::transport::{Channel, Endpoint};

use super::token::{ServiceToken, TokenError};

/// Longest wait for one vector call (embedding on CPU included).
const VECTOR_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest owner kept readable in a collection name (`memory-` + 57 = the 64-character limit).
const MAX_READABLE_OWNER_CHARS: usize = 57;

/// Why memory could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    /// The vector service refused or failed the call.
    #[error("vector service: {message} ({code:?})")]
    Vector {
        /// The gRPC status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// No service token.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl MemoryError {
    /// Whether trying again later may succeed (an outage, an expired token), as opposed to a
    /// refusal that will repeat (a missing scope, a dimension mismatch).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Vector { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Unauthenticated
            ),
            Self::Token(error) => error.is_retryable(),
        }
    }
}

impl From<tonic::Status> for MemoryError {
    fn from(status: tonic::Status) -> Self {
        Self::Vector { code: status.code(), message: status.message().to_owned() }
    }
}

/// One exchange to remember.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exchange {
    /// The point id it is stored under.
    pub(crate) id: String,
    /// What the user said.
    pub(crate) user: String,
    /// What the assistant answered.
    pub(crate) assistant: String,
    /// Kept with the exchange; not used for recall.
    pub(crate) details: serde_json::Map<String, Value>,
}

/// A remembered exchange found again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recollection {
    /// Its point id.
    pub(crate) id: String,
    /// Its cosine similarity to the message it was recalled for (larger is closer).
    pub(crate) score: f32,
    /// What the user said.
    pub(crate) user: String,
    /// What the assistant answered.
    pub(crate) assistant: String,
}

/// The name of `owner`'s memory collection: `memory-<owner>` when the owner id is already a
/// valid collection name (user ids are UUIDs), else `memory-` and a SHA-256 prefix of the id.
pub(crate) fn collection_for(owner: &str) -> String {
    let readable = !owner.is_empty()
        && owner.chars().count() <= MAX_READABLE_OWNER_CHARS
        && owner.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '-'
                || character == '_'
        });
    if readable {
        return format!("memory-{owner}");
    }
    let digest = Sha256::digest(owner.as_bytes());
    let hex: String = digest.iter().take(20).map(|byte| format!("{byte:02x}")).collect();
    format!("memory-{hex}")
}

/// The text embedded for an exchange: both turns, so a later message similar to either recalls it.
pub(crate) fn exchange_text(user: &str, assistant: &str) -> String {
    format!("user: {user}\nassistant: {assistant}")
}

/// The vector service as memory.
#[derive(Debug, Clone)]
pub(crate) struct MemoryStore {
    rpc: VectorServiceClient<Channel>,
    token: Arc<ServiceToken>,
    dimension: u32,
}

impl MemoryStore {
    /// Memory in the vector service at `vector_url`, whose embedding model gives `dimension`
    /// components.
    pub(crate) fn new(
        vector_url: &str,
        token: Arc<ServiceToken>,
        dimension: u32,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(vector_url.to_owned())?
            .connect_timeout(Duration::from_millis(500))
            .timeout(VECTOR_CALL_TIMEOUT)
            .connect_lazy();
        Ok(Self { rpc: VectorServiceClient::new(channel), token, dimension })
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, MemoryError> {
        let token = self.token.bearer().await?;
        let mut request = tonic::Request::new(message);
        let authorization = format!("Bearer {token}").parse().map_err(|_| MemoryError::Vector {
            code: tonic::Code::Unauthenticated,
            message: "the service token is not a valid header value".to_owned(),
        })?;
        request.metadata_mut().insert("authorization", authorization);
        sutazai_kit::telemetry::inject_current(&mut sutazai_kit::telemetry::MetadataCarrier(
            request.metadata_mut(),
        ));
        Ok(request)
    }

    /// The `k` exchanges of `owner` most similar to `text`, best first; none before the first
    /// exchange is remembered (the collection is created then).
    pub(crate) async fn recall(
        &self,
        owner: &str,
        text: &str,
        k: u32,
    ) -> Result<Vec<Recollection>, MemoryError> {
        let collection = collection_for(owner);
        let request = self
            .request(pb::QueryDocumentsRequest {
                collection: collection.clone(),
                text: text.to_owned(),
                k,
                filter: None,
                with_payload: true,
            })
            .await?;
        match self.rpc.clone().query_documents(request).await {
            Ok(response) => Ok(response.into_inner().hits.iter().map(recollection).collect()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                self.create_collection(&collection).await?;
                Ok(Vec::new())
            }
            Err(status) => Err(status.into()),
        }
    }

    /// Stores `exchange` in `owner`'s memory.
    pub(crate) async fn remember(&self, owner: &str, exchange: &Exchange) -> Result<(), MemoryError> {
        let collection = collection_for(owner);
        let mut payload = exchange.details.clone();
        payload.insert("user".to_owned(), Value::String(exchange.user.clone()));
        payload.insert("assistant".to_owned(), Value::String(exchange.assistant.clone()));
        let document = pb::Document {
            id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Str(exchange.id.clone())) }),
            text: exchange_text(&exchange.user, &exchange.assistant),
            payload: Some(to_proto_struct(&payload)),
        };
        let upsert = || pb::UpsertDocumentsRequest {
            collection: collection.clone(),
            documents: vec![document.clone()],
        };
        match self.rpc.clone().upsert_documents(self.request(upsert()).await?).await {
            Ok(_) => Ok(()),
            // Deleted since it was last used (or never queried): create it and store again.
            Err(status) if status.code() == tonic::Code::NotFound => {
                self.create_collection(&collection).await?;
                self.rpc.clone().upsert_documents(self.request(upsert()).await?).await?;
                Ok(())
            }
            Err(status) => Err(status.into()),
        }
    }

    async fn create_collection(&self, collection: &str) -> Result<(), MemoryError> {
        let request = self
            .request(pb::CreateCollectionRequest {
                name: collection.to_owned(),
                dimension: self.dimension,
                metric: pb::DistanceMetric::Cosine.into(),
                index: None,
            })
            .await?;
        match self.rpc.clone().create_collection(request).await {
            Ok(_) => {
                tracing::info!(%collection, "created a memory collection");
                Ok(())
            }
            // Another task of the same owner created it first.
            Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(status) => Err(status.into()),
        }
    }
}

fn recollection(hit: &pb::ScoredPoint) -> Recollection {
    let id = match hit.id.as_ref().and_then(|id| id.kind.as_ref()) {
        Some(pb::point_id::Kind::Str(text)) => text.clone(),
        Some(pb::point_id::Kind::Num(number)) => number.to_string(),
        None => String::new(),
    };
    let payload = hit.payload.as_ref().map(from_proto_struct).unwrap_or_default();
    let field = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (user, assistant) = (field("user"), field("assistant"));
    // Written by something else than this worker: the embedded text is all there is.
    if user.is_empty() && assistant.is_empty() {
        return Recollection { id, score: hit.score, user: field("text"), assistant: String::new() };
    }
    Recollection { id, score: hit.score, user, assistant }
}

/// Details stored beside an exchange.
pub(crate) fn exchange_details(
    task_id: &str,
    conversation_id: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut details = serde_json::Map::new();
    details.insert("task_id".to_owned(), json!(task_id));
    if let Some(conversation_id) = conversation_id {
        details.insert("conversation_id".to_owned(), json!(conversation_id));
    }
    details.insert("remembered_at".to_owned(), json!(chrono::Utc::now().to_rfc3339()));
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_owners_keep_a_readable_collection_name() {
        let owner = "0193a5e2-7c1d-7b3e-9f00-1234567890ab";
        assert_eq!(collection_for(owner), format!("memory-{owner}"));
    }

    #[test]
    fn other_owners_are_hashed_into_a_valid_name() {
        let name = collection_for("Billing.Service");
        assert_eq!(name.len(), "memory-".len() + 40);
        assert!(name.chars().all(|character| character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || character == '-'));
        assert_ne!(name, collection_for("billing.service"));
        assert_eq!(name, collection_for("Billing.Service"));
        assert!(collection_for(&"a".repeat(58)).len() <= 64);
    }

    #[test]
    fn a_hit_without_turns_falls_back_to_its_text() {
        let mut payload = serde_json::Map::new();
        payload.insert("text".to_owned(), json!("an imported note"));
        let hit = pb::ScoredPoint {
            id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Num(7)) }),
            score: 0.5,
            payload: Some(to_proto_struct(&payload)),
            vector: Vec::new(),
        };
        assert_eq!(
            recollection(&hit),
            Recollection {
                id: "7".to_owned(),
                score: 0.5,
                user: "an imported note".to_owned(),
                assistant: String::new()
            }
        );
    }
}
