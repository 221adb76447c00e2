//! Who may act for which owner.
//!
//! The gateway calls on behalf of a user: it forwards the user's token and passes the user as
//! `owner` (or an empty owner for an admin). A user token may only act for its own subject, so a
//! user calling the orchestrator directly cannot claim someone else's tasks. Admin tokens may name
//! any owner, or none for the view over every owner. So may service tokens, but only with the
//! scope of the call (`tasks:read` to read, `tasks:write` to submit or cancel): every service
//! account (the agent workers' too) gets a token, and most have no business with tasks. Ownership
//! of a task is then checked where the state lives: another owner's task is not found, so its
//! existence does not leak.

/// What kind of principal a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalRole {
    /// A person, acting for itself.
    User,
    /// A person or service account with the admin role.
    Admin,
    /// A service account without the admin role.
    Service,
}

/// What a call does to tasks, and so the scope a service token needs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Get, list, watch.
    Read,
    /// Submit, cancel.
    Write,
}

impl Access {
    /// The scope a service token needs.
    pub fn scope(self) -> &'static str {
        match self {
            Self::Read => "tasks:read",
            Self::Write => "tasks:write",
        }
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (user id or service client id).
    pub subject: String,
    /// An admin or a service account: may act for any owner.
    pub privileged: bool,
}

/// Whose tasks a read or a cancel may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerScope {
    /// Only this owner's.
    Owner(String),
    /// Every owner's (admin and service calls with an empty owner).
    Any,
}

impl OwnerScope {
    /// Whether a task or workflow of `owner` is visible.
    pub fn sees(&self, owner: &str) -> bool {
        match self {
            Self::Owner(scope) => scope == owner,
            Self::Any => true,
        }
    }

    /// The owner filter for SQL: `None` for every owner.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Owner(owner) => Some(owner),
            Self::Any => None,
        }
    }
}

/// Why the caller may not act for the requested owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// A submission named no owner.
    #[error("owner: is required")]
    Missing,
    /// A user token named another owner.
    #[error("a user token may only act for its own subject")]
    NotYours,
    /// A service token without the scope the call needs.
    #[error("a service token needs the `{0}` scope")]
    MissingScope(&'static str),
}

impl Caller {
    /// The caller of a call doing `access`, for a token of `subject` with `role` and `scopes`;
    /// a service token without the access's scope may not call at all.
    pub fn authorize(
        subject: String,
        role: PrincipalRole,
        scopes: &[String],
        access: Access,
    ) -> Result<Self, OwnerError> {
        let privileged = match role {
            PrincipalRole::User => false,
            PrincipalRole::Admin => true,
            PrincipalRole::Service if scopes.iter().any(|scope| scope == access.scope()) => true,
            PrincipalRole::Service => return Err(OwnerError::MissingScope(access.scope())),
        };
        Ok(Self { subject, privileged })
    }

    /// The scope of a read or cancel that names `requested_owner` (empty: none).
    pub fn scope(&self, requested_owner: &str) -> Result<OwnerScope, OwnerError> {
        if self.privileged {
            if requested_owner.is_empty() {
                return Ok(OwnerScope::Any);
            }
            return Ok(OwnerScope::Owner(requested_owner.to_owned()));
        }
        if requested_owner.is_empty() || requested_owner == self.subject {
            return Ok(OwnerScope::Owner(self.subject.clone()));
        }
        Err(OwnerError::NotYours)
    }

    /// The owner a submission is stored for: required, and the caller itself for a user token.
    pub fn submission_owner(&self, requested_owner: &str) -> Result<String, OwnerError> {
        if requested_owner.trim().is_empty() {
            return Err(OwnerError::Missing);
        }
        if !self.privileged && requested_owner != self.subject {
            return Err(OwnerError::NotYours);
        }
        Ok(requested_owner.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Caller {
        Caller { subject: "alice".into(), privileged: false }
    }

    fn admin() -> Caller {
        Caller { subject: "admin".into(), privileged: true }
    }

    #[test]
    fn users_see_only_themselves() {
        assert_eq!(user().scope(""), Ok(OwnerScope::Owner("alice".into())));
        assert_eq!(user().scope("alice"), Ok(OwnerScope::Owner("alice".into())));
        assert_eq!(user().scope("bob"), Err(OwnerError::NotYours));
        assert!(!OwnerScope::Owner("alice".into()).sees("bob"));
    }

    #[test]
    fn admins_and_services_see_any_owner() {
        assert_eq!(admin().scope(""), Ok(OwnerScope::Any));
        assert_eq!(admin().scope("bob"), Ok(OwnerScope::Owner("bob".into())));
        assert!(OwnerScope::Any.sees("bob"));
    }

    #[test]
    fn service_tokens_need_the_scope_of_the_call() {
        let scopes = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<String>>();
        let service = |held: &[&str], access| {
            Caller::authorize("agent-worker".into(), PrincipalRole::Service, &scopes(held), access)
        };
        assert_eq!(service(&[], Access::Read), Err(OwnerError::MissingScope("tasks:read")));
        assert_eq!(service(&["vectors:write"], Access::Write), Err(OwnerError::MissingScope("tasks:write")));
        assert_eq!(service(&["tasks:read"], Access::Write), Err(OwnerError::MissingScope("tasks:write")));
        assert_eq!(
            OwnerError::MissingScope("tasks:write").to_string(),
            "a service token needs the `tasks:write` scope"
        );
        let gateway = service(&["tasks:read", "tasks:write"], Access::Write).unwrap();
        assert_eq!(gateway.submission_owner("bob"), Ok("bob".into()));
        assert_eq!(service(&["tasks:read"], Access::Read).unwrap().scope(""), Ok(OwnerScope::Any));
        // Users need no scope here (the gateway checks theirs) and stay limited to themselves.
        let user = Caller::authorize("alice".into(), PrincipalRole::User, &[], Access::Write).unwrap();
        assert_eq!(user, Caller { subject: "alice".into(), privileged: false });
        let admin = Caller::authorize("root".into(), PrincipalRole::Admin, &[], Access::Write).unwrap();
        assert!(admin.privileged);
    }

    #[test]
    fn submissions_need_an_owner() {
        assert_eq!(user().submission_owner(""), Err(OwnerError::Missing));
        assert_eq!(user().submission_owner("bob"), Err(OwnerError::NotYours));
        assert_eq!(admin().submission_owner("bob"), Ok("bob".into()));
    }
}
