//! Admin user management: list, create with roles, change roles or deactivate. Deactivation and
//! role changes raise the user's token version, so earlier tokens stop working everywhere.

use serde_json::json;
use uuid::Uuid;

use super::accounts::{USER_COLUMNS, UserRow, UserView};
use super::audit::AuditEvent;
use super::{AuthService, RequestContext};
use crate::error::AuthError;

/// Roles an admin may grant.
pub const KNOWN_ROLES: [&str; 2] = ["user", "admin"];

impl AuthService {
    /// Users by creation time, paginated.
    pub async fn list_users(&self, skip: i64, limit: i64) -> Result<(Vec<UserView>, i64), AuthError> {
        let rows = sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at OFFSET $1 LIMIT $2"
        ))
        .bind(skip)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&self.pool).await?;
        Ok((rows.iter().map(UserRow::view).collect(), total))
    }

    /// Creates an admin, or gives an existing account (by username) the admin role.
    pub async fn create_admin(
        &self,
        username: String,
        email: String,
        password: String,
    ) -> Result<UserView, AuthError> {
        let context = RequestContext { actor: Some("cli".to_owned()), client_ip: None };
        if let Some(existing) = self.find_user_by_login(&username).await? {
            let mut roles = existing.roles.clone();
            if !roles.iter().any(|role| role == "admin") {
                roles.push("admin".to_owned());
            }
            return self.update_user(existing.id, Some(roles), Some(true), &context).await;
        }
        let roles = vec!["user".to_owned(), "admin".to_owned()];
        self.register(super::NewUser { username, email, password, roles }, &context).await
    }

    /// Changes a user's roles and/or active flag.
    pub async fn update_user(
        &self,
        user_id: Uuid,
        roles: Option<Vec<String>>,
        active: Option<bool>,
        context: &RequestContext,
    ) -> Result<UserView, AuthError> {
        if let Some(unknown) = roles.iter().flatten().find(|role| !KNOWN_ROLES.contains(&role.as_str())) {
            return Err(AuthError::Validation {
                field: "roles",
                message: format!("unknown role `{unknown}`"),
            });
        }
        let updated = sqlx::query_as::<_, UserRow>(&format!(
            "UPDATE users SET roles = COALESCE($2, roles), active = COALESCE($3, active),
                 token_version = token_version + 1, updated_at = now()
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(user_id)
        .bind(&roles)
        .bind(active)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(AuthError::NotFound("user"))?;
        let subject = user_id.to_string();
        if active == Some(false) {
            self.revoke_all_sessions(user_id, "deactivated").await?;
        }
        self.publish_token_version(&subject, updated.token_version).await?;
        self.audit(
            context,
            AuditEvent::new("user_update", Some(&subject), "success")
                .with_detail(json!({"roles": roles, "active": active})),
        )
        .await;
        Ok(updated.view())
    }
}
