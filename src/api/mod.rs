//! The HTTP API: routes, authentication, and the one place where errors become status codes.
//!
//! Architecture invariant: status codes and JSON DTOs never leave this module; handlers call the
//! catalog, vault and recorder through their own types. Every route but the admin listener's
//! authenticates: bearer tokens for people and media sockets, Standard Webhooks signatures for events.

mod admin;
mod audiohook;
mod audit_log;
pub mod auth;
mod completeness;
// the supervisor web console (issue 15)
mod console;
mod events;
mod exports;
mod listen;
mod media;
pub mod oidc;
mod problem;
pub mod range;
mod recordings;
mod search;
mod socket;
// retention (issue 4)
mod erasure;
mod holds;
// imported recordings (issue 17)
mod imports;
mod keyring_admin;
mod platforms;
mod retention_admin;
mod twilio;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;

pub use admin::{Readiness, admin_router};
pub use completeness::completeness_routes;
pub use exports::ExportJobs;
pub use keyring_admin::{KeyringAdmin, keyring_routes};
pub use platforms::Platforms;
pub use problem::ApiError;
pub use retention_admin::retention_routes;

use axum::extract::ws::WebSocketUpgrade;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::Clock;
use crate::export::BundleSigner;
use crate::ingest::webhook::WebhookSecret;
use crate::recorder::Recorder;
use crate::vault::{CallerKeys, Keyring};

/// The `reason` query parameter an access must give (playing, listening), trimmed and non-empty;
/// otherwise 400 `missing_field` saying what it is required for.
pub(crate) fn query_reason(
    q: &std::collections::HashMap<String, String>,
    to: &str,
) -> Result<String, ApiError> {
    q.get("reason")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request("missing_field", format!("reason is required to {to}"))
        })
}

/// Largest WebSocket message a telephony socket reads at all; each protocol checks its own,
/// smaller limit per frame.
const MAX_SOCKET_MESSAGE: usize = 1 << 20;
/// Initial read buffer of a telephony socket. A platform sends a frame every 20 ms, a few hundred
/// bytes to a few KiB, so a small buffer is read as often as a large one; tungstenite's default
/// (128 KiB) would cost 128 KiB of memory per call once its pages are touched. A larger message
/// grows the buffer for as long as it needs.
const SOCKET_READ_BUFFER: usize = 4 * 1024;

/// The limits and buffers every telephony WebSocket (native media, Twilio, AudioHook) is read
/// with; the load generator's baseline uses the same, so the two are compared like for like.
pub fn telephony_socket(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(SOCKET_READ_BUFFER)
        .max_message_size(MAX_SOCKET_MESSAGE)
        .max_frame_size(MAX_SOCKET_MESSAGE)
}

/// What the handlers share: a cheap `Clone` of handles.
#[derive(Clone)]
pub struct ApiState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The object store of sealed audio.
    pub store: Arc<dyn ObjectStore>,
    /// Key-encryption keys, to unwrap segment keys for playback.
    pub keyring: Arc<Keyring>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Live calls.
    pub recorder: Recorder,
    /// The secret that signs native events.
    pub webhook: Arc<WebhookSecret>,
    /// Cancelled when the daemon stops; long-lived sockets close on it.
    pub shutdown: CancellationToken,
    /// Caller numbers' lookup tags and sealing (issue 5).
    pub callers: CallerKeys,
    /// The key that signs export bundles (issue 5).
    pub signer: Arc<BundleSigner>,
    /// OIDC JWT verification, when configured (issue 5).
    pub oidc: Option<Arc<oidc::OidcVerifier>>,
    /// Export jobs of this node (issue 5).
    pub exports: ExportJobs,
    /// The keys of the telephony platform adapters.
    pub platforms: Arc<Platforms>,
    /// Open listen and media sockets, closed when their credential ends (issue 12).
    pub sessions: auth::Sessions,
    /// Signs the audit chain's head for `GET /v1/audit/head` and export bundles (issue 12).
    pub checkpoints: crate::audit::Checkpointer,
    /// Imports finished recordings (issue 17).
    pub importer: crate::import::Importer,
}

/// The public router.
pub fn public_router(state: ApiState) -> Router {
    let max_body = state.config.public.max_body_bytes;
    Router::new()
        .route("/v1/events", post(events::post_event))
        .route("/v1/calls/{call_id}/media", get(media::media))
        // telephony platform adapters (Twilio, Genesys AudioHook); 404 unless enabled
        .route("/v1/twilio/events", post(twilio::events))
        .route("/v1/twilio/media", get(twilio::media))
        .route("/v1/audiohook", get(audiohook::audiohook))
        .route("/v1/recordings/{id}", get(recordings::get_one))
        .route("/v1/recordings/{id}/audio", get(recordings::audio))
        // supervisor access (issue 5): search (or one call's recording with call_id=), exports and
        // SARs, the bundle signing key, the audit trail, live listen
        .route("/v1/recordings", get(search::list))
        .route("/v1/exports", post(exports::start))
        .route("/v1/exports/{id}", get(exports::status))
        .route("/v1/exports/{id}/bundle", get(exports::bundle))
        .route("/v1/sars", get(exports::sars))
        .route("/v1/sars/{reference}/close", post(exports::close_sar))
        .route("/v1/signing-key", get(exports::signing_key))
        .route("/v1/audit", get(audit_log::list))
        .route("/v1/audit/head", get(audit_log::head))
        .route("/v1/calls/{call_id}/listen", get(listen::listen))
        // every call accounted for (issue 16)
        .route("/v1/completeness", get(completeness::report))
        // retention (issue 4): holds, erasure, restriction, excision
        .route("/v1/holds", post(holds::place).get(holds::list))
        .route("/v1/holds/{reference}/release", post(holds::release))
        .route("/v1/recordings/{id}", delete(erasure::erase))
        .route("/v1/recordings/{id}/restrict", post(erasure::restrict))
        .route("/v1/recordings/{id}/unrestrict", post(erasure::unrestrict))
        .route(
            "/v1/recordings/{id}/segments/{n}/excise",
            post(erasure::excise),
        )
        // imported recordings (issue 17): a streamed upload, bounded by import.max_bytes instead
        .route(
            "/v1/imports",
            post(imports::create).layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(state.config.import.max_bytes).unwrap_or(usize::MAX),
            )),
        )
        .route("/v1/imports/{id}/clear-review", post(imports::clear_review))
        .fallback(|| async { ApiError::NotFound })
        // bodies are read with an explicit limit by the handlers that take one; this is the backstop
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        // every rejection, even one made before a handler runs, is problem+json
        .layer(axum::middleware::map_response(problem::problem_rejections))
        .with_state(state.clone())
        // the web console (issue 15): HTML pages with their own headers and error pages
        .merge(console::router(state))
}
