//! gRPC adapter (`sutazai.v1.AuthService`): each RPC decodes, calls the same code as REST, and
//! maps the error once. Introspection and user lookup need a service token; the JWKS is public;
//! issuing a service token authenticates with the client credentials themselves.

use sutazai_kit::auth::{Principal, PrincipalKind};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::auth_service_server::{AuthService as AuthRpc, AuthServiceServer};
use tonic::{Request, Response, Status};

use crate::error::AuthError;
use crate::http::AppState;
use crate::service::RequestContext;

/// The gRPC service over the shared state.
#[derive(Clone)]
pub(crate) struct AuthGrpc {
    state: AppState,
}

impl AuthGrpc {
    /// The tonic service to mount.
    pub(crate) fn into_service(state: AppState) -> AuthServiceServer<Self> {
        AuthServiceServer::new(Self { state })
    }

    async fn require_service<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = sutazai_kit::auth::authenticate_grpc(&self.state.verifier, request).await?;
        if principal.kind != PrincipalKind::Service && !principal.is_admin() {
            return Err(to_status(AuthError::Forbidden("a service token is required")));
        }
        Ok(principal)
    }
}

fn to_status(error: AuthError) -> Status {
    match error {
        AuthError::Internal(_) => sutazai_kit::grpc::internal_status(&error),
        other => sutazai_kit::grpc::status(other.code(), other.to_string()),
    }
}

fn timestamp(unix_seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix_seconds, nanos: 0 }
}

#[tonic::async_trait]
impl AuthRpc for AuthGrpc {
    async fn introspect_token(
        &self,
        request: Request<pb::IntrospectTokenRequest>,
    ) -> Result<Response<pb::IntrospectTokenResponse>, Status> {
        self.require_service(&request).await?;
        let token = request.into_inner().token;
        let introspection = crate::http::introspect_token(&self.state, &token).await.map_err(to_status)?;
        if !introspection.active {
            return Ok(Response::new(pb::IntrospectTokenResponse::default()));
        }
        let principal = if token.starts_with(crate::domain::secrets::API_KEY_PREFIX) {
            self.state.service.principal_for_api_key(&token).await.map_err(to_status)?
        } else {
            self.state
                .verifier
                .verify(&token)
                .await
                .map_err(|error| sutazai_kit::grpc::status(error.code(), error.to_string()))?
        };
        let settings = self.state.service.settings();
        Ok(Response::new(pb::IntrospectTokenResponse {
            active: true,
            principal: Some(principal_message(
                &principal,
                token.starts_with(crate::domain::secrets::API_KEY_PREFIX),
            )),
            jti: principal.token_id.clone(),
            issuer: settings.issuer.clone(),
            audiences: vec![settings.audience.clone()],
            issued_at: None,
            expires_at: (principal.expires_at > 0).then(|| timestamp(principal.expires_at)),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let jwks = self.state.service.keys().jwks();
        let text = |key: &serde_json::Value, name: &str| key[name].as_str().unwrap_or_default().to_owned();
        let keys = jwks["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .map(|key| pb::Jwk {
                        kid: text(key, "kid"),
                        kty: text(key, "kty"),
                        alg: text(key, "alg"),
                        key_use: text(key, "use"),
                        crv: text(key, "crv"),
                        x: text(key, "x"),
                        n: text(key, "n"),
                        e: text(key, "e"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let client_ip = request.remote_addr().map(|address| address.ip());
        let body = request.into_inner();
        let requested = if body.scopes.is_empty() { None } else { Some(body.scopes.join(" ")) };
        let context = RequestContext { actor: None, client_ip };
        let (access_token, expires_in, scopes) = self
            .state
            .service
            .client_credentials(&body.client_id, &body.client_secret, requested.as_deref(), &context)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token,
            token_type: "bearer".to_owned(),
            expires_in_s: u32::try_from(expires_in).unwrap_or(u32::MAX),
            scopes,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        self.require_service(&request).await?;
        let user = match request.into_inner().lookup {
            Some(pb::get_user_request::Lookup::UserId(user_id)) => self.state.service.user(&user_id).await,
            Some(pb::get_user_request::Lookup::Username(username)) => {
                self.state.service.user_by_username(&username).await
            }
            None => {
                Err(AuthError::Validation { field: "lookup", message: "give user_id or username".to_owned() })
            }
        }
        .map_err(to_status)?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(pb::User {
                id: user.id.to_string(),
                username: user.username,
                email: user.email,
                roles: user.roles,
                scopes: user.scopes,
                active: user.active,
                mfa_enabled: user.mfa_enabled,
                created_at: Some(timestamp(user.created_at.timestamp())),
            }),
        }))
    }
}

fn principal_message(principal: &Principal, is_api_key: bool) -> pb::Principal {
    let kind = match (principal.kind, is_api_key) {
        (_, true) => pb::PrincipalKind::ApiKey,
        (PrincipalKind::User, false) => pb::PrincipalKind::User,
        (PrincipalKind::Service, false) => pb::PrincipalKind::Service,
    };
    pb::Principal {
        kind: kind.into(),
        subject: principal.subject.clone(),
        username: if principal.kind == PrincipalKind::User { principal.name.clone() } else { String::new() },
        client_id: if principal.kind == PrincipalKind::Service {
            principal.name.clone()
        } else {
            String::new()
        },
        roles: principal.roles.clone(),
        scopes: principal.scopes.clone(),
    }
}
