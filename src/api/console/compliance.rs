//! Compliance pages: erase, restrict and excise a recording (with reasons), the audit log with
//! filters and a "verify the chain" action against the latest signed checkpoint, and the
//! `pci_review` queue. The API's handlers decide who may: a supervisor gets their 403.

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
use super::search::results_table;
use super::{Console, ConsoleError, Signed, form_urlencoded_value};
use crate::api::{ApiError, audit_log, erasure};
use crate::audit::{ChainVerifier, NewAuditEntry};
use crate::catalog::RecordingStatus;
use crate::domain::Role;

#[derive(Deserialize)]
pub(super) struct ReasonForm {
    csrf: Option<String>,
    reason: Option<String>,
    segment: Option<String>,
}

fn back(id: &str, notice: &str) -> Response {
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Redirect::to(&format!(
        "/console/recordings/{id}?notice={}",
        form_urlencoded_value(notice)
    ))
    .into_response()
}

/// A handler's outcome as a notice; a refusal the person can act on (409, 400) is a notice too.
async fn outcome(
    done: Result<axum::Json<Value>, ApiError>,
    ok: &str,
) -> Result<String, ConsoleError> {
    match done {
        Ok(_) => Ok(ok.to_owned()),
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Conflict { .. })) => {
            Ok(format!("Not done: {}", api_message(e).await))
        }
        Err(e) => Err(e.into()),
    }
}

fn reason_body(f: &ReasonForm) -> Bytes {
    Bytes::from(json!({ "reason": f.reason.as_deref().map(str::trim) }).to_string())
}

/// `POST /console/recordings/{id}/erase`: `DELETE /v1/recordings/{id}`.
pub(super) async fn erase(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let mut q = HashMap::new();
    if let Some(r) = &f.reason {
        q.insert("reason".to_owned(), r.clone());
    }
    let done = erasure::erase(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query(q),
    )
    .await;
    Ok(back(&id, &outcome(done, "The recording was erased").await?))
}

/// `POST /console/recordings/{id}/restrict`.
pub(super) async fn restrict(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let done = erasure::restrict(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        reason_body(&f),
    )
    .await;
    Ok(back(
        &id,
        &outcome(done, "The recording is restricted").await?,
    ))
}

/// `POST /console/recordings/{id}/unrestrict`.
pub(super) async fn unrestrict(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let done = erasure::unrestrict(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        reason_body(&f),
    )
    .await;
    Ok(back(
        &id,
        &outcome(done, "The restriction was lifted").await?,
    ))
}

/// `POST /console/recordings/{id}/excise` with the segment number.
pub(super) async fn excise(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let n = f.segment.clone().unwrap_or_default();
    let done = erasure::excise(
        State(st.api.clone()),
        signed.caller.clone(),
        Path((id.clone(), n.clone())),
        reason_body(&f),
    )
    .await;
    Ok(back(
        &id,
        &outcome(done, &format!("Segment {n} was excised")).await?,
    ))
}

fn day(v: Option<&String>, end: bool) -> Option<String> {
    v.map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| if end { d.succ_opt() } else { Some(d) })
        .map(|d| format!("{d}T00:00:00Z"))
}

