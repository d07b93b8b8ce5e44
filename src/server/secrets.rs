//! Development convenience: create every missing secret with fresh random material, mode 0600.
//! Only with `secrets.create_missing = true`; production keeps secrets where ops put them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use tracing::warn;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError, SecretFile};
use crate::vault::Keyring;

/// Creates each missing secret of `config`: a keyring with one fresh key, a `whsec_` webhook
/// secret, and 32 random bytes (base64) for the signing key seed and the caller pepper.
pub fn create_missing_secrets(config: &Config, now: DateTime<Utc>) -> Result<(), ConfigError> {
    let random = || {
        let mut b = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *b);
        Zeroizing::new(STANDARD.encode(*b).into_bytes())
    };
    let keyring = &config.keys.keyring;
    if !keyring.path().exists() {
        let fail = |e: &dyn std::fmt::Display| invalid(keyring, format!("cannot create: {e}"));
        ensure_parent(keyring)?;
        Keyring::generate(now)
            .write_file(keyring.path())
            .map_err(|e| fail(&e))?;
        warn!(path = %keyring.path().display(), "created a new keyring (secrets.create_missing)");
    }
    let webhook = || {
        let mut s = Zeroizing::new(b"whsec_".to_vec());
        s.extend_from_slice(&random());
        s
    };
    for (file, make) in [
        (
            &config.secrets.webhook,
            &webhook as &dyn Fn() -> Zeroizing<Vec<u8>>,
        ),
        (&config.secrets.signing_key, &random),
        (&config.secrets.caller_pepper, &random),
    ]
    .into_iter()
    .chain(
        // platform secrets, only for the adapters that are on
        config
            .secret_files()
            .into_iter()
            .filter(|f| f.key().starts_with("twilio.") || f.key().starts_with("audiohook."))
            .map(|f| (f, &random as &dyn Fn() -> Zeroizing<Vec<u8>>)),
    ) {
        if !file.path().exists() {
            ensure_parent(file)?;
            write_new(file, &make())?;
            warn!(path = %file.path().display(), "created a new secret (secrets.create_missing)");
        }
    }
    Ok(())
}

fn ensure_parent(file: &SecretFile) -> Result<(), ConfigError> {
    use std::os::unix::fs::DirBuilderExt;
    match file.path().parent() {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| invalid(file, format!("cannot create {}: {e}", dir.display()))),
        None => Ok(()),
    }
}

fn write_new(file: &SecretFile, bytes: &[u8]) -> Result<(), ConfigError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file.path())
        .map_err(|e| {
            invalid(
                file,
                format!("cannot create {}: {e}", file.path().display()),
            )
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| invalid(file, format!("cannot write {}: {e}", file.path().display())))
}

fn invalid(file: &SecretFile, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: file.key().to_owned(),
        reason,
    }
}
