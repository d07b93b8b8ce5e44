//! The page frame (header, navigation, skip link, sign-out) and the error and home pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::Signed;
use crate::api::ApiError;
use crate::domain::Role;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Search,
    Holds,
    Exports,
    Live,
    Audit,
    PciReview,
    Completeness,
    None,
}

/// A whole page: `title` (also the `<h1>`), the signed-in person's navigation, and `body`.
pub(super) fn page(title: &str, signed: Option<&Signed>, nav: Nav, body: Markup) -> Markup {
    let entries: &[(Nav, &str, &str)] = &[
        (Nav::Search, "/console/search", "Search"),
        (Nav::Holds, "/console/holds", "Holds"),
        (Nav::Exports, "/console/exports", "Subject access"),
        (Nav::Live, "/console/live", "Live calls"),
        (Nav::Completeness, "/console/completeness", "Completeness"),
    ];
    let compliance: &[(Nav, &str, &str)] = &[
        (Nav::Audit, "/console/audit", "Audit log"),
        (Nav::PciReview, "/console/pci-review", "PCI review"),
    ];
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - callvault" }
                link rel="stylesheet" href="/console/assets/console.css";
                @if let Some(s) = signed {
                    meta name="csrf-token" content=(s.csrf);
                }
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                header.site-header {
                    div.width {
                        a.brand href="/console/" { "callvault" }
                        @if let Some(s) = signed {
                            nav aria-label="Main" {
                                ul {
                                    @for (n, href, label) in entries.iter().chain(if s.caller.role == Role::Compliance { compliance.iter() } else { [].iter() }) {
                                        li {
                                            @if *n == nav {
                                                a href=(href) aria-current="page" { (label) }
                                            } @else {
                                                a href=(href) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                            div.who {
                                span { "Signed in as " strong { (s.caller.actor) } " (" (s.caller.role.as_str()) ")" }
                                form method="post" action="/console/sign-out" {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main .width tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page as a response.
pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// An error page with `status`.
pub(super) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    respond(
        status,
        page(
            title,
            None,
            Nav::None,
            html! {
                p { (detail) }
                p { a href="/console/" { "Back to the console" } }
            },
        ),
    )
}

/// What the API answered, as a page with the same status.
pub(super) fn api_error_page(e: ApiError) -> Response {
    let response = e.into_response();
    let status = response.status();
    let (title, text) = match status {
        StatusCode::FORBIDDEN => (
            "You do not have access",
            "Your role may not see this page or do this.".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("Not found", "There is nothing at this address.".to_owned()),
        StatusCode::UNAUTHORIZED => ("Signed out", "Sign in again.".to_owned()),
        s if s.is_server_error() => (
            "Sorry, something went wrong",
            "The service could not do this just now. Try again shortly.".to_owned(),
        ),
        _ => ("This could not be done", String::new()),
    };
    // the problem's own detail is written for people (it never holds internal error text)
    // the problem body is in memory already: it is read without waiting
    let detail = futures::FutureExt::now_or_never(axum::body::to_bytes(response.into_body(), 8192))
        .and_then(Result::ok)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned));
    let text = detail.unwrap_or(text);
    error_page(status, title, &text)
}

/// `GET /console/`: to the search page when signed in, else to sign in.
pub(super) async fn home(signed: Result<Signed, super::ConsoleError>) -> Redirect {
    match signed {
        Ok(_) => Redirect::to("/console/search"),
        Err(_) => Redirect::to("/console/sign-in"),
    }
}

/// An error summary at the top of a form (GOV.UK pattern), focused by the script.
pub(super) fn error_summary(errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" tabindex="-1" aria-labelledby="error-summary-title" {
                h2 #error-summary-title { "There is a problem" }
                ul { @for e in errors { li { (e) } } }
            }
        }
    }
}

/// A short date and time for people (UTC).
pub(super) fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%-d %b %Y %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// The API's message, or the status, of a failed action, for a notice on the page.
pub(super) async fn api_message(e: ApiError) -> String {
    let response = e.into_response();
    let status = response.status();
    axum::body::to_bytes(response.into_body(), 8192)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| match status {
            StatusCode::FORBIDDEN => "Your role may not do this.".to_owned(),
            StatusCode::NOT_FOUND => "Not found.".to_owned(),
            _ => "This could not be done; try again shortly.".to_owned(),
        })
}
