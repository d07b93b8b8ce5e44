//! The completeness page: every call of a period with its state (recorded, partial, not recorded,
//! withheld, failed), the totals, and each call that is not recorded in full with its reason. The
//! API's own report handler decides who may see it and audits the reading.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::pages::{self, Nav, error_summary, when};
use super::search::day;
use super::{Console, ConsoleError, Signed};
use crate::api::ApiError;

const STATES: [&str; 5] = ["recorded", "partial", "not_recorded", "withheld", "failed"];

/// `GET /console/completeness?from=&to=&state=&after=`.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let field = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (from, to, state) = (field("from"), field("to"), field("state"));
    let mut errors = Vec::new();
    let mut api_q = HashMap::new();
    for (k, v, end) in [("from", &from, false), ("to", &to, true)] {
        if v.is_empty() {
            continue;
        }
        match day(v, end) {
            Some(t) => {
                api_q.insert(k.to_owned(), t);
            }
            None => errors.push(format!("The {k} date must be a real date")),
        }
    }
    if !state.is_empty() {
        api_q.insert("state".to_owned(), state.clone());
    }
    if let Some(a) = q.get("after") {
        api_q.insert("after".to_owned(), a.clone());
    }
    api_q.insert("limit".to_owned(), "50".to_owned());
    let mut report: Option<Value> = None;
    if errors.is_empty() {
        match crate::api::completeness::report(
            State(st.api.clone()),
            signed.caller.clone(),
            Query(api_q),
        )
        .await
        {
            Ok(axum::Json(v)) => report = Some(v),
            Err(ApiError::BadRequest { detail, .. }) => errors.push(detail),
            Err(e) => return Err(e.into()),
        }
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let total = |v: &Value, k: &str| {
        v.get("totals")
            .and_then(|t| t.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let next = report
        .as_ref()
        .and_then(|r| r.get("next_after"))
        .and_then(Value::as_str)
        .map(|after| {
            let mut url = String::from("/console/completeness?");
            for (k, v) in [("from", &from), ("to", &to), ("state", &state)] {
                url.push_str(&format!("{k}={}&", super::form_urlencoded_value(v)));
            }
            url.push_str(&format!("after={}", super::form_urlencoded_value(after)));
            url
        });
    let body = html! {
        p { "Every call the telephony platform reported, and whether its recording covers it. The list shows the calls that are not recorded in full, or not yet settled, with the reason." }
        (error_summary(&errors))
        form.filters method="get" action="/console/completeness" {
            div.field {
                label for="from" { "From (YYYY-MM-DD)" }
                input #from name="from" type="text" inputmode="numeric" value=(from);
            }
            div.field {
                label for="to" { "To (YYYY-MM-DD)" }
                input #to name="to" type="text" inputmode="numeric" value=(to);
            }
            div.field {
                label for="state" { "State" }
                select #state name="state" {
                    option value="" selected[state.is_empty()] { "Any" }
                    @for st in STATES {
                        option value=(st) selected[state == st] { (st.replace('_', " ")) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if let Some(r) = &report {
            table #totals.results {
                caption { "Calls in the period" }
                thead { tr {
                    @for st in STATES { th scope="col" { (st.replace('_', " ")) } }
                    th scope="col" { "not settled yet" }
                    th scope="col" { "all" }
                } }
                tbody { tr {
                    @for st in STATES { td data-state=(st) { (total(r, st)) } }
                    td data-state="pending" { (total(r, "pending")) }
                    td data-state="calls" { (total(r, "calls")) }
                } }
            }
            @let calls = r.get("calls").and_then(Value::as_array).cloned().unwrap_or_default();
            @if calls.is_empty() {
                p #no-calls { "No calls to list." }
            } @else {
                table #calls.results {
                    caption { "Calls" }
                    thead { tr {
                        th scope="col" { "Started" }
                        th scope="col" { "Call" }
                        th scope="col" { "State" }
                        th scope="col" { "Why" }
                        th scope="col" { "Recording" }
                    } }
                    tbody {
                        @for c in &calls {
                            tr data-call=(s(c, "call_id")) {
                                td { (when(&s(c, "started_at"))) }
                                td { (s(c, "call_id")) }
                                td { (s(c, "state").replace('_', " ")) }
                                td { (s(c, "detail")) }
                                td {
                                    @let id = s(c, "recording_id");
                                    @if !id.is_empty() { a href={ "/console/recordings/" (id) } { "Open" } }
                                }
                            }
                        }
                    }
                }
                @if let Some(n) = &next { p { a href=(n) { "Next page" } } }
            }
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Completeness", Some(&signed), Nav::Completeness, body),
    ))
}
