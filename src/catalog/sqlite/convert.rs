//! Between rows and SQL values: the storage conventions of the module docs, in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, Params, Row, ffi};

use crate::catalog::CatalogError;

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        CatalogError::Backend(Box::new(e))
    }
}

/// Maps a constraint violation to `NotFound` (a missing parent) or `Conflict` (a duplicate); any
/// other error stays a backend error.
pub(super) fn on_constraint(e: rusqlite::Error, missing: &str, duplicate: &str) -> CatalogError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::ConstraintViolation {
            match f.extended_code {
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return CatalogError::not_found(missing),
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return CatalogError::conflict(duplicate);
                }
                _ => {}
            }
        }
    }
    e.into()
}

/// A time as stored: RFC 3339, UTC, six fractional digits, `Z`.
pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn opt_ts(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map_or(Value::Null, |t| Value::Text(ts(t)))
}

pub(super) fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.to_owned()))
}

pub(super) fn opt_blob(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::Blob(b.to_vec()))
}

/// An unsigned number on its way in: `Invalid` past `i64::MAX`.
pub(super) fn int(v: u64, what: &str) -> Result<i64, CatalogError> {
    i64::try_from(v).map_err(|_| CatalogError::invalid(format!("{what}: {v} is out of range")))
}

/// A limit as SQLite takes it.
pub(super) fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// Decoders on the way out. `what` names the row and column for a `Corrupt` error; it is a closure
// so the name is only formatted when something is wrong.

pub(super) type What<'a> = &'a dyn Fn() -> String;

pub(super) fn parse_ts(s: &str, what: What<'_>) -> Result<DateTime<Utc>, CatalogError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CatalogError::corrupt(format!("{}: not a time", what())))
}

pub(super) fn parse_opt_ts(
    s: Option<String>,
    what: What<'_>,
) -> Result<Option<DateTime<Utc>>, CatalogError> {
    s.map(|s| parse_ts(&s, what)).transpose()
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

/// Reads every row of a query with `read`.
pub(super) fn collect<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&Row<'_>) -> Result<T, CatalogError>,
) -> Result<Vec<T>, CatalogError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(read(r)?);
    }
    Ok(out)
}

/// Reads the first row of a query, if any, with `read`.
pub(super) fn first<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&Row<'_>) -> Result<T, CatalogError>,
) -> Result<Option<T>, CatalogError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(read).transpose()
}

/// Whether the recording with this id (as text) exists.
pub(super) fn recording_exists(c: &Connection, id: &str) -> Result<bool, CatalogError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM recordings WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?)
}
