//! The orchestrator's metrics, named once here (base units, `_total` counters, no ids in labels).

use sutazai_types::TaskStatus;

use crate::domain::fencing::{Ignored, Report};
use crate::domain::workflow::WorkflowStatus;

/// A task was stored (submitted, or created for a workflow step).
pub(crate) fn task_submitted() {
    metrics::counter!("orchestrator_tasks_submitted_total").increment(1);
}

/// A task became terminal.
pub(crate) fn task_finished(status: TaskStatus) {
    metrics::counter!("orchestrator_tasks_finished_total", "status" => status.as_str()).increment(1);
}

/// A report was not applied: late, duplicate in effect, or about a terminal task.
pub(crate) fn stale_report(report: Report, reason: Ignored) {
    metrics::counter!(
        "orchestrator_stale_results_total",
        "kind" => report.as_str(),
        "reason" => reason.as_str()
    )
    .increment(1);
}

/// A failed attempt will be retried after its backoff.
pub(crate) fn retry_scheduled() {
    metrics::counter!("orchestrator_retries_scheduled_total").increment(1);
}

/// Tasks waiting for their backoff to end.
pub(crate) fn retrying_tasks(count: u64) {
    metrics::gauge!("orchestrator_tasks_retrying").set(count as f64);
}

/// A workflow was stored.
pub(crate) fn workflow_submitted() {
    metrics::counter!("orchestrator_workflows_submitted_total").increment(1);
}

/// Every step of a workflow is terminal.
pub(crate) fn workflow_finished(status: WorkflowStatus) {
    metrics::counter!("orchestrator_workflows_finished_total", "status" => status.as_str()).increment(1);
}
