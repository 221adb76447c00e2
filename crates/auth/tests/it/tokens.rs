//! Every way a bad access token must fail, each by its own test, checked at `GET /me`.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::{PASSWORD, TestAuth, b64, spawn};

async fn valid_setup(name: &str) -> (TestAuth, String, String) {
    let auth = spawn().await;
    let (user_id, access, _refresh) = auth.user(name).await;
    assert_eq!(auth.me_status(&access).await, 200);
    (auth, user_id, access)
}

/// A token whose header and claims are given and whose signature is `signature`.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

#[tokio::test]
async fn a_forged_valid_token_is_accepted_so_the_rejections_below_mean_something() {
    let (auth, user_id, _) = valid_setup("control").await;
    let token = auth.forge(&auth.claims(&user_id)).await;
    assert_eq!(auth.me_status(&token).await, 200);
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let (auth, user_id, _) = valid_setup("algnone").await;
    let (kid, _) = auth.signing_key().await;
    let token = raw_token(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}), &auth.claims(&user_id), b"");
    assert_eq!(auth.me_status(&token).await, 401);
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let (auth, user_id, _) = valid_setup("hmacpub").await;
    let jwks: Value =
        auth.client.get(auth.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = &jwks["keys"][0];
    let public_x = jwk["x"].as_str().unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(jwk["kid"].as_str().unwrap().to_owned());
    header.typ = Some("at+jwt".to_owned());
    for secret in [public_x.as_bytes().to_vec(), serde_json::to_vec(jwk).unwrap()] {
        let token = jsonwebtoken::encode(&header, &auth.claims(&user_id), &EncodingKey::from_secret(&secret))
            .unwrap();
        assert_eq!(auth.me_status(&token).await, 401);
    }
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let (auth, user_id, _) = valid_setup("unknownkid").await;
    let (_, key) = auth.signing_key().await;
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("no-such-key".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let token = jsonwebtoken::encode(&header, &auth.claims(&user_id), &key).unwrap();
    assert_eq!(auth.me_status(&token).await, 401);
}

#[tokio::test]
async fn injected_kid_is_rejected() {
    let (auth, user_id, _) = valid_setup("injectedkid").await;
    let (_, key) = auth.signing_key().await;
    for kid in ["../../../../etc/passwd", "https://evil.example/jwks.json", "kid' OR '1'='1"] {
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.typ = Some("at+jwt".to_owned());
        header.jku = Some("https://evil.example/jwks.json".to_owned());
        let token = jsonwebtoken::encode(&header, &auth.claims(&user_id), &key).unwrap();
        assert_eq!(auth.me_status(&token).await, 401, "kid {kid}");
    }
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let (auth, user_id, _) = valid_setup("expired").await;
    let mut claims = auth.claims(&user_id);
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["nbf"] = json!(now - 3600);
    claims["exp"] = json!(now - 120);
    assert_eq!(auth.me_status(&auth.forge(&claims).await).await, 401);
}

#[tokio::test]
async fn not_yet_valid_token_is_rejected() {
    let (auth, user_id, _) = valid_setup("nbf").await;
    let mut claims = auth.claims(&user_id);
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    assert_eq!(auth.me_status(&auth.forge(&claims).await).await, 401);
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let (auth, user_id, _) = valid_setup("issuer").await;
    let mut claims = auth.claims(&user_id);
    claims["iss"] = json!("http://evil.example");
    assert_eq!(auth.me_status(&auth.forge(&claims).await).await, 401);
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let (auth, user_id, _) = valid_setup("audience").await;
    let mut claims = auth.claims(&user_id);
    claims["aud"] = json!("another-platform");
    assert_eq!(auth.me_status(&auth.forge(&claims).await).await, 401);
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let auth = spawn().await;
    let (_, _, refresh) = auth.user("refreshasaccess").await;
    assert_eq!(auth.me_status(&refresh).await, 401);
    let mut claims = auth.claims("x");
    claims["typ"] = json!("refresh");
    assert_eq!(auth.me_status(&auth.forge(&claims).await).await, 401, "a JWT typed refresh is refused too");
}

#[tokio::test]
async fn access_token_is_not_a_refresh_token() {
    let auth = spawn().await;
    let (_, access, _) = auth.user("accessasrefresh").await;
    let response = auth.post("/api/v1/auth/refresh", json!({"refresh_token": access}), None).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    let (auth, _user_id, access) = valid_setup("tamper").await;
    let parts: Vec<&str> = access.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1]).unwrap(),
    )
    .unwrap();
    claims["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
    assert_eq!(auth.me_status(&tampered).await, 401);
}

