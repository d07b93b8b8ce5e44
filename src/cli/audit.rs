//! `callvault audit verify [--checkpoint FILE]` and `callvault audit checkpoint`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;

use super::PAGE;
use crate::audit::{ChainVerifier, Checkpoint, Checkpointer, Trigger};
use crate::config::Config;
use crate::domain::Clock;
use crate::export::{BundleSigner, MANIFEST, parse_public_key};
use crate::server;

/// The audit chain.
#[derive(Debug, clap::Subcommand)]
pub(super) enum AuditCommand {
    /// Walk the chain and name the first entry that is altered, missing or out of order; and
    /// check that it still reaches the newest checkpoint stored in the catalog and, with
    /// --checkpoint, one kept elsewhere.
    Verify {
        /// A checkpoint kept outside the database: the document `GET /v1/audit/head` or `callvault
        /// audit checkpoint` gives, the daemon's "audit checkpoint" log lines (the last one in the
        /// file counts), or an export bundle (ZIP) that carries one.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The signing public key (base64, as `GET /v1/signing-key` gives it); default: the
        /// configured `secrets.signing_key`'s.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign the chain's head now, store it, and print it (keep it somewhere else).
    Checkpoint,
}

pub(super) async fn run(
    command: AuditCommand,
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { checkpoint, key } => verify(config, checkpoint, key).await,
        AuditCommand::Checkpoint => {
            let signer = signer(&config)?;
            let catalog = server::open_catalog(&config).await?;
            let cp = Checkpointer::new(catalog, Arc::new(signer), clock)
                .checkpoint(Trigger::Request)
                .await?;
            println!("{}", cp.to_document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn signer(config: &Config) -> anyhow::Result<BundleSigner> {
    Ok(BundleSigner::from_secret(
        &config.secrets.signing_key.read()?,
    )?)
}

/// The key checkpoints must be signed by: the file given, else the configured signing key's.
fn public_key(config: &Config, key: Option<&Path>) -> anyhow::Result<VerifyingKey> {
    match key {
        Some(k) => {
            let text = std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?;
            parse_public_key(&text)
                .with_context(|| format!("{}: not a base64 ed25519 public key", k.display()))
        }
        None => Ok(signer(config)?.public_key()),
    }
}

/// Reads a checkpoint from a file: a bundle's manifest, or text that holds one.
fn read_checkpoint(path: &Path) -> anyhow::Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"PK\x03\x04") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
            .with_context(|| format!("{}: not a readable zip", path.display()))?;
        let mut manifest = Vec::new();
        zip.by_name(MANIFEST)
            .with_context(|| format!("{}: no {MANIFEST}", path.display()))?
            .read_to_end(&mut manifest)?;
        let v: serde_json::Value = serde_json::from_slice(&manifest)
            .with_context(|| format!("{}: {MANIFEST} is not json", path.display()))?;
        let Some(cp) = v.get("audit_checkpoint").filter(|c| !c.is_null()) else {
            bail!("{}: the bundle carries no audit checkpoint", path.display());
        };
        return Checkpoint::from_json(cp).with_context(|| path.display().to_string());
    }
    let text = String::from_utf8_lossy(&bytes);
    Checkpoint::find_in_text(&text).with_context(|| path.display().to_string())
}

async fn verify(
    config: Config,
    file: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let catalog = server::open_catalog(&config).await?;
    let mut checks: Vec<(String, Checkpoint)> = Vec::new();
    if let Some(path) = &file {
        let cp = read_checkpoint(path)?;
        let key = public_key(&config, key.as_deref())?;
        if let Err(e) = cp.verify(&key) {
            println!("checkpoint {}: {e}", path.display());
            return Ok(ExitCode::FAILURE);
        }
        checks.push((path.display().to_string(), cp));
    }
    if let Some(stored) = catalog.latest_checkpoint().await? {
        // a stored checkpoint signed by another key (an older signing key) proves nothing here
        match public_key(&config, key.as_deref()).map(|k| stored.verify(&k)) {
            Ok(Ok(())) => checks.push(("the catalog".to_owned(), stored)),
            Ok(Err(e)) => println!("note: the newest stored checkpoint is not used: {e}"),
            Err(e) => {
                println!("note: the stored checkpoint cannot be checked, no signing key: {e}")
            }
        }
    }
    let mut verifier = ChainVerifier::new();
    for (_, cp) in &checks {
        verifier = verifier.against(cp.head());
    }
    let mut after = 0;
    loop {
        let page = catalog.audit_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| verifier.push(e));
    }
    match verifier.finish() {
        Ok((head, count)) => {
            println!("audit chain intact: {count} entries; head {head}");
            for (from, cp) in &checks {
                println!(
                    "reaches the checkpoint of entry {} signed {} (from {from})",
                    cp.seq,
                    cp.at.to_rfc3339()
                );
            }
            if checks.is_empty() {
                println!(
                    "no checkpoint to check against: entries cut off the end would not show (pass --checkpoint)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit chain broken: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
