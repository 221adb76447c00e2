//! The SutazAI vector index engine: exact (Flat), IVF-Flat and HNSW indexes over squared L2, inner
//! product and cosine, with filtered search, concurrent mutation, tombstones and compaction.
//!
//! This crate has no I/O. The `vector` service owns ids, persistence and transport; it allocates
//! dense [`SlotId`]s (reusing freed ones) and maps its external ids to them.
//!
//! ```
//! use sutazai_vector_index::{Index, IndexConfig, Metric, SearchParams};
//!
//! let index = Index::new(2, Metric::L2, IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 })?;
//! index.upsert(0, &[0.0, 0.0])?;
//! index.upsert(1, &[1.0, 1.0])?;
//! let hits = index.search(&[0.9, 0.9], &SearchParams::top(1), None)?;
//! assert_eq!(hits[0].slot, 1);
//! # Ok::<(), sutazai_vector_index::IndexError>(())
//! ```
//!
//! Layout: `config` (what to build), `index` (the public handle), one module per index kind
//! (`flat`, `ivf`, `hnsw/`), `distance` + `simd` (kernels, chosen at run time: AVX-512, AVX2+FMA
//! or portable; `simd` holds the crate's only `unsafe`), `scan` (exact scans of contiguous rows,
//! including the screened batch scan), `kmeans`, `topk` (ranking), `rng`, `sync`.
//!
//! Parallel work (batch search, batch upsert, training, compaction) runs on rayon's global pool;
//! size it with `RAYON_NUM_THREADS` or `rayon::ThreadPoolBuilder::build_global`.

mod config;
mod distance;
mod error;
mod flat;
mod hnsw;
mod index;
mod ivf;
mod kmeans;
mod rng;
mod scan;
mod simd;
mod sync;
mod topk;

pub use config::{
    DEFAULT_EXACT_SEARCH_BELOW, DEFAULT_HNSW_EF_CONSTRUCTION, DEFAULT_HNSW_EF_SEARCH, DEFAULT_HNSW_M,
    DEFAULT_IVF_NLIST, IndexConfig, IndexOptions, MAX_DIMENSION, Metric, SearchParams, default_ivf_nprobe,
};
pub use distance::{inner_product, kernel_name, l2_squared, normalized};
pub use error::IndexError;
pub use index::{Hit, Index};

/// Position of a vector in an index. The service allocates slots densely and reuses freed ones;
/// the index stores by slot, so sparse or huge slot numbers waste memory. `SlotId::MAX` is reserved.
pub type SlotId = u32;

/// A search filter: `true` for slots that may be returned. `Index::search` takes
/// `Option<&(dyn Fn(SlotId) -> bool + Sync)>`, which is `Option<&SlotFilter<'_>>`.
pub type SlotFilter<'a> = dyn Fn(SlotId) -> bool + Sync + 'a;
