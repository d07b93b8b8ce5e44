//! Between rows and SQL values, and between driver errors and [`CatalogError`]: the storage
//! conventions of the module docs, in one place.

use chrono::{DateTime, SubsecRound, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Row, Statement};

use crate::catalog::CatalogError;
use crate::domain::RecordingId;

/// The parameters of one statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        CatalogError::Backend(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for CatalogError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CatalogError::Backend(Box::new(e))
    }
}

/// Maps a constraint violation to `NotFound` (a missing parent) or `Conflict` (a duplicate); any
/// other error stays a backend error.
pub(super) fn on_constraint(
    e: tokio_postgres::Error,
    missing: &str,
    duplicate: &str,
) -> CatalogError {
    match e.code() {
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => CatalogError::not_found(missing),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => CatalogError::conflict(duplicate),
        _ => e.into(),
    }
}

/// A time as stored: cut to the microsecond (what `timestamptz` keeps), never rounded up.
pub(super) fn ts(t: &DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(super) fn opt_ts(t: &Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.as_ref().map(ts)
}

/// An unsigned number on its way in: `Invalid` past `i64::MAX`.
pub(super) fn int(v: u64, what: &str) -> Result<i64, CatalogError> {
    i64::try_from(v).map_err(|_| CatalogError::invalid(format!("{what}: {v} is out of range")))
}

/// A limit as PostgreSQL takes it.
pub(super) fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// Decoders on the way out. `what` names the row and column for a `Corrupt` error; it is a closure
// so the name is only formatted when something is wrong.

pub(super) type What<'a> = &'a dyn Fn() -> String;

/// Column `idx` of `r`: `Corrupt` if it does not decode as `T` (a NULL where none may be, a column
/// of another type: the schema was changed outside callvault).
pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, idx: usize) -> Result<T, CatalogError> {
    r.try_get(idx).map_err(|e| {
        let name = r.columns().get(idx).map_or("?", |c| c.name());
        CatalogError::corrupt(format!("column {name}: {e}"))
    })
}

pub(super) fn recording_id(r: &Row, idx: usize) -> Result<RecordingId, CatalogError> {
    Ok(RecordingId::from_uuid(get(r, idx)?))
}

pub(super) fn hash32(b: Vec<u8>, what: What<'_>) -> Result<[u8; 32], CatalogError> {
    <[u8; 32]>::try_from(b).map_err(|_| CatalogError::corrupt(format!("{}: not 32 bytes", what())))
}

pub(super) fn opt_hash32(
    b: Option<Vec<u8>>,
    what: What<'_>,
) -> Result<Option<[u8; 32]>, CatalogError> {
    b.map(|b| hash32(b, what)).transpose()
}

pub(super) fn uint<T: TryFrom<i64>>(v: i64, what: What<'_>) -> Result<T, CatalogError> {
    T::try_from(v).map_err(|_| CatalogError::corrupt(format!("{}: {v} is out of range", what())))
}

pub(super) fn parse<T: std::str::FromStr>(s: &str, what: What<'_>) -> Result<T, CatalogError> {
    s.parse()
        .map_err(|_| CatalogError::corrupt(format!("{}: {s:?} is not valid", what())))
}

// Statements, prepared once per connection and cached by the pool.

async fn prepared<C: GenericClient>(c: &C, sql: &str) -> Result<Statement, CatalogError> {
    Ok(c.prepare_cached(sql).await?)
}

/// Runs a statement; returns how many rows it changed.
pub(super) async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.execute(&stmt, params).await
}

/// Reads every row of a query with `read`.
pub(super) async fn collect<C: GenericClient, T>(
    c: &C,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Result<T, CatalogError>,
) -> Result<Vec<T>, CatalogError> {
    let stmt = prepared(c, sql).await?;
    c.query(&stmt, params).await?.iter().map(read).collect()
}

/// Reads the first row of a query, if any, with `read`.
pub(super) async fn first<C: GenericClient, T>(
    c: &C,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Result<T, CatalogError>,
) -> Result<Option<T>, CatalogError> {
    let stmt = prepared(c, sql).await?;
    c.query_opt(&stmt, params)
        .await?
        .as_ref()
        .map(read)
        .transpose()
}

/// The one value of a query that always returns one row (a count, an `EXISTS`).
pub(super) async fn scalar<C: GenericClient, T>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<T, CatalogError>
where
    T: for<'a> FromSql<'a>,
{
    let stmt = prepared(c, sql).await?;
    let row = c.query_one(&stmt, params).await?;
    get(&row, 0)
}
