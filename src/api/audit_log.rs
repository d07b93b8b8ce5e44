//! `GET /v1/audit?actor=&action=&subject=&from=&to=&after=&limit=`: the audit chain, filtered
//! (compliance role). Entries are shown as stored, with their hashes, so they can be checked.
//! `GET /v1/audit/head` (compliance): the chain's head as a signed checkpoint, to keep elsewhere
//! and check the chain against later (`callvault audit verify --checkpoint`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::auth::Caller;
use super::search::parse_time;
use super::{ApiError, ApiState};
use crate::audit::{NewAuditEntry, Trigger};
use crate::catalog::AuditQuery;
use crate::domain::Role;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `GET /v1/audit`.
pub(super) async fn list(
    State(st): State<ApiState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let number = |field: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        q.get(field).map_or(Ok(default), |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    ApiError::bad_request("bad_field", format!("{field}: a number up to {max}"))
                })
        })
    };
    let query = AuditQuery {
        actor: q.get("actor").cloned(),
        action: q.get("action").cloned(),
        subject: q.get("subject").cloned(),
        from: parse_time("from", q.get("from"))?,
        to: parse_time("to", q.get("to"))?,
        after_seq: number("after", 0, usize::MAX)? as u64,
        limit: number("limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1),
    };
    let entries = st
        .catalog
        .search_audit(&query)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let read = NewAuditEntry::new(st.clock.now(), &caller.actor, "audit.search", "audit")
        .details(&json!({ "actor": query.actor, "action": query.action, "subject": query.subject, "found": entries.len() }));
    st.catalog
        .append_audit(read)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let next = (entries.len() == query.limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": e.entry.at.to_rfc3339(), "actor": e.entry.actor,
                "action": e.entry.action, "subject": e.entry.subject, "reason": e.entry.reason,
                "details": serde_json::from_str::<Value>(&e.entry.details).unwrap_or(Value::Null),
                "prev_hash": hex::encode(e.prev_hash), "hash": hex::encode(e.hash),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": list, "next_after": next })))
}

/// `GET /v1/audit/head`: the checkpoint of the chain's head now (the stored one when the head has
/// not moved since), as the document `callvault audit verify --checkpoint` reads.
pub(super) async fn head(
    State(st): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let cp = st
        .checkpoints
        .checkpoint(Trigger::Request)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(cp.to_json()))
}
