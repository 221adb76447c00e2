//! Which reports from the coordinator and the agents may change a task.
//!
//! The attempt number is the fence. The coordinator numbers each assignment (a re-assignment after
//! an agent went silent gets the next number), agents echo it in every report, and the task keeps
//! the attempt in progress or last made. A report about an older attempt comes from an agent that
//! lost its assignment, so it must never overwrite the newer attempt's state; a report about a
//! terminal task comes too late to matter.
//!
//! Reports about the same attempt can also arrive out of order: the results queue is consumed with
//! several handlers at once, so an agent's `Started` or `Succeeded` may be handled before the
//! coordinator's `Assigned` for that attempt, which was queued earlier. An outcome for a newer
//! attempt therefore implies its assignment (the agent could only run it if it was assigned), and
//! the `Assigned` handled after it is recognised as already applied. Without that, the task would
//! ignore its only result and wait for its timeout.
//!
//! The coordinator can also move on without the orchestrator: when an agent goes silent it takes
//! the attempt back and holds the next one. Two reports show it:
//! - a `Waiting` for a newer attempt while the task is assigned or running: no agent can take the
//!   next attempt yet, so the task is queued again. Its `attempt` stays the attempt last made, as
//!   after a retry's backoff, so the queued status alone fences the abandoned attempt's late
//!   results (they are about an attempt that ended);
//! - an `Assigned`, `Waiting` or `Started` for a newer attempt of a task that is already terminal
//!   (the old agent's late outcome ended it first): the coordinator would keep that attempt
//!   forever, so it is withdrawn.
//!
//! A `Failed` from [`NO_AGENT`] is not an agent's outcome but the coordinator refusing the
//! attempt (its pending queue was full): nothing ran, so it implies no assignment.

use sutazai_types::{AgentId, TaskStatus};

/// The agent id of the coordinator's refusals (`sutazai_coordinator::NO_AGENT`): no agent ran
/// the attempt.
pub const NO_AGENT: AgentId = AgentId(uuid::Uuid::nil());

/// What a message on the results queue reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The coordinator leased the attempt to an agent.
    Assigned,
    /// The coordinator cannot assign the pending attempt yet.
    Waiting,
    /// The agent started the attempt.
    Started,
    /// The agent finished the attempt with a result.
    Succeeded,
    /// The agent finished the attempt with an error.
    Failed,
    /// The coordinator refused the attempt (a `Failed` from [`NO_AGENT`]); no agent ran it.
    Refused,
}

impl Report {
    /// Lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Waiting => "waiting",
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }
}

/// Why a report was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The task is already succeeded, failed or cancelled.
    Terminal,
    /// The report is about an attempt before the current one.
    OlderAttempt,
    /// The same transition was already applied (or implied by a later report).
    AlreadyApplied,
    /// The current attempt already ended (the task is waiting for or queued for a retry).
    AttemptEnded,
    /// A wait or a refusal was reported for a task that is not queued.
    NotQueued,
}

impl Ignored {
    /// Lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::OlderAttempt => "older_attempt",
            Self::AlreadyApplied => "already_applied",
            Self::AttemptEnded => "attempt_ended",
            Self::NotQueued => "not_queued",
        }
    }
}

/// What to do with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Apply it.
    Apply,
    /// Record the assignment of the report's (newer) attempt first, then apply it.
    ApplyWithImpliedAssignment,
    /// The coordinator took the attempt in progress back and cannot place the next one yet: the
    /// attempt ends and the task is queued again.
    Requeue,
    /// Leave the terminal task unchanged, and withdraw the newer attempt the coordinator holds.
    Withdraw,
    /// Leave the task unchanged.
    Ignore(Ignored),
}

/// Decides a report about `attempt` for a task in `status` whose current attempt is `current`.
pub fn decide(status: TaskStatus, current: u32, report: Report, attempt: u32) -> Decision {
    if status.is_terminal() {
        // Only an attempt newer than the task's last is still held by the coordinator: it has
        // seen the outcome of the last one itself, or was told of a cancel or a timeout.
        let held = matches!(report, Report::Assigned | Report::Waiting | Report::Started);
        if held && attempt > current {
            return Decision::Withdraw;
        }
        return Decision::Ignore(Ignored::Terminal);
    }
    if attempt < current || attempt == 0 {
        return Decision::Ignore(Ignored::OlderAttempt);
    }
    let newer = attempt > current;
    match report {
        Report::Assigned if newer => Decision::Apply,
        Report::Assigned => Decision::Ignore(Ignored::AlreadyApplied),
        // A wait is about the attempt the coordinator holds, which is not assigned yet.
        Report::Waiting if newer => match status {
            TaskStatus::Queued => Decision::Apply,
            TaskStatus::Assigned | TaskStatus::Running => Decision::Requeue,
            _ => Decision::Ignore(Ignored::NotQueued),
        },
        Report::Waiting => Decision::Ignore(Ignored::AlreadyApplied),
        // The refused attempt is the one a `Ready` asked for, after the last one made.
        Report::Refused if newer && status == TaskStatus::Queued => Decision::Apply,
        Report::Refused => Decision::Ignore(Ignored::NotQueued),
        Report::Started | Report::Succeeded | Report::Failed if newer => Decision::ApplyWithImpliedAssignment,
        Report::Started => match status {
            TaskStatus::Assigned => Decision::Apply,
            TaskStatus::Running => Decision::Ignore(Ignored::AlreadyApplied),
            _ => Decision::Ignore(Ignored::AttemptEnded),
        },
        Report::Succeeded | Report::Failed => match status {
            TaskStatus::Assigned | TaskStatus::Running => Decision::Apply,
            _ => Decision::Ignore(Ignored::AttemptEnded),
        },
    }
}

