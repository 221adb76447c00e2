//! Personal API keys: random `sk_` keys shown once, stored as hashes, listed by prefix, revoked by
//! id. Introspection accepts them like access tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sutazai_kit::auth::{Principal, PrincipalKind};
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{AuthService, RequestContext};
use crate::domain::secrets::{API_KEY_PREFIX, random_token, token_hash};
use crate::error::AuthError;

/// A key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyView {
    /// Key id.
    pub id: Uuid,
    /// The owner's label.
    pub name: String,
    /// The first characters, to recognise it.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new key: `key` is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedApiKey {
    /// The key's listing.
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key.
    pub key: String,
}

#[derive(sqlx::FromRow)]
struct KeyOwnerRow {
    user_id: Uuid,
    username: String,
    scopes: Vec<String>,
    active: bool,
}

impl AuthService {
    /// Creates a key for the caller with (a subset of) the caller's scopes.
    pub async fn create_api_key(
        &self,
        owner: &Principal,
        name: &str,
        scopes: Option<Vec<String>>,
        context: &RequestContext,
    ) -> Result<CreatedApiKey, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AuthError::Validation {
                field: "name",
                message: "must be 1 to 100 characters".to_owned(),
            });
        }
        let scopes = scopes.unwrap_or_else(|| owner.scopes.clone());
        if let Some(extra) = scopes.iter().find(|scope| !owner.has_scope(scope)) {
            return Err(AuthError::Validation {
                field: "scopes",
                message: format!("scope `{extra}` is not yours to grant"),
            });
        }
        let user_id =
            Uuid::parse_str(&owner.subject).map_err(|_| AuthError::Forbidden("only users have api keys"))?;
        let key = random_token(API_KEY_PREFIX);
        let prefix: String = key.chars().take(10).collect();
        let view = sqlx::query_as::<_, ApiKeyView>(
            "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, scopes) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, name, prefix, scopes, created_at, last_used_at",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(name)
        .bind(token_hash(&key))
        .bind(&prefix)
        .bind(&scopes)
        .fetch_one(&self.pool)
        .await?;
        let target = view.id.to_string();
        self.audit(
            context,
            AuditEvent::new("api_key_create", Some(&target), "success")
                .with_detail(json!({"prefix": prefix})),
        )
        .await;
        Ok(CreatedApiKey { view, key })
    }

    /// The caller's keys.
    pub async fn list_api_keys(&self, owner: &Principal) -> Result<Vec<ApiKeyView>, AuthError> {
        let user_id = Uuid::parse_str(&owner.subject).map_err(|_| AuthError::NotFound("api key"))?;
        Ok(sqlx::query_as::<_, ApiKeyView>(
            "SELECT id, name, prefix, scopes, created_at, last_used_at FROM api_keys
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes one of the caller's keys; another user's key is `NotFound`.
    pub async fn revoke_api_key(
        &self,
        owner: &Principal,
        key_id: Uuid,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let user_id = Uuid::parse_str(&owner.subject).map_err(|_| AuthError::NotFound("api key"))?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if revoked.rows_affected() == 0 {
            return Err(AuthError::NotFound("api key"));
        }
        let target = key_id.to_string();
        self.audit(context, AuditEvent::new("api_key_revoke", Some(&target), "success")).await;
        Ok(())
    }

    /// The principal of a valid API key.
    pub async fn principal_for_api_key(&self, key: &str) -> Result<Principal, AuthError> {
        let row: Option<KeyOwnerRow> = sqlx::query_as(
            "UPDATE api_keys k SET last_used_at = now() FROM users u
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.id = k.user_id
             RETURNING u.id AS user_id, u.username, k.scopes, u.active",
        )
        .bind(token_hash(key))
        .fetch_optional(&self.pool)
        .await?;
        let row = row.filter(|row| row.active).ok_or(AuthError::InvalidToken("invalid api key"))?;
        Ok(Principal {
            subject: row.user_id.to_string(),
            kind: PrincipalKind::User,
            name: row.username,
            // A key acts only within its scopes: the owner's roles (admin) do not come along.
            roles: Vec::new(),
            scopes: row.scopes,
            token_id: String::new(),
            expires_at: 0,
            session_id: None,
        })
    }
}
