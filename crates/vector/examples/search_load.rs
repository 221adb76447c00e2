//! A search load generator for a running vector service: `concurrency` clients send k-NN
//! searches with random queries for `seconds`, then the latency percentiles and throughput are
//! printed. For measuring the service end to end (gRPC, auth, engine), not a test.
//!
//! `cargo run --release -p sutazai-vector --example search_load -- URL COLLECTION DIMENSION
//! [CONCURRENCY] [SECONDS] [K]` with the access token in `SUTAZAI_TOKEN`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark tool: failures abort the run")]

use std::time::{Duration, Instant};

use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;

fn argument<T: std::str::FromStr>(position: usize, default: Option<T>) -> T {
    match std::env::args().nth(position) {
        Some(text) => text.parse().ok().expect("a numeric argument"),
        None => default.expect("URL COLLECTION DIMENSION [CONCURRENCY] [SECONDS] [K]"),
    }
}

/// xorshift: queries need no quality beyond "spread out".
fn next_random(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 40) as f32 / (1_u64 << 24) as f32
}

#[tokio::main]
async fn main() {
    let url: String = std::env::args().nth(1).expect("URL");
    let collection: String = std::env::args().nth(2).expect("COLLECTION");
    let dimension: usize = argument(3, None);
    let concurrency: usize = argument(4, Some(4));
    let seconds: u64 = argument(5, Some(10));
    let k: u32 = argument(6, Some(10));
    let token = std::env::var("SUTAZAI_TOKEN").expect("SUTAZAI_TOKEN");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = VectorServiceClient::connect(url.clone()).await.unwrap();
        let (collection, token) = (collection.clone(), token.clone());
        workers.spawn(async move {
            let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let vector = (0..dimension).map(|_| next_random(&mut state)).collect();
                let mut request = tonic::Request::new(pb::SearchRequest {
                    collection: collection.clone(),
                    queries: vec![pb::QueryVector { vector }],
                    k,
                    ..pb::SearchRequest::default()
                });
                request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
                let started = Instant::now();
                let response = client.search(request).await.unwrap().into_inner();
                latencies.push(started.elapsed());
                assert_eq!(response.results.len(), 1);
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = Vec::new();
    while let Some(worker) = workers.join_next().await {
        latencies.extend(worker.unwrap());
    }
    latencies.sort_unstable();
    let percentile = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction) as usize];
    println!(
        "{} searches in {seconds} s with {concurrency} clients: {:.0} per second; p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        latencies.len() as f64 / seconds as f64,
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
}
