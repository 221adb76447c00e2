//! The live view of leases in Redis. Every decision (grant with its preemptions, renewal,
//! release, expiry) is one Lua script, so it is atomic across any number of arbitrator replicas:
//! no replica can grant from a stale sum, and no lock is held between round trips, so nothing can
//! deadlock. Expiry is by the Redis clock, inside the scripts, so an expired lease stops counting
//! at once without waiting for a sweeper.

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use sutazai_kit::config::RedisSettings;
use sutazai_kit::redis::RedisKeys;

use super::time_from_ms;
use crate::domain::lease::{Denial, Lease, LeaseId, LeaseRequest};
use crate::domain::policy::Limits;
use crate::domain::resource::ResourceKey;

/// This service's Redis key prefix (after the configured one).
pub const REDIS_PREFIX: &str = "arb:";

/// How long a preempted lease stays marked in Redis, so its holder's renewal answers `preempted`
/// (the journal answers after that).
const PREEMPTED_RETENTION_MS: u64 = 3_600_000;

/// How long a waiting request's mark lasts if its replica dies before removing it.
const WAITER_MARK_SLACK_MS: u64 = 10_000;

const COMMON: &str = include_str!("lua/common.lua");

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    usage: Script,
    restore: Script,
    unwait: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Self {
            acquire: with_prelude(include_str!("lua/acquire.lua")),
            renew: with_prelude(include_str!("lua/renew.lua")),
            release: with_prelude(include_str!("lua/release.lua")),
            usage: with_prelude(include_str!("lua/usage.lua")),
            restore: with_prelude(include_str!("lua/restore.lua")),
            // Never below zero: a count that expired while its waiter still waited must not
            // hide the next waiter.
            unwait: Script::new(
                "local left = redis.call('DECR', KEYS[1]) \
                 if left <= 0 then redis.call('DEL', KEYS[1]) end return left",
            ),
        }
    }
}

/// What an acquire decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// Granted; the leases revoked for it.
    Granted {
        /// The new lease.
        lease: Lease,
        /// Preempted leases, lowest priority (then newest) first.
        preempted: Vec<Lease>,
    },
    /// Denied, with the numbers compared.
    Denied(Denial),
    /// Nothing decided: the live view was lost and is not restored yet.
    Unrestored,
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    /// Extended.
    Renewed(Lease),
    /// The lease was preempted.
    Preempted,
    /// Unknown, released, expired, or another holder's.
    Missing,
    /// Nothing decided: the live view was lost and is not restored yet.
    Unrestored,
}

/// What a release found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Returned to the pool of this resource.
    Released(ResourceKey),
    /// No such live lease (of that holder).
    Missing,
    /// Nothing decided: the live view was lost and is not restored yet.
    Unrestored,
}

/// One pool's allocation right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Held by live leases.
    pub allocated: u64,
    /// Live leases.
    pub active_leases: u32,
    /// The limits the replicas decide with, when Redis has them.
    pub limits: Option<Limits>,
}

/// The live view.
#[derive(Clone)]
pub struct LiveLeases {
    redis: ConnectionManager,
    keys: RedisKeys,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for LiveLeases {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LiveLeases").field("prefix", &self.keys.prefix()).finish()
    }
}

/// A reply that does not have the shape the script promises: a bug, or someone else's keys.
fn malformed(what: &str) -> RedisError {
    RedisError::from((redis::ErrorKind::Parse, "unexpected script reply", what.to_owned()))
}

fn field<T: std::str::FromStr>(reply: &[String], index: usize) -> Result<T, RedisError> {
    reply.get(index).and_then(|text| text.parse().ok()).ok_or_else(|| malformed("a numeric field"))
}

fn text(reply: &[String], index: usize) -> Result<&str, RedisError> {
    reply.get(index).map(String::as_str).ok_or_else(|| malformed("a text field"))
}

/// The stored form of a pool's limits: `<total> <per holder> <preempt 0|1>`.
pub fn encode_limits(limits: Limits) -> String {
    format!("{} {} {}", limits.total, limits.per_holder, u8::from(limits.preemption_enabled))
}

fn decode_limits(text: &str) -> Option<Limits> {
    let mut parts = text.split(' ');
    let total = parts.next()?.parse().ok()?;
    let per_holder = parts.next()?.parse().ok()?;
    let preemption_enabled = match parts.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(Limits { total, per_holder, preemption_enabled })
}

