//! `[arbitrator]`: where the role listens, the capacities of its pools, the default policy and the
//! timings of expiry and waiting. Every key is documented in `arbitrator.default.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sutazai_kit::config::{ConfigIssues, Validate, key};

use crate::domain::policy::{MAX_AMOUNT, Policy};
use crate::domain::resource::{ResourceKey, ResourceKind};

/// Named pools and their capacities (`llm_slots`, `custom`).
///
/// Written either as a list of `"<name>=<count>"` strings, which also works from the environment
/// (`SUTAZAI__ARBITRATOR__LLM_SLOTS=ollama/smollm2:135m=1,ollama/llama3.2:1b=2`), or as a TOML table
/// (`{ "ollama/smollm2:135m" = 1 }`) in a file. The count follows the last `=`, since model names
/// may contain anything but control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedCapacities(Vec<(String, u64)>);

impl NamedCapacities {
    /// Pools in the order written.
    pub fn new(entries: Vec<(String, u64)>) -> Self {
        Self(entries)
    }

    /// Each pool's name and capacity.
    pub fn entries(&self) -> &[(String, u64)] {
        &self.0
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NamedCapacitiesForm {
    List(Vec<String>),
    Table(BTreeMap<String, u64>),
    // One environment value without list splitting: comma-separated entries.
    Text(String),
}

fn parse_entry(entry: &str) -> Result<(String, u64), String> {
    let (name, count) =
        entry.rsplit_once('=').ok_or_else(|| format!("`{entry}`: expected <name>=<count>"))?;
    let count =
        count.trim().parse::<u64>().map_err(|_| format!("`{entry}`: the count must be a whole number"))?;
    Ok((name.trim().to_owned(), count))
}

impl<'de> Deserialize<'de> for NamedCapacities {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = match NamedCapacitiesForm::deserialize(deserializer)? {
            NamedCapacitiesForm::Table(table) => table.into_iter().collect(),
            NamedCapacitiesForm::List(list) => list
                .iter()
                .map(|entry| parse_entry(entry))
                .collect::<Result<_, _>>()
                .map_err(serde::de::Error::custom)?,
            NamedCapacitiesForm::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(parse_entry)
                .collect::<Result<_, _>>()
                .map_err(serde::de::Error::custom)?,
        };
        Ok(Self(entries))
    }
}

/// Settings of the arbitrator role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArbitratorSettings {
    /// Where the role listens (HTTP probes and gRPC).
    pub listen: SocketAddr,
    /// The auth service (JWKS at `/.well-known/jwks.json`).
    pub auth_url: String,
    /// CPU capacity in millicores; 0 detects cores × 1000.
    pub cpu_millicores: u64,
    /// Memory capacity in bytes; 0 reads MemTotal from /proc/meminfo.
    pub memory_bytes: u64,
    /// GPU devices; 0 counts the devices `nvidia-smi -L` lists (none without nvidia-smi).
    pub gpus: u64,
    /// Inference slots per `<provider>/<model>`.
    pub llm_slots: NamedCapacities,
    /// Operator-defined counted resources.
    pub custom: NamedCapacities,
    /// Policy of resources without a stored one: share all leases may hold.
    pub default_max_allocation_percent: f64,
    /// Policy default: share one holder may hold.
    pub default_max_per_holder_percent: f64,
    /// Policy default: capacity multiplier.
    pub default_oversubscription_ratio: f64,
    /// Policy default: whether higher priorities preempt.
    pub default_preemption_enabled: bool,
    /// How often expired leases are marked in Postgres (and the live view checked).
    pub sweep_interval_ms: u64,
    /// Longest lease lifetime a request may ask for.
    pub max_ttl_s: u32,
    /// Longest `wait_timeout_ms` a request may ask for.
    pub max_wait_ms: u32,
}

impl ArbitratorSettings {
    /// The policy of resources nobody has set one for.
    pub fn default_policy(&self) -> Policy {
        Policy {
            max_allocation_percent: self.default_max_allocation_percent,
            max_per_holder_percent: self.default_max_per_holder_percent,
            oversubscription_ratio: self.default_oversubscription_ratio,
            preemption_enabled: self.default_preemption_enabled,
        }
    }

    /// The sweep interval.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }
}

fn check_named(
    issues: &mut ConfigIssues,
    prefix: &str,
    name: &str,
    kind: ResourceKind,
    pools: &NamedCapacities,
) {
    let mut seen = BTreeSet::new();
    for (pool, count) in pools.entries() {
        if let Err(error) = ResourceKey::new(kind, pool.clone()) {
            issues.push(key(prefix, name), format!("`{pool}`: {error}"));
        }
        if *count == 0 || *count > MAX_AMOUNT {
            issues.push(key(prefix, name), format!("`{pool}`: the count must be between 1 and 2^53"));
        }
        if !seen.insert(pool.as_str()) {
            issues.push(key(prefix, name), format!("`{pool}` is listed twice"));
        }
    }
}

