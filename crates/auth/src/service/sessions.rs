//! Login sessions: password login with lockout, throttling and TOTP; refresh-token rotation with
//! reuse detection and a grace window; logout.
//!
//! Refresh tokens form families, one per login. Each refresh marks the presented token used and
//! returns its successor. Presenting a used token again within the grace window returns the same
//! successor (a client retrying a request whose answer it lost); presenting it later, or after its
//! successor was itself used, is token theft in the worst case, so the whole family is revoked.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sutazai_kit::auth::{Principal, PrincipalKind};
use uuid::Uuid;

use super::accounts::{USER_COLUMNS, UserRow};
use super::audit::AuditEvent;
use super::throttle::{Budget, account_subject};
use super::{AccessSubject, AuthService, RequestContext, refresh_ttl};
use crate::domain::password::{verify_nothing, verify_password};
use crate::domain::secrets::{REFRESH_PREFIX, random_token, refresh_successor, token_hash};
use crate::domain::totp;
use crate::error::AuthError;

/// A password login.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// Username or email, case-insensitive.
    pub username_or_email: String,
    /// The password.
    pub password: String,
    /// The current TOTP code, for accounts with MFA.
    pub totp: Option<String>,
}

/// What a login or refresh returns.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    family_revoked_at: Option<DateTime<Utc>>,
    /// Whether `used_at` lies within the grace window, by the database's clock (the one that
    /// wrote `used_at`).
    within_grace: Option<bool>,
    /// The family's user, read with the token so a refresh costs one query fewer.
    #[sqlx(flatten)]
    user: UserRow,
}

