//! A task, the validation of a submission, and the task's state machine. Every transition returns
//! the event that records it, numbered from the task's own counter, so the store only has to save
//! both in the transaction that holds the task's row lock for the event log to stay gapless.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sutazai_types::{AgentId, Priority, TaskId, TaskStatus, WorkflowId};

use super::validation::ValidationError;

/// Defaults and limits applied to submissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLimits {
    /// Retries when a submission states none.
    pub default_max_retries: u32,
    /// The most retries a submission may ask for.
    pub max_retries_limit: u32,
    /// Timeout when a submission states none.
    pub default_timeout_s: u32,
    /// The longest timeout a submission may ask for.
    pub max_timeout_s: u32,
    /// Largest payload, serialized.
    pub max_payload_bytes: usize,
    /// Most steps of one workflow.
    pub max_workflow_steps: usize,
}

/// Longest task type name.
const MAX_TASK_TYPE_CHARS: usize = 100;
/// Most capabilities a task may require.
const MAX_CAPABILITIES: usize = 32;
/// Longest capability name.
const MAX_CAPABILITY_CHARS: usize = 100;
/// Longest idempotency key (the gateway allows 200).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// A task as submitted, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    /// What kind of work.
    pub task_type: String,
    /// The input handed to the agent.
    pub payload: Value,
    /// 0..=9; anything else is refused.
    pub priority: u32,
    /// Capabilities an agent must all have.
    pub capabilities: Vec<String>,
    /// Retries after the first attempt; the default when absent.
    pub max_retries: Option<u32>,
    /// Deadline from submission; the default when absent.
    pub timeout_s: Option<u32>,
}

/// A task definition that passed validation, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// What kind of work.
    pub task_type: String,
    /// The input handed to the agent.
    pub payload: Value,
    /// Dispatch priority.
    pub priority: Priority,
    /// Capabilities an agent must all have.
    pub capabilities: Vec<String>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Deadline from submission.
    pub timeout_s: u32,
}

impl TaskSpec {
    /// Validates `request`; field names in errors start with `field_prefix` (`steps[1].` for a
    /// workflow step, empty for a task).
    pub fn parse(
        request: TaskRequest,
        limits: &TaskLimits,
        field_prefix: &str,
    ) -> Result<Self, ValidationError> {
        let field = |name: &str| format!("{field_prefix}{name}");
        let task_type = request.task_type.trim().to_owned();
        if task_type.is_empty() || task_type.chars().count() > MAX_TASK_TYPE_CHARS {
            return Err(ValidationError::new(
                field("task_type"),
                format!("must be 1 to {MAX_TASK_TYPE_CHARS} characters"),
            ));
        }
        let priority = u8::try_from(request.priority)
            .ok()
            .and_then(|value| Priority::try_from(value).ok())
            .ok_or_else(|| ValidationError::new(field("priority"), "must be between 0 and 9"))?;
        check_payload_size(&request.payload, limits.max_payload_bytes, &field("payload"))?;
        if request.capabilities.len() > MAX_CAPABILITIES {
            return Err(ValidationError::new(
                field("capabilities"),
                format!("at most {MAX_CAPABILITIES} capabilities"),
            ));
        }
        let mut capabilities: Vec<String> = Vec::with_capacity(request.capabilities.len());
        for capability in request.capabilities {
            let capability = capability.trim().to_owned();
            if capability.is_empty() || capability.chars().count() > MAX_CAPABILITY_CHARS {
                return Err(ValidationError::new(
                    field("capabilities"),
                    format!("each capability must be 1 to {MAX_CAPABILITY_CHARS} characters"),
                ));
            }
            if !capabilities.contains(&capability) {
                capabilities.push(capability);
            }
        }
        // Agents advertise the task types they run among their capabilities (the built-in
        // profiles advertise their kind), so a task that names none needs its own type; it
        // never goes to whichever agent happens to be free.
        if capabilities.is_empty() {
            capabilities.push(task_type.clone());
        }
        let max_retries = request.max_retries.unwrap_or(limits.default_max_retries);
        if max_retries > limits.max_retries_limit {
            return Err(ValidationError::new(
                field("max_retries"),
                format!("must be at most {}", limits.max_retries_limit),
            ));
        }
        let timeout_s = request.timeout_s.unwrap_or(limits.default_timeout_s);
        if timeout_s == 0 || timeout_s > limits.max_timeout_s {
            return Err(ValidationError::new(
                field("timeout_s"),
                format!("must be between 1 and {}", limits.max_timeout_s),
            ));
        }
        Ok(Self { task_type, payload: request.payload, priority, capabilities, max_retries, timeout_s })
    }
}

