//! The use cases behind the gRPC adapter: each resolves the request path through the one safety
//! gate, runs the blocking domain work on the blocking pool, and returns domain results.
//!
//! At most [`MAX_CONCURRENT_SCANS`] scans run at once (they compete for the same disk), and one
//! cleanup at a time (two cleanups planning over the same files would race each other).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::docker::{self, DOCKER_SOCKET, DockerClient};
use crate::domain::cleanup::CleanupKind;
use crate::domain::duplicates::{DuplicateReport, find_duplicates};
use crate::domain::host::gpu::query_gpus;
use crate::domain::host::{DEFAULT_TOP_PROCESSES, HostMetrics, HostSampler, MAX_TOP_PROCESSES};
use crate::domain::large_files::{self, LargeFiles, find_large_files};
use crate::domain::open_files::OpenFiles;
use crate::domain::optimize::memory::{execute_memory, plan_memory};
use crate::domain::optimize::{
    ActionKind, ActionOutcome, CleanupAction, CleanupReport, CleanupRequest, PlanContext, Step, StepTarget,
    ValidCleanup, compressed_size, execute_file_steps, plan_duplicates, plan_logs, plan_storage,
};
use crate::domain::paths::{AllowedRoots, SafePath};
use crate::domain::pool::default_workers;
use crate::domain::storage::{StorageAnalysis, analyze};
use crate::domain::walk::ScanLimits;
use crate::error::HardwareError;
use crate::settings::HardwareSettings;
use crate::store::quarantine::{Quarantine, QuarantineEntry};

/// Scans running at once; more wait their turn.
pub const MAX_CONCURRENT_SCANS: usize = 2;
/// Quarantine entries per page when the request says 0.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Most quarantine entries per page.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Smallest duplicate considered when the request says 0: empty files are all "identical".
const DEFAULT_MIN_DUPLICATE_BYTES: u64 = 1;

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ServiceSetupError {
    /// The quarantine directory could not be created or recovered.
    #[error("quarantine directory {path}: {source}")]
    Quarantine {
        /// The configured directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An allowed root lies inside the quarantine, which would make quarantined files scannable.
    #[error("allowed root {0} lies inside hardware.quarantine_dir")]
    RootInsideQuarantine(PathBuf),
    /// The host could not be sampled.
    #[error("host metrics: {0}")]
    Sampler(#[from] sysinfo::Error),
}

/// A page of quarantine entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinePage {
    /// Newest first.
    pub entries: Vec<QuarantineEntry>,
    /// Entries in total.
    pub total: u64,
    /// The skip applied.
    pub skip: u32,
    /// The limit applied.
    pub limit: u32,
}

/// The hardware use cases. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HardwareService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    roots: AllowedRoots,
    quarantine: Quarantine,
    sampler: Mutex<HostSampler>,
    settings: HardwareSettings,
    system_temp_dir: Option<PathBuf>,
    // Both are owned (`Arc`) so their guards can move into the blocking work: a cancelled
    // request drops its future, not the blocking task, and the guard must last as long as the
    // work it guards.
    scans: Arc<Semaphore>,
    cleanups: Arc<tokio::sync::Mutex<()>>,
}

