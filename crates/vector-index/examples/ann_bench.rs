//! ANN benchmark driver: builds Flat and HNSW indexes from `.fvecs` files and prints one JSON line
//! per engine, for comparison with FAISS `IndexFlatL2` and hnswlib at the same thread count.
//!
//! ```text
//! cargo run --release -p sutazai-vector-index --example ann_bench -- \
//!     base.fvecs query.fvecs groundtruth.ivecs \
//!     [--m 16] [--ef-construction 200] [--ef-search 96] [--threads N] [--engines flat,hnsw] \
//!     [--max-single-seconds 30]
//! ```
//!
//! Threads: `--threads`, else `RAYON_NUM_THREADS`, else every core. `qps_single` runs the queries
//! one at a time on the calling thread (Flat splits a large scan across the pool; HNSW uses one
//! thread), stopping after `--max-single-seconds`; `qps_batch` is one `search_batch` call with all
//! queries. Recall@10 comes from the batch results against the first 10 ground-truth ids. Slots are
//! the base vectors' positions, so they compare directly with the ground-truth ids.

use std::error::Error;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use sutazai_vector_index::{Hit, Index, IndexConfig, Metric, SearchParams, SlotId, kernel_name};

const K: usize = 10;

struct Options {
    base: String,
    queries: String,
    ground_truth: String,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    threads: Option<usize>,
    engines: Vec<String>,
    max_single: Duration,
}

fn parse_options() -> Result<Options, Box<dyn Error>> {
    let mut positional = Vec::new();
    let mut options = Options {
        base: String::new(),
        queries: String::new(),
        ground_truth: String::new(),
        m: 16,
        ef_construction: 200,
        ef_search: 96,
        threads: None,
        engines: vec!["flat".into(), "hnsw".into()],
        max_single: Duration::from_secs(30),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or_else(|| format!("{argument} needs a value"));
        match argument.as_str() {
            "--m" => options.m = value()?.parse()?,
            "--ef-construction" => options.ef_construction = value()?.parse()?,
            "--ef-search" => options.ef_search = value()?.parse()?,
            "--threads" => options.threads = Some(value()?.parse()?),
            "--engines" => options.engines = value()?.split(',').map(str::to_owned).collect(),
            "--max-single-seconds" => options.max_single = Duration::from_secs_f64(value()?.parse()?),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}").into()),
            _ => positional.push(argument),
        }
    }
    let [base, queries, ground_truth] = <[String; 3]>::try_from(positional)
        .map_err(|_| "usage: ann_bench BASE.fvecs QUERY.fvecs GROUNDTRUTH.ivecs [options]")?;
    options.base = base;
    options.queries = queries;
    options.ground_truth = ground_truth;
    Ok(options)
}

/// Reads a `.fvecs` / `.ivecs` file: each record is a little-endian `i32` length, then that many
/// 4-byte values. Returns the records' raw 4-byte words.
fn read_vecs(path: &Path) -> Result<Vec<Vec<[u8; 4]>>, Box<dyn Error>> {
    let bytes = fs::read(path).map_err(|error| format!("read {}: {error}", path.display()))?;
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let header: [u8; 4] = bytes[offset..offset + 4].try_into()?;
        let length = usize::try_from(i32::from_le_bytes(header))?;
        offset += 4;
        let end = offset + 4 * length;
        if end > bytes.len() {
            return Err(format!("{} is truncated", path.display()).into());
        }
        let words =
            bytes[offset..end].chunks_exact(4).map(|word| [word[0], word[1], word[2], word[3]]).collect();
        records.push(words);
        offset = end;
    }
    Ok(records)
}

fn read_fvecs(path: &str) -> Result<Vec<Vec<f32>>, Box<dyn Error>> {
    Ok(read_vecs(Path::new(path))?
        .into_iter()
        .map(|words| words.into_iter().map(f32::from_le_bytes).collect())
        .collect())
}

fn read_ivecs(path: &str) -> Result<Vec<Vec<i32>>, Box<dyn Error>> {
    Ok(read_vecs(Path::new(path))?
        .into_iter()
        .map(|words| words.into_iter().map(i32::from_le_bytes).collect())
        .collect())
}

fn recall_at_10(found: &[Vec<Hit>], ground_truth: &[Vec<i32>]) -> f64 {
    let mut matched = 0usize;
    for (hits, truth) in found.iter().zip(ground_truth) {
        let truth: Vec<i64> = truth.iter().take(K).map(|id| i64::from(*id)).collect();
        matched += hits.iter().take(K).filter(|hit| truth.contains(&i64::from(hit.slot))).count();
    }
    matched as f64 / (found.len() * K) as f64
}

fn run(
    engine: &str,
    config: IndexConfig,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    ground_truth: &[Vec<i32>],
    options: &Options,
) -> Result<(), Box<dyn Error>> {
    let dimension = base.first().map_or(0, Vec::len);
    let index = Index::new(dimension, Metric::L2, config.clone())?;
    let items: Vec<(SlotId, &[f32])> = (0..).zip(base.iter().map(Vec::as_slice)).collect();
    let started = Instant::now();
    index.upsert_batch(&items)?;
    let build_s = started.elapsed().as_secs_f64();

    let params = SearchParams::top(K);
    let started = Instant::now();
    let mut single_done = 0usize;
    for query in queries {
        index.search(query, &params, None)?;
        single_done += 1;
        if started.elapsed() > options.max_single {
            break;
        }
    }
    let qps_single = single_done as f64 / started.elapsed().as_secs_f64();

    let query_slices: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    let found = index.search_batch(&query_slices, &params, None)?;
    let qps_batch = queries.len() as f64 / started.elapsed().as_secs_f64();

    let line = serde_json::json!({
        "engine": engine,
        "build_s": build_s,
        "qps_single": qps_single,
        "qps_batch": qps_batch,
        "recall_at_10": recall_at_10(&found, ground_truth),
        "memory_bytes": index.memory_bytes(),
        "threads": rayon::current_num_threads(),
        "kernel": kernel_name(),
        "config": format!("{:?}", index.config()),
        "points": base.len(),
        "queries": queries.len(),
        "single_queries_timed": single_done,
    });
    println!("{line}");
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_options()?;
    if let Some(threads) = options.threads {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }
    let base = read_fvecs(&options.base)?;
    let queries = read_fvecs(&options.queries)?;
    let ground_truth = read_ivecs(&options.ground_truth)?;
    if ground_truth.len() < queries.len() {
        return Err("fewer ground-truth rows than queries".into());
    }
    for engine in &options.engines {
        match engine.as_str() {
            "flat" => run("sutazai-flat", IndexConfig::Flat, &base, &queries, &ground_truth, &options)?,
            "hnsw" => {
                let config = IndexConfig::Hnsw {
                    m: options.m,
                    ef_construction: options.ef_construction,
                    ef_search: options.ef_search,
                };
                run("sutazai-hnsw", config, &base, &queries, &ground_truth, &options)?;
            }
            other => return Err(format!("unknown engine {other} (flat, hnsw)").into()),
        }
    }
    Ok(())
}
