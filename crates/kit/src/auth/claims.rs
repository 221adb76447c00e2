//! The access-token contract between the auth service (which signs) and every verifier: the JWT
//! claims, the token type, and the principal a verified token yields.

use serde::{Deserialize, Serialize};

/// The `typ` claim of an access token. Refresh tokens and API keys are opaque strings, never JWTs,
/// so a refresh token can not pass as an access token.
pub const ACCESS_TOKEN_TYPE: &str = "access";

/// The JOSE header `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_HEADER_TYPE: &str = "at+jwt";

/// Who a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person who logged in.
    User,
    /// A service account (client credentials).
    Service,
}

/// The claims of a SutazAI access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer, the auth service's configured URL.
    pub iss: String,
    /// Audience, the platform's configured audience.
    pub aud: String,
    /// Subject: the user id or the service account's client id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Unique token id; revoking it kills this token only.
    pub jti: String,
    /// Always [`ACCESS_TOKEN_TYPE`].
    pub typ: String,
    /// User or service.
    pub kind: PrincipalKind,
    /// Display name (username or client id).
    pub name: String,
    /// Roles, e.g. `admin`, `user`.
    pub roles: Vec<String>,
    /// Scopes, e.g. `tasks:write`.
    pub scopes: Vec<String>,
    /// The subject's token version when the token was issued. A password change, logout-all or a
    /// deactivation raises the version, which invalidates every earlier token of the subject.
    pub ver: u64,
    /// The login session (refresh-token family) the token belongs to; logout revokes it. Absent
    /// for service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The caller a verified token identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The `sub` claim.
    pub subject: String,
    /// User or service.
    pub kind: PrincipalKind,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The token id, for logout.
    pub token_id: String,
    /// Token expiry, Unix seconds.
    pub expires_at: i64,
    /// The login session, for logout.
    pub session_id: Option<String>,
}

/// The role that may do everything.
pub const ADMIN_ROLE: &str = "admin";

impl Principal {
    /// Builds the principal of verified claims.
    pub fn from_claims(claims: AccessClaims) -> Self {
        Self {
            subject: claims.sub,
            kind: claims.kind,
            name: claims.name,
            roles: claims.roles,
            scopes: claims.scopes,
            token_id: claims.jti,
            expires_at: claims.exp,
            session_id: claims.sid,
        }
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// Whether the principal holds `scope` (admins hold every scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.is_admin() || self.scopes.iter().any(|held| held == scope)
    }
}