impl HardwareService {
    /// Opens the quarantine, resolves the allowed roots and takes the first host sample.
    pub fn new(settings: HardwareSettings) -> Result<Self, ServiceSetupError> {
        let quarantine =
            Quarantine::open(&settings.quarantine_dir, settings.quarantine_ttl()).map_err(|source| {
                ServiceSetupError::Quarantine { path: settings.quarantine_dir.clone(), source }
            })?;
        let roots = AllowedRoots::resolve_configured(
            &settings.allowed_roots,
            vec![quarantine.directory().to_path_buf()],
        );
        if let Some(root) = roots.roots().iter().find(|root| root.path().starts_with(quarantine.directory()))
        {
            return Err(ServiceSetupError::RootInsideQuarantine(root.path().to_path_buf()));
        }
        if roots.roots().is_empty() {
            tracing::warn!("no usable allowed root: every path request will be refused");
        }
        let sampler = HostSampler::new()?;
        Ok(Self {
            inner: Arc::new(Inner {
                roots,
                quarantine,
                sampler: Mutex::new(sampler),
                settings,
                system_temp_dir: std::fs::canonicalize(std::env::temp_dir()).ok(),
                scans: Arc::new(Semaphore::new(MAX_CONCURRENT_SCANS)),
                cleanups: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// The canonical allowed roots in force.
    pub fn allowed_roots(&self) -> Vec<PathBuf> {
        self.inner.roots.roots().iter().map(|root| root.path().to_path_buf()).collect()
    }

    /// The canonical quarantine directory.
    pub fn quarantine_dir(&self) -> &Path {
        self.inner.quarantine.directory()
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, HardwareError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HardwareError> + Send + 'static,
    {
        self.blocking_holding((), work).await
    }

    /// Runs `work` on the blocking pool with `guards` (a scan permit, the cleanup lock) moved
    /// into it: they are released when the work ends, not when the request is cancelled.
    async fn blocking_holding<T, F, G>(&self, guards: G, work: F) -> Result<T, HardwareError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HardwareError> + Send + 'static,
        G: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _held_until_done = guards;
            work(&inner)
        })
        .await
        .map_err(|error| HardwareError::internal("blocking task", error))?
    }

    async fn scan_permit(&self) -> Result<OwnedSemaphorePermit, HardwareError> {
        Arc::clone(&self.inner.scans)
            .acquire_owned()
            .await
            .map_err(|error| HardwareError::internal("scan permit", error))
    }

    async fn scan<T, F>(&self, work: F) -> Result<T, HardwareError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HardwareError> + Send + 'static,
    {
        let permit = self.scan_permit().await?;
        self.blocking_holding(permit, work).await
    }

    /// Refreshes the CPU, process and network counters (the background task calls this).
    pub async fn refresh_sampler(&self) -> Result<(), HardwareError> {
        self.blocking(|inner| {
            let mut sampler = inner.sampler();
            sampler.refresh();
            crate::gauges::record(sampler.cpu_usage_percent());
            Ok(())
        })
        .await
    }

    /// One sample of the host with the `top_processes` busiest processes (0: the default).
    pub async fn metrics(&self, top_processes: u32) -> Result<HostMetrics, HardwareError> {
        let top = match usize::try_from(top_processes).unwrap_or(usize::MAX) {
            0 => DEFAULT_TOP_PROCESSES,
            count if count > MAX_TOP_PROCESSES => {
                return Err(HardwareError::validation(
                    "top_processes",
                    format!("must be at most {MAX_TOP_PROCESSES}"),
                ));
            }
            count => count,
        };
        // Right after start there may be one sample only; usage needs a second one.
        if !self.blocking(|inner| Ok(inner.sampler().has_usage())).await? {
            tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
            self.refresh_sampler().await?;
        }
        let gpus = query_gpus().await;
        self.blocking(move |inner| Ok(inner.sampler().snapshot(top, gpus))).await
    }

    /// Size by extension, size and age buckets of the tree at `path`.
    pub async fn analyze_storage(&self, path: String) -> Result<StorageAnalysis, HardwareError> {
        self.scan(move |inner| {
            let start = inner.roots.resolve(path.as_bytes())?;
            Ok(analyze(&start, inner.roots.excluded(), &inner.limits(), SystemTime::now()))
        })
        .await
    }

    /// Verified duplicate groups under `path` of files of at least `min_size_bytes` (0: 1 byte).
    pub async fn find_duplicates(
        &self,
        path: String,
        min_size_bytes: u64,
    ) -> Result<DuplicateReport, HardwareError> {
        let min_size = if min_size_bytes == 0 { DEFAULT_MIN_DUPLICATE_BYTES } else { min_size_bytes };
        self.scan(move |inner| {
            let start = inner.roots.resolve(path.as_bytes())?;
            Ok(find_duplicates(&start, inner.roots.excluded(), &inner.limits(), min_size, default_workers()))
        })
        .await
    }

    /// The largest files under `path` (0s mean the defaults).
    pub async fn find_large_files(
        &self,
        path: String,
        min_size_bytes: u64,
        limit: u32,
    ) -> Result<LargeFiles, HardwareError> {
        let min_size = if min_size_bytes == 0 { large_files::DEFAULT_MIN_SIZE_BYTES } else { min_size_bytes };
        let limit = match limit {
            0 => large_files::DEFAULT_LIMIT,
            limit if limit > large_files::MAX_LIMIT => {
                return Err(HardwareError::validation(
                    "limit",
                    format!("must be at most {}", large_files::MAX_LIMIT),
                ));
            }
            limit => limit,
        };
        self.scan(move |inner| {
            let start = inner.roots.resolve(path.as_bytes())?;
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(find_large_files(&start, inner.roots.excluded(), &inner.limits(), min_size, limit))
        })
        .await
    }

    /// Plans one cleanup and, when `dry_run` is explicitly false, performs it; audited either way.
    /// The caller has checked that `actor` is an admin.
    pub async fn optimize(
        &self,
        request: CleanupRequest,
        actor: &Actor,
    ) -> Result<CleanupReport, HardwareError> {
        let kind = request.kind;
        let requested_path = request.path.clone();
        let dry_run = request.dry_run != Some(false);
        let result = self.run_cleanup(request).await;
        match &result {
            Ok(report) => audit::cleanup(actor, report, requested_path.as_deref()),
            Err(error) => {
                audit::cleanup_refused(actor, Some(kind), requested_path.as_deref(), dry_run, error)
            }
        }
        result
    }

    async fn run_cleanup(&self, request: CleanupRequest) -> Result<CleanupReport, HardwareError> {
        let cleanup = request.validate()?;
        let one_at_a_time = Arc::clone(&self.inner.cleanups).lock_owned().await;
        let actions = match cleanup.kind {
            CleanupKind::Docker => {
                // Async work: cancelling the request stops it, so the guard may go with it.
                let actions = self.docker_cleanup(&cleanup).await;
                drop(one_at_a_time);
                actions
            }
            CleanupKind::Memory => {
                let dry_run = cleanup.dry_run;
                self.blocking_holding(one_at_a_time, move |_| {
                    let step = plan_memory()
                        .map_err(|error| HardwareError::internal("read /proc/meminfo", error))?;
                    Ok(vec![if dry_run { step.planned() } else { execute_memory(&step) }])
                })
                .await?
            }
            CleanupKind::Storage | CleanupKind::Logs | CleanupKind::Duplicates => {
                let file_cleanup = cleanup.clone();
                let permit = self.scan_permit().await?;
                self.blocking_holding((one_at_a_time, permit), move |inner| inner.file_cleanup(&file_cleanup))
                    .await?
            }
        };
        Ok(CleanupReport { kind: cleanup.kind, dry_run: cleanup.dry_run, actions })
    }

    async fn docker_cleanup(&self, cleanup: &ValidCleanup) -> Vec<CleanupAction> {
        let socket = Path::new(DOCKER_SOCKET);
        if let Some(reason) = docker::docker_refusal(self.inner.settings.docker_enabled, socket) {
            return vec![docker::refused_action(socket, reason, ActionOutcome::Skipped)];
        }
        let client = DockerClient::new(socket);
        let label = cleanup.label.clone().unwrap_or_default();
        match docker::plan_docker(&client, &label).await {
            Ok(steps) if cleanup.dry_run => steps.iter().map(Step::planned).collect(),
            Ok(steps) => docker::execute_docker(&client, &steps).await,
            Err(error) => {
                tracing::error!(%error, "docker cleanup could not list containers and images");
                vec![docker::refused_action(socket, format!("failed: {error}"), ActionOutcome::Failed)]
            }
        }
    }

    /// A page of quarantine entries, newest first.
    pub async fn list_quarantine(&self, skip: u32, limit: u32) -> Result<QuarantinePage, HardwareError> {
        let limit = match limit {
            0 => DEFAULT_PAGE_LIMIT,
            limit if limit > MAX_PAGE_LIMIT => {
                return Err(HardwareError::validation(
                    "page.limit",
                    format!("must be at most {MAX_PAGE_LIMIT}"),
                ));
            }
            limit => limit,
        };
        self.blocking(move |inner| {
            let entries = inner
                .quarantine
                .list()
                .map_err(|error| HardwareError::internal("list the quarantine", error))?;
            let total = entries.len() as u64;
            let page = entries
                .into_iter()
                .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .collect();
            Ok(QuarantinePage { entries: page, total, skip, limit })
        })
        .await
    }

    /// Moves a quarantined file back to where it was; audited. The caller has checked that
    /// `actor` is an admin.
    pub async fn restore(
        &self,
        quarantine_id: &str,
        actor: &Actor,
    ) -> Result<QuarantineEntry, HardwareError> {
        let result = match Uuid::parse_str(quarantine_id) {
            Err(_) => Err(HardwareError::validation("quarantine_id", "must be a UUID")),
            Ok(id) => {
                let one_at_a_time = Arc::clone(&self.inner.cleanups).lock_owned().await;
                self.blocking_holding(one_at_a_time, move |inner| inner.quarantine.restore(id, &inner.roots))
                    .await
            }
        };
        audit::restore(actor, quarantine_id, result.as_ref().map(|entry| entry.original_path.as_str()));
        result
    }

    /// Deletes quarantined files whose time has come; returns how many.
    pub async fn purge_quarantine(&self) -> Result<usize, HardwareError> {
        self.blocking(|inner| {
            inner
                .quarantine
                .purge_expired(chrono::Utc::now())
                .map_err(|error| HardwareError::internal("purge the quarantine", error))
        })
        .await
    }
}

impl Inner {
    fn sampler(&self) -> MutexGuard<'_, HostSampler> {
        self.sampler.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn limits(&self) -> ScanLimits {
        ScanLimits::starting_now(self.settings.scan_max_files, self.settings.scan_max_duration())
    }

    /// The trees a storage or logs cleanup covers: the requested path, or every allowed root.
    fn cleanup_targets(&self, path: Option<&str>) -> Result<Vec<SafePath>, HardwareError> {
        match path {
            Some(path) => Ok(vec![self.roots.resolve(path.as_bytes())?]),
            None => Ok(self
                .roots
                .walk_starts()
                .into_iter()
                .filter_map(|root| self.roots.admit(root.path().to_path_buf()).ok())
                .collect()),
        }
    }

    /// Plans a file cleanup and, unless it is a dry run, executes the plan.
    fn file_cleanup(&self, cleanup: &ValidCleanup) -> Result<Vec<CleanupAction>, HardwareError> {
        let targets = self.cleanup_targets(cleanup.path.as_deref())?;
        let limits = self.limits();
        let open_files = OpenFiles::scan();
        let context = PlanContext {
            targets: &targets,
            excluded: self.roots.excluded(),
            limits,
            open_files: &open_files,
            now: SystemTime::now(),
            days_old: cleanup.days_old,
            system_temp_dir: self.system_temp_dir.clone(),
        };
        let (steps, truncated) = match cleanup.kind {
            CleanupKind::Storage => plan_storage(&context),
            CleanupKind::Logs => plan_logs(&context),
            _ => {
                let mut steps = Vec::new();
                let mut truncated = false;
                for target in &targets {
                    let report =
                        find_duplicates(target, self.roots.excluded(), &limits, 1, default_workers());
                    truncated |= report.truncated;
                    steps.extend(plan_duplicates(&report, &open_files));
                }
                (steps, truncated)
            }
        };
        if truncated {
            tracing::warn!(
                cleanup = cleanup.kind.as_str(),
                "cleanup planned over part of the tree: scan bound reached"
            );
        }
        if !cleanup.dry_run {
            return Ok(execute_file_steps(&steps, &self.quarantine, cleanup.kind));
        }
        // The measuring compressions are bounded by the same deadline as the scan.
        Ok(steps.iter().map(|step| dry_run_action(step, limits.deadline)).collect())
    }
}

/// A step as a dry run reports it; a compression's saving is measured by compressing into a
/// counter, so the figure is the one a real run would free.
fn dry_run_action(step: &Step, deadline: Instant) -> CleanupAction {
    let mut action = step.planned();
    if let (ActionKind::CompressFile, ActionOutcome::Planned, StepTarget::File { file, .. }) =
        (step.kind, action.outcome, &step.target)
    {
        match compressed_size(file, Some(deadline)) {
            Ok(compressed) => action.reclaimed_bytes = file.size_bytes.saturating_sub(compressed),
            Err(error) => action.detail = format!("{}; saving unknown: {}", action.detail, error.kind()),
        }
    }
    action
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::domain::test_support::TempDir;

    fn service(base: &TempDir) -> HardwareService {
        HardwareService::new(HardwareSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            auth_url: "http://127.0.0.1:1".to_owned(),
            allowed_roots: vec![base.path().to_path_buf()],
            quarantine_dir: base.path().join("quarantine"),
            quarantine_ttl_s: 60,
            scan_max_files: 1000,
            scan_max_duration_ms: 10_000,
            docker_enabled: false,
        })
        .unwrap()
    }

    async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Blocking work that signals its start and runs until released.
    fn held_work() -> (mpsc::Receiver<()>, mpsc::Sender<()>, impl FnOnce(&Inner) -> Result<(), HardwareError>)
    {
        let (started_sender, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let work = move |_: &Inner| {
            let _ = started_sender.send(());
            let _ = released.recv();
            Ok(())
        };
        (started, release, work)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_request_holds_its_permit_and_lock_until_the_work_ends() {
        let base = TempDir::new();
        let service = service(&base);

        let (started, release, work) = held_work();
        let scanning = service.clone();
        let request = tokio::spawn(async move { scanning.scan(work).await });
        tokio::task::spawn_blocking(move || started.recv()).await.unwrap().unwrap();
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        // The request is gone, its blocking work is not: the permit stays taken.
        assert_eq!(service.inner.scans.available_permits(), MAX_CONCURRENT_SCANS - 1);
        release.send(()).unwrap();
        assert!(eventually(|| service.inner.scans.available_permits() == MAX_CONCURRENT_SCANS).await);

        let (started, release, work) = held_work();
        let cleaning = service.clone();
        let request = tokio::spawn(async move {
            let one_at_a_time = Arc::clone(&cleaning.inner.cleanups).lock_owned().await;
            cleaning.blocking_holding(one_at_a_time, work).await
        });
        tokio::task::spawn_blocking(move || started.recv()).await.unwrap().unwrap();
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        assert!(service.inner.cleanups.try_lock().is_err());
        release.send(()).unwrap();
        assert!(eventually(|| service.inner.cleanups.try_lock().is_ok()).await);
    }
}
