//! `application/problem+json` errors (RFC 9457) with a stable `code`, decided in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

/// Everything an API handler can answer other than success. Each variant has one status and one
/// stable `code` that clients may match on; internal error text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// A token that is unknown, revoked, expired or badly signed.
    #[error("invalid credentials")]
    InvalidToken,
    /// Authenticated, but the role may not do this.
    #[error("this role may not do that")]
    Forbidden,
    /// A webhook whose signature is missing, wrong, or too old.
    #[error("{detail}")]
    BadSignature {
        /// The stable code (`missing_signature`, `bad_signature`, `stale_timestamp`).
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The request is malformed; `detail` names the field.
    #[error("{detail}")]
    BadRequest {
        /// The stable code, e.g. `missing_field`, `unknown_type`.
        code: &'static str,
        /// What is wrong, naming the field.
        detail: String,
    },
    /// No route or no such resource.
    #[error("not found")]
    NotFound,
    /// The request conflicts with the state of the resource.
    #[error("{detail}")]
    Conflict {
        /// The stable code, e.g. `call_ended`, `held`.
        code: &'static str,
        /// Why.
        detail: String,
    },
    /// The body is larger than `public.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A `Range` that lies outside the resource.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The resource's length, for `Content-Range: bytes */len`.
        len: u64,
    },
    /// Too many live calls, or the service is not ready.
    #[error("{detail}")]
    Unavailable {
        /// The stable code, e.g. `too_many_calls`, `not_ready`.
        code: &'static str,
        /// Why.
        detail: String,
    },
    /// The request is well formed but its content cannot be used (a corrupt upload, audio that
    /// disagrees with its metadata, an expired import).
    #[error("{detail}")]
    Unprocessable {
        /// The stable code, e.g. `corrupt_file`, `expired`.
        code: &'static str,
        /// Why.
        detail: String,
    },
    /// The uploaded media's format is not one callvault reads.
    #[error("{detail}")]
    UnsupportedMedia {
        /// The stable code, e.g. `unsupported_format`.
        code: &'static str,
        /// Which format, and what to do.
        detail: String,
    },
    /// Something failed inside; the cause is logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A `BadRequest`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// Logs `cause` and answers 500 without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "request failed");
        ApiError::Internal
    }

    /// The stable `code`, as the problem body gives it.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::BadSignature { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::UnsupportedMedia { code, .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, code),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            ApiError::BadSignature { detail, .. }
            | ApiError::BadRequest { detail, .. }
            | ApiError::Conflict { detail, .. }
            | ApiError::Unavailable { detail, .. }
            | ApiError::Unprocessable { detail, .. }
            | ApiError::UnsupportedMedia { detail, .. } => Some(detail.clone()),
            _ => None,
        };
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            code,
            detail,
        };
        let json = serde_json::to_vec(&body).expect("a problem always serializes");
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        match &self {
            ApiError::Unauthenticated | ApiError::InvalidToken => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::Unavailable { .. } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

/// What a 503 asks the client to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// Rejections made before a handler runs (axum's extractors: a body over the limit, a method the
/// route does not take, a malformed query) come as plain text; this layer turns each error response
/// that is not already `application/problem+json` into one, with a stable code from its status.
pub async fn problem_rejections(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        s if s.is_server_error() => "internal",
        _ => "rejected",
    };
    let (parts, body) = response.into_parts();
    // the extractors' own text (e.g. "length limit exceeded") is safe to show; a server error's is not
    let detail = if status.is_client_error() {
        axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let problem = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("error"),
        status: status.as_u16(),
        code,
        detail,
    };
    let json = serde_json::to_vec(&problem).expect("a problem always serializes");
    let mut out = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

// --- retention (issue 4): how retention, hold and remedy errors answer
impl From<crate::retention::RetentionError> for ApiError {
    fn from(e: crate::retention::RetentionError) -> Self {
        use crate::retention::RetentionError as R;
        match e {
            R::Catalog(e) => ApiError::internal(&e),
            R::UnknownRecording(_) | R::UnknownSegment { .. } | R::UnknownHold(_) => {
                ApiError::NotFound
            }
            R::Held { .. } => ApiError::Conflict {
                code: "held",
                detail: e.to_string(),
            },
            R::NoAudio { .. } => ApiError::Conflict {
                code: "no_audio",
                detail: e.to_string(),
            },
            R::SegmentNotStored { .. } => ApiError::Conflict {
                code: "segment_not_stored",
                detail: e.to_string(),
            },
            R::NotUploaded(_) => ApiError::Unavailable {
                code: "not_uploaded",
                detail: "a segment is still waiting for upload; try again shortly".into(),
            },
            R::HoldReleased(_) => ApiError::Conflict {
                code: "hold_released",
                detail: e.to_string(),
            },
            R::ReasonRequired => ApiError::bad_request("missing_field", "reason is required"),
            R::Transition { error, .. } => {
                use crate::domain::TransitionError as T;
                let code = match error {
                    T::Live | T::NoAudio(_) | T::Destroyed(_) | T::NotLive(_) => "no_audio",
                    T::RefusalHeld => "refusal_held",
                    T::AlreadyRefused => "refused",
                    T::NotUnderReview(_) => "not_under_review",
                };
                ApiError::Conflict {
                    code,
                    detail: e.to_string(),
                }
            }
            R::InProgress(_) => ApiError::Conflict {
                code: "deletion_in_progress",
                detail: e.to_string(),
            },
            R::Changed(_) => ApiError::Conflict {
                code: "changed",
                detail: e.to_string(),
            },
        }
    }
}

// --- imported recordings (issue 17): how an import's failure answers
impl From<crate::import::ImportError> for ApiError {
    fn from(e: crate::import::ImportError) -> Self {
        use crate::domain::import::ImportRefusal;
        use crate::import::ImportError as I;
        let code = e.code();
        match e {
            I::MissingField(_)
            | I::BadField { .. }
            | I::Read(_)
            | I::Refused(ImportRefusal::EndsBeforeStart { .. } | ImportRefusal::NoExpiry) => {
                ApiError::BadRequest {
                    code,
                    detail: e.to_string(),
                }
            }
            I::Unsupported(_) => ApiError::UnsupportedMedia {
                code,
                detail: e.to_string(),
            },
            I::Corrupt(_)
            | I::DurationMismatch { .. }
            | I::Refused(ImportRefusal::Expired { .. }) => ApiError::Unprocessable {
                code,
                detail: e.to_string(),
            },
            I::TooLarge => ApiError::PayloadTooLarge,
            I::Conflict { .. } => ApiError::Conflict {
                code,
                detail: e.to_string(),
            },
            I::Stopped => ApiError::Unavailable {
                code: "stopping",
                detail: "the daemon is stopping; try again shortly".into(),
            },
            I::Vault(_) | I::Catalog(_) => ApiError::internal(&e),
        }
    }
}
