//! Accounts: registration, the caller's own profile, password changes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{AuthService, RequestContext, USER_SCOPES};
use crate::domain::password::{check_new_password, hash_password, verify_password};
use crate::error::AuthError;

/// A user as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: Uuid,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) password_hash: String,
    pub(super) roles: Vec<String>,
    pub(super) scopes: Vec<String>,
    pub(super) active: bool,
    pub(super) token_version: i64,
    pub(super) locked_until: Option<DateTime<Utc>>,
    pub(super) mfa_enabled: bool,
    pub(super) totp_secret_enc: Option<Vec<u8>>,
    pub(super) totp_last_step: Option<i64>,
    pub(super) created_at: DateTime<Utc>,
}

pub(super) const USER_COLUMNS: &str = "id, username, email, password_hash, roles, scopes, active, token_version, \
     locked_until, mfa_enabled, totp_secret_enc, totp_last_step, created_at";

/// A user as shown to clients: never a password or hash field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserView {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes (from the roles plus any granted).
    pub scopes: Vec<String>,
    /// Whether the account may log in.
    pub active: bool,
    /// Whether TOTP is on.
    pub mfa_enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// 3..64 characters of letters, digits, `_`, `-`, `.`.
    pub username: String,
    /// An email address.
    pub email: String,
    /// The password (checked against the policy).
    pub password: String,
    /// Roles (registration always gives `user`; admins may set others).
    pub roles: Vec<String>,
}

impl UserRow {
    pub(super) fn effective_scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = USER_SCOPES.iter().map(|scope| (*scope).to_owned()).collect();
        for scope in &self.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes
    }

    pub(super) fn view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            email: self.email.clone(),
            roles: self.roles.clone(),
            scopes: self.effective_scopes(),
            active: self.active,
            mfa_enabled: self.mfa_enabled,
            created_at: self.created_at,
        }
    }

    pub(super) fn version(&self) -> u64 {
        u64::try_from(self.token_version).unwrap_or(0)
    }
}

fn check_username(username: &str) -> Result<(), AuthError> {
    let valid_chars =
        username.chars().all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character));
    if !(3..=64).contains(&username.chars().count()) || !valid_chars {
        return Err(AuthError::Validation {
            field: "username",
            message: "must be 3 to 64 letters, digits, `_`, `-` or `.`".to_owned(),
        });
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), AuthError> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        }
        None => false,
    };
    if !valid || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(AuthError::Validation { field: "email", message: "must be an email address".to_owned() });
    }
    Ok(())
}

fn password_error(rule: crate::domain::password::PasswordRule) -> AuthError {
    AuthError::Validation { field: "password", message: rule.to_string() }
}

impl AuthService {
    /// Creates an account. Duplicate username or email → `Conflict`.
    pub async fn register(&self, new_user: NewUser, context: &RequestContext) -> Result<UserView, AuthError> {
        let username = new_user.username.trim().to_owned();
        let email = new_user.email.trim().to_owned();
        check_username(&username)?;
        check_email(&email)?;
        check_new_password(&new_user.password, &username).map_err(password_error)?;
        if let Some(budget) = self.ip_budget("register_ip", context.client_ip) {
            self.charge(&[budget]).await?;
        }
        let password = new_user.password;
        let password_hash =
            self.blocking(move || hash_password(&password)).await?.map_err(AuthError::internal)?;
        let roles = if new_user.roles.is_empty() { vec!["user".to_owned()] } else { new_user.roles };
        let inserted = sqlx::query_as::<_, UserRow>(&format!(
            "INSERT INTO users (id, username, email, password_hash, roles) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&username)
        .bind(&email)
        .bind(&password_hash)
        .bind(&roles)
        .fetch_optional(&self.pool)
        .await?;
        let Some(user) = inserted else {
            self.audit(
                context,
                AuditEvent::new("register", None, "failure").with_detail(json!({"reason": "duplicate"})),
            )
            .await;
            return Err(AuthError::Conflict("username or email already registered".to_owned()));
        };
        let target = user.id.to_string();
        self.audit(
            context,
            AuditEvent::new("register", Some(&target), "success").with_detail(json!({"roles": roles})),
        )
        .await;
        Ok(user.view())
    }

    pub(super) async fn find_user_by_id(&self, user_id: Uuid) -> Result<Option<UserRow>, AuthError> {
        Ok(sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(super) async fn find_user_by_login(
        &self,
        username_or_email: &str,
    ) -> Result<Option<UserRow>, AuthError> {
        let lowered = username_or_email.trim().to_lowercase();
        Ok(sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = $1 OR lower(email) = $1 LIMIT 1"
        ))
        .bind(lowered)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user behind a subject id.
    pub async fn user(&self, subject: &str) -> Result<UserView, AuthError> {
        let user_id = Uuid::parse_str(subject).map_err(|_| AuthError::NotFound("user"))?;
        self.find_user_by_id(user_id).await?.map(|user| user.view()).ok_or(AuthError::NotFound("user"))
    }

    /// The user with `username` (case-insensitive).
    pub async fn user_by_username(&self, username: &str) -> Result<UserView, AuthError> {
        let user = sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        user.map(|user| user.view()).ok_or(AuthError::NotFound("user"))
    }

    /// Changes the caller's password; every token issued before dies.
    pub async fn change_password(
        &self,
        subject: &str,
        old_password: String,
        new_password: String,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let user_id = Uuid::parse_str(subject).map_err(|_| AuthError::NotFound("user"))?;
        let user = self.find_user_by_id(user_id).await?.ok_or(AuthError::NotFound("user"))?;
        let stored_hash = user.password_hash.clone();
        let old_matches = self.blocking(move || verify_password(&old_password, &stored_hash)).await?;
        if !old_matches {
            // Counted like a failed login, so a stolen access token cannot guess the password.
            self.record_login_failure(&user).await?;
            self.audit(context, AuditEvent::new("password_change", Some(subject), "failure")).await;
            return Err(AuthError::Validation {
                field: "old_password",
                message: "is not the current password".to_owned(),
            });
        }
        check_new_password(&new_password, &user.username).map_err(password_error)?;
        let new_hash =
            self.blocking(move || hash_password(&new_password)).await?.map_err(AuthError::internal)?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = now()
             WHERE id = $1 RETURNING token_version",
        )
        .bind(user_id)
        .bind(&new_hash)
        .fetch_one(&self.pool)
        .await?;
        self.revoke_all_sessions(user_id, "password_change").await?;
        self.publish_token_version(subject, version).await?;
        self.audit(context, AuditEvent::new("password_change", Some(subject), "success")).await;
        Ok(())
    }

    /// Revokes every refresh family of a user.
    pub(super) async fn revoke_all_sessions(&self, user_id: Uuid, reason: &str) -> Result<(), AuthError> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
