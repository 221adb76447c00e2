//! Identifier newtypes. Each wraps a UUID so a task id can never be passed where an agent id is
//! expected; they serialize as the bare UUID string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (UUID v7) id, so ids sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The wrapped UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

uuid_id!(
    /// A task owned by the orchestrator.
    TaskId
);
uuid_id!(
    /// A workflow (a DAG of tasks) owned by the orchestrator.
    WorkflowId
);
uuid_id!(
    /// A registered agent worker profile.
    AgentId
);
uuid_id!(
    /// A user or service account of the auth service.
    UserId
);
uuid_id!(
    /// A resource lease granted by the arbitrator.
    LeaseId
);
uuid_id!(
    /// An AMQP message; consumers deduplicate on it.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_bare_uuid() {
        let id = TaskId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: TaskId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn parse_rejects_non_uuid() {
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = TaskId::new();
        let second = TaskId::new();
        assert!(first < second);
    }
}
