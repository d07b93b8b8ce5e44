//! `GET /v1/completeness?from=&to=&state=&after=&limit=` (supervisor, compliance): how many calls
//! that started in `[from, to)` are in each completeness state, and the calls a person must look at
//! (by default every settled call that is neither `recorded` nor `withheld`; `state=` one state, or
//! `pending` for the calls not settled yet), with their reasons. Audited as `completeness.report`.
//!
//! On the admin listener, `POST /completeness/reconcile` runs a reconciliation pass now and answers
//! what it did.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::auth::Caller;
use super::search::parse_time;
use super::{ApiError, ApiState};
use crate::audit::NewAuditEntry;
use crate::catalog::{CallFilter, CallRow, CallSource};
use crate::completeness::report;
use crate::completeness::worker::{ReconcileError, ReconcileHandle};
use crate::domain::completeness::CompletenessState;
use crate::domain::{CallId, Role};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The `state` parameter.
fn filter(v: Option<&String>) -> Result<CallFilter, ApiError> {
    match v.map(String::as_str) {
        None | Some("attention") => Ok(CallFilter::NeedsAttention),
        Some("pending") => Ok(CallFilter::Pending),
        Some(s) => s.parse::<CompletenessState>().map(CallFilter::State).map_err(|_| {
            ApiError::bad_request(
                "bad_field",
                "state: one of recorded, partial, not_recorded, withheld, failed, pending, attention",
            )
        }),
    }
}

/// The `after` cursor: the `next_after` of the page before, `<RFC 3339>,<call id>`.
fn cursor(v: Option<&String>) -> Result<Option<(DateTime<Utc>, CallId)>, ApiError> {
    let bad = || ApiError::bad_request("bad_field", "after: the next_after of the page before");
    v.map(|s| {
        let (at, id) = s.split_once(',').ok_or_else(bad)?;
        let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
        let id: CallId = id.parse().map_err(|_| bad())?;
        Ok((at.with_timezone(&Utc), id))
    })
    .transpose()
}

/// One call as the report shows it.
pub(super) fn call_json(c: &CallRow) -> Value {
    let a = c.assessment.as_ref();
    json!({
        "call_id": c.call_id.as_str(),
        "at": c.at.to_rfc3339(),
        "started_at": c.started_at.map(|t| t.to_rfc3339()),
        "ended_at": c.ended_at.map(|t| t.to_rfc3339()),
        "duration_ms": c.duration_ms,
        "line": c.line,
        "recording_id": c.recording_id.map(|r| r.to_string()),
        "sources": CallSource::from_bits(c.sources).iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "state": a.map(|a| a.state.as_str()),
        "reason": a.map(|a| a.reason.as_str()),
        "missing_ms": a.and_then(|a| a.missing_ms),
        "detail": a.map(|a| a.detail.as_str()),
        "checked_at": a.map(|a| a.checked_at.to_rfc3339()),
        "settled": c.settled_at.is_some(),
        "settled_at": c.settled_at.map(|t| t.to_rfc3339()),
    })
}

/// `GET /v1/completeness`.
pub(super) async fn report(
    State(st): State<ApiState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Supervisor, Role::Compliance])?;
    let from = parse_time("from", q.get("from"))?;
    let to = parse_time("to", q.get("to"))?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(ApiError::bad_request("bad_field", "to: before from"));
    }
    let filter = filter(q.get("state"))?;
    let after = cursor(q.get("after"))?;
    let limit = q.get("limit").map_or(Ok(DEFAULT_LIMIT), |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_field",
                    format!("limit: a number from 1 to {MAX_LIMIT}"),
                )
            })
    })?;
    let page = report::page(st.catalog.as_ref(), from, to, filter, after, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let read = NewAuditEntry::new(
        st.clock.now(),
        &caller.actor,
        "completeness.report",
        "completeness",
    )
    .details(&json!({
        "from": from.map(|t| t.to_rfc3339()), "to": to.map(|t| t.to_rfc3339()),
        "state": q.get("state"), "listed": page.calls.len(),
    }));
    st.catalog
        .append_audit(read)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut totals = serde_json::Map::new();
    for s in CompletenessState::ALL {
        totals.insert(s.as_str().into(), page.totals.of(s).into());
    }
    totals.insert("pending".into(), page.totals.pending.into());
    totals.insert("calls".into(), page.totals.calls().into());
    Ok(Json(json!({
        "from": from.map(|t| t.to_rfc3339()),
        "to": to.map(|t| t.to_rfc3339()),
        "totals": totals,
        "calls": page.calls.iter().map(call_json).collect::<Vec<_>>(),
        "next_after": page.next.map(|(at, id)| format!("{},{}", at.to_rfc3339(), id.as_str())),
    })))
}

/// The reconciler on the admin listener, to merge into the admin router.
pub fn completeness_routes(handle: ReconcileHandle) -> Router {
    Router::new()
        .route("/completeness/reconcile", post(reconcile))
        .with_state(handle)
}

async fn reconcile(State(handle): State<ReconcileHandle>) -> Result<Json<Value>, ApiError> {
    match handle.reconcile_now().await {
        Ok(report) => Ok(Json(json!({ "report": report }))),
        Err(e @ (ReconcileError::Busy | ReconcileError::Stopped)) => Err(ApiError::Unavailable {
            code: "completeness_busy",
            detail: e.to_string(),
        }),
        Err(ReconcileError::Failed(e)) => Err(ApiError::internal(&e)),
    }
}
