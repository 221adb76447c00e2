//! Tracing and trace propagation: logs as text or JSON, spans exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C `traceparent` carried over HTTP headers and gRPC
//! metadata (AMQP headers are handled in `sutazai-messaging` with the same propagator).
//!
//! A tracer provider is always installed, even without an exporter, so every request gets a
//! trace id that propagates to the services it calls; only the export is optional.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};

/// The standard OpenTelemetry variable that turns OTLP export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Failures while installing telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from its environment.
    #[error("build otlp exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("install tracing subscriber: {0}")]
    Subscriber(String),
}

/// Keeps the tracer provider alive; [`TelemetryGuard::shutdown`] flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Flushes and stops span export. Call last, after the service stopped.
    pub fn shutdown(self) {
        if let Err(error) = self.tracer_provider.shutdown() {
            eprintln!("telemetry shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber and propagator for a service process.
///
/// `otlp_endpoint` is the value of [`OTLP_ENDPOINT_ENV`], read by the caller from the environment;
/// when present, spans are exported over OTLP/gRPC (the exporter reads the standard `OTEL_*`
/// variables for the rest).
pub fn init(
    settings: &TelemetrySettings,
    service_name: &str,
    otlp_endpoint: Option<&str>,
) -> Result<TelemetryGuard, TelemetryError> {
    let tracer_provider = build_tracer_provider(service_name, otlp_endpoint)?;
    let tracer = tracer_provider.tracer("sutazai");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());

    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let format_layer = match settings.log_format {
        // Logs go to stderr: stdout stays clean for command output (`sutazai auth rotate-keys`), and
        // container runtimes collect both.
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(true).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(format_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .map_err(|error| TelemetryError::Subscriber(error.to_string()))?;
    Ok(TelemetryGuard { tracer_provider })
}

fn build_tracer_provider(
    service_name: &str,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if otlp_endpoint.is_some_and(|endpoint| !endpoint.is_empty()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Writes the current span's trace context into a carrier (`traceparent`, `tracestate`).
pub fn inject_current(injector: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, injector)
    });
}

/// Reads a remote trace context from a carrier; empty when it has none.
pub fn extract(extractor: &dyn Extractor) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(extractor))
}

/// Makes `span` a child of the remote context found in `extractor`, if any.
pub fn set_remote_parent(span: &tracing::Span, extractor: &dyn Extractor) {
    let parent = extract(extractor);
    // A span without an OpenTelemetry layer (tests without telemetry) cannot take a parent;
    // that only loses the link, never the work, so the error is ignored on purpose.
    let _ = span.set_parent(parent);
}

/// The W3C `traceparent` value of the current span, if it has a valid context.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    inject_current(&mut carrier);
    carrier.remove("traceparent")
}

/// Trace context carrier over HTTP headers.
#[derive(Debug)]
pub struct HeaderCarrier<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::header::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Read-only trace context carrier over HTTP headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Trace context carrier over gRPC metadata (outgoing requests).
#[derive(Debug)]
pub struct MetadataCarrier<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Read-only trace context carrier over gRPC metadata (incoming requests).
#[derive(Debug)]
pub struct MetadataExtractor<'a>(pub &'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(name) => Some(name.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// A tonic interceptor for clients: copies the current trace context into each request.
pub fn grpc_client_interceptor(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    inject_current(&mut MetadataCarrier(request.metadata_mut()));
    Ok(request)
}