/// `GET /console/audit?actor=&action=&subject=&from=&to=&after=`: `GET /v1/audit`.
pub(super) async fn audit(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let mut api_q = HashMap::new();
    for k in ["actor", "action", "subject", "after"] {
        if let Some(v) = q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            api_q.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some(t) = day(q.get("from"), false) {
        api_q.insert("from".to_owned(), t);
    }
    if let Some(t) = day(q.get("to"), true) {
        api_q.insert("to".to_owned(), t);
    }
    api_q.insert("limit".to_owned(), "50".to_owned());
    let axum::Json(v) =
        audit_log::list(State(st.api.clone()), signed.caller.clone(), Query(api_q)).await?;
    let entries = v
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = v.get("next_after").and_then(Value::as_u64);
    let f = |k: &str| q.get(k).cloned().unwrap_or_default();
    let s = |e: &Value, k: &str| match e.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    };
    let next_url = next.map(|n| {
        let mut u = String::from("/console/audit?");
        for k in ["actor", "action", "subject", "from", "to"] {
            u.push_str(&format!("{k}={}&", form_urlencoded_value(&f(k))));
        }
        u.push_str(&format!("after={n}"));
        u
    });
    let body = html! {
        @if let Some(n) = q.get("notice") { div.notice role="status" #verify-result { (n) } }
        form method="post" action="/console/audit/verify" {
            input type="hidden" name="csrf" value=(signed.csrf);
            button type="submit" #verify { "Verify the chain" }
        }
        form method="get" action="/console/audit" #audit-filters {
            div.field-row {
                div.field { label for="a-actor" { "Actor" } input #a-actor type="text" name="actor" value=(f("actor")); }
                div.field { label for="a-action" { "Action" } input #a-action type="text" name="action" value=(f("action")); }
                div.field { label for="a-subject" { "Subject" } input #a-subject type="text" name="subject" value=(f("subject")); }
            }
            div.field-row {
                div.field { label for="a-from" { "From (date)" } input #a-from type="date" name="from" value=(f("from")); }
                div.field { label for="a-to" { "To (date, included)" } input #a-to type="date" name="to" value=(f("to")); }
            }
            button type="submit" { "Filter" }
        }
        table #audit-entries {
            caption.visually-hidden { "Audit entries, oldest first" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Reason" } } }
            tbody {
                @for e in &entries {
                    tr data-action=(s(e, "action")) { td { (s(e, "seq")) } td { (when(&s(e, "at"))) } td { (s(e, "actor")) } td { (s(e, "action")) } td.subject { (s(e, "subject")) } td { (s(e, "reason")) } }
                }
            }
        }
        @if let Some(u) = next_url { p { a href=(u) { "Next page" } } }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Audit log", Some(&signed), Nav::Audit, body),
    ))
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/audit/verify`: signs the head now (`GET /v1/audit/head`, compliance only) and
/// walks the whole chain against it, as `callvault audit verify --checkpoint` does.
pub(super) async fn verify(
    State(st): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    let axum::Json(cp) = audit_log::head(State(st.api.clone()), signed.caller.clone()).await?;
    let seq = cp.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let hash = cp
        .get("hash")
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| <[u8; 32]>::try_from(h).ok());
    let mut verifier = ChainVerifier::new();
    if let Some(hash) = hash {
        verifier = verifier.against(crate::audit::ChainHead { seq, hash });
    }
    let mut after = 0;
    loop {
        let page = st
            .api
            .catalog
            .audit_after(after, 1000)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            verifier.push(e);
        }
    }
    let (ok, notice) = match verifier.finish() {
        Ok((head, count)) => (
            true,
            format!(
                "The audit chain is intact: {count} entries, reaching the checkpoint signed just now at entry {seq} (head hash {}).",
                hex::encode(head.hash)
            ),
        ),
        Err(b) => (false, format!("The audit chain is broken: {b}")),
    };
    st.api
        .catalog
        .append_audit(
            NewAuditEntry::new(
                st.api.clock.now(),
                &signed.caller.actor,
                "audit.verify",
                "audit",
            )
            .details(&json!({ "ok": ok, "checkpoint_seq": seq, "via": "console" })),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Redirect::to(&format!(
        "/console/audit?notice={}",
        form_urlencoded_value(&notice)
    ))
    .into_response())
}

/// `GET /console/pci-review`: recordings under PCI review (compliance, as excision is).
pub(super) async fn pci_review(
    State(st): State<Console>,
    signed: Signed,
) -> Result<Response, ConsoleError> {
    signed.caller.require(&[Role::Compliance])?;
    let rows = st
        .api
        .catalog
        .recordings_by_status(RecordingStatus::PciReview, 500)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    st.api
        .catalog
        .append_audit(
            NewAuditEntry::new(
                st.api.clock.now(),
                &signed.caller.actor,
                "recording.search",
                "recordings",
            )
            .details(&json!({ "status": "pci_review", "found": rows.len(), "via": "console" })),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| json!({
            "id": r.id.to_string(), "status": r.status.as_str(), "line": r.line, "queue": r.queue,
            "agent": r.agent, "caller": crate::api::search::shown_caller(&st.api, signed.caller.role, r),
            "started_at": r.started_at.to_rfc3339(), "restricted": r.restricted,
        }))
        .collect();
    let body = html! {
        p { "Recordings where a card payment's pause reached a segment already sealed. Open one to excise the segment that may hold card details." }
        @if list.is_empty() { p #no-review { "Nothing to review." } } @else { (results_table(&list)) }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("PCI review", Some(&signed), Nav::PciReview, body),
    ))
}
