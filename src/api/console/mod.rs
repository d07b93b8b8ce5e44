//! The supervisor web console under `/console/` (issue 15): server-rendered pages for search,
//! playback with a waveform, holds, subject-access exports, live listening and the compliance
//! tasks, signed in by a bearer token or OIDC (authorization code with PKCE).
//!
//! Architecture invariant: the console decides no rule of its own. Every page and action builds the
//! API's [`Caller`](crate::api::auth::Caller) from the session and calls the API's own handler
//! (search, recordings, holds, exports, erasure, audit, listen), so roles, masking, reasons and
//! audit entries are exactly the API's; a console page shows what that handler answered, and a
//! control is hidden only as a courtesy (typing its URL gets the handler's 403).
//!
//! Every response carries a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline script), `X-Frame-Options: DENY` and `no-store`; assets are compiled into the
//! binary. Every state change is a POST carrying the session's CSRF token.

mod assets;
mod completeness;
mod compliance;
mod exports;
mod holds;
mod live;
mod markers;
mod oidc;
mod pages;
mod recording;
mod search;
mod session;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{ApiError, ApiState};
use session::SessionStore;
use session::Signed;

/// The Content-Security-Policy of every console response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Largest form body the console reads.
const MAX_FORM: usize = 16 * 1024;

/// What console handlers share: the API's state, the sessions, the OIDC client.
#[derive(Clone)]
pub(super) struct Console {
    api: ApiState,
    sessions: SessionStore,
    oidc: Option<Arc<oidc::OidcClient>>,
}

/// Why a console request was not served.
#[derive(Debug)]
pub(super) enum ConsoleError {
    /// Not signed in (or the session ended): to the sign-in page, then back to `next`.
    SignIn {
        /// The page to return to after signing in (GET requests only).
        next: Option<String>,
    },
    /// A state change without this session's CSRF token, or sent by another site.
    Csrf,
    /// What the API handler answered.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn { next: Some(next) } => {
                let q = form_urlencoded_value(&next);
                Redirect::to(&format!("/console/sign-in?next={q}")).into_response()
            }
            ConsoleError::SignIn { next: None } => pages::error_page(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Your session has ended. Sign in again.",
            ),
            ConsoleError::Csrf => pages::error_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form was out of date or came from another site. Go back, reload the page and try again.",
            ),
            ConsoleError::Api(e) => pages::api_error_page(e),
        }
    }
}

/// `s` encoded for a query string value.
pub(super) fn form_urlencoded_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Security headers on every console response.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The console's routes, or none when `console.enabled` is off.
pub(super) fn router(api: ApiState) -> Router {
    if !api.config.console.enabled {
        return Router::new();
    }
    let oidc = api
        .config
        .console
        .oidc
        .as_ref()
        .zip(api.config.auth.oidc.as_ref())
        .map(|(c, a)| Arc::new(oidc::OidcClient::new(c.clone(), a.clone())));
    let state = Console {
        sessions: SessionStore::new(api.config.console.max_sessions),
        api,
        oidc,
    };
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::home))
        .route("/console/assets/{name}", get(assets::asset))
        .route(
            "/console/sign-in",
            get(signin::page).post(signin::with_token),
        )
        .route("/console/sign-out", post(signin::sign_out))
        .route("/console/oidc/start", get(signin::oidc_start))
        .route("/console/oidc/callback", get(signin::oidc_callback))
        .route("/console/search", get(search::page))
        .route("/console/recordings/{id}", get(recording::page))
        .route("/console/recordings/{id}/audio", get(recording::audio))
        .route("/console/recordings/{id}/peaks", get(recording::peaks))
        .route(
            "/console/recordings/{id}/hold",
            post(holds::place_on_recording),
        )
        .route("/console/recordings/{id}/erase", post(compliance::erase))
        .route(
            "/console/recordings/{id}/restrict",
            post(compliance::restrict),
        )
        .route(
            "/console/recordings/{id}/unrestrict",
            post(compliance::unrestrict),
        )
        .route("/console/recordings/{id}/excise", post(compliance::excise))
        .route(
            "/console/holds",
            get(holds::page).post(holds::place_on_caller),
        )
        .route("/console/holds/{reference}/release", post(holds::release))
        .route("/console/exports", get(exports::page).post(exports::start))
        .route("/console/exports/{id}", get(exports::progress))
        .route("/console/exports/{id}/status", get(exports::status))
        .route("/console/exports/{id}/bundle", get(exports::bundle))
        .route("/console/audit", get(compliance::audit))
        .route("/console/audit/verify", post(compliance::verify))
        .route("/console/pci-review", get(compliance::pci_review))
        .route("/console/completeness", get(completeness::page))
        .route("/console/live", get(live::page))
        .route("/console/calls/{call_id}/listen", get(live::listen))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}
