//! The access-token verifier every service uses. Checks, in order, each one before anything that
//! depends on it:
//!
//! 1. shape and size, then the JOSE header: `alg` is EdDSA or RS256 (never `none`, never HMAC),
//!    `typ` is `at+jwt`, no `jku`/`jwk`/`x5u`/`x5c`/`crit` (keys are never taken from the token),
//!    and a `kid` of `[A-Za-z0-9_-]{1,64}`, checked before any lookup;
//! 2. the key named by `kid` (one rate-limited refresh if unknown), which must be for the header's
//!    algorithm — a key's algorithm comes from its type, never from the token;
//! 3. the signature, then `iss`, `aud` exactly, `exp` and `nbf` with the configured leeway;
//! 4. the `typ` claim is `access`;
//! 5. revocation in Redis: the `jti` is not revoked and `ver` is not below the subject's version.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use redis::aio::ConnectionManager;
use serde::Deserialize;

use super::claims::{ACCESS_TOKEN_HEADER_TYPE, ACCESS_TOKEN_TYPE, AccessClaims, Principal};
use super::error::{AuthError, InvalidTokenReason, RevocationReason};
use super::keys::{KeySource, KeySourceError, VerificationKey, is_valid_key_id};
use super::revocation::RevocationKeys;
use crate::config::{ConfigIssues, Validate, key};

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// Default shortest time between two JWKS fetches.
pub const DEFAULT_JWKS_REFRESH_MIN_INTERVAL_MS: u64 = 5_000;
/// Default age after which cached keys are refreshed.
pub const DEFAULT_JWKS_MAX_AGE_MS: u64 = 300_000;
/// Default time a JWKS fetch may take.
pub const DEFAULT_JWKS_FETCH_TIMEOUT_MS: u64 = 5_000;
/// The largest accepted leeway; more would keep expired tokens alive.
pub const MAX_LEEWAY_S: u64 = 300;
/// Tokens longer than this are refused before parsing; real access tokens are under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// `[auth_client]`: how a service verifies access tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierSettings {
    /// The expected `iss` claim, the auth service's configured issuer URL.
    pub issuer: String,
    /// The expected `aud` claim.
    pub audience: String,
    /// Clock-skew allowance for `exp` and `nbf`, at most [`MAX_LEEWAY_S`].
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// Shortest time between two JWKS fetches; bounds what a flood of unknown kids can cost.
    #[serde(default = "default_jwks_refresh_min_interval_ms")]
    pub jwks_refresh_min_interval_ms: u64,
    /// Age after which cached keys are refreshed, so a key the auth service dropped stops
    /// verifying.
    #[serde(default = "default_jwks_max_age_ms")]
    pub jwks_max_age_ms: u64,
    /// Time a JWKS fetch may take (connect and body).
    #[serde(default = "default_jwks_fetch_timeout_ms")]
    pub jwks_fetch_timeout_ms: u64,
}

fn default_leeway_s() -> u64 {
    DEFAULT_LEEWAY_S
}

fn default_jwks_refresh_min_interval_ms() -> u64 {
    DEFAULT_JWKS_REFRESH_MIN_INTERVAL_MS
}

fn default_jwks_max_age_ms() -> u64 {
    DEFAULT_JWKS_MAX_AGE_MS
}

fn default_jwks_fetch_timeout_ms() -> u64 {
    DEFAULT_JWKS_FETCH_TIMEOUT_MS
}

impl VerifierSettings {
    /// Settings for `issuer` and `audience` with the default leeway and JWKS limits.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_s: DEFAULT_LEEWAY_S,
            jwks_refresh_min_interval_ms: DEFAULT_JWKS_REFRESH_MIN_INTERVAL_MS,
            jwks_max_age_ms: DEFAULT_JWKS_MAX_AGE_MS,
            jwks_fetch_timeout_ms: DEFAULT_JWKS_FETCH_TIMEOUT_MS,
        }
    }
}