/// Reads `id amount holder priority ttl_s acquired expires` starting at `start` (the preempted
/// leases of an acquire reply).
fn preempted_lease(reply: &[String], start: usize, resource: &ResourceKey) -> Result<Lease, RedisError> {
    let id = LeaseId::parse(text(reply, start)?).ok_or_else(|| malformed("a lease id"))?;
    Ok(Lease {
        id,
        resource: resource.clone(),
        amount: field(reply, start + 1)?,
        holder: text(reply, start + 2)?.to_owned(),
        priority: field(reply, start + 3)?,
        ttl_s: field(reply, start + 4)?,
        acquired_at: time_from_ms(field(reply, start + 5)?),
        expires_at: time_from_ms(field(reply, start + 6)?),
    })
}

impl LiveLeases {
    /// The live view under `<configured prefix>arb:`.
    pub fn new(redis: ConnectionManager, settings: &RedisSettings) -> Self {
        Self {
            redis,
            keys: RedisKeys::new(settings, REDIS_PREFIX),
            scripts: std::sync::Arc::new(Scripts::new()),
        }
    }

    /// The channel a holder's preemption notices are published on: `<prefix>arb:preempted:<holder>`.
    pub fn preempted_channel(&self, holder: &str) -> String {
        self.keys.key(&format!("preempted:{holder}"))
    }

    /// The channel releases are announced on while requests wait (the payload is the resource).
    pub fn released_channel(&self) -> String {
        self.keys.key("released")
    }

    /// Decides `request` atomically under `limits` (unless Redis has the replicas' stored ones):
    /// grant as lease `id`, preempting if allowed and needed, or deny. With a `victim_scope`
    /// only that holder's leases may be preempted.
    pub async fn acquire(
        &self,
        id: LeaseId,
        request: &LeaseRequest,
        limits: Limits,
        victim_scope: Option<&str>,
    ) -> Result<AcquireOutcome, RedisError> {
        let LeaseRequest { resource, amount, ttl_s, priority, holder } = request;
        let (amount, ttl_s, priority) = (*amount, *ttl_s, *priority);
        let resource_text = resource.to_string();
        let reply: Vec<String> = self
            .scripts
            .acquire
            .key(self.keys.key(&format!("use:{resource_text}")))
            .arg(self.keys.prefix())
            .arg(&resource_text)
            .arg(id.to_string())
            .arg(amount)
            .arg(holder)
            .arg(priority)
            .arg(ttl_s)
            .arg(encode_limits(limits))
            .arg(PREEMPTED_RETENTION_MS)
            .arg(victim_scope.unwrap_or(""))
            .invoke_async(&mut self.redis.clone())
            .await?;
        match text(&reply, 0)? {
            "unrestored" => Ok(AcquireOutcome::Unrestored),
            "granted" => {
                let lease = Lease {
                    id,
                    resource: resource.clone(),
                    amount,
                    holder: holder.clone(),
                    priority,
                    ttl_s,
                    acquired_at: time_from_ms(field(&reply, 1)?),
                    expires_at: time_from_ms(field(&reply, 2)?),
                };
                let mut preempted = Vec::new();
                let mut start = 3;
                while start < reply.len() {
                    preempted.push(preempted_lease(&reply, start, resource)?);
                    start += 7;
                }
                Ok(AcquireOutcome::Granted { lease, preempted })
            }
            "holder" => Ok(AcquireOutcome::Denied(Denial::PerHolder {
                held: field(&reply, 1)?,
                limit: field(&reply, 2)?,
                requested: amount,
            })),
            "total" => Ok(AcquireOutcome::Denied(Denial::Total {
                allocated: field(&reply, 1)?,
                limit: field(&reply, 2)?,
                requested: amount,
            })),
            _ => Err(malformed("an acquire outcome")),
        }
    }

    /// Extends lease `id` by `ttl_s` from now (0 keeps its ttl), if it is live and, with a
    /// `scope`, held by that holder.
    pub async fn renew(
        &self,
        id: LeaseId,
        ttl_s: u32,
        scope: Option<&str>,
    ) -> Result<RenewOutcome, RedisError> {
        let reply: Vec<String> = self
            .scripts
            .renew
            .key(self.keys.key(&format!("lease:{id}")))
            .arg(self.keys.prefix())
            .arg(id.to_string())
            .arg(ttl_s)
            .arg(scope.unwrap_or(""))
            .invoke_async(&mut self.redis.clone())
            .await?;
        match text(&reply, 0)? {
            "renewed" => {
                let resource = ResourceKey::parse(text(&reply, 1)?).map_err(|_| malformed("a resource"))?;
                Ok(RenewOutcome::Renewed(Lease {
                    id,
                    resource,
                    amount: field(&reply, 2)?,
                    holder: text(&reply, 3)?.to_owned(),
                    priority: field(&reply, 4)?,
                    ttl_s: field(&reply, 5)?,
                    acquired_at: time_from_ms(field(&reply, 6)?),
                    expires_at: time_from_ms(field(&reply, 7)?),
                }))
            }
            "preempted" => Ok(RenewOutcome::Preempted),
            "missing" => Ok(RenewOutcome::Missing),
            "unrestored" => Ok(RenewOutcome::Unrestored),
            _ => Err(malformed("a renew outcome")),
        }
    }

