//! `callvault export` and `callvault verify`: the same bundle as the API builds, made offline
//! from the catalog and object store with a progress bar; and the offline check of a bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{
    BundleRequest, Progress, Sources, parse_public_key, plan, verify_bundle, write_bundle,
};
use crate::audit::{Checkpointer, NewAuditEntry, Trigger};
use crate::catalog::SarRow;
use crate::config::Config;
use crate::domain::{CallerNumber, Clock, Period, Role};
use crate::server;
use crate::vault::{self, Keyring};

/// What `callvault export` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The data subject's number, in any usual form (`01744 676789`, `+44 1744 676789`).
    #[arg(long)]
    pub caller: String,
    /// Calls that started at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// The subject access request's reference.
    #[arg(long)]
    pub sar_reference: String,
    /// When the request was received (RFC 3339; default now).
    #[arg(long)]
    pub received_at: Option<DateTime<Utc>>,
    /// Why the bundle is made (recorded in the audit chain).
    #[arg(long)]
    pub reason: String,
    /// The role the bundle is made for: `supervisor` leaves out restricted recordings.
    #[arg(long, default_value = "compliance")]
    pub role: Role,
    /// Where to write the ZIP (refuses to overwrite a file).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `callvault export`.
pub async fn export(
    args: ExportArgs,
    config: Config,
    clock: Arc<dyn Clock>,
    actor: String,
) -> anyhow::Result<ExitCode> {
    if !matches!(args.role, Role::Supervisor | Role::Compliance) {
        bail!("--role must be supervisor or compliance");
    }
    let number: CallerNumber = args
        .caller
        .parse()
        .map_err(|e| anyhow::anyhow!("--caller: {e}"))?;
    // the file first: an export that cannot be written records nothing and audits nothing
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.clone();
    match write(args, number, config, clock, actor, file).await {
        Ok(code) => Ok(code),
        Err(e) => {
            // ours (created above), incomplete or unaudited: nothing is disclosed without its entry
            if let Err(rm) = std::fs::remove_file(&out) {
                tracing::warn!(path = %out.display(), error = %rm, "cannot remove the unfinished bundle");
            }
            Err(e)
        }
    }
}

