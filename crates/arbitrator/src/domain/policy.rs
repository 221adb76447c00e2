//! Per-resource policies and the limits they yield. A policy is a set of shares of capacity; the
//! limits are the whole numbers the grant decision compares against:
//!
//! - total:      floor(capacity × oversubscription_ratio × max_allocation_percent / 100)
//! - per holder: floor(capacity × oversubscription_ratio × max_per_holder_percent / 100)

/// The largest amount (and limit) the arbitrator handles: the live view's arithmetic runs in Redis
/// Lua, whose numbers are doubles, exact for integers up to 2^53.
pub const MAX_AMOUNT: u64 = 1 << 53;

/// The largest oversubscription ratio accepted; beyond it a limit means nothing.
pub const MAX_OVERSUBSCRIPTION_RATIO: f64 = 1000.0;

/// The limits applied when granting leases of one resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Share of capacity all leases together may hold, 0 < x <= 100.
    pub max_allocation_percent: f64,
    /// Share of capacity one holder may hold, 0 < x <= 100.
    pub max_per_holder_percent: f64,
    /// Capacity multiplier, 1 <= x <= 1000.
    pub oversubscription_ratio: f64,
    /// Whether strictly higher-priority requests may revoke lower-priority leases.
    pub preemption_enabled: bool,
}

/// A policy value out of range, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The field, as the proto and the REST body name it.
    pub field: &'static str,
    /// The rule it breaks.
    pub message: &'static str,
}

/// The whole-number limits of one pool under its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What all live leases together may hold.
    pub total: u64,
    /// What the live leases of one holder may hold.
    pub per_holder: u64,
    /// Whether preemption may make room.
    pub preemption_enabled: bool,
}

fn check_percent(field: &'static str, value: f64) -> Result<(), PolicyError> {
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        return Ok(());
    }
    Err(PolicyError { field, message: "must be greater than 0 and at most 100" })
}

impl Policy {
    /// Checks every value; the first one out of range is named.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_percent("max_allocation_percent", self.max_allocation_percent)?;
        check_percent("max_per_holder_percent", self.max_per_holder_percent)?;
        let ratio = self.oversubscription_ratio;
        if !(ratio.is_finite() && (1.0..=MAX_OVERSUBSCRIPTION_RATIO).contains(&ratio)) {
            return Err(PolicyError {
                field: "oversubscription_ratio",
                message: "must be between 1 and 1000",
            });
        }
        Ok(())
    }

    /// The limits of a pool of `capacity` under this policy.
    pub fn limits(&self, capacity: u64) -> Limits {
        Limits {
            total: share(capacity, self.oversubscription_ratio, self.max_allocation_percent),
            per_holder: share(capacity, self.oversubscription_ratio, self.max_per_holder_percent),
            preemption_enabled: self.preemption_enabled,
        }
    }
}

/// floor(capacity × ratio × percent / 100), capped at [`MAX_AMOUNT`].
///
/// Percentages such as 30 or 33.3 are not exact in binary, so 8000 × 30 / 100 can land a hair
/// below 2400; a relative nudge of 1e-12 before the floor keeps whole results whole without
/// moving any result that is genuinely fractional by a visible amount.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "the value is finite, non-negative and clamped to MAX_AMOUNT before the cast"
)]
fn share(capacity: u64, ratio: f64, percent: f64) -> u64 {
    let exact = capacity as f64 * ratio * percent / 100.0;
    let nudged = (exact + exact * 1e-12).floor();
    if !nudged.is_finite() || nudged <= 0.0 {
        return 0;
    }
    (nudged.min(MAX_AMOUNT as f64)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(total: f64, holder: f64, ratio: f64) -> Policy {
        Policy {
            max_allocation_percent: total,
            max_per_holder_percent: holder,
            oversubscription_ratio: ratio,
            preemption_enabled: true,
        }
    }

    #[test]
    fn limits_floor_the_shares() {
        let limits = policy(80.0, 30.0, 1.0).limits(8000);
        assert_eq!((limits.total, limits.per_holder), (6400, 2400));
        let oversubscribed = policy(100.0, 50.0, 1.5).limits(8000);
        assert_eq!((oversubscribed.total, oversubscribed.per_holder), (12_000, 6000));
        // One slot at 90 % is no slot at all: the floor is honest about it.
        assert_eq!(policy(90.0, 100.0, 1.0).limits(1).total, 0);
        assert_eq!(policy(33.3, 100.0, 1.0).limits(1000).total, 333);
        for capacity in [1_u64, 3, 7, 1000, 8000, 12_345, 16 * 1024 * 1024 * 1024] {
            for percent in [10.0, 20.0, 30.0, 40.0, 60.0, 70.0, 80.0, 90.0, 100.0] {
                let exact = u128::from(capacity) * (percent as u128) / 100;
                assert_eq!(u128::from(policy(percent, 100.0, 1.0).limits(capacity).total), exact);
            }
        }
    }

    #[test]
    fn limits_are_capped() {
        assert_eq!(policy(100.0, 100.0, 1000.0).limits(u64::MAX).total, MAX_AMOUNT);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        assert_eq!(policy(80.0, 30.0, 1.0).validate(), Ok(()));
        assert_eq!(policy(100.0, 100.0, 1000.0).validate(), Ok(()));
        let field = |candidate: Policy| candidate.validate().unwrap_err().field;
        assert_eq!(field(policy(0.0, 30.0, 1.0)), "max_allocation_percent");
        assert_eq!(field(policy(100.5, 30.0, 1.0)), "max_allocation_percent");
        assert_eq!(field(policy(f64::NAN, 30.0, 1.0)), "max_allocation_percent");
        assert_eq!(field(policy(80.0, -1.0, 1.0)), "max_per_holder_percent");
        assert_eq!(field(policy(80.0, f64::INFINITY, 1.0)), "max_per_holder_percent");
        assert_eq!(field(policy(80.0, 30.0, 0.99)), "oversubscription_ratio");
        assert_eq!(field(policy(80.0, 30.0, 1000.5)), "oversubscription_ratio");
    }
}
