//! Subject access: start an export for a caller and date range with a SAR reference, watch its
//! progress, download the signed bundle; the open requests with their due dates. Each step is the
//! API's export handler.

use std::collections::HashMap;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{self, Nav, api_message, when};
use super::{Console, ConsoleError, Signed, form_urlencoded_value};
use crate::api::{ApiError, exports};

#[derive(Deserialize)]
pub(super) struct ExportForm {
    csrf: Option<String>,
    caller: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sar_reference: Option<String>,
    reason: Option<String>,
}

fn day(v: &Option<String>, end: bool) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| if end { d.succ_opt() } else { Some(d) })
        .map(|d| format!("{d}T00:00:00Z"))
}

/// `GET /console/exports[?notice=]`: the form and the open requests.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let axum::Json(v) = exports::sars(State(st.api.clone()), signed.caller.clone()).await?;
    let sars = v
        .get("sars")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let s = |h: &Value, k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let body = html! {
        @if let Some(n) = q.get("notice") { div.error-summary role="alert" { h2 { "There is a problem" } p { (n) } } }
        form method="post" action="/console/exports" #export-form {
            input type="hidden" name="csrf" value=(signed.csrf);
            div.field { label for="x-caller" { "Caller's number" } p.hint #x-caller-hint { "The data subject's number, in any usual form." } input #x-caller type="tel" name="caller" required aria-describedby="x-caller-hint"; }
            div.field-row {
                div.field { label for="x-from" { "From (date, optional)" } input #x-from type="date" name="from"; }
                div.field { label for="x-to" { "To (date, included, optional)" } input #x-to type="date" name="to"; }
            }
            div.field { label for="x-sar" { "Subject access request reference" } input #x-sar type="text" name="sar_reference" required; }
            div.field { label for="x-reason" { "Reason" } input #x-reason type="text" name="reason" required; }
            button type="submit" { "Start the export" }
        }
        h2 { "Open subject access requests" }
        @if sars.is_empty() { p #no-sars { "None open." } }
        @else {
            table #sars {
                caption.visually-hidden { "Open requests, soonest due first" }
                thead { tr { th scope="col" { "Reference" } th scope="col" { "Received" } th scope="col" { "Due" } } }
                tbody { @for r in &sars { tr { td { (s(r, "reference")) } td { (when(&s(r, "received_at"))) } td { (when(&s(r, "due_at"))) } } } }
            }
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Subject access", Some(&signed), Nav::Exports, body),
    ))
}

/// `POST /console/exports`: `POST /v1/exports`, then to the progress page.
pub(super) async fn start(
    State(st): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<ExportForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let t = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_owned();
    let mut body = json!({
        "caller": t(&f.caller), "sar_reference": t(&f.sar_reference), "reason": t(&f.reason),
    });
    if let Some(from) = day(&f.from, false) {
        body["from"] = json!(from);
    }
    if let Some(to) = day(&f.to, true) {
        body["to"] = json!(to);
    }
    match exports::start(
        State(st.api.clone()),
        signed.caller.clone(),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_body(), 64 * 1024)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(&e))?;
            let id: String = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_hexdigit() || *c == '-')
                .collect();
            Ok(Redirect::to(&format!("/console/exports/{id}")).into_response())
        }
        Err(e @ ApiError::BadRequest { .. }) => {
            let msg = api_message(e).await;
            Ok(Redirect::to(&format!(
                "/console/exports?notice={}",
                form_urlencoded_value(&msg)
            ))
            .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/exports/{id}/status`: the API's job status, for the progress page's script.
pub(super) async fn status(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ConsoleError> {
    Ok(exports::status(State(st.api.clone()), signed.caller.clone(), Path(id)).await?)
}

/// `GET /console/exports/{id}`: progress, and the download once ready.
pub(super) async fn progress(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let axum::Json(v) = exports::status(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
    )
    .await?;
    let s = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(x) => x.to_string(),
        None => String::new(),
    };
    let ready = matches!(s("status").as_str(), "ready" | "delivered");
    let body = html! {
        dl.summary {
            dt { "Request reference" } dd { (s("sar_reference")) }
            dt { "Started" } dd { (when(&s("created_at"))) }
        }
        p #export-status role="status" aria-live="polite" data-status-url={ "/console/exports/" (id) "/status" } {
            "Status: " span #export-state { (s("status")) } ", "
            span #export-done { (s("recordings_done")) } " of " span #export-total { (s("recordings_total")) } " recordings written"
        }
        p #export-download-line hidden[!ready] {
            a #export-download href={ "/console/exports/" (id) "/bundle" } download { "Download the signed bundle (ZIP)" }
        }
        p { "The bundle holds one WAV file per recording, a manifest with every file's SHA-256, a readable index and an Ed25519 signature; " code { "callvault verify BUNDLE.zip" } " checks it offline." }
        p { a href={ "/console/exports/" (id) } { "Refresh" } " · " a href="/console/exports" { "Back to subject access" } }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Export", Some(&signed), Nav::Exports, body),
    ))
}

/// `GET /console/exports/{id}/bundle`: the API's bundle download.
pub(super) async fn bundle(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    Ok(exports::bundle(State(st.api.clone()), signed.caller.clone(), Path(id)).await?)
}
