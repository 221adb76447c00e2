//! Signing keys: generated on first start, private halves encrypted with the master key, public
//! halves served as the JWKS. Rotation adds a key that signs from then on and retires the previous
//! one, which stays in the JWKS until every token it signed has expired.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;
use sutazai_kit::auth::{ACCESS_TOKEN_HEADER_TYPE, AccessClaims, StaticKeySource};

use crate::domain::crypto_box::SecretBox;
use crate::error::AuthError;
use crate::settings::SigningAlgorithm;

/// The key that signs, and the public keys verifiers accept.
struct KeySet {
    signing_kid: String,
    algorithm: Algorithm,
    encoding_key: EncodingKey,
    jwks: Value,
}

/// The service's signing keys, reloaded from Postgres after a rotation.
#[derive(Clone)]
pub struct KeyRing {
    pool: PgPool,
    secret_box: SecretBox,
    algorithm: SigningAlgorithm,
    /// Retired keys stay published this long (the longest an access token lives, plus leeway).
    publish_retired_for: Duration,
    current: Arc<RwLock<Arc<KeySet>>>,
    /// The service's own verifier reads its keys from here; updated on every reload.
    published: Arc<StaticKeySource>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KeyRing").field("algorithm", &self.algorithm).finish()
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    algorithm: String,
    private_key_enc: Vec<u8>,
    public_jwk: Value,
    retired_at: Option<DateTime<Utc>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one if there is none.
    pub async fn load(
        pool: PgPool,
        secret_box: SecretBox,
        algorithm: SigningAlgorithm,
        publish_retired_for: Duration,
    ) -> Result<Self, AuthError> {
        let has_active: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
                .fetch_one(&pool)
                .await?;
        if !has_active {
            insert_new_key(&pool, &secret_box, algorithm).await?;
        }
        let key_set = read_key_set(&pool, &secret_box, publish_retired_for).await?;
        let published = Arc::new(StaticKeySource::new(&jwk_set(&key_set.jwks)?));
        Ok(Self {
            pool,
            secret_box,
            algorithm,
            publish_retired_for,
            current: Arc::new(RwLock::new(Arc::new(key_set))),
            published,
        })
    }

    /// The public keys as a key source for this service's own token verifier.
    pub fn key_source(&self) -> Arc<StaticKeySource> {
        Arc::clone(&self.published)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the keys (after a rotation by another process).
    pub async fn reload(&self) -> Result<(), AuthError> {
        let key_set = read_key_set(&self.pool, &self.secret_box, self.publish_retired_for).await?;
        self.published.replace(&jwk_set(&key_set.jwks)?);
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(key_set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(key_set),
        }
        Ok(())
    }

    /// Adds a new signing key and retires the current one; returns the new `kid`.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let kid = rotate_keys(&self.pool, &self.secret_box, self.algorithm).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Signs access-token claims with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let key_set = self.snapshot();
        let mut header = Header::new(key_set.algorithm);
        header.kid = Some(key_set.signing_kid.clone());
        header.typ = Some(ACCESS_TOKEN_HEADER_TYPE.to_owned());
        jsonwebtoken::encode(&header, claims, &key_set.encoding_key).map_err(AuthError::internal)
    }

    /// The published keys: `{"keys": [...]}`.
    pub fn jwks(&self) -> Value {
        self.snapshot().jwks.clone()
    }

    /// The kid that signs now.
    pub fn signing_kid(&self) -> String {
        self.snapshot().signing_kid.clone()
    }
}

/// Retires every active key and adds a new one, in one transaction. Used by the running service
/// and by `sutazai auth rotate-keys`.
pub async fn rotate_keys(
    pool: &PgPool,
    secret_box: &SecretBox,
    algorithm: SigningAlgorithm,
) -> Result<String, AuthError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(&mut *transaction)
        .await?;
    let kid = insert_key(&mut transaction, secret_box, algorithm).await?;
    transaction.commit().await?;
    tracing::info!(%kid, "signing key rotated");
    Ok(kid)
}

