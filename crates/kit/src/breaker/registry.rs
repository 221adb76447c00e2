//! The breakers of one service by downstream name, so every client of a downstream (HTTP and
//! gRPC alike) trips and recovers together, and the health endpoint lists them all.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::{BreakerSettings, BreakerSnapshot, CircuitBreaker};

/// Name → breaker. Cheap to clone; clones share the breakers.
#[derive(Debug, Clone)]
pub struct BreakerRegistry {
    settings: BreakerSettings,
    breakers: Arc<RwLock<BTreeMap<String, Arc<CircuitBreaker>>>>,
}

impl BreakerRegistry {
    /// An empty registry whose breakers use `settings`.
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, breakers: Arc::default() }
    }

    /// The breaker of `downstream`, created closed on first use.
    pub fn get(&self, downstream: &str) -> Arc<CircuitBreaker> {
        // The map only ever gains entries, so a poisoned lock still holds a usable map.
        if let Some(breaker) = self.breakers.read().unwrap_or_else(PoisonError::into_inner).get(downstream) {
            return Arc::clone(breaker);
        }
        let mut breakers = self.breakers.write().unwrap_or_else(PoisonError::into_inner);
        let breaker = breakers
            .entry(downstream.to_owned())
            .or_insert_with(|| Arc::new(CircuitBreaker::new(downstream, self.settings)));
        Arc::clone(breaker)
    }

    /// Adds a breaker made elsewhere (with its own settings), replacing one of the same name.
    pub fn register(&self, breaker: Arc<CircuitBreaker>) {
        let mut breakers = self.breakers.write().unwrap_or_else(PoisonError::into_inner);
        breakers.insert(breaker.name().to_owned(), breaker);
    }

    /// Every breaker's state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, BreakerSnapshot> {
        let breakers = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        breakers.iter().map(|(name, breaker)| (name.clone(), breaker.snapshot())).collect()
    }

    /// Closes every circuit (the admin reset).
    pub fn reset_all(&self) {
        let breakers = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        for breaker in breakers.values() {
            breaker.reset();
        }
    }
}
