//! Path safety, the one gate every request path goes through before anything is read.
//!
//! A request path is checked on its face (not empty, at most [`MAX_PATH_BYTES`], no NUL, UTF-8,
//! absolute), then canonicalised — which resolves `..` and every symlink using metadata only
//! (`lstat`/`readlink`, never `open` or `readdir`) — and the canonical path must lie under one of
//! the canonical allowed roots, outside the quarantine, on the root's filesystem. Only a
//! [`SafePath`] reaches the scanners, and only this module makes one.
//!
//! Percent-decoding is the gateway's job: `%2e%2e` reaching this module is a literal file name,
//! so `<root>/%2e%2e/etc` names a (missing) entry under the root, not `/etc`.
//!
//! A missing path is `not_found` only when it would lie under a root; elsewhere it is
//! `forbidden` like an existing one, so the answers are no oracle for what exists outside.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::HardwareError;

/// Longest accepted request path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// The request field every path error names.
const FIELD: &str = "path";
/// `ENAMETOOLONG` and `ELOOP` on Linux: malformed rather than missing.
const ENAMETOOLONG: i32 = 36;
const ELOOP: i32 = 40;

/// A canonical allowed root and the filesystem it lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRoot {
    path: PathBuf,
    device: u64,
}

impl AllowedRoot {
    /// The canonical directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its `st_dev`: scans never leave this filesystem.
    pub fn device(&self) -> u64 {
        self.device
    }
}

/// The roots request paths must resolve under, and the directories excluded from them.
#[derive(Debug, Clone)]
pub struct AllowedRoots {
    roots: Vec<AllowedRoot>,
    excluded: Vec<PathBuf>,
}

/// A request path that passed every check: canonical, under `root`, not excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    path: PathBuf,
    root: AllowedRoot,
}

impl SafePath {
    /// The canonical path.
    pub fn as_path(&self) -> &Path {
        &self.path
    }

    /// The allowed root it lies under (the innermost, when roots nest).
    pub fn root(&self) -> &AllowedRoot {
        &self.root
    }
}

impl AllowedRoots {
    /// Canonicalises each configured root. A missing or unusable root is skipped with a warning
    /// (the service still starts and refuses paths under it); `/` is never a root. `excluded`
    /// (the quarantine) must already be canonical.
    pub fn resolve_configured(configured: &[PathBuf], excluded: Vec<PathBuf>) -> Self {
        let mut roots: Vec<AllowedRoot> = Vec::new();
        for configured_root in configured {
            match canonical_root(configured_root) {
                Ok(root) if root.path == Path::new("/") => {
                    tracing::warn!(
                        root = %configured_root.display(),
                        "allowed root resolves to `/`; skipped"
                    );
                }
                Ok(root) => {
                    if !roots.contains(&root) {
                        roots.push(root);
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        root = %configured_root.display(),
                        %error,
                        "allowed root unusable; skipped"
                    );
                }
            }
        }
        Self { roots, excluded }
    }

    /// The usable roots.
    pub fn roots(&self) -> &[AllowedRoot] {
        &self.roots
    }

    /// The roots a walk over every root starts from: a root nested in another on the same
    /// filesystem is already covered by the outer one's walk, and walking it too would plan
    /// (and count) its files twice. A nested root on another filesystem stays: the outer walk
    /// does not cross into it.
    pub fn walk_starts(&self) -> Vec<&AllowedRoot> {
        self.roots
            .iter()
            .filter(|root| {
                !self.roots.iter().any(|outer| {
                    outer.path != root.path
                        && root.path.starts_with(&outer.path)
                        && outer.device == root.device
                })
            })
            .collect()
    }

    /// Directories under the roots that are never scanned or cleaned (the quarantine).
    pub fn excluded(&self) -> &[PathBuf] {
        &self.excluded
    }

    /// Checks a request path and resolves it to a [`SafePath`]; see the module docs for the
    /// order of the checks. Nothing under the path is opened or listed here.
    pub fn resolve(&self, raw: &[u8]) -> Result<SafePath, HardwareError> {
        let text = check_shape(raw)?;
        let requested = Path::new(text);
        match std::fs::canonicalize(requested) {
            Ok(canonical) => self.admit(canonical),
            Err(error) => Err(self.canonicalize_error(requested, &error)),
        }
    }

