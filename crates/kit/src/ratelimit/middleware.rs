//! The axum middleware: who the caller is, which route group the path is in, one check, and
//! the `RateLimit-*` headers on every response (429 problem+json with `Retry-After` when refused).
//!
//! The caller is, in order: a [`RateSubject`] an auth layer put in the request extensions (an
//! API key), the [`Principal`] of an auth layer that ran before this one, or the client IP as
//! [`ClientIp`] resolves it — the socket peer, believing `X-Forwarded-For` only from configured
//! trusted proxies, so a forged header cannot buy a fresh budget.

use std::net::IpAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use sutazai_types::ServiceErrorCode;

use super::decision::RateDecision;
use super::limiter::SlidingWindowLimiter;
use super::policy::{RateLimitSettings, RatePolicies, RatePolicy, RouteGroup};
use crate::auth::{Principal, PrincipalKind};
use crate::http::{ApiError, ClientIp};

/// `RateLimit-Limit`: requests admitted per window.
pub const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in the window.
pub const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until a slot frees up.
pub const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `RateLimit-Policy`: `<limit>;w=<window seconds>`.
pub const RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateSubject {
    /// An API key, by its id (never the secret).
    ApiKey(String),
    /// A signed-in user, by subject.
    User(String),
    /// A service account, by client id.
    Service(String),
    /// An unauthenticated client, by address.
    Ip(IpAddr),
    /// No address known (only in-process calls without a socket): one shared budget.
    Anonymous,
}

impl RateSubject {
    /// The subject of a request: an explicit subject or principal from an earlier auth layer,
    /// else the client IP.
    pub fn of_request(extensions: &Extensions, client_ip: ClientIp) -> Self {
        if let Some(subject) = extensions.get::<RateSubject>() {
            return subject.clone();
        }
        if let Some(principal) = extensions.get::<Principal>() {
            return match principal.kind {
                PrincipalKind::User => RateSubject::User(principal.subject.clone()),
                PrincipalKind::Service => RateSubject::Service(principal.subject.clone()),
            };
        }
        match client_ip.0 {
            Some(address) => RateSubject::Ip(address),
            None => RateSubject::Anonymous,
        }
    }

    /// The subject's part of the window key.
    pub fn key_segment(&self) -> String {
        match self {
            RateSubject::ApiKey(id) => format!("key:{id}"),
            RateSubject::User(subject) => format!("user:{subject}"),
            RateSubject::Service(client_id) => format!("svc:{client_id}"),
            RateSubject::Ip(address) => format!("ip:{}", ip_budget_key(*address)),
            RateSubject::Anonymous => "anonymous".to_owned(),
        }
    }
}

/// IPv4 addresses count one by one; an IPv6 client usually holds a whole /64, so it counts as
/// one budget rather than 2^64 of them.
fn ip_budget_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let segments = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
        }
    }
}

/// The rate-limit middleware's state: the limiter and the policy per route group.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: SlidingWindowLimiter,
    policies: RatePolicies,
    enabled: bool,
}

impl RateLimit {
    /// Enforces `policies` with `limiter`.
    pub fn new(limiter: SlidingWindowLimiter, policies: RatePolicies) -> Self {
        Self { limiter, policies, enabled: true }
    }

    /// Enforces the configured per-minute policies, or nothing when `enabled` is false.
    pub fn from_settings(limiter: SlidingWindowLimiter, settings: &RateLimitSettings) -> Self {
        Self { limiter, policies: RatePolicies::from_settings(settings), enabled: settings.enabled }
    }

    /// Wraps every route of `router` in the middleware. Add it before (inside) the auth layer
    /// that sets the [`Principal`], and before `server::service_router`, which provides the
    /// trusted proxies [`ClientIp`] needs.
    pub fn layer<S>(self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if !self.enabled {
            return router;
        }
        router.layer(from_fn_with_state(self, enforce_rate_limit))
    }

    /// The limiter, for its health check and breaker.
    pub fn limiter(&self) -> &SlidingWindowLimiter {
        &self.limiter
    }

    /// The policy per route group.
    pub fn policies(&self) -> &RatePolicies {
        &self.policies
    }
}

