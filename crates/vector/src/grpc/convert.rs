//! Contract messages to domain types and back. Every shape error names its field with its place
//! in the request (`points[3].id`, `filter.must[0].range`), as the contract asks.

use chrono::{DateTime, Utc};
use sutazai_proto::json::{from_proto_struct, from_proto_value, to_proto_struct};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::condition::Condition as ConditionKind;
use sutazai_proto::v1::index_config::Kind as IndexKind;
use sutazai_proto::v1::point_id::Kind as PointIdKind;
use sutazai_vector_index::{IndexConfig, Metric};

use crate::domain::collection::CollectionInfo;
use crate::domain::filter::{Condition, Filter, KeyPath, MAX_FILTER_DEPTH, RangeBounds};
use crate::domain::point_id::PointId;
use crate::domain::points::NewPoint;
use crate::domain::state::{ScoredPoint, StoredPoint};
use crate::error::VectorError;

/// The metric of a request; unspecified is a validation failure.
pub(crate) fn metric(value: i32) -> Result<Metric, VectorError> {
    match pb::DistanceMetric::try_from(value) {
        Ok(pb::DistanceMetric::L2) => Ok(Metric::L2),
        Ok(pb::DistanceMetric::Ip) => Ok(Metric::InnerProduct),
        Ok(pb::DistanceMetric::Cosine) => Ok(Metric::Cosine),
        Ok(pb::DistanceMetric::Unspecified) | Err(_) => {
            Err(VectorError::validation("metric", "must be l2, ip or cosine"))
        }
    }
}

fn metric_to_proto(metric: Metric) -> pb::DistanceMetric {
    match metric {
        Metric::L2 => pb::DistanceMetric::L2,
        Metric::InnerProduct => pb::DistanceMetric::Ip,
        Metric::Cosine => pb::DistanceMetric::Cosine,
    }
}

fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The index of a request; unset (or a message without a kind) means the default.
pub(crate) fn index_config(index: Option<pb::IndexConfig>) -> Option<IndexConfig> {
    match index?.kind? {
        IndexKind::Flat(_) => Some(IndexConfig::Flat),
        IndexKind::Ivf(ivf) => {
            Some(IndexConfig::Ivf { nlist: to_usize(ivf.nlist), nprobe: to_usize(ivf.nprobe) })
        }
        IndexKind::Hnsw(hnsw) => Some(IndexConfig::Hnsw {
            m: to_usize(hnsw.m),
            ef_construction: to_usize(hnsw.ef_construction),
            ef_search: to_usize(hnsw.ef_search),
        }),
    }
}

fn index_to_proto(index: &IndexConfig) -> pb::IndexConfig {
    let kind = match *index {
        IndexConfig::Flat => IndexKind::Flat(pb::FlatIndexConfig {}),
        IndexConfig::Ivf { nlist, nprobe } => {
            IndexKind::Ivf(pb::IvfIndexConfig { nlist: to_u32(nlist), nprobe: to_u32(nprobe) })
        }
        IndexConfig::Hnsw { m, ef_construction, ef_search } => IndexKind::Hnsw(pb::HnswIndexConfig {
            m: to_u32(m),
            ef_construction: to_u32(ef_construction),
            ef_search: to_u32(ef_search),
        }),
    };
    pb::IndexConfig { kind: Some(kind) }
}

/// A protobuf timestamp.
pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A collection as the contract describes it.
pub(crate) fn collection(info: CollectionInfo) -> pb::Collection {
    pb::Collection {
        name: info.name.to_string(),
        dimension: to_u32(info.dimension),
        metric: metric_to_proto(info.metric).into(),
        index: Some(index_to_proto(&info.index)),
        point_count: info.point_count,
        memory_bytes: info.memory_bytes,
        created_at: Some(timestamp(info.created_at)),
        last_snapshot_at: info.last_snapshot_at.map(timestamp),
    }
}

/// A required point id at `field`.
pub(crate) fn point_id(field: &str, id: Option<pb::PointId>) -> Result<PointId, VectorError> {
    match id.and_then(|id| id.kind) {
        Some(PointIdKind::Num(number)) => Ok(PointId::Num(number)),
        Some(PointIdKind::Str(text)) => {
            PointId::string(text).map_err(|message| VectorError::validation(field, message))
        }
        None => Err(VectorError::validation(field, "required: a string or an unsigned integer")),
    }
}