    /// Admits an already canonical path (e.g. one a scan produced) under the same rules.
    pub fn admit(&self, canonical: PathBuf) -> Result<SafePath, HardwareError> {
        let Some(root) = self.root_of(&canonical) else {
            return Err(HardwareError::Forbidden(format!("{FIELD}: outside the allowed roots")));
        };
        if self.is_excluded(&canonical) {
            return Err(HardwareError::Forbidden(format!("{FIELD}: the quarantine is not scanned")));
        }
        // A mount under a root is another filesystem: scans do not cross into it, so a request
        // may not start there either.
        let metadata = std::fs::symlink_metadata(&canonical).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => HardwareError::NotFound(format!("{FIELD}: no such file or directory")),
            _ => HardwareError::internal("stat a canonical path", error),
        })?;
        if metadata.dev() != root.device {
            return Err(HardwareError::Forbidden(format!(
                "{FIELD}: on another filesystem than its allowed root"
            )));
        }
        let root = root.clone();
        Ok(SafePath { path: canonical, root })
    }

    /// Whether `canonical` is (under) an excluded directory.
    pub fn is_excluded(&self, canonical: &Path) -> bool {
        self.excluded.iter().any(|excluded| canonical.starts_with(excluded))
    }

    /// The innermost root containing `canonical`. `Path::starts_with` compares whole
    /// components, so `/data2` is not under `/data`.
    fn root_of(&self, canonical: &Path) -> Option<&AllowedRoot> {
        self.roots
            .iter()
            .filter(|root| canonical.starts_with(&root.path))
            .max_by_key(|root| root.path.components().count())
    }

    fn canonicalize_error(&self, requested: &Path, error: &io::Error) -> HardwareError {
        match error.raw_os_error() {
            Some(ENAMETOOLONG) => return HardwareError::bad_request(FIELD, "a component is too long"),
            Some(ELOOP) => return HardwareError::bad_request(FIELD, "too many levels of symbolic links"),
            _ => {}
        }
        match error.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                // Judged by where the path really leads: through its longest existing ancestor,
                // symlinks resolved. Judging the text alone made `<root>/link_out/missing` a
                // 404 next to `<root>/link_out/secret`'s 403: an oracle for what exists outside.
                let leads_to = resolve_missing(requested);
                if leads_to.is_some_and(|path| self.root_of(&path).is_some() && !self.is_excluded(&path)) {
                    HardwareError::NotFound(format!("{FIELD}: no such file or directory"))
                } else {
                    HardwareError::Forbidden(format!("{FIELD}: outside the allowed roots"))
                }
            }
            io::ErrorKind::PermissionDenied => {
                HardwareError::Forbidden(format!("{FIELD}: permission denied"))
            }
            _ => HardwareError::internal("canonicalize a request path", error),
        }
    }
}

fn canonical_root(configured: &Path) -> io::Result<AllowedRoot> {
    let path = std::fs::canonicalize(configured)?;
    let metadata = std::fs::metadata(&path)?;
    if !metadata.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a directory"));
    }
    Ok(AllowedRoot { path, device: metadata.dev() })
}

/// The checks that need no filesystem: not empty, not too long, no NUL, UTF-8, absolute.
fn check_shape(raw: &[u8]) -> Result<&str, HardwareError> {
    if raw.is_empty() {
        return Err(HardwareError::bad_request(FIELD, "must not be empty"));
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(HardwareError::bad_request(FIELD, format!("longer than {MAX_PATH_BYTES} bytes")));
    }
    if raw.contains(&0) {
        return Err(HardwareError::bad_request(FIELD, "contains a NUL byte"));
    }
    let text =
        std::str::from_utf8(raw).map_err(|_| HardwareError::bad_request(FIELD, "is not valid UTF-8"))?;
    // A relative path would be resolved against the service's working directory, which the
    // client neither knows nor chose.
    if !text.starts_with('/') {
        return Err(HardwareError::bad_request(FIELD, "must be absolute"));
    }
    Ok(text)
}

/// Where a missing `path` would lie: its longest existing ancestor canonicalised (symlinks
/// resolved), then the missing rest resolved textually. `None` when no ancestor resolves.
fn resolve_missing(path: &Path) -> Option<PathBuf> {
    let components: Vec<Component<'_>> = path.components().collect();
    for existing in (1..components.len()).rev() {
        let ancestor: PathBuf = components[..existing].iter().collect();
        let Ok(canonical) = std::fs::canonicalize(&ancestor) else { continue };
        let mut leads_to = canonical;
        leads_to.extend(&components[existing..]);
        return Some(lexically_normalize(&leads_to));
    }
    None
}

