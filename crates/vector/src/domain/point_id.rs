//! Point ids: a caller-chosen string (1 to 256 bytes) or unsigned integer. `"7"` and `7` are
//! different ids. Ids order numbers first (numerically), then strings (bytewise), which is the
//! "ties by id" order of search results.

use std::fmt;

/// The longest string id.
pub const MAX_ID_BYTES: usize = 256;

/// A point's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A string id of 1 to [`MAX_ID_BYTES`] bytes.
    Str(Box<str>),
}

impl PointId {
    /// A string id, refused when empty or longer than [`MAX_ID_BYTES`].
    pub fn string(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.is_empty() || text.len() > MAX_ID_BYTES {
            return Err(format!("must be 1 to {MAX_ID_BYTES} bytes"));
        }
        Ok(Self::Str(text.into_boxed_str()))
    }

    /// Bytes the id holds on the heap, for the memory estimate.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Num(_) => 0,
            Self::Str(text) => text.len(),
        }
    }
}

/// Numbers print bare and strings quoted, so `7` and `"7"` read differently in messages.
impl fmt::Display for PointId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(number) => write!(formatter, "{number}"),
            Self::Str(text) => write!(formatter, "{text:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_differ_and_order() {
        let text = PointId::string("7").ok();
        assert_ne!(text, Some(PointId::Num(7)));
        assert!(PointId::string("").is_err());
        assert!(PointId::string("x".repeat(257)).is_err());
        assert!(PointId::string("x".repeat(256)).is_ok());
        let mut ids =
            vec![PointId::Str("b".into()), PointId::Num(10), PointId::Str("a".into()), PointId::Num(2)];
        ids.sort();
        assert_eq!(
            ids,
            [PointId::Num(2), PointId::Num(10), PointId::Str("a".into()), PointId::Str("b".into())]
        );
        assert_eq!(PointId::Num(7).to_string(), "7");
        assert_eq!(PointId::Str("7".into()).to_string(), "\"7\"");
    }
}
