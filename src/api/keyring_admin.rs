//! The keyring on the admin listener (loopback only): `GET /keyring` names the keys the running
//! daemon holds (ids only, never key material) and `POST /keyring/reload` reads the keyring file
//! again, as SIGHUP does. `callvault keys rewrap` and `keys retire` use both, so they never act
//! while the daemon still wraps new data keys under an older key.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ApiError;
use crate::catalog::Catalog;
use crate::config::SecretFile;
use crate::domain::KeyId;
use crate::server::{ReloadError, reload_keyring};
use crate::vault::Keyring;

/// What the keyring routes need.
#[derive(Clone)]
pub struct KeyringAdmin {
    /// The daemon's live keyring.
    pub keyring: Arc<Keyring>,
    /// The catalog, to refuse a file that lacks a key in use.
    pub catalog: Arc<dyn Catalog>,
    /// The keyring file.
    pub file: SecretFile,
}

/// The keyring routes, to merge into the admin router.
pub fn keyring_routes(state: KeyringAdmin) -> Router {
    Router::new()
        .route("/keyring", get(status))
        .route("/keyring/reload", post(reload))
        .with_state(state)
}

fn describe(keyring: &Keyring) -> Value {
    json!({
        "active": keyring.active().as_str(),
        "keys": keyring.key_ids().iter().map(|(id, _)| id.as_str().to_owned()).collect::<Vec<_>>(),
    })
}

async fn status(State(st): State<KeyringAdmin>) -> Json<Value> {
    Json(describe(&st.keyring))
}

async fn reload(State(st): State<KeyringAdmin>) -> Result<Json<Value>, ApiError> {
    match reload_keyring(&st.keyring, st.catalog.as_ref(), &st.file, "admin").await {
        Ok(r) => {
            let ids = |v: &[KeyId]| v.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>();
            let mut body = describe(&st.keyring);
            body["added"] = json!(ids(&r.added));
            body["removed"] = json!(ids(&r.removed));
            Ok(Json(body))
        }
        Err(e @ (ReloadError::Read(_) | ReloadError::MissingKeys(_))) => Err(ApiError::Conflict {
            code: "keyring_refused",
            detail: e.to_string(),
        }),
        Err(ReloadError::Catalog(e)) => Err(ApiError::Unavailable {
            code: "catalog_unavailable",
            detail: e.to_string(),
        }),
    }
}
