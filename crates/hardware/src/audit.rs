//! The audit trail of cleanups and restores: one structured `audit` event per action taken or
//! planned, one per request, and one per refusal, at target `audit` so a log pipeline can route
//! them. This service has no database; the gateway also writes its own audit row per request.

use crate::domain::cleanup::CleanupKind;
use crate::domain::optimize::CleanupReport;
use crate::error::HardwareError;

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The verified principal's name.
    pub name: String,
    /// The `requested_by` the caller declared (the gateway's end user), when given.
    pub requested_by: String,
}

/// Records every action of a cleanup and the cleanup itself.
pub fn cleanup(actor: &Actor, report: &CleanupReport, requested_path: Option<&str>) {
    for action in &report.actions {
        tracing::info!(
            name: "audit",
            target: "audit",
            actor = %actor.name,
            requested_by = %actor.requested_by,
            cleanup = report.kind.as_str(),
            action = action.kind.as_str(),
            path = %action.target,
            dry_run = report.dry_run,
            outcome = action.outcome.as_str(),
            reclaimed_bytes = action.reclaimed_bytes,
            quarantine_id = action.quarantine_id.map(|id| id.to_string()).unwrap_or_default(),
            detail = %action.detail,
            "audit"
        );
    }
    tracing::info!(
        name: "audit",
        target: "audit",
        actor = %actor.name,
        requested_by = %actor.requested_by,
        cleanup = report.kind.as_str(),
        action = "optimize",
        path = requested_path.unwrap_or("(allowed roots)"),
        dry_run = report.dry_run,
        outcome = if report.dry_run { "planned" } else { "performed" },
        actions = report.actions.len(),
        reclaimed_bytes = report.reclaimed_bytes(),
        "audit"
    );
}

/// Records a cleanup refused before any action (validation, path, permission).
pub fn cleanup_refused(
    actor: &Actor,
    kind: Option<CleanupKind>,
    requested_path: Option<&str>,
    dry_run: bool,
    error: &HardwareError,
) {
    tracing::info!(
        name: "audit",
        target: "audit",
        actor = %actor.name,
        requested_by = %actor.requested_by,
        cleanup = kind.map_or("unknown", CleanupKind::as_str),
        action = "optimize",
        path = requested_path.unwrap_or("(allowed roots)"),
        dry_run,
        outcome = "refused",
        code = %error.code(),
        "audit"
    );
}

/// Records a restore attempt.
pub fn restore(actor: &Actor, quarantine_id: &str, result: Result<&str, &HardwareError>) {
    let (outcome, path, code) = match result {
        Ok(original_path) => ("performed", original_path.to_owned(), String::new()),
        Err(error) => ("refused", String::new(), error.code().to_string()),
    };
    tracing::info!(
        name: "audit",
        target: "audit",
        actor = %actor.name,
        requested_by = %actor.requested_by,
        action = "quarantine_restore",
        quarantine_id,
        path = %path,
        dry_run = false,
        outcome,
        code = %code,
        "audit"
    );
}
