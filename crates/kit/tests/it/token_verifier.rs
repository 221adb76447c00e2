//! The shared token verifier, end to end: tokens signed here with jsonwebtoken (a fresh Ed25519
//! key per test, a fixed 2048-bit RSA test key), keys from memory or from a real JWKS endpoint
//! that counts its fetches, revocation in the real Redis. Every rejection asserts its precise
//! reason, so a test cannot pass because the token was refused for another cause.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use futures_util::future::join_all;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;
use sutazai_kit::auth::{
    AccessClaims, AuthError, HttpJwksSource, InvalidTokenReason, Principal, PrincipalKind, RevocationKeys,
    RevocationReason, StaticKeySource, TokenVerifier, VerifierSettings, authenticate_grpc, require_admin,
    require_scope,
};
use sutazai_kit::http::ApiError;
use sutazai_testkit::{TcpProxy, TestRedis, TestServer, http_settings};
use sutazai_types::ServiceErrorCode;

const ISSUER: &str = "https://auth.sutazai.test";
const AUDIENCE: &str = "sutazai";
/// PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// A 2048-bit RSA key made for these tests only (`openssl genrsa 2048`, PKCS#1 DER): generating
/// one per run would take seconds in a debug build.
const RSA_TEST_KEY_PKCS1_DER: &[u8] = include_bytes!("fixtures/rsa2048_test_only.pkcs1.der");

// ---------------------------------------------------------------------------------------------
// Signing

struct TestSigner {
    kid: String,
    algorithm: Algorithm,
    encoding_key: EncodingKey,
    jwk: Jwk,
}

impl TestSigner {
    fn ed25519(kid: &str) -> Self {
        // Any 32 bytes are an Ed25519 seed; two v4 UUIDs give a fresh key per test.
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self::new(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
    }

    fn rsa(kid: &str) -> Self {
        Self::new(kid, Algorithm::RS256, EncodingKey::from_rsa_der(RSA_TEST_KEY_PKCS1_DER))
    }

    fn new(kid: &str, algorithm: Algorithm, encoding_key: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding_key, algorithm).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self { kid: kid.to_owned(), algorithm, encoding_key, jwk }
    }

    /// The header the auth service sends: the key's alg, `typ: at+jwt`, the `kid`.
    fn header(&self) -> Header {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        header
    }

    fn sign(&self, claims: &impl Serialize) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    fn sign_with_header(&self, header: &Header, claims: &impl Serialize) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding_key).unwrap()
    }

    /// The raw public key bytes (Ed25519 `x`), as an attacker would use them as an HMAC secret.
    fn public_key_bytes(&self) -> Vec<u8> {
        DecodingKey::from_jwk(&self.jwk).unwrap().try_get_as_bytes().unwrap().to_vec()
    }
}

fn jwk_set(signers: &[&TestSigner]) -> JwkSet {
    JwkSet { keys: signers.iter().map(|signer| signer.jwk.clone()).collect() }
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

fn claims() -> AccessClaims {
    let issued_at = now();
    AccessClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: format!("user-{}", uuid::Uuid::new_v4()),
        exp: issued_at + 900,
        iat: issued_at,
        nbf: issued_at,
        jti: uuid::Uuid::new_v4().to_string(),
        typ: "access".to_owned(),
        kind: PrincipalKind::User,
        name: "alice".to_owned(),
        roles: vec!["user".to_owned()],
        scopes: vec!["tasks:read".to_owned()],
        ver: 0,
        sid: Some(uuid::Uuid::new_v4().to_string()),
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let triple =
            u32::from_be_bytes([0, chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)]);
        for index in 0..=chunk.len() {
            text.push(ALPHABET[((triple >> (18 - 6 * index)) & 0x3f) as usize] as char);
        }
    }
    text
}

