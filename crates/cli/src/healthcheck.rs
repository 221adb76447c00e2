//! `sutazai healthcheck URL`: a container HEALTHCHECK that needs no curl in the image.

use std::process::ExitCode;
use std::time::Duration;

/// GETs `url`; exit 0 on a 2xx answer within `timeout_ms`, 1 otherwise (with the reason on stderr).
pub(crate) fn run(url: &str, timeout_ms: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("unhealthy: cannot start runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let client = match reqwest::Client::builder().timeout(Duration::from_millis(timeout_ms)).build() {
            Ok(client) => client,
            Err(error) => {
                eprintln!("unhealthy: {error}");
                return ExitCode::FAILURE;
            }
        };
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
            Ok(response) => {
                eprintln!("unhealthy: {url} answered {}", response.status());
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("unhealthy: {url}: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
