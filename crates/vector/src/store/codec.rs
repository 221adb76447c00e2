//! The little-endian binary encoding shared by log records and snapshots: fixed-width integers,
//! f32 vectors, point ids and JSON payloads. Decoding never trusts a length it reads: every read
//! is bounds-checked and a short buffer is an error, not a panic.

use serde_json::{Map, Value};

use crate::domain::point_id::{MAX_ID_BYTES, PointId};

const ID_TAG_NUM: u8 = 0;
const ID_TAG_STR: u8 = 1;
const PAYLOAD_NONE: u8 = 0;
const PAYLOAD_JSON: u8 = 1;

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    /// An encoder whose buffer starts with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { bytes: Vec::with_capacity(capacity) }
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Raw bytes, no length.
    pub fn put_raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// One byte.
    pub fn put_u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    /// A u32.
    pub fn put_u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// A u64.
    pub fn put_u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// An i64.
    pub fn put_i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// A count or length as u32; `None` when it does not fit.
    pub fn put_len(&mut self, length: usize) -> Option<()> {
        self.put_u32(u32::try_from(length).ok()?);
        Some(())
    }

    /// The components of a vector (its length is known from the collection's dimension).
    pub fn put_vector(&mut self, vector: &[f32]) {
        self.bytes.reserve(vector.len() * 4);
        for component in vector {
            self.bytes.extend_from_slice(&component.to_le_bytes());
        }
    }

    /// A point id: a tag, then the number or the length-prefixed UTF-8 text.
    pub fn put_point_id(&mut self, id: &PointId) {
        match id {
            PointId::Num(number) => {
                self.put_u8(ID_TAG_NUM);
                self.put_u64(*number);
            }
            PointId::Str(text) => {
                self.put_u8(ID_TAG_STR);
                // Ids are at most MAX_ID_BYTES long, so the length fits a u16.
                let length = u16::try_from(text.len()).unwrap_or(u16::MAX);
                self.bytes.extend_from_slice(&length.to_le_bytes());
                self.bytes.extend_from_slice(text.as_bytes());
            }
        }
    }

    /// An optional JSON object, as a flag and length-prefixed JSON text. `None` when the JSON is
    /// larger than a u32 length can say.
    pub fn put_payload(&mut self, payload: Option<&Map<String, Value>>) -> Option<()> {
        let Some(payload) = payload else {
            self.put_u8(PAYLOAD_NONE);
            return Some(());
        };
        self.put_u8(PAYLOAD_JSON);
        let length_at = self.bytes.len();
        self.put_u32(0);
        // Serializing a map of JSON values into memory cannot fail.
        serde_json::to_writer(&mut self.bytes, payload).ok()?;
        let length = u32::try_from(self.bytes.len() - length_at - 4).ok()?;
        self.bytes[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
        Some(())
    }
}

/// Reads encoded values from a buffer, front to back.
#[derive(Debug)]
pub struct Decoder<'bytes> {
    bytes: &'bytes [u8],
    position: usize,
}

impl<'bytes> Decoder<'bytes> {
    /// A decoder at the start of `bytes`.
    pub fn new(bytes: &'bytes [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Whether every byte was read.
    pub fn is_at_end(&self) -> bool {
        self.position == self.bytes.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// The next `length` bytes.
    pub fn take(&mut self, length: usize) -> Result<&'bytes [u8], String> {
        let end =
            self.position.checked_add(length).filter(|end| *end <= self.bytes.len()).ok_or_else(|| {
                format!("needs {length} bytes at offset {}, {} left", self.position, self.remaining())
            })?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0_u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    /// A u32.
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A u64.
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An i64.
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A u32 count or length.
    pub fn length(&mut self) -> Result<usize, String> {
        usize::try_from(self.u32()?).map_err(|_| "length does not fit in memory".to_owned())
    }

    /// `dimension` f32 components.
    pub fn vector(&mut self, dimension: usize) -> Result<Vec<f32>, String> {
        let byte_count = dimension.checked_mul(4).ok_or("dimension overflows")?;
        let bytes = self.take(byte_count)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect())
    }

    /// A point id.
    pub fn point_id(&mut self) -> Result<PointId, String> {
        match self.u8()? {
            ID_TAG_NUM => Ok(PointId::Num(self.u64()?)),
            ID_TAG_STR => {
                let length = usize::from(u16::from_le_bytes(self.array()?));
                if length == 0 || length > MAX_ID_BYTES {
                    return Err(format!("string id of {length} bytes"));
                }
                let text = std::str::from_utf8(self.take(length)?).map_err(|_| "string id is not utf-8")?;
                Ok(PointId::Str(text.into()))
            }
            tag => Err(format!("unknown id tag {tag}")),
        }
    }

    /// An optional JSON object.
    pub fn payload(&mut self) -> Result<Option<Map<String, Value>>, String> {
        match self.u8()? {
            PAYLOAD_NONE => Ok(None),
            PAYLOAD_JSON => {
                let length = self.length()?;
                let text = self.take(length)?;
                serde_json::from_slice(text).map(Some).map_err(|error| format!("payload json: {error}"))
            }
            tag => Err(format!("unknown payload tag {tag}")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;

    #[test]
    fn values_round_trip() {
        let payload = json!({"a": [1, "two", {"three": 3.5}], "b": null}).as_object().cloned().unwrap();
        let mut encoder = Encoder::default();
        encoder.put_u8(9);
        encoder.put_u32(70_000);
        encoder.put_u64(u64::MAX);
        encoder.put_i64(-5);
        encoder.put_vector(&[1.5, -0.0, f32::MIN_POSITIVE]);
        encoder.put_point_id(&PointId::Num(42));
        encoder.put_point_id(&PointId::Str("doc-1".into()));
        encoder.put_payload(Some(&payload)).unwrap();
        encoder.put_payload(None).unwrap();
        let bytes = encoder.into_bytes();
        let mut decoder = Decoder::new(&bytes);
        assert_eq!(decoder.u8().unwrap(), 9);
        assert_eq!(decoder.u32().unwrap(), 70_000);
        assert_eq!(decoder.u64().unwrap(), u64::MAX);
        assert_eq!(decoder.i64().unwrap(), -5);
        assert_eq!(decoder.vector(3).unwrap(), [1.5, -0.0, f32::MIN_POSITIVE]);
        assert_eq!(decoder.point_id().unwrap(), PointId::Num(42));
        assert_eq!(decoder.point_id().unwrap(), PointId::Str("doc-1".into()));
        assert_eq!(decoder.payload().unwrap(), Some(payload));
        assert_eq!(decoder.payload().unwrap(), None);
        assert!(decoder.is_at_end());
    }

    #[test]
    fn short_or_bad_input_is_an_error() {
        assert!(Decoder::new(&[1, 2]).u32().is_err());
        assert!(Decoder::new(&[7]).point_id().is_err());
        assert!(Decoder::new(&[1, 0, 0]).point_id().is_err(), "empty string id");
        assert!(Decoder::new(&[1, 5, 0, 0, 0, b'{']).payload().is_err());
        assert!(Decoder::new(&[0; 7]).vector(2).is_err());
    }
}