impl Validate for VerifierSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if self.issuer.trim().is_empty() {
            issues.push(key(prefix, "issuer"), "required: the auth service's issuer");
        }
        if self.audience.trim().is_empty() {
            issues.push(key(prefix, "audience"), "required: the platform's token audience");
        }
        if self.leeway_s > MAX_LEEWAY_S {
            issues.push(key(prefix, "leeway_s"), format!("must be at most {MAX_LEEWAY_S}"));
        }
        if self.jwks_refresh_min_interval_ms == 0 {
            issues.push(
                key(prefix, "jwks_refresh_min_interval_ms"),
                "must be greater than 0: it bounds the jwks fetches a flood of unknown kids causes",
            );
        }
        if self.jwks_max_age_ms < self.jwks_refresh_min_interval_ms {
            issues.push(key(prefix, "jwks_max_age_ms"), "must be at least jwks_refresh_min_interval_ms");
        }
        if self.jwks_fetch_timeout_ms == 0 {
            issues.push(key(prefix, "jwks_fetch_timeout_ms"), "must be greater than 0");
        }
    }
}

/// Where revocation state is read.
#[derive(Debug, Clone)]
struct RevocationStore {
    connection: ConnectionManager,
    keys: RevocationKeys,
}

/// Verifies access tokens into [`Principal`]s. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TokenVerifier {
    key_source: Arc<dyn KeySource>,
    revocation: Option<RevocationStore>,
    eddsa_validation: Validation,
    rs256_validation: Validation,
}

impl TokenVerifier {
    /// A verifier with keys from `key_source` and revocation state in `redis`.
    ///
    /// With `redis` `None` revocation is not checked: a logged-out token stays valid until it
    /// expires. That is only for the auth service's own tests and tools; every service that
    /// serves users passes its Redis connection.
    pub fn new(
        settings: VerifierSettings,
        key_source: Arc<dyn KeySource>,
        redis: Option<ConnectionManager>,
        revocation_keys: RevocationKeys,
    ) -> Self {
        let revocation = redis.map(|connection| RevocationStore { connection, keys: revocation_keys });
        Self {
            key_source,
            revocation,
            eddsa_validation: validation_for(Algorithm::EdDSA, &settings),
            rs256_validation: validation_for(Algorithm::RS256, &settings),
        }
    }

    /// Verifies `token` and returns who it identifies.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.verify_claims(token).await?;
        Ok(Principal::from_claims(claims))
    }

    /// Verifies `token` and returns all of its claims (for introspection).
    pub async fn verify_claims(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(InvalidTokenReason::Malformed));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid(InvalidTokenReason::Malformed))?;
        let kid = check_header(&header)?;
        let key = self.find_key(kid).await?;
        if key.algorithm() != header.alg {
            return Err(AuthError::Invalid(InvalidTokenReason::KeyAlgorithmMismatch));
        }
        let validation = match key.algorithm() {
            Algorithm::EdDSA => &self.eddsa_validation,
            _ => &self.rs256_validation,
        };
        let token_data = jsonwebtoken::decode::<AccessClaims>(token, key.decoding_key(), validation)
            .map_err(|error| map_decode_error(error.kind()))?;
        let claims = token_data.claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(AuthError::Invalid(InvalidTokenReason::WrongTokenType));
        }
        if claims.sub.is_empty() || claims.jti.is_empty() {
            // Revocation is keyed by both; a token without them could never be revoked.
            return Err(AuthError::Invalid(InvalidTokenReason::InvalidClaims));
        }
        self.check_revocation(&claims).await?;
        Ok(claims)
    }

    /// The key named `kid`, refreshing the keys once (rate-limited by the source) if it is unknown.
    async fn find_key(&self, kid: &str) -> Result<Arc<VerificationKey>, AuthError> {
        let keys = self.key_source.keys(false).await.map_err(AuthError::KeysUnavailable)?;
        if let Some(key) = keys.get_shared(kid) {
            return Ok(key);
        }
        let refreshed = self.key_source.keys(true).await.map_err(AuthError::KeysUnavailable)?;
        refreshed.get_shared(kid).ok_or(AuthError::Invalid(InvalidTokenReason::UnknownKeyId))
    }

    async fn check_revocation(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        let Some(store) = &self.revocation else {
            return Ok(());
        };
        let mut connection = store.connection.clone();
        // One round trip for both checks. A Redis error rejects the token (503): accepting it
        // would let a revoked token through exactly when revocation cannot be checked.
        let (revoked, subject_version): (bool, Option<u64>) = redis::pipe()
            .exists(store.keys.revoked_token(&claims.jti))
            .get(store.keys.token_version(&claims.sub))
            .query_async(&mut connection)
            .await
            .map_err(AuthError::RevocationUnavailable)?;
        if revoked {
            return Err(AuthError::Revoked(RevocationReason::TokenRevoked));
        }
        // An absent version is version 0, which no token is below.
        if claims.ver < subject_version.unwrap_or(0) {
            return Err(AuthError::Revoked(RevocationReason::SubjectVersionRaised));
        }
        Ok(())
    }
}

