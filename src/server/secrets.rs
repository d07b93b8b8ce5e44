//! Creating secrets: `callvault init` (a fresh install) and, for development only,
//! `secrets.create_missing = true` at start-up. Each missing secret is written with fresh random
//! material, mode 0600, with `O_CREAT|O_EXCL`: an existing file is never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use tracing::warn;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError, SecretFile};
use crate::vault::Keyring;

/// What happened to one secret the config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    /// It did not exist and was created.
    Created,
    /// It existed and was left as it was.
    Kept,
    /// It does not exist and callvault cannot make it: it comes from elsewhere (a platform's
    /// token, a TLS key, a database password, storage credentials).
    MissingExternal,
}

/// One secret the config names and what [`create_secrets`] did with it.
#[derive(Debug, Clone)]
pub struct SecretOutcome {
    /// The dotted config key.
    pub key: String,
    /// The resolved path.
    pub path: PathBuf,
    /// What was done.
    pub state: SecretState,
}

/// Which secrets [`create_secrets`] may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `callvault init`: the secrets callvault owns (keyring, webhook secret, signing key, caller
    /// pepper, and the AudioHook key and client secret, which the operator enters in Genesys).
    Install,
    /// Development (`secrets.create_missing`): also stand-ins for secrets a platform issues, so a
    /// dev config with Twilio on starts without a real Auth Token.
    Development,
}

/// Creates each missing secret of `config` that `scope` allows, and reports every secret.
pub fn create_secrets(
    config: &Config,
    now: DateTime<Utc>,
    scope: Scope,
) -> Result<Vec<SecretOutcome>, ConfigError> {
    let mut out = Vec::new();
    for file in config.secret_files() {
        let key = file.key();
        let make = match key {
            "keys.keyring" => Some(Material::Keyring),
            "secrets.webhook" => Some(Material::Webhook),
            "secrets.signing_key" | "secrets.caller_pepper" => Some(Material::Random),
            k if k.starts_with("audiohook.") => Some(Material::Random),
            k if k.starts_with("twilio.") && scope == Scope::Development => Some(Material::Random),
            _ => None,
        };
        let state = if file.path().exists() {
            SecretState::Kept
        } else if let Some(make) = make {
            let bytes = match make {
                Material::Keyring => Keyring::generate(now)
                    .to_bytes()
                    .map_err(|e| invalid(file, format!("cannot create: {e}")))?,
                Material::Webhook => {
                    let mut s = Zeroizing::new(b"whsec_".to_vec());
                    s.extend_from_slice(&random_b64());
                    s
                }
                Material::Random => random_b64(),
            };
            ensure_parent(file)?;
            write_new(file, &bytes)?;
            SecretState::Created
        } else {
            SecretState::MissingExternal
        };
        out.push(SecretOutcome {
            key: key.to_owned(),
            path: file.path().to_owned(),
            state,
        });
    }
    Ok(out)
}

/// Development convenience (`secrets.create_missing = true`): creates every missing secret, with a
/// warning for each.
pub fn create_missing_secrets(config: &Config, now: DateTime<Utc>) -> Result<(), ConfigError> {
    for s in create_secrets(config, now, Scope::Development)? {
        if s.state == SecretState::Created {
            warn!(key = %s.key, path = %s.path.display(), "created a new secret (secrets.create_missing)");
        }
    }
    Ok(())
}

/// What a secret callvault makes holds.
enum Material {
    /// A keyring with one fresh key.
    Keyring,
    /// `whsec_` and base64 of 32 random bytes.
    Webhook,
    /// Base64 of 32 random bytes.
    Random,
}

fn random_b64() -> Zeroizing<Vec<u8>> {
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *b);
    Zeroizing::new(STANDARD.encode(*b).into_bytes())
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
    let path = file.path();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| invalid(file, format!("cannot create {}: {e}", path.display())))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        // a half-written secret would be kept by the next run: remove it, and report the write error
        drop(f);
        if let Err(rm) = std::fs::remove_file(path) {
            warn!(path = %path.display(), error = %rm, "cannot remove a half-written secret");
        }
        return Err(invalid(
            file,
            format!("cannot write {}: {e}", path.display()),
        ));
    }
    Ok(())
}

fn invalid(file: &SecretFile, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: file.key().to_owned(),
        reason,
    }
}