fn encode_segment(value: &impl Serialize) -> String {
    base64url(&serde_json::to_vec(value).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Verifiers

fn settings() -> VerifierSettings {
    VerifierSettings::new(ISSUER, AUDIENCE)
}

/// Keys in memory, no revocation store.
fn static_verifier(signers: &[&TestSigner]) -> TokenVerifier {
    let source = Arc::new(StaticKeySource::new(&jwk_set(signers)));
    TokenVerifier::new(settings(), source, None, RevocationKeys::new(&TestRedis::new().settings()))
}

/// Keys in memory, revocation in the real Redis under the test's prefix.
async fn redis_verifier(
    signers: &[&TestSigner],
    test_redis: &TestRedis,
) -> (TokenVerifier, ConnectionManager) {
    let redis_settings = test_redis.settings();
    let connection = sutazai_kit::redis::connect(&redis_settings).await.unwrap();
    let source = Arc::new(StaticKeySource::new(&jwk_set(signers)));
    let verifier = TokenVerifier::new(
        settings(),
        source,
        Some(connection.clone()),
        RevocationKeys::new(&redis_settings),
    );
    (verifier, connection)
}

async fn rejection_reason(verifier: &TokenVerifier, token: &str) -> InvalidTokenReason {
    match verifier.verify(token).await {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("expected an invalid-token rejection, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Accepted

#[tokio::test]
async fn accepts_a_valid_eddsa_token_and_yields_its_principal() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.kind = PrincipalKind::Service;
    token_claims.name = "orchestrator".to_owned();
    token_claims.roles = vec!["service".to_owned()];
    token_claims.scopes = vec!["tasks:write".to_owned(), "agents:read".to_owned()];
    // Service tokens belong to no login session.
    token_claims.sid = None;

    let principal = verifier.verify(&signer.sign(&token_claims)).await.unwrap();

    assert_eq!(
        principal,
        Principal {
            subject: token_claims.sub.clone(),
            kind: PrincipalKind::Service,
            name: "orchestrator".to_owned(),
            roles: vec!["service".to_owned()],
            scopes: vec!["tasks:write".to_owned(), "agents:read".to_owned()],
            token_id: token_claims.jti.clone(),
            expires_at: token_claims.exp,
            session_id: None,
        }
    );
    let all_claims = verifier.verify_claims(&signer.sign(&token_claims)).await.unwrap();
    assert_eq!(all_claims, token_claims);
}

#[tokio::test]
async fn accepts_a_valid_rs256_token() {
    let signer = TestSigner::rsa("rsa-current");
    let verifier = static_verifier(&[&signer]);
    let token_claims = claims();
    let principal = verifier.verify(&signer.sign(&token_claims)).await.unwrap();
    assert_eq!(principal.subject, token_claims.sub);
    assert_eq!(principal.session_id, token_claims.sid, "a user token carries its login session");
}

#[tokio::test]
async fn accepts_a_token_expired_within_the_leeway() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.exp = now() - 10;
    assert!(verifier.verify(&signer.sign(&token_claims)).await.is_ok(), "leeway is 30 s");
}

// ---------------------------------------------------------------------------------------------
// Rejected: algorithm and key

#[tokio::test]
async fn rejects_alg_none() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let payload = encode_segment(&claims());
    for alg in ["none", "None", "NONE"] {
        let header = encode_segment(&serde_json::json!({ "alg": alg, "typ": "at+jwt", "kid": "ed-current" }));
        for signature in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{signature}");
            // jsonwebtoken has no `none` algorithm at all, so the header does not even parse.
            assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::Malformed, "{alg}");
        }
    }
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_public_key() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some("ed-current".to_owned());
    // The classic confusion attack: the public key (raw, or as published in the JWKS) used as
    // the HMAC secret of a token that claims HS256.
    let secrets = [signer.public_key_bytes(), serde_json::to_vec(&signer.jwk).unwrap()];
    for secret in secrets {
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::DisallowedAlgorithm);
    }
}

#[tokio::test]
async fn rejects_a_token_whose_alg_does_not_match_its_key() {
    let ed_signer = TestSigner::ed25519("ed-current");
    let rsa_signer = TestSigner::rsa("rsa-current");
    let verifier = static_verifier(&[&ed_signer, &rsa_signer]);
    // Signed with the Ed25519 key but naming the RSA key.
    let mut ed_header = ed_signer.header();
    ed_header.kid = Some("rsa-current".to_owned());
    let token = ed_signer.sign_with_header(&ed_header, &claims());
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::KeyAlgorithmMismatch);
    // And the other way round.
    let mut rsa_header = rsa_signer.header();
    rsa_header.kid = Some("ed-current".to_owned());
    let token = rsa_signer.sign_with_header(&rsa_header, &claims());
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::KeyAlgorithmMismatch);
}

#[tokio::test]
async fn rejects_an_unknown_kid() {
    let signer = TestSigner::ed25519("ed-current");
    let rogue = TestSigner::ed25519("ed-rogue");
    let verifier = static_verifier(&[&signer]);
    let token = rogue.sign(&claims());
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::UnknownKeyId);
}