#[cfg(test)]
mod tests {
    use TaskStatus::*;

    use super::*;

    #[test]
    fn the_current_attempt_moves_forward() {
        assert_eq!(decide(Queued, 0, Report::Assigned, 1), Decision::Apply);
        assert_eq!(decide(Assigned, 1, Report::Started, 1), Decision::Apply);
        assert_eq!(decide(Running, 1, Report::Succeeded, 1), Decision::Apply);
        assert_eq!(decide(Running, 1, Report::Failed, 1), Decision::Apply);
        // The coordinator re-assigns a running task whose agent went silent.
        assert_eq!(decide(Running, 1, Report::Assigned, 2), Decision::Apply);
        // A retry's assignment.
        assert_eq!(decide(Queued, 1, Report::Assigned, 2), Decision::Apply);
        assert_eq!(decide(Retrying, 1, Report::Assigned, 2), Decision::Apply);
        assert_eq!(decide(Queued, 0, Report::Waiting, 1), Decision::Apply);
    }

    #[test]
    fn late_and_duplicate_reports_are_ignored() {
        assert_eq!(decide(Running, 2, Report::Succeeded, 1), Decision::Ignore(Ignored::OlderAttempt));
        assert_eq!(decide(Assigned, 2, Report::Started, 1), Decision::Ignore(Ignored::OlderAttempt));
        assert_eq!(decide(Succeeded, 1, Report::Succeeded, 1), Decision::Ignore(Ignored::Terminal));
        assert_eq!(decide(Cancelled, 1, Report::Failed, 2), Decision::Ignore(Ignored::Terminal));
        assert_eq!(decide(Running, 1, Report::Started, 1), Decision::Ignore(Ignored::AlreadyApplied));
        assert_eq!(decide(Running, 1, Report::Assigned, 1), Decision::Ignore(Ignored::AlreadyApplied));
        // The failed attempt's outcome again, while its retry waits.
        assert_eq!(decide(Retrying, 1, Report::Failed, 1), Decision::Ignore(Ignored::AttemptEnded));
        assert_eq!(decide(Queued, 1, Report::Succeeded, 1), Decision::Ignore(Ignored::AttemptEnded));
        // A wait reported after the assignment was applied.
        assert_eq!(decide(Assigned, 1, Report::Waiting, 1), Decision::Ignore(Ignored::AlreadyApplied));
    }

    #[test]
    fn an_outcome_before_its_assignment_implies_it() {
        assert_eq!(decide(Queued, 0, Report::Succeeded, 1), Decision::ApplyWithImpliedAssignment);
        assert_eq!(decide(Running, 1, Report::Started, 2), Decision::ApplyWithImpliedAssignment);
        assert_eq!(decide(Queued, 0, Report::Started, 1), Decision::ApplyWithImpliedAssignment);
    }

    #[test]
    fn a_newer_attempt_of_a_terminal_task_is_withdrawn() {
        // The old agent's late outcome ended the task before the re-assignment was handled.
        assert_eq!(decide(Succeeded, 1, Report::Assigned, 2), Decision::Withdraw);
        assert_eq!(decide(Failed, 1, Report::Waiting, 2), Decision::Withdraw);
        assert_eq!(decide(Cancelled, 0, Report::Started, 1), Decision::Withdraw);
        // The coordinator saw the outcome of the task's own attempt: nothing to withdraw.
        assert_eq!(decide(Succeeded, 2, Report::Assigned, 2), Decision::Ignore(Ignored::Terminal));
        assert_eq!(decide(Succeeded, 1, Report::Succeeded, 2), Decision::Ignore(Ignored::Terminal));
    }

    #[test]
    fn a_wait_for_a_newer_attempt_of_a_running_task_requeues_it() {
        assert_eq!(decide(Running, 1, Report::Waiting, 2), Decision::Requeue);
        assert_eq!(decide(Assigned, 3, Report::Waiting, 4), Decision::Requeue);
        assert_eq!(decide(Retrying, 1, Report::Waiting, 2), Decision::Ignore(Ignored::NotQueued));
        // After the requeue the abandoned attempt has ended, so its late reports are ignored,
        // and the next attempt is assigned as usual.
        assert_eq!(decide(Queued, 1, Report::Succeeded, 1), Decision::Ignore(Ignored::AttemptEnded));
        assert_eq!(decide(Queued, 1, Report::Started, 1), Decision::Ignore(Ignored::AttemptEnded));
        assert_eq!(decide(Queued, 1, Report::Assigned, 2), Decision::Apply);
    }

    #[test]
    fn a_refusal_fails_a_queued_task_without_an_assignment() {
        assert_eq!(decide(Queued, 0, Report::Refused, 1), Decision::Apply);
        assert_eq!(decide(Queued, 2, Report::Refused, 3), Decision::Apply);
        assert_eq!(decide(Running, 1, Report::Refused, 2), Decision::Ignore(Ignored::NotQueued));
        assert_eq!(decide(Queued, 1, Report::Refused, 1), Decision::Ignore(Ignored::NotQueued));
    }
}