async fn insert_new_key(
    pool: &PgPool,
    secret_box: &SecretBox,
    algorithm: SigningAlgorithm,
) -> Result<(), AuthError> {
    let mut transaction = pool.begin().await?;
    // Two instances starting together must not both create a first key.
    sqlx::query("LOCK TABLE signing_keys IN EXCLUSIVE MODE").execute(&mut *transaction).await?;
    let has_active: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
            .fetch_one(&mut *transaction)
            .await?;
    if !has_active {
        insert_key(&mut transaction, secret_box, algorithm).await?;
    }
    transaction.commit().await?;
    Ok(())
}

async fn insert_key(
    transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    secret_box: &SecretBox,
    algorithm: SigningAlgorithm,
) -> Result<String, AuthError> {
    let kid = uuid::Uuid::now_v7().simple().to_string();
    let generated = match algorithm {
        SigningAlgorithm::Eddsa => generate_ed25519(&kid),
        // RSA key generation is CPU-heavy; keep it off the async workers.
        SigningAlgorithm::Rs256 => {
            let kid_for_task = kid.clone();
            tokio::task::spawn_blocking(move || generate_rsa(&kid_for_task))
                .await
                .map_err(AuthError::internal)??
        }
    };
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key_enc, public_jwk) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(generated.algorithm_name)
    .bind(secret_box.seal(&generated.private_der))
    .bind(&generated.public_jwk)
    .execute(&mut **transaction)
    .await?;
    Ok(kid)
}

fn jwk_set(jwks: &Value) -> Result<JwkSet, AuthError> {
    serde_json::from_value(jwks.clone()).map_err(AuthError::internal)
}

struct GeneratedKey {
    algorithm_name: &'static str,
    private_der: Vec<u8>,
    public_jwk: Value,
}

fn generate_ed25519(kid: &str) -> GeneratedKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use rand::RngCore;
    let mut seed = [0_u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signing_key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private_der =
        signing_key.to_pkcs8_der().map(|document| document.as_bytes().to_vec()).unwrap_or_default();
    let public = signing_key.verifying_key().to_bytes();
    GeneratedKey {
        algorithm_name: "EdDSA",
        private_der,
        public_jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public),
            "kid": kid, "alg": "EdDSA", "use": "sig"
        }),
    }
}

fn generate_rsa(kid: &str) -> Result<GeneratedKey, AuthError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(AuthError::internal)?;
    let private_der = private.to_pkcs1_der().map_err(AuthError::internal)?.as_bytes().to_vec();
    Ok(GeneratedKey {
        algorithm_name: "RS256",
        private_der,
        public_jwk: json!({
            "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            "kid": kid, "alg": "RS256", "use": "sig"
        }),
    })
}

async fn read_key_set(
    pool: &PgPool,
    secret_box: &SecretBox,
    publish_retired_for: Duration,
) -> Result<KeySet, AuthError> {
    let retention_s = publish_retired_for.as_secs_f64();
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, algorithm, private_key_enc, public_jwk, retired_at FROM signing_keys
         WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
         ORDER BY created_at DESC",
    )
    .bind(retention_s)
    .fetch_all(pool)
    .await?;
    let Some(active) = rows.iter().find(|row| row.retired_at.is_none()) else {
        return Err(AuthError::Unavailable("signing key"));
    };
    let private_der = secret_box.open(&active.private_key_enc).map_err(AuthError::internal)?;
    let (algorithm, encoding_key) = match active.algorithm.as_str() {
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_der(&private_der)),
        _ => (Algorithm::EdDSA, EncodingKey::from_ed_der(&private_der)),
    };
    let keys: Vec<Value> = rows.iter().map(|row| row.public_jwk.clone()).collect();
    Ok(KeySet { signing_kid: active.kid.clone(), algorithm, encoding_key, jwks: json!({ "keys": keys }) })
}
