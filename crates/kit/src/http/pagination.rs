//! List pagination as API.md specifies: `?skip=0&limit=50`, limit 1..=1000 (else 422), answered
//! as `{"items":[...],"total":N,"skip":S,"limit":L}`.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::ApiError;

/// The largest page.
pub const MAX_LIMIT: i64 = 1000;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 50;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub skip: i64,
    /// Items to return.
    pub limit: i64,
}

#[derive(Deserialize)]
struct PageQuery {
    skip: Option<i64>,
    limit: Option<i64>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<PageQuery>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::validation("skip", rejection.body_text()))?;
        let skip = query.skip.unwrap_or(0);
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if skip < 0 {
            return Err(ApiError::validation("skip", "must be 0 or more"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        Ok(Self { skip, limit })
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct PageOf<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many exist in all.
    pub total: i64,
    /// As requested.
    pub skip: i64,
    /// As requested.
    pub limit: i64,
}

impl<T> PageOf<T> {
    /// Wraps items of `page`.
    pub fn new(items: Vec<T>, total: i64, page: Page) -> Self {
        Self { items, total, skip: page.skip, limit: page.limit }
    }
}
