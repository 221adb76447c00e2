//! A token issuer for service tests: a fresh Ed25519 key, its JWKS served on a loopback port the
//! way the auth service serves it, and access tokens signed with it. A service under test is
//! configured with [`TestIssuer::auth_url`] and verifies through the same JWKS code as in
//! production.

use axum::Json;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sutazai_kit::auth::{
    ACCESS_TOKEN_HEADER_TYPE, ACCESS_TOKEN_TYPE, ADMIN_ROLE, AccessClaims, PrincipalKind, VerifierSettings,
};

use crate::TestServer;

/// PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
const KEY_ID: &str = "test-key";
/// The audience every test token carries.
pub const TEST_AUDIENCE: &str = "sutazai";

/// Signs access tokens and serves their JWKS until dropped.
#[derive(Debug)]
pub struct TestIssuer {
    server: TestServer,
    encoding_key: EncodingKey,
    issuer: String,
}

impl TestIssuer {
    /// A new key, its JWKS served at `<auth_url>/.well-known/jwks.json`.
    pub async fn start() -> Self {
        // Any 32 bytes are an Ed25519 seed; two v4 UUIDs give a fresh key per test.
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        let encoding_key = EncodingKey::from_ed_der(&der);
        let mut jwk = Jwk::from_encoding_key(&encoding_key, Algorithm::EdDSA)
            .unwrap_or_else(|error| panic!("test jwk: {error}"));
        jwk.common.key_id = Some(KEY_ID.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let set = JwkSet { keys: vec![jwk] };
        let router =
            axum::Router::new().route("/.well-known/jwks.json", get(move || async move { Json(set) }));
        let server = TestServer::spawn(router).await;
        let issuer = server.url("");
        Self { server, encoding_key, issuer }
    }

    /// Where the JWKS is served (a service's `auth_url`).
    pub fn auth_url(&self) -> String {
        self.server.url("")
    }

    /// Verifier settings matching the tokens this issuer signs.
    pub fn verifier_settings(&self) -> VerifierSettings {
        VerifierSettings::new(self.issuer.clone(), TEST_AUDIENCE)
    }

    /// A user token with the given roles and scopes, valid for 15 minutes.
    pub fn token(&self, subject: &str, roles: &[&str], scopes: &[&str]) -> String {
        self.sign(subject, PrincipalKind::User, roles, scopes)
    }

    /// A token of an ordinary user with `scopes`.
    pub fn user_token(&self, subject: &str, scopes: &[&str]) -> String {
        self.token(subject, &["user"], scopes)
    }

    /// A token of an admin.
    pub fn admin_token(&self) -> String {
        self.token("admin", &[ADMIN_ROLE, "user"], &[])
    }

    /// A service-account token (client credentials) with `scopes`.
    pub fn service_token(&self, client_id: &str, scopes: &[&str]) -> String {
        self.sign(client_id, PrincipalKind::Service, &[], scopes)
    }

    fn sign(&self, subject: &str, kind: PrincipalKind, roles: &[&str], scopes: &[&str]) -> String {
        let issued_at = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: TEST_AUDIENCE.to_owned(),
            sub: subject.to_owned(),
            exp: issued_at + 900,
            iat: issued_at,
            nbf: issued_at,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            kind,
            name: subject.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            ver: 0,
            sid: (kind == PrincipalKind::User).then(|| uuid::Uuid::new_v4().to_string()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_HEADER_TYPE.to_owned());
        header.kid = Some(KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .unwrap_or_else(|error| panic!("sign test token: {error}"))
    }
}
