//! The dispatch strategy: how an agent is picked among those that can run a task, whether owners
//! take turns within a priority, how many tasks one owner may hold, and how long an assignment may
//! wait for its `Started`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Longest assignment lease an admin may set: a day.
pub const MAX_ASSIGNMENT_LEASE_S: u32 = 86_400;

/// How an agent is picked among the eligible ones (online, every required capability, a free
/// slot). Every strategy dispatches pending tasks in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// The agent with the fewest capabilities beyond the required ones, then the least loaded,
    /// so generalist agents stay free for the tasks only they can run.
    CapabilityMatch,
    /// The agent with the lowest `active / slots`.
    LeastLoaded,
    /// Eligible agents in turn, ordered by id: a cursor remembers the last one picked.
    RoundRobin,
    /// Strict priority: pending tasks go in priority order and, within a priority, in arrival
    /// order even when owner fairness is on (one owner's earlier tasks are not held back for
    /// another's). Agents are picked like `least_loaded`.
    Priority,
}

impl StrategyKind {
    /// Every kind.
    pub const ALL: [StrategyKind; 4] =
        [Self::CapabilityMatch, Self::LeastLoaded, Self::RoundRobin, Self::Priority];

    /// The snake_case name used in configuration, SQL and the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CapabilityMatch => "capability_match",
            Self::LeastLoaded => "least_loaded",
            Self::RoundRobin => "round_robin",
            Self::Priority => "priority",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A name that is not a strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy `{0}`")]
pub struct UnknownStrategy(pub String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownStrategy(text.to_owned()))
    }
}

/// A strategy with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchStrategy {
    /// How agents are picked.
    pub kind: StrategyKind,
    /// Within a priority, owners take turns.
    pub owner_fairness: bool,
    /// Tasks one owner may have assigned at once; 0 means no limit.
    pub max_active_per_owner: u32,
    /// How long an assignment may go without `Started` before it is re-assigned.
    pub assignment_lease_s: u32,
}

/// A parameter out of range, named as the proto names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidStrategy {
    /// The field.
    pub field: &'static str,
    /// The rule it breaks.
    pub message: String,
}

impl DispatchStrategy {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), InvalidStrategy> {
        if !(1..=MAX_ASSIGNMENT_LEASE_S).contains(&self.assignment_lease_s) {
            return Err(InvalidStrategy {
                field: "assignment_lease_s",
                message: format!("must be between 1 and {MAX_ASSIGNMENT_LEASE_S}"),
            });
        }
        Ok(())
    }

    /// Whether pending tasks of one priority are ordered by owner turns rather than by arrival.
    pub fn fair_ordering(&self) -> bool {
        self.owner_fairness && self.kind != StrategyKind::Priority
    }

    /// The cap on one owner's assigned tasks, if any.
    pub fn owner_cap(&self) -> Option<u32> {
        (self.max_active_per_owner > 0).then_some(self.max_active_per_owner)
    }

    /// The assignment lease.
    pub fn assignment_lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.assignment_lease_s))
    }
}

/// The strategy in force and who set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStrategy {
    /// The strategy.
    pub strategy: DispatchStrategy,
    /// When an admin set it; `None` while the configured default applies.
    pub updated_at: Option<DateTime<Utc>>,
    /// Who set it; `configuration` for the configured default.
    pub updated_by: String,
}

/// `updated_by` of the strategy the configuration provides.
pub const CONFIGURED_BY: &str = "configuration";

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: StrategyKind, lease_s: u32) -> DispatchStrategy {
        DispatchStrategy { kind, owner_fairness: true, max_active_per_owner: 0, assignment_lease_s: lease_s }
    }

    #[test]
    fn names_round_trip() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.as_str().parse::<StrategyKind>(), Ok(kind));
        }
        assert_eq!("fastest".parse::<StrategyKind>(), Err(UnknownStrategy("fastest".to_owned())));
    }

    #[test]
    fn lease_bounds() {
        assert!(strategy(StrategyKind::RoundRobin, 1).validate().is_ok());
        assert!(strategy(StrategyKind::RoundRobin, MAX_ASSIGNMENT_LEASE_S).validate().is_ok());
        assert_eq!(strategy(StrategyKind::RoundRobin, 0).validate().unwrap_err().field, "assignment_lease_s");
        assert!(strategy(StrategyKind::RoundRobin, MAX_ASSIGNMENT_LEASE_S + 1).validate().is_err());
    }

    #[test]
    fn priority_orders_strictly_even_with_fairness_on() {
        assert!(strategy(StrategyKind::CapabilityMatch, 30).fair_ordering());
        assert!(!strategy(StrategyKind::Priority, 30).fair_ordering());
        let unfair = DispatchStrategy { owner_fairness: false, ..strategy(StrategyKind::LeastLoaded, 30) };
        assert!(!unfair.fair_ordering());
    }
}
