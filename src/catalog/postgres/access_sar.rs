//! Supervisor access: recording search with keyset paging, subject access requests, audit search.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::convert::{collect, execute, first, get, opt_hash32, opt_ts, sql_limit, ts};
use super::recordings::{RECORDING_COLS, read_recording};
use super::trails::{AUDIT_COLS, read_audit};
use crate::audit::AuditEntry;
use crate::catalog::{AuditQuery, CatalogError, RecordingQuery, RecordingRow, SarRow};

/// The parameters of a statement built filter by filter, numbered as they are added.
#[derive(Default)]
struct Filters {
    wheres: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filters {
    /// Adds `value` as the next parameter and the condition `make` writes with its placeholder.
    fn add(&mut self, value: impl ToSql + Sync + Send + 'static, make: impl Fn(&str) -> String) {
        self.values.push(Box::new(value));
        self.wheres.push(make(&format!("${}", self.values.len())));
    }

    /// The placeholder of one more parameter, not a condition (a limit).
    fn param(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    fn clause(&self) -> String {
        if self.wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.wheres.join(" AND "))
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(super) async fn search_recordings(
    c: &Object,
    q: &RecordingQuery,
) -> Result<Vec<RecordingRow>, CatalogError> {
    // one statement per combination of filters, each served by an index whose last columns are
    // (started_at, id), so a page is one index range scan however deep the cursor
    let mut f = Filters::default();
    if let Some(tag) = &q.caller_tag {
        f.add(tag.to_vec(), |p| format!("caller_tag = {p}"));
    }
    if let Some(line) = &q.line {
        f.add(line.clone(), |p| format!("line = {p}"));
    }
    if let Some(agent) = &q.agent {
        f.add(agent.clone(), |p| format!("agent = {p}"));
    }
    if let Some(queue) = &q.queue {
        f.add(queue.clone(), |p| format!("queue = {p}"));
    }
    if let Some(from) = &q.from {
        f.add(ts(from), |p| format!("started_at >= {p}"));
    }
    if let Some(to) = &q.to {
        f.add(ts(to), |p| format!("started_at < {p}"));
    }
    if let Some((at, id)) = &q.after {
        let at = f.param(ts(at));
        f.add(id.as_uuid(), |p| format!("(started_at, id) > ({at}, {p})"));
    }
    let filter = f.clause();
    let limit = f.param(sql_limit(q.limit));
    let sql = format!(
        "SELECT {RECORDING_COLS} FROM recordings {filter} ORDER BY started_at, id LIMIT {limit}"
    );
    collect(c, &sql, &f.params(), read_recording).await
}

/// The columns a request is created with; [`SAR_COLS`] adds who closed it and why.
const SAR_NEW_COLS: &str = "reference, received_at, due_at, caller_tag, actor, reason, closed_at";
const SAR_COLS: &str =
    "reference, received_at, due_at, caller_tag, actor, reason, closed_at, closed_by, close_reason";

fn read_sar(r: &Row) -> Result<SarRow, CatalogError> {
    let reference: String = get(r, 0)?;
    let caller_tag = opt_hash32(get(r, 3)?, &|| format!("sar {reference}: caller_tag"))?;
    Ok(SarRow {
        received_at: get(r, 1)?,
        due_at: get(r, 2)?,
        caller_tag,
        actor: get(r, 4)?,
        reason: get(r, 5)?,
        closed_at: get(r, 6)?,
        closed_by: get(r, 7)?,
        close_reason: get(r, 8)?,
        reference,
    })
}

pub(super) async fn record_sar(c: &Object, s: &SarRow) -> Result<SarRow, CatalogError> {
    let tag = s.caller_tag.as_ref().map(|t| &t[..]);
    execute(
        c,
        &format!(
            "INSERT INTO sars ({SAR_NEW_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (reference) DO NOTHING"
        ),
        &[
            &s.reference,
            &ts(&s.received_at),
            &ts(&s.due_at),
            &tag,
            &s.actor,
            &s.reason,
            &opt_ts(&s.closed_at),
        ],
    )
    .await?;
    sar(c, &s.reference)
        .await?
        .ok_or_else(|| CatalogError::not_found(format!("sar {}", s.reference)))
}

pub(super) async fn sar(c: &Object, reference: &str) -> Result<Option<SarRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {SAR_COLS} FROM sars WHERE reference = $1"),
        &[&reference],
        read_sar,
    )
    .await
}

pub(super) async fn open_sars(c: &Object, limit: usize) -> Result<Vec<SarRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {SAR_COLS} FROM sars WHERE closed_at IS NULL ORDER BY due_at, reference LIMIT $1"
        ),
        &[&sql_limit(limit)],
        read_sar,
    )
    .await
}

pub(super) async fn close_sar(
    c: &Object,
    reference: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let changed = execute(
        c,
        "UPDATE sars SET closed_at = $2 WHERE reference = $1 AND closed_at IS NULL",
        &[&reference, &ts(&at)],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn close_sar_by(
    c: &Object,
    reference: &str,
    at: DateTime<Utc>,
    actor: &str,
    reason: &str,
) -> Result<bool, CatalogError> {
    let changed = execute(
        c,
        "UPDATE sars SET closed_at = $2, closed_by = $3, close_reason = $4 \
         WHERE reference = $1 AND closed_at IS NULL",
        &[&reference, &ts(&at), &actor, &reason],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn search_audit(
    c: &Object,
    q: &AuditQuery,
) -> Result<Vec<AuditEntry>, CatalogError> {
    let mut f = Filters::default();
    f.add(i64::try_from(q.after_seq).unwrap_or(i64::MAX), |p| {
        format!("seq > {p}")
    });
    for (col, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("subject", &q.subject),
    ] {
        if let Some(v) = v {
            f.add(v.clone(), |p| format!("{col} = {p}"));
        }
    }
    if let Some(from) = &q.from {
        f.add(ts(from), |p| format!("at >= {p}"));
    }
    if let Some(to) = &q.to {
        f.add(ts(to), |p| format!("at < {p}"));
    }
    let filter = f.clause();
    let limit = f.param(sql_limit(q.limit));
    let sql = format!("SELECT {AUDIT_COLS} FROM audit {filter} ORDER BY seq LIMIT {limit}");
    collect(c, &sql, &f.params(), read_audit).await
}
