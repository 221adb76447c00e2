//! The arbitrator against real Postgres and Redis: each test starts its own service (or two
//! replicas, or a restarted one) with its own database, Redis prefix and token issuer, and talks
//! to it over gRPC with real bearer tokens.

#![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

mod client;
mod errors;
mod expiry;
mod limits;
mod preemption;
mod race;
mod restart;
mod slots;
mod waiting;

use std::net::SocketAddr;
use std::time::Duration;

use sutazai_arbitrator::settings::NamedCapacities;
use sutazai_arbitrator::{Application, ArbitratorConfig, ArbitratorSettings};
use sutazai_kit::shutdown::Shutdown;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::arbitrator_service_client::ArbitratorServiceClient;
use sutazai_testkit::{TestDatabase, TestIssuer, TestRedis, http_settings};
use tonic::transport::Channel;

/// The LLM pool every test configures (one slot, like an Ollama with NUM_PARALLEL=1).
pub(crate) const MODEL: &str = "ollama/smollm2:135m";

/// An 8-core host with 16 GiB, one GPU, one LLM slot and a 20-unit custom pool; the default
/// policy lets everything be leased.
pub(crate) fn settings() -> ArbitratorSettings {
    ArbitratorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        auth_url: String::new(),
        cpu_millicores: 8000,
        memory_bytes: 16 << 30,
        gpus: 1,
        llm_slots: NamedCapacities::new(vec![(MODEL.to_owned(), 1)]),
        custom: NamedCapacities::new(vec![("race".to_owned(), 20), ("licenses".to_owned(), 5)]),
        default_max_allocation_percent: 100.0,
        default_max_per_holder_percent: 100.0,
        default_oversubscription_ratio: 1.0,
        default_preemption_enabled: true,
        sweep_interval_ms: 100,
        max_ttl_s: 3600,
        max_wait_ms: 10_000,
    }
}

/// The shared servers and issuer of one test (several replicas may use them).
pub(crate) struct Backing {
    pub(crate) database: TestDatabase,
    pub(crate) redis: TestRedis,
    pub(crate) issuer: TestIssuer,
}

impl Backing {
    pub(crate) async fn new() -> Self {
        sutazai_testkit::init_tracing();
        Self {
            database: TestDatabase::create().await,
            redis: TestRedis::new(),
            issuer: TestIssuer::start().await,
        }
    }

    pub(crate) fn config(&self, mut settings: ArbitratorSettings) -> ArbitratorConfig {
        settings.auth_url = self.issuer.auth_url();
        ArbitratorConfig {
            arbitrator: settings,
            http: http_settings(),
            postgres: self.database.settings(),
            redis: self.redis.settings(),
            token: self.issuer.verifier_settings(),
        }
    }

    /// The live view's key prefix.
    pub(crate) fn live_prefix(&self) -> String {
        format!("{}arb:", self.redis.key_prefix)
    }

    /// A user's token.
    pub(crate) fn user(&self, subject: &str) -> String {
        self.issuer.user_token(subject, &[])
    }

    /// A service account's token.
    pub(crate) fn service(&self, client_id: &str) -> String {
        self.issuer.service_token(client_id, &[])
    }

    /// An admin's token.
    pub(crate) fn admin(&self) -> String {
        self.issuer.admin_token()
    }

    /// A pool on the test database, in the arbitrator's schema.
    pub(crate) async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.database.url()).await.unwrap()
    }

    /// A lease's recorded status.
    pub(crate) async fn recorded_status(&self, lease_id: &str) -> String {
        let pool = self.pool().await;
        let status: String = sqlx::query_scalar("SELECT status FROM arbitrator.leases WHERE id = $1::uuid")
            .bind(lease_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        status
    }
}

/// A running arbitrator.
pub(crate) struct TestArbitrator {
    pub(crate) address: SocketAddr,
    pub(crate) rpc: ArbitratorServiceClient<Channel>,
    shutdown: Shutdown,
}

impl Drop for TestArbitrator {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl TestArbitrator {
    /// Starts a replica on `backing`.
    pub(crate) async fn start(backing: &Backing, settings: ArbitratorSettings) -> Self {
        let shutdown = Shutdown::new();
        let application = Application::build(backing.config(settings), &shutdown).await.unwrap();
        let address = application.address();
        tokio::spawn(application.run_until_stopped(shutdown.clone()));
        let rpc = ArbitratorServiceClient::connect(format!("http://{address}")).await.unwrap();
        Self { address, rpc, shutdown }
    }

