//! [`ResponseCache`]: whole chat answers in Redis, keyed by a hash of the whole normalized
//! request, so two prompts that differ anywhere — even after a long shared prefix — never share
//! an answer.
//!
//! Keys are `<configured prefix><service prefix>llm:cache:<sha256 hex>`. Statistics and clearing
//! touch only keys under that prefix, never the rest of the database. The cache is an
//! optimisation: when Redis fails, a lookup is a miss and a store is skipped, both logged.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sutazai_kit::redis::RedisKeys;

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse};

/// The cache's own namespace inside a service's Redis prefix.
const CACHE_NAMESPACE: &str = "llm:cache:";

/// Bumped whenever the canonical form changes, so old entries are never read with new meaning.
const CANONICAL_FORM_VERSION: u32 = 1;

/// Keys asked for per SCAN round trip.
const SCAN_BATCH: usize = 500;

/// Hit, miss and size figures of the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Lookups answered from the cache since this process started.
    pub hits: u64,
    /// Lookups that went to the provider since this process started.
    pub misses: u64,
    /// Cached answers in Redis now (all processes sharing the prefix).
    pub keys: u64,
}

impl CacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }
}

/// Chat answers cached in Redis.
#[derive(Clone)]
pub struct ResponseCache {
    connection: ConnectionManager,
    key_prefix: String,
    ttl: Duration,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ResponseCache")
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The request as hashed: every field that changes the answer, in a fixed order.
#[derive(Serialize)]
struct CanonicalRequest<'a> {
    version: u32,
    model: &'a str,
    messages: Vec<(&'static str, &'a str)>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    /// Left out when unset, so keys of requests without it stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
    stop: &'a [String],
}

impl ResponseCache {
    /// A cache under `keys` (a service's prefix, e.g. `prod:gw:`) whose entries live `ttl`.
    pub fn new(connection: ConnectionManager, keys: &RedisKeys, ttl: Duration) -> Self {
        Self {
            connection,
            key_prefix: keys.key(CACHE_NAMESPACE),
            ttl,
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The Redis key of `request`, whose model must already be resolved: the prefix and the hex
    /// SHA-256 of a canonical JSON of the model, every message with its role, and every
    /// sampling option.
    pub fn key_for(&self, request: &ChatRequest) -> String {
        format!("{}{}", self.key_prefix, request_digest_hex(request))
    }

    /// The cached answer under `key`, counting the hit or miss.
    pub(crate) async fn lookup(&self, key: &str) -> Option<ChatResponse> {
        let mut connection = self.connection.clone();
        let cached: Option<String> = match redis::cmd("GET").arg(key).query_async(&mut connection).await {
            Ok(cached) => cached,
            Err(error) => {
                tracing::warn!(%error, "llm response cache lookup failed; asking the provider");
                None
            }
        };
        let response = cached.and_then(|json| match serde_json::from_str::<ChatResponse>(&json) {
            Ok(response) => Some(response),
            Err(error) => {
                tracing::warn!(%error, "undecodable llm cache entry ignored");
                None
            }
        });
        if response.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("llm_cache_hits_total").increment(1);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("llm_cache_misses_total").increment(1);
        }
        response
    }

    /// Stores `response` under `key` for the configured TTL.
    pub(crate) async fn store(&self, key: &str, response: &ChatResponse) {
        let Ok(json) = serde_json::to_string(response) else { return };
        let mut connection = self.connection.clone();
        let stored: Result<(), _> = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .query_async(&mut connection)
            .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "llm response cache store failed");
        }
    }

    /// Hits and misses of this process, and the number of cached answers in Redis.
    pub async fn stats(&self) -> Result<CacheStats, LlmError> {
        let keys = self.scan(&self.match_pattern(None), |_| {}).await?;
        Ok(CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            keys,
        })
    }

    /// Deletes cached answers and returns how many were deleted: all of them, or those whose key
    /// after the cache prefix matches the glob `pattern`. The prefix is always prepended, so no
    /// pattern reaches a key outside the cache.
    pub async fn clear(&self, pattern: Option<&str>) -> Result<u64, LlmError> {
        let mut matched_keys = Vec::new();
        self.scan(&self.match_pattern(pattern), |key| matched_keys.push(key)).await?;
        let mut deleted = 0;
        for batch in matched_keys.chunks(SCAN_BATCH) {
            let mut connection = self.connection.clone();
            let removed: u64 =
                redis::cmd("UNLINK").arg(batch).query_async(&mut connection).await.map_err(cache_error)?;
            deleted += removed;
        }
        Ok(deleted)
    }

    fn match_pattern(&self, pattern: Option<&str>) -> String {
        format!("{}{}", escape_glob(&self.key_prefix), pattern.unwrap_or("*"))
    }

    /// SCANs keys matching `pattern`, handing each to `visit`; returns how many there were.
    async fn scan(&self, pattern: &str, mut visit: impl FnMut(String)) -> Result<u64, LlmError> {
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next_cursor, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut connection)
                .await
                .map_err(cache_error)?;
            for key in keys {
                count += 1;
                visit(key);
            }
            if next_cursor == 0 {
                return Ok(count);
            }
            cursor = next_cursor;
        }
    }
}

