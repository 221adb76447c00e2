//! What an index is asked to be (metric, index kind and its build parameters) and what a search asks
//! for (k, ef, nprobe), with the defaults and the accepted ranges.

use crate::error::IndexError;

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance; smaller is better. Scores are the squared distance (no root).
    L2,
    /// Dot product; larger is better.
    InnerProduct,
    /// Cosine similarity; larger is better. Vectors and queries are normalized to unit length on the
    /// way in and compared by dot product, so stored vectors read back normalized.
    Cosine,
}

impl Metric {
    /// Whether a larger score is a better match (`false` only for [`Metric::L2`]).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

/// Default HNSW out-degree (`M`); layer 0 keeps `2 * M` links per node.
pub const DEFAULT_HNSW_M: usize = 16;
/// Default HNSW candidate-list size while inserting.
pub const DEFAULT_HNSW_EF_CONSTRUCTION: usize = 200;
/// Default HNSW candidate-list size while searching (raised to `k` when `k` is larger). On 20k
/// uniform 32-d points recall@10 is 0.94 at 64, 0.98 at 96 and 0.99 at 128; clustered 64-d data
/// reaches 1.0 from 48 (the `sweep_hnsw_ef` test prints these).
pub const DEFAULT_HNSW_EF_SEARCH: usize = 96;
/// Default number of IVF lists (k-means centroids).
pub const DEFAULT_IVF_NLIST: usize = 256;

/// Default number of IVF lists probed per query for `nlist` lists: half of them, at least one.
///
/// The default has to reach recall@10 >= 0.95 on any data, and uniform data is IVF's worst case:
/// on 20k uniform 32-d points with 256 lists, recall@10 is 0.74 at nprobe 32, 0.89 at 64, 0.96 at
/// 96 and 0.98 at 128. Clustered (embedding-like) data reaches 1.0 at 16 already, so services that
/// know their data should lower `nprobe`, per index or per search.
pub fn default_ivf_nprobe(nlist: usize) -> usize {
    nlist.div_ceil(2).max(1)
}

/// Largest accepted vector dimension.
pub const MAX_DIMENSION: usize = 65_536;

/// Which index structure to build, with its parameters. A field of `0` means "use the default";
/// [`IndexConfig::with_defaults`] fills them in and [`crate::Index::config`] reports the filled-in
/// values.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexConfig {
    /// Exact search over every vector.
    Flat,
    /// Inverted file over k-means lists. Answers exactly (like `Flat`) until trained; see
    /// [`crate::Index::train`].
    Ivf {
        /// Number of lists (centroids), 1..=65536.
        nlist: usize,
        /// Lists probed per query unless [`SearchParams::nprobe`] overrides it, 1..=nlist.
        nprobe: usize,
    },
    /// Hierarchical navigable small-world graph.
    Hnsw {
        /// Links per node on the upper layers (layer 0 keeps `2 * m`), 2..=128.
        m: usize,
        /// Candidate-list size while inserting, 1..=10000 (raised to `m` when smaller).
        ef_construction: usize,
        /// Candidate-list size while searching unless [`SearchParams::ef`] overrides it, 1..=10000.
        ef_search: usize,
    },
}

impl IndexConfig {
    /// Replaces every `0` field by its default (`DEFAULT_*` constants, [`default_ivf_nprobe`]).
    pub fn with_defaults(self) -> Self {
        fn or_default(value: usize, default: usize) -> usize {
            if value == 0 { default } else { value }
        }
        match self {
            IndexConfig::Flat => IndexConfig::Flat,
            IndexConfig::Ivf { nlist, nprobe } => {
                let nlist = or_default(nlist, DEFAULT_IVF_NLIST);
                IndexConfig::Ivf { nlist, nprobe: or_default(nprobe, default_ivf_nprobe(nlist)) }
            }
            IndexConfig::Hnsw { m, ef_construction, ef_search } => IndexConfig::Hnsw {
                m: or_default(m, DEFAULT_HNSW_M),
                ef_construction: or_default(ef_construction, DEFAULT_HNSW_EF_CONSTRUCTION),
                ef_search: or_default(ef_search, DEFAULT_HNSW_EF_SEARCH),
            },
        }
    }

    /// Checks every field against its range; the error names the first field out of range. Call
    /// after [`IndexConfig::with_defaults`] (a `0` is out of range here).
    pub fn validate(&self) -> Result<(), IndexError> {
        match *self {
            IndexConfig::Flat => Ok(()),
            IndexConfig::Ivf { nlist, nprobe } => {
                check_range("nlist", nlist, 1, 65_536)?;
                check_range("nprobe", nprobe, 1, nlist)
            }
            IndexConfig::Hnsw { m, ef_construction, ef_search } => {
                check_range("m", m, 2, 128)?;
                check_range("ef_construction", ef_construction, 1, 10_000)?;
                check_range("ef_search", ef_search, 1, 10_000)
            }
        }
    }
}

fn check_range(field: &'static str, value: usize, min: usize, max: usize) -> Result<(), IndexError> {
    if value < min || value > max {
        return Err(IndexError::invalid(field, format!("{value} is outside {min}..={max}")));
    }
    Ok(())
}

/// What one search asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// How many hits to return at most; `0` returns none.
    pub k: usize,
    /// HNSW candidate-list size for this search (1..=10000), raised to `k` when smaller; `None`
    /// uses the index's `ef_search`. Ignored by other index kinds.
    pub ef: Option<usize>,
    /// IVF lists to probe for this search (1..; values above `nlist` probe every list); `None`
    /// uses the index's `nprobe`. Ignored by other index kinds.
    pub nprobe: Option<usize>,
}

impl SearchParams {
    /// `k` hits with the index's own `ef` / `nprobe`.
    pub fn top(k: usize) -> Self {
        Self { k, ef: None, nprobe: None }
    }

    pub(crate) fn validate(&self) -> Result<(), IndexError> {
        if let Some(ef) = self.ef {
            check_range("ef", ef, 1, 10_000)?;
        }
        if self.nprobe == Some(0) {
            return Err(IndexError::invalid("nprobe", "must be at least 1"));
        }
        Ok(())
    }
}

/// Options beyond [`IndexConfig`], for [`crate::Index::with_options`]. `Default` gives what
/// [`crate::Index::new`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// HNSW answers by an exact scan while it holds at most this many live points: a scan of a few
    /// hundred vectors costs about what a graph search does, and it is exact. `0` always uses the
    /// graph (tests use that to exercise it on small indexes).
    pub exact_search_below: usize,
    /// IVF trains automatically once it holds this many points; `None` means
    /// `max(39 * nlist, 1000)` (39 points per centroid is the least k-means is given in FAISS too).
    pub ivf_train_threshold: Option<usize>,
    /// Seed for HNSW level draws and k-means sampling, so builds are reproducible.
    pub seed: u64,
}

/// Default for [`IndexOptions::exact_search_below`].
pub const DEFAULT_EXACT_SEARCH_BELOW: usize = 512;

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            exact_search_below: DEFAULT_EXACT_SEARCH_BELOW,
            ivf_train_threshold: None,
            seed: 0x5eed_cafe_f00d_d00d,
        }
    }
}
