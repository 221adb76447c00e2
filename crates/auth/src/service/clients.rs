//! Service accounts (client credentials) and RFC 7662 introspection.

use serde::Serialize;
use serde_json::json;
use sutazai_kit::auth::{Principal, PrincipalKind};

use super::audit::AuditEvent;
use super::{AccessSubject, AuthService, RequestContext};
use crate::domain::secrets::{constant_time_eq, random_token, token_hash};
use crate::error::AuthError;

/// A new service account: the secret is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedServiceAccount {
    /// The client id.
    pub client_id: String,
    /// The client secret (store it now; only its hash is kept).
    pub client_secret: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// RFC 7662 introspection response.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is valid now.
    pub active: bool,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Space-separated scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl Introspection {
    /// The answer for a valid token.
    pub fn of(principal: &Principal) -> Self {
        Self {
            active: true,
            sub: Some(principal.subject.clone()),
            username: Some(principal.name.clone()),
            scope: Some(principal.scopes.join(" ")),
            exp: Some(principal.expires_at),
            token_type: Some("Bearer".to_owned()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ServiceAccountRow {
    secret_hash: Vec<u8>,
    scopes: Vec<String>,
    active: bool,
}

fn check_client_id(client_id: &str) -> Result<(), AuthError> {
    let valid = (3..=64).contains(&client_id.len())
        && client_id.chars().all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character));
    if valid {
        Ok(())
    } else {
        Err(AuthError::Validation {
            field: "client_id",
            message: "must be 3 to 64 letters, digits, `_`, `-` or `.`".to_owned(),
        })
    }
}

impl AuthService {
    /// Creates a service account (admin).
    pub async fn create_service_account(
        &self,
        client_id: &str,
        scopes: Vec<String>,
        context: &RequestContext,
    ) -> Result<CreatedServiceAccount, AuthError> {
        check_client_id(client_id)?;
        let client_secret = random_token("cs_");
        let inserted = sqlx::query(
            "INSERT INTO service_accounts (client_id, secret_hash, scopes) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(token_hash(&client_secret))
        .bind(&scopes)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AuthError::Conflict(format!("service account `{client_id}` already exists")));
        }
        self.audit(
            context,
            AuditEvent::new("service_account_create", Some(client_id), "success")
                .with_detail(json!({"scopes": scopes})),
        )
        .await;
        Ok(CreatedServiceAccount { client_id: client_id.to_owned(), client_secret, scopes })
    }

    /// Issues a service token for valid client credentials, limited to the requested scopes.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scopes: Option<&str>,
        context: &RequestContext,
    ) -> Result<(String, u64, Vec<String>), AuthError> {
        let row: Option<ServiceAccountRow> =
            sqlx::query_as("SELECT secret_hash, scopes, active FROM service_accounts WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        let presented_hash = token_hash(client_secret);
        let Some(account) =
            row.filter(|account| account.active && constant_time_eq(&account.secret_hash, &presented_hash))
        else {
            self.audit(context, AuditEvent::new("client_credentials", Some(client_id), "failure")).await;
            return Err(AuthError::InvalidClient);
        };
        let scopes = match requested_scopes.map(str::split_whitespace) {
            None => account.scopes.clone(),
            Some(requested) => {
                let requested: Vec<String> = requested.map(str::to_owned).collect();
                if requested.iter().any(|scope| !account.scopes.contains(scope)) {
                    return Err(AuthError::Forbidden("a requested scope is not granted to this client"));
                }
                requested
            }
        };
        let roles = vec!["service".to_owned()];
        let (token, expires_in) = self.issue_access_token(AccessSubject {
            subject: client_id,
            kind: PrincipalKind::Service,
            name: client_id,
            roles: &roles,
            scopes: &scopes,
            version: 0,
            session_id: None,
        })?;
        metrics::counter!("auth_service_tokens_total").increment(1);
        Ok((token, expires_in, scopes))
    }
}
