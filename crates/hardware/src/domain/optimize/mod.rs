//! Cleanups. Each one is planned first — a list of [`Step`]s, computed the same way for a dry
//! run and a real one — and a real run then executes exactly that plan, re-checking each file
//! just before touching it. A dry run changes nothing and answers the plan: what a real run
//! would do, and what it would skip and why.
//!
//! Files are never deleted by a cleanup: they move into the quarantine, restorable until purged.
//! Files some process holds open are skipped.

mod duplicates;
mod logs;
pub mod memory;
mod storage;

use std::path::PathBuf;
use std::time::SystemTime;

use uuid::Uuid;

use super::cleanup::CleanupKind;
use super::open_files::OpenFiles;
use super::paths::SafePath;
use super::walk::{FileEntry, ScanLimits};
use crate::error::HardwareError;
use crate::store::quarantine::{Quarantine, Quarantined};

pub use self::duplicates::plan_duplicates;
pub use self::logs::{compressed_size, plan_logs};
pub use self::storage::plan_storage;

/// `days_old` when the request leaves it unset.
pub const DEFAULT_DAYS_OLD: u32 = 7;
/// The largest `days_old` accepted: a hundred years. Larger values are mistakes (or a negative
/// number read as unsigned).
pub const MAX_DAYS_OLD: i64 = 36_500;
/// Longest docker label filter.
pub const MAX_LABEL_BYTES: usize = 256;

/// A cleanup as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupRequest {
    /// Which cleanup.
    pub kind: CleanupKind,
    /// The tree to clean; unset: every allowed root (storage, logs).
    pub path: Option<String>,
    /// Only an explicit `false` makes a real run.
    pub dry_run: Option<bool>,
    /// Storage and logs: minimum age in days.
    pub days_old: Option<i64>,
    /// Docker: the label filter.
    pub label: Option<String>,
}

/// A cleanup request whose fields passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCleanup {
    /// Which cleanup.
    pub kind: CleanupKind,
    /// The requested path, still to be resolved.
    pub path: Option<String>,
    /// Whether this is a dry run.
    pub dry_run: bool,
    /// Minimum age in days (storage, logs).
    pub days_old: u32,
    /// The docker label filter.
    pub label: Option<String>,
}

impl CleanupRequest {
    /// Checks each field against the cleanup it is for, naming the field on failure.
    pub fn validate(self) -> Result<ValidCleanup, HardwareError> {
        let kind = self.kind;
        let takes_age = matches!(kind, CleanupKind::Storage | CleanupKind::Logs);
        let takes_path = matches!(kind, CleanupKind::Storage | CleanupKind::Logs | CleanupKind::Duplicates);
        let not_applicable = |field: &'static str| {
            HardwareError::validation(field, format!("does not apply to the `{}` cleanup", kind.as_str()))
        };
        let days_old = match self.days_old {
            Some(_) if !takes_age => return Err(not_applicable("days_old")),
            Some(days) if days < 0 => return Err(HardwareError::validation("days_old", "must be 0 or more")),
            Some(days) if days > MAX_DAYS_OLD => {
                return Err(HardwareError::validation("days_old", format!("must be at most {MAX_DAYS_OLD}")));
            }
            Some(days) => {
                u32::try_from(days).map_err(|_| HardwareError::validation("days_old", "out of range"))?
            }
            None => DEFAULT_DAYS_OLD,
        };
        match &self.path {
            Some(_) if !takes_path => return Err(not_applicable("path")),
            None if kind == CleanupKind::Duplicates => {
                // Never a default root: removing duplicates across a whole data directory by
                // accident is what this service exists to prevent.
                return Err(HardwareError::validation("path", "is required for the `duplicates` cleanup"));
            }
            _ => {}
        }
        match &self.label {
            Some(_) if kind != CleanupKind::Docker => return Err(not_applicable("label")),
            Some(label)
                if label.trim().is_empty()
                    || label.len() > MAX_LABEL_BYTES
                    || label.contains(char::is_control) =>
            {
                return Err(HardwareError::validation(
                    "label",
                    format!("must be 1 to {MAX_LABEL_BYTES} printable bytes"),
                ));
            }
            None if kind == CleanupKind::Docker => {
                return Err(HardwareError::validation("label", "is required for the `docker` cleanup"));
            }
            _ => {}
        }
        Ok(ValidCleanup {
            kind,
            path: self.path,
            // Unset is a dry run: only an explicit false changes anything.
            dry_run: self.dry_run != Some(false),
            days_old,
            label: self.label,
        })
    }
}

