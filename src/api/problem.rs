//! `application/problem+json` errors (RFC 9457) with a stable `code`, decided in one place.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything an API handler can answer other than success. Each variant has one status and one
/// stable `code` that clients may match on; internal error text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route or no such resource.
    #[error("not found")]
    NotFound,
    /// The body is larger than `public.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The service is not ready (storage or catalog checks failing).
    #[error("not ready")]
    NotReady,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: String,
    status: u16,
    code: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = Problem {
            kind: "about:blank",
            title: self.to_string(),
            status: status.as_u16(),
            code,
        };
        let json = serde_json::to_vec(&body).expect("a problem always serializes");
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

/// The public router: the API of later issues is nested here. Anything unknown is a problem+json 404.
pub fn public_router() -> Router {
    Router::new().fallback(|| async { ApiError::NotFound })
}
