//! Vocabulary shared by every SutazAI crate: identifiers, task and agent enums, the AMQP message
//! enums and the one `ServiceErrorCode` table that maps domain failures to HTTP and gRPC.
//!
//! This crate has no I/O. Services meet through these types and the generated proto code only.

pub mod error_code;
pub mod ids;
pub mod messages;
pub mod status;

pub use error_code::ServiceErrorCode;
pub use ids::{AgentId, LeaseId, MessageId, TaskId, UserId, WorkflowId};
pub use status::{AgentStatus, Priority, PriorityOutOfRange, TaskStatus};
