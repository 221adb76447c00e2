//! Login throttling in Redis: fixed one-minute windows per client IP and per account, shared by
//! every auth instance. (The gateway's general rate limiter is a sliding window; for logins a
//! fixed window is enough and costs one round trip.)

use super::AuthService;
use crate::error::AuthError;

impl AuthService {
    /// Counts a login attempt; `Throttled` when the IP or the account is over its limit.
    pub(super) async fn count_login_attempt(
        &self,
        client_ip: Option<std::net::IpAddr>,
        account: &str,
    ) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let minute = now / 60;
        let retry_after_s = u64::try_from(60 - now % 60).unwrap_or(60);
        let account_key = self.redis_key(&format!("throttle:account:{}:{minute}", account.to_lowercase()));
        let mut pipeline = redis::pipe();
        pipeline.atomic().incr(&account_key, 1).expire(&account_key, 120).ignore();
        let ip_key = client_ip.map(|ip| self.redis_key(&format!("throttle:ip:{ip}:{minute}")));
        if let Some(ip_key) = &ip_key {
            pipeline.incr(ip_key, 1).expire(ip_key, 120).ignore();
        }
        let mut redis = self.redis.clone();
        let counts: Vec<u64> = pipeline.query_async(&mut redis).await?;
        let account_count = counts.first().copied().unwrap_or(0);
        let ip_count = counts.get(1).copied().unwrap_or(0);
        if account_count > u64::from(self.settings.login_attempts_per_account_per_minute)
            || ip_count > u64::from(self.settings.login_attempts_per_ip_per_minute)
        {
            metrics::counter!("auth_login_throttled_total").increment(1);
            return Err(AuthError::Throttled { retry_after_s });
        }
        Ok(())
    }
}
