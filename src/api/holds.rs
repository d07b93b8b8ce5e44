//! Complaint holds: `POST /v1/holds`, `POST /v1/holds/{reference}/release`, `GET /v1/holds`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{Caller, READERS};
use super::{ApiError, ApiState};
use crate::audit::NewAuditEntry;
use chrono::{DateTime, Utc};

use crate::catalog::HoldRow;
use crate::domain::{CallerNumber, RecordingId, Role};
use crate::retention::{holds, required_reason};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    reference: String,
    reason: Option<String>,
    #[serde(default)]
    recording_ids: Vec<String>,
    caller: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    pub(super) reason: Option<String>,
}

#[derive(Serialize)]
struct HoldDto {
    reference: String,
    reason: String,
    actor: String,
    created_at: String,
    active: bool,
    released_at: Option<String>,
    released_by: Option<String>,
    release_reason: Option<String>,
}

fn hold_dto(h: HoldRow) -> HoldDto {
    HoldDto {
        active: h.is_active(),
        reference: h.reference,
        reason: h.reason,
        actor: h.actor,
        created_at: h.created_at.to_rfc3339(),
        released_at: h.released_at.map(|t| t.to_rfc3339()),
        released_by: h.released_by,
        release_reason: h.release_reason,
    }
}

/// Parses a JSON body into `T`, answering 400 naming what is wrong.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("bad_body", e.to_string()))
}

/// `POST /v1/holds`: places a hold on recordings (supervisor or compliance), or adds recordings to
/// the active hold with the same reference.
pub(super) async fn place(
    State(st): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(READERS)?;
    let body: PlaceBody = parse_body(&body)?;
    let reference = body.reference.trim().to_owned();
    if reference.is_empty() || reference.len() > 200 {
        return Err(ApiError::bad_request(
            "bad_field",
            "reference: 1 to 200 characters",
        ));
    }
    let reason = required_reason(body.reason.as_deref())?;
    let time = |field: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        v.as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(
                            "bad_field",
                            format!("{field}: expected an rfc 3339 time"),
                        )
                    })
            })
            .transpose()
    };
    let caller_hold = match &body.caller {
        Some(number) => {
            let number: CallerNumber = number
                .parse()
                .map_err(|e| ApiError::bad_request("bad_caller", format!("caller: {e}")))?;
            Some(holds::CallerHold {
                tag: st.callers.tag(&number),
                from: time("from", &body.from)?,
                to: time("to", &body.to)?,
            })
        }
        None if body.from.is_some() || body.to.is_some() => {
            return Err(ApiError::bad_request(
                "missing_field",
                "from and to need caller",
            ));
        }
        None => None,
    };
    if body.recording_ids.is_empty() && caller_hold.is_none() {
        return Err(ApiError::bad_request(
            "missing_field",
            "recording_ids or caller is required",
        ));
    }
    let recordings = body
        .recording_ids
        .iter()
        .map(|id| {
            id.parse::<RecordingId>().map_err(|_| {
                ApiError::bad_request("bad_field", format!("recording_ids: {id:?} is not an id"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = holds::HoldRequest {
        reference,
        reason,
        actor: caller.actor.clone(),
        recordings,
        caller: caller_hold,
        via: "api",
    };
    let placed = holds::place_hold(&st.catalog, st.clock.now(), request)
        .await
        .map_err(|e| match e {
            crate::retention::RetentionError::UnknownRecording(id) => ApiError::bad_request(
                "unknown_recording",
                format!("recording_ids: no recording {id}"),
            ),
            e => e.into(),
        })?;
    let status = if placed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let linked: Vec<String> = placed.linked.iter().map(ToString::to_string).collect();
    Ok((
        status,
        Json(json!({ "hold": hold_dto(placed.hold), "created": placed.created, "linked": linked })),
    ))
}

/// `POST /v1/holds/{reference}/release {reason}` (compliance).
pub(super) async fn release(
    State(st): State<ApiState>,
    caller: Caller,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let body: ReasonBody = parse_body(&body)?;
    let reason = required_reason(body.reason.as_deref())?;
    let released = holds::release_hold(
        &st.catalog,
        st.clock.now(),
        &reference,
        &caller.actor,
        &reason,
        "api",
    )
    .await?;
    Ok(Json(json!({ "hold": hold_dto(released) })))
}

/// `GET /v1/holds[?all=true]`: the active holds (or every hold).
pub(super) async fn list(
    State(st): State<ApiState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let all = q.get("all").is_some_and(|v| v == "true");
    let rows = st
        .catalog
        .holds(!all)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    st.catalog
        .append_audit(
            NewAuditEntry::new(st.clock.now(), &caller.actor, "hold.list", "holds")
                .details(&json!({ "all": all, "count": rows.len() })),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let holds: Vec<HoldDto> = rows.into_iter().map(hold_dto).collect();
    Ok(Json(json!({ "holds": holds })))
}
