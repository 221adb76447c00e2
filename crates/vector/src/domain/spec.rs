//! What a collection is made of: its dimension, metric and index configuration, checked once when
//! the collection is created, and how engine errors read as client errors.

use sutazai_vector_index::{IndexConfig, IndexError, Metric};

use crate::error::VectorError;

/// The largest dimension a collection may have.
pub const MAX_DIMENSION: u64 = 65_536;

/// A collection's fixed shape.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    /// Components per vector.
    pub dimension: usize,
    /// How closeness is measured.
    pub metric: Metric,
    /// The index, with server defaults filled in.
    pub index: IndexConfig,
}

impl CollectionSpec {
    /// Checks `dimension` (1 ..= 65536) and the index parameters; no index means HNSW with its
    /// defaults, and zero parameters take the defaults.
    pub fn new(dimension: u64, metric: Metric, index: Option<IndexConfig>) -> Result<Self, VectorError> {
        if !(1..=MAX_DIMENSION).contains(&dimension) {
            return Err(VectorError::validation(
                "dimension",
                format!("must be between 1 and {MAX_DIMENSION}"),
            ));
        }
        let dimension = usize::try_from(dimension).map_err(|_| {
            VectorError::validation("dimension", format!("must be between 1 and {MAX_DIMENSION}"))
        })?;
        let index =
            index.unwrap_or(IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 }).with_defaults();
        index.validate().map_err(|error| engine_error(error, "index."))?;
        Ok(Self { dimension, metric, index })
    }
}

/// An engine error as the client sees it: every engine error is about its input (the engine has
/// no I/O), so each is a validation failure naming the field (under `field_prefix`).
pub fn engine_error(error: IndexError, field_prefix: &str) -> VectorError {
    match error {
        IndexError::InvalidParameter { field, reason } => {
            VectorError::validation(format!("{field_prefix}{field}"), reason)
        }
        IndexError::DimensionMismatch { expected, actual } => VectorError::validation(
            format!("{field_prefix}vector"),
            format!("expected {expected} components, got {actual}"),
        ),
        IndexError::NonFinite { index } => VectorError::validation(
            format!("{field_prefix}vector"),
            format!("component {index} is not a finite number"),
        ),
    }
}

/// The lowercase name of a metric, as logs and the metadata file spell it.
pub fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::L2 => "l2",
        Metric::InnerProduct => "ip",
        Metric::Cosine => "cosine",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use sutazai_types::ServiceErrorCode;

    use super::*;

    #[test]
    fn dimension_bounds() {
        for bad in [0, MAX_DIMENSION + 1] {
            let error = CollectionSpec::new(bad, Metric::L2, None).unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
            assert!(error.to_string().starts_with("dimension: "), "{error}");
        }
        assert!(CollectionSpec::new(MAX_DIMENSION, Metric::L2, Some(IndexConfig::Flat)).is_ok());
    }

    #[test]
    fn unset_index_is_hnsw_with_defaults() {
        let spec = CollectionSpec::new(4, Metric::Cosine, None).unwrap();
        let IndexConfig::Hnsw { m, ef_construction, ef_search } = spec.index else {
            panic!("not hnsw: {:?}", spec.index)
        };
        assert_eq!(m, 16);
        assert!(ef_construction > 0 && ef_search > 0);
    }
}