    /// Returns lease `id` to its pool if it is live and, with a `scope`, held by that holder.
    pub async fn release(&self, id: LeaseId, scope: Option<&str>) -> Result<ReleaseOutcome, RedisError> {
        let reply: Vec<String> = self
            .scripts
            .release
            .key(self.keys.key(&format!("lease:{id}")))
            .arg(self.keys.prefix())
            .arg(id.to_string())
            .arg(scope.unwrap_or(""))
            .invoke_async(&mut self.redis.clone())
            .await?;
        match text(&reply, 0)? {
            "released" => Ok(ReleaseOutcome::Released(
                ResourceKey::parse(text(&reply, 1)?).map_err(|_| malformed("a resource"))?,
            )),
            "missing" => Ok(ReleaseOutcome::Missing),
            "unrestored" => Ok(ReleaseOutcome::Unrestored),
            _ => Err(malformed("a release outcome")),
        }
    }

    /// Each pool's allocation right now, in the order given (expired leases dropped first).
    pub async fn usage(&self, resources: &[&ResourceKey]) -> Result<Vec<PoolUsage>, RedisError> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.usage.prepare_invoke();
        invocation.arg(self.keys.prefix());
        for resource in resources {
            invocation.arg(resource.to_string());
        }
        let reply: Vec<String> = invocation.invoke_async(&mut self.redis.clone()).await?;
        if reply.len() != resources.len() * 3 {
            return Err(malformed("three fields per pool"));
        }
        let mut usages = Vec::with_capacity(resources.len());
        for start in (0..reply.len()).step_by(3) {
            usages.push(PoolUsage {
                allocated: field(&reply, start)?,
                active_leases: field(&reply, start + 1)?,
                limits: decode_limits(text(&reply, start + 2)?),
            });
        }
        Ok(usages)
    }

    /// Stores the limits the replicas decide with (after a policy change, and at start).
    pub async fn store_limits(&self, limits: &[(&ResourceKey, Limits)]) -> Result<(), RedisError> {
        if limits.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("HSET");
        command.arg(self.keys.key("limits"));
        for (resource, pool_limits) in limits {
            command.arg(resource.to_string()).arg(encode_limits(*pool_limits));
        }
        command.query_async(&mut self.redis.clone()).await
    }

    /// Whether the live view was lost (a fresh or flushed Redis) and must be restored.
    pub async fn needs_restore(&self) -> Result<bool, RedisError> {
        let present: bool =
            redis::cmd("EXISTS").arg(self.keys.key("restored")).query_async(&mut self.redis.clone()).await?;
        Ok(!present)
    }

    /// Restores `leases` (the journal's active ones) unless the live view is intact; how many
    /// were restored, or `None` when nothing needed restoring.
    pub async fn restore(&self, leases: &[Lease]) -> Result<Option<u64>, RedisError> {
        let mut invocation = self.scripts.restore.prepare_invoke();
        invocation.arg(self.keys.prefix());
        for lease in leases {
            invocation
                .arg(lease.id.to_string())
                .arg(lease.resource.to_string())
                .arg(lease.amount)
                .arg(&lease.holder)
                .arg(lease.priority)
                .arg(lease.ttl_s)
                .arg(lease.acquired_at.timestamp_millis())
                .arg(lease.expires_at.timestamp_millis());
        }
        let restored: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(u64::try_from(restored).ok())
    }

    /// Marks one more request waiting for `resource`, so releases of it are announced.
    pub async fn add_waiter(&self, resource: &ResourceKey, max_wait_ms: u64) -> Result<(), RedisError> {
        let key = self.keys.key(&format!("waiters:{resource}"));
        redis::pipe()
            .incr(&key, 1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(max_wait_ms + WAITER_MARK_SLACK_MS)
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Removes a waiting request's mark.
    pub async fn remove_waiter(&self, resource: &ResourceKey) -> Result<(), RedisError> {
        let key = self.keys.key(&format!("waiters:{resource}"));
        self.scripts.unwait.key(key).invoke_async::<i64>(&mut self.redis.clone()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip() {
        let limits = Limits { total: 6400, per_holder: 2400, preemption_enabled: true };
        assert_eq!(encode_limits(limits), "6400 2400 1");
        assert_eq!(decode_limits("6400 2400 1"), Some(limits));
        assert_eq!(decode_limits("6400 2400 0").map(|limits| limits.preemption_enabled), Some(false));
        assert_eq!(decode_limits(""), None);
        assert_eq!(decode_limits("1 2"), None);
    }
}
