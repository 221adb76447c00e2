//! Leases: a granted claim on an amount of one resource until it expires or is released, the
//! request for one, why a request was denied, and who may act on whose leases.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::resource::ResourceKey;

/// The highest priority.
pub const MAX_PRIORITY: u32 = 9;

/// The highest priority an ordinary user may ask for. A user's requests preempt only that
/// user's own leases (see [`Caller::preempt_scope`]); admins and services preempt anyone's.
pub const MAX_USER_PRIORITY: u32 = 5;

/// Longest holder name (an agent id, a user id, a service name).
pub const MAX_HOLDER_BYTES: usize = 200;

/// A lease id (UUID v7: ordered by creation, handy in the journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub Uuid);

impl LeaseId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Reads the canonical text form.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// How a lease stands in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Held (unless its expiry has passed and the sweeper has not marked it yet).
    Active,
    /// Returned by its holder.
    Released,
    /// Not renewed in time.
    Expired,
    /// Revoked for a higher-priority request.
    Preempted,
}

impl LeaseStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Preempted => "preempted",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Released, Self::Expired, Self::Preempted]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: LeaseId,
    /// The pool it draws from.
    pub resource: ResourceKey,
    /// How much, in the resource's unit.
    pub amount: u64,
    /// Who holds it (a user id, an agent id, a service name).
    pub holder: String,
    /// 0 (lowest) ..= 9.
    pub priority: u32,
    /// Lifetime without renewal.
    pub ttl_s: u32,
    /// When it was granted (by the Redis clock that decided it).
    pub acquired_at: DateTime<Utc>,
    /// Grant or last renewal plus `ttl_s`.
    pub expires_at: DateTime<Utc>,
}

/// A request for a lease, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The pool.
    pub resource: ResourceKey,
    /// At least 1.
    pub amount: u64,
    /// At least 1, at most the configured maximum.
    pub ttl_s: u32,
    /// 0 ..= 9.
    pub priority: u32,
    /// Who will hold it.
    pub holder: String,
}

/// A granted request: the lease and the leases revoked to make room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The new lease.
    pub lease: Lease,
    /// Lower-priority leases preempted for it, lowest priority (then newest) first.
    pub preempted: Vec<Lease>,
}

/// Why a request was denied, with the numbers the decision compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// All live leases together would exceed the pool's limit, and preemption could not (or may
    /// not) make enough room.
    Total {
        /// Held by live leases.
        allocated: u64,
        /// The pool's limit under its policy.
        limit: u64,
        /// The request's amount.
        requested: u64,
    },
    /// The holder's live leases would exceed the per-holder limit.
    PerHolder {
        /// Held by this holder's live leases.
        held: u64,
        /// The per-holder limit.
        limit: u64,
        /// The request's amount.
        requested: u64,
    },
}

impl Denial {
    /// The reason sent to the client, e.g. `cpu: 6000 of 6400 millicores allocated, 2000 requested`.
    pub fn reason(&self, resource: &ResourceKey, holder: &str) -> String {
        let unit = resource.kind().unit();
        match self {
            Self::Total { allocated, limit, requested } => {
                format!("{resource}: {allocated} of {limit} {unit} allocated, {requested} requested")
            }
            Self::PerHolder { held, limit, requested } => format!(
                "{resource}: holder {holder} holds {held} of {limit} {unit} allowed per holder, {requested} requested"
            ),
        }
    }
}

/// Who is calling, as far as lease rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (user id or service client id).
    pub subject: String,
    /// Holds the admin role.
    pub is_admin: bool,
    /// A service account (client credentials): it acts for the holders it names.
    pub is_service: bool,
}

/// A caller acting outside what it may do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub &'static str);

impl Caller {
    /// Admins and services act for any holder; users only for themselves.
    fn acts_for_anyone(&self) -> bool {
        self.is_admin || self.is_service
    }

    /// The holder a new lease gets: the named one, or the caller itself when none is named.
    pub fn holder_for_acquire(&self, named: &str) -> Result<String, NotAllowed> {
        if named.is_empty() {
            return Ok(self.subject.clone());
        }
        if named != self.subject && !self.acts_for_anyone() {
            return Err(NotAllowed("holder: a user may only lease in its own name"));
        }
        Ok(named.to_owned())
    }

    /// Whether the caller may ask for `priority`.
    pub fn check_priority(&self, priority: u32) -> Result<(), NotAllowed> {
        if priority > MAX_USER_PRIORITY && !self.acts_for_anyone() {
            return Err(NotAllowed("priority above 5 needs the `admin` role or a service token"));
        }
        Ok(())
    }