#[tokio::test]
async fn rejects_a_token_signed_by_another_key_under_a_known_kid() {
    let signer = TestSigner::ed25519("ed-current");
    let impostor = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let token = impostor.sign(&claims());
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::BadSignature);
}

#[tokio::test]
async fn rejects_a_missing_kid() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut header = signer.header();
    header.kid = None;
    let token = signer.sign_with_header(&header, &claims());
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::MissingKeyId);
}

#[tokio::test]
async fn rejects_a_path_injected_kid_without_fetching_keys() {
    let signer = TestSigner::ed25519("ed-current");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&signer])).await;
    let verifier = http_verifier(&endpoint.url, 60_000, 300_000);
    for kid in ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "ed-current/../../x", "ed-current\u{0}"] {
        let mut header = signer.header();
        header.kid = Some(kid.to_owned());
        let token = signer.sign_with_header(&header, &claims());
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::MalformedKeyId, "{kid:?}");
    }
    assert_eq!(endpoint.fetches(), 0, "the kid is refused before any key lookup");
}

#[tokio::test]
async fn rejects_a_url_injected_kid_without_fetching_keys() {
    let signer = TestSigner::ed25519("ed-current");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&signer])).await;
    let verifier = http_verifier(&endpoint.url, 60_000, 300_000);
    let attacker_url = format!("{}?kid=x", endpoint.url);
    for kid in ["https://evil.example/jwks.json", attacker_url.as_str()] {
        let mut header = signer.header();
        header.kid = Some(kid.to_owned());
        let token = signer.sign_with_header(&header, &claims());
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::MalformedKeyId, "{kid:?}");
    }
    assert_eq!(endpoint.fetches(), 0, "the kid is refused before any key lookup");
}

#[tokio::test]
async fn rejects_key_urls_and_embedded_keys_in_the_header() {
    let signer = TestSigner::ed25519("ed-current");
    let attacker = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut with_jku = attacker.header();
    with_jku.jku = Some("https://evil.example/jwks.json".to_owned());
    let mut with_x5u = attacker.header();
    with_x5u.x5u = Some("https://evil.example/cert.pem".to_owned());
    // The embedded-key attack: the attacker signs with its own key and ships that key along.
    let mut with_jwk = attacker.header();
    with_jwk.jwk = Some(attacker.jwk.clone());
    for header in [with_jku, with_x5u, with_jwk] {
        let token = attacker.sign_with_header(&header, &claims());
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::ForbiddenHeader);
    }
}

// ---------------------------------------------------------------------------------------------
// Rejected: header type, claims, integrity

#[tokio::test]
async fn rejects_a_wrong_header_typ() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    for typ in [Some("JWT"), Some("refresh+jwt"), None] {
        let mut header = signer.header();
        header.typ = typ.map(str::to_owned);
        let token = signer.sign_with_header(&header, &claims());
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::WrongHeaderType, "{typ:?}");
    }
}

#[tokio::test]
async fn rejects_an_expired_token() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.iat = now() - 1_000;
    token_claims.nbf = now() - 1_000;
    token_claims.exp = now() - 120;
    let error = verifier.verify(&signer.sign(&token_claims)).await.unwrap_err();
    assert!(matches!(error, AuthError::Expired), "{error:?}");
    assert_eq!(error.to_string(), "token expired");
    assert_eq!(error.code(), ServiceErrorCode::Unauthenticated);
}

#[tokio::test]
async fn rejects_nbf_in_the_future() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.nbf = now() + 300;
    let token = signer.sign(&token_claims);
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::NotYetValid);
}

#[tokio::test]
async fn rejects_a_wrong_issuer() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.iss = "https://auth.evil.example".to_owned();
    let token = signer.sign(&token_claims);
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::WrongIssuer);
}

#[tokio::test]
async fn rejects_a_wrong_audience() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let mut token_claims = claims();
    token_claims.aud = "another-platform".to_owned();
    let token = signer.sign(&token_claims);
    assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::WrongAudience);
}

#[tokio::test]
async fn rejects_a_refresh_typ_claim() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    for typ in ["refresh", "Access", ""] {
        let mut token_claims = claims();
        token_claims.typ = typ.to_owned();
        let token = signer.sign(&token_claims);
        assert_eq!(rejection_reason(&verifier, &token).await, InvalidTokenReason::WrongTokenType, "{typ:?}");
    }
}

