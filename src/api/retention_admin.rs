//! The retention worker on the admin listener: `GET /retention` (status and counters as JSON) and
//! `POST /retention/sweep` (runs a sweep now and answers what it did). Loopback only, like the rest
//! of the admin routes.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ApiError;
use crate::retention::RetentionHandle;
use crate::retention::worker::SweepRequestError;

/// The retention routes, to merge into the admin router.
pub fn retention_routes(handle: RetentionHandle) -> Router {
    Router::new()
        .route("/retention", get(status))
        .route("/retention/sweep", post(sweep))
        .with_state(handle)
}

async fn status(State(handle): State<RetentionHandle>) -> Result<Json<Value>, ApiError> {
    let progress = handle
        .progress()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({
        "worker": handle.status(),
        "totals": {
            "sweeps": progress.sweeps,
            "expired": progress.expired,
            "erased": progress.erased,
            "last_started_at": progress.last_started_at.map(|t| t.to_rfc3339()),
            "last_finished_at": progress.last_finished_at.map(|t| t.to_rfc3339()),
            "last_deleted": progress.last_deleted,
            "last_error": progress.last_error,
        },
    })))
}

async fn sweep(State(handle): State<RetentionHandle>) -> Result<Json<Value>, ApiError> {
    match handle.sweep_now().await {
        Ok(report) => Ok(Json(json!({ "report": report }))),
        Err(e @ (SweepRequestError::Busy | SweepRequestError::Stopped)) => {
            Err(ApiError::Unavailable {
                code: "retention_busy",
                detail: e.to_string(),
            })
        }
        Err(SweepRequestError::Failed(e)) => Err(ApiError::internal(&e)),
    }
}