/// The validation of one algorithm: jsonwebtoken requires every allowed algorithm to match the
/// key's family, and a key only ever verifies its own algorithm anyway.
fn validation_for(algorithm: Algorithm, settings: &VerifierSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[settings.audience.as_str()]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = settings.leeway_s;
    validation
}

/// Checks the header before any key lookup and returns the `kid`.
fn check_header(header: &Header) -> Result<&str, AuthError> {
    if !matches!(header.alg, Algorithm::EdDSA | Algorithm::RS256) {
        return Err(AuthError::Invalid(InvalidTokenReason::DisallowedAlgorithm));
    }
    if !header.typ.as_deref().is_some_and(is_access_token_header_type) {
        return Err(AuthError::Invalid(InvalidTokenReason::WrongHeaderType));
    }
    // Keys come from the configured JWKS only. A token naming its own key source (`jku`, `x5u`)
    // or embedding its key (`jwk`, `x5c`) is an attack, and `crit` names extensions this verifier
    // does not understand, which RFC 7515 says must be rejected.
    let names_own_key = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if names_own_key {
        return Err(AuthError::Invalid(InvalidTokenReason::ForbiddenHeader));
    }
    let Some(kid) = header.kid.as_deref() else {
        return Err(AuthError::Invalid(InvalidTokenReason::MissingKeyId));
    };
    if !is_valid_key_id(kid) {
        return Err(AuthError::Invalid(InvalidTokenReason::MalformedKeyId));
    }
    Ok(kid)
}

/// `at+jwt`, or its full media type `application/at+jwt`; media types compare case-insensitively
/// (RFC 7515 §4.1.9, RFC 9068 §4).
fn is_access_token_header_type(typ: &str) -> bool {
    let media_subtype = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    media_subtype.eq_ignore_ascii_case(ACCESS_TOKEN_HEADER_TYPE)
}

fn map_decode_error(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::ImmatureSignature => InvalidTokenReason::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidTokenReason::WrongIssuer,
        ErrorKind::InvalidAudience => InvalidTokenReason::WrongAudience,
        ErrorKind::InvalidSignature => InvalidTokenReason::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => InvalidTokenReason::DisallowedAlgorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            InvalidTokenReason::InvalidClaims
        }
        // A key that fails to load at verification time (an Ed25519 `x` that is not a curve
        // point) cannot have signed the token.
        ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            InvalidTokenReason::BadSignature
        }
        _ => InvalidTokenReason::Malformed,
    };
    AuthError::Invalid(reason)
}

