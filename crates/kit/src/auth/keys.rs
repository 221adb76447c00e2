//! Verification keys and where they come from. A JWK set is parsed once per fetch into
//! [`VerificationKeys`]: each usable key is bound to the one algorithm its type allows (Ed25519 →
//! EdDSA, RSA → RS256), so a token can never choose how its key is interpreted — an HMAC key, or
//! an RSA key used as an HMAC secret, simply does not exist here.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::future::BoxFuture;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// The longest accepted `kid`.
pub const MAX_KEY_ID_CHARS: usize = 64;
/// The shortest accepted RSA modulus (2048 bits); shorter keys are breakable.
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// An Ed25519 public key is 32 bytes; jsonwebtoken slices the first 32 without checking, so a
/// shorter `x` must be refused here rather than panic at verification.
const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Whether `kid` is 1 to 64 characters of `[A-Za-z0-9_-]`. Checked before any lookup, so a `kid`
/// crafted as a path (`../../x`) or a URL (`https://evil/jwks`) never reaches a key store.
pub fn is_valid_key_id(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KEY_ID_CHARS
        && kid.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// One public key and the only algorithm it verifies.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    algorithm: Algorithm,
    decoding_key: DecodingKey,
}

impl VerificationKey {
    /// The algorithm this key verifies (EdDSA or RS256).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key material.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding_key
    }

    /// Parses one JWK, refusing anything that is not a signature key of an allowed type.
    pub fn from_jwk(jwk: &Jwk) -> Result<(String, Self), UnusableKey> {
        let kid = jwk.common.key_id.as_deref().ok_or(UnusableKey::MissingKeyId)?;
        if !is_valid_key_id(kid) {
            return Err(UnusableKey::MalformedKeyId);
        }
        if let Some(usage) = &jwk.common.public_key_use
            && *usage != PublicKeyUse::Signature
        {
            return Err(UnusableKey::NotForSignatures);
        }
        if let Some(operations) = &jwk.common.key_operations
            && !operations.contains(&KeyOperations::Verify)
        {
            return Err(UnusableKey::NotForSignatures);
        }
        let (algorithm, declared) = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(parameters) if parameters.curve == EllipticCurve::Ed25519 => {
                (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
            }
            AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
            // `oct` (HMAC secrets), EC and anything else are never accepted.
            _ => return Err(UnusableKey::UnsupportedKeyType),
        };
        if let Some(key_algorithm) = jwk.common.key_algorithm
            && key_algorithm != declared
        {
            return Err(UnusableKey::AlgorithmMismatch);
        }
        let decoding_key = DecodingKey::from_jwk(jwk).map_err(|_| UnusableKey::InvalidKeyMaterial)?;
        let size_ok = match decoding_key.kind() {
            DecodingKeyKind::SecretOrDer(public_key) => {
                algorithm == Algorithm::EdDSA && public_key.len() == ED25519_PUBLIC_KEY_BYTES
            }
            DecodingKeyKind::RsaModulusExponent { n, .. } => {
                let significant_bytes = n.iter().skip_while(|byte| **byte == 0).count();
                algorithm == Algorithm::RS256 && significant_bytes >= MIN_RSA_MODULUS_BYTES
            }
        };
        if !size_ok {
            return Err(UnusableKey::InvalidKeyMaterial);
        }
        Ok((kid.to_owned(), Self { algorithm, decoding_key }))
    }
}

/// Why a JWK was left out of a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnusableKey {
    /// No `kid`: a token could not name it.
    #[error("key has no kid")]
    MissingKeyId,
    /// The `kid` breaks the `[A-Za-z0-9_-]{1,64}` rule.
    #[error("kid is not 1 to 64 characters of [A-Za-z0-9_-]")]
    MalformedKeyId,
    /// `use` or `key_ops` says the key is not for verifying signatures.
    #[error("key is not for signature verification")]
    NotForSignatures,
    /// Not an Ed25519 (`OKP`) or `RSA` key.
    #[error("key type is not OKP/Ed25519 or RSA")]
    UnsupportedKeyType,
    /// The declared `alg` is not the one its type allows.
    #[error("declared alg does not match the key type")]
    AlgorithmMismatch,
    /// Bad base64, a wrong Ed25519 length or an RSA modulus under 2048 bits.
    #[error("key material is invalid or too weak")]
    InvalidKeyMaterial,
    /// Another key in the set already has this `kid`; the first one wins.
    #[error("duplicate kid")]
    DuplicateKeyId,
}

/// The usable keys of a JWK set, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct VerificationKeys {
    // Shared so a verification holds its key without copying the key material.
    by_key_id: HashMap<String, Arc<VerificationKey>>,
}

