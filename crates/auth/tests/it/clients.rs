//! Service accounts, introspection, API keys, the JWKS with key rotation, and admin endpoints.

use serde_json::{Value, json};
use sutazai_proto::v1::auth_service_client::AuthServiceClient;

use crate::{TestAuth, spawn};

async fn service_account(auth: &TestAuth, admin: &str, client_id: &str, scopes: Value) -> String {
    let response = auth
        .post("/api/v1/auth/service-accounts", json!({"client_id": client_id, "scopes": scopes}), Some(admin))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["client_secret"].as_str().unwrap().to_owned()
}

async fn client_token(
    auth: &TestAuth,
    client_id: &str,
    secret: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form =
        vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    auth.client.post(auth.url("/api/v1/auth/token")).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn client_credentials_and_introspection() {
    let auth = spawn().await;
    let admin = auth.admin("opsadmin").await;
    let secret =
        service_account(&auth, &admin, "orchestrator", json!(["tasks:write", "auth:introspect"])).await;

    let wrong = client_token(&auth, "orchestrator", "cs_wrong", None).await;
    assert_eq!(wrong.status(), 401);
    let unknown = client_token(&auth, "nobody", &secret, None).await;
    assert_eq!(unknown.status(), 401);
    let too_wide = client_token(&auth, "orchestrator", &secret, Some("tasks:write admin:all")).await;
    assert_eq!(too_wide.status(), 403);

    let issued = client_token(&auth, "orchestrator", &secret, Some("tasks:write")).await;
    assert_eq!(issued.status(), 200);
    let issued: Value = issued.json().await.unwrap();
    assert_eq!(issued["scope"], "tasks:write");
    let service_token = issued["access_token"].as_str().unwrap().to_owned();

    let (_, user_access, _) = auth.user("introspected").await;
    let active: Value = auth
        .post("/api/v1/auth/introspect", json!({"token": user_access}), Some(&service_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "introspected");
    let inactive: Value = auth
        .post("/api/v1/auth/introspect", json!({"token": "not.a.token"}), Some(&service_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inactive, json!({"active": false}));
    let by_user =
        auth.post("/api/v1/auth/introspect", json!({"token": user_access}), Some(&user_access)).await;
    assert_eq!(by_user.status(), 403, "introspection needs a service token");
}

#[tokio::test]
async fn grpc_issues_service_tokens_and_introspects() {
    let auth = spawn().await;
    let admin = auth.admin("grpcadmin").await;
    let secret = service_account(&auth, &admin, "coordinator", json!(["agents:read"])).await;
    let channel =
        tonic::transport::Endpoint::from_shared(auth.base.clone()).unwrap().connect().await.unwrap();
    let mut client = AuthServiceClient::new(channel);
    let wrong = client
        .issue_service_token(sutazai_proto::v1::IssueServiceTokenRequest {
            client_id: "coordinator".into(),
            client_secret: "cs_bad".into(),
            scopes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    let issued = client
        .issue_service_token(sutazai_proto::v1::IssueServiceTokenRequest {
            client_id: "coordinator".into(),
            client_secret: secret,
            scopes: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.scopes, ["agents:read"]);

    let (_, user_access, _) = auth.user("grpcuser").await;
    let mut request = tonic::Request::new(sutazai_proto::v1::IntrospectTokenRequest { token: user_access });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {}", issued.access_token).parse().unwrap());
    let introspection = client.introspect_token(request).await.unwrap().into_inner();
    assert!(introspection.active);
    assert_eq!(introspection.principal.unwrap().username, "grpcuser");

    let unauthenticated = client
        .introspect_token(sutazai_proto::v1::IntrospectTokenRequest { token: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    let jwks = client.get_jwks(sutazai_proto::v1::GetJwksRequest {}).await.unwrap().into_inner();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].alg, "EdDSA");
}

#[tokio::test]
async fn api_keys_are_shown_once_and_introspectable() {
    let auth = spawn().await;
    let admin = auth.admin("keyadmin").await;
    let (_, access, _) = auth.user("keyholder").await;
    let created = auth.post("/api/v1/auth/api-keys", json!({"name": "laptop"}), Some(&access)).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_"));
    let listed: Value = auth.get("/api/v1/auth/api-keys", &access).await.json().await.unwrap();
    assert_eq!(listed["total"], 1);
    assert!(!listed.to_string().contains(&key), "the key is never listed");

    let introspected: Value =
        auth.post("/api/v1/auth/introspect", json!({"token": key}), Some(&admin)).await.json().await.unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["username"], "keyholder");

    let admin_key: Value = auth
        .post("/api/v1/auth/api-keys", json!({"name": "narrow", "scopes": ["chat"]}), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let narrow = auth.service.principal_for_api_key(admin_key["key"].as_str().unwrap()).await.unwrap();
    assert!(!narrow.is_admin(), "an admin's key acts within its scopes only");
    assert!(narrow.has_scope("chat") && !narrow.has_scope("tasks:write"));

    let id = created["id"].as_str().unwrap();
    let other = auth.user("someoneelse").await.1;
    let foreign = auth
        .client
        .delete(auth.url(&format!("/api/v1/auth/api-keys/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "another user's key is invisible");
    let revoked = auth
        .client
        .delete(auth.url(&format!("/api/v1/auth/api-keys/{id}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let after: Value =
        auth.post("/api/v1/auth/introspect", json!({"token": key}), Some(&admin)).await.json().await.unwrap();
    assert_eq!(after["active"], false);
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid_and_sign_new_ones() {
    let auth = spawn().await;
    let admin = auth.admin("rotator").await;
    let (_, old_access, _) = auth.user("rotateuser").await;
    let before: Value =
        auth.client.get(auth.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let rotated = auth.post("/api/v1/auth/keys/rotate", json!({}), Some(&admin)).await;
    assert_eq!(rotated.status(), 200);
    let new_kid = rotated.json::<Value>().await.unwrap()["kid"].as_str().unwrap().to_owned();
    let after: Value =
        auth.client.get(auth.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> =
        after["keys"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "current and previous key");
    assert_eq!(kids[0], new_kid);
    assert!(after.to_string().find("\"d\"").is_none(), "no private key material in the JWKS");
    assert_eq!(auth.me_status(&old_access).await, 200, "tokens of the previous key verify until they expire");
    let (new_access, _) = auth.login("rotateuser").await;
    let header = jsonwebtoken::decode_header(&new_access).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(auth.me_status(&new_access).await, 200);
    let by_user = auth.post("/api/v1/auth/keys/rotate", json!({}), Some(&new_access)).await;
    assert_eq!(by_user.status(), 403);
}

#[tokio::test]
async fn admin_lists_users_and_audit_with_pagination() {
    let auth = spawn().await;
    let admin = auth.admin("auditor").await;
    auth.register("listed").await;
    auth.login_response("listed", "wrong password!").await;
    let users: Value = auth.get("/api/v1/auth/users?limit=1", &admin).await.json().await.unwrap();
    assert_eq!(users["total"], 2);
    assert_eq!(users["limit"], 1);
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    let bad_limit = auth.get("/api/v1/auth/users?limit=1001", &admin).await;
    assert_eq!(bad_limit.status(), 422);
    let zero = auth.get("/api/v1/auth/users?limit=0", &admin).await;
    assert_eq!(zero.status(), 422);
    let audit: Value = auth.get("/api/v1/auth/audit", &admin).await.json().await.unwrap();
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["action"].as_str().unwrap(), entry["outcome"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("login", "failure")), "{actions:?}");
    assert!(actions.contains(&("register", "success")), "{actions:?}");
    let failure =
        audit["items"].as_array().unwrap().iter().find(|entry| entry["outcome"] == "failure").unwrap();
    assert_eq!(failure["ip"], "127.0.0.1");
    let (_, user_access, _) = auth.user("notadmin").await;
    assert_eq!(auth.get("/api/v1/auth/audit", &user_access).await.status(), 403);
    assert_eq!(auth.get("/api/v1/auth/users", &user_access).await.status(), 403);
}