/// What one action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Move a file into the quarantine.
    QuarantineFile,
    /// Write a compressed copy, verify it, quarantine the original.
    CompressFile,
    /// Drop the page cache.
    DropCaches,
    /// Remove a stopped container.
    RemoveContainer,
    /// Remove a dangling image.
    RemoveImage,
}

impl ActionKind {
    /// The lowercase name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuarantineFile => "quarantine_file",
            Self::CompressFile => "compress_file",
            Self::DropCaches => "drop_caches",
            Self::RemoveContainer => "remove_container",
            Self::RemoveImage => "remove_image",
        }
    }
}

/// What became of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Dry run: what a real run would do.
    Planned,
    /// Done.
    Performed,
    /// Not done, see the detail.
    Skipped,
    /// Tried and failed, see the detail.
    Failed,
}

impl ActionOutcome {
    /// The lowercase name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Performed => "performed",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// One action of a cleanup, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupAction {
    /// What it does.
    pub kind: ActionKind,
    /// A file path, container id or image id.
    pub target: String,
    /// What became of it.
    pub outcome: ActionOutcome,
    /// Freed when performed, or that would be freed when planned.
    pub reclaimed_bytes: u64,
    /// Why, or why not.
    pub detail: String,
    /// Where the file went, when it went to the quarantine.
    pub quarantine_id: Option<Uuid>,
}

/// What a cleanup did, or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Which cleanup.
    pub kind: CleanupKind,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// In the order they were (or would be) taken.
    pub actions: Vec<CleanupAction>,
}

impl CleanupReport {
    /// Sum of `reclaimed_bytes` over planned and performed actions.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.actions
            .iter()
            .filter(|action| matches!(action.outcome, ActionOutcome::Planned | ActionOutcome::Performed))
            .map(|action| action.reclaimed_bytes)
            .sum()
    }
}

/// What a step acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepTarget {
    /// A file, with the digest it must still have (duplicates) and the copy that must still be
    /// there for it to go (the kept duplicate).
    File {
        /// The file as listed.
        file: FileEntry,
        /// Its group's SHA-256, for duplicates.
        expected_sha256: Option<String>,
        /// The kept copy, for duplicates.
        kept: Option<FileEntry>,
    },
    /// The page cache.
    PageCache,
    /// A container or image id.
    Docker(String),
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does.
    pub kind: ActionKind,
    /// What it acts on.
    pub target: StepTarget,
    /// Bytes it would free.
    pub reclaim_estimate: u64,
    /// Why it is planned.
    pub detail: String,
    /// Set when the planner already knows it will be skipped (open file, no privilege).
    pub blocked: Option<String>,
}

impl Step {
    /// The reported target.
    pub fn target_text(&self) -> String {
        match &self.target {
            StepTarget::File { file, .. } => file.path.to_string_lossy().into_owned(),
            StepTarget::PageCache => memory::DROP_CACHES_PATH.to_owned(),
            StepTarget::Docker(id) => id.clone(),
        }
    }

    fn action(&self, outcome: ActionOutcome, reclaimed_bytes: u64, detail: String) -> CleanupAction {
        CleanupAction {
            kind: self.kind,
            target: self.target_text(),
            outcome,
            reclaimed_bytes,
            detail,
            quarantine_id: None,
        }
    }

