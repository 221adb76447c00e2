//! Attempt throttling in Redis: fixed one-minute windows, shared by every auth instance. (The
//! gateway's general rate limiter is a sliding window; for logins a fixed window is enough and
//! costs one round trip.) Keys are normalized so that spelling variants of one target share a
//! budget: accounts by trimmed, lowercased name and by user id, IPv6 clients by their /64.

use std::net::IpAddr;

use super::AuthService;
use crate::error::AuthError;

/// One budget to charge: a bucket name, the subject within it, and its per-minute limit.
pub(super) struct Budget {
    pub(super) bucket: &'static str,
    pub(super) subject: String,
    pub(super) per_minute: u32,
}

/// The IP's throttling subject: the address for IPv4, the /64 for IPv6 (one client usually holds
/// the whole /64, so per-address budgets would be 2^64 budgets).
pub(super) fn ip_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => {
            let segments = address.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
        }
    }
}

/// An account name as typed, normalized the way the user lookup compares it.
pub(super) fn account_subject(name: &str) -> String {
    name.trim().to_lowercase()
}

impl AuthService {
    /// Charges one attempt to each budget; `Throttled` when any is over its limit.
    pub(super) async fn charge(&self, budgets: &[Budget]) -> Result<(), AuthError> {
        if budgets.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let minute = now / 60;
        let retry_after_s = u64::try_from(60 - now % 60).unwrap_or(60);
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for budget in budgets {
            let key = self.redis_key(&format!("throttle:{}:{}:{minute}", budget.bucket, budget.subject));
            pipeline.incr(&key, 1).expire(&key, 120).ignore();
        }
        let mut redis = self.redis.clone();
        let counts: Vec<u64> = pipeline.query_async(&mut redis).await?;
        let over = budgets.iter().zip(&counts).any(|(budget, count)| *count > u64::from(budget.per_minute));
        if over {
            metrics::counter!("auth_throttled_total").increment(1);
            return Err(AuthError::Throttled { retry_after_s });
        }
        Ok(())
    }

    /// The budget of a client IP for `bucket`, if the IP is known.
    pub(super) fn ip_budget(&self, bucket: &'static str, client_ip: Option<IpAddr>) -> Option<Budget> {
        client_ip.map(|ip| Budget {
            bucket,
            subject: ip_subject(ip),
            per_minute: self.settings.login_attempts_per_ip_per_minute,
        })
    }

    /// The budget of one account (by typed name before lookup, by user id after).
    pub(super) fn account_budget(&self, bucket: &'static str, subject: String) -> Budget {
        Budget { bucket, subject, per_minute: self.settings.login_attempts_per_account_per_minute }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_normalized() {
        assert_eq!(account_subject("  Alice "), "alice");
        assert_eq!(ip_subject("203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(ip_subject("2001:db8:1:2:3:4:5:6".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(ip_subject("2001:db8:1:2::ffff".parse().unwrap()), "2001:db8:1:2::/64");
    }
}
