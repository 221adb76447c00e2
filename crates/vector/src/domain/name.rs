//! Collection names: `[a-z0-9_-]{1,64}`. A name is also the collection's directory under the data
//! directory, so only a parsed [`CollectionName`] ever becomes a path: no `/`, no `.`, no `..`.

use std::fmt;

use crate::error::VectorError;

/// The longest collection name.
pub const MAX_NAME_BYTES: usize = 64;

/// A valid collection name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectionName(String);

impl CollectionName {
    /// Parses `text`; a bad name is a bad request naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, VectorError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_NAME_BYTES
            && text.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
            });
        if !valid {
            return Err(VectorError::bad_request(
                field,
                format!("must be 1 to {MAX_NAME_BYTES} characters of a-z, 0-9, `_` and `-`"),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use sutazai_types::ServiceErrorCode;

    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            CollectionName::parse("name", "docs_v2-en").map(|name| name.to_string()).ok(),
            Some("docs_v2-en".to_owned())
        );
        assert!(CollectionName::parse("name", &"a".repeat(64)).is_ok());
        for bad in ["", "A", "..", ".", "a/b", "a.b", "é", "a b", &"a".repeat(65)] {
            let Err(error) = CollectionName::parse("name", bad) else { panic!("{bad} accepted") };
            assert_eq!(error.code(), ServiceErrorCode::BadRequest, "{bad}");
            assert!(error.to_string().starts_with("name: "), "{bad}");
        }
    }
}
