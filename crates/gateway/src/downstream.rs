//! gRPC clients of the downstream services, each behind its circuit breaker. Channels connect
//! lazily, so the gateway starts (and answers 503 "<service> unavailable") while a service is
//! down, and reconnects by itself when it comes back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sutazai_kit::breaker::{BreakerError, BreakerRegistry, circuit_open_error};
use sutazai_kit::http::ApiError;
use sutazai_proto::v1::arbitrator_service_client::ArbitratorServiceClient;
use sutazai_proto::v1::coordinator_service_client::CoordinatorServiceClient;
use sutazai_proto::v1::hardware_service_client::HardwareServiceClient;
use sutazai_proto::v1::orchestrator_service_client::OrchestratorServiceClient;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::settings::GatewaySettings;

/// Names of the downstream services (breaker names, error messages, health checks).
pub(crate) const ORCHESTRATOR: &str = "orchestrator";
/// The coordinator.
pub(crate) const COORDINATOR: &str = "coordinator";
/// The vector service.
pub(crate) const VECTOR: &str = "vector";
/// The hardware service.
pub(crate) const HARDWARE: &str = "hardware";
/// The arbitrator.
pub(crate) const ARBITRATOR: &str = "arbitrator";

/// A downstream service: its name, channel and breaker.
#[derive(Debug, Clone)]
pub(crate) struct Downstream {
    name: &'static str,
    channel: Channel,
}

impl Downstream {
    fn new(name: &'static str, url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_millis(500))
            .timeout(timeout)
            .connect_lazy();
        Ok(Self { name, channel })
    }

    /// The service's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The channel, for health checks.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Every downstream service.
#[derive(Debug, Clone)]
pub(crate) struct Downstreams {
    orchestrator: Downstream,
    coordinator: Downstream,
    vector: Downstream,
    hardware: Downstream,
    arbitrator: Downstream,
    breakers: Arc<BreakerRegistry>,
}

tokio::task_local! {
    /// The `authorization` value of the request being served, once its token has verified: the
    /// downstream services check the caller's token themselves (every mutating call needs one),
    /// so the gateway forwards it instead of calling them with a power of its own.
    static CALLER_AUTHORIZATION: MetadataValue<Ascii>;
}

/// Runs `future` (the rest of a request's handling) with `token` forwarded on every downstream
/// call it makes.
pub(crate) async fn forwarding_caller_token<F: Future>(token: &str, future: F) -> F::Output {
    match MetadataValue::try_from(format!("Bearer {token}")) {
        Ok(authorization) => CALLER_AUTHORIZATION.scope(authorization, future).await,
        // A verified JWT is base64url and dots, always valid metadata; nothing to forward else.
        Err(_) => future.await,
    }
}

/// The verified caller's `authorization` value, inside a request.
pub(crate) fn caller_authorization() -> Option<MetadataValue<Ascii>> {
    CALLER_AUTHORIZATION.try_with(Clone::clone).ok()
}

/// Passes the current trace context and the caller's token on to the downstream service.
pub(crate) type Traced = tonic::service::interceptor::InterceptedService<
    Channel,
    fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
>;

fn forward_context(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let mut request = sutazai_kit::telemetry::grpc_client_interceptor(request)?;
    // Outside a request (health checks) there is no caller and nothing to forward.
    let _outside_a_request = CALLER_AUTHORIZATION.try_with(|authorization| {
        request.metadata_mut().insert("authorization", authorization.clone());
    });
    Ok(request)
}

fn traced(channel: Channel) -> Traced {
    tonic::service::interceptor::InterceptedService::new(
        channel,
        forward_context as fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    )
}

impl Downstreams {
    /// Lazily connected clients for the configured URLs.
    pub(crate) fn new(
        settings: &GatewaySettings,
        breakers: Arc<BreakerRegistry>,
    ) -> Result<Self, tonic::transport::Error> {
        let timeout = settings.downstream_timeout();
        Ok(Self {
            orchestrator: Downstream::new(ORCHESTRATOR, &settings.orchestrator_url, timeout)?,
            coordinator: Downstream::new(COORDINATOR, &settings.coordinator_url, timeout)?,
            vector: Downstream::new(VECTOR, &settings.vector_url, timeout)?,
            hardware: Downstream::new(HARDWARE, &settings.hardware_url, timeout)?,
            arbitrator: Downstream::new(ARBITRATOR, &settings.arbitrator_url, timeout)?,
            breakers,
        })
    }

    /// All of them, for health checks.
    pub(crate) fn all(&self) -> [&Downstream; 5] {
        [&self.orchestrator, &self.coordinator, &self.vector, &self.hardware, &self.arbitrator]
    }

    /// The orchestrator client.
    pub(crate) fn orchestrator(&self) -> OrchestratorServiceClient<Traced> {
        OrchestratorServiceClient::new(traced(self.orchestrator.channel()))
    }

    /// The coordinator client.
    pub(crate) fn coordinator(&self) -> CoordinatorServiceClient<Traced> {
        CoordinatorServiceClient::new(traced(self.coordinator.channel()))
    }

    /// The vector client.
    pub(crate) fn vector(&self) -> VectorServiceClient<Traced> {
        VectorServiceClient::new(traced(self.vector.channel()))
    }

    /// The hardware client.
    pub(crate) fn hardware(&self) -> HardwareServiceClient<Traced> {
        HardwareServiceClient::new(traced(self.hardware.channel()))
    }

    /// The arbitrator client.
    pub(crate) fn arbitrator(&self) -> ArbitratorServiceClient<Traced> {
        ArbitratorServiceClient::new(traced(self.arbitrator.channel()))
    }

    /// The arbitrator's channel, for the lease client of inference slots.
    pub(crate) fn arbitrator_channel(&self) -> Channel {
        self.arbitrator.channel()
    }

    /// The breaker of `service`.
    pub(crate) fn breaker(&self, service: &str) -> Arc<sutazai_kit::breaker::CircuitBreaker> {
        self.breakers.get(service)
    }

    /// Runs one call to `service` through its breaker and maps the outcome to the HTTP error table:
    /// transport failures count against the breaker and become "<service> unavailable" (503);
    /// domain errors (not found, invalid) pass through with their meaning and do not.
    pub(crate) async fn call<T, F>(&self, service: &'static str, call: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let breaker = self.breakers.get(service);
        match breaker.call(call).await {
            Ok(response) => Ok(response.into_inner()),
            Err(BreakerError::Open { retry_after, .. }) => Err(circuit_open_error(service, retry_after)),
            Err(BreakerError::Inner(status)) => {
                Err(sutazai_kit::grpc::api_error_from_status(service, &status))
            }
        }
    }
}