#[tokio::test]
async fn rejects_a_tampered_payload() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let original_claims = claims();
    let token = signer.sign(&original_claims);
    let mut parts = token.split('.');
    let (header, _payload, signature) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut escalated = original_claims.clone();
    escalated.roles = vec!["admin".to_owned()];
    let tampered = format!("{header}.{}.{signature}", encode_segment(&escalated));
    assert_eq!(rejection_reason(&verifier, &tampered).await, InvalidTokenReason::BadSignature);
    assert!(verifier.verify(&token).await.is_ok(), "the untouched token still verifies");
}

#[tokio::test]
async fn rejects_garbage_and_oversized_tokens() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let oversized = format!("{}.{}.sig", "a".repeat(5_000), "b".repeat(5_000));
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.???.***", oversized.as_str()] {
        assert_eq!(rejection_reason(&verifier, token).await, InvalidTokenReason::Malformed, "{token:.20}");
    }
}

// ---------------------------------------------------------------------------------------------
// Revocation in Redis

#[tokio::test]
async fn accepts_an_unrevoked_token_with_redis() {
    let test_redis = TestRedis::new();
    let signer = TestSigner::ed25519("ed-current");
    let (verifier, _connection) = redis_verifier(&[&signer], &test_redis).await;
    assert!(verifier.verify(&signer.sign(&claims())).await.is_ok());
    test_redis.cleanup().await;
}

#[tokio::test]
async fn rejects_a_revoked_jti() {
    let test_redis = TestRedis::new();
    let signer = TestSigner::ed25519("ed-current");
    let (verifier, mut connection) = redis_verifier(&[&signer], &test_redis).await;
    let revoked_claims = claims();
    let other_claims = AccessClaims { jti: uuid::Uuid::new_v4().to_string(), ..revoked_claims.clone() };
    let keys = RevocationKeys::new(&test_redis.settings());
    let () = connection.set_ex(keys.revoked_token(&revoked_claims.jti), 1, 60).await.unwrap();

    let error = verifier.verify(&signer.sign(&revoked_claims)).await.unwrap_err();
    assert!(matches!(error, AuthError::Revoked(RevocationReason::TokenRevoked)), "{error:?}");
    assert_eq!(error.to_string(), "token revoked");
    assert!(verifier.verify(&signer.sign(&other_claims)).await.is_ok(), "only that jti is revoked");
    test_redis.cleanup().await;
}

#[tokio::test]
async fn rejects_a_token_issued_before_the_subject_version_was_raised() {
    let test_redis = TestRedis::new();
    let signer = TestSigner::ed25519("ed-current");
    let (verifier, mut connection) = redis_verifier(&[&signer], &test_redis).await;
    let mut old_claims = claims();
    old_claims.ver = 2;
    let keys = RevocationKeys::new(&test_redis.settings());
    assert!(verifier.verify(&signer.sign(&old_claims)).await.is_ok(), "no version key means version 0");

    // A password change raises the subject's version to 3.
    let () = connection.set(keys.token_version(&old_claims.sub), 3).await.unwrap();

    let error = verifier.verify(&signer.sign(&old_claims)).await.unwrap_err();
    assert!(matches!(error, AuthError::Revoked(RevocationReason::SubjectVersionRaised)), "{error:?}");
    let new_claims = AccessClaims { ver: 3, jti: uuid::Uuid::new_v4().to_string(), ..old_claims.clone() };
    assert!(verifier.verify(&signer.sign(&new_claims)).await.is_ok(), "tokens at the new version verify");
    test_redis.cleanup().await;
}

#[tokio::test]
async fn fails_closed_when_redis_is_unreachable() {
    let redis_address: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let proxy = TcpProxy::start(redis_address).await;
    let test_redis = TestRedis::new();
    let redis_settings = test_redis.settings_with_url(&format!("redis://{}/0", proxy.address));
    let connection = sutazai_kit::redis::connect(&redis_settings).await.unwrap();
    let signer = TestSigner::ed25519("ed-current");
    let source = Arc::new(StaticKeySource::new(&jwk_set(&[&signer])));
    let verifier =
        TokenVerifier::new(settings(), source, Some(connection), RevocationKeys::new(&redis_settings));
    let token = signer.sign(&claims());
    assert!(verifier.verify(&token).await.is_ok());

    proxy.set_down(true).await;
    let error = verifier.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthError::RevocationUnavailable(_)), "{error:?}");
    assert_eq!(error.code(), ServiceErrorCode::Unavailable);
    assert_eq!(error.to_string(), "token revocation store unavailable");
}

