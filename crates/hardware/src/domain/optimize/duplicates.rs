//! The `duplicates` cleanup: for each verified group, the first file by the keep rule stays and
//! every other copy goes to the quarantine, provided it still has the group's digest and the kept
//! copy is still there when its turn comes.

use super::{ActionKind, Step, StepTarget, blocked_reason};
use crate::domain::duplicates::{DuplicateReport, KEEP_RULE};
use crate::domain::open_files::OpenFiles;

/// Plans the removal of every copy but the kept one.
pub fn plan_duplicates(report: &DuplicateReport, open_files: &OpenFiles) -> Vec<Step> {
    let mut steps = Vec::new();
    for group in &report.groups {
        let Some((kept, copies)) = group.files.split_first() else { continue };
        for copy in copies {
            steps.push(Step {
                kind: ActionKind::QuarantineFile,
                reclaim_estimate: copy.size_bytes,
                detail: format!("duplicate of {}; {KEEP_RULE}", kept.path.display()),
                blocked: blocked_reason(copy, open_files),
                target: StepTarget::File {
                    file: copy.clone(),
                    expected_sha256: Some(group.sha256.clone()),
                    kept: Some(kept.clone()),
                },
            });
        }
    }
    steps
}