async fn write(
    args: ExportArgs,
    number: CallerNumber,
    config: Config,
    clock: Arc<dyn Clock>,
    actor: String,
    file: std::fs::File,
) -> anyhow::Result<ExitCode> {
    let keyring = Arc::new(Keyring::from_bytes(config.keys.keyring.read()?.expose())?);
    let access = server::supervisor_access(&config, &keyring)?;
    let (callers, signer) = (access.callers, access.signer);
    let catalog = server::open_catalog(&config).await?;
    let store = vault::open_store(&server::store_kind(&config)?)?;
    let now = clock.now();
    let received = args.received_at.unwrap_or(now);
    let tag = callers.tag(&number);
    catalog
        .record_sar(&SarRow {
            reference: args.sar_reference.clone(),
            received_at: received,
            due_at: Period::months(1).after(received).unwrap_or(received),
            caller_tag: Some(tag),
            actor: actor.clone(),
            reason: args.reason.clone(),
            closed_at: None,
            closed_by: None,
            close_reason: None,
        })
        .await?;
    let compliance = args.role == Role::Compliance;
    let request = BundleRequest {
        caller_tag: tag,
        caller: if compliance {
            number.as_e164().to_owned()
        } else {
            number.masked()
        },
        from: args.from,
        to: args.to,
        sar_reference: args.sar_reference.clone(),
        reason: args.reason.clone(),
        actor: actor.clone(),
        compliance,
        created_at: now,
    };
    let src = Sources {
        config: Arc::new(config),
        catalog: Arc::clone(&catalog),
        store,
        keyring,
    };
    let mut plan = plan(&src, request).await?;
    let signer = Arc::new(signer);
    // the head as it is before this export's own entry (which waits for the complete file)
    plan.checkpoint = Some(
        Checkpointer::new(
            Arc::clone(&catalog),
            Arc::clone(&signer),
            Arc::clone(&clock),
        )
        .checkpoint(Trigger::Export)
        .await?,
    );
    let audited = NewAuditEntry::new(now, &actor, "recording.export", args.sar_reference.clone())
        .reason(args.reason.clone())
        .details(&json!({
            "via": "cli", "caller": format!("caller:{}", hex::encode(&tag[..8])),
            "recordings": plan.recordings.iter().map(|r| r.row.id.to_string()).collect::<Vec<_>>(),
            "withheld": plan.withheld.len(),
        }));
    let bar = ProgressBar::new(plan.recordings.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} recordings ({bytes} of audio)")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(format!("exporting {}", args.sar_reference));
    let total = plan.recordings.len();
    let withheld = plan.withheld.len();
    let rt = tokio::runtime::Handle::current();
    let out = args.out.clone();
    let progress_bar = bar.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut progress = |p: Progress| {
            progress_bar.set_position(p.done as u64);
            progress_bar.set_message(format!("{} bytes", p.bytes));
        };
        let w = std::io::BufWriter::new(file);
        write_bundle(&plan, &src, &signer, &rt, w, &mut progress)
            .and_then(|w| w.into_inner().map_err(|e| e.into_error().into()))
            .and_then(|f| f.sync_all().map_err(Into::into))
    })
    .await?;
    bar.finish_and_clear();
    written?;
    // complete and synced: now the disclosure is audited (at the time it was completed)
    catalog
        .append_audit(NewAuditEntry {
            at: clock.now(),
            ..audited
        })
        .await
        .context(
            "the bundle is complete but its audit entry could not be written; it is removed",
        )?;
    println!(
        "{}: {total} recording(s), {withheld} withheld; check it with `callvault verify`",
        out.display()
    );
    // the bundle answers the request, as a delivered API export does; the bundle is complete and
    // audited whatever happens here, so it is kept
    match catalog
        .close_sar_by(
            &args.sar_reference,
            clock.now(),
            &actor,
            "bundle written by callvault export",
        )
        .await
    {
        Ok(true) => println!("closed subject access request {}", args.sar_reference),
        Ok(false) => {}
        Err(e) => eprintln!(
            "callvault: the bundle is complete, but closing subject access request {} failed ({e}); \
             close it with `callvault sars close`",
            args.sar_reference
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `callvault verify BUNDLE [--key FILE]`: 0 when every hash and the signature check out, 1
/// naming each failure otherwise.
pub fn verify(bundle: &Path, key: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = key
        .map(|k| {
            let text = std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?;
            parse_public_key(&text)
                .with_context(|| format!("{}: not a base64 ed25519 public key", k.display()))
        })
        .transpose()?;
    let file =
        std::fs::File::open(bundle).with_context(|| format!("cannot open {}", bundle.display()))?;
    let report = verify_bundle(std::io::BufReader::new(file), key.as_ref())
        .with_context(|| format!("{}: not a readable zip", bundle.display()))?;
    if report.is_ok() {
        let origin = if report.key_pinned {
            "signed by the given key"
        } else {
            "signed by the key it carries (pass --key to pin the signer)"
        };
        println!(
            "{}: ok: {} files match the manifest; {origin}",
            bundle.display(),
            report.files_ok
        );
        if let Some(cp) = &report.checkpoint {
            println!(
                "audit checkpoint: entry {} hash {} signed {}; check the chain against it with `callvault audit verify --checkpoint {}`",
                cp.seq,
                hex::encode(cp.hash),
                cp.at.to_rfc3339(),
                bundle.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &report.failures {
            println!("FAILED {f}");
        }
        println!("{}: {} failure(s)", bundle.display(), report.failures.len());
        Ok(ExitCode::FAILURE)
    }
}