// ---------------------------------------------------------------------------------------------
// JWKS over HTTP

/// A JWKS endpoint whose key set can be replaced and which counts its fetches.
#[derive(Clone)]
struct JwksState {
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

struct JwksEndpoint {
    state: JwksState,
    url: String,
    _server: TestServer,
}

impl JwksEndpoint {
    async fn spawn(keys: JwkSet) -> Self {
        let state = JwksState { keys: Arc::new(Mutex::new(keys)), fetches: Arc::new(AtomicUsize::new(0)) };
        let router = Router::new().route("/.well-known/jwks.json", get(serve_jwks)).with_state(state.clone());
        let server = TestServer::spawn(router).await;
        Self { state, url: server.url("/.well-known/jwks.json"), _server: server }
    }

    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: JwkSet) {
        *self.state.keys.lock().unwrap() = keys;
    }
}

async fn serve_jwks(State(state): State<JwksState>) -> axum::Json<JwkSet> {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = state.keys.lock().unwrap().clone();
    axum::Json(keys)
}

fn http_verifier(jwks_url: &str, refresh_min_interval_ms: u64, max_age_ms: u64) -> TokenVerifier {
    let mut verifier_settings = settings();
    verifier_settings.jwks_refresh_min_interval_ms = refresh_min_interval_ms;
    verifier_settings.jwks_max_age_ms = max_age_ms;
    let source = Arc::new(HttpJwksSource::new(jwks_url, &verifier_settings).unwrap());
    TokenVerifier::new(verifier_settings, source, None, RevocationKeys::new(&TestRedis::new().settings()))
}

/// Tokens signed by a key the endpoint does not publish, each under a random kid.
fn tokens_with_random_kids(count: usize) -> Vec<String> {
    let rogue = TestSigner::ed25519("rogue");
    (0..count)
        .map(|_| {
            let mut header = rogue.header();
            header.kid = Some(format!("rogue-{}", uuid::Uuid::new_v4().simple()));
            rogue.sign_with_header(&header, &claims())
        })
        .collect()
}

async fn verify_all(verifier: &TokenVerifier, tokens: &[String]) -> Vec<Result<Principal, AuthError>> {
    join_all(tokens.iter().map(|token| verifier.verify(token))).await
}

fn assert_all_unknown_kid(results: &[Result<Principal, AuthError>]) {
    for result in results {
        let reason = result.as_ref().err().and_then(AuthError::invalid_reason);
        assert_eq!(reason, Some(InvalidTokenReason::UnknownKeyId), "{result:?}");
    }
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval() {
    let signer = TestSigner::ed25519("ed-current");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&signer])).await;
    let verifier = http_verifier(&endpoint.url, 60_000, 300_000);

    // Cold cache: 50 concurrent tokens share the first fetch; their forced refreshes are then
    // inside the interval and served from the cache.
    let results = verify_all(&verifier, &tokens_with_random_kids(50)).await;
    assert_all_unknown_kid(&results);
    assert_eq!(endpoint.fetches(), 1);

    let results = verify_all(&verifier, &tokens_with_random_kids(50)).await;
    assert_all_unknown_kid(&results);
    assert_eq!(endpoint.fetches(), 1, "no fetch inside the interval");

    assert!(verifier.verify(&signer.sign(&claims())).await.is_ok());
    assert_eq!(endpoint.fetches(), 1, "known kids are served from the cache");
}

