//! Admin endpoints: users, service accounts, key rotation, the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_kit::http::{ApiError, ClientIp, Page, PageOf, parse_uuid};

use super::{Admin, AppState, context};
use crate::service::{AuditEntry, CreatedServiceAccount, NewUser, UserView};

pub(super) async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    page: Page,
) -> Result<Json<PageOf<UserView>>, ApiError> {
    let (users, total) = state.service.list_users(page.skip, page.limit).await?;
    Ok(Json(PageOf::new(users, total, page)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateUserBody {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Admin(admin): Admin,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if let Some(unknown) =
        body.roles.iter().find(|role| !crate::service::KNOWN_ROLES.contains(&role.as_str()))
    {
        return Err(ApiError::validation("roles", format!("unknown role `{unknown}`")));
    }
    let new_user =
        NewUser { username: body.username, email: body.email, password: body.password, roles: body.roles };
    let user = state.service.register(new_user, &context(Some(&admin), client_ip)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateUserBody {
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    active: Option<bool>,
}

pub(super) async fn update_user(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Admin(admin): Admin,
    Path(id): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    let user_id = parse_uuid("id", &id)?;
    let user = state
        .service
        .update_user(user_id, body.roles, body.active, &context(Some(&admin), client_ip))
        .await?;
    Ok(Json(user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceAccountBody {
    client_id: String,
    scopes: Vec<String>,
}

pub(super) async fn create_service_account(
    State(state): State<AppState>,
    client_ip: ClientIp,
    Admin(admin): Admin,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<ServiceAccountBody>,
) -> Result<(StatusCode, Json<CreatedServiceAccount>), ApiError> {
    let created = state
        .service
        .create_service_account(&body.client_id, body.scopes, &context(Some(&admin), client_ip))
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn rotate_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let kid = state.service.keys().rotate().await?;
    Ok(Json(json!({"kid": kid})))
}

pub(super) async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    page: Page,
) -> Result<Json<PageOf<AuditEntry>>, ApiError> {
    let (entries, total) = state.service.list_audit(page.skip, page.limit).await?;
    Ok(Json(PageOf::new(entries, total, page)))
}