    /// Whose leases the caller's requests may preempt: `None` for any. A user's priority only
    /// orders its own leases; it must not revoke another user's or a service's work.
    pub fn preempt_scope(&self) -> Option<&str> {
        if self.acts_for_anyone() { None } else { Some(&self.subject) }
    }

    /// Whose leases the caller may renew: `None` for any.
    pub fn renew_scope(&self) -> Option<&str> {
        if self.acts_for_anyone() { None } else { Some(&self.subject) }
    }

    /// Whose leases the caller may release, given the holder it names: `None` for any. An empty
    /// name is an admin's "any" and everyone else's "mine"; a user naming someone else is refused
    /// (as on acquire), while a lease of another holder is simply not found.
    pub fn release_scope(&self, named: &str) -> Result<Option<String>, NotAllowed> {
        if named.is_empty() {
            return Ok(if self.is_admin { None } else { Some(self.subject.clone()) });
        }
        if named != self.subject && !self.acts_for_anyone() {
            return Err(NotAllowed("holder: a user may only release its own leases"));
        }
        Ok(Some(named.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(subject: &str, is_admin: bool, is_service: bool) -> Caller {
        Caller { subject: subject.to_owned(), is_admin, is_service }
    }

    #[test]
    fn reasons_name_the_numbers_and_unit() {
        let cpu = ResourceKey::parse("cpu").unwrap();
        let total = Denial::Total { allocated: 6000, limit: 6400, requested: 2000 };
        assert_eq!(total.reason(&cpu, "alice"), "cpu: 6000 of 6400 millicores allocated, 2000 requested");
        let held = Denial::PerHolder { held: 2000, limit: 2400, requested: 1000 };
        assert_eq!(
            held.reason(&cpu, "alice"),
            "cpu: holder alice holds 2000 of 2400 millicores allowed per holder, 1000 requested"
        );
        let slots = ResourceKey::parse("llm_slots:ollama/smollm2:135m").unwrap();
        let busy = Denial::Total { allocated: 1, limit: 1, requested: 1 };
        assert_eq!(
            busy.reason(&slots, "x"),
            "llm_slots:ollama/smollm2:135m: 1 of 1 slots allocated, 1 requested"
        );
    }

    #[test]
    fn users_lease_only_in_their_own_name() {
        let alice = caller("alice", false, false);
        assert_eq!(alice.holder_for_acquire(""), Ok("alice".to_owned()));
        assert_eq!(alice.holder_for_acquire("alice"), Ok("alice".to_owned()));
        assert!(alice.holder_for_acquire("bob").is_err());
        assert_eq!(caller("gateway", false, true).holder_for_acquire("agent-7"), Ok("agent-7".to_owned()));
        assert_eq!(caller("admin", true, false).holder_for_acquire("bob"), Ok("bob".to_owned()));
    }

    #[test]
    fn high_priorities_need_admin_or_service() {
        let alice = caller("alice", false, false);
        assert!(alice.check_priority(5).is_ok());
        assert!(alice.check_priority(6).is_err());
        assert!(caller("admin", true, false).check_priority(9).is_ok());
        assert!(caller("coordinator", false, true).check_priority(9).is_ok());
    }

    #[test]
    fn release_and_renew_scopes() {
        let alice = caller("alice", false, false);
        assert_eq!(alice.release_scope(""), Ok(Some("alice".to_owned())));
        assert_eq!(alice.release_scope("alice"), Ok(Some("alice".to_owned())));
        assert!(alice.release_scope("bob").is_err());
        assert_eq!(alice.renew_scope(), Some("alice"));
        let admin = caller("root", true, false);
        assert_eq!(admin.release_scope(""), Ok(None));
        assert_eq!(admin.release_scope("bob"), Ok(Some("bob".to_owned())));
        assert_eq!(admin.renew_scope(), None);
        let service = caller("gateway", false, true);
        assert_eq!(service.release_scope(""), Ok(Some("gateway".to_owned())));
        assert_eq!(service.release_scope("agent-7"), Ok(Some("agent-7".to_owned())));
        assert_eq!(service.renew_scope(), None);
    }

    #[test]
    fn only_admins_and_services_preempt_other_holders() {
        assert_eq!(caller("alice", false, false).preempt_scope(), Some("alice"));
        assert_eq!(caller("root", true, false).preempt_scope(), None);
        assert_eq!(caller("gateway", false, true).preempt_scope(), None);
    }

    #[test]
    fn statuses_round_trip() {
        for status in
            [LeaseStatus::Active, LeaseStatus::Released, LeaseStatus::Expired, LeaseStatus::Preempted]
        {
            assert_eq!(LeaseStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(LeaseStatus::parse("gone"), None);
    }
}