impl VerificationKeys {
    /// Parses every key of `set`, logging and skipping the unusable ones (one bad key must not
    /// take the others down).
    pub fn from_jwk_set(set: &JwkSet) -> Self {
        let mut by_key_id = HashMap::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let kid = jwk.common.key_id.as_deref().unwrap_or_default();
            match VerificationKey::from_jwk(jwk) {
                Ok((kid, key)) => {
                    if by_key_id.contains_key(&kid) {
                        tracing::warn!(kid = %kid, reason = %UnusableKey::DuplicateKeyId, "skipped a jwk");
                        continue;
                    }
                    by_key_id.insert(kid, Arc::new(key));
                }
                Err(reason) => {
                    // A malformed kid is not logged: it may be attacker-shaped text.
                    let shown_kid = if is_valid_key_id(kid) { kid } else { "<malformed>" };
                    tracing::warn!(kid = shown_kid, reason = %reason, "skipped a jwk");
                }
            }
        }
        Self { by_key_id }
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.by_key_id.get(kid).map(Arc::as_ref)
    }

    /// The key named `kid`, shared.
    pub fn get_shared(&self, kid: &str) -> Option<Arc<VerificationKey>> {
        self.by_key_id.get(kid).map(Arc::clone)
    }

    /// How many usable keys there are.
    pub fn len(&self) -> usize {
        self.by_key_id.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.by_key_id.is_empty()
    }

    /// The key ids, in no particular order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.by_key_id.keys().map(String::as_str)
    }
}