impl Validate for ArbitratorSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            issues.push(key(prefix, "auth_url"), "must be an http:// or https:// URL");
        }
        for (name, value) in [
            ("cpu_millicores", self.cpu_millicores),
            ("memory_bytes", self.memory_bytes),
            ("gpus", self.gpus),
        ] {
            if value > MAX_AMOUNT {
                issues.push(key(prefix, name), "must be at most 2^53");
            }
        }
        check_named(issues, prefix, "llm_slots", ResourceKind::LlmSlots, &self.llm_slots);
        check_named(issues, prefix, "custom", ResourceKind::Custom, &self.custom);
        if let Err(error) = self.default_policy().validate() {
            issues.push(key(prefix, &format!("default_{}", error.field)), error.message);
        }
        if !(10..=60_000).contains(&self.sweep_interval_ms) {
            issues.push(key(prefix, "sweep_interval_ms"), "must be between 10 and 60000");
        }
        if self.max_ttl_s == 0 {
            issues.push(key(prefix, "max_ttl_s"), "must be at least 1");
        }
        if self.max_wait_ms > 600_000 {
            issues.push(key(prefix, "max_wait_ms"), "must be at most 600000");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sutazai_kit::config::{ConfigSources, load};

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        arbitrator: ArbitratorSettings,
    }

    impl Validate for Sample {
        fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
            self.arbitrator.validate(&key(prefix, "arbitrator"), issues);
        }
    }

    const DEFAULTS: &str = include_str!("../arbitrator.default.toml");

    fn load_with(
        file_toml: Option<&str>,
        env: &[(&str, &str)],
        list_keys: &[&str],
    ) -> Result<Sample, String> {
        let defaults = match file_toml {
            Some(extra) => format!("{DEFAULTS}\n{extra}"),
            None => DEFAULTS.to_owned(),
        };
        let env: HashMap<String, String> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        load(ConfigSources { defaults_toml: &defaults, file: None, env, list_keys })
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_load_and_validate() {
        let settings = load_with(None, &[], &[]).unwrap().arbitrator;
        assert_eq!(settings.listen, "127.0.0.1:8588".parse().unwrap());
        assert_eq!(
            settings.llm_slots.entries(),
            [
                ("ollama/smollm2:135m".to_owned(), 1),
                ("local/smollm2:135m".to_owned(), 1),
                ("local/all-minilm".to_owned(), 1)
            ]
        );
        assert!(settings.custom.entries().is_empty());
        assert_eq!(settings.default_policy().validate(), Ok(()));
    }

    #[test]
    fn named_pools_from_the_environment_as_a_list() {
        let env = [("SUTAZAI__ARBITRATOR__LLM_SLOTS", "ollama/llama3.2:1b=2,openai/gpt-4o=8")];
        let settings = load_with(None, &env, &["arbitrator.llm_slots"]).unwrap().arbitrator;
        assert_eq!(
            settings.llm_slots.entries(),
            [("ollama/llama3.2:1b".to_owned(), 2), ("openai/gpt-4o".to_owned(), 8)]
        );
        // Without list splitting the value arrives as one string and is split here.
        let settings = load_with(None, &[("SUTAZAI__ARBITRATOR__CUSTOM", "licenses=5, seats=3")], &[])
            .unwrap()
            .arbitrator;
        assert_eq!(settings.custom.entries(), [("licenses".to_owned(), 5), ("seats".to_owned(), 3)]);
    }

    #[test]
    fn named_pools_as_a_table_keep_dots_and_case() {
        let table = "[arbitrator.llm_slots]\n\"ollama/Llama3.2:1b\" = 2\n";
        let defaults_without_slots = DEFAULTS.replace(
            "llm_slots = [\"ollama/smollm2:135m=1\", \"local/smollm2:135m=1\", \"local/all-minilm=1\"]",
            "",
        );
        let env: HashMap<String, String> = HashMap::new();
        let loaded: Sample = load(ConfigSources {
            defaults_toml: &format!("{defaults_without_slots}\n{table}"),
            file: None,
            env,
            list_keys: &[],
        })
        .unwrap();
        assert_eq!(loaded.arbitrator.llm_slots.entries(), [("ollama/Llama3.2:1b".to_owned(), 2)]);
    }

    #[test]
    fn bad_values_name_their_keys() {
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__CUSTOM", "licenses")], &[]).unwrap_err();
        assert!(error.contains("expected <name>=<count>"), "{error}");
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__CUSTOM", "a=0,a=1")], &[]).unwrap_err();
        assert!(error.contains("`arbitrator.custom`: `a`: the count must be between 1 and 2^53"), "{error}");
        assert!(error.contains("`arbitrator.custom`: `a` is listed twice"), "{error}");
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__DEFAULT_MAX_PER_HOLDER_PERCENT", "120")], &[])
            .unwrap_err();
        assert!(error.contains("`arbitrator.default_max_per_holder_percent`"), "{error}");
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__SWEEP_INTERVAL_MS", "0")], &[]).unwrap_err();
        assert!(error.contains("`arbitrator.sweep_interval_ms`"), "{error}");
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__AUTH_URL", "auth:10054")], &[]).unwrap_err();
        assert!(error.contains("`arbitrator.auth_url`"), "{error}");
        let error = load_with(None, &[("SUTAZAI__ARBITRATOR__GPU", "1")], &[]).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }
}
