//! TOTP (RFC 6238): 6 digits, 30-second steps, HMAC-SHA1, as authenticator apps expect. A code is
//! accepted for the current step and one step either side (clock skew), and only once: the caller
//! stores the accepted step and passes it back as `last_used_step`.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of now.
pub const SKEW_STEPS: i64 = 1;
const DIGITS: u32 = 6;

/// A new 160-bit secret (RFC 4226 recommends at least 128).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0_u8; 20];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The code for `step` (RFC 4226 HOTP with dynamic truncation).
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("hmac accepts any key"));
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    format!("{:0width$}", binary % 10_u32.pow(DIGITS), width = DIGITS as usize)
}

/// The step containing Unix time `unix_seconds`.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The step `code` matches within the skew window, if it is valid and newer than `last_used_step`.
pub fn accept(secret: &[u8], code: &str, unix_seconds: i64, last_used_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    let matched = (now - SKEW_STEPS..=now + SKEW_STEPS).find(|step| {
        super::secrets::constant_time_eq(code_at_step(secret, *step).as_bytes(), code.as_bytes())
    })?;
    match last_used_step {
        Some(last) if matched <= last => None,
        _ => Some(matched),
    }
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = format!("{}:{}", percent_encode(issuer), percent_encode(account));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32(secret),
        percent_encode(issuer)
    )
}

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut output = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            output.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        output.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    output
}

fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA1 secret "12345678901234567890" (8-digit vectors truncated to 6).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_vectors() {
        assert_eq!(code_at_step(RFC_SECRET, step_at(59)), "287082");
        assert_eq!(code_at_step(RFC_SECRET, step_at(1_111_111_109)), "081804");
        assert_eq!(code_at_step(RFC_SECRET, step_at(1_234_567_890)), "005924");
        assert_eq!(code_at_step(RFC_SECRET, step_at(2_000_000_000)), "279037");
    }

    #[test]
    fn skew_and_replay() {
        let now = 1_700_000_000;
        let previous = code_at_step(RFC_SECRET, step_at(now - 30));
        let next = code_at_step(RFC_SECRET, step_at(now + 30));
        let too_old = code_at_step(RFC_SECRET, step_at(now - 60));
        assert_eq!(accept(RFC_SECRET, &previous, now, None), Some(step_at(now) - 1));
        assert_eq!(accept(RFC_SECRET, &next, now, None), Some(step_at(now) + 1));
        assert_eq!(accept(RFC_SECRET, &too_old, now, None), None);
        let current = code_at_step(RFC_SECRET, step_at(now));
        let used = accept(RFC_SECRET, &current, now, None).unwrap();
        assert_eq!(accept(RFC_SECRET, &current, now, Some(used)), None, "a code is usable once");
        assert_eq!(accept(RFC_SECRET, "12345", now, None), None);
        assert_eq!(accept(RFC_SECRET, "abcdef", now, None), None);
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = otpauth_uri("SutazAI", "ann@example.com", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/SutazAI:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=SutazAI&algorithm=SHA1&digits=6&period=30"
        );
    }
}