impl AuthService {
    /// Logs a user in.
    pub async fn login(
        &self,
        request: LoginRequest,
        context: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let mut budgets: Vec<Budget> = self.ip_budget("login_ip", context.client_ip).into_iter().collect();
        budgets.push(self.account_budget("login_name", account_subject(&request.username_or_email)));
        self.charge(&budgets).await?;
        let Some(user) = self.find_user_by_login(&request.username_or_email).await? else {
            let password = request.password;
            self.blocking(move || verify_nothing(&password)).await?;
            self.audit(
                context,
                AuditEvent::new("login", None, "failure").with_detail(json!({"reason": "unknown_user"})),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        };
        let target = user.id.to_string();
        // The typed name and the email of one account share this budget.
        self.charge(&[self.account_budget("login_user", target.clone())]).await?;
        if let Some(locked) = self.locked(&user, context).await {
            return Err(locked);
        }
        let password = request.password;
        let stored_hash = user.password_hash.clone();
        let password_matches = self.blocking(move || verify_password(&password, &stored_hash)).await?;
        if !password_matches || !user.active {
            let reason = if user.active { "wrong_password" } else { "inactive" };
            self.record_login_failure(&user).await?;
            self.audit(
                context,
                AuditEvent::new("login", Some(&target), "failure").with_detail(json!({"reason": reason})),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        // Re-read the lock: parallel guesses evaluated before the lock landed must not get in.
        let current = self.find_user_by_id(user.id).await?.ok_or(AuthError::InvalidCredentials)?;
        if let Some(locked) = self.locked(&current, context).await {
            return Err(locked);
        }
        if current.mfa_enabled && !self.accept_totp(&current, request.totp.as_deref()).await? {
            // Wrong codes count toward the lockout, or a stolen password would allow code guessing.
            self.record_login_failure(&current).await?;
            self.audit(
                context,
                AuditEvent::new("login", Some(&target), "failure").with_detail(json!({"reason": "mfa"})),
            )
            .await;
            return Err(AuthError::MfaRequired);
        }
        let user = current;
        sqlx::query("DELETE FROM login_failures WHERE user_id = $1")
            .bind(user.id)
            .execute(&self.pool)
            .await?;
        let pair = self.start_session(&user).await?;
        self.audit(context, AuditEvent::new("login", Some(&target), "success")).await;
        metrics::counter!("auth_logins_total").increment(1);
        Ok(pair)
    }

    /// `Locked` (audited) while the account's lock lasts.
    async fn locked(&self, user: &UserRow, context: &RequestContext) -> Option<AuthError> {
        let locked_until = user.locked_until.filter(|until| *until > Utc::now())?;
        let target = user.id.to_string();
        self.audit(
            context,
            AuditEvent::new("login", Some(&target), "denied").with_detail(json!({"reason": "locked"})),
        )
        .await;
        Some(AuthError::Locked { retry_after_s: seconds_until(locked_until) })
    }

    /// Counts a failure and locks the account once the window holds the maximum.
    pub(super) async fn record_login_failure(&self, user: &UserRow) -> Result<(), AuthError> {
        let window_s = self.settings.lockout_window_s as f64;
        let mut transaction = self.pool.begin().await?;
        // The row lock serializes concurrent failures of one account, so the count that decides
        // the lock sees every earlier failure.
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user.id)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("INSERT INTO login_failures (user_id) VALUES ($1)")
            .bind(user.id)
            .execute(&mut *transaction)
            .await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM login_failures WHERE user_id = $1 AND failed_at > now() - make_interval(secs => $2)",
        )
        .bind(user.id)
        .bind(window_s)
        .fetch_one(&mut *transaction)
        .await?;
        if recent >= i64::from(self.settings.lockout_max_failures) {
            // The lock starts now and is not shortened by a later correct password.
            sqlx::query("UPDATE users SET locked_until = now() + make_interval(secs => $2) WHERE id = $1")
                .bind(user.id)
                .bind(self.settings.lockout_duration_s as f64)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM login_failures WHERE user_id = $1")
                .bind(user.id)
                .execute(&mut *transaction)
                .await?;
            tracing::warn!(user_id = %user.id, "account locked after repeated failed logins");
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Checks a TOTP code and consumes its step, atomically, so a code works once.
    pub(super) async fn accept_totp(&self, user: &UserRow, code: Option<&str>) -> Result<bool, AuthError> {
        let (Some(code), Some(sealed)) = (code, user.totp_secret_enc.as_ref()) else { return Ok(false) };
        let secret = self.totp_box.open(sealed).map_err(AuthError::internal)?;
        let Some(step) = totp::accept(&secret, code, Utc::now().timestamp(), user.totp_last_step) else {
            return Ok(false);
        };
        let consumed = sqlx::query(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(user.id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(consumed.rows_affected() == 1)
    }

    /// Opens a refresh family and issues the first pair.
    async fn start_session(&self, user: &UserRow) -> Result<TokenPair, AuthError> {
        let family_id = Uuid::now_v7();
        let refresh_token = random_token(REFRESH_PREFIX);
        let mut transaction = self.pool.begin().await?;
        sqlx::query("INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)")
            .bind(family_id)
            .bind(user.id)
            .execute(&mut *transaction)
            .await?;
        self.insert_refresh_token(&mut transaction, &refresh_token, family_id, None).await?;
        transaction.commit().await?;
        if user.token_version > 0 {
            self.publish_token_version(&user.id.to_string(), user.token_version).await?;
        }
        self.pair_for(user, family_id, refresh_token)
    }

    async fn insert_refresh_token(
        &self,
        transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        token: &str,
        family_id: Uuid,
        parent: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        let ttl_s = refresh_ttl(&self.settings).as_secs_f64();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, parent_hash, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        )
        .bind(token_hash(token))
        .bind(family_id)
        .bind(parent)
        .bind(ttl_s)
        .execute(&mut **transaction)
        .await?;
        Ok(())
    }

    fn pair_for(
        &self,
        user: &UserRow,
        family_id: Uuid,
        refresh_token: String,
    ) -> Result<TokenPair, AuthError> {
        let subject = user.id.to_string();
        let session = family_id.to_string();
        let scopes = user.effective_scopes();
        let (access_token, expires_in) = self.issue_access_token(AccessSubject {
            subject: &subject,
            kind: PrincipalKind::User,
            name: &user.username,
            roles: &user.roles,
            scopes: &scopes,
            version: user.version(),
            session_id: Some(&session),
        })?;
        Ok(TokenPair { access_token, refresh_token, token_type: "bearer", expires_in })
    }

    /// Exchanges a refresh token for a new pair (see the module doc for the rotation rules).
    pub async fn refresh(&self, presented: &str, context: &RequestContext) -> Result<TokenPair, AuthError> {
        const INVALID: AuthError = AuthError::InvalidToken("invalid refresh token");
        if !presented.starts_with(REFRESH_PREFIX) {
            return Err(INVALID);
        }
        let presented_hash = token_hash(presented);
        let mut transaction = self.pool.begin().await?;
        // The row lock serializes concurrent refreshes of one token, so exactly one rotates it.
        let user_columns =
            USER_COLUMNS.split(", ").map(|column| format!("u.{}", column.trim())).collect::<Vec<_>>();
        let row: Option<RefreshRow> = sqlx::query_as(&format!(
            "SELECT t.family_id, t.expires_at, t.used_at, t.revoked_at, f.revoked_at AS family_revoked_at,
                    t.used_at > now() - make_interval(secs => $2) AS within_grace, {}
             FROM refresh_tokens t
             JOIN refresh_families f ON f.id = t.family_id
             JOIN users u ON u.id = f.user_id
             WHERE t.token_hash = $1 FOR UPDATE OF t",
            user_columns.join(", ")
        ))
        .bind(&presented_hash)
        .bind(self.settings.refresh_grace_s as f64)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else { return Err(INVALID) };
        if row.family_revoked_at.is_some() || row.revoked_at.is_some() {
            return Err(AuthError::InvalidToken("refresh token revoked"));
        }
        let now = Utc::now();
        if row.expires_at <= now {
            return Err(AuthError::InvalidToken("refresh token expired"));
        }
        let successor = refresh_successor(&self.refresh_key, presented);
        match row.used_at {
            None => {
                // Marking the token used and inserting its successor is one statement (one round
                // trip): refresh is the hottest write path of the service.
                sqlx::query(
                    "WITH marked AS (
                         UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1 RETURNING family_id
                     )
                     INSERT INTO refresh_tokens (token_hash, family_id, parent_hash, expires_at)
                     SELECT $2, family_id, $1, now() + make_interval(secs => $3) FROM marked",
                )
                .bind(&presented_hash)
                .bind(token_hash(&successor))
                .bind(refresh_ttl(&self.settings).as_secs_f64())
                .execute(&mut *transaction)
                .await?;
            }
            Some(_) => {
                let within_grace = row.within_grace == Some(true);
                let successor_unused: Option<bool> =
                    sqlx::query_scalar("SELECT used_at IS NULL FROM refresh_tokens WHERE token_hash = $1")
                        .bind(token_hash(&successor))
                        .fetch_optional(&mut *transaction)
                        .await?;
                if !(within_grace && successor_unused == Some(true)) {
                    sqlx::query(
                        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = 'reuse' WHERE id = $1",
                    )
                    .bind(row.family_id)
                    .execute(&mut *transaction)
                    .await?;
                    transaction.commit().await?;
                    let family = row.family_id.to_string();
                    self.audit(
                        context,
                        AuditEvent::new("refresh_reuse", Some(&row.user.id.to_string()), "denied")
                            .with_detail(json!({"family": family})),
                    )
                    .await;
                    metrics::counter!("auth_refresh_reuse_total").increment(1);
                    return Err(AuthError::InvalidToken("refresh token reuse detected; session revoked"));
                }
            }
        }
        if !row.user.active {
            return Err(INVALID);
        }
        transaction.commit().await?;
        metrics::counter!("auth_refreshes_total").increment(1);
        self.pair_for(&row.user, row.family_id, successor)
    }

    /// Logs out: the presented access token and its session's refresh family die.
    pub async fn logout(&self, principal: &Principal, context: &RequestContext) -> Result<(), AuthError> {
        self.revoke_access_token(&principal.token_id, principal.expires_at).await?;
        if let Some(session) = principal.session_id.as_deref().and_then(|id| Uuid::parse_str(id).ok()) {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = now(), revoked_reason = 'logout' WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(session)
            .execute(&self.pool)
            .await?;
        }
        self.audit(context, AuditEvent::new("logout", Some(&principal.subject), "success")).await;
        Ok(())
    }
}

fn seconds_until(moment: DateTime<Utc>) -> u64 {
    let remaining_ms = (moment - Utc::now()).num_milliseconds().max(0);
    u64::try_from(remaining_ms).unwrap_or(0).div_ceil(1000).max(1)
}
