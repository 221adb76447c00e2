//! Tracing for tests: an OpenTelemetry layer is always installed (so trace propagation can be
//! asserted), log lines are printed only when `TEST_LOG` is set.

use std::sync::{Arc, Mutex, OnceLock};

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

/// Every log line of this test process from the first call on, for tests that assert what was
/// (or was not) logged: audit events, secrets kept out of logs. The first call installs the
/// capturing subscriber with `filter` (a tracing directive); nextest runs each test in a process
/// of its own, so a test calls this before starting the code it observes.
pub fn captured_logs(filter: &str) -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer_buffer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")))
            .with_ansi(false)
            .with_writer(move || CaptureWriter(Arc::clone(&writer_buffer)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
    .clone()
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
