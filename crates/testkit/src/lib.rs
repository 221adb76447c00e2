//! Test harness for SutazAI services (a dev-dependency only). Tests run against the real
//! Postgres, Redis and RabbitMQ, each test isolated by its own database, key prefix and name
//! prefix, so the whole suite runs in parallel on one set of servers. Ollama, which cannot run
//! here, is replaced by the protocol-faithful [`fake_ollama`] server — the only test double.
//!
//! Server addresses come from `SUTAZAI_TEST_POSTGRES_URL`, `SUTAZAI_TEST_REDIS_URL` and
//! `SUTAZAI_TEST_AMQP_URL`, defaulting to the local servers `make test` ensures.

pub mod fake_ollama;
mod proxy;
mod servers;
mod spawn;
pub mod tokens;
mod tracing_setup;

pub use proxy::TcpProxy;
pub use servers::{TestAmqp, TestDatabase, TestRedis, amqp_url, http_settings, redis_url};
pub use spawn::{TestServer, wait_for};
pub use tokens::TestIssuer;
pub use tracing_setup::{captured_logs, init_tracing};
