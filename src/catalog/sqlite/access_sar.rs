//! Supervisor access: recording search with keyset paging, subject access requests, audit search.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::convert::{collect, first, int, opt_blob, opt_hash32, parse_opt_ts, parse_ts, ts};
use super::recordings::{RECORDING_COLS, read_recording};
use super::trails::{AUDIT_COLS, read_audit};
use crate::audit::AuditEntry;
use crate::catalog::{AuditQuery, CatalogError, RecordingQuery, RecordingRow, SarRow};

fn limit_value(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn search_recordings(
    c: &Connection,
    q: &RecordingQuery,
) -> Result<Vec<RecordingRow>, CatalogError> {
    // one statement per combination of filters, each served by an index whose last columns are
    // (started_at, id), so a page is one index range scan however deep the cursor
    let mut wheres = Vec::new();
    let mut values = Vec::new();
    if let Some(tag) = &q.caller_tag {
        values.push(Value::Blob(tag.to_vec()));
        wheres.push(format!("caller_tag = ?{}", values.len()));
    }
    if let Some(line) = &q.line {
        values.push(Value::Text(line.clone()));
        wheres.push(format!("line = ?{}", values.len()));
    }
    if let Some(agent) = &q.agent {
        values.push(Value::Text(agent.clone()));
        wheres.push(format!("agent = ?{}", values.len()));
    }
    if let Some(queue) = &q.queue {
        values.push(Value::Text(queue.clone()));
        wheres.push(format!("queue = ?{}", values.len()));
    }
    if let Some(from) = &q.from {
        values.push(Value::Text(ts(from)));
        wheres.push(format!("started_at >= ?{}", values.len()));
    }
    if let Some(to) = &q.to {
        values.push(Value::Text(ts(to)));
        wheres.push(format!("started_at < ?{}", values.len()));
    }
    if let Some((at, id)) = &q.after {
        values.push(Value::Text(ts(at)));
        values.push(Value::Text(id.to_string()));
        let n = values.len();
        wheres.push(format!("(started_at, id) > (?{}, ?{n})", n - 1));
    }
    values.push(limit_value(q.limit));
    let filter = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let sql = format!(
        "SELECT {RECORDING_COLS} FROM recordings {filter} ORDER BY started_at, id LIMIT ?{}",
        values.len()
    );
    collect(c, &sql, params_from_iter(values), read_recording)
}

/// The columns a request is created with; [`SAR_COLS`] adds who closed it and why.
const SAR_NEW_COLS: &str = "reference, received_at, due_at, caller_tag, actor, reason, closed_at";
const SAR_COLS: &str =
    "reference, received_at, due_at, caller_tag, actor, reason, closed_at, closed_by, close_reason";

fn read_sar(r: &Row<'_>) -> Result<SarRow, CatalogError> {
    let reference: String = r.get(0)?;
    let what = |col: &'static str| {
        let reference = reference.clone();
        move || format!("sar {reference}: {col}")
    };
    Ok(SarRow {
        received_at: parse_ts(&r.get::<_, String>(1)?, &what("received_at"))?,
        due_at: parse_ts(&r.get::<_, String>(2)?, &what("due_at"))?,
        caller_tag: opt_hash32(r.get(3)?, &what("caller_tag"))?,
        actor: r.get(4)?,
        reason: r.get(5)?,
        closed_at: parse_opt_ts(r.get(6)?, &what("closed_at"))?,
        closed_by: r.get(7)?,
        close_reason: r.get(8)?,
        reference,
    })
}

pub(super) fn record_sar(c: &Connection, s: &SarRow) -> Result<SarRow, CatalogError> {
    c.prepare_cached(&format!(
        "INSERT INTO sars ({SAR_NEW_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (reference) DO NOTHING"
    ))?
    .execute(params![
        s.reference,
        ts(&s.received_at),
        ts(&s.due_at),
        opt_blob(s.caller_tag.as_ref().map(|t| &t[..])),
        s.actor,
        s.reason,
        s.closed_at.as_ref().map(ts),
    ])?;
    sar(c, &s.reference)?.ok_or_else(|| CatalogError::not_found(format!("sar {}", s.reference)))
}

pub(super) fn sar(c: &Connection, reference: &str) -> Result<Option<SarRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {SAR_COLS} FROM sars WHERE reference = ?1"),
        [reference],
        read_sar,
    )
}

pub(super) fn open_sars(c: &Connection, limit: usize) -> Result<Vec<SarRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {SAR_COLS} FROM sars WHERE closed_at IS NULL ORDER BY due_at, reference LIMIT ?1"
        ),
        [limit_value(limit)],
        read_sar,
    )
}

pub(super) fn close_sar(
    c: &Connection,
    reference: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let changed = c
        .prepare_cached(
            "UPDATE sars SET closed_at = ?2 WHERE reference = ?1 AND closed_at IS NULL",
        )?
        .execute(params![reference, ts(&at)])?;
    Ok(changed == 1)
}

pub(super) fn close_sar_by(
    c: &Connection,
    reference: &str,
    at: DateTime<Utc>,
    actor: &str,
    reason: &str,
) -> Result<bool, CatalogError> {
    let changed = c
        .prepare_cached(
            "UPDATE sars SET closed_at = ?2, closed_by = ?3, close_reason = ?4 \
             WHERE reference = ?1 AND closed_at IS NULL",
        )?
        .execute(params![reference, ts(&at), actor, reason])?;
    Ok(changed == 1)
}

pub(super) fn search_audit(
    c: &Connection,
    q: &AuditQuery,
) -> Result<Vec<AuditEntry>, CatalogError> {
    let mut wheres = Vec::new();
    let mut values = vec![Value::Integer(
        int(q.after_seq, "after_seq").unwrap_or(i64::MAX),
    )];
    wheres.push("seq > ?1".to_owned());
    for (col, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("subject", &q.subject),
    ] {
        if let Some(v) = v {
            values.push(Value::Text(v.clone()));
            wheres.push(format!("{col} = ?{}", values.len()));
        }
    }
    if let Some(from) = &q.from {
        values.push(Value::Text(ts(from)));
        wheres.push(format!("at >= ?{}", values.len()));
    }
    if let Some(to) = &q.to {
        values.push(Value::Text(ts(to)));
        wheres.push(format!("at < ?{}", values.len()));
    }
    values.push(limit_value(q.limit));
    let sql = format!(
        "SELECT {AUDIT_COLS} FROM audit WHERE {} ORDER BY seq LIMIT ?{}",
        wheres.join(" AND "),
        values.len()
    );
    collect(c, &sql, params_from_iter(values), read_audit)
}
