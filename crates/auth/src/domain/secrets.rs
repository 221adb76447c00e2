//! Token material: opaque random tokens (refresh tokens, API keys, client secrets), their stored
//! hashes, and the refresh successor derivation.
//!
//! Only SHA-256 hashes of these tokens are stored. They carry 256 random bits, so a fast hash is
//! enough (slow hashing protects low-entropy passwords, not random keys).
//!
//! A refresh token's successor is derived, not random: `successor = HMAC(key, "refresh:" + token)`.
//! A client that retries a refresh within the grace window therefore receives the same successor
//! although the server keeps no plaintext token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "rt_";
/// Prefix of personal API keys.
pub const API_KEY_PREFIX: &str = "sk_";

/// 32 random bytes, base64url, with a prefix telling what the token is.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The successor of a refresh token under `key`.
pub fn refresh_successor(key: &[u8; 32], token: &str) -> String {
    let digest = hmac_sha256(key, &[b"refresh:", token.as_bytes()]);
    format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(digest))
}

/// HMAC-SHA256 of the concatenated `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC is defined for keys of every length (longer keys are hashed first), so
    // `new_from_slice` has no error case here.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("hmac accepts any key"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings in constant time.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0_u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let first = random_token(REFRESH_PREFIX);
        let second = random_token(REFRESH_PREFIX);
        assert!(first.starts_with("rt_"));
        assert_eq!(first.len(), 3 + 43);
        assert_ne!(first, second);
    }

    #[test]
    fn successor_is_deterministic_per_key() {
        let key = [7_u8; 32];
        let token = random_token(REFRESH_PREFIX);
        assert_eq!(refresh_successor(&key, &token), refresh_successor(&key, &token));
        assert_ne!(refresh_successor(&key, &token), refresh_successor(&[8_u8; 32], &token));
        assert_ne!(refresh_successor(&key, &token), token);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