/// Why a key source has no keys to offer.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The configured JWKS URL is not an http(s) URL.
    #[error("jwks url `{url}` is not an http or https url")]
    InvalidUrl {
        /// The configured URL.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("build the jwks http client")]
    Client(#[source] reqwest::Error),
    /// The request failed (connection refused, timeout, broken body).
    #[error("fetch jwks from {url}")]
    Request {
        /// The JWKS URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint answered with a non-success status.
    #[error("jwks endpoint {url} answered status {status}")]
    Status {
        /// The JWKS URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body exceeded the size limit.
    #[error("jwks from {url} is larger than {limit_bytes} bytes")]
    TooLarge {
        /// The JWKS URL.
        url: String,
        /// The limit.
        limit_bytes: usize,
    },
    /// The body is not a JWK set.
    #[error("jwks from {url} is not a json web key set")]
    Parse {
        /// The JWKS URL.
        url: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The set holds no key this verifier can use.
    #[error("jwks from {url} holds no usable signing key")]
    NoUsableKeys {
        /// The JWKS URL.
        url: String,
    },
    /// The last fetch failed less than the refresh interval ago; the source does not ask again
    /// yet, so a down auth service is not hammered by every request.
    #[error("jwks unavailable: the last fetch failed and the refresh interval has not passed")]
    RetryLater,
}

/// A future yielding the current keys.
pub type KeysFuture<'a> = BoxFuture<'a, Result<Arc<VerificationKeys>, KeySourceError>>;

/// Where a [`crate::auth::TokenVerifier`] gets its keys.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The current keys. `force_refresh` is set when a token named a `kid` the current keys lack,
    /// asking for the newest keys; a source may still answer from its cache (to rate-limit
    /// fetches), in which case the token is refused as naming an unknown key.
    fn keys(&self, force_refresh: bool) -> KeysFuture<'_>;
}

/// Keys held in memory and replaceable: the auth service verifying its own tokens (it replaces
/// the set when it rotates keys), and tests.
#[derive(Debug)]
pub struct StaticKeySource {
    keys: RwLock<Arc<VerificationKeys>>,
}

impl StaticKeySource {
    /// Holds the usable keys of `set`.
    pub fn new(set: &JwkSet) -> Self {
        Self { keys: RwLock::new(Arc::new(VerificationKeys::from_jwk_set(set))) }
    }

    /// Replaces the keys, for every verification that starts afterwards.
    pub fn replace(&self, set: &JwkSet) {
        let keys = Arc::new(VerificationKeys::from_jwk_set(set));
        // A panic elsewhere while holding the lock cannot leave an `Arc` half-written.
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    fn current(&self) -> Arc<VerificationKeys> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl KeySource for StaticKeySource {
    fn keys(&self, _force_refresh: bool) -> KeysFuture<'_> {
        let keys = self.current();
        Box::pin(async move { Ok(keys) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // The Ed25519 public key of RFC 8037 appendix A.
    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    fn rsa_modulus(bytes: usize) -> String {
        // Any odd number with the top bit set parses as a modulus; validity is the signer's
        // problem, the size rule is what is tested here.
        let mut modulus = vec![0xc5_u8; bytes];
        modulus[bytes - 1] = 0x01;
        base64url(&modulus)
    }

    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut text = String::new();
        for chunk in bytes.chunks(3) {
            let buffer = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let triple = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]);
            for index in 0..=chunk.len() {
                text.push(ALPHABET[((triple >> (18 - 6 * index)) & 0x3f) as usize] as char);
            }
        }
        text
    }

    #[test]
    fn key_id_rule() {
        assert!(is_valid_key_id("2026-11-key_1"));
        assert!(is_valid_key_id(&"a".repeat(64)));
        assert!(!is_valid_key_id(""));
        assert!(!is_valid_key_id(&"a".repeat(65)));
        assert!(!is_valid_key_id("../../etc/passwd"));
        assert!(!is_valid_key_id("https://evil.example/jwks.json"));
        assert!(!is_valid_key_id("key id"));
        assert!(!is_valid_key_id("kéy"));
    }

    #[test]
    fn ed25519_key_verifies_eddsa_only() {
        let (kid, key) = VerificationKey::from_jwk(&jwk(json!({
            "kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "kid": "ed-1", "alg": "EdDSA", "use": "sig"
        })))
        .unwrap();
        assert_eq!(kid, "ed-1");
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
    }

    #[test]
    fn rsa_key_without_alg_verifies_rs256() {
        let (_, key) = VerificationKey::from_jwk(&jwk(json!({
            "kty": "RSA", "n": rsa_modulus(256), "e": "AQAB", "kid": "rsa-1"
        })))
        .unwrap();
        assert_eq!(key.algorithm(), Algorithm::RS256);
    }

    #[test]
    fn hmac_keys_are_never_usable() {
        let error = VerificationKey::from_jwk(&jwk(json!({
            "kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"
        })))
        .unwrap_err();
        assert_eq!(error, UnusableKey::UnsupportedKeyType);
    }

    #[test]
    fn declared_alg_must_match_the_key_type() {
        let error = VerificationKey::from_jwk(&jwk(json!({
            "kty": "RSA", "n": rsa_modulus(256), "e": "AQAB", "kid": "rsa-1", "alg": "HS256"
        })))
        .unwrap_err();
        assert_eq!(error, UnusableKey::AlgorithmMismatch);
        let error = VerificationKey::from_jwk(&jwk(json!({
            "kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "kid": "ed-1", "alg": "RS256"
        })))
        .unwrap_err();
        assert_eq!(error, UnusableKey::AlgorithmMismatch);
    }

    #[test]
    fn encryption_keys_are_not_usable() {
        let error = VerificationKey::from_jwk(&jwk(json!({
            "kty": "RSA", "n": rsa_modulus(256), "e": "AQAB", "kid": "rsa-1", "use": "enc"
        })))
        .unwrap_err();
        assert_eq!(error, UnusableKey::NotForSignatures);
    }

    #[test]
    fn weak_or_truncated_keys_are_not_usable() {
        let short_rsa = VerificationKey::from_jwk(&jwk(json!({
            "kty": "RSA", "n": rsa_modulus(128), "e": "AQAB", "kid": "rsa-1024"
        })))
        .unwrap_err();
        assert_eq!(short_rsa, UnusableKey::InvalidKeyMaterial);
        let short_ed = VerificationKey::from_jwk(&jwk(json!({
            "kty": "OKP", "crv": "Ed25519", "x": base64url(&[7; 16]), "kid": "ed-short"
        })))
        .unwrap_err();
        assert_eq!(short_ed, UnusableKey::InvalidKeyMaterial);
    }

    #[test]
    fn keys_need_a_well_formed_kid() {
        let missing =
            VerificationKey::from_jwk(&jwk(json!({ "kty": "OKP", "crv": "Ed25519", "x": ED25519_X })));
        assert_eq!(missing.unwrap_err(), UnusableKey::MissingKeyId);
        let malformed = VerificationKey::from_jwk(&jwk(json!({
            "kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "kid": "../keys/a"
        })));
        assert_eq!(malformed.unwrap_err(), UnusableKey::MalformedKeyId);
    }

    #[test]
    fn a_set_keeps_usable_keys_and_the_first_of_duplicates() {
        let set: JwkSet = serde_json::from_value(json!({ "keys": [
            { "kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "kid": "ed-1" },
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "RSA", "n": rsa_modulus(256), "e": "AQAB", "kid": "ed-1" },
            { "kty": "RSA", "n": rsa_modulus(256), "e": "AQAB", "kid": "rsa-1" }
        ]}))
        .unwrap();
        let keys = VerificationKeys::from_jwk_set(&set);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get("ed-1").unwrap().algorithm(), Algorithm::EdDSA);
        assert_eq!(keys.get("rsa-1").unwrap().algorithm(), Algorithm::RS256);
        assert!(keys.get("hmac").is_none());
    }
}