    /// The step as a dry run reports it.
    pub fn planned(&self) -> CleanupAction {
        match &self.blocked {
            Some(reason) => self.action(ActionOutcome::Skipped, 0, reason.clone()),
            None => self.action(ActionOutcome::Planned, self.reclaim_estimate, self.detail.clone()),
        }
    }
}

/// What the file planners need.
#[derive(Debug)]
pub struct PlanContext<'a> {
    /// The trees to clean.
    pub targets: &'a [SafePath],
    /// Directories never touched (the quarantine).
    pub excluded: &'a [PathBuf],
    /// Scan bounds.
    pub limits: ScanLimits,
    /// Files some process holds open.
    pub open_files: &'a OpenFiles,
    /// The reference time for ages.
    pub now: SystemTime,
    /// Minimum age in days.
    pub days_old: u32,
    /// The canonical system temp dir, when it exists.
    pub system_temp_dir: Option<PathBuf>,
}

impl PlanContext<'_> {
    /// Why a listed file must be left alone, if it must.
    fn blocked(&self, file: &FileEntry) -> Option<String> {
        blocked_reason(file, self.open_files)
    }
}

/// Why a listed file must be left alone, if it must: some process holds it open, or its path is
/// not UTF-8 (the quarantine manifest records paths as text, so a real run could not move it;
/// the plan says so up front, and a dry run and a real run report the same skip).
pub(crate) fn blocked_reason(file: &FileEntry, open_files: &OpenFiles) -> Option<String> {
    if file.path.to_str().is_none() {
        return Some("the path is not UTF-8".to_owned());
    }
    open_files.holder(file.device, file.inode).map(|pid| format!("open by pid {pid}"))
}

/// Executes file steps (storage, duplicates, logs) in order; each file is re-checked first.
pub fn execute_file_steps(steps: &[Step], quarantine: &Quarantine, kind: CleanupKind) -> Vec<CleanupAction> {
    let mut actions = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(reason) = &step.blocked {
            actions.push(step.action(ActionOutcome::Skipped, 0, reason.clone()));
            continue;
        }
        let StepTarget::File { file, expected_sha256, kept } = &step.target else {
            actions.push(step.action(ActionOutcome::Failed, 0, "not a file step".to_owned()));
            continue;
        };
        // The plan's look at open files may be minutes old by now: look again, for this file.
        if let Some(pid) = OpenFiles::holder_now(file.device, file.inode) {
            actions.push(step.action(ActionOutcome::Skipped, 0, format!("open by pid {pid}")));
            continue;
        }
        let action = match step.kind {
            ActionKind::CompressFile => logs::compress(step, file, quarantine),
            _ => {
                if let Some(kept) = kept
                    && !still_there(kept)
                {
                    actions.push(step.action(
                        ActionOutcome::Skipped,
                        0,
                        format!("the kept copy {} changed or is gone", kept.path.display()),
                    ));
                    continue;
                }
                quarantine_step(step, file, expected_sha256.as_deref(), quarantine, kind)
            }
        };
        actions.push(action);
    }
    actions
}

fn still_there(file: &FileEntry) -> bool {
    std::fs::symlink_metadata(&file.path).is_ok_and(|metadata| file.is_unchanged(&metadata))
}

