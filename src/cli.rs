//! The command line: `serve` and the operator's tools. Each subcommand takes `--config FILE` and any
//! number of `--set dotted.key=value` overrides.
//!
//! Exit codes: 0 success; 1 a failure that may pass (I/O, a verification that failed); 64 a
//! configuration that must be fixed (systemd's `RestartPreventExitStatus=64`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing::info;

mod actor;
mod audit;
mod completeness;
mod sars;

use crate::api::auth::mint_token;
use crate::audit::NewAuditEntry;
use crate::catalog::TokenRow;
use crate::config::{Config, ConfigError};
use crate::domain::{Clock, Role, SystemClock};
use crate::server::{self, Daemon, StartError};
use crate::vault::Keyring;

mod fsck;
mod import;
mod init;
mod keys;

/// Exit code for a configuration that must be fixed.
const EX_CONFIG: u8 = 64;
/// Rows read per catalog page by the bulk commands.
const PAGE: usize = 500;

/// callvault: call-recording controller and vault.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "CALLVAULT_CONFIG",
        default_value = "/etc/callvault/callvault.toml"
    )]
    config: PathBuf,
    /// Override one config key, e.g. `--set public.listen=127.0.0.1:9443`. Repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Serve,
    /// A fresh install: create every missing secret the config names (mode 0600, never
    /// overwriting one) and print what the telephony platform needs.
    Init,
    /// Check a config file (and the secrets it names) and exit 0, or 64 naming the key.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Key-encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// API bearer tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The audit chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Subject access requests.
    #[command(subcommand)]
    Sars(sars::SarsCommand),
    /// Play a simulated call into a running daemon: a WAV or a tone, with scripted events.
    Simulate(Box<crate::simulate::SimulateArgs>),
    /// Load a running daemon with many simulated calls and measure its CPU and memory.
    Loadgen(Box<crate::simulate::load::LoadArgs>),
    /// Serve a bare-receive baseline that reads and discards the load generator's traffic.
    LoadgenBaseline(crate::simulate::load::BaselineArgs),
    /// Build a caller's signed subject-access bundle offline, from the catalog and object store.
    Export(Box<crate::export::offline::ExportArgs>),
    /// Check a bundle's hashes and signature offline, naming whatever fails.
    Verify {
        /// The bundle (ZIP).
        bundle: PathBuf,
        /// The signer's public key (base64, as `GET /v1/signing-key` gives it); without it, the key
        /// the bundle carries is used, which proves integrity but not origin.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Retention: plan a policy change, apply it, or sweep expired recordings now.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Check the catalog against the object store and the spool; exit 1 on a problem.
    Fsck(fsck::FsckArgs),
    /// Every call accounted for: the completeness report, or `import` a call-detail CSV.
    Completeness(completeness::CompletenessArgs),
    /// Import finished recordings from a folder and a manifest (CSV or JSON); resumable.
    Import(Box<import::ImportArgs>),
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// List, changing nothing, each recording's expiry under today's policies or a proposed period.
    Plan {
        /// The policy whose period is proposed (with --period).
        #[arg(long, requires = "period")]
        policy: Option<String>,
        /// The proposed period, e.g. "6 months".
        #[arg(long, requires = "policy")]
        period: Option<crate::domain::Period>,
    },
    /// Recompute stored expiry after a policy change (an audit entry per change).
    Apply,
    /// Run one sweep: delete every expired recording that no hold keeps.
    Sweep,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new keyring with one fresh key (refuses to overwrite one).
    Generate {
        /// Where to write it (default: the configured `keys.keyring`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add a fresh key to the keyring and make it the active one; then `systemctl reload callvault`.
    Rotate,
    /// Re-wrap every stored data key under the active key, so older keys can be retired. A daemon
    /// running on this host is made to reload its keyring first, or the command refuses.
    Rewrap,
    /// Remove a key from the keyring once nothing stored is sealed under it (audited).
    Retire {
        /// The key id, as the keyring names it.
        kek: crate::domain::KeyId,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create a token and print it once.
    Create {
        /// supervisor, compliance, ops or telephony.
        #[arg(long)]
        role: Role,
        /// Who or what holds it; recorded as the actor of its actions.
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id, as `tokens list` shows it.
        id: String,
    },
    /// List tokens (never their secrets).
    List,
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // clients of a daemon that may run elsewhere, and the baseline server: no config of their own
    let cli = match cli.command {
        Command::Simulate(args) => {
            return client(async move {
                let report = crate::simulate::simulate(args.into_options()?).await?;
                Ok(report.to_string())
            });
        }
        Command::Loadgen(args) => {
            return client(
                async move { Ok(crate::simulate::load::loadgen(*args).await?.to_string()) },
            );
        }
        Command::LoadgenBaseline(args) => {
            return client(async move {
                let shutdown = CancellationToken::new();
                tokio::spawn(signals(shutdown.clone()));
                crate::simulate::load::baseline(args, shutdown).await?;
                Ok(String::new())
            });
        }
        Command::Verify { bundle, key } => {
            // an offline check, possibly on another machine: no config of its own
            return match crate::export::offline::verify(&bundle, key.as_deref()) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("callvault verify: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        command => Cli { command, ..cli },
    };
    let file = match &cli.command {
        Command::CheckConfig { file: Some(f) } => f.clone(),
        _ => cli.config.clone(),
    };
    let config = match Config::load(&file, &cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("callvault: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let mut log = config.log.clone();
    if !matches!(cli.command, Command::Serve) {
        // the operator's tools print their results; only warnings and errors go to the log
        log.level = "warn".to_owned();
    }
    crate::telemetry::init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("callvault: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, config, file));
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = match e.downcast_ref::<StartError>() {
                Some(s) => s.exit_code(),
                None if e.downcast_ref::<ConfigError>().is_some() => EX_CONFIG,
                None => 1,
            };
            eprintln!("callvault: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(command: Command, config: Config, file: PathBuf) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => serve(config, clock).await?,
        Command::CheckConfig { .. } => {
            server::preflight(&config)?;
            println!("{}: ok", file.display());
        }
        Command::Init => {
            let (out, code) = init::init(&config, clock.now())?;
            print!("{out}");
            return Ok(code);
        }
        Command::Keys(k) => keys(k, config, clock).await?,
        Command::Tokens(t) => tokens(t, config, clock).await?,
        Command::Audit(a) => return audit::run(a, config, clock).await,
        Command::Sars(s) => sars::run(s, config, clock, actor()).await?,
        Command::Export(args) => {
            return crate::export::offline::export(*args, config, clock, actor()).await;
        }
        Command::Simulate(_)
        | Command::Loadgen(_)
        | Command::LoadgenBaseline(_)
        | Command::Verify { .. } => {
            unreachable!("client commands are handled before the config is loaded")
        }
        Command::Retention(r) => retention(r, config, clock).await?,
        Command::Completeness(args) => {
            return completeness::run(args, config, clock, actor()).await;
        }
        Command::Import(args) => {
            return import::import(*args, config, clock, actor()).await;
        }
        Command::Fsck(args) => {
            let catalog = server::open_catalog(&config).await?;
            let store = crate::vault::open_store(&server::store_kind(&config)?)?;
            return fsck::fsck(args, &config, catalog, store, clock, actor()).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a client command on a fresh runtime and prints its result.
fn client(run: impl std::future::Future<Output = anyhow::Result<String>>) -> ExitCode {
    crate::telemetry::init_logging(&crate::config::LogConfig::default());
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run));
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("callvault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, clock: Arc<dyn Clock>) -> Result<(), StartError> {
    let daemon = Daemon::start(config, clock).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    daemon.run(shutdown).await
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
/// Installs the SIGTERM and SIGINT handlers now (so a signal that comes right after `READY=1` is
/// never the default, fatal one) and returns a task that cancels `shutdown` on the first of them.
fn signals(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutdown requested");
        shutdown.cancel();
    }
}

/// The audit actor of a CLI command: the person logged in (see [`actor`]), never `$USER`.
fn actor() -> String {
    actor::cli_actor()
}

async fn keys(command: KeysCommand, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let keyring_file = &config.keys.keyring;
    match command {
        KeysCommand::Generate { out } => {
            let path = out.unwrap_or_else(|| keyring_file.path().to_owned());
            if path.exists() {
                bail!(
                    "{} exists: use `callvault keys rotate` to add a key",
                    path.display()
                );
            }
            let keyring = Keyring::generate(clock.now());
            keyring.write_file(&path)?;
            println!(
                "wrote keyring {} (active key {})",
                path.display(),
                keyring.active()
            );
        }
        KeysCommand::Rotate => {
            let mut keyring = Keyring::from_bytes(keyring_file.read()?.expose())?;
            let old = keyring.active().clone();
            let new = keyring.rotate(clock.now());
            keyring.write_file(keyring_file.path())?;
            let catalog = server::open_catalog(&config).await?;
            catalog
                .append_audit(
                    NewAuditEntry::new(clock.now(), actor(), "key.rotate", new.as_str())
                        .details(&serde_json::json!({ "previous": old.as_str() })),
                )
                .await?;
            println!(
                "active key is now {new} (was {old}); `systemctl reload callvault`, then `callvault keys rewrap`"
            );
        }
        KeysCommand::Rewrap => rewrap(&config, clock).await?,
        KeysCommand::Retire { kek } => {
            let catalog = server::open_catalog(&config).await?;
            keys::retire(&config, catalog, clock, &kek, actor()).await?;
        }
    }
    Ok(())
}

async fn rewrap(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let keyring = Keyring::from_bytes(config.keys.keyring.read()?.expose())?;
    // a daemon still wrapping new data keys under an older key would undo the rewrap
    keys::ensure_daemon_current(config, &keyring).await?;
    let catalog = server::open_catalog(config).await?;
    let total = catalog.count_wrapped_keys().await?;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} keys ({eta} left)")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(format!("rewrapping under {}", keyring.active()));
    let (mut rewrapped, mut current, mut raced) = (0u64, 0u64, 0u64);
    let mut after = None;
    loop {
        let page = catalog.wrapped_keys_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.recording_id, last.segment));
        for row in page {
            bar.inc(1);
            if row.kek_id == keyring.active() {
                current += 1;
                continue;
            }
            let old = crate::vault::WrappedKey {
                kek_id: row.kek_id.clone(),
                bytes: row.wrapped_key.clone(),
            };
            let new = keyring
                .rewrap(&old, row.recording_id, row.segment)
                .with_context(|| {
                    format!("recording {} segment {}", row.recording_id, row.segment)
                })?;
            let replaced = catalog
                .replace_wrapped_key(
                    &crate::catalog::WrappedKeyRow {
                        recording_id: row.recording_id,
                        segment: row.segment,
                        kek_id: new.kek_id,
                        wrapped_key: new.bytes,
                    },
                    &row.kek_id,
                )
                .await?;
            // a segment shredded or rewrapped meanwhile is left as the other writer left it
            if replaced { rewrapped += 1 } else { raced += 1 }
        }
    }
    bar.finish_and_clear();
    catalog
        .append_audit(
            NewAuditEntry::new(clock.now(), actor(), "key.rewrap", keyring.active().as_str()).details(
                &serde_json::json!({ "rewrapped": rewrapped, "already_current": current, "changed_meanwhile": raced }),
            ),
        )
        .await?;
    println!(
        "rewrapped {rewrapped} data keys under {}; {current} were already under it; {raced} changed meanwhile",
        keyring.active()
    );
    Ok(())
}

async fn tokens(
    command: TokensCommand,
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let catalog = server::open_catalog(&config).await?;
    match command {
        TokensCommand::Create { role, name } => {
            let (id, secret, hash) = mint_token();
            let now = clock.now();
            catalog
                .insert_token(&TokenRow {
                    id: id.clone(),
                    name: name.clone(),
                    role: role.as_str().to_owned(),
                    hash,
                    created_at: now,
                    revoked_at: None,
                })
                .await?;
            catalog
                .append_audit(
                    NewAuditEntry::new(now, actor(), "token.create", &id)
                        .details(&serde_json::json!({ "name": name, "role": role.as_str() })),
                )
                .await?;
            eprintln!("token {id} for {name} ({role}); it is shown once, store it now:");
            println!("{}", secret.as_str());
        }
        TokensCommand::Revoke { id } => {
            if !catalog.revoke_token(&id, clock.now()).await? {
                bail!("no active token with id {id}");
            }
            catalog
                .append_audit(NewAuditEntry::new(
                    clock.now(),
                    actor(),
                    "token.revoke",
                    &id,
                ))
                .await?;
            println!("revoked token {id}");
        }
        TokensCommand::List => {
            for t in catalog.tokens().await? {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\t{state}",
                    t.id,
                    t.role,
                    t.name,
                    t.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}

async fn retention(
    command: RetentionCommand,
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let catalog = server::open_catalog(&config).await?;
    let store = crate::vault::open_store(&server::store_kind(&config)?)?;
    let retention = crate::retention::Retention::new(catalog, store, clock, Arc::new(config));
    match command {
        RetentionCommand::Plan { policy, period } => {
            let proposal = policy
                .zip(period)
                .map(|(policy, period)| crate::retention::plan::Proposal { policy, period });
            let summary = retention
                .plan(proposal.as_ref(), |e| println!("{e}"))
                .await?;
            println!("{summary}");
        }
        RetentionCommand::Apply => {
            let changed = retention.apply(&actor()).await?;
            println!("recomputed expiry of {changed} recordings");
        }
        RetentionCommand::Sweep => {
            let report = retention
                .sweep(&crate::retention::SweepOptions::default())
                .await?;
            println!("{report}");
        }
    }
    Ok(())
}