/// The contract's form of an id.
pub(crate) fn point_id_to_proto(id: &PointId) -> pb::PointId {
    let kind = match id {
        PointId::Num(number) => PointIdKind::Num(*number),
        PointId::Str(text) => PointIdKind::Str(text.to_string()),
    };
    pb::PointId { kind: Some(kind) }
}

/// The points of an upsert; vectors are checked by the collection, which knows the dimension.
pub(crate) fn points(points: Vec<pb::Point>) -> Result<Vec<NewPoint>, VectorError> {
    let mut converted = Vec::with_capacity(points.len());
    for (position, point) in points.into_iter().enumerate() {
        converted.push(NewPoint {
            id: point_id(&format!("points[{position}].id"), point.id)?,
            vector: point.vector,
            payload: point.payload.as_ref().map(from_proto_struct),
        });
    }
    Ok(converted)
}

/// A stored point.
pub(crate) fn stored_point(point: StoredPoint) -> pb::Point {
    pb::Point {
        id: Some(point_id_to_proto(&point.id)),
        vector: point.vector,
        payload: point.payload.as_ref().map(to_proto_struct),
    }
}

/// A hit.
pub(crate) fn scored_point(hit: ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(point_id_to_proto(&hit.id)),
        score: hit.score,
        payload: hit.payload.as_ref().map(to_proto_struct),
        vector: hit.vector.unwrap_or_default(),
    }
}

/// An optional filter at `filter`.
pub(crate) fn optional_filter(filter: Option<pb::Filter>) -> Result<Option<Filter>, VectorError> {
    filter.map(|filter| self::filter(filter, "filter", 1)).transpose()
}

/// A filter at `at`, nested `depth` levels deep.
pub(crate) fn filter(filter: pb::Filter, at: &str, depth: usize) -> Result<Filter, VectorError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(VectorError::validation(at, format!("nested more than {MAX_FILTER_DEPTH} levels deep")));
    }
    let clause = |conditions: Vec<pb::Condition>, name: &str| -> Result<Vec<Condition>, VectorError> {
        let mut converted = Vec::with_capacity(conditions.len());
        for (position, condition) in conditions.into_iter().enumerate() {
            converted.push(self::condition(condition, &format!("{at}.{name}[{position}]"), depth)?);
        }
        Ok(converted)
    };
    Ok(Filter {
        must: clause(filter.must, "must")?,
        should: clause(filter.should, "should")?,
        must_not: clause(filter.must_not, "must_not")?,
    })
}

fn condition(condition: pb::Condition, at: &str, depth: usize) -> Result<Condition, VectorError> {
    let Some(kind) = condition.condition else {
        return Err(VectorError::validation(at, "needs one of `match`, `in`, `range` and `filter`"));
    };
    // A nested filter has no key; every other condition needs one.
    let key = || {
        KeyPath::parse(&condition.key)
            .map_err(|message| VectorError::validation(format!("{at}.key"), message))
    };
    Ok(match kind {
        ConditionKind::Filter(nested) => Condition::Nested(filter(nested, at, depth + 1)?),
        ConditionKind::Match(value) => {
            check_finite(&value, &format!("{at}.match"))?;
            Condition::Match { key: key()?, value: from_proto_value(&value) }
        }
        ConditionKind::In(list) => {
            for (position, value) in list.values.iter().enumerate() {
                check_finite(value, &format!("{at}.in[{position}]"))?;
            }
            Condition::In { key: key()?, values: list.values.iter().map(from_proto_value).collect() }
        }
        ConditionKind::Range(range) => {
            let key = key()?;
            let bounds = RangeBounds { gt: range.gt, gte: range.gte, lt: range.lt, lte: range.lte };
            bounds.check().map_err(|message| VectorError::validation(format!("{at}.range"), message))?;
            Condition::Range { key, bounds }
        }
    })
}

