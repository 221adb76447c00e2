//! The hardware service over gRPC against the real filesystem: each test starts its own service
//! whose only allowed root is a fresh temporary directory, with a sibling `outside/` directory
//! that no request may reach and a quarantine beside them. Tokens come from a test issuer whose
//! JWKS the service fetches like the auth service's; Redis (revocations) is the real server.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod auth;
mod cleanups;
mod dry_run;
mod duplicates;
mod logs;
mod metrics;
mod paths;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use sha2::{Digest, Sha256};
use sutazai_hardware::{Application, HardwareConfig, HardwareService, HardwareSettings};
use sutazai_kit::shutdown::Shutdown;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::hardware_service_client::HardwareServiceClient;
use sutazai_testkit::{TestIssuer, TestRedis, http_settings};
use tonic::transport::Channel;

/// Every log line of this test process, for the audit assertions (nextest runs each test in a
/// process of its own).
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    sutazai_testkit::captured_logs("info,hyper=warn,h2=warn,tower=warn")
}

/// The captured log lines with the `audit` target.
pub(crate) fn audit_lines() -> Vec<String> {
    let logs = captured_logs();
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    text.lines().filter(|line| line.contains(" audit:")).map(str::to_owned).collect()
}

/// `<base>/root` (the allowed root), `<base>/outside`, `<base>/quarantine`; removed on drop.
pub(crate) struct TestDirs {
    pub(crate) base: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) outside: PathBuf,
    pub(crate) quarantine: PathBuf,
}

impl TestDirs {
    fn new() -> Self {
        let base = std::env::temp_dir().join(format!("sutazai-hardware-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        let base = std::fs::canonicalize(base).unwrap();
        Self {
            root: base.join("root"),
            outside: base.join("outside"),
            quarantine: base.join("quarantine"),
            base,
        }
    }
}

impl Drop for TestDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A running hardware service.
pub(crate) struct TestHardware {
    pub(crate) address: SocketAddr,
    pub(crate) service: HardwareService,
    pub(crate) issuer: TestIssuer,
    pub(crate) dirs: TestDirs,
    _redis: TestRedis,
    shutdown: Shutdown,
}

impl Drop for TestHardware {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub(crate) fn settings(dirs: &TestDirs) -> HardwareSettings {
    HardwareSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        auth_url: "http://127.0.0.1:1".to_owned(),
        allowed_roots: vec![dirs.root.clone()],
        quarantine_dir: dirs.quarantine.clone(),
        quarantine_ttl_s: 3600,
        scan_max_files: 100_000,
        scan_max_duration_ms: 20_000,
        docker_enabled: false,
    }
}

pub(crate) async fn spawn() -> TestHardware {
    spawn_with(|_| {}).await
}

/// Starts a service after `adjust` has changed its settings.
pub(crate) async fn spawn_with(adjust: impl FnOnce(&mut HardwareSettings)) -> TestHardware {
    captured_logs();
    let dirs = TestDirs::new();
    let issuer = TestIssuer::start().await;
    let redis = TestRedis::new();
    let mut hardware = settings(&dirs);
    hardware.auth_url = issuer.auth_url();
    adjust(&mut hardware);
    let config = HardwareConfig {
        hardware,
        http: http_settings(),
        redis: redis.settings(),
        token: issuer.verifier_settings(),
    };
    let shutdown = Shutdown::new();
    let application = Application::build(config, &shutdown).await.unwrap();
    let address = application.address();
    let service = application.service().clone();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestHardware { address, service, issuer, dirs, _redis: redis, shutdown }
}

impl TestHardware {
    pub(crate) async fn client(&self) -> HardwareServiceClient<Channel> {
        HardwareServiceClient::connect(format!("http://{}", self.address)).await.unwrap()
    }

    pub(crate) fn admin(&self) -> String {
        self.issuer.admin_token()
    }

    pub(crate) fn user(&self) -> String {
        self.issuer.user_token("alice", &[])
    }

    pub(crate) fn root(&self) -> &Path {
        &self.dirs.root
    }

    /// `path` under the root, as a request string.
    pub(crate) fn under_root(&self, relative: &str) -> String {
        format!("{}/{relative}", self.dirs.root.display())
    }

    /// Sends an Optimize as the admin.
    pub(crate) async fn optimize(
        &self,
        request: pb::OptimizeRequest,
    ) -> Result<pb::OptimizeResponse, tonic::Status> {
        self.client()
            .await
            .optimize(authorized(request, &self.admin()))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Lists the whole quarantine as the admin.
    pub(crate) async fn quarantine(&self) -> Vec<pb::QuarantineEntry> {
        let request = pb::ListQuarantineRequest { page: Some(pb::PageRequest { skip: 0, limit: 1000 }) };
        self.client()
            .await
            .list_quarantine(authorized(request, &self.admin()))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// Restores an entry as the admin.
    pub(crate) async fn restore(&self, id: &str) -> Result<pb::QuarantineEntry, tonic::Status> {
        let request =
            pb::RestoreQuarantineRequest { quarantine_id: id.to_owned(), requested_by: "admin".to_owned() };
        self.client()
            .await
            .restore_quarantine(authorized(request, &self.admin()))
            .await
            .map(|response| response.into_inner().entry.unwrap())
    }
}

/// `message` with a bearer token.
pub(crate) fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// An optimize request of `kind` with everything else unset.
pub(crate) fn optimize_request(kind: pb::OptimizeKind) -> pb::OptimizeRequest {
    pb::OptimizeRequest {
        kind: kind.into(),
        requested_by: "admin".to_owned(),
        ..pb::OptimizeRequest::default()
    }
}

/// Writes `content` to `path` (creating parents) with a modification time `age` ago.
pub(crate) fn write_aged(path: &Path, content: &[u8], age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    File::options().write(true).open(path).unwrap().set_modified(SystemTime::now() - age).unwrap();
}

pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// A digest of a whole tree: every entry's relative path, type, size, modification time, and
/// content (files) or target (symlinks), without following symlinks.
pub(crate) fn tree_digest(root: &Path) -> String {
    let mut listing: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let description = if metadata.is_dir() {
                pending.push(path.clone());
                format!("dir mtime={}", metadata.mtime_nsec() + metadata.mtime() * 1_000_000_000)
            } else if metadata.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else {
                let content = std::fs::read(&path).unwrap();
                format!(
                    "file size={} mtime={}.{} sha256={:x}",
                    metadata.len(),
                    metadata.mtime(),
                    metadata.mtime_nsec(),
                    Sha256::digest(&content)
                )
            };
            listing.insert(relative, description);
        }
    }
    let mut hasher = Sha256::new();
    for (path, description) in &listing {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(description.as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

/// Watches directories (and the files in them) for any open or read, to prove a request read
/// nothing there. `stat`, `lstat` and `readlink` — what canonicalisation uses — raise no event.
pub(crate) struct ReadWatch {
    inotify: Inotify,
}

impl ReadWatch {
    pub(crate) fn new(directories: &[&Path]) -> Self {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        for directory in directories {
            inotify.add_watch(*directory, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS).unwrap();
        }
        Self { inotify }
    }

    /// How many opens or reads happened since the watch began (or the last call).
    pub(crate) fn events(&self) -> usize {
        match self.inotify.read_events() {
            Ok(events) => events.len(),
            Err(nix::errno::Errno::EAGAIN) => 0,
            Err(error) => panic!("read inotify events: {error}"),
        }
    }
}
