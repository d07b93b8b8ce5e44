//! The call roster and its completeness states (issue 16).

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::convert::{
    collect, first, int, opt_text, opt_ts, parse, parse_opt_ts, parse_ts, sql_limit, ts, uint,
};
use super::trails::{insert_audit, insert_ledger};
use crate::catalog::{
    CallAssessment, CallFilter, CallNote, CallQuery, CallRow, CallSettlement, CallTotals,
    CatalogError,
};
use crate::domain::CallId;
use crate::domain::completeness::CompletenessState;

const CALL_COLS: &str = "call_id, sources, first_seen, at, started_at, ended_at, duration_ms, \
     line, recording_id, state, reason, missing_ms, detail, checked_at, settled_at";

fn read_call(r: &Row<'_>) -> Result<CallRow, CatalogError> {
    let id: String = r.get(0)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("call {id}: {col}")
    };
    let state: Option<String> = r.get(9)?;
    let assessment = match state {
        None => None,
        Some(state) => Some(CallAssessment {
            state: parse::<CompletenessState>(&state, &what("state"))?,
            reason: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            missing_ms: r
                .get::<_, Option<i64>>(11)?
                .map(|v| uint(v, &what("missing_ms")))
                .transpose()?,
            detail: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
            checked_at: parse_opt_ts(r.get(13)?, &what("checked_at"))?
                .ok_or_else(|| CatalogError::corrupt(what("checked_at")()))?,
        }),
    };
    Ok(CallRow {
        call_id: parse(&id, &what("call_id"))?,
        sources: uint(r.get(1)?, &what("sources"))?,
        first_seen: parse_ts(&r.get::<_, String>(2)?, &what("first_seen"))?,
        at: parse_ts(&r.get::<_, String>(3)?, &what("at"))?,
        started_at: parse_opt_ts(r.get(4)?, &what("started_at"))?,
        ended_at: parse_opt_ts(r.get(5)?, &what("ended_at"))?,
        duration_ms: r
            .get::<_, Option<i64>>(6)?
            .map(|v| uint(v, &what("duration_ms")))
            .transpose()?,
        line: r.get(7)?,
        recording_id: r
            .get::<_, Option<String>>(8)?
            .map(|v| parse(&v, &what("recording_id")))
            .transpose()?,
        assessment,
        settled_at: parse_opt_ts(r.get(14)?, &what("settled_at"))?,
    })
}

pub(super) fn note_call(c: &Connection, n: &CallNote) -> Result<(), CatalogError> {
    let duration = n.duration_ms.map(|d| int(d, "call duration")).transpose()?;
    let at = ts(&n.started_at.unwrap_or(n.seen_at));
    c.prepare_cached(
        "INSERT INTO calls (call_id, sources, first_seen, at, started_at, ended_at, duration_ms, line)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (call_id) DO UPDATE SET
             sources = sources | excluded.sources,
             at = coalesce(started_at, excluded.started_at, at),
             started_at = coalesce(started_at, excluded.started_at),
             ended_at = coalesce(ended_at, excluded.ended_at),
             duration_ms = coalesce(duration_ms, excluded.duration_ms),
             line = coalesce(line, excluded.line)",
    )?
    .execute(params![
        n.call_id.as_str(),
        n.source.bit(),
        ts(&n.seen_at),
        at,
        opt_ts(&n.started_at),
        opt_ts(&n.ended_at),
        duration,
        opt_text(n.line.as_deref()),
    ])?;
    Ok(())
}

pub(super) fn call(c: &Connection, id: &CallId) -> Result<Option<CallRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {CALL_COLS} FROM calls WHERE call_id = ?1"),
        [id.as_str()],
        read_call,
    )
}

pub(super) fn unsettled_calls(
    c: &Connection,
    after: Option<&CallId>,
    limit: usize,
) -> Result<Vec<CallRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {CALL_COLS} FROM calls WHERE settled_at IS NULL AND call_id > ?1
             ORDER BY call_id LIMIT ?2"
        ),
        params![after.map_or("", |a| a.as_str()), sql_limit(limit)],
        read_call,
    )
}

fn assessment_values(a: &CallAssessment) -> Result<[Value; 5], CatalogError> {
    Ok([
        Value::Text(a.state.as_str().to_owned()),
        Value::Text(a.reason.clone()),
        a.missing_ms
            .map(|m| int(m, "missing_ms"))
            .transpose()?
            .map_or(Value::Null, Value::Integer),
        Value::Text(a.detail.clone()),
        Value::Text(ts(&a.checked_at)),
    ])
}

fn call_exists(c: &Connection, id: &CallId) -> Result<bool, CatalogError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM calls WHERE call_id = ?1)",
        [id.as_str()],
        |r| r.get(0),
    )?)
}

