//! `callvault init`: a fresh install in one step. Creates, mode 0600, each secret the config names
//! that callvault can make and that is missing; never overwrites one; names the secrets that must
//! come from elsewhere; and prints what the telephony platform and bundle verifiers need.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::export::BundleSigner;
use crate::server::{Scope, SecretState, create_secrets};

/// Runs `init` and returns the text to print and the exit code: 0 when every secret is in place,
/// 64 when one must still be supplied by hand or one that exists is unusable.
pub fn init(config: &Config, now: DateTime<Utc>) -> anyhow::Result<(String, ExitCode)> {
    let outcomes = create_secrets(config, now, Scope::Install)?;
    let mut out = String::new();
    let mut problems = 0;
    for s in &outcomes {
        let path = s.path.display();
        match s.state {
            SecretState::Created => writeln!(out, "created {path} ({}, mode 0600)", s.key)?,
            SecretState::Kept => {
                let file = config
                    .secret_files()
                    .into_iter()
                    .find(|f| f.key() == s.key)
                    .expect("the outcome names a configured secret");
                match file.check() {
                    Ok(()) => writeln!(out, "kept {path} ({}): it exists, not overwritten", s.key)?,
                    Err(e) => {
                        problems += 1;
                        writeln!(out, "problem {path}: {e}")?;
                    }
                }
            }
            SecretState::MissingExternal => {
                problems += 1;
                writeln!(
                    out,
                    "missing {path} ({}): callvault cannot make this one; put it there with mode 0600",
                    s.key
                )?;
            }
        }
    }
    let webhook = config.secrets.webhook.path();
    if webhook.exists() {
        writeln!(
            out,
            "\ntelephony platform: sign call events with the Standard Webhooks secret in {} \
             (give it to the platform; it is shown nowhere else)",
            webhook.display()
        )?;
    }
    if config.audiohook.enabled && config.audiohook.api_key.path().exists() {
        writeln!(
            out,
            "genesys audiohook: enter the API key in {} and the client secret in {} in the integration",
            config.audiohook.api_key.path().display(),
            config.audiohook.client_secret.path().display()
        )?;
    }
    if config.secrets.signing_key.path().exists() {
        let signer = BundleSigner::from_secret(&config.secrets.signing_key.read()?)
            .map_err(|e| anyhow::anyhow!("secrets.signing_key: {e}"))?;
        writeln!(
            out,
            "export bundles are signed by the ed25519 public key {} \
             (`callvault verify BUNDLE --key FILE` with it in FILE)",
            signer.public_key_b64()
        )?;
    }
    if problems == 0 {
        writeln!(out, "next: callvault check-config")?;
        Ok((out, ExitCode::SUCCESS))
    } else {
        writeln!(
            out,
            "{problems} secret(s) to fix before `callvault check-config` passes"
        )?;
        Ok((out, ExitCode::from(super::EX_CONFIG)))
    }
}