/// The verifier every service but auth uses: keys from the auth service's JWKS at
/// `<auth_url>/.well-known/jwks.json`, revocations in `redis` when given.
pub fn verifier_from_auth_url(
    auth_url: &str,
    settings: &VerifierSettings,
    redis: Option<ConnectionManager>,
    revocation_keys: RevocationKeys,
) -> Result<TokenVerifier, KeySourceError> {
    let jwks_url = format!("{}/.well-known/jwks.json", auth_url.trim_end_matches('/'));
    let key_source = super::jwks::HttpJwksSource::new(&jwks_url, settings)?;
    Ok(TokenVerifier::new(settings.clone(), Arc::new(key_source), redis, revocation_keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    fn header(alg: Algorithm, typ: Option<&str>, kid: Option<&str>) -> Header {
        let mut header = Header::new(alg);
        header.typ = typ.map(str::to_owned);
        header.kid = kid.map(str::to_owned);
        header
    }

    fn reason(result: Result<&str, AuthError>) -> Option<InvalidTokenReason> {
        result.err().and_then(|error| error.invalid_reason())
    }

    #[test]
    fn header_with_allowed_alg_typ_and_kid_passes() {
        assert_eq!(check_header(&header(Algorithm::EdDSA, Some("at+jwt"), Some("k1"))).unwrap(), "k1");
        assert_eq!(
            check_header(&header(Algorithm::RS256, Some("application/AT+JWT"), Some("k1"))).unwrap(),
            "k1"
        );
    }

    #[test]
    fn only_eddsa_and_rs256_are_allowed() {
        for alg in [Algorithm::HS256, Algorithm::HS512, Algorithm::RS512, Algorithm::PS256, Algorithm::ES256]
        {
            let token_header = header(alg, Some("at+jwt"), Some("k1"));
            assert_eq!(
                reason(check_header(&token_header)),
                Some(InvalidTokenReason::DisallowedAlgorithm),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn header_type_must_be_at_jwt() {
        for typ in [None, Some("JWT"), Some("refresh+jwt"), Some("application/jwt")] {
            let token_header = header(Algorithm::EdDSA, typ, Some("k1"));
            assert_eq!(
                reason(check_header(&token_header)),
                Some(InvalidTokenReason::WrongHeaderType),
                "{typ:?}"
            );
        }
    }

    #[test]
    fn key_urls_in_the_header_are_refused() {
        let mut with_jku = header(Algorithm::EdDSA, Some("at+jwt"), Some("k1"));
        with_jku.jku = Some("https://evil.example/jwks.json".to_owned());
        assert_eq!(reason(check_header(&with_jku)), Some(InvalidTokenReason::ForbiddenHeader));
        let mut with_x5u = header(Algorithm::EdDSA, Some("at+jwt"), Some("k1"));
        with_x5u.x5u = Some("https://evil.example/cert.pem".to_owned());
        assert_eq!(reason(check_header(&with_x5u)), Some(InvalidTokenReason::ForbiddenHeader));
        let mut with_crit = header(Algorithm::EdDSA, Some("at+jwt"), Some("k1"));
        with_crit.crit = Some(vec!["exp".to_owned()]);
        assert_eq!(reason(check_header(&with_crit)), Some(InvalidTokenReason::ForbiddenHeader));
    }

    #[test]
    fn kid_is_required_and_well_formed() {
        let without_kid = header(Algorithm::EdDSA, Some("at+jwt"), None);
        assert_eq!(reason(check_header(&without_kid)), Some(InvalidTokenReason::MissingKeyId));
        for kid in ["../../etc/passwd", "https://evil.example/jwks.json", ""] {
            let token_header = header(Algorithm::EdDSA, Some("at+jwt"), Some(kid));
            assert_eq!(
                reason(check_header(&token_header)),
                Some(InvalidTokenReason::MalformedKeyId),
                "{kid:?}"
            );
        }
    }

    #[test]
    fn decode_errors_map_to_reasons() {
        assert!(matches!(map_decode_error(&ErrorKind::ExpiredSignature), AuthError::Expired));
        assert_eq!(
            map_decode_error(&ErrorKind::ImmatureSignature).invalid_reason(),
            Some(InvalidTokenReason::NotYetValid)
        );
        assert_eq!(
            map_decode_error(&ErrorKind::InvalidSignature).invalid_reason(),
            Some(InvalidTokenReason::BadSignature)
        );
        assert_eq!(
            map_decode_error(&ErrorKind::MissingRequiredClaim("nbf".to_owned())).invalid_reason(),
            Some(InvalidTokenReason::InvalidClaims)
        );
    }

    #[test]
    fn settings_deserialize_with_defaults() {
        let settings: VerifierSettings =
            serde_json::from_str(r#"{"issuer":"https://auth.example","audience":"sutazai"}"#).unwrap();
        assert_eq!(settings, VerifierSettings::new("https://auth.example", "sutazai"));
        assert_eq!(settings.leeway_s, 30);
        let unknown = serde_json::from_str::<VerifierSettings>(
            r#"{"issuer":"https://auth.example","audience":"sutazai","leeway":5}"#,
        );
        assert!(unknown.unwrap_err().to_string().contains("unknown field `leeway`"));
    }

    #[test]
    fn settings_validation_names_each_key() {
        let mut settings = VerifierSettings::new(" ", "");
        settings.leeway_s = 3600;
        settings.jwks_refresh_min_interval_ms = 0;
        settings.jwks_fetch_timeout_ms = 0;
        let mut issues = ConfigIssues::default();
        settings.validate("auth_client", &mut issues);
        let Err(ConfigError::Invalid(issues)) = issues.into_result() else { panic!("expected issues") };
        let keys: Vec<&str> = issues.iter().map(|issue| issue.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth_client.issuer",
                "auth_client.audience",
                "auth_client.leeway_s",
                "auth_client.jwks_refresh_min_interval_ms",
                "auth_client.jwks_fetch_timeout_ms",
            ]
        );
        let mut valid = ConfigIssues::default();
        VerifierSettings::new("https://auth.example", "sutazai").validate("auth_client", &mut valid);
        assert!(valid.into_result().is_ok());
    }
}
