//! Password policy and hashing. Hashes are argon2id with OWASP's parameters (19 MiB, 2 passes,
//! 1 lane); verification of an unknown user still runs a hash so that timing does not reveal which
//! usernames exist.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in characters (bounds hashing cost).
pub const MAX_PASSWORD_CHARS: usize = 128;

const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

/// A password rule a new password broke; the message names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    /// Too short or too long.
    #[error("password must be between 10 and 128 characters")]
    Length,
    /// In the shipped list of common passwords.
    #[error("password is too common")]
    Common,
    /// Contains the username.
    #[error("password must not contain the username")]
    ContainsUsername,
}

/// Checks a new password against the policy.
pub fn check_new_password(password: &str, username: &str) -> Result<(), PasswordRule> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(PasswordRule::Length);
    }
    let lowered = password.to_lowercase();
    if common_passwords().contains(lowered.as_str()) {
        return Err(PasswordRule::Common);
    }
    let username = username.trim().to_lowercase();
    if !username.is_empty() && lowered.contains(&username) {
        return Err(PasswordRule::ContainsUsername);
    }
    Ok(())
}

/// A hashing failure (never carries the password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

fn hasher() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1. Params::new only fails for out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (salt included).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    hasher().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(|_| HashError)
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    hasher().verify_password(password.as_bytes(), hash).is_ok()
}

/// Spends the time of one verification, for unknown users.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("dummy password for timing").unwrap_or_default());
    let _ = verify_password(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules() {
        assert_eq!(check_new_password("short", "ann"), Err(PasswordRule::Length));
        assert_eq!(check_new_password(&"x".repeat(129), "ann"), Err(PasswordRule::Length));
        assert_eq!(check_new_password("1234567890", "ann"), Err(PasswordRule::Common));
        assert_eq!(check_new_password("QwertyUiop", "ann"), Err(PasswordRule::Common), "case-insensitive");
        assert_eq!(check_new_password("my-annabel-secret", "annabel"), Err(PasswordRule::ContainsUsername));
        assert_eq!(check_new_password("correct horse battery", "ann"), Ok(()));
    }

    #[test]
    fn common_list_is_loaded() {
        assert!(common_passwords().len() > 1000);
        assert!(!common_passwords().iter().any(|word| word.starts_with('#')));
    }

    #[test]
    fn hash_round_trip_uses_owasp_parameters() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
