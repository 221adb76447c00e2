//! The `storage` cleanup: temp and cache files at least `days_old` days old. A file counts as
//! temp or cache when its allowed root is the system temp directory, when its name has a temp
//! suffix (`.tmp`, `.swp`, `~`, ...), or when a directory between its allowed root and the file
//! is a cache directory (`cache`, `.cache`, `tmp`, `__pycache__`, ...). Anything else is left
//! alone however old it is: age alone does not make a file garbage.

use std::path::Path;

use super::{ActionKind, PlanContext, Step, StepTarget};
use crate::domain::storage::age_days;
use crate::domain::walk::walk;

/// Name suffixes of temporary files (compared lowercase).
const TEMP_SUFFIXES: [&str; 9] =
    [".tmp", ".temp", ".swp", ".swo", ".part", ".crdownload", "~", ".pyc", ".pyo"];
/// Names of directories whose content is temporary or a cache (compared lowercase).
const TEMP_DIRECTORIES: [&str; 7] =
    ["tmp", "temp", ".tmp", "cache", ".cache", "__pycache__", ".pytest_cache"];

/// Plans the storage cleanup over the context's targets.
pub fn plan_storage(context: &PlanContext<'_>) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let mut truncated = false;
    for target in context.targets {
        let root = target.root().path();
        let whole_root_is_temp = context.system_temp_dir.as_deref() == Some(root);
        let stats = walk(target, context.excluded, &context.limits, |file| {
            let age = age_days(file.modified, context.now);
            if age < u64::from(context.days_old) {
                return;
            }
            let reason = if whole_root_is_temp {
                Some("under the system temp directory".to_owned())
            } else {
                temp_reason(&file.path, root)
            };
            let Some(reason) = reason else { return };
            let blocked = context.blocked(&file);
            steps.push(Step {
                kind: ActionKind::QuarantineFile,
                reclaim_estimate: file.size_bytes,
                detail: format!("{reason}, {age} days old"),
                blocked,
                target: StepTarget::File { file, expected_sha256: None, kept: None },
            });
        });
        truncated |= stats.truncated;
    }
    (steps, truncated)
}

/// Why `path` is a temp or cache file, judged by its name and the directories between `root`
/// and it.
fn temp_reason(path: &Path, root: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    if let Some(suffix) =
        TEMP_SUFFIXES.iter().find(|suffix| name.ends_with(*suffix) && name.len() > suffix.len())
    {
        return Some(format!("temp file (*{suffix})"));
    }
    let relative = path.strip_prefix(root).ok()?.parent()?;
    relative.components().find_map(|component| {
        let directory = component.as_os_str().to_string_lossy().to_lowercase();
        TEMP_DIRECTORIES
            .iter()
            .find(|temp| directory == **temp)
            .map(|temp| format!("in a cache or temp directory ({temp}/)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_and_cache_files_by_name_and_directory() {
        let root = Path::new("/srv/data");
        assert_eq!(temp_reason(Path::new("/srv/data/a/x.TMP"), root).as_deref(), Some("temp file (*.tmp)"));
        assert_eq!(temp_reason(Path::new("/srv/data/notes.txt~"), root).as_deref(), Some("temp file (*~)"));
        assert_eq!(
            temp_reason(Path::new("/srv/data/app/.cache/blob"), root).as_deref(),
            Some("in a cache or temp directory (.cache/)")
        );
        assert_eq!(temp_reason(Path::new("/srv/data/report.pdf"), root), None);
        // A directory above the root does not make everything under it temporary.
        assert_eq!(temp_reason(Path::new("/tmp/root/report.pdf"), Path::new("/tmp/root")), None);
        assert_eq!(temp_reason(Path::new("/srv/data/.tmp"), root), None);
    }
}
