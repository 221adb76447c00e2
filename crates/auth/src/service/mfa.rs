//! TOTP multi-factor: enroll (a pending secret and its otpauth URI), confirm with a first code,
//! disable with a current code. The secret is stored encrypted with the master key.

use serde::Serialize;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{AuthService, RequestContext};
use crate::domain::totp;
use crate::error::AuthError;

/// What enrolment returns: shown once, for the authenticator app.
#[derive(Debug, Clone, Serialize)]
pub struct MfaEnrollment {
    /// `otpauth://totp/...` (render as a QR code).
    pub otpauth_uri: String,
    /// The base32 secret, for manual entry.
    pub secret: String,
}

fn invalid_code() -> AuthError {
    AuthError::Validation { field: "code", message: "invalid or already used TOTP code".to_owned() }
}

impl AuthService {
    /// Starts enrolment with a fresh secret (replacing an unconfirmed one).
    pub async fn mfa_enroll(
        &self,
        subject: &str,
        context: &RequestContext,
    ) -> Result<MfaEnrollment, AuthError> {
        let user = self.user_row(subject).await?;
        if user.mfa_enabled {
            return Err(AuthError::Conflict("mfa is already enabled".to_owned()));
        }
        let secret = totp::new_secret();
        sqlx::query("UPDATE users SET totp_secret_enc = $2, totp_last_step = NULL WHERE id = $1")
            .bind(user.id)
            .bind(self.totp_box.seal(&secret))
            .execute(&self.pool)
            .await?;
        self.audit(context, AuditEvent::new("mfa_enroll", Some(subject), "success")).await;
        Ok(MfaEnrollment {
            otpauth_uri: totp::otpauth_uri("SutazAI", &user.username, &secret),
            secret: totp::base32(&secret),
        })
    }

    /// Turns MFA on once the user proves the app has the secret.
    pub async fn mfa_confirm(
        &self,
        subject: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        self.switch_mfa(subject, code, true, context).await
    }

    /// Turns MFA off; needs a current code.
    pub async fn mfa_disable(
        &self,
        subject: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        self.switch_mfa(subject, code, false, context).await
    }

    /// Both directions need a valid, unused code for the stored secret.
    async fn switch_mfa(
        &self,
        subject: &str,
        code: &str,
        enable: bool,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let action = if enable { "mfa_confirm" } else { "mfa_disable" };
        let user = self.user_row(subject).await?;
        match (enable, user.mfa_enabled, user.totp_secret_enc.is_some()) {
            (true, true, _) => return Err(AuthError::Conflict("mfa is already enabled".to_owned())),
            (true, false, false) => return Err(AuthError::Conflict("start enrolment first".to_owned())),
            (false, false, _) => return Err(AuthError::Conflict("mfa is not enabled".to_owned())),
            _ => {}
        }
        if !self.accept_totp(&user, Some(code)).await? {
            self.audit(context, AuditEvent::new(action, Some(subject), "failure")).await;
            return Err(invalid_code());
        }
        let statement = if enable {
            "UPDATE users SET mfa_enabled = TRUE WHERE id = $1"
        } else {
            "UPDATE users SET mfa_enabled = FALSE, totp_secret_enc = NULL WHERE id = $1"
        };
        sqlx::query(statement).bind(user.id).execute(&self.pool).await?;
        self.audit(context, AuditEvent::new(action, Some(subject), "success")).await;
        Ok(())
    }

    pub(super) async fn user_row(&self, subject: &str) -> Result<super::accounts::UserRow, AuthError> {
        let user_id = Uuid::parse_str(subject).map_err(|_| AuthError::NotFound("user"))?;
        self.find_user_by_id(user_id).await?.ok_or(AuthError::NotFound("user"))
    }
}