/// Resolves `.` and `..` textually (no symlinks), for telling a missing path under a root from
/// a missing path elsewhere.
fn lexically_normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => normalized.push(name),
            Component::ParentDir => {
                normalized.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::os::unix::fs::symlink;

    use proptest::prelude::*;
    use sutazai_types::ServiceErrorCode;

    use super::*;
    use crate::domain::test_support::TempDir;

    /// `root/{a/b/file, link_in -> a, link_out -> ../outside, loop -> loop}`, `outside/secret`,
    /// `root/quarantine`.
    fn tree() -> (TempDir, AllowedRoots) {
        let base = TempDir::new();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("quarantine")).unwrap();
        std::fs::create_dir_all(base.path().join("outside")).unwrap();
        std::fs::write(root.join("a/b/file"), b"x").unwrap();
        std::fs::write(base.path().join("outside/secret"), b"s").unwrap();
        symlink(root.join("a"), root.join("link_in")).unwrap();
        symlink("../outside", root.join("link_out")).unwrap();
        symlink(root.join("loop"), root.join("loop")).unwrap();
        let quarantine = std::fs::canonicalize(root.join("quarantine")).unwrap();
        let roots = AllowedRoots::resolve_configured(&[root], vec![quarantine]);
        (base, roots)
    }

    fn code(roots: &AllowedRoots, path: &str) -> ServiceErrorCode {
        roots.resolve(path.as_bytes()).unwrap_err().code()
    }

    #[test]
    fn malformed_paths_are_bad_requests() {
        let (_base, roots) = tree();
        assert_eq!(code(&roots, ""), ServiceErrorCode::BadRequest);
        assert_eq!(code(&roots, &format!("/{}", "a".repeat(5000))), ServiceErrorCode::BadRequest);
        assert_eq!(code(&roots, "/tmp/a\0b"), ServiceErrorCode::BadRequest);
        assert_eq!(code(&roots, "../../etc"), ServiceErrorCode::BadRequest);
        assert_eq!(roots.resolve(b"/tmp/\xff").unwrap_err().code(), ServiceErrorCode::BadRequest);
    }

    #[test]
    fn paths_resolve_under_the_root_or_are_refused() {
        let (base, roots) = tree();
        let root = roots.roots()[0].path().to_path_buf();
        let inside = roots.resolve(format!("{}/link_in/b/../b/file", root.display()).as_bytes()).unwrap();
        assert_eq!(inside.as_path(), root.join("a/b/file"));
        assert_eq!(inside.root().path(), root);
        assert_eq!(code(&roots, "/etc"), ServiceErrorCode::Forbidden);
        assert_eq!(
            code(&roots, &format!("{}/../../etc/shadow", root.display())),
            ServiceErrorCode::Forbidden
        );
        assert_eq!(code(&roots, &format!("{}/link_out/secret", root.display())), ServiceErrorCode::Forbidden);
        assert_eq!(code(&roots, &format!("{}/link_out", root.display())), ServiceErrorCode::Forbidden);
        // Missing behind a symlink out of the root: forbidden like an existing file there.
        assert_eq!(
            code(&roots, &format!("{}/link_out/missing", root.display())),
            ServiceErrorCode::Forbidden
        );
        assert_eq!(code(&roots, &format!("{}/link_in/missing", root.display())), ServiceErrorCode::NotFound);
        assert_eq!(code(&roots, &format!("{}/quarantine", root.display())), ServiceErrorCode::Forbidden);
        assert_eq!(
            code(&roots, &format!("{}/%2e%2e/%2e%2e/etc", root.display())),
            ServiceErrorCode::NotFound
        );
        assert_eq!(code(&roots, &format!("{}/loop", root.display())), ServiceErrorCode::BadRequest);
        // Missing outside the roots is forbidden, not an existence oracle.
        assert_eq!(code(&roots, "/no/such/place"), ServiceErrorCode::Forbidden);
        assert_eq!(
            code(&roots, &format!("{}/outside/missing", base.path().display())),
            ServiceErrorCode::Forbidden
        );
        // A sibling sharing the root's name as a prefix is not under it.
        std::fs::create_dir_all(base.path().join("root2")).unwrap();
        assert_eq!(code(&roots, &format!("{}2", root.display())), ServiceErrorCode::Forbidden);
    }

    #[test]
    fn missing_and_root_roots_are_skipped() {
        let base = TempDir::new();
        let roots = AllowedRoots::resolve_configured(
            &[PathBuf::from("/"), base.path().join("missing"), base.path().to_path_buf()],
            Vec::new(),
        );
        assert_eq!(roots.roots().len(), 1);
        assert_eq!(roots.roots()[0].path(), std::fs::canonicalize(base.path()).unwrap());
    }

    #[test]
    fn nested_roots_are_walked_once() {
        let base = TempDir::new();
        std::fs::create_dir_all(base.path().join("outer/inner")).unwrap();
        std::fs::create_dir_all(base.path().join("other")).unwrap();
        let roots = AllowedRoots::resolve_configured(
            &[base.path().join("outer/inner"), base.path().join("outer"), base.path().join("other")],
            Vec::new(),
        );
        let starts: Vec<&Path> = roots.walk_starts().into_iter().map(AllowedRoot::path).collect();
        assert_eq!(starts, vec![base.path().join("outer"), base.path().join("other")]);
    }

    #[test]
    fn lexical_normalization() {
        assert_eq!(lexically_normalize(Path::new("/a/./b/../../../c")), PathBuf::from("/c"));
        assert_eq!(lexically_normalize(Path::new("/a/%2e%2e/b")), PathBuf::from("/a/%2e%2e/b"));
    }

    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "..",
            ".",
            "",
            "a",
            "b",
            "file",
            "link_in",
            "link_out",
            "loop",
            "quarantine",
            "%2e%2e",
            "secret",
            "outside",
            "missing",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever the request, an accepted path is canonical, under the root, outside the
        /// quarantine; a refused one is a 404 exactly when it leads (through its existing part)
        /// inside the root, else a 403, and malformed only through the symlink loop.
        #[test]
        fn accepted_paths_stay_inside(segments in prop::collection::vec(segment(), 0..8)) {
            let (_base, roots) = tree();
            let root = roots.roots()[0].path().to_path_buf();
            let requested = format!("{}/{}", root.display(), segments.join("/"));
            match roots.resolve(requested.as_bytes()) {
                Ok(safe) => {
                    prop_assert!(safe.as_path().starts_with(&root));
                    prop_assert!(!safe.as_path().starts_with(root.join("quarantine")));
                    prop_assert_eq!(std::fs::canonicalize(safe.as_path()).unwrap(), safe.as_path());
                }
                Err(error) => {
                    // Independent of the code under test: where the longest existing prefix of
                    // the request leads decides between 404 and 403; only the loop is malformed.
                    let mut existing = PathBuf::from(&requested);
                    while std::fs::symlink_metadata(&existing).is_err() || std::fs::canonicalize(&existing).is_err() {
                        if !existing.pop() { break; }
                    }
                    let rest = requested[existing.as_os_str().len()..].trim_start_matches('/');
                    let leads_inside = std::fs::canonicalize(&existing).is_ok_and(|canonical| {
                        let leads_to = lexically_normalize(&canonical.join(rest));
                        leads_to.starts_with(&root) && !leads_to.starts_with(root.join("quarantine"))
                    });
                    let expected = if segments.contains(&"loop") && error.code() == ServiceErrorCode::BadRequest {
                        ServiceErrorCode::BadRequest
                    } else if std::fs::canonicalize(&requested).is_ok() || !leads_inside {
                        ServiceErrorCode::Forbidden
                    } else {
                        ServiceErrorCode::NotFound
                    };
                    prop_assert_eq!(error.code(), expected, "{}", requested);
                }
            }
        }

        /// Arbitrary bytes never panic; NUL and overlong input are always bad requests.
        #[test]
        fn arbitrary_bytes_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let (_base, roots) = tree();
            let result = roots.resolve(&bytes);
            if bytes.contains(&0) || bytes.is_empty() {
                prop_assert_eq!(result.unwrap_err().code(), ServiceErrorCode::BadRequest);
            }
            let mut long = b"/".to_vec();
            long.extend(std::iter::repeat_n(b'a', MAX_PATH_BYTES));
            long.extend(&bytes);
            prop_assert_eq!(roots.resolve(&long).unwrap_err().code(), ServiceErrorCode::BadRequest);
        }
    }
}