    /// Stops the replica and waits for its background work (journal writes) to finish.
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        assert!(self.shutdown.wait_for_tasks(Duration::from_secs(10)).await, "arbitrator tasks did not stop");
    }

    pub(crate) fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address)).unwrap().connect_lazy()
    }

    pub(crate) async fn acquire(
        &self,
        token: &str,
        request: pb::AcquireLeaseRequest,
    ) -> Result<pb::AcquireLeaseResponse, tonic::Status> {
        self.rpc.clone().acquire_lease(authed(request, token)).await.map(tonic::Response::into_inner)
    }

    pub(crate) async fn renew(
        &self,
        token: &str,
        lease_id: &str,
        ttl_s: u32,
    ) -> Result<pb::Lease, tonic::Status> {
        let request = pb::RenewLeaseRequest { lease_id: lease_id.to_owned(), ttl_s };
        let response = self.rpc.clone().renew_lease(authed(request, token)).await?;
        Ok(response.into_inner().lease.unwrap())
    }

    pub(crate) async fn release(
        &self,
        token: &str,
        lease_id: &str,
        holder: &str,
    ) -> Result<(), tonic::Status> {
        let request = pb::ReleaseLeaseRequest { lease_id: lease_id.to_owned(), holder: holder.to_owned() };
        self.rpc.clone().release_lease(authed(request, token)).await.map(|_| ())
    }

    pub(crate) async fn pools(&self, token: &str, kind: pb::ResourceKind) -> Vec<pb::ResourcePool> {
        let request = pb::ListPoolsRequest { kind: kind.into() };
        self.rpc.clone().list_pools(authed(request, token)).await.unwrap().into_inner().pools
    }

    /// The one pool of `resource`.
    pub(crate) async fn pool(&self, token: &str, resource: &pb::ResourceRef) -> pb::ResourcePool {
        let kind = pb::ResourceKind::try_from(resource.kind).unwrap();
        self.pools(token, kind)
            .await
            .into_iter()
            .find(|pool| pool.resource.as_ref() == Some(resource))
            .unwrap()
    }

    pub(crate) async fn set_policy(
        &self,
        token: &str,
        policy: pb::ResourcePolicy,
    ) -> Result<pb::ResourcePolicy, tonic::Status> {
        let request = pb::SetPolicyRequest { policy: Some(policy), updated_by: "test".to_owned() };
        let response = self.rpc.clone().set_policy(authed(request, token)).await?;
        Ok(response.into_inner().policy.unwrap())
    }
}

/// `message` with `Authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub(crate) fn cpu() -> pb::ResourceRef {
    pb::ResourceRef { kind: pb::ResourceKind::Cpu.into(), name: String::new() }
}

pub(crate) fn gpu() -> pb::ResourceRef {
    pb::ResourceRef { kind: pb::ResourceKind::Gpu.into(), name: String::new() }
}

pub(crate) fn custom(name: &str) -> pb::ResourceRef {
    pb::ResourceRef { kind: pb::ResourceKind::Custom.into(), name: name.to_owned() }
}

pub(crate) fn llm_slots(name: &str) -> pb::ResourceRef {
    pb::ResourceRef { kind: pb::ResourceKind::LlmSlots.into(), name: name.to_owned() }
}

/// An acquire request answering at once.
pub(crate) fn lease(
    resource: pb::ResourceRef,
    amount: u64,
    ttl_s: u32,
    priority: u32,
    holder: &str,
) -> pb::AcquireLeaseRequest {
    pb::AcquireLeaseRequest {
        resource: Some(resource),
        amount,
        ttl_s,
        priority,
        holder: holder.to_owned(),
        wait_timeout_ms: 0,
    }
}

pub(crate) fn policy(
    resource: pb::ResourceRef,
    total: f64,
    per_holder: f64,
    ratio: f64,
    preemption: bool,
) -> pb::ResourcePolicy {
    pb::ResourcePolicy {
        resource: Some(resource),
        max_allocation_percent: total,
        max_per_holder_percent: per_holder,
        oversubscription_ratio: ratio,
        preemption_enabled: preemption,
    }
}

/// Asserts a status's code and exact message.
#[track_caller]
pub(crate) fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    message: &str,
) {
    let status = result.unwrap_err();
    assert_eq!((status.code(), status.message()), (code, message), "{status:?}");
}
