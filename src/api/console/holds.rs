//! Holds: place one on a recording or on a caller's recordings (with a complaint reference), see
//! the active holds, release one (the API allows compliance only). Each action is the API's.

use std::collections::HashMap;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{self, Nav, api_message, error_summary, when};
use super::{Console, ConsoleError, Signed, form_urlencoded_value};
use crate::api::{ApiError, holds};
use crate::domain::Role;

#[derive(Deserialize)]
pub(super) struct HoldForm {
    csrf: Option<String>,
    reference: Option<String>,
    reason: Option<String>,
    caller: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `POST /console/recordings/{id}/hold`: `POST /v1/holds` with this recording.
pub(super) async fn place_on_recording(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HoldForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let body = json!({ "reference": text(&f.reference).unwrap_or_default(), "reason": text(&f.reason), "recording_ids": [id] });
    let notice = match holds::place(
        State(st.api.clone()),
        signed.caller.clone(),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok((_, axum::Json(v))) => format!(
            "Hold {} placed",
            v.pointer("/hold/reference")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Conflict { .. })) => {
            format!("The hold was not placed: {}", api_message(e).await)
        }
        Err(e) => return Err(e.into()),
    };
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Ok(Redirect::to(&format!(
        "/console/recordings/{id}?notice={}",
        form_urlencoded_value(&notice)
    ))
    .into_response())
}

/// `POST /console/holds`: a hold on a caller's recordings in a date range.
pub(super) async fn place_on_caller(
    State(st): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<HoldForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let day = |v: &Option<String>, end: bool| {
        text(v)
            .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
            .and_then(|d| if end { d.succ_opt() } else { Some(d) })
            .map(|d| format!("{d}T00:00:00Z"))
    };
    let body = json!({
        "reference": text(&f.reference).unwrap_or_default(), "reason": text(&f.reason),
        "caller": text(&f.caller), "from": day(&f.from, false), "to": day(&f.to, true),
    });
    let notice = match holds::place(
        State(st.api.clone()),
        signed.caller.clone(),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok((_, axum::Json(v))) => format!(
            "Hold {} placed on {} recording(s)",
            v.pointer("/hold/reference")
                .and_then(Value::as_str)
                .unwrap_or(""),
            v.get("linked")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Conflict { .. })) => {
            format!("The hold was not placed: {}", api_message(e).await)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Redirect::to(&format!(
        "/console/holds?notice={}",
        form_urlencoded_value(&notice)
    ))
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct ReleaseForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /console/holds/{reference}/release` (the API allows compliance only).
pub(super) async fn release(
    State(st): State<Console>,
    signed: Signed,
    Path(reference): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReleaseForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let body = json!({ "reason": text(&f.reason) });
    let notice = match holds::release(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(reference.clone()),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok(_) => format!("Hold {reference} released"),
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Conflict { .. })) => {
            format!("The hold was not released: {}", api_message(e).await)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Redirect::to(&format!(
        "/console/holds?notice={}",
        form_urlencoded_value(&notice)
    ))
    .into_response())
}

/// `GET /console/holds[?all=true]`: the holds, as `GET /v1/holds` lists them.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let mut api_q = HashMap::new();
    if let Some(all) = q.get("all") {
        api_q.insert("all".to_owned(), all.clone());
    }
    let axum::Json(v) =
        holds::list(State(st.api.clone()), signed.caller.clone(), Query(api_q)).await?;
    let list = v
        .get("holds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let s = |h: &Value, k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let compliance = signed.caller.role == Role::Compliance;
    let body = html! {
        @if let Some(n) = q.get("notice") { div.notice role="status" { (n) } }
        (error_summary(&[]))
        h2 { "Active holds" }
        @if list.is_empty() { p #no-holds { "No holds." } }
        @else {
            table #holds-table {
                caption.visually-hidden { "Holds" }
                thead { tr { th scope="col" { "Reference" } th scope="col" { "Reason" } th scope="col" { "Placed by" } th scope="col" { "Since" } th scope="col" { "State" } @if compliance { th scope="col" { "Release" } } } }
                tbody {
                    @for h in &list {
                        tr data-reference=(s(h, "reference")) {
                            td { (s(h, "reference")) } td { (s(h, "reason")) } td { (s(h, "actor")) } td { (when(&s(h, "created_at"))) }
                            td { @if h.get("active").and_then(Value::as_bool) == Some(true) { "active" } @else { "released" } }
                            @if compliance {
                                td {
                                    @if h.get("active").and_then(Value::as_bool) == Some(true) {
                                        form.inline method="post" action={ "/console/holds/" (form_urlencoded_value(&s(h, "reference"))) "/release" } {
                                            input type="hidden" name="csrf" value=(signed.csrf);
                                            label for={ "release-" (s(h, "reference")) } { "Reason to release " (s(h, "reference")) }
                                            input id={ "release-" (s(h, "reference")) } type="text" name="reason" required;
                                            button type="submit" { "Release" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 #caller-hold-heading { "Place a hold on a caller's recordings" }
        form method="post" action="/console/holds" aria-labelledby="caller-hold-heading" {
            input type="hidden" name="csrf" value=(signed.csrf);
            div.field { label for="h-caller" { "Caller's number" } input #h-caller type="tel" name="caller" required; }
            div.field-row {
                div.field { label for="h-from" { "From (date, optional)" } input #h-from type="date" name="from"; }
                div.field { label for="h-to" { "To (date, optional)" } input #h-to type="date" name="to"; }
            }
            div.field { label for="h-reference" { "Complaint reference" } input #h-reference type="text" name="reference" required; }
            div.field { label for="h-reason" { "Reason" } input #h-reason type="text" name="reason" required; }
            button type="submit" { "Place hold" }
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Holds", Some(&signed), Nav::Holds, body),
    ))
}
