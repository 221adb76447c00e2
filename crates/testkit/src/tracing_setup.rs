//! Tracing for tests: an OpenTelemetry layer is always installed (so trace propagation can be
//! asserted), log lines are printed only when `TEST_LOG` is set.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the test subscriber once per test binary.
pub fn init_tracing() {
    INSTALLED.get_or_init(|| {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("sutazai-test");
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(provider);
        let log_layer = std::env::var("TEST_LOG").ok().map(|filter| {
            let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("debug"));
            tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter)
        });
        let _ = tracing_subscriber::registry()
            .with(log_layer)
            .with(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(EnvFilter::new("info")))
            .try_init();
    });
}
