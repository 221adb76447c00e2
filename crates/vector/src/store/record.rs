//! Log records: what one write did, encoded once by the request that makes it and decoded on
//! replay. A record is a whole request (an upsert batch, a list of ids, a filter), so a batch is
//! replayed all or nothing, exactly as it was acknowledged.
//!
//! A delete-by-filter is logged as its filter, not as the ids it removed: the writer applies
//! records in log order, so replaying the filter over the replayed state removes the same points.

use crate::domain::filter::Filter;
use crate::domain::point_id::PointId;
use crate::domain::points::NewPoint;

use super::codec::{Decoder, Encoder};

const KIND_UPSERT: u8 = 1;
const KIND_DELETE_IDS: u8 = 2;
const KIND_DELETE_FILTER: u8 = 3;

/// One logged write.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    /// Points inserted or replaced.
    Upsert(Vec<NewPoint>),
    /// Points removed by id.
    DeleteIds(Vec<PointId>),
    /// Points removed by payload filter.
    DeleteFilter(Filter),
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the write is larger than one log record can hold (4 GiB)")]
pub struct RecordTooLarge;

impl LogRecord {
    /// The record body (without the frame the log adds).
    pub fn encode(&self) -> Result<Vec<u8>, RecordTooLarge> {
        match self {
            Self::Upsert(points) => encode_upsert(points),
            Self::DeleteIds(ids) => encode_delete_ids(ids),
            Self::DeleteFilter(filter) => encode_delete_filter(filter),
        }
    }

    /// Reads a record body; vectors have `dimension` components.
    pub fn decode(body: &[u8], dimension: usize) -> Result<Self, String> {
        let mut decoder = Decoder::new(body);
        let record = match decoder.u8()? {
            KIND_UPSERT => {
                let count = decoder.length()?;
                let mut points = Vec::with_capacity(count.min(decoder.remaining()));
                for _ in 0..count {
                    let id = decoder.point_id()?;
                    let vector = decoder.vector(dimension)?;
                    let payload = decoder.payload()?;
                    points.push(NewPoint { id, vector, payload });
                }
                Self::Upsert(points)
            }
            KIND_DELETE_IDS => {
                let count = decoder.length()?;
                let mut ids = Vec::with_capacity(count.min(decoder.remaining()));
                for _ in 0..count {
                    ids.push(decoder.point_id()?);
                }
                Self::DeleteIds(ids)
            }
            KIND_DELETE_FILTER => {
                let length = decoder.length()?;
                let json = decoder.take(length)?;
                Self::DeleteFilter(
                    serde_json::from_slice(json).map_err(|error| format!("filter json: {error}"))?,
                )
            }
            kind => return Err(format!("unknown record kind {kind}")),
        };
        if !decoder.is_at_end() {
            return Err(format!("{} bytes after the record", decoder.remaining()));
        }
        Ok(record)
    }
}

/// Encodes an upsert without cloning its points.
pub fn encode_upsert(points: &[NewPoint]) -> Result<Vec<u8>, RecordTooLarge> {
    let vector_bytes: usize = points.iter().map(|point| point.vector.len() * 4 + 16).sum();
    let mut encoder = Encoder::with_capacity(5 + vector_bytes);
    encoder.put_u8(KIND_UPSERT);
    encoder.put_len(points.len()).ok_or(RecordTooLarge)?;
    for point in points {
        encoder.put_point_id(&point.id);
        encoder.put_vector(&point.vector);
        encoder.put_payload(point.payload.as_ref()).ok_or(RecordTooLarge)?;
    }
    Ok(encoder.into_bytes())
}

/// Encodes a delete by ids.
pub fn encode_delete_ids(ids: &[PointId]) -> Result<Vec<u8>, RecordTooLarge> {
    let mut encoder = Encoder::with_capacity(5 + ids.len() * 9);
    encoder.put_u8(KIND_DELETE_IDS);
    encoder.put_len(ids.len()).ok_or(RecordTooLarge)?;
    for id in ids {
        encoder.put_point_id(id);
    }
    Ok(encoder.into_bytes())
}

/// Encodes a delete by filter.
pub fn encode_delete_filter(filter: &Filter) -> Result<Vec<u8>, RecordTooLarge> {
    // A filter of JSON values always serializes.
    let json = serde_json::to_vec(filter).map_err(|_| RecordTooLarge)?;
    let mut encoder = Encoder::with_capacity(5 + json.len());
    encoder.put_u8(KIND_DELETE_FILTER);
    encoder.put_len(json.len()).ok_or(RecordTooLarge)?;
    encoder.put_raw(&json);
    Ok(encoder.into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;
    use crate::domain::filter::{Condition, KeyPath};

    #[test]
    fn records_round_trip() {
        let records = [
            LogRecord::Upsert(vec![
                NewPoint { id: PointId::Num(1), vector: vec![0.5, 1.0], payload: None },
                NewPoint {
                    id: PointId::Str("a".into()),
                    vector: vec![-1.0, 2.0],
                    payload: json!({"k": "v"}).as_object().cloned(),
                },
            ]),
            LogRecord::DeleteIds(vec![PointId::Num(3), PointId::Str("3".into())]),
            LogRecord::DeleteFilter(Filter {
                must: vec![Condition::Match { key: KeyPath::parse("k").unwrap(), value: json!("v") }],
                ..Filter::default()
            }),
        ];
        for record in records {
            let body = record.encode().unwrap();
            assert_eq!(LogRecord::decode(&body, 2).unwrap(), record);
        }
    }

    #[test]
    fn damaged_bodies_are_errors() {
        let body = LogRecord::DeleteIds(vec![PointId::Num(3)]).encode().unwrap();
        assert!(LogRecord::decode(&body[..body.len() - 1], 2).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(LogRecord::decode(&longer, 2).is_err());
        assert!(LogRecord::decode(&[99], 2).is_err());
        // A count far beyond the bytes present must not allocate for it.
        assert!(LogRecord::decode(&[KIND_UPSERT, 255, 255, 255, 255], 2).is_err());
    }
}
