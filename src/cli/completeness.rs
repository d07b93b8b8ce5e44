//! `callvault completeness [--from T] [--to T] [--state S] [--format csv|json]`: the completeness
//! report of the calls that started in `[from, to)`: totals per state, and every call that is
//! neither `recorded` nor `withheld` with its reason (or the calls of one state, or `pending`).
//! CSV lists the calls only (the totals go to standard error); JSON has both. Audited as
//! `completeness.report`.
//!
//! `callvault completeness import FILE`: notes the calls of a call-detail CSV (see
//! [`crate::completeness::import`] for the columns), audited as `calls.import`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::NewAuditEntry;
use crate::catalog::{CallFilter, CallRow, CallSource};
use crate::completeness::import::{Columns, import};
use crate::completeness::report;
use crate::config::Config;
use crate::domain::Clock;
use crate::domain::completeness::CompletenessState;
use crate::server;

/// The completeness report, or an import of calls.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct CompletenessArgs {
    #[command(subcommand)]
    command: Option<CompletenessCommand>,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Calls that started at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// Calls that started before this time (RFC 3339).
    #[arg(long)]
    to: Option<DateTime<Utc>>,
    /// Which calls to list: `attention` (neither recorded nor withheld; the default), one state
    /// (`recorded`, `partial`, `not_recorded`, `withheld`, `failed`), or `pending`.
    #[arg(long, default_value = "attention")]
    state: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum CompletenessCommand {
    /// Note the calls of a call-detail CSV, so each is accounted for (a header row names the
    /// columns; rows that cannot be read are listed and skipped).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The column of the call id.
        #[arg(long, default_value = "call_id")]
        call_id_column: String,
        /// The column of the call's start.
        #[arg(long, default_value = "start")]
        start_column: String,
        /// The column of the call's end.
        #[arg(long, default_value = "end")]
        end_column: String,
        /// The column of the dialled line.
        #[arg(long, default_value = "line")]
        line_column: String,
        /// The column of the caller's number (read, never stored).
        #[arg(long, default_value = "caller")]
        caller_column: String,
    },
}

pub(super) async fn run(
    args: CompletenessArgs,
    config: Config,
    clock: Arc<dyn Clock>,
    actor: String,
) -> anyhow::Result<std::process::ExitCode> {
    let catalog = server::open_catalog(&config).await?;
    match args.command {
        Some(CompletenessCommand::Import {
            file,
            call_id_column,
            start_column,
            end_column,
            line_column,
            caller_column,
        }) => {
            let columns = Columns {
                call_id: call_id_column,
                start: start_column,
                end: end_column,
                line: line_column,
                caller: caller_column,
            };
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let now = clock.now();
            let report = import(
                catalog.as_ref(),
                std::io::BufReader::new(input),
                &columns,
                now,
            )
            .await
            .with_context(|| format!("cannot import {}", file.display()))?;
            catalog
                .append_audit(
                    NewAuditEntry::new(now, &actor, "calls.import", file.display().to_string())
                        .details(&json!({
                            "rows": report.rows, "noted": report.noted,
                            "rejected": report.rejected.len(),
                        })),
                )
                .await?;
            for (line, why) in &report.rejected {
                eprintln!("{}:{line}: skipped: {why}", file.display());
            }
            println!(
                "{} rows, {} calls noted, {} skipped",
                report.rows,
                report.noted,
                report.rejected.len()
            );
            Ok(if report.rejected.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        None => {
            let a = args.report;
            let filter = match a.state.as_str() {
                "attention" => CallFilter::NeedsAttention,
                "pending" => CallFilter::Pending,
                s => CallFilter::State(s.parse::<CompletenessState>().map_err(|_| {
                    anyhow::anyhow!(
                        "--state: one of attention, recorded, partial, not_recorded, withheld, failed, pending"
                    )
                })?),
            };
            if let (Some(f), Some(t)) = (a.from, a.to)
                && t < f
            {
                bail!("--to is before --from");
            }
            let report = report::all(catalog.as_ref(), a.from, a.to, filter).await?;
            catalog
                .append_audit(
                    NewAuditEntry::new(
                        clock.now(),
                        &actor,
                        "completeness.report",
                        "completeness",
                    )
                    .details(&json!({
                        "from": a.from.map(|t| t.to_rfc3339()), "to": a.to.map(|t| t.to_rfc3339()),
                        "state": a.state, "listed": report.calls.len(), "via": "cli",
                    })),
                )
                .await?;
            let totals = &report.totals;
            let mut out = std::io::stdout().lock();
            match a.format {
                Format::Csv => {
                    let mut w = csv::Writer::from_writer(&mut out);
                    w.write_record([
                        "call_id",
                        "start",
                        "end",
                        "line",
                        "state",
                        "reason",
                        "missing_ms",
                        "detail",
                        "recording_id",
                        "sources",
                        "settled_at",
                    ])?;
                    for c in &report.calls {
                        w.write_record(csv_row(c))?;
                    }
                    w.flush()?;
                    let mut line = format!("calls {}", totals.calls());
                    for s in CompletenessState::ALL {
                        line.push_str(&format!(", {} {}", s.as_str(), totals.of(s)));
                    }
                    line.push_str(&format!(", pending {}", totals.pending));
                    eprintln!("{line}");
                }
                Format::Json => {
                    let mut t = serde_json::Map::new();
                    for s in CompletenessState::ALL {
                        t.insert(s.as_str().into(), totals.of(s).into());
                    }
                    t.insert("pending".into(), totals.pending.into());
                    t.insert("calls".into(), totals.calls().into());
                    let calls: Vec<_> = report.calls.iter().map(json_row).collect();
                    let doc = json!({
                        "from": a.from.map(|t| t.to_rfc3339()),
                        "to": a.to.map(|t| t.to_rfc3339()),
                        "totals": t,
                        "calls": calls,
                    });
                    serde_json::to_writer_pretty(&mut out, &doc)?;
                    writeln!(out)?;
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn sources(c: &CallRow) -> String {
    CallSource::from_bits(c.sources)
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn csv_row(c: &CallRow) -> Vec<String> {
    let a = c.assessment.as_ref();
    let t = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    vec![
        c.call_id.as_str().to_owned(),
        c.at.to_rfc3339(),
        t(c.ended_at),
        c.line.clone().unwrap_or_default(),
        a.map(|a| a.state.as_str().to_owned()).unwrap_or_default(),
        a.map(|a| a.reason.clone()).unwrap_or_default(),
        a.and_then(|a| a.missing_ms)
            .map(|m| m.to_string())
            .unwrap_or_default(),
        a.map(|a| a.detail.clone()).unwrap_or_default(),
        c.recording_id.map(|r| r.to_string()).unwrap_or_default(),
        sources(c),
        t(c.settled_at),
    ]
}

fn json_row(c: &CallRow) -> serde_json::Value {
    let a = c.assessment.as_ref();
    json!({
        "call_id": c.call_id.as_str(),
        "start": c.at.to_rfc3339(),
        "end": c.ended_at.map(|t| t.to_rfc3339()),
        "line": c.line,
        "state": a.map(|a| a.state.as_str()),
        "reason": a.map(|a| a.reason.as_str()),
        "missing_ms": a.and_then(|a| a.missing_ms),
        "detail": a.map(|a| a.detail.as_str()),
        "recording_id": c.recording_id.map(|r| r.to_string()),
        "sources": sources(c),
        "settled_at": c.settled_at.map(|t| t.to_rfc3339()),
    })
}
