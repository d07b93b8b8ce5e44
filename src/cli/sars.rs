//! `callvault sars list` and `callvault sars close REF --reason ...`: subject access requests,
//! whether an API or an offline export opened them.

use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use crate::audit::NewAuditEntry;
use crate::config::Config;
use crate::domain::Clock;
use crate::server;

/// Subject access requests.
#[derive(Debug, clap::Subcommand)]
pub(super) enum SarsCommand {
    /// List the open requests, soonest due first.
    List,
    /// Close an open request (answered, withdrawn, or opened by an export never delivered),
    /// audited as `sar.close` with the reason.
    Close {
        /// The request's reference.
        reference: String,
        /// Why it is closed (recorded with it and in the audit chain).
        #[arg(long)]
        reason: String,
    },
}

pub(super) async fn run(
    command: SarsCommand,
    config: Config,
    clock: Arc<dyn Clock>,
    actor: String,
) -> anyhow::Result<()> {
    let catalog = server::open_catalog(&config).await?;
    match command {
        SarsCommand::List => {
            for s in catalog.open_sars(10_000).await? {
                println!(
                    "{}\treceived {}\tdue {}\t{}",
                    s.reference,
                    s.received_at.to_rfc3339(),
                    s.due_at.to_rfc3339(),
                    s.actor
                );
            }
        }
        SarsCommand::Close { reference, reason } => {
            let reason = reason.trim();
            if reason.is_empty() {
                bail!("--reason must not be empty");
            }
            let now = clock.now();
            if !catalog
                .close_sar_by(&reference, now, &actor, reason)
                .await?
            {
                match catalog.sar(&reference).await? {
                    None => bail!("no subject access request {reference}"),
                    Some(s) => bail!(
                        "subject access request {reference} was closed already, at {}",
                        s.closed_at.map_or_else(String::new, |t| t.to_rfc3339())
                    ),
                }
            }
            catalog
                .append_audit(
                    NewAuditEntry::new(now, &actor, "sar.close", &reference)
                        .reason(reason)
                        .details(&json!({ "via": "cli" })),
                )
                .await?;
            println!("closed subject access request {reference}");
        }
    }
    Ok(())
}
