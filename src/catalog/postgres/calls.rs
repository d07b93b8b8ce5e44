//! The call roster and its completeness states (issue 16).

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::connect::Locks;
use super::convert::{
    collect, execute, first, get, int, opt_ts, parse, scalar, sql_limit, ts, uint,
};
use super::trails::{insert_audit, insert_ledger};
use crate::catalog::{
    CallAssessment, CallFilter, CallNote, CallQuery, CallRow, CallSettlement, CallTotals,
    CatalogError,
};
use crate::domain::completeness::CompletenessState;
use crate::domain::{CallId, RecordingId};

const CALL_COLS: &str = "call_id, sources, first_seen, at, started_at, ended_at, duration_ms, \
     line, recording_id, state, reason, missing_ms, detail, checked_at, settled_at";

fn read_call(r: &Row) -> Result<CallRow, CatalogError> {
    let id: String = get(r, 0)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("call {id}: {col}")
    };
    let state: Option<String> = get(r, 9)?;
    let assessment = match state {
        None => None,
        Some(state) => Some(CallAssessment {
            state: parse::<CompletenessState>(&state, &what("state"))?,
            reason: get::<Option<String>>(r, 10)?.unwrap_or_default(),
            missing_ms: get::<Option<i64>>(r, 11)?
                .map(|v| uint(v, &what("missing_ms")))
                .transpose()?,
            detail: get::<Option<String>>(r, 12)?.unwrap_or_default(),
            checked_at: get::<Option<DateTime<Utc>>>(r, 13)?
                .ok_or_else(|| CatalogError::corrupt(what("checked_at")()))?,
        }),
    };
    Ok(CallRow {
        call_id: parse(&id, &what("call_id"))?,
        sources: uint(i64::from(get::<i32>(r, 1)?), &what("sources"))?,
        first_seen: get(r, 2)?,
        at: get(r, 3)?,
        started_at: get(r, 4)?,
        ended_at: get(r, 5)?,
        duration_ms: get::<Option<i64>>(r, 6)?
            .map(|v| uint(v, &what("duration_ms")))
            .transpose()?,
        line: get(r, 7)?,
        recording_id: get::<Option<uuid::Uuid>>(r, 8)?.map(RecordingId::from_uuid),
        assessment,
        settled_at: get(r, 14)?,
    })
}

pub(super) async fn note_call(c: &Object, n: &CallNote) -> Result<(), CatalogError> {
    let duration = n.duration_ms.map(|d| int(d, "call duration")).transpose()?;
    let bit = i32::try_from(n.source.bit()).unwrap_or(i32::MAX);
    let (seen, started, ended) = (ts(&n.seen_at), opt_ts(&n.started_at), opt_ts(&n.ended_at));
    let at = started.unwrap_or(seen);
    execute(
        c,
        "INSERT INTO calls (call_id, sources, first_seen, at, started_at, ended_at, duration_ms, line)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (call_id) DO UPDATE SET
             sources = calls.sources | EXCLUDED.sources,
             at = coalesce(calls.started_at, EXCLUDED.started_at, calls.at),
             started_at = coalesce(calls.started_at, EXCLUDED.started_at),
             ended_at = coalesce(calls.ended_at, EXCLUDED.ended_at),
             duration_ms = coalesce(calls.duration_ms, EXCLUDED.duration_ms),
             line = coalesce(calls.line, EXCLUDED.line)",
        &[
            &n.call_id.as_str(),
            &bit,
            &seen,
            &at,
            &started,
            &ended,
            &duration,
            &n.line,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn call(c: &Object, id: &CallId) -> Result<Option<CallRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {CALL_COLS} FROM calls WHERE call_id = $1"),
        &[&id.as_str()],
        read_call,
    )
    .await
}

pub(super) async fn unsettled_calls(
    c: &Object,
    after: Option<&CallId>,
    limit: usize,
) -> Result<Vec<CallRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {CALL_COLS} FROM calls WHERE settled_at IS NULL AND call_id > $1
             ORDER BY call_id LIMIT $2"
        ),
        &[&after.map_or("", |a| a.as_str()), &sql_limit(limit)],
        read_call,
    )
    .await
}

async fn call_exists<C: deadpool_postgres::GenericClient>(
    c: &C,
    id: &CallId,
) -> Result<bool, CatalogError> {
    scalar(
        c,
        "SELECT EXISTS (SELECT 1 FROM calls WHERE call_id = $1)",
        &[&id.as_str()],
    )
    .await
}

