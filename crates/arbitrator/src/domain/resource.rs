//! Resources and pools: the five kinds, a pool's key (`cpu`, `llm_slots:ollama/llama3.2:1b`), the
//! unit amounts are counted in, and the catalog of pools this arbitrator serves with their
//! capacities.
//!
//! The text form is the gateway's: `kind` for the host-wide pools and `kind:name` for the named
//! ones, split at the first `:` because model names carry colons of their own. It is also the
//! pool's name in Redis keys and Postgres rows.

use std::collections::BTreeMap;
use std::fmt;

/// Longest pool name (`<provider>/<model>` or an operator's name); the gateway uses the same bound.
pub const MAX_RESOURCE_NAME_BYTES: usize = 200;

/// Kinds of host resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// CPU time in millicores (1000 = one core).
    Cpu,
    /// Memory in bytes.
    Memory,
    /// Whole GPU devices.
    Gpu,
    /// Concurrent inference slots of one model at one provider.
    LlmSlots,
    /// An operator-defined counted resource.
    Custom,
}

impl ResourceKind {
    /// Every kind, in listing order.
    pub const ALL: [ResourceKind; 5] = [Self::Cpu, Self::Memory, Self::Gpu, Self::LlmSlots, Self::Custom];

    /// The kind's name in the text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "gpu",
            Self::LlmSlots => "llm_slots",
            Self::Custom => "custom",
        }
    }

    /// The unit amounts of this kind are counted in, for denial reasons.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Cpu => "millicores",
            Self::Memory => "bytes",
            Self::Gpu => "devices",
            Self::LlmSlots => "slots",
            Self::Custom => "units",
        }
    }

    /// Whether pools of this kind have names (several pools per kind).
    pub fn is_named(self) -> bool {
        matches!(self, Self::LlmSlots | Self::Custom)
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One pool: a kind and, for named kinds, the pool's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    kind: ResourceKind,
    name: String,
}

/// Why a resource reference is malformed; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceKeyError {
    /// `cpu`, `memory` and `gpu` are one pool each.
    #[error("`{0}` is one pool and takes no name")]
    UnexpectedName(&'static str),
    /// `llm_slots` and `custom` need a pool name.
    #[error("`{0}` needs a pool name")]
    MissingName(&'static str),
    /// The name is empty, too long or has control characters.
    #[error("the pool name must be 1 to {MAX_RESOURCE_NAME_BYTES} printable bytes")]
    BadName,
    /// Not one of the five kinds.
    #[error("must be cpu, memory, gpu, llm_slots:<provider>/<model> or custom:<name>")]
    UnknownKind,
}

impl ResourceKey {
    /// A pool of `kind` named `name` (empty for the unnamed kinds).
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Result<Self, ResourceKeyError> {
        let name = name.into();
        match (kind.is_named(), name.is_empty()) {
            (false, false) => return Err(ResourceKeyError::UnexpectedName(kind.as_str())),
            (true, true) => return Err(ResourceKeyError::MissingName(kind.as_str())),
            _ => {}
        }
        if name.len() > MAX_RESOURCE_NAME_BYTES || name.contains(char::is_control) {
            return Err(ResourceKeyError::BadName);
        }
        Ok(Self { kind, name })
    }

    /// Reads `kind` or `kind:name`.
    pub fn parse(text: &str) -> Result<Self, ResourceKeyError> {
        let (kind_text, name) = text.split_once(':').unwrap_or((text, ""));
        let kind = ResourceKind::parse(kind_text).ok_or(ResourceKeyError::UnknownKind)?;
        if kind.is_named() && text.len() == kind_text.len() {
            return Err(ResourceKeyError::MissingName(kind.as_str()));
        }
        if !kind.is_named() && text.len() != kind_text.len() {
            return Err(ResourceKeyError::UnexpectedName(kind.as_str()));
        }
        Self::new(kind, name)
    }

    /// The kind.
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The pool's name within its kind; empty for cpu, memory and gpu.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            formatter.write_str(self.kind.as_str())
        } else {
            write!(formatter, "{}:{}", self.kind.as_str(), self.name)
        }
    }
}

/// The pools this arbitrator serves and the capacity of each, fixed at start from configuration
/// and host detection. A resource that is not here is unknown (not_found).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    capacities: BTreeMap<ResourceKey, u64>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a pool.
    pub fn insert(&mut self, resource: ResourceKey, capacity: u64) {
        self.capacities.insert(resource, capacity);
    }

    /// The capacity of `resource`, if it is served.
    pub fn capacity(&self, resource: &ResourceKey) -> Option<u64> {
        self.capacities.get(resource).copied()
    }

    /// Every pool with its capacity, ordered by kind then name.
    pub fn pools(&self) -> impl Iterator<Item = (&ResourceKey, u64)> {
        self.capacities.iter().map(|(resource, capacity)| (resource, *capacity))
    }

    /// How many pools there are.
    pub fn len(&self) -> usize {
        self.capacities.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.capacities.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for text in ["cpu", "memory", "gpu", "llm_slots:ollama/llama3.2:1b", "custom:licenses"] {
            assert_eq!(ResourceKey::parse(text).unwrap().to_string(), text);
        }
        let slots = ResourceKey::parse("llm_slots:ollama/llama3.2:1b").unwrap();
        assert_eq!(slots.kind(), ResourceKind::LlmSlots);
        assert_eq!(slots.name(), "ollama/llama3.2:1b");
    }

    #[test]
    fn malformed_text_forms() {
        assert_eq!(ResourceKey::parse("disk"), Err(ResourceKeyError::UnknownKind));
        assert_eq!(ResourceKey::parse("CPU"), Err(ResourceKeyError::UnknownKind));
        assert_eq!(ResourceKey::parse("cpu:0"), Err(ResourceKeyError::UnexpectedName("cpu")));
        assert_eq!(ResourceKey::parse("cpu:"), Err(ResourceKeyError::UnexpectedName("cpu")));
        assert_eq!(ResourceKey::parse("llm_slots"), Err(ResourceKeyError::MissingName("llm_slots")));
        assert_eq!(ResourceKey::parse("llm_slots:"), Err(ResourceKeyError::MissingName("llm_slots")));
        assert_eq!(ResourceKey::parse("custom:a\nb"), Err(ResourceKeyError::BadName));
        let long = format!("custom:{}", "x".repeat(MAX_RESOURCE_NAME_BYTES + 1));
        assert_eq!(ResourceKey::parse(&long), Err(ResourceKeyError::BadName));
    }

    #[test]
    fn catalog_orders_by_kind_then_name() {
        let mut catalog = Catalog::new();
        catalog.insert(ResourceKey::parse("custom:b").unwrap(), 1);
        catalog.insert(ResourceKey::parse("llm_slots:z").unwrap(), 2);
        catalog.insert(ResourceKey::parse("cpu").unwrap(), 8000);
        catalog.insert(ResourceKey::parse("custom:a").unwrap(), 3);
        let order: Vec<String> = catalog.pools().map(|(resource, _)| resource.to_string()).collect();
        assert_eq!(order, ["cpu", "llm_slots:z", "custom:a", "custom:b"]);
        assert_eq!(catalog.capacity(&ResourceKey::parse("custom:a").unwrap()), Some(3));
        assert_eq!(catalog.capacity(&ResourceKey::parse("gpu").unwrap()), None);
    }
}
