//! The checks `serve` makes before it touches state, shared with `check-config`, so that a config
//! `check-config` passes is one `serve` accepts: every secret file present and private, and each
//! secret parsed as its user parses it (keyring, webhook secret, caller pepper, signing key, OIDC
//! key set, platform keys, the TLS certificate and key, storage credentials).

use std::sync::Arc;

use crate::config::{Config, ConfigError, SecretFile};
use crate::ingest::webhook::WebhookSecret;
use crate::vault::Keyring;

use super::{StartError, store_kind, supervisor_access, tls};

/// Runs every check of `serve` that needs no catalog, object store or port. With
/// `secrets.create_missing` (development), a secret that is missing is not parsed: `serve` creates
/// it fresh.
pub fn preflight(config: &Config) -> Result<(), StartError> {
    config.check_secrets()?;
    let dev = config.secrets.create_missing;
    let present = |files: &[&SecretFile]| !dev || files.iter().all(|f| f.path().exists());
    let keyring = if present(&[&config.keys.keyring]) {
        Arc::new(Keyring::from_bytes(config.keys.keyring.read()?.expose())?)
    } else {
        Arc::new(Keyring::generate(chrono::Utc::now()))
    };
    if present(&[&config.secrets.webhook]) {
        WebhookSecret::from_secret(&config.secrets.webhook.read()?).map_err(|e| {
            ConfigError::Invalid {
                key: "secrets.webhook".to_owned(),
                reason: e.to_string(),
            }
        })?;
    }
    if present(&config.secret_files()) {
        crate::api::Platforms::load(config)?;
        supervisor_access(config, &keyring)?;
    }
    config.public.tls.as_ref().map(tls::acceptor).transpose()?;
    store_kind(config)?;
    Ok(())
}