fn quarantine_step(
    step: &Step,
    file: &FileEntry,
    expected_sha256: Option<&str>,
    quarantine: &Quarantine,
    kind: CleanupKind,
) -> CleanupAction {
    match quarantine.put(file, kind, expected_sha256) {
        Ok(Quarantined::Moved(entry)) => {
            let mut action = step.action(
                ActionOutcome::Performed,
                file.size_bytes,
                format!("{}; moved to the quarantine", step.detail),
            );
            action.quarantine_id = Some(entry.id);
            action
        }
        Ok(Quarantined::Skipped(reason)) => step.action(ActionOutcome::Skipped, 0, reason),
        Err(error) => {
            tracing::error!(path = %file.path.display(), %error, "quarantining a file failed");
            step.action(ActionOutcome::Failed, 0, format!("could not move it: {}", error.kind()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::time::Duration;

    use sutazai_types::ServiceErrorCode;

    use super::*;
    use crate::domain::test_support::{TempDir, entry_for};

    #[test]
    fn a_file_opened_after_planning_is_skipped_when_its_turn_comes() {
        let base = TempDir::new();
        let path = base.path().join("old.tmp");
        std::fs::write(&path, b"x").unwrap();
        let quarantine = Quarantine::open(&base.path().join("q"), Duration::from_secs(60)).unwrap();
        let file = entry_for(&path);
        let planned_unblocked = blocked_reason(&file, &OpenFiles::default());
        assert_eq!(planned_unblocked, None);
        let step = Step {
            kind: ActionKind::QuarantineFile,
            target: StepTarget::File { file, expected_sha256: None, kept: None },
            reclaim_estimate: 1,
            detail: "temp file".to_owned(),
            blocked: planned_unblocked,
        };
        let held = std::fs::File::open(&path).unwrap();
        let actions = execute_file_steps(std::slice::from_ref(&step), &quarantine, CleanupKind::Storage);
        assert_eq!(actions[0].outcome, ActionOutcome::Skipped);
        assert_eq!(actions[0].detail, format!("open by pid {}", std::process::id()));
        assert!(path.exists());
        drop(held);
        let actions = execute_file_steps(std::slice::from_ref(&step), &quarantine, CleanupKind::Storage);
        assert_eq!(actions[0].outcome, ActionOutcome::Performed);
    }

    #[test]
    fn a_non_utf8_path_is_planned_as_a_skip() {
        use std::os::unix::ffi::OsStrExt;
        let file = FileEntry {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff.tmp")),
            size_bytes: 1,
            modified: SystemTime::UNIX_EPOCH,
            device: 0,
            inode: 0,
        };
        assert_eq!(blocked_reason(&file, &OpenFiles::default()).as_deref(), Some("the path is not UTF-8"));
    }

    fn request(kind: CleanupKind) -> CleanupRequest {
        CleanupRequest { kind, path: None, dry_run: None, days_old: None, label: None }
    }

    #[test]
    fn fields_are_checked_per_cleanup() {
        let error = |request: CleanupRequest| {
            let error = request.validate().unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
            error.to_string()
        };
        assert!(
            error(CleanupRequest { days_old: Some(-1), ..request(CleanupKind::Logs) })
                .starts_with("days_old: ")
        );
        assert!(
            error(CleanupRequest { days_old: Some(i64::from(u32::MAX)), ..request(CleanupKind::Storage) })
                .starts_with("days_old: ")
        );
        assert!(
            error(CleanupRequest { days_old: Some(1), ..request(CleanupKind::Memory) })
                .starts_with("days_old: does not apply")
        );
        assert!(error(request(CleanupKind::Duplicates)).starts_with("path: is required"));
        assert!(error(request(CleanupKind::Docker)).starts_with("label: is required"));
        assert!(
            error(CleanupRequest { label: Some("\n".into()), ..request(CleanupKind::Docker) })
                .starts_with("label: ")
        );
        assert!(
            error(CleanupRequest { path: Some("/tmp".into()), ..request(CleanupKind::Memory) })
                .starts_with("path: does not apply")
        );
        let valid = request(CleanupKind::Logs).validate().unwrap();
        assert!(valid.dry_run);
        assert_eq!(valid.days_old, DEFAULT_DAYS_OLD);
        let real = CleanupRequest { dry_run: Some(false), days_old: Some(0), ..request(CleanupKind::Logs) };
        assert!(!real.validate().unwrap().dry_run);
        assert!(
            CleanupRequest { dry_run: Some(true), ..request(CleanupKind::Storage) }
                .validate()
                .unwrap()
                .dry_run
        );
    }
}
