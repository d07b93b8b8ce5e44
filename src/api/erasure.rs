//! Data-subject rights and the PCI remedy (compliance role): `DELETE /v1/recordings/{id}?reason=`,
//! `POST /v1/recordings/{id}/restrict` and `/unrestrict` `{reason}`, and
//! `POST /v1/recordings/{id}/segments/{n}/excise {reason}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::auth::Caller;
use super::holds::{ReasonBody, parse_body};
use super::{ApiError, ApiState};
use crate::domain::{RecordingId, Role, SegmentNo};
use crate::retention::{Retention, required_reason};

fn retention(st: &ApiState) -> Retention {
    Retention::new(
        Arc::clone(&st.catalog),
        Arc::clone(&st.store),
        Arc::clone(&st.clock),
        Arc::clone(&st.config),
    )
}

fn parse_id(id: &str) -> Result<RecordingId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// `DELETE /v1/recordings/{id}?reason=...`: erasure; 409 `held` naming the holds while held.
pub(super) async fn erase(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let reason = required_reason(q.get("reason").map(String::as_str))?;
    let id = parse_id(&id)?;
    let receipt = retention(&st).erase(id, &caller.actor, &reason).await?;
    Ok(Json(json!({ "status": "erased", "receipt": receipt })))
}

async fn set_restricted(
    st: &ApiState,
    caller: &Caller,
    id: &str,
    body: &[u8],
    restricted: bool,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let body: ReasonBody = parse_body(body)?;
    let reason = required_reason(body.reason.as_deref())?;
    let id = parse_id(id)?;
    let row = retention(st)
        .set_restricted(id, restricted, &caller.actor, &reason)
        .await?;
    Ok(Json(
        json!({ "id": row.id.to_string(), "restricted": row.restricted }),
    ))
}

/// `POST /v1/recordings/{id}/restrict {reason}`.
pub(super) async fn restrict(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_restricted(&st, &caller, &id, &body, true).await
}

/// `POST /v1/recordings/{id}/unrestrict {reason}`.
pub(super) async fn unrestrict(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_restricted(&st, &caller, &id, &body, false).await
}

/// `POST /v1/recordings/{id}/segments/{n}/excise {reason}`: crypto-shreds one segment.
pub(super) async fn excise(
    State(st): State<ApiState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let body: ReasonBody = parse_body(&body)?;
    let reason = required_reason(body.reason.as_deref())?;
    let id = parse_id(&id)?;
    let n: u32 = n.parse().map_err(|_| ApiError::NotFound)?;
    let done = retention(&st)
        .excise(id, SegmentNo(n), &caller.actor, &reason)
        .await?;
    Ok(Json(
        json!({ "status": done.status.as_str(), "receipt": done.receipt }),
    ))
}
