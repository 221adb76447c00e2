//! The auth service's JWKS fetched over HTTP and cached.
//!
//! Fetch rules, all driven by one small decision function ([`plan`]):
//! - a cold cache fetches; a cache older than `jwks_max_age_ms` is refreshed by the next caller
//!   (so a key the auth service dropped stops verifying), while other callers keep using the old
//!   keys instead of waiting;
//! - a token naming an unknown `kid` forces a refresh, but at most one fetch starts per
//!   `jwks_refresh_min_interval_ms`, so a flood of tokens with random kids costs the auth service
//!   one request per interval, not one per token;
//! - one fetch runs at a time and callers that wanted one wait for it and reuse its result, so
//!   concurrent refreshes coalesce;
//! - failures count as attempts too: a down auth service is asked once per interval.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::keys::{KeySource, KeySourceError, KeysFuture, VerificationKeys};
use super::verifier::VerifierSettings;

/// The largest JWKS body read; a handful of keys is a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Keys fetched from `GET {auth}/.well-known/jwks.json`.
#[derive(Debug)]
pub struct HttpJwksSource {
    client: reqwest::Client,
    jwks_url: reqwest::Url,
    refresh_min_interval: Duration,
    max_age: Duration,
    state: RwLock<CacheState>,
    /// Held while a fetch runs; waiting on it is how concurrent refreshes coalesce.
    fetch_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct CacheState {
    cached: Option<CachedKeys>,
    /// When the last fetch started, successful or not; the rate limit counts from here.
    last_attempt_at: Option<Instant>,
    last_attempt_failed: bool,
    /// A fetch is running: callers that need newer keys wait for it instead of giving up.
    fetch_in_flight: bool,
}

#[derive(Debug, Clone)]
struct CachedKeys {
    keys: Arc<VerificationKeys>,
    fetched_at: Instant,
}

/// What a caller should do, given the cache.
#[derive(Debug)]
enum Plan {
    /// Answer with these keys.
    Serve(Arc<VerificationKeys>),
    /// Take the fetch lock, then plan again: either fetch, or find the result of the fetch that
    /// held the lock. `stale` holds the expired keys a non-forced caller may fall back on.
    Fetch { stale: Option<Arc<VerificationKeys>> },
    /// Refuse: nothing usable and no fetch allowed yet.
    RetryLater,
}

struct Limits {
    refresh_min_interval: Duration,
    max_age: Duration,
}

/// `fetch_in_flight` is the state's flag outside the fetch lock and `false` under it (the caller
/// holds the lock, so nothing else is fetching).
fn plan(
    state: &CacheState,
    fetch_in_flight: bool,
    force_refresh: bool,
    now: Instant,
    limits: &Limits,
) -> Plan {
    let may_fetch = state.last_attempt_at.is_none_or(|attempted_at| {
        now.saturating_duration_since(attempted_at) >= limits.refresh_min_interval
    });
    let Some(cached) = &state.cached else {
        return if may_fetch || fetch_in_flight { Plan::Fetch { stale: None } } else { Plan::RetryLater };
    };
    if force_refresh {
        return if may_fetch || fetch_in_flight {
            Plan::Fetch { stale: None }
        } else if state.last_attempt_failed {
            // The newest keys are unknown because the auth service did not answer: the token may
            // be fine, so "try again" (503) is the honest answer, not "invalid token".
            Plan::RetryLater
        } else {
            // Refreshed moments ago: the kid is really unknown.
            Plan::Serve(Arc::clone(&cached.keys))
        };
    }
    let fresh = now.saturating_duration_since(cached.fetched_at) < limits.max_age;
    if fresh || !may_fetch {
        Plan::Serve(Arc::clone(&cached.keys))
    } else {
        Plan::Fetch { stale: Some(Arc::clone(&cached.keys)) }
    }
}

impl HttpJwksSource {
    /// A source for `jwks_url` with the fetch limits of `settings`. Redirects are not followed:
    /// the keys come from the configured URL or not at all.
    pub fn new(jwks_url: &str, settings: &VerifierSettings) -> Result<Self, KeySourceError> {
        let invalid_url = || KeySourceError::InvalidUrl { url: jwks_url.to_owned() };
        let parsed_url = reqwest::Url::parse(jwks_url).map_err(|_| invalid_url())?;
        if parsed_url.scheme() != "http" && parsed_url.scheme() != "https" {
            return Err(invalid_url());
        }
        let fetch_timeout = Duration::from_millis(settings.jwks_fetch_timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(fetch_timeout)
            .timeout(fetch_timeout)
            .build()
            .map_err(KeySourceError::Client)?;
        Ok(Self {
            client,
            jwks_url: parsed_url,
            refresh_min_interval: Duration::from_millis(settings.jwks_refresh_min_interval_ms),
            max_age: Duration::from_millis(settings.jwks_max_age_ms),
            state: RwLock::new(CacheState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The URL the keys come from.
    pub fn jwks_url(&self) -> &str {
        self.jwks_url.as_str()
    }

    fn plan(&self, force_refresh: bool, holding_fetch_lock: bool) -> Plan {
        let limits = Limits { refresh_min_interval: self.refresh_min_interval, max_age: self.max_age };
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let fetch_in_flight = state.fetch_in_flight && !holding_fetch_lock;
        plan(&state, fetch_in_flight, force_refresh, Instant::now(), &limits)
    }

    async fn current_keys(&self, force_refresh: bool) -> Result<Arc<VerificationKeys>, KeySourceError> {
        let stale_before_lock = match self.plan(force_refresh, false) {
            Plan::Serve(keys) => return Ok(keys),
            Plan::RetryLater => return Err(KeySourceError::RetryLater),
            Plan::Fetch { stale } => stale,
        };
        let _fetch_guard = match stale_before_lock {
            // A routine refresh of expired keys: if someone is already fetching, the old keys
            // still serve this request rather than making it wait for the auth service.
            Some(stale_keys) => match self.fetch_lock.try_lock() {
                Ok(guard) => guard,
                Err(_busy) => return Ok(stale_keys),
            },
            None => self.fetch_lock.lock().await,
        };
        // Decide again under the lock: a fetch that finished while this caller waited has
        // refreshed the cache and started the rate-limit interval.
        let stale_under_lock = match self.plan(force_refresh, true) {
            Plan::Serve(keys) => return Ok(keys),
            Plan::RetryLater => return Err(KeySourceError::RetryLater),
            Plan::Fetch { stale } => stale,
        };
        let attempt = FetchAttempt::start(&self.state);
        match self.fetch().await {
            Ok(keys) => {
                attempt.succeeded(Arc::clone(&keys));
                Ok(keys)
            }
            Err(error) => {
                attempt.failed();
                tracing::warn!(error = %error, url = %self.jwks_url, "jwks fetch failed");
                match stale_under_lock {
                    // Keep verifying with the keys we have while the auth service is away.
                    Some(stale_keys) => Ok(stale_keys),
                    None => Err(error),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<Arc<VerificationKeys>, KeySourceError> {
        let url = || self.jwks_url.to_string();
        tracing::debug!(url = %self.jwks_url, "fetching jwks");
        let mut response = self
            .client
            .get(self.jwks_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| KeySourceError::Request { url: url(), source })?;
        let status = response.status();
        if !status.is_success() {
            return Err(KeySourceError::Status { url: url(), status: status.as_u16() });
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|source| KeySourceError::Request { url: url(), source })?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(KeySourceError::TooLarge { url: url(), limit_bytes: MAX_JWKS_BYTES });
            }
            body.extend_from_slice(&chunk);
        }
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&body).map_err(|source| KeySourceError::Parse { url: url(), source })?;
        let keys = VerificationKeys::from_jwk_set(&set);
        if keys.is_empty() {
            // An empty set would make every token "unknown key"; keep the old keys instead.
            return Err(KeySourceError::NoUsableKeys { url: url() });
        }
        tracing::info!(url = %self.jwks_url, keys = keys.len(), "jwks refreshed");
        Ok(Arc::new(keys))
    }
}

/// One fetch, from its start (which starts the rate-limit interval) to its outcome. The outcome
/// and the end of "in flight" are written together, so a caller never sees a finished fetch
/// without its result. A fetch whose future is dropped (the request was cancelled) counts as
/// failed: otherwise cancelling requests would restart fetches without the rate limit.
struct FetchAttempt<'a> {
    state: &'a RwLock<CacheState>,
    finished: bool,
}

impl<'a> FetchAttempt<'a> {
    fn start(state: &'a RwLock<CacheState>) -> Self {
        let mut guarded = state.write().unwrap_or_else(PoisonError::into_inner);
        guarded.last_attempt_at = Some(Instant::now());
        guarded.fetch_in_flight = true;
        Self { state, finished: false }
    }

    fn succeeded(mut self, keys: Arc<VerificationKeys>) {
        let mut guarded = self.state.write().unwrap_or_else(PoisonError::into_inner);
        guarded.cached = Some(CachedKeys { keys, fetched_at: Instant::now() });
        guarded.last_attempt_failed = false;
        guarded.fetch_in_flight = false;
        self.finished = true;
    }

    fn failed(mut self) {
        let mut guarded = self.state.write().unwrap_or_else(PoisonError::into_inner);
        guarded.last_attempt_failed = true;
        guarded.fetch_in_flight = false;
        self.finished = true;
    }
}

impl Drop for FetchAttempt<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut guarded = self.state.write().unwrap_or_else(PoisonError::into_inner);
        guarded.last_attempt_failed = true;
        guarded.fetch_in_flight = false;
    }
}

impl KeySource for HttpJwksSource {
    fn keys(&self, force_refresh: bool) -> KeysFuture<'_> {
        Box::pin(self.current_keys(force_refresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits =
        Limits { refresh_min_interval: Duration::from_secs(5), max_age: Duration::from_secs(300) };

    fn cached_state(
        fetched_ago: Duration,
        attempted_ago: Duration,
        failed: bool,
        now: Instant,
    ) -> CacheState {
        CacheState {
            cached: Some(CachedKeys {
                keys: Arc::new(VerificationKeys::default()),
                fetched_at: now - fetched_ago,
            }),
            last_attempt_at: Some(now - attempted_ago),
            last_attempt_failed: failed,
            fetch_in_flight: false,
        }
    }

    /// The plan of a caller outside the fetch lock, by name.
    fn decide(state: &CacheState, force_refresh: bool, now: Instant) -> &'static str {
        match plan(state, state.fetch_in_flight, force_refresh, now, &LIMITS) {
            Plan::Serve(_) => "serve",
            Plan::Fetch { stale: None } => "fetch",
            Plan::Fetch { stale: Some(_) } => "fetch-with-stale",
            Plan::RetryLater => "retry-later",
        }
    }

    fn later() -> Instant {
        // Far enough from the process start that subtracting test durations cannot underflow.
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn cold_cache_fetches_once_per_interval() {
        let now = later();
        assert_eq!(decide(&CacheState::default(), false, now), "fetch");
        let failed_recently = CacheState {
            cached: None,
            last_attempt_at: Some(now - Duration::from_secs(1)),
            last_attempt_failed: true,
            fetch_in_flight: false,
        };
        assert_eq!(decide(&failed_recently, false, now), "retry-later");
        assert_eq!(decide(&failed_recently, true, now), "retry-later");
    }

    #[test]
    fn callers_wait_for_a_fetch_in_flight() {
        let now = later();
        let cold_in_flight = CacheState {
            cached: None,
            last_attempt_at: Some(now - Duration::from_millis(10)),
            last_attempt_failed: false,
            fetch_in_flight: true,
        };
        assert_eq!(decide(&cold_in_flight, false, now), "fetch", "wait for the first keys");
        let mut warm_in_flight = cached_state(Duration::from_secs(60), Duration::from_millis(10), false, now);
        warm_in_flight.fetch_in_flight = true;
        assert_eq!(decide(&warm_in_flight, true, now), "fetch", "an unknown kid waits for the newer keys");
        assert_eq!(decide(&warm_in_flight, false, now), "serve", "known kids do not wait");
        // Under the lock nothing else is in flight, and the rate limit decides.
        let under_lock = plan(&warm_in_flight, false, true, now, &LIMITS);
        assert!(matches!(under_lock, Plan::Serve(_)), "{under_lock:?}");
    }

    #[test]
    fn fresh_cache_serves_without_fetching() {
        let now = later();
        let state = cached_state(Duration::from_secs(10), Duration::from_secs(10), false, now);
        assert_eq!(decide(&state, false, now), "serve");
    }

    #[test]
    fn unknown_kid_refreshes_only_after_the_interval() {
        let now = later();
        let recent = cached_state(Duration::from_secs(1), Duration::from_secs(1), false, now);
        assert_eq!(decide(&recent, true, now), "serve");
        let older = cached_state(Duration::from_secs(6), Duration::from_secs(6), false, now);
        assert_eq!(decide(&older, true, now), "fetch");
    }

    #[test]
    fn unknown_kid_after_a_failed_fetch_is_retry_later() {
        let now = later();
        let state = cached_state(Duration::from_secs(100), Duration::from_secs(1), true, now);
        assert_eq!(decide(&state, true, now), "retry-later");
        assert_eq!(decide(&state, false, now), "serve", "known kids keep verifying");
    }

    #[test]
    fn expired_cache_refreshes_with_the_old_keys_as_fallback() {
        let now = later();
        let state = cached_state(Duration::from_secs(301), Duration::from_secs(301), false, now);
        assert_eq!(decide(&state, false, now), "fetch-with-stale");
        let failing = cached_state(Duration::from_secs(400), Duration::from_secs(2), true, now);
        assert_eq!(decide(&failing, false, now), "serve", "the rate limit holds for stale keys too");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let settings = VerifierSettings::new("https://auth.example", "sutazai");
        assert!(HttpJwksSource::new("http://auth:10054/.well-known/jwks.json", &settings).is_ok());
        assert!(matches!(
            HttpJwksSource::new("file:///etc/passwd", &settings),
            Err(KeySourceError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpJwksSource::new("not a url", &settings),
            Err(KeySourceError::InvalidUrl { .. })
        ));
    }
}