pub(super) async fn assess_call(
    c: &Object,
    id: &CallId,
    a: &CallAssessment,
) -> Result<bool, CatalogError> {
    let missing = a.missing_ms.map(|m| int(m, "missing_ms")).transpose()?;
    let checked = ts(&a.checked_at);
    let n = execute(
        c,
        "UPDATE calls SET state = $2, reason = $3, missing_ms = $4, detail = $5, checked_at = $6
         WHERE call_id = $1 AND settled_at IS NULL",
        &[
            &id.as_str(),
            &a.state.as_str(),
            &a.reason,
            &missing,
            &a.detail,
            &checked,
        ],
    )
    .await?;
    if n == 0 && !call_exists(c, id).await? {
        return Err(CatalogError::not_found(format!("call {id}")));
    }
    Ok(n > 0)
}

pub(super) async fn settle_call(
    c: &mut Object,
    locks: Locks,
    s: &CallSettlement,
) -> Result<bool, CatalogError> {
    let tx = c.transaction().await?;
    let a = &s.assessment;
    let missing = a.missing_ms.map(|m| int(m, "missing_ms")).transpose()?;
    let checked = ts(&a.checked_at);
    let n = execute(
        &tx,
        "UPDATE calls SET state = $2, reason = $3, missing_ms = $4, detail = $5, checked_at = $6,
             settled_at = $6
         WHERE call_id = $1 AND settled_at IS NULL",
        &[
            &s.call_id.as_str(),
            &a.state.as_str(),
            &a.reason,
            &missing,
            &a.detail,
            &checked,
        ],
    )
    .await?;
    if n == 0 {
        if !call_exists(&tx, &s.call_id).await? {
            return Err(CatalogError::not_found(format!("call {}", s.call_id)));
        }
        return Ok(false);
    }
    if let Some(entry) = &s.ledger {
        insert_ledger(&tx, entry.clone()).await?;
    }
    insert_audit(&tx, locks, s.audit.clone()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn call_totals(
    c: &Object,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<CallTotals, CatalogError> {
    let (from, to) = (opt_ts(&from), opt_ts(&to));
    let rows = collect(
        c,
        "SELECT CASE WHEN settled_at IS NULL THEN NULL ELSE state END AS s, count(*)
         FROM calls WHERE ($1::timestamptz IS NULL OR at >= $1)
             AND ($2::timestamptz IS NULL OR at < $2)
         GROUP BY s",
        &[&from, &to],
        |r| Ok((get::<Option<String>>(r, 0)?, get::<i64>(r, 1)?)),
    )
    .await?;
    let mut totals = CallTotals::default();
    for (state, n) in rows {
        let n: u64 = uint(n, &|| "call totals: count".to_owned())?;
        match state {
            None => totals.pending += n,
            Some(s) => {
                let state = parse(&s, &|| "call totals: state".to_owned())?;
                *totals.settled.entry(state).or_default() += n;
            }
        }
    }
    Ok(totals)
}

pub(super) async fn calls(c: &Object, q: &CallQuery) -> Result<Vec<CallRow>, CatalogError> {
    let (from, to) = (opt_ts(&q.from), opt_ts(&q.to));
    let after_at = q.after.as_ref().map(|(at, _)| ts(at));
    let after_id = q.after.as_ref().map_or("", |(_, id)| id.as_str());
    let limit = sql_limit(q.limit);
    let states: Vec<&str> = match q.filter {
        CallFilter::State(s) => vec![s.as_str()],
        CallFilter::NeedsAttention => CompletenessState::ALL
            .into_iter()
            .filter(|s| s.needs_attention())
            .map(CompletenessState::as_str)
            .collect(),
        CallFilter::Pending => Vec::new(),
    };
    let filter = match q.filter {
        CallFilter::Pending => "settled_at IS NULL",
        _ => "settled_at IS NOT NULL AND state = ANY($6)",
    };
    let sql = format!(
        "SELECT {CALL_COLS} FROM calls
         WHERE {filter} AND ($1::timestamptz IS NULL OR at >= $1)
             AND ($2::timestamptz IS NULL OR at < $2)
             AND ($3::timestamptz IS NULL OR (at, call_id) > ($3, $4::text))
         ORDER BY at, call_id LIMIT $5"
    );
    if matches!(q.filter, CallFilter::Pending) {
        collect(
            c,
            &sql,
            &[&from, &to, &after_at, &after_id, &limit],
            read_call,
        )
        .await
    } else {
        collect(
            c,
            &sql,
            &[&from, &to, &after_at, &after_id, &limit, &states],
            read_call,
        )
        .await
    }
}