#[tokio::test]
async fn concurrent_refreshes_after_the_interval_coalesce_into_one_fetch() {
    let signer = TestSigner::ed25519("ed-current");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&signer])).await;
    let verifier = http_verifier(&endpoint.url, 1_000, 300_000);
    assert!(verifier.verify(&signer.sign(&claims())).await.is_ok());
    assert_eq!(endpoint.fetches(), 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let results = verify_all(&verifier, &tokens_with_random_kids(50)).await;
    assert_all_unknown_kid(&results);
    assert_eq!(endpoint.fetches(), 2, "50 forced refreshes, one fetch");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_refresh_on_unknown_kid() {
    let previous = TestSigner::ed25519("ed-2026-10");
    let current = TestSigner::ed25519("ed-2026-11");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&previous])).await;
    let verifier = http_verifier(&endpoint.url, 1_000, 300_000);
    assert!(verifier.verify(&previous.sign(&claims())).await.is_ok());
    assert_eq!(endpoint.fetches(), 1);

    // The auth service rotates: the JWKS now serves the current and the previous key.
    endpoint.publish(jwk_set(&[&current, &previous]));
    let new_token = current.sign(&claims());
    assert_eq!(
        rejection_reason(&verifier, &new_token).await,
        InvalidTokenReason::UnknownKeyId,
        "inside the interval the cache answers"
    );
    assert_eq!(endpoint.fetches(), 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let principal = verifier.verify(&new_token).await.unwrap();
    assert!(principal.subject.starts_with("user-"));
    assert_eq!(endpoint.fetches(), 2, "one refresh for the new kid");
    assert!(verifier.verify(&previous.sign(&claims())).await.is_ok(), "the previous key still verifies");
    assert_eq!(endpoint.fetches(), 2);
}

#[tokio::test]
async fn a_key_dropped_from_the_jwks_stops_verifying_after_the_max_age() {
    let retired = TestSigner::ed25519("ed-retired");
    let current = TestSigner::ed25519("ed-current");
    let endpoint = JwksEndpoint::spawn(jwk_set(&[&retired, &current])).await;
    let verifier = http_verifier(&endpoint.url, 100, 300);
    let retired_token = retired.sign(&claims());
    assert!(verifier.verify(&retired_token).await.is_ok());

    endpoint.publish(jwk_set(&[&current]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(rejection_reason(&verifier, &retired_token).await, InvalidTokenReason::UnknownKeyId);
    assert_eq!(endpoint.fetches(), 2, "one refresh of the expired cache; the forced one is rate-limited");
}

#[tokio::test]
async fn an_unreachable_jwks_makes_verification_unavailable_not_invalid() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = http_verifier(&unreachable_jwks_url().await, 1_000, 300_000);
    let error = verifier.verify(&signer.sign(&claims())).await.unwrap_err();
    assert!(matches!(error, AuthError::KeysUnavailable(_)), "{error:?}");
    assert_eq!(error.code(), ServiceErrorCode::Unavailable);
    // Inside the interval the source does not try again, and still answers "unavailable".
    let again = verifier.verify(&signer.sign(&claims())).await.unwrap_err();
    assert!(matches!(again, AuthError::KeysUnavailable(_)), "{again:?}");
}

async fn unreachable_jwks_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/.well-known/jwks.json")
}

// ---------------------------------------------------------------------------------------------
// The axum extractor and the gRPC helper

async fn whoami(principal: Principal) -> String {
    principal.subject
}

async fn admin_only(principal: Principal) -> Result<&'static str, ApiError> {
    require_admin(&principal)?;
    Ok("admin ok")
}

async fn writes_tasks(principal: Principal) -> Result<&'static str, ApiError> {
    require_scope(&principal, "tasks:write")?;
    Ok("write ok")
}

async fn maybe_signed_in(principal: Option<Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |signed_in| signed_in.subject)
}

async fn spawn_api(verifier: TokenVerifier) -> TestServer {
    let routes = Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/admin", get(admin_only))
        .route("/api/v1/tasks", get(writes_tasks))
        .route("/api/v1/feed", get(maybe_signed_in))
        .with_state(Arc::new(verifier));
    crate::spawn(routes, crate::empty_health(), &http_settings()).await
}

async fn get_with_token(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

fn problem(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn extractor_answers_401_problems_with_a_bearer_challenge() {
    let signer = TestSigner::ed25519("ed-current");
    let server = spawn_api(static_verifier(&[&signer])).await;

    let (status, challenge, body) = get_with_token(&server, "/api/v1/whoami", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    let missing = problem(&body);
    assert_eq!(missing["code"], "unauthenticated");
    assert_eq!(missing["detail"], "missing bearer token");

    // Signed by an impostor under the real kid.
    let forged = TestSigner::ed25519("ed-current").sign(&claims());
    let (status, challenge, body) = get_with_token(&server, "/api/v1/whoami", Some(&forged)).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer error=\"invalid_token\"")));
    assert_eq!(problem(&body)["detail"], "invalid token");
    let forged_signature = forged.rsplit('.').next().unwrap();
    assert!(!body.contains(forged_signature), "the token is never echoed: {body}");

    let mut expired_claims = claims();
    expired_claims.exp = now() - 120;
    let (status, _, body) =
        get_with_token(&server, "/api/v1/whoami", Some(&signer.sign(&expired_claims))).await;
    assert_eq!(status, 401);
    assert_eq!(problem(&body)["detail"], "token expired");
}