#[tokio::test]
async fn revoked_jti_is_rejected() {
    let (auth, user_id, _) = valid_setup("revokedjti").await;
    let claims = auth.claims(&user_id);
    let token = auth.forge(&claims).await;
    assert_eq!(auth.me_status(&token).await, 200);
    let keys = sutazai_kit::auth::RevocationKeys::new(&auth.redis.settings());
    let mut redis = sutazai_kit::redis::connect(&auth.redis.settings()).await.unwrap();
    let () = redis::cmd("SET")
        .arg(keys.revoked_token(claims["jti"].as_str().unwrap()))
        .arg(1)
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(auth.me_status(&token).await, 401);
}

#[tokio::test]
async fn every_token_of_a_session_dies_at_logout() {
    let (auth, _user_id, access) = valid_setup("logout").await;
    let (_, refresh) = auth.login("logout").await;
    let response = auth.post("/api/v1/auth/logout", json!({}), Some(&access)).await;
    assert_eq!(response.status(), 204);
    assert_eq!(auth.me_status(&access).await, 401, "the access token is revoked");
    let second_logout = auth.post("/api/v1/auth/logout", json!({}), Some(&access)).await;
    assert_eq!(second_logout.status(), 401);
    // The other login's session is separate and still works.
    let other = auth.post("/api/v1/auth/refresh", json!({"refresh_token": refresh}), None).await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn logout_revokes_the_refresh_family_of_the_session() {
    let auth = spawn().await;
    let (_, access, refresh) = auth.user("logoutfamily").await;
    assert_eq!(auth.post("/api/v1/auth/logout", json!({}), Some(&access)).await.status(), 204);
    let response = auth.post("/api/v1/auth/refresh", json!({"refresh_token": refresh}), None).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn tokens_issued_before_a_password_change_die() {
    let (auth, _user_id, access) = valid_setup("pwchange").await;
    let (older_access, older_refresh) = auth.login("pwchange").await;
    let response = auth
        .post(
            "/api/v1/auth/password",
            json!({"old_password": PASSWORD, "new_password": "a brand new passphrase"}),
            Some(&access),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(auth.me_status(&access).await, 401);
    assert_eq!(auth.me_status(&older_access).await, 401);
    let refresh = auth.post("/api/v1/auth/refresh", json!({"refresh_token": older_refresh}), None).await;
    assert_eq!(refresh.status(), 401, "refresh families die with the password");
    let fresh = auth.login_response("pwchange", "a brand new passphrase").await;
    assert_eq!(fresh.status(), 200);
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(auth.me_status(fresh["access_token"].as_str().unwrap()).await, 200, "new tokens work");
}

#[tokio::test]
async fn deactivated_users_tokens_die() {
    let auth = spawn().await;
    let admin = auth.admin("rootadmin").await;
    let (user_id, access, _) = auth.user("tobedeactivated").await;
    let response = auth
        .client
        .patch(auth.url(&format!("/api/v1/auth/users/{user_id}")))
        .bearer_auth(&admin)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(auth.me_status(&access).await, 401);
    assert_eq!(auth.login_response("tobedeactivated", PASSWORD).await.status(), 401);
}

#[tokio::test]
async fn missing_token_gets_a_bearer_challenge() {
    let auth = spawn().await;
    let response = auth.client.get(auth.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}
