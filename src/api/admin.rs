//! The admin listener's routes: `/healthz` (the process answers), `/readyz` (storage and catalog
//! checks pass, and the spool takes writes), `/metrics` (Prometheus text). Bound to loopback only; no tokens, no data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::ApiError;
use crate::recorder::persist::Persistence;

/// Whether the daemon is ready, as the readiness checks last found. Shared between the checker
/// task and the `/readyz` handler; an atomic, because it is one bit read far more often than written.
pub type Readiness = Arc<AtomicBool>;

/// The admin routes. `/readyz` also reads the spool's health from `persistence` at once (not at
/// the next periodic check): a spool that cannot be written makes the daemon not ready.
pub fn admin_router(ready: Readiness, persistence: Persistence) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .with_state((ready, persistence))
}

async fn readyz(
    State((ready, persistence)): State<(Readiness, Persistence)>,
) -> Result<&'static str, ApiError> {
    if let Some(problem) = persistence.health().problem() {
        return Err(ApiError::Unavailable {
            code: "not_ready",
            detail: problem,
        });
    }
    if ready.load(Ordering::Acquire) {
        Ok("ready\n")
    } else {
        Err(ApiError::Unavailable {
            code: "not_ready",
            detail: "storage or catalog checks are failing".to_owned(),
        })
    }
}

async fn metrics() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
