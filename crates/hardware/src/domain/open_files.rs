//! Which files some process has open, read once per cleanup from `/proc/*/fd`: each fd is a
//! magic link whose `stat` describes the open file, so the set is keyed by (device, inode) and
//! catches a file open under another name (a hard link) too. A cleanup skips such files: moving
//! a log a daemon still writes would lose what it writes next.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// The open files of every process this service can see.
#[derive(Debug, Default, Clone)]
pub struct OpenFiles {
    holders: HashMap<(u64, u64), u32>,
}

impl OpenFiles {
    /// Scans `/proc`. Processes that exit meanwhile, or whose fds this service may not read,
    /// are passed over.
    pub fn scan() -> Self {
        let mut holders = HashMap::new();
        let Ok(processes) = fs::read_dir("/proc") else {
            tracing::warn!("cannot read /proc: open files are not detected");
            return Self { holders };
        };
        for process in processes.flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else { continue };
            for descriptor in descriptors.flatten() {
                // metadata() follows the magic link to the open file itself.
                if let Ok(metadata) = fs::metadata(descriptor.path())
                    && metadata.is_file()
                {
                    holders.entry((metadata.dev(), metadata.ino())).or_insert(pid);
                }
            }
        }
        Self { holders }
    }

    /// The pid of a process holding (device, inode) open now: a fresh look at `/proc`, stopping
    /// at the first holder, for the re-check just before a file is touched (a process may have
    /// opened it since the plan was made).
    pub fn holder_now(device: u64, inode: u64) -> Option<u32> {
        let processes = fs::read_dir("/proc").ok()?;
        for process in processes.flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else { continue };
            for descriptor in descriptors.flatten() {
                if let Ok(metadata) = fs::metadata(descriptor.path())
                    && metadata.dev() == device
                    && metadata.ino() == inode
                {
                    return Some(pid);
                }
            }
        }
        None
    }

    /// The pid of a process holding (device, inode) open.
    pub fn holder(&self, device: u64, inode: u64) -> Option<u32> {
        self.holders.get(&(device, inode)).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::domain::test_support::TempDir;

    #[test]
    fn a_file_this_process_holds_is_seen() {
        let base = TempDir::new();
        let open_path = base.path().join("open.log");
        let closed_path = base.path().join("closed.log");
        std::fs::write(&open_path, b"x").unwrap();
        std::fs::write(&closed_path, b"y").unwrap();
        let held = fs::File::open(&open_path).unwrap();
        let open_files = OpenFiles::scan();
        let open = fs::metadata(&open_path).unwrap();
        let closed = fs::metadata(&closed_path).unwrap();
        assert_eq!(open_files.holder(open.dev(), open.ino()), Some(std::process::id()));
        assert_eq!(open_files.holder(closed.dev(), closed.ino()), None);
        assert_eq!(OpenFiles::holder_now(open.dev(), open.ino()), Some(std::process::id()));
        assert_eq!(OpenFiles::holder_now(closed.dev(), closed.ino()), None);
        drop(held);
    }
}
