//! Reading and replacing a resource's policy. A change is stored in Postgres (the source of
//! truth), then in the limits every replica decides with in Redis, then audited.

use serde_json::json;
use sutazai_kit::audit::AuditRecord;

use super::Arbitrator;
use crate::domain::lease::Caller;
use crate::domain::policy::Policy;
use crate::domain::resource::ResourceKey;
use crate::error::ArbitratorError;

impl Arbitrator {
    fn capacity_of(&self, resource: &ResourceKey) -> Result<u64, ArbitratorError> {
        self.inner
            .catalog
            .capacity(resource)
            .ok_or_else(|| ArbitratorError::NotFound(format!("resource `{resource}` not found")))
    }

    /// The policy of `resource`: its stored one, else the configured default.
    pub async fn policy(&self, resource: &ResourceKey) -> Result<Policy, ArbitratorError> {
        self.capacity_of(resource)?;
        let stored = self.inner.policy_store.get(resource).await?;
        Ok(stored.unwrap_or(self.inner.default_policy))
    }

    /// Replaces the policy of `resource` (admins only); `updated_by` names the admin for the
    /// record (the caller when empty).
    pub async fn set_policy(
        &self,
        caller: &Caller,
        resource: &ResourceKey,
        policy: Policy,
        updated_by: &str,
    ) -> Result<Policy, ArbitratorError> {
        if !caller.is_admin {
            return Err(ArbitratorError::Forbidden("setting a policy needs the `admin` role"));
        }
        let capacity = self.capacity_of(resource)?;
        policy.validate()?;
        let updated_by = if updated_by.is_empty() { caller.subject.as_str() } else { updated_by };
        self.inner.policy_store.put(resource, &policy, updated_by).await?;
        self.inner
            .policies
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(resource.clone(), policy);
        let limits = policy.limits(capacity);
        self.inner.live.store_limits(&[(resource, limits)]).await?;
        let target = resource.to_string();
        self.inner
            .audit
            .record(AuditRecord {
                actor: Some(&caller.subject),
                action: "resource_policy_set",
                target: Some(&target),
                ip: None,
                outcome: "success",
                detail: json!({
                    "updated_by": updated_by,
                    "max_allocation_percent": policy.max_allocation_percent,
                    "max_per_holder_percent": policy.max_per_holder_percent,
                    "oversubscription_ratio": policy.oversubscription_ratio,
                    "preemption_enabled": policy.preemption_enabled,
                    "limit": limits.total,
                    "per_holder_limit": limits.per_holder,
                }),
            })
            .await;
        tracing::info!(resource = %target, limit = limits.total, per_holder_limit = limits.per_holder, updated_by, "policy set");
        Ok(policy)
    }
}