/// Hex SHA-256 of the canonical JSON of `request`.
fn request_digest_hex(request: &ChatRequest) -> String {
    let canonical = CanonicalRequest {
        version: CANONICAL_FORM_VERSION,
        model: request.model.trim(),
        messages: request
            .messages
            .iter()
            .map(|message| (message.role.as_str(), message.content.as_str()))
            .collect(),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        max_tokens: request.max_tokens,
        seed: request.seed,
        stop: &request.stop,
    };
    // Serializing strings and numbers cannot fail; should it ever, the empty document only
    // collides with itself and the answer is merely cached under a shared key.
    let canonical_json = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(&canonical_json) {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0x0f), 16).unwrap_or('0'));
    }
    hex
}

fn cache_error(error: redis::RedisError) -> LlmError {
    LlmError::unavailable(format!("response cache: {error}"))
}

/// Escapes Redis glob metacharacters so a prefix matches only itself.
fn escape_glob(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len());
    for character in literal.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ChatMessage;

    fn request(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest::new("llama3.2:1b", messages)
    }

    #[test]
    fn the_digest_covers_the_whole_request() {
        let shared_prefix = "x".repeat(300);
        let base = request(vec![ChatMessage::user(format!("{shared_prefix} tell me about cats"))]);
        let digest = request_digest_hex(&base);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, request_digest_hex(&base.clone()));

        let mut variants = Vec::new();
        variants.push(request(vec![ChatMessage::user(format!("{shared_prefix} tell me about dogs"))]));
        variants.push(request(vec![ChatMessage::system(format!("{shared_prefix} tell me about cats"))]));
        variants.push(ChatRequest { model: "mistral:latest".to_owned(), ..base.clone() });
        variants.push(ChatRequest { temperature: Some(0.1), ..base.clone() });
        variants.push(ChatRequest { top_p: Some(0.9), ..base.clone() });
        variants.push(ChatRequest { top_k: Some(5), ..base.clone() });
        variants.push(ChatRequest { max_tokens: Some(10), ..base.clone() });
        variants.push(ChatRequest { seed: Some(1), ..base.clone() });
        variants.push(ChatRequest { stop: vec!["\n".to_owned()], ..base.clone() });
        for variant in &variants {
            assert_ne!(request_digest_hex(variant), digest, "{variant:?}");
        }
    }

    #[test]
    fn message_boundaries_are_part_of_the_digest() {
        let one = request(vec![ChatMessage::user("ab")]);
        let two = request(vec![ChatMessage::user("a"), ChatMessage::user("b")]);
        assert_ne!(request_digest_hex(&one), request_digest_hex(&two));
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(escape_glob("test:a*b?[c]\\:"), "test:a\\*b\\?\\[c\\]\\\\:");
    }

    #[test]
    fn hit_rate_is_hits_over_lookups() {
        assert_eq!(CacheStats { hits: 0, misses: 0, keys: 0 }.hit_rate(), 0.0);
        assert_eq!(CacheStats { hits: 3, misses: 1, keys: 9 }.hit_rate(), 0.75);
    }
}
