//! `collection.json`: what a collection is (name, dimension, metric, index with defaults filled
//! in, creation time), written once when the collection is created and read on every start.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sutazai_vector_index::{IndexConfig, Metric};

use crate::domain::spec::CollectionSpec;
use crate::error::StoreError;

const FILE_NAME: &str = "collection.json";
/// The version of this file's layout; a newer one is refused rather than misread.
const FORMAT: u32 = 1;

/// The metadata file of a collection directory.
pub fn meta_path(directory: &Path) -> PathBuf {
    directory.join(FILE_NAME)
}

/// The stored description of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMeta {
    format: u32,
    /// The collection's name (also its directory's name).
    pub name: String,
    dimension: usize,
    metric: MetricName,
    index: IndexSpec,
    /// When the collection was created.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MetricName {
    L2,
    Ip,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum IndexSpec {
    Flat,
    Ivf { nlist: usize, nprobe: usize },
    Hnsw { m: usize, ef_construction: usize, ef_search: usize },
}

impl CollectionMeta {
    /// The metadata of a new collection.
    pub fn new(name: &str, spec: &CollectionSpec, created_at: DateTime<Utc>) -> Self {
        let metric = match spec.metric {
            Metric::L2 => MetricName::L2,
            Metric::InnerProduct => MetricName::Ip,
            Metric::Cosine => MetricName::Cosine,
        };
        let index = match spec.index {
            IndexConfig::Flat => IndexSpec::Flat,
            IndexConfig::Ivf { nlist, nprobe } => IndexSpec::Ivf { nlist, nprobe },
            IndexConfig::Hnsw { m, ef_construction, ef_search } => {
                IndexSpec::Hnsw { m, ef_construction, ef_search }
            }
        };
        Self { format: FORMAT, name: name.to_owned(), dimension: spec.dimension, metric, index, created_at }
    }

    /// The collection's shape.
    pub fn spec(&self) -> CollectionSpec {
        let metric = match self.metric {
            MetricName::L2 => Metric::L2,
            MetricName::Ip => Metric::InnerProduct,
            MetricName::Cosine => Metric::Cosine,
        };
        let index = match self.index {
            IndexSpec::Flat => IndexConfig::Flat,
            IndexSpec::Ivf { nlist, nprobe } => IndexConfig::Ivf { nlist, nprobe },
            IndexSpec::Hnsw { m, ef_construction, ef_search } => {
                IndexConfig::Hnsw { m, ef_construction, ef_search }
            }
        };
        CollectionSpec { dimension: self.dimension, metric, index }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and a timestamp always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads the metadata of `directory`.
    pub fn read(directory: &Path) -> Result<Self, StoreError> {
        let path = meta_path(directory);
        let bytes = std::fs::read(&path).map_err(|error| StoreError::io("read", &path, error))?;
        let meta: Self =
            serde_json::from_slice(&bytes).map_err(|error| StoreError::corrupt(&path, error.to_string()))?;
        if meta.format != FORMAT {
            return Err(StoreError::corrupt(&path, format!("format {} is not {FORMAT}", meta.format)));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use super::*;

    #[test]
    fn metadata_round_trips() {
        let directory = tempfile::tempdir().unwrap();
        let spec =
            CollectionSpec::new(8, Metric::InnerProduct, Some(IndexConfig::Ivf { nlist: 4, nprobe: 2 }))
                .unwrap();
        let meta = CollectionMeta::new("docs", &spec, Utc::now());
        std::fs::write(meta_path(directory.path()), meta.to_bytes()).unwrap();
        let read = CollectionMeta::read(directory.path()).unwrap();
        assert_eq!(read, meta);
        assert_eq!(read.spec().dimension, 8);
        assert!(matches!(read.spec().index, IndexConfig::Ivf { nlist: 4, nprobe: 2 }));
        std::fs::write(meta_path(directory.path()), b"{\"format\": 2}").unwrap();
        assert!(CollectionMeta::read(directory.path()).is_err());
    }
}
