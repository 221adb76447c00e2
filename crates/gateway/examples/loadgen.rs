//! `make bench-gateway`'s load generator: a closed loop of HTTP/1.1 keep-alive connections, each
//! sending one GET at a time, so at most CONNECTIONS requests are in flight. The first second is a
//! warm-up (connections open, caches fill) and is not measured; then every request that starts
//! inside the measured window has its latency recorded.
//!
//! Usage: `loadgen URL CONNECTIONS DURATION_S [BEARER_TOKEN]`. Prints `name value` lines:
//! `requests`, `requests_per_s`, `p50_us`, `p90_us`, `p99_us`, `max_us`, `errors`. A non-2xx answer
//! or a broken connection is an error; a run with errors is not a valid measurement. The first
//! error is described on stderr.
//!
//! `LOADGEN_THREADS` sets the client's runtime threads (default 1): the client shares the machine
//! with the server it measures, and one thread keeps it from taking more than one core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const WARM_UP: Duration = Duration::from_secs(1);
/// After a refused connect, wait this long before trying again, so a dead server costs a few
/// hundred attempts per second rather than a busy loop.
const RECONNECT_DELAY: Duration = Duration::from_millis(10);

/// What every connection sends.
#[derive(Debug)]
struct Target {
    address: String,
    host: HeaderValue,
    path: PathAndQuery,
    authorization: Option<HeaderValue>,
}

/// When the measured window opens and closes.
#[derive(Debug, Clone, Copy)]
struct Window {
    measured_from: Instant,
    measured_until: Instant,
}

/// One connection's results.
#[derive(Debug, Default)]
struct ConnectionReport {
    latencies_us: Vec<u32>,
    errors: u64,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

fn usage() -> String {
    "usage: loadgen URL CONNECTIONS DURATION_S [BEARER_TOKEN]".to_owned()
}

fn parse_target(url: &str, token: Option<&str>) -> Result<Target, Box<dyn std::error::Error>> {
    let uri: hyper::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// is supported").into());
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{url}: no host").into());
    };
    let address = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:80", authority.host()),
    };
    let path = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let authorization = match token {
        Some(token) => Some(HeaderValue::from_str(&format!("Bearer {token}"))?),
        None => None,
    };
    Ok(Target { address, host: HeaderValue::from_str(authority.as_str())?, path, authorization })
}

async fn connect(target: &Target) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(&target.address).await?;
    // Requests are small and answered one at a time: Nagle would only add delay.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; the sender's
        // next request reports the latter.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole body; `Ok(false)` for a non-2xx answer.
async fn send(
    sender: &mut Sender,
    target: &Target,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = Request::get(target.path.clone()).body(Empty::<Bytes>::new())?;
    request.headers_mut().insert(HOST, target.host.clone());
    if let Some(authorization) = &target.authorization {
        request.headers_mut().insert(AUTHORIZATION, authorization.clone());
    }
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        report_first_error(format!("status {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(status.is_success())
}

fn report_first_error(description: String) {
    static REPORTED: std::sync::Once = std::sync::Once::new();
    REPORTED.call_once(|| eprintln!("loadgen: first error: {description}"));
}

/// One connection's closed loop until the window closes; reconnects after a transport error.
async fn drive(target: Arc<Target>, window: Window) -> ConnectionReport {
    let mut report = ConnectionReport::default();
    let mut sender: Option<Sender> = None;
    loop {
        let started = Instant::now();
        if started >= window.measured_until {
            return report;
        }
        let measured = started >= window.measured_from;
        let current = match sender.as_mut() {
            Some(current) => current,
            None => match connect(&target).await {
                Ok(fresh) => sender.insert(fresh),
                Err(error) => {
                    report_first_error(format!("connect {}: {error}", target.address));
                    report.errors += u64::from(measured);
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            },
        };
        let succeeded = match send(current, &target).await {
            Ok(succeeded) => succeeded,
            Err(error) => {
                report_first_error(format!("request: {error}"));
                sender = None;
                false
            }
        };
        if !measured {
            continue;
        }
        if succeeded {
            let elapsed_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            report.latencies_us.push(elapsed_us);
        } else {
            report.errors += 1;
        }
    }
}

/// The nearest-rank percentile of sorted latencies.
fn percentile(sorted_us: &[u32], fraction: f64) -> u32 {
    if sorted_us.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1]
}

async fn run(target: Target, connections: usize, duration: Duration) -> ConnectionReport {
    let target = Arc::new(target);
    let measured_from = Instant::now() + WARM_UP;
    let window = Window { measured_from, measured_until: measured_from + duration };
    let merged = Arc::new(Mutex::new(ConnectionReport::default()));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (target, merged) = (Arc::clone(&target), Arc::clone(&merged));
        tasks.push(tokio::spawn(async move {
            let report = drive(target, window).await;
            let mut merged = merged.lock().await;
            merged.latencies_us.extend_from_slice(&report.latencies_us);
            merged.errors += report.errors;
        }));
    }
    for task in tasks {
        if task.await.is_err() {
            merged.lock().await.errors += 1;
        }
    }
    let mut merged = merged.lock().await;
    std::mem::take(&mut *merged)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [url, connections, duration_s, rest @ ..] = arguments.as_slice() else {
        return Err(usage().into());
    };
    let connections: usize =
        connections.parse().map_err(|error| format!("CONNECTIONS: {error}; {}", usage()))?;
    let duration_s: u64 = duration_s.parse().map_err(|error| format!("DURATION_S: {error}; {}", usage()))?;
    if connections == 0 || duration_s == 0 {
        return Err(format!("CONNECTIONS and DURATION_S must be positive; {}", usage()).into());
    }
    let target = parse_target(url, rest.first().map(String::as_str))?;
    let threads: usize = match std::env::var("LOADGEN_THREADS") {
        Ok(text) => text.parse().map_err(|error| format!("LOADGEN_THREADS: {error}"))?,
        Err(_) => 1,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    let duration = Duration::from_secs(duration_s);
    let mut report = runtime.block_on(run(target, connections, duration));
    report.latencies_us.sort_unstable();
    let sorted = &report.latencies_us;
    println!("requests {}", sorted.len());
    println!("requests_per_s {:.0}", sorted.len() as f64 / duration.as_secs_f64());
    println!("p50_us {}", percentile(sorted, 0.50));
    println!("p90_us {}", percentile(sorted, 0.90));
    println!("p99_us {}", percentile(sorted, 0.99));
    println!("max_us {}", sorted.last().copied().unwrap_or(0));
    println!("errors {}", report.errors);
    Ok(())
}
