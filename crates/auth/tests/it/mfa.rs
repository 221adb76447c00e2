//! TOTP: enrolment, skew, single use, and login without a code.

use serde_json::{Value, json};
use sutazai_auth::domain::totp;

use crate::{PASSWORD, TestAuth, spawn};

fn secret_of(enrollment: &Value) -> Vec<u8> {
    let text = enrollment["secret"].as_str().unwrap();
    // Decode the base32 secret the way an authenticator app does.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for character in text.chars() {
        bits = (bits << 5) | alphabet.find(character).unwrap() as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    bytes
}

fn code(secret: &[u8], offset_s: i64) -> String {
    totp::code_at_step(secret, totp::step_at(chrono::Utc::now().timestamp() + offset_s))
}

async fn login_with(auth: &TestAuth, code: Option<&str>) -> reqwest::Response {
    let mut body = json!({"username_or_email": "mfauser", "password": PASSWORD});
    if let Some(code) = code {
        body["totp"] = json!(code);
    }
    auth.post("/api/v1/auth/login", body, None).await
}

#[tokio::test]
async fn totp_enrolment_skew_and_single_use() {
    let auth = spawn().await;
    let (_, access, _) = auth.user("mfauser").await;
    let enrollment: Value =
        auth.post("/api/v1/auth/mfa/enroll", json!({}), Some(&access)).await.json().await.unwrap();
    let uri = enrollment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/SutazAI:mfauser?secret="), "{uri}");
    let secret = secret_of(&enrollment);

    let wrong = auth.post("/api/v1/auth/mfa/confirm", json!({"code": "000000"}), Some(&access)).await;
    assert_eq!(wrong.status(), 422);
    // Confirm with the previous step's code (30 s of skew), so the current and next steps remain.
    let confirm =
        auth.post("/api/v1/auth/mfa/confirm", json!({"code": code(&secret, -30)}), Some(&access)).await;
    assert_eq!(confirm.status(), 204);
    let me: Value = auth.get("/api/v1/auth/me", &access).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], true);

    let without_code = login_with(&auth, None).await;
    assert_eq!(without_code.status(), 401);
    assert!(
        without_code.json::<Value>().await.unwrap()["detail"].as_str().unwrap().starts_with("mfa_required")
    );

    let current = code(&secret, 0);
    assert_eq!(login_with(&auth, Some(&current)).await.status(), 200);
    let replay = login_with(&auth, Some(&current)).await;
    assert_eq!(replay.status(), 401, "a code is usable once");
    let ahead = code(&secret, 30);
    assert_eq!(login_with(&auth, Some(&ahead)).await.status(), 200, "the next step is accepted (+30 s skew)");
    let behind = code(&secret, -30);
    assert_eq!(login_with(&auth, Some(&behind)).await.status(), 401, "older than a used step");

    let disable_wrong = auth.post("/api/v1/auth/mfa/disable", json!({"code": "123456"}), Some(&access)).await;
    assert_eq!(disable_wrong.status(), 422, "disabling needs a current code");
}

#[tokio::test]
async fn wrong_totp_codes_count_toward_the_lockout() {
    let auth = spawn().await;
    let (_, access, _) = auth.user("mfauser").await;
    let enrollment: Value =
        auth.post("/api/v1/auth/mfa/enroll", json!({}), Some(&access)).await.json().await.unwrap();
    let secret = secret_of(&enrollment);
    assert_eq!(
        auth.post("/api/v1/auth/mfa/confirm", json!({"code": code(&secret, -30)}), Some(&access))
            .await
            .status(),
        204
    );
    for attempt in 0..5 {
        assert_eq!(login_with(&auth, Some("000000")).await.status(), 401, "attempt {attempt}");
    }
    let locked = login_with(&auth, Some(&code(&secret, 0))).await;
    assert_eq!(locked.status(), 423, "guessing codes with the right password locks the account");
}

#[tokio::test]
async fn disabling_mfa_with_a_current_code() {
    let auth = spawn().await;
    let (_, access, _) = auth.user("mfauser").await;
    let enrollment: Value =
        auth.post("/api/v1/auth/mfa/enroll", json!({}), Some(&access)).await.json().await.unwrap();
    let secret = secret_of(&enrollment);
    assert_eq!(
        auth.post("/api/v1/auth/mfa/confirm", json!({"code": code(&secret, -30)}), Some(&access))
            .await
            .status(),
        204
    );
    let disable =
        auth.post("/api/v1/auth/mfa/disable", json!({"code": code(&secret, 0)}), Some(&access)).await;
    assert_eq!(disable.status(), 204);
    assert_eq!(login_with(&auth, None).await.status(), 200);
}