/// Checks the request's budget; refuses with 429 or passes it on, adding the headers either way.
pub async fn enforce_rate_limit(
    State(rate_limit): State<RateLimit>,
    client_ip: ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let group = RouteGroup::for_path(request.uri().path());
    let policy = rate_limit.policies.policy(group);
    let subject = RateSubject::of_request(request.extensions(), client_ip);
    let key = format!("{}:{}", group.as_str(), subject.key_segment());
    let decision = rate_limit.limiter.check(&key, policy).await;
    let outcome = if decision.allowed { "allowed" } else { "limited" };
    metrics::counter!("rate_limit_decisions_total", "group" => group.as_str(), "outcome" => outcome)
        .increment(1);
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        metrics::counter!("http_rate_limited_total", "group" => group.as_str()).increment(1);
        too_many_requests(&decision, policy)
    };
    set_rate_limit_headers(response.headers_mut(), &decision, policy);
    response
}

fn too_many_requests(decision: &RateDecision, policy: RatePolicy) -> Response {
    let window_s = policy.window_ms().div_ceil(1000);
    let detail = format!(
        "rate limit of {} requests per {window_s} s exceeded; retry in {} s",
        policy.limit, decision.retry_after_s
    );
    ApiError::new(ServiceErrorCode::TooManyRequests, detail)
        .with_retry_after(decision.retry_after_s)
        .into_response()
}

/// Writes the `RateLimit-*` headers of `decision`.
pub fn set_rate_limit_headers(headers: &mut HeaderMap, decision: &RateDecision, policy: RatePolicy) {
    headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RATE_LIMIT_RESET, HeaderValue::from(decision.reset_after_s));
    if let Ok(value) = HeaderValue::from_str(&policy.header_value()) {
        headers.insert(RATE_LIMIT_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn principal(kind: PrincipalKind, subject: &str) -> Principal {
        Principal {
            subject: subject.to_owned(),
            kind,
            name: subject.to_owned(),
            roles: Vec::new(),
            scopes: Vec::new(),
            token_id: "jti".to_owned(),
            expires_at: 0,
            session_id: None,
        }
    }

    #[test]
    fn subject_prefers_api_key_then_principal_then_ip() {
        let client = ClientIp(Some(ip("203.0.113.7")));
        let mut extensions = Extensions::new();
        assert_eq!(RateSubject::of_request(&extensions, client).key_segment(), "ip:203.0.113.7");
        extensions.insert(principal(PrincipalKind::User, "user-1"));
        assert_eq!(RateSubject::of_request(&extensions, client).key_segment(), "user:user-1");
        extensions.insert(RateSubject::ApiKey("key-9".to_owned()));
        assert_eq!(RateSubject::of_request(&extensions, client).key_segment(), "key:key-9");

        let mut service = Extensions::new();
        service.insert(principal(PrincipalKind::Service, "agent-worker"));
        assert_eq!(RateSubject::of_request(&service, client).key_segment(), "svc:agent-worker");
        assert_eq!(RateSubject::of_request(&Extensions::new(), ClientIp(None)).key_segment(), "anonymous");
    }

    #[test]
    fn ipv6_clients_share_their_64_prefix() {
        assert_eq!(ip_budget_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_budget_key(ip("2001:db8:1:2:bbbb::2")), "2001:db8:1:2::/64");
        assert_eq!(ip_budget_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(ip_budget_key(ip("192.0.2.1")), "192.0.2.1");
    }

    #[test]
    fn refusal_is_a_problem_with_retry_after_and_headers() {
        let policy = RatePolicy::per_minute(2);
        let decision = RateDecision {
            allowed: false,
            limit: 2,
            remaining: 0,
            reset_after_s: 17,
            retry_after_s: 17,
            source: super::super::DecisionSource::Redis,
        };
        let mut response = too_many_requests(&decision, policy);
        set_rate_limit_headers(response.headers_mut(), &decision, policy);
        assert_eq!(response.status(), 429);
        let headers = response.headers();
        assert_eq!(headers["retry-after"], "17");
        assert_eq!(headers["ratelimit-limit"], "2");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-reset"], "17");
        assert_eq!(headers["ratelimit-policy"], "2;w=60");
        let problem = response.extensions().get::<crate::http::Problem>().unwrap();
        assert_eq!(problem.code, ServiceErrorCode::TooManyRequests);
        assert_eq!(problem.detail, "rate limit of 2 requests per 60 s exceeded; retry in 17 s");
    }
}