pub(super) fn assess_call(
    c: &mut Connection,
    id: &CallId,
    a: &CallAssessment,
) -> Result<bool, CatalogError> {
    let [state, reason, missing, detail, checked] = assessment_values(a)?;
    let n = c
        .prepare_cached(
            "UPDATE calls SET state = ?2, reason = ?3, missing_ms = ?4, detail = ?5, checked_at = ?6
             WHERE call_id = ?1 AND settled_at IS NULL",
        )?
        .execute(params![id.as_str(), state, reason, missing, detail, checked])?;
    if n == 0 && !call_exists(c, id)? {
        return Err(CatalogError::not_found(format!("call {id}")));
    }
    Ok(n > 0)
}

pub(super) fn settle_call(c: &mut Connection, s: &CallSettlement) -> Result<bool, CatalogError> {
    let tx = c.savepoint()?;
    let [state, reason, missing, detail, checked] = assessment_values(&s.assessment)?;
    let n = tx
        .prepare_cached(
            "UPDATE calls SET state = ?2, reason = ?3, missing_ms = ?4, detail = ?5, checked_at = ?6,
                 settled_at = ?6
             WHERE call_id = ?1 AND settled_at IS NULL",
        )?
        .execute(params![
            s.call_id.as_str(),
            state,
            reason,
            missing,
            detail,
            checked
        ])?;
    if n == 0 {
        if !call_exists(&tx, &s.call_id)? {
            return Err(CatalogError::not_found(format!("call {}", s.call_id)));
        }
        return Ok(false);
    }
    if let Some(entry) = &s.ledger {
        if !super::convert::recording_exists(&tx, &entry.recording_id.to_string())? {
            return Err(CatalogError::not_found(format!(
                "recording {}",
                entry.recording_id
            )));
        }
        insert_ledger(&tx, entry.clone())?;
    }
    insert_audit(&tx, s.audit.clone())?;
    tx.commit()?;
    Ok(true)
}

/// The `at` bounds of a period as SQL values: open bounds are the extremes of the text order.
fn bounds(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> (String, String) {
    (
        from.map_or_else(String::new, |t| ts(&t)),
        // every stored time begins with a digit, which sorts before `~`
        to.map_or_else(|| "~".to_owned(), |t| ts(&t)),
    )
}

pub(super) fn call_totals(
    c: &Connection,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<CallTotals, CatalogError> {
    let (from, to) = bounds(from, to);
    let mut stmt = c.prepare_cached(
        "SELECT CASE WHEN settled_at IS NULL THEN NULL ELSE state END AS s, count(*)
         FROM calls WHERE at >= ?1 AND at < ?2 GROUP BY s",
    )?;
    let mut rows = stmt.query(params![from, to])?;
    let mut totals = CallTotals::default();
    while let Some(r) = rows.next()? {
        let n: u64 = uint(r.get(1)?, &|| "call totals: count".to_owned())?;
        match r.get::<_, Option<String>>(0)? {
            None => totals.pending += n,
            Some(s) => {
                let state = parse(&s, &|| "call totals: state".to_owned())?;
                *totals.settled.entry(state).or_default() += n;
            }
        }
    }
    Ok(totals)
}

pub(super) fn calls(c: &Connection, q: &CallQuery) -> Result<Vec<CallRow>, CatalogError> {
    let (from, to) = bounds(q.from, q.to);
    let (after_at, after_id) = match &q.after {
        Some((at, id)) => (ts(at), id.as_str().to_owned()),
        None => (String::new(), String::new()),
    };
    let mut args: Vec<Value> = vec![
        Value::Text(from),
        Value::Text(to),
        Value::Text(after_at),
        Value::Text(after_id),
        Value::Integer(sql_limit(q.limit)),
    ];
    // the states the domain says need attention (frozen texts, so safe to write into the query)
    let attention = format!(
        "state IN ({}) AND settled_at IS NOT NULL",
        CompletenessState::ALL
            .into_iter()
            .filter(|s| s.needs_attention())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let filter = match q.filter {
        CallFilter::State(state) => {
            args.push(Value::Text(state.as_str().to_owned()));
            "state = ?6 AND settled_at IS NOT NULL"
        }
        CallFilter::NeedsAttention => attention.as_str(),
        CallFilter::Pending => "settled_at IS NULL",
    };
    collect(
        c,
        &format!(
            "SELECT {CALL_COLS} FROM calls
             WHERE {filter} AND at >= ?1 AND at < ?2 AND (at, call_id) > (?3, ?4)
             ORDER BY at, call_id LIMIT ?5"
        ),
        params_from_iter(args),
        read_call,
    )
}
