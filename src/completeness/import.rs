//! Call-detail files: for platforms that send no events, a CSV of the calls they handled, so each
//! is accounted for (`callvault completeness import FILE`).
//!
//! The file has a header row. Columns are found by name ([`Columns`], each renameable), in any
//! order, others ignored:
//!
//! | column (default name) | required | format |
//! |---|---|---|
//! | `call_id` | yes | the platform's call id, as its events and media streams name it |
//! | `start` | yes | RFC 3339 (`2026-11-22T10:00:00Z`, `...+01:00`), or `YYYY-MM-DD HH:MM:SS` in UTC |
//! | `end` | no | the same; not before `start` |
//! | `line` | no | the dialled number |
//! | `caller` | no | read and not stored: a call known only from a file keeps no personal data |
//!
//! A row that cannot be read is reported with its line number and skipped; the others are noted.
//! Noting is a merge that never overwrites what is known, so importing a file twice changes
//! nothing.

use std::io::Read;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::catalog::{CallNote, CallSource, Catalog, CatalogError};
use crate::domain::CallId;

/// The names of the columns in a file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// The call id.
    pub call_id: String,
    /// When the call started.
    pub start: String,
    /// When it ended.
    pub end: String,
    /// The dialled line.
    pub line: String,
    /// The caller's number (read, not stored).
    pub caller: String,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            call_id: "call_id".to_owned(),
            start: "start".to_owned(),
            end: "end".to_owned(),
            line: "line".to_owned(),
            caller: "caller".to_owned(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Calls noted.
    pub noted: u64,
    /// Rows skipped: the line number in the file and why.
    pub rejected: Vec<(u64, String)>,
}

/// Why a file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header lacks a required column.
    #[error("the header has no {0:?} column")]
    MissingColumn(String),
    /// The file is not CSV.
    #[error("not a CSV file: {0}")]
    Csv(#[from] csv::Error),
    /// The catalog failed; rows before the failure were noted.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A time as a call-detail file writes it.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| format!("{s:?} is not a time (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC)"))
}

/// Notes every readable row of `input` as a call known from an import, seen at `now`.
pub async fn import(
    catalog: &dyn Catalog,
    input: impl Read,
    columns: &Columns,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers()?.clone();
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let id_col = find(&columns.call_id)
        .ok_or_else(|| ImportError::MissingColumn(columns.call_id.clone()))?;
    let start_col =
        find(&columns.start).ok_or_else(|| ImportError::MissingColumn(columns.start.clone()))?;
    let (end_col, line_col) = (find(&columns.end), find(&columns.line));
    let mut report = ImportReport::default();
    for record in reader.records() {
        report.rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                report.rejected.push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line_no = record.position().map_or(0, csv::Position::line);
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let note = (|| -> Result<CallNote, String> {
            let id: CallId = field(Some(id_col))
                .ok_or("no call id")?
                .parse()
                .map_err(|e| format!("call id: {e}"))?;
            let start = parse_time(field(Some(start_col)).ok_or("no start")?)?;
            let end = field(end_col).map(parse_time).transpose()?;
            if end.is_some_and(|e| e < start) {
                return Err("the end is before the start".to_owned());
            }
            Ok(CallNote {
                started_at: Some(start),
                ended_at: end,
                line: field(line_col).map(str::to_owned),
                ..CallNote::seen(id, CallSource::Import, now)
            })
        })();
        match note {
            Ok(note) => {
                catalog.note_call(&note).await?;
                report.noted += 1;
            }
            Err(why) => report.rejected.push((line_no, why)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SqliteCatalog;

    #[tokio::test]
    async fn rows_are_noted_by_column_name_and_bad_rows_named_by_line() {
        let catalog = SqliteCatalog::open_in_memory().expect("catalog");
        let now = parse_time("2026-11-23T00:00:00Z").expect("time");
        let file = "caller,Call_ID,start,end,line,agent\n\
                    +441234567890,cdr-1,2026-11-22T10:00:00Z,2026-11-22T10:05:00Z,+441744000001,a1\n\
                    ,cdr-2,2026-11-22 11:00:00,,,\n\
                    +44,cdr-3,yesterday,,,\n\
                    +44,,2026-11-22T10:00:00Z,,,\n\
                    +44,cdr-4,2026-11-22T10:00:00Z,2026-11-22T09:00:00Z,,\n\
                    \"+44 1234\",\"cdr-5\",\"2026-11-22T10:00:00+01:00\",\"2026-11-22T09:30:00Z\",,\n";
        let report = import(&catalog, file.as_bytes(), &Columns::default(), now)
            .await
            .expect("import");
        assert_eq!((report.rows, report.noted), (6, 3));
        let lines: Vec<u64> = report.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6], "{:?}", report.rejected);
        assert!(report.rejected[0].1.contains("not a time"));
        assert!(report.rejected[2].1.contains("before the start"));
        let c1 = catalog
            .call(&"cdr-1".parse().expect("id"))
            .await
            .expect("read")
            .expect("noted");
        assert_eq!(
            c1.started_at,
            Some(parse_time("2026-11-22T10:00:00Z").expect("t"))
        );
        assert_eq!(
            c1.ended_at,
            Some(parse_time("2026-11-22T10:05:00Z").expect("t"))
        );
        assert_eq!(c1.line.as_deref(), Some("+441744000001"));
        assert_eq!(c1.sources, CallSource::Import.bit());
        let c5 = catalog
            .call(&"cdr-5".parse().expect("id"))
            .await
            .expect("read")
            .expect("noted");
        assert_eq!(c5.at, parse_time("2026-11-22T09:00:00Z").expect("t"));
        // twice: nothing changes
        let again = import(&catalog, file.as_bytes(), &Columns::default(), now)
            .await
            .expect("import");
        assert_eq!(again.noted, 3);
        let c1_again = catalog
            .call(&"cdr-1".parse().expect("id"))
            .await
            .expect("read")
            .expect("noted");
        assert_eq!(c1_again, c1);
    }

    #[tokio::test]
    async fn a_file_without_the_required_columns_is_refused_whole() {
        let catalog = SqliteCatalog::open_in_memory().expect("catalog");
        let now = parse_time("2026-11-23T00:00:00Z").expect("time");
        let err = import(
            &catalog,
            "id,start\nx,2026-11-22T10:00:00Z\n".as_bytes(),
            &Columns::default(),
            now,
        )
        .await
        .expect_err("no call_id column");
        assert!(matches!(err, ImportError::MissingColumn(c) if c == "call_id"));
        // renamed columns
        let columns = Columns {
            call_id: "id".into(),
            start: "begin".into(),
            ..Columns::default()
        };
        let report = import(
            &catalog,
            "id,begin\nx,2026-11-22T10:00:00Z\n".as_bytes(),
            &columns,
            now,
        )
        .await
        .expect("import");
        assert_eq!(report.noted, 1);
    }
}
