//! Offset paging of list requests: `limit` 0 asks for the default, at most [`MAX_LIMIT`].

use super::validation::ValidationError;

/// Items per page when the request says 0.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 1000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items skipped from the start.
    pub skip: u32,
    /// Items returned at most.
    pub limit: u32,
}

impl Page {
    /// Applies the default and checks the bound.
    pub fn new(skip: u32, limit: u32) -> Result<Self, ValidationError> {
        let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
        if limit > MAX_LIMIT {
            return Err(ValidationError::new("page.limit", format!("must be at most {MAX_LIMIT}")));
        }
        Ok(Self { skip, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_takes_the_default_and_large_is_refused() {
        assert_eq!(Page::new(5, 0), Ok(Page { skip: 5, limit: 50 }));
        assert_eq!(Page::new(0, 1000).map(|page| page.limit), Ok(1000));
        assert_eq!(Page::new(0, 1001).unwrap_err().field, "page.limit");
    }
}
