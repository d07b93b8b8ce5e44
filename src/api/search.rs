//! `GET /v1/recordings?caller=&from=&to=&line=&agent=&queue=&cursor=&limit=`: caller search, paged.
//!
//! The caller number is normalised to E.164 (a number that is not one is a 400) and looked up by its
//! keyed tag; the plain number is shown only to the compliance role, masked to supervisors. With
//! `call_id=` the route answers the recording of one call, as before.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{Caller, READERS};
use super::{ApiError, ApiState};
use crate::audit::NewAuditEntry;
use crate::catalog::{RecordingQuery, RecordingRow};
use crate::domain::{CallerNumber, RecordingId, Role, mask_e164};

/// Rows a page holds unless `limit` says fewer.
const DEFAULT_LIMIT: usize = 50;
/// The most rows a page holds.
const MAX_LIMIT: usize = 500;

#[derive(Serialize)]
struct Found {
    id: String,
    call_id: String,
    status: &'static str,
    policy: String,
    line: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    caller: Option<String>,
    started_at: String,
    ended_at: Option<String>,
    restricted: bool,
}

/// A query time (RFC 3339), or a 400 naming the field.
pub(super) fn parse_time(
    field: &str,
    v: Option<&String>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request("bad_field", format!("{field}: expected an RFC 3339 time"))
            })
    })
    .transpose()
}

/// A caller number, normalised, or a 400.
pub(super) fn parse_caller(v: &str) -> Result<CallerNumber, ApiError> {
    v.parse()
        .map_err(|e| ApiError::bad_request("bad_caller", format!("caller: {e}")))
}

/// The caller's number as `role` may see it: whole for compliance, masked for others.
pub(super) fn shown_caller(st: &ApiState, role: Role, row: &RecordingRow) -> Option<String> {
    let sealed = row.caller_sealed.as_ref()?;
    let e164 = st.callers.unseal(row.id, sealed).ok()?;
    Some(if role == Role::Compliance {
        e164.to_string()
    } else {
        mask_e164(&e164)
    })
}

fn cursor_of(row: &RecordingRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", row.started_at.to_rfc3339(), row.id))
}

fn parse_cursor(c: &str) -> Result<(DateTime<Utc>, RecordingId), ApiError> {
    let bad = || ApiError::bad_request("bad_field", "cursor: not a cursor this server gave");
    let text = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id.parse().map_err(|_| bad())?))
}

/// `GET /v1/recordings`: by `call_id` (one call), or a search.
pub(super) async fn list(
    state: State<ApiState>,
    caller: Caller,
    query: Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if query.contains_key("call_id") {
        return super::recordings::find(state, caller, query).await;
    }
    let (State(st), Query(q)) = (state, query);
    caller.require(READERS)?;
    let number = q.get("caller").map(|c| parse_caller(c)).transpose()?;
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("bad_field", format!("limit: 1 to {MAX_LIMIT}"))
            })?,
    };
    let query = RecordingQuery {
        caller_tag: number.as_ref().map(|n| st.callers.tag(n)),
        from: parse_time("from", q.get("from"))?,
        to: parse_time("to", q.get("to"))?,
        line: q.get("line").cloned(),
        agent: q.get("agent").cloned(),
        queue: q.get("queue").cloned(),
        after: q.get("cursor").map(|c| parse_cursor(c)).transpose()?,
        limit,
    };
    let rows = st
        .catalog
        .search_recordings(&query)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    // the audit names the caller by tag, never by number
    let subject = match &query.caller_tag {
        Some(tag) => format!("caller:{}", hex::encode(&tag[..8])),
        None => "recordings".to_owned(),
    };
    let mut entry = NewAuditEntry::new(st.clock.now(), &caller.actor, "recording.search", subject)
        .details(&json!({
            "from": query.from.map(|t| t.to_rfc3339()), "to": query.to.map(|t| t.to_rfc3339()),
            "line": query.line, "agent": query.agent, "queue": query.queue, "found": rows.len(),
            "reference": q.get("reference"),
        }));
    entry.reason = q.get("reason").cloned();
    st.catalog
        .append_audit(entry)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    let found: Vec<Found> = rows
        .iter()
        .map(|r| Found {
            id: r.id.to_string(),
            call_id: r.call_id.to_string(),
            status: r.status.as_str(),
            policy: r.policy.clone(),
            line: r.line.clone(),
            queue: r.queue.clone(),
            agent: r.agent.clone(),
            caller: shown_caller(&st, caller.role, r),
            started_at: r.started_at.to_rfc3339(),
            ended_at: r.ended_at.map(|t| t.to_rfc3339()),
            restricted: r.restricted,
        })
        .collect();
    Ok(Json(json!({ "recordings": found, "next_cursor": next })))
}
