//! Chat history per user. A chat call without a `conversation_id` starts a conversation titled by
//! its first user message; with one, it appends — but only to the caller's own conversations:
//! another user's id is indistinguishable from a missing one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;

/// A stored message.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StoredMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A conversation in a list.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ConversationSummary {
    /// Conversation id.
    pub id: Uuid,
    /// The start of its first user message.
    pub title: String,
    /// The model of its latest exchange.
    pub model: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last exchange.
    pub updated_at: DateTime<Utc>,
}

/// A conversation with its messages.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: ConversationSummary,
    /// Messages, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// Postgres-backed conversations.
#[derive(Debug, Clone)]
pub struct ConversationStore {
    pool: PgPool,
}

const TITLE_CHARS: usize = 80;

impl ConversationStore {
    /// A store on the gateway's pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Appends `messages` (role, content) to the caller's conversation, creating it when `id` is
    /// `None`. Returns the conversation id, or `None` when `id` is not the caller's.
    pub async fn append(
        &self,
        owner: &str,
        id: Option<Uuid>,
        model: &str,
        messages: &[(String, String)],
    ) -> Result<Option<Uuid>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let conversation_id = match id {
            Some(id) => {
                let updated = sqlx::query(
                    "UPDATE conversations SET updated_at = now(), model = $3 WHERE id = $1 AND owner = $2",
                )
                .bind(id)
                .bind(owner)
                .bind(model)
                .execute(&mut *transaction)
                .await?;
                if updated.rows_affected() == 0 {
                    return Ok(None);
                }
                id
            }
            None => {
                let first_user =
                    messages.iter().find(|(role, _)| role == "user").map(|(_, text)| text.as_str());
                let title: String = first_user.unwrap_or("conversation").chars().take(TITLE_CHARS).collect();
                let id = Uuid::now_v7();
                sqlx::query("INSERT INTO conversations (id, owner, title, model) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(owner)
                    .bind(title)
                    .bind(model)
                    .execute(&mut *transaction)
                    .await?;
                id
            }
        };
        for (role, content) in messages {
            sqlx::query(
                "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, $2, $3)",
            )
            .bind(conversation_id)
            .bind(role)
            .bind(content)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(Some(conversation_id))
    }

    /// The caller's conversations, most recent first.
    pub async fn list(
        &self,
        owner: &str,
        skip: i64,
        limit: i64,
    ) -> Result<(Vec<ConversationSummary>, i64), StoreError> {
        let items = sqlx::query_as::<_, ConversationSummary>(
            "SELECT id, title, model, created_at, updated_at FROM conversations WHERE owner = $1
             ORDER BY updated_at DESC OFFSET $2 LIMIT $3",
        )
        .bind(owner)
        .bind(skip)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations WHERE owner = $1")
            .bind(owner)
            .fetch_one(&self.pool)
            .await?;
        Ok((items, total))
    }

    /// One of the caller's conversations.
    pub async fn get(&self, owner: &str, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let summary = sqlx::query_as::<_, ConversationSummary>(
            "SELECT id, title, model, created_at, updated_at FROM conversations WHERE id = $1 AND owner = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        let Some(summary) = summary else { return Ok(None) };
        let messages = sqlx::query_as::<_, StoredMessage>(
            "SELECT role, content, created_at FROM conversation_messages WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Conversation { summary, messages }))
    }

    /// Deletes one of the caller's conversations; false when there is none.
    pub async fn delete(&self, owner: &str, id: Uuid) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }
}
