//! Reloading the keyring of a running daemon: on SIGHUP (`systemctl reload callvault`, the unit's
//! `ExecReload=`) and on `POST /keyring/reload` from the admin listener (which `callvault keys
//! rewrap` and `keys retire` call). The file is read and parsed again and refused, keeping the keys
//! loaded, if it lacks a key the catalog still uses.

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::catalog::{Catalog, CatalogError};
use crate::config::SecretFile;
use crate::domain::KeyId;
use crate::vault::{Keyring, Reloaded, VaultError};

/// Why a reload was refused; the keys loaded before stay loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Read(#[from] VaultError),
    /// The catalog could not say which keys it uses.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The new file lacks keys that stored data keys are wrapped under.
    #[error("the keyring file lacks keys the catalog uses: {}", .0.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", "))]
    MissingKeys(BTreeSet<KeyId>),
}

/// Reads `file` again and, if it holds every key the catalog uses, makes it the daemon's keyring.
pub async fn reload_keyring(
    keyring: &Keyring,
    catalog: &dyn Catalog,
    file: &SecretFile,
    trigger: &'static str,
) -> Result<Reloaded, ReloadError> {
    let result = async {
        let fresh = Keyring::load(file)?;
        let missing: BTreeSet<KeyId> = catalog
            .key_ids_in_use()
            .await?
            .into_iter()
            .filter(|id| !fresh.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(ReloadError::MissingKeys(missing));
        }
        Ok(keyring.replace_with(&fresh))
    }
    .await;
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    metrics::counter!("callvault_keyring_reloads_total", "trigger" => trigger, "result" => outcome)
        .increment(1);
    match &result {
        Ok(r) => info!(
            trigger,
            active = %r.active,
            previous_active = %r.previous_active,
            added = ?r.added.iter().map(KeyId::as_str).collect::<Vec<_>>(),
            removed = ?r.removed.iter().map(KeyId::as_str).collect::<Vec<_>>(),
            "keyring reloaded"
        ),
        Err(e) => {
            error!(trigger, error = %e, "keyring reload refused; the keys loaded before stay")
        }
    }
    result
}

/// Reloads the keyring on every SIGHUP until `shutdown`. The handler is installed by the caller
/// before it reports ready, so a SIGHUP never meets the default (fatal) disposition.
pub async fn on_sighup(
    mut hup: tokio::signal::unix::Signal,
    keyring: std::sync::Arc<Keyring>,
    catalog: std::sync::Arc<dyn Catalog>,
    file: SecretFile,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        // a refusal is logged and counted; the daemon carries on with the keys it has
        if let Err(e) = reload_keyring(&keyring, catalog.as_ref(), &file, "sighup").await {
            tracing::debug!(error = %e, "sighup reload refused");
        }
    }
}
