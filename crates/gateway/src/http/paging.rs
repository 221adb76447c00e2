//! Paging across the gRPC boundary: a REST `Page` as the contracts' `PageRequest`, and a
//! downstream's items and `PageInfo` back as a REST `PageOf`.

use sutazai_kit::http::{Page, PageOf};
use sutazai_proto::v1 as pb;

/// The contracts' page request; `Page` already bounds both numbers, so the fallbacks only keep the
/// narrowing total.
pub(crate) fn page_request(page: Page) -> pb::PageRequest {
    pb::PageRequest {
        skip: u32::try_from(page.skip).unwrap_or(u32::MAX),
        limit: u32::try_from(page.limit).unwrap_or(1000),
    }
}

/// One page of what a downstream listed, each item converted to its view; the total is 0 when the
/// answer carries no `PageInfo`.
pub(crate) fn page_of<Item, View: From<Item>>(
    items: Vec<Item>,
    info: Option<pb::PageInfo>,
    page: Page,
) -> PageOf<View> {
    let total = info.map(|info| i64::try_from(info.total).unwrap_or(i64::MAX)).unwrap_or(0);
    PageOf::new(items.into_iter().map(View::from).collect(), total, page)
}
