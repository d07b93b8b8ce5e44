//! The completeness report: totals per state over a period, and the calls a person must look at
//! (settled calls that are neither `recorded` nor `withheld`), for the API and the CLI alike.

use chrono::{DateTime, Utc};

use crate::catalog::{CallFilter, CallQuery, CallRow, CallTotals, Catalog, CatalogError};
use crate::domain::CallId;

/// A page of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Calls of the period by state.
    pub totals: CallTotals,
    /// The calls listed, in `(at, call_id)` order.
    pub calls: Vec<CallRow>,
    /// Where the next page starts, when there may be one.
    pub next: Option<(DateTime<Utc>, CallId)>,
}

/// One page of the report over `[from, to)`: the totals, and up to `limit` calls of `filter`
/// after `after`.
pub async fn page(
    catalog: &dyn Catalog,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    filter: CallFilter,
    after: Option<(DateTime<Utc>, CallId)>,
    limit: usize,
) -> Result<Report, CatalogError> {
    let totals = catalog.call_totals(from, to).await?;
    let calls = catalog
        .calls(&CallQuery {
            from,
            to,
            filter,
            after,
            limit,
        })
        .await?;
    let next = (calls.len() == limit)
        .then(|| calls.last().map(|c| (c.at, c.call_id.clone())))
        .flatten();
    Ok(Report {
        totals,
        calls,
        next,
    })
}

/// The whole report over `[from, to)`: the totals and every call of `filter`, read a page at a
/// time.
pub async fn all(
    catalog: &dyn Catalog,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    filter: CallFilter,
) -> Result<Report, CatalogError> {
    const PAGE: usize = 1000;
    let mut report = page(catalog, from, to, filter, None, PAGE).await?;
    while let Some(after) = report.next.take() {
        let more = catalog
            .calls(&CallQuery {
                from,
                to,
                filter,
                after: Some(after),
                limit: PAGE,
            })
            .await?;
        report.next = (more.len() == PAGE)
            .then(|| more.last().map(|c| (c.at, c.call_id.clone())))
            .flatten();
        report.calls.extend(more);
    }
    Ok(report)
}
