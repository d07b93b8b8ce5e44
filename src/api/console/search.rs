//! The search page: a caller's recordings by number (any usual form), date range, line and queue, paged,
//! each search audited with its reason by the API's own search handler.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use maud::{Markup, html};
use serde_json::Value;

use super::pages::{self, Nav, error_summary, when};
use super::{Console, ConsoleError, Signed};
use crate::api::ApiError;

/// A form date (`YYYY-MM-DD`) as the RFC 3339 instant the API takes: its start, or with
/// `end` the start of the next day.
pub(super) fn day(v: &str, end: bool) -> Option<String> {
    let d = NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok()?;
    let d = if end { d.succ_opt()? } else { d };
    Some(format!("{d}T00:00:00Z"))
}

fn field(q: &HashMap<String, String>, k: &str) -> String {
    q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// The recording list the search, or a hold or export page, shows.
pub(super) fn results_table(rows: &[Value]) -> Markup {
    let s = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    html! {
        table.results {
            caption.visually-hidden { "Recordings found" }
            thead { tr {
                th scope="col" { "Started" }
                th scope="col" { "Caller" }
                th scope="col" { "Line" }
                th scope="col" { "Queue" }
                th scope="col" { "Agent" }
                th scope="col" { "Status" }
                th scope="col" { span.visually-hidden { "Open" } }
            } }
            tbody {
                @for r in rows {
                    tr data-recording=(s(r, "id")) {
                        td { (when(&s(r, "started_at"))) }
                        td.caller { (s(r, "caller")) }
                        td { (s(r, "line")) }
                        td { (s(r, "queue")) }
                        td { (s(r, "agent")) }
                        td {
                            (s(r, "status"))
                            @if r.get("restricted").and_then(Value::as_bool) == Some(true) { " (restricted)" }
                        }
                        td { a href={ "/console/recordings/" (s(r, "id")) } { "Open" span.visually-hidden { " recording of " (when(&s(r, "started_at"))) } } }
                    }
                }
            }
        }
    }
}

/// `GET /console/search?caller=&from=&to=&line=&reason=&cursor=`.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let searched = q.contains_key("reason");
    let (caller, from, to, line, queue, reason) = (
        field(&q, "caller"),
        field(&q, "from"),
        field(&q, "to"),
        field(&q, "line"),
        field(&q, "queue"),
        field(&q, "reason"),
    );
    let mut errors = Vec::new();
    let mut found: Option<(Vec<Value>, Option<String>)> = None;
    if searched {
        let mut api_q = HashMap::new();
        if reason.is_empty() {
            errors.push("Enter the reason for this search".to_owned());
        }
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
        if errors.is_empty() {
            if !caller.is_empty() {
                api_q.insert("caller".to_owned(), caller.clone());
            }
            if !line.is_empty() {
                api_q.insert("line".to_owned(), line.clone());
            }
            if !queue.is_empty() {
                api_q.insert("queue".to_owned(), queue.clone());
            }
            if let Some(c) = q.get("cursor") {
                api_q.insert("cursor".to_owned(), c.clone());
            }
            api_q.insert("reason".to_owned(), reason.clone());
            api_q.insert("limit".to_owned(), "20".to_owned());
            match crate::api::search::list(
                State(st.api.clone()),
                signed.caller.clone(),
                Query(api_q),
            )
            .await
            {
                Ok(axum::Json(v)) => {
                    let rows = v
                        .get("recordings")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let next = v
                        .get("next_cursor")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    found = Some((rows, next));
                }
                Err(ApiError::BadRequest { detail, .. }) => errors.push(detail),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let next_link = |cursor: &str| {
        let mut url = String::from("/console/search?");
        for (k, v) in [
            ("caller", &caller),
            ("from", &from),
            ("to", &to),
            ("line", &line),
            ("queue", &queue),
            ("reason", &reason),
        ] {
            url.push_str(&format!("{k}={}&", super::form_urlencoded_value(v)));
        }
        url.push_str(&format!("cursor={}", super::form_urlencoded_value(cursor)));
        url
    };
    let body = html! {
        (error_summary(&errors))
        form.search method="get" action="/console/search" {
            div.field {
                label for="caller" { "Caller's number" }
                p.hint #caller-hint { "Any usual form, for example 01744 676789, +44 1744 676789 or 0044 1744 676789. Leave empty to list every caller." }
                input #caller type="tel" name="caller" value=(caller) autocomplete="off" aria-describedby="caller-hint";
            }
            div.field-row {
                div.field {
                    label for="from" { "From (date)" }
                    input #from type="date" name="from" value=(from);
                }
                div.field {
                    label for="to" { "To (date, included)" }
                    input #to type="date" name="to" value=(to);
                }
            }
            div.field-row {
                div.field {
                    label for="line" { "Line dialled (optional)" }
                    input #line type="text" name="line" value=(line) autocomplete="off";
                }
                div.field {
                    label for="queue" { "Queue (optional)" }
                    input #queue type="text" name="queue" value=(queue) autocomplete="off";
                }
            }
            div.field {
                label for="reason" { "Reason for this search" }
                p.hint #reason-hint { "Recorded in the audit log, for example a complaint or request reference." }
                input #reason type="text" name="reason" value=(reason) required aria-describedby="reason-hint";
            }
            button type="submit" { "Search" }
        }
        @if let Some((rows, next)) = &found {
            h2 #results-heading { "Results" }
            p #result-count role="status" { (rows.len()) @if rows.len() == 1 { " recording" } @else { " recordings" } " on this page" }
            @if !rows.is_empty() {
                (results_table(rows))
            }
            @if let Some(c) = next {
                p { a #next-page href=(next_link(c)) { "Next page" } }
            }
        }
    };
    Ok(pages::respond(
        axum::http::StatusCode::OK,
        pages::page("Find recordings", Some(&signed), Nav::Search, body),
    ))
}

#[cfg(test)]
mod tests {
    use super::day;

    #[test]
    fn form_dates_become_the_days_bounds() {
        assert_eq!(
            day("2026-11-22", false).as_deref(),
            Some("2026-11-22T00:00:00Z")
        );
        assert_eq!(
            day("2026-11-30", true).as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(day("22/11/2026", false), None);
    }
}