/// Refuses a JSON value larger than `max_bytes` once serialized.
pub fn check_payload_size(payload: &Value, max_bytes: usize, field: &str) -> Result<(), ValidationError> {
    let size_bytes = serde_json::to_vec(payload).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size_bytes > max_bytes {
        return Err(ValidationError::new(
            field,
            format!("is {size_bytes} bytes, more than the limit of {max_bytes} bytes"),
        ));
    }
    Ok(())
}

/// Checks an idempotency key; empty means none.
pub fn idempotency_key(text: &str) -> Result<Option<String>, ValidationError> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(ValidationError::new(
            "idempotency_key",
            format!("must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The workflow step a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// The step within it.
    pub step_id: String,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Time-ordered id.
    pub id: TaskId,
    /// The user or service the task belongs to.
    pub owner: String,
    /// What kind of work.
    pub task_type: String,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Dispatch priority.
    pub priority: Priority,
    /// The attempt in progress or last made; 0 while never assigned.
    pub attempt: u32,
    /// Attempts that ended with the agent's error. The retry budget and the backoff count these,
    /// not `attempt`, which the coordinator also moves on when it takes a task back from a
    /// silent agent.
    pub failures: u32,
    /// The agent of the current or last assignment.
    pub assigned_agent: Option<AgentId>,
    /// The input handed to the agent.
    pub payload: Value,
    /// The agent's result once succeeded.
    pub result: Option<Value>,
    /// Why the task failed or was cancelled.
    pub error: Option<String>,
    /// Why a queued task waits, as the coordinator reported it.
    pub queued_reason: Option<String>,
    /// Capabilities an agent must all have.
    pub capabilities: Vec<String>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Deadline from submission, in seconds.
    pub timeout_s: u32,
    /// When the task times out.
    pub deadline: DateTime<Utc>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// Set when the task runs a workflow step.
    pub step: Option<StepRef>,
    /// When a retrying task's next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Sequence of the last event recorded.
    pub last_sequence: u64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Start of the first attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// When it became terminal.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One recorded state transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// The task.
    pub task_id: TaskId,
    /// Position in the task's log, from 1, without gaps.
    pub sequence: u64,
    /// The status entered.
    pub status: TaskStatus,
    /// The status left; none for the first event.
    pub previous_status: Option<TaskStatus>,
    /// The task's attempt after the transition.
    pub attempt: u32,
    /// The agent involved, if any.
    pub agent_id: Option<AgentId>,
    /// Human-readable context.
    pub detail: String,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
}

/// A cancel of a task that is already terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task is already {0}")]
pub struct AlreadyTerminal(pub TaskStatus);

impl Task {
    /// A new queued task and its first event.
    pub fn submit(
        spec: TaskSpec,
        owner: String,
        idempotency_key: Option<String>,
        step: Option<StepRef>,
        now: DateTime<Utc>,
    ) -> (Self, TaskEvent) {
        let id = TaskId::new();
        let deadline = now + chrono::Duration::seconds(i64::from(spec.timeout_s));
        let task = Self {
            id,
            owner,
            task_type: spec.task_type,
            status: TaskStatus::Queued,
            priority: spec.priority,
            attempt: 0,
            failures: 0,
            assigned_agent: None,
            payload: spec.payload,
            result: None,
            error: None,
            queued_reason: None,
            capabilities: spec.capabilities,
            max_retries: spec.max_retries,
            timeout_s: spec.timeout_s,
            deadline,
            idempotency_key,
            step,
            next_attempt_at: None,
            last_sequence: 1,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        let event = TaskEvent {
            task_id: id,
            sequence: 1,
            status: TaskStatus::Queued,
            previous_status: None,
            attempt: 0,
            agent_id: None,
            detail: "submitted".to_owned(),
            occurred_at: now,
        };
        (task, event)
    }

    fn transition(
        &mut self,
        status: TaskStatus,
        agent_id: Option<AgentId>,
        detail: String,
        now: DateTime<Utc>,
    ) -> TaskEvent {
        debug_assert!(!self.status.is_terminal(), "a terminal task never changes");
        let previous_status = self.status;
        self.status = status;
        self.last_sequence += 1;
        if status.is_terminal() {
            self.finished_at = Some(now);
            self.next_attempt_at = None;
        }
        TaskEvent {
            task_id: self.id,
            sequence: self.last_sequence,
            status,
            previous_status: Some(previous_status),
            attempt: self.attempt,
            agent_id,
            detail,
            occurred_at: now,
        }
    }

    /// The coordinator leased attempt `attempt` to `agent`; `reason` explains a re-assignment.
    pub fn assign(&mut self, attempt: u32, agent: AgentId, reason: &str, now: DateTime<Utc>) -> TaskEvent {
        debug_assert!(attempt > self.attempt, "assignments only move forward");
        self.attempt = attempt;
        self.assigned_agent = Some(agent);
        self.queued_reason = None;
        self.next_attempt_at = None;
        let detail = if reason.is_empty() {
            format!("attempt {attempt}")
        } else {
            format!("attempt {attempt}: {reason}")
        };
        self.transition(TaskStatus::Assigned, Some(agent), detail, now)
    }

    /// The coordinator cannot assign the task yet, for `reason` (no event: it is not a transition).
    pub fn wait(&mut self, reason: String) {
        self.queued_reason = Some(reason);
    }

    /// The agent started the current attempt.
    pub fn start(&mut self, now: DateTime<Utc>) -> TaskEvent {
        self.started_at.get_or_insert(now);
        let agent = self.assigned_agent;
        self.transition(TaskStatus::Running, agent, String::new(), now)
    }

    /// The current attempt produced `result`.
    pub fn succeed(&mut self, result: Value, now: DateTime<Utc>) -> TaskEvent {
        self.result = Some(result);
        self.error = None;
        let agent = self.assigned_agent;
        self.transition(TaskStatus::Succeeded, agent, String::new(), now)
    }

    /// The current attempt ended with the agent's error: one more failure counts against the
    /// retry budget.
    pub fn count_failure(&mut self) {
        debug_assert!(self.attempt >= 1, "only an attempt that was made can fail");
        self.failures += 1;
    }

    /// Whether the failure just counted leaves a retry: the agent said another attempt could
    /// succeed and the failures are within the budget (`max_retries` retries after the first
    /// failure). Attempts the coordinator re-assigned without a failure cost nothing.
    pub fn may_retry(&self, retryable: bool) -> bool {
        retryable && self.failures <= self.max_retries
    }

    /// The current attempt failed and the next one waits `delay`.
    pub fn schedule_retry(&mut self, error: &str, delay: Duration, now: DateTime<Utc>) -> TaskEvent {
        debug_assert!(self.failures >= 1, "a retry follows a counted failure");
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.next_attempt_at =
            Some(now + chrono::Duration::milliseconds(i64::try_from(delay_ms).unwrap_or(i64::MAX)));
        let detail =
            format!("attempt {} failed: {error}; retry {} after {delay_ms}ms", self.attempt, self.failures);
        let agent = self.assigned_agent;
        self.transition(TaskStatus::Retrying, agent, detail, now)
    }

    /// The backoff is over: the next attempt is ready for dispatch again.
    pub fn requeue(&mut self, now: DateTime<Utc>) -> TaskEvent {
        debug_assert_eq!(self.status, TaskStatus::Retrying);
        self.next_attempt_at = None;
        let detail = format!("retry {}: attempt {} ready", self.failures, self.attempt + 1);
        self.transition(TaskStatus::Queued, None, detail, now)
    }

    /// The coordinator took the attempt in progress back (its agent went silent, or never
    /// started it) and cannot place `next_attempt` yet, for `reason`: the task is queued again.
    ///
    /// `attempt` stays the attempt last made, as after a retry's backoff: a queued task's
    /// current attempt has ended, so the late reports of the abandoned one are fenced off, and
    /// the assignment of `next_attempt` moves the task on.
    pub fn taken_back(&mut self, next_attempt: u32, reason: String, now: DateTime<Utc>) -> TaskEvent {
        debug_assert!(matches!(self.status, TaskStatus::Assigned | TaskStatus::Running));
        debug_assert!(next_attempt > self.attempt, "the coordinator holds a newer attempt");
        let detail = format!(
            "attempt {} taken back by the coordinator; attempt {next_attempt} waits: {reason}",
            self.attempt
        );
        self.queued_reason = Some(reason);
        self.transition(TaskStatus::Queued, None, detail, now)
    }

    /// The coordinator refused the next attempt with `error` (its pending queue was full): the
    /// task fails without any agent having run it.
    pub fn refuse(&mut self, error: String, now: DateTime<Utc>) -> TaskEvent {
        let detail = format!("refused by the coordinator: {error}");
        self.error = Some(error);
        self.queued_reason = None;
        self.transition(TaskStatus::Failed, None, detail, now)
    }

    /// The task fails for good with `error` (the agent's, or a rejected planner output).
    pub fn fail(&mut self, error: String, detail: String, now: DateTime<Utc>) -> TaskEvent {
        self.error = Some(error);
        let agent = self.assigned_agent;
        self.transition(TaskStatus::Failed, agent, detail, now)
    }

    /// The deadline passed before the task finished.
    pub fn time_out(&mut self, now: DateTime<Utc>) -> TaskEvent {
        let error = format!("timed out after {}s", self.timeout_s);
        self.error = Some(error.clone());
        self.transition(TaskStatus::Failed, None, error, now)
    }

    /// Cancels the task for `reason`; a terminal task cannot be cancelled.
    pub fn cancel(&mut self, reason: &str, now: DateTime<Utc>) -> Result<TaskEvent, AlreadyTerminal> {
        if self.status.is_terminal() {
            return Err(AlreadyTerminal(self.status));
        }
        self.error = Some(reason.to_owned());
        Ok(self.transition(TaskStatus::Cancelled, None, reason.to_owned(), now))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn limits() -> TaskLimits {
        TaskLimits {
            default_max_retries: 3,
            max_retries_limit: 20,
            default_timeout_s: 3600,
            max_timeout_s: 86_400,
            max_payload_bytes: 64,
            max_workflow_steps: 10,
        }
    }

    fn request() -> TaskRequest {
        TaskRequest {
            task_type: "summarize".into(),
            payload: json!({"text": "hi"}),
            priority: 5,
            capabilities: vec!["llm".into(), "llm".into()],
            max_retries: None,
            timeout_s: None,
        }
    }

    fn field_of(request: TaskRequest) -> String {
        TaskSpec::parse(request, &limits(), "").unwrap_err().field
    }

    #[test]
    fn submissions_get_defaults_and_dedupe_capabilities() {
        let spec = TaskSpec::parse(request(), &limits(), "").unwrap();
        assert_eq!((spec.max_retries, spec.timeout_s), (3, 3600));
        assert_eq!(spec.capabilities, ["llm"]);
        assert_eq!(spec.priority.value(), 5);
    }

    #[test]
    fn a_task_without_capabilities_needs_an_agent_of_its_type() {
        let spec =
            TaskSpec::parse(TaskRequest { capabilities: Vec::new(), ..request() }, &limits(), "").unwrap();
        assert_eq!(spec.capabilities, ["summarize"]);
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(field_of(TaskRequest { priority: 10, ..request() }), "priority");
        assert_eq!(field_of(TaskRequest { task_type: "  ".into(), ..request() }), "task_type");
        assert_eq!(
            field_of(TaskRequest { payload: json!({"text": "x".repeat(100)}), ..request() }),
            "payload"
        );
        assert_eq!(field_of(TaskRequest { max_retries: Some(21), ..request() }), "max_retries");
        assert_eq!(field_of(TaskRequest { timeout_s: Some(0), ..request() }), "timeout_s");
        assert_eq!(field_of(TaskRequest { capabilities: vec![String::new()], ..request() }), "capabilities");
        let error =
            TaskSpec::parse(TaskRequest { priority: 12, ..request() }, &limits(), "steps[1].").unwrap_err();
        assert_eq!(error.to_string(), "steps[1].priority: must be between 0 and 9");
    }

    fn submitted() -> Task {
        let spec = TaskSpec::parse(request(), &limits(), "").unwrap();
        Task::submit(spec, "alice".into(), None, None, Utc::now()).0
    }

    #[test]
    fn a_life_is_numbered_without_gaps() {
        let mut task = submitted();
        let agent = AgentId::new();
        let now = Utc::now();
        let events = [
            task.assign(1, agent, "", now),
            task.start(now),
            {
                task.count_failure();
                task.schedule_retry("boom", Duration::from_millis(250), now)
            },
            task.requeue(now),
            task.assign(2, agent, "agent went offline", now),
            task.succeed(json!({"output": 1}), now),
        ];
        let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
        assert_eq!(sequences, [2, 3, 4, 5, 6, 7]);
        assert_eq!(events[2].detail, "attempt 1 failed: boom; retry 1 after 250ms");
        assert_eq!(events[3].detail, "retry 1: attempt 2 ready");
        assert_eq!(events[4].detail, "attempt 2: agent went offline");
        assert_eq!(events[5].previous_status, Some(TaskStatus::Assigned));
        assert_eq!(task.status, TaskStatus::Succeeded);
        assert!(task.finished_at.is_some() && task.next_attempt_at.is_none());
    }

    #[test]
    fn retries_stop_after_max_retries() {
        let mut task = submitted();
        let agent = AgentId::new();
        for attempt in 1..=4 {
            task.assign(attempt, agent, "", Utc::now());
            task.count_failure();
            assert_eq!(task.may_retry(true), attempt <= 3, "attempt {attempt}");
            assert!(!task.may_retry(false));
        }
    }

    #[test]
    fn reassignments_do_not_use_up_the_retry_budget() {
        let spec = TaskSpec::parse(TaskRequest { max_retries: Some(1), ..request() }, &limits(), "").unwrap();
        let mut task = Task::submit(spec, "alice".into(), None, None, Utc::now()).0;
        let now = Utc::now();
        // Two agents went silent before the third attempt failed for the first time.
        task.assign(1, AgentId::new(), "", now);
        task.assign(2, AgentId::new(), "agent went offline", now);
        task.assign(3, AgentId::new(), "agent went offline", now);
        task.count_failure();
        assert_eq!(task.failures, 1);
        assert!(task.may_retry(true), "the only retry is still there");
        let event = task.schedule_retry("boom", Duration::from_millis(100), now);
        assert_eq!(event.detail, "attempt 3 failed: boom; retry 1 after 100ms");
        assert_eq!(task.requeue(now).detail, "retry 1: attempt 4 ready");
        task.assign(4, AgentId::new(), "", now);
        task.count_failure();
        assert!(!task.may_retry(true), "two failures exhaust one retry");
    }

    #[test]
    fn a_taken_back_attempt_requeues_the_task_with_the_reason() {
        let mut task = submitted();
        let agent = AgentId::new();
        let now = Utc::now();
        task.assign(1, agent, "", now);
        task.start(now);
        let event = task.taken_back(2, "all 1 capable agents are busy".to_owned(), now);
        assert_eq!((event.previous_status, event.status), (Some(TaskStatus::Running), TaskStatus::Queued));
        assert_eq!(
            event.detail,
            "attempt 1 taken back by the coordinator; attempt 2 waits: all 1 capable agents are busy"
        );
        assert_eq!((task.status, task.attempt), (TaskStatus::Queued, 1));
        assert_eq!(task.queued_reason.as_deref(), Some("all 1 capable agents are busy"));
        // The next attempt's assignment moves it on.
        task.assign(2, AgentId::new(), "agent went offline", now);
        assert_eq!(
            (task.status, task.attempt, task.queued_reason.as_deref()),
            (TaskStatus::Assigned, 2, None)
        );
    }

    #[test]
    fn a_refused_task_fails_without_an_agent() {
        let mut task = submitted();
        let event = task.refuse("pending queue full (capacity 10)".to_owned(), Utc::now());
        assert_eq!((event.status, event.agent_id, event.attempt), (TaskStatus::Failed, None, 0));
        assert_eq!(event.detail, "refused by the coordinator: pending queue full (capacity 10)");
        assert_eq!(task.error.as_deref(), Some("pending queue full (capacity 10)"));
        assert!(task.started_at.is_none() && task.assigned_agent.is_none());
    }

    #[test]
    fn cancel_of_a_terminal_task_is_refused() {
        let mut task = submitted();
        task.cancel("user", Utc::now()).unwrap();
        assert_eq!(task.cancel("again", Utc::now()), Err(AlreadyTerminal(TaskStatus::Cancelled)));
        assert_eq!(task.error.as_deref(), Some("user"));
        let mut overdue = submitted();
        let event = overdue.time_out(Utc::now());
        assert_eq!(event.detail, "timed out after 3600s");
        assert_eq!(overdue.status, TaskStatus::Failed);
    }
}
