//! Live listening: a page that opens the API's listen socket for a call in progress and plays its
//! audio, showing when the call is paused (no audio is sent then: the recorder drops it).

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;

use serde_json::json;

use super::pages::{self, Nav};
use super::{Console, ConsoleError, Signed, form_urlencoded_value};
use crate::api::auth::READERS;
use crate::api::{ApiError, listen};
use crate::audit::NewAuditEntry;
use crate::catalog::RecordingStatus;

/// Most calls in progress the page lists.
const MAX_LIVE: usize = 200;

/// `GET /console/live[?call_id=&reason=]`: the calls in progress (a search, audited as one), and
/// the listener once a call and a reason are given.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    signed.caller.require(READERS)?;
    let rows = st
        .api
        .catalog
        .recordings_by_status(RecordingStatus::Live, MAX_LIVE)
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
            .details(&json!({ "status": "live", "found": rows.len(), "via": "console" })),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let live: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.call_id.to_string(),
                pages::when(&r.started_at.to_rfc3339()),
                crate::api::search::shown_caller(&st.api, signed.caller.role, r)
                    .unwrap_or_default(),
                r.queue
                    .clone()
                    .or_else(|| r.line.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let call = q
        .get("call_id")
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    let reason = q
        .get("reason")
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    let ready = !call.is_empty() && !reason.is_empty();
    let body = html! {
        h2 { "Calls in progress" }
        @if live.is_empty() { p #no-live { "No call is being recorded now." } }
        @else {
            table #live-calls {
                caption.visually-hidden { "Calls being recorded now" }
                thead { tr { th scope="col" { "Call" } th scope="col" { "Started" } th scope="col" { "Caller" } th scope="col" { "Queue or line" } } }
                tbody { @for (c, at, who, q) in &live { tr data-call=(c) { td { (c) } td { (at) } td { (who) } td { (q) } } } }
            }
        }
        h2 { "Listen to a call" }
        form method="get" action="/console/live" #live-form {
            div.field { label for="l-call" { "Call id" } p.hint #l-call-hint { "As the telephony platform names the call." } input #l-call type="text" name="call_id" value=(call) required aria-describedby="l-call-hint"; }
            div.field { label for="l-reason" { "Reason for listening" } input #l-reason type="text" name="reason" value=(reason) required; }
            button type="submit" { "Listen" }
        }
        @if ready {
            section #live data-socket={ "/console/calls/" (form_urlencoded_value(&call)) "/listen?reason=" (form_urlencoded_value(&reason)) } aria-labelledby="live-heading" {
                h2 #live-heading { "Call " (call) }
                p #live-state role="status" aria-live="polite" { "Connecting" }
                p { button #live-start type="button" { "Start audio" } " " button #live-stop type="button" { "Stop listening" } }
                p.hint { "Audio is about three seconds behind the call. While the caller pays by card the call is paused and nothing is heard." }
            }
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Live calls", Some(&signed), Nav::Live, body),
    ))
}

/// Whether a WebSocket's `Origin` is this host (another site's page may not open it with the
/// person's cookie).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(h), Some(o)) => o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(h)),
        _ => false,
    }
}

/// `GET /console/calls/{call_id}/listen?reason=` (WebSocket): the API's listen socket.
pub(super) async fn listen(
    State(st): State<Console>,
    signed: Signed,
    Path(call_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ConsoleError> {
    if !same_origin(&headers) {
        return Err(ConsoleError::Csrf);
    }
    Ok(listen::listen(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(call_id),
        Query(q),
        ws,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_from_another_origin_is_refused() {
        let h = |host: &str, origin: Option<&str>| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, host.parse().expect("host"));
            if let Some(o) = origin {
                m.insert(header::ORIGIN, o.parse().expect("origin"));
            }
            m
        };
        assert!(same_origin(&h(
            "127.0.0.1:8080",
            Some("http://127.0.0.1:8080")
        )));
        assert!(!same_origin(&h(
            "127.0.0.1:8080",
            Some("http://evil.example")
        )));
        assert!(!same_origin(&h(
            "127.0.0.1:8080",
            Some("http://127.0.0.1:8080.evil.example")
        )));
        assert!(!same_origin(&h("127.0.0.1:8080", None)));
    }
}