/// Refuses NaN and infinities anywhere in a filter value: JSON has no such numbers, so they
/// would silently become `null` and match something else than asked.
fn check_finite(value: &prost_types::Value, at: &str) -> Result<(), VectorError> {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::NumberValue(number)) if !number.is_finite() => {
            Err(VectorError::validation(at, "must be a finite number"))
        }
        Some(Kind::ListValue(list)) => {
            for (position, item) in list.values.iter().enumerate() {
                check_finite(item, &format!("{at}[{position}]"))?;
            }
            Ok(())
        }
        Some(Kind::StructValue(fields)) => {
            for (name, item) in &fields.fields {
                check_finite(item, &format!("{at}.{name}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;
    use sutazai_proto::json::to_proto_value;

    use super::*;

    fn nan() -> prost_types::Value {
        prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)) }
    }

    fn infinity() -> prost_types::Value {
        prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(f64::INFINITY)) }
    }

    fn condition_of(key: &str, kind: ConditionKind) -> pb::Condition {
        pb::Condition { key: key.to_owned(), condition: Some(kind) }
    }

    #[test]
    fn filters_convert_and_errors_name_their_place() {
        let converted = filter(
            pb::Filter {
                must: vec![condition_of("a.b", ConditionKind::Match(to_proto_value(&json!(7))))],
                should: vec![condition_of(
                    "",
                    ConditionKind::Filter(pb::Filter {
                        must: vec![condition_of(
                            "c",
                            ConditionKind::In(pb::ValueList { values: vec![to_proto_value(&json!("x"))] }),
                        )],
                        ..pb::Filter::default()
                    }),
                )],
                must_not: vec![condition_of(
                    "d",
                    ConditionKind::Range(pb::Range { gte: Some(1.0), ..pb::Range::default() }),
                )],
            },
            "filter",
            1,
        )
        .unwrap();
        assert!(converted.matches(json!({"a": {"b": 7}, "c": "x", "d": 0}).as_object()));
        assert!(!converted.matches(json!({"a": {"b": 7}, "c": "x", "d": 1}).as_object()));

        let cases = [
            (
                pb::Filter { must: vec![pb::Condition::default()], ..pb::Filter::default() },
                "filter.must[0]: needs one of",
            ),
            (
                pb::Filter {
                    should: vec![condition_of("", ConditionKind::Match(to_proto_value(&json!(1))))],
                    ..pb::Filter::default()
                },
                "filter.should[0].key: must be 1 to",
            ),
            (
                pb::Filter {
                    must_not: vec![condition_of("x", ConditionKind::Range(pb::Range::default()))],
                    ..pb::Filter::default()
                },
                "filter.must_not[0].range: needs at least one",
            ),
            (
                pb::Filter {
                    must: vec![condition_of("x", ConditionKind::Match(nan()))],
                    ..pb::Filter::default()
                },
                "filter.must[0].match: must be a finite number",
            ),
            (
                pb::Filter {
                    should: vec![condition_of(
                        "x",
                        ConditionKind::In(pb::ValueList {
                            values: vec![
                                to_proto_value(&json!(1)),
                                prost_types::Value {
                                    kind: Some(prost_types::value::Kind::ListValue(prost_types::ListValue {
                                        values: vec![to_proto_value(&json!(2)), infinity()],
                                    })),
                                },
                            ],
                        }),
                    )],
                    ..pb::Filter::default()
                },
                "filter.should[0].in[1][1]: must be a finite number",
            ),
        ];
        for (bad, expected) in cases {
            let error = filter(bad, "filter", 1).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error}");
        }
        let mut deep = pb::Filter::default();
        for _ in 0..=MAX_FILTER_DEPTH {
            deep = pb::Filter {
                must: vec![condition_of("", ConditionKind::Filter(deep))],
                ..pb::Filter::default()
            };
        }
        assert!(filter(deep, "filter", 1).unwrap_err().to_string().contains("nested more than"));
    }

    #[test]
    fn ids_and_metrics() {
        assert_eq!(
            point_id("id", Some(pb::PointId { kind: Some(PointIdKind::Num(7)) })).unwrap(),
            PointId::Num(7)
        );
        assert_eq!(
            point_id("id", Some(pb::PointId { kind: Some(PointIdKind::Str("7".to_owned())) })).unwrap(),
            PointId::Str("7".into())
        );
        assert_eq!(
            point_id("points[2].id", None).unwrap_err().to_string(),
            "points[2].id: required: a string or an unsigned integer"
        );
        assert!(point_id("id", Some(pb::PointId { kind: Some(PointIdKind::Str(String::new())) })).is_err());
        assert!(metric(0).is_err());
        assert!(matches!(metric(3).unwrap(), Metric::Cosine));
        assert!(index_config(Some(pb::IndexConfig { kind: None })).is_none());
    }
}
