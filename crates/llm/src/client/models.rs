//! The provider's model list, fetched at most once per TTL, and the name matching used to check
//! a requested model against it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::LlmError;
use crate::types::ModelInfo;

/// The last fetched model list.
#[derive(Debug)]
pub(super) struct ModelListCache {
    ttl: Duration,
    cached: Mutex<Option<CachedList>>,
}

#[derive(Debug)]
struct CachedList {
    fetched_at: Instant,
    models: Arc<Vec<ModelInfo>>,
}

impl ModelListCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self { ttl, cached: Mutex::new(None) }
    }

    /// The cached list while it is younger than the TTL, otherwise the result of `fetch`. The
    /// lock is held during the fetch, so callers arriving meanwhile wait for that one fetch
    /// instead of each asking the provider.
    pub(super) async fn get_or_fetch<Fetch, FetchFuture>(
        &self,
        fetch: Fetch,
    ) -> Result<Arc<Vec<ModelInfo>>, LlmError>
    where
        Fetch: FnOnce() -> FetchFuture,
        FetchFuture: Future<Output = Result<Vec<ModelInfo>, LlmError>>,
    {
        let mut cached = self.cached.lock().await;
        if let Some(list) = cached.as_ref()
            && list.fetched_at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(&list.models));
        }
        let models = Arc::new(fetch().await?);
        *cached = Some(CachedList { fetched_at: Instant::now(), models: Arc::clone(&models) });
        Ok(models)
    }

    /// Forgets the list, so the next lookup fetches it (the provider just said a listed model is
    /// gone).
    pub(super) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// Whether a requested model name denotes a listed one, the way Ollama resolves names: ASCII
/// case does not matter and a name without a tag means `:latest`. Exact names (the OpenAI API's
/// ids) match too.
pub(crate) fn model_names_match(requested: &str, listed: &str) -> bool {
    with_default_tag(requested.trim()).eq_ignore_ascii_case(&with_default_tag(listed.trim()))
}

fn with_default_tag(name: &str) -> String {
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if last_segment.contains(':') { name.to_owned() } else { format!("{name}:latest") }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn names_match_like_ollama() {
        assert!(model_names_match("llama3.2", "llama3.2:latest"));
        assert!(model_names_match("Llama3.2:1B", "llama3.2:1b"));
        assert!(model_names_match("gpt-4o-mini", "gpt-4o-mini"));
        assert!(model_names_match("registry.local:5000/team/model", "registry.local:5000/team/model:latest"));
        assert!(!model_names_match("llama3.2", "llama3.2:1b"));
        assert!(!model_names_match("llama3", "llama3.2:latest"));
    }

    #[tokio::test]
    async fn the_list_is_fetched_once_per_ttl() {
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![ModelInfo { name: "m:latest".to_owned(), size_bytes: None, family: None }])
        };
        let cache = ModelListCache::new(Duration::from_secs(60));
        cache.get_or_fetch(fetch).await.unwrap();
        cache.get_or_fetch(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        cache.invalidate().await;
        cache.get_or_fetch(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        let expired = ModelListCache::new(Duration::ZERO);
        expired.get_or_fetch(fetch).await.unwrap();
        expired.get_or_fetch(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let cache = ModelListCache::new(Duration::from_secs(60));
        let failure = cache.get_or_fetch(|| async { Err(LlmError::unavailable("down")) }).await;
        assert!(failure.is_err());
        let models = cache.get_or_fetch(|| async { Ok(Vec::new()) }).await.unwrap();
        assert!(models.is_empty());
    }
}
