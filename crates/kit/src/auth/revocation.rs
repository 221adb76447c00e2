//! Where revocations live in Redis, shared by the auth service (writer) and every verifier
//! (reader), so a logout or a password change is seen by all services at once.

use crate::redis::RedisKeys;

/// Redis key prefix of the auth service (`auth:`).
pub const AUTH_KEY_PREFIX: &str = "auth:";

/// Key names of revocation state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationKeys {
    keys: RedisKeys,
}

impl RevocationKeys {
    /// Keys under the configured Redis prefix plus `auth:`.
    pub fn new(settings: &crate::config::RedisSettings) -> Self {
        Self { keys: RedisKeys::new(settings, AUTH_KEY_PREFIX) }
    }

    /// Present while the access token `jti` is revoked (expires with the token).
    pub fn revoked_token(&self, jti: &str) -> String {
        self.keys.key(&format!("revoked:{jti}"))
    }

    /// The subject's current token version; tokens whose `ver` is lower are dead.
    pub fn token_version(&self, subject: &str) -> String {
        self.keys.key(&format!("token_version:{subject}"))
    }
}