#[tokio::test]
async fn extractor_yields_the_principal_and_guards_answer_403() {
    let signer = TestSigner::ed25519("ed-current");
    let server = spawn_api(static_verifier(&[&signer])).await;
    let user_claims = claims();
    let user_token = signer.sign(&user_claims);

    let (status, _, body) = get_with_token(&server, "/api/v1/whoami", Some(&user_token)).await;
    assert_eq!((status, body.as_str()), (200, user_claims.sub.as_str()));

    let (status, challenge, body) = get_with_token(&server, "/api/v1/admin", Some(&user_token)).await;
    assert_eq!((status, challenge), (403, None));
    let forbidden = problem(&body);
    assert_eq!(forbidden["code"], "forbidden");
    assert_eq!(forbidden["detail"], "requires the `admin` role");

    let (status, _, body) = get_with_token(&server, "/api/v1/tasks", Some(&user_token)).await;
    assert_eq!(status, 403);
    assert_eq!(problem(&body)["detail"], "requires the `tasks:write` scope");

    let admin_token = signer.sign(&AccessClaims { roles: vec!["admin".to_owned()], ..claims() });
    let (status, _, body) = get_with_token(&server, "/api/v1/admin", Some(&admin_token)).await;
    assert_eq!((status, body.as_str()), (200, "admin ok"));
    let (status, _, body) = get_with_token(&server, "/api/v1/tasks", Some(&admin_token)).await;
    assert_eq!((status, body.as_str()), (200, "write ok"), "admins hold every scope");
}

#[tokio::test]
async fn optional_principal_is_none_without_credentials_but_refuses_bad_ones() {
    let signer = TestSigner::ed25519("ed-current");
    let server = spawn_api(static_verifier(&[&signer])).await;
    let (status, _, body) = get_with_token(&server, "/api/v1/feed", None).await;
    assert_eq!((status, body.as_str()), (200, "anonymous"));
    let user_claims = claims();
    let (status, _, body) = get_with_token(&server, "/api/v1/feed", Some(&signer.sign(&user_claims))).await;
    assert_eq!((status, body.as_str()), (200, user_claims.sub.as_str()));
    let (status, _, _) = get_with_token(&server, "/api/v1/feed", Some("not.a.token")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn extractor_answers_503_when_keys_are_unavailable() {
    let signer = TestSigner::ed25519("ed-current");
    let server = spawn_api(http_verifier(&unreachable_jwks_url().await, 1_000, 300_000)).await;
    let (status, challenge, body) =
        get_with_token(&server, "/api/v1/whoami", Some(&signer.sign(&claims()))).await;
    assert_eq!((status, challenge), (503, None));
    let unavailable = problem(&body);
    assert_eq!(unavailable["code"], "unavailable");
    assert_eq!(unavailable["detail"], "token verification keys unavailable");
}

fn grpc_request(authorization: Option<&str>) -> tonic::Request<()> {
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn grpc_metadata_is_verified_like_http() {
    let signer = TestSigner::ed25519("ed-current");
    let verifier = static_verifier(&[&signer]);
    let token_claims = claims();
    let valid = grpc_request(Some(&format!("Bearer {}", signer.sign(&token_claims))));
    let principal = authenticate_grpc(&verifier, &valid).await.unwrap();
    assert_eq!(principal.subject, token_claims.sub);

    let missing = authenticate_grpc(&verifier, &grpc_request(None)).await.unwrap_err();
    assert_eq!((missing.code(), missing.message()), (tonic::Code::Unauthenticated, "missing bearer token"));

    let mut wrong_audience = claims();
    wrong_audience.aud = "elsewhere".to_owned();
    let invalid_request = grpc_request(Some(&format!("Bearer {}", signer.sign(&wrong_audience))));
    let invalid = authenticate_grpc(&verifier, &invalid_request).await.unwrap_err();
    assert_eq!((invalid.code(), invalid.message()), (tonic::Code::Unauthenticated, "invalid token"));

    let unavailable_verifier = http_verifier(&unreachable_jwks_url().await, 1_000, 300_000);
    let unavailable = authenticate_grpc(&unavailable_verifier, &valid).await.unwrap_err();
    assert_eq!(unavailable.code(), tonic::Code::Unavailable);
}
