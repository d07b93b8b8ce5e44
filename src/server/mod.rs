//! The daemon: a linear, logged start-up; two listeners; readiness checks; and a shutdown that drains
//! within the grace period.
//!
//! [`Daemon::start`] does everything that can fail on a bad configuration or bad state before any
//! port is bound: state directory, secrets, keyring, catalog (with its migrations), the check that
//! every key the catalog references is in the keyring, and the object store. [`Daemon::run`] then
//! serves until its [`CancellationToken`] is cancelled. One token and one [`TaskTracker`] at the root;
//! every long task gets a child token.

mod audiosocket;
pub mod limits;
mod listener;
mod preflight;
mod reload;
mod secrets;
mod siprec;
mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::api::oidc::OidcVerifier;
use crate::api::{self, ApiState};
use crate::audit::{Checkpointer, Trigger};
use crate::catalog::{Catalog, CatalogError, PostgresCatalog, SqliteCatalog};
use crate::config::{CatalogConfig, Config, ConfigError, StorageConfig};
use crate::domain::{Clock, KeyId};
use crate::export::BundleSigner;
use crate::ingest::webhook::WebhookSecret;
use crate::recorder::persist::{PersistConfig, PersistError, Persistence};
use crate::recorder::{Deps, Recorder};
use crate::vault::{self, CallerKeys, Keyring, StoreKind, VaultError};

pub use preflight::preflight;
pub use reload::{ReloadError, reload_keyring};
pub use secrets::{Scope, SecretOutcome, SecretState, create_missing_secrets, create_secrets};

/// How often readiness is re-checked while serving.
const READINESS_INTERVAL: Duration = Duration::from_secs(10);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration, or a secret it names, is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The catalog references key-encryption keys that the keyring does not hold: starting would
    /// leave recordings that cannot be decrypted.
    #[error("the catalog references key ids missing from the keyring: {}", .0.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", "))]
    MissingKeys(BTreeSet<KeyId>),
    /// The keyring or the object store could not be opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The catalog could not be opened or migrated.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The PostgreSQL catalog could not be opened: the server did not answer, refused the login,
    /// or its schema cannot be used.
    #[error("cannot open the postgres catalog `{target}`")]
    CatalogUnreachable {
        /// `catalog.url` as configured (it holds no password).
        target: String,
        /// Why.
        #[source]
        source: CatalogError,
    },
    /// The state directory or a listener could not be set up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Crash recovery of the spool failed.
    #[error(transparent)]
    Recovery(#[from] PersistError),
}

impl StartError {
    /// The process exit code: 64 for what ops must fix in the configuration or keyring (systemd does
    /// not restart on it), 1 for what may pass (a port in use, a full disk).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_)
            | StartError::MissingKeys(_)
            | StartError::Vault(
                VaultError::Keyring { .. }
                | VaultError::StoreConfig { .. }
                | VaultError::StoreAccessDenied(_),
            ) => 64,
            _ => 1,
        }
    }
}

/// What every part of the running daemon shares. A cheap `Clone` handle.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The object store of sealed audio.
    pub store: Arc<dyn ObjectStore>,
    /// The key-encryption keys.
    pub keyring: Arc<Keyring>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The secret that signs native call events.
    pub webhook: Arc<WebhookSecret>,
    /// Caller numbers' lookup tags and sealing (issue 5).
    pub callers: CallerKeys,
    /// The key that signs export bundles (issue 5).
    pub signer: Arc<BundleSigner>,
    /// OIDC JWT verification, when `[auth.oidc]` is set (issue 5).
    pub oidc: Option<Arc<OidcVerifier>>,
    /// The keys of the telephony platform adapters.
    pub platforms: Arc<api::Platforms>,
}

/// A daemon that has started and bound its listeners, ready to [`run`](Daemon::run).
pub struct Daemon {
    shared: Shared,
    public: TcpListener,
    admin: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("public", &self.public.local_addr().ok())
            .field("admin", &self.admin.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Starts the daemon: every check that can fail on configuration or state, then the listeners.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, StartError> {
        info!(state_dir = %config.state_dir.display(), "starting callvault {}", env!("CARGO_PKG_VERSION"));
        // install the metrics recorder before anything records: a metric set before it is lost
        let _ = crate::telemetry::metrics();
        create_state_dir(&config)?;
        if config.secrets.create_missing {
            create_missing_secrets(&config, clock.now())?;
        }
        preflight(&config)?;
        let keyring = Keyring::load(&config.keys.keyring)?;
        info!(active_key = %keyring.active(), keys = keyring.key_ids().len(), "keyring loaded");

        let catalog = open_catalog(&config).await?;
        let missing: BTreeSet<KeyId> = catalog
            .key_ids_in_use()
            .await?
            .into_iter()
            .filter(|id| !keyring.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(StartError::MissingKeys(missing));
        }

        let webhook = WebhookSecret::from_secret(&config.secrets.webhook.read()?).map_err(|e| {
            ConfigError::Invalid {
                key: "secrets.webhook".to_owned(),
                reason: e.to_string(),
            }
        })?;
        let platforms = api::Platforms::load(&config)?;
        let store = vault::open_store(&store_kind(&config)?)?;
        match vault::check_access(&store).await {
            Ok(()) => info!("object store opened"),
            // wrong credentials never fix themselves: refuse to start, naming the keys to check
            Err(e @ VaultError::StoreAccessDenied(_)) => return Err(e.into()),
            // a store that is down may come back: serve, spool, and upload once it answers
            Err(error) => {
                warn!(%error, "object store not reachable at start-up; sealed audio stays spooled until it answers")
            }
        }
        let keyring = Arc::new(keyring);
        let SupervisorAccess {
            callers,
            signer,
            oidc,
        } = supervisor_access(&config, &keyring)?;

        let tls = config.public.tls.as_ref().map(tls::acceptor).transpose()?;
        let admin = listener::bind("admin", config.admin.listen).await?;
        let public = listener::bind("public", config.public.listen).await?;
        info!(
            public = %public.local_addr()?,
            admin = %admin.local_addr()?,
            tls = tls.is_some(),
            "listeners bound"
        );
        Ok(Daemon {
            shared: Shared {
                config: Arc::new(config),
                catalog,
                store,
                keyring,
                clock,
                webhook: Arc::new(webhook),
                callers,
                signer,
                oidc,
                platforms: Arc::new(platforms),
            },
            public,
            admin,
            tls,
        })
    }

    /// The public listener's address (its real port when configured with port 0).
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// What the running daemon shares, for in-process tests and tools.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, drains connections within
    /// `shutdown_grace`, and returns. Tells systemd `READY=1` once serving and `STOPPING=1` when
    /// shutdown begins (a no-op without `NOTIFY_SOCKET`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Daemon {
            shared,
            public,
            admin,
            tls,
        } = self;
        let grace = shared.config.shutdown_grace;
        let config = &shared.config;
        let tracker = TaskTracker::new();
        let calls = TaskTracker::new();
        // uploads outlive the calls: live calls seal at shutdown, and their segments are uploaded
        // in what is left of the grace period (or recovered from the spool at the next start)
        let uploads_stop = CancellationToken::new();
        let mut persist = PersistConfig::new(config.spool_dir(), store_kind(config)?);
        persist.chunk_size = config.recorder.chunk_size;
        persist.sync_interval = config.recorder.spool_sync;
        persist.spool_backlog = config.recorder.spool_backlog;
        persist.spool_retry = config.recorder.spool_retry;
        persist.retention = config
            .policies
            .iter()
            .map(|(name, p)| (name.clone(), p.retention))
            .collect();
        persist.default_retention = Some(config.policy_for(None, None).retention);
        persist.flac_policies = config
            .policies
            .iter()
            .filter(|(_, p)| p.storage_codec == crate::config::StorageCodec::Flac)
            .map(|(name, _)| name.clone())
            .collect();
        let persistence = Persistence::start(
            Arc::clone(&shared.catalog),
            Arc::clone(&shared.store),
            Arc::clone(&shared.keyring),
            Arc::clone(&shared.clock),
            persist,
            uploads_stop.clone(),
            &tracker,
        );
        let retention_ops = crate::retention::Retention::new(
            Arc::clone(&shared.catalog),
            Arc::clone(&shared.store),
            Arc::clone(&shared.clock),
            Arc::clone(config),
        );
        // destructions a crash interrupted (a refusal above all) are finished before the spool is
        // recovered: their keys are then gone, so recovery discards their spool files rather than
        // upload them again
        let pending_only = crate::retention::SweepOptions {
            pending_only: true,
            ..Default::default()
        };
        match retention_ops.sweep(&pending_only).await {
            Ok(report) if report.resumed > 0 => {
                info!(
                    resumed = report.resumed,
                    "unfinished destructions finished at start"
                );
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "unfinished destructions not finished at start; the next sweep retries");
            }
        }
        let recovered = persistence.recover().await?;
        info!(?recovered, "spool recovered");
        let recorder = Recorder::new(
            Deps {
                config: Arc::clone(config),
                catalog: Arc::clone(&shared.catalog),
                persistence: persistence.clone(),
                clock: Arc::clone(&shared.clock),
                callers: shared.callers.clone(),
                retention: retention_ops.clone(),
            },
            shutdown.child_token(),
            calls.clone(),
        );
        // calls whose recordings were still live: back to the recorder, for their platforms to
        // reconnect to within recorder.idle_seal
        let mut interrupted = Vec::new();
        for id in &recovered.interrupted {
            if let Some(row) = shared.catalog.recording(*id).await? {
                interrupted.push(row.call_id);
            }
        }
        recorder.adopt(&interrupted);
        // issue 12: sockets end with their credentials; the audit head is signed on an interval
        let sessions =
            api::auth::Sessions::new(Arc::clone(&shared.catalog), Arc::clone(&shared.clock));
        let checkpoints = Checkpointer::new(
            Arc::clone(&shared.catalog),
            Arc::clone(&shared.signer),
            Arc::clone(&shared.clock),
        );
        tracker.spawn(sessions.clone().watch(shutdown.child_token()));
        tracker.spawn(
            checkpoints
                .clone()
                .run(config.audit.checkpoint_interval, shutdown.child_token()),
        );
        let state = ApiState {
            config: Arc::clone(config),
            catalog: Arc::clone(&shared.catalog),
            store: Arc::clone(&shared.store),
            keyring: Arc::clone(&shared.keyring),
            clock: Arc::clone(&shared.clock),
            recorder,
            webhook: Arc::clone(&shared.webhook),
            shutdown: shutdown.child_token(),
            callers: shared.callers.clone(),
            signer: Arc::clone(&shared.signer),
            oidc: shared.oidc.clone(),
            exports: api::ExportJobs::default(),
            platforms: Arc::clone(&shared.platforms),
            sessions,
            checkpoints: checkpoints.clone(),
            importer: crate::import::Importer::new(crate::import::ImporterParts {
                config: Arc::clone(config),
                catalog: Arc::clone(&shared.catalog),
                store: Arc::clone(&shared.store),
                kind: store_kind(config)?,
                keyring: Arc::clone(&shared.keyring),
                callers: shared.callers.clone(),
                clock: Arc::clone(&shared.clock),
                workers: config.import.workers,
            }),
        };
        let ready: api::Readiness = Arc::new(AtomicBool::new(false));
        // retention (issue 4): the expiry worker, on interval and on demand from the admin listener
        let retention =
            crate::retention::worker::spawn(retention_ops, shutdown.child_token(), &tracker);
        // every call accounted for (issue 16): re-checks unsettled calls until they settle
        let completeness = crate::completeness::worker::spawn(
            crate::completeness::Reconciler::new(
                Arc::clone(&shared.catalog),
                Arc::clone(config),
                Arc::clone(&shared.clock),
            ),
            shutdown.child_token(),
            &tracker,
        );

        tracker.spawn(readiness(
            shared.clone(),
            ready.clone(),
            shutdown.child_token(),
        ));
        tracker.spawn(prune_seen_events(shared.clone(), shutdown.child_token()));
        // keys rotate live: SIGHUP (the unit's ExecReload=) reads the keyring file again
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tracker.spawn(reload::on_sighup(
            hup,
            Arc::clone(&shared.keyring),
            Arc::clone(&shared.catalog),
            config.keys.keyring.clone(),
            shutdown.child_token(),
        ));
        tracker.spawn(listener::serve(
            "admin",
            admin,
            None,
            api::admin_router(ready.clone(), persistence.clone())
                .merge(api::retention_routes(retention))
                .merge(api::completeness_routes(completeness))
                .merge(api::keyring_routes(api::KeyringAdmin {
                    keyring: Arc::clone(&shared.keyring),
                    catalog: Arc::clone(&shared.catalog),
                    file: config.keys.keyring.clone(),
                })),
            config.limits.clone(),
            shutdown.child_token(),
            grace,
        ));
        // Asterisk AudioSocket, when `audiosocket.listen` is set
        tracker.spawn(audiosocket::serve(
            config.audiosocket.clone(),
            config.limits.clone(),
            state.recorder.clone(),
            Arc::clone(&shared.catalog),
            Arc::clone(&shared.clock),
            shutdown.child_token(),
        ));
        // the SIPREC recording server, when any of `siprec.udp`, `.tcp`, `.tls` is set
        tracker.spawn(siprec::serve(
            config.siprec.clone(),
            config.limits.clone(),
            state.recorder.clone(),
            Arc::clone(&shared.catalog),
            shared.callers.clone(),
            Arc::clone(&shared.clock),
            shutdown.child_token(),
        ));
        tracker.spawn(listener::serve(
            "public",
            public,
            tls,
            api::public_router(state),
            config.limits.clone(),
            shutdown.child_token(),
            grace,
        ));
        notify(sd_notify::NotifyState::Ready);
        info!("serving");

        shutdown.cancelled().await;
        notify(sd_notify::NotifyState::Stopping);
        let deadline = tokio::time::Instant::now() + grace;
        info!(
            grace_ms = grace.as_millis() as u64,
            live_calls = calls.len(),
            "shutting down"
        );
        ready.store(false, Ordering::Release);
        // live calls end now, wait out their look-back window, then seal
        calls.close();
        if tokio::time::timeout_at(deadline, calls.wait())
            .await
            .is_err()
        {
            warn!(
                "live calls still sealing after the grace period; their spool is recovered at next start"
            );
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !persistence.drain(left).await {
            warn!(
                pending = persistence.pending_uploads(),
                "uploads still pending; they stay spooled for the next start"
            );
        }
        uploads_stop.cancel();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
            .await
            .is_err()
        {
            warn!("tasks still running after the grace period");
        }
        // the last word: the head once nothing appends any more, logged outside the database
        if let Err(e) = checkpoints.checkpoint(Trigger::Shutdown).await {
            error!(error = %e, "cannot store the shutdown audit checkpoint");
        }
        info!("stopped");
        Ok(())
    }
}

/// The keys of supervisor access (issue 5).
#[derive(Debug, Clone)]
pub struct SupervisorAccess {
    /// Caller numbers' lookup tags and sealing.
    pub callers: CallerKeys,
    /// The key that signs export bundles.
    pub signer: Arc<BundleSigner>,
    /// OIDC JWT verification, when configured.
    pub oidc: Option<Arc<OidcVerifier>>,
}

/// The secrets and keys of supervisor access: the caller pepper, the bundle signing key, and the
/// OIDC key set, each checked before any port is bound.
pub fn supervisor_access(
    config: &Config,
    keyring: &Arc<Keyring>,
) -> Result<SupervisorAccess, ConfigError> {
    let callers = CallerKeys::new(config.secrets.caller_pepper.read()?, Arc::clone(keyring));
    let signer = BundleSigner::from_secret(&config.secrets.signing_key.read()?).map_err(|e| {
        ConfigError::Invalid {
            key: "secrets.signing_key".to_owned(),
            reason: e.to_string(),
        }
    })?;
    let oidc = config
        .auth
        .oidc
        .as_ref()
        .map(|o| {
            OidcVerifier::load(o).map_err(|e| ConfigError::Invalid {
                key: "auth.oidc.jwks".to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    Ok(SupervisorAccess {
        callers,
        signer: Arc::new(signer),
        oidc: oidc.map(Arc::new),
    })
}

fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        warn!(error = %e, "cannot notify systemd");
    }
}

fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("cannot create {}: {e}", path.display()),
        )),
    }
}

fn create_state_dir(config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut dirs = vec![config.state_dir.clone(), config.spool_dir()];
    if let StorageConfig::Local { root } = &config.storage {
        dirs.push(config.state_dir.join(root));
    }
    for dir in dirs {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
    }
    Ok(())
}

/// Opens the configured catalog, running its migrations.
pub async fn open_catalog(config: &Config) -> Result<Arc<dyn Catalog>, StartError> {
    match &config.catalog {
        CatalogConfig::Sqlite { .. } => {
            create_state_dir(config)?;
            let path = config.sqlite_path().expect("a sqlite catalog has a path");
            // SQLite gives its -wal and -shm files the database file's mode: make that private
            create_private_file(&path)?;
            let catalog =
                tokio::task::spawn_blocking(move || SqliteCatalog::open(&path).map(|c| (c, path)))
                    .await
                    .map_err(|e| std::io::Error::other(format!("catalog open task failed: {e}")))?;
            let (catalog, path) = catalog?;
            info!(path = %path.display(), "catalog opened (sqlite)");
            Ok(Arc::new(catalog))
        }
        CatalogConfig::Postgres { url, password } => {
            let password = password.as_ref().map(|p| p.read()).transpose()?;
            let catalog = PostgresCatalog::open(url, password.as_ref())
                .await
                .map_err(|source| match source {
                    CatalogError::Invalid { what } => StartError::Config(ConfigError::Invalid {
                        key: "catalog.url".to_owned(),
                        reason: what,
                    }),
                    source => StartError::CatalogUnreachable {
                        // the connection string as configured, which holds no password
                        target: url.clone(),
                        source,
                    },
                })?;
            catalog.check().await?;
            info!(
                target = catalog.target(),
                pool = crate::catalog::POSTGRES_POOL_SIZE,
                "catalog opened (postgres)"
            );
            Ok(Arc::new(catalog))
        }
    }
}

/// The vault's description of the configured object store, with its secrets read.
pub fn store_kind(config: &Config) -> Result<StoreKind, ConfigError> {
    Ok(match &config.storage {
        StorageConfig::Local { root } => StoreKind::Local {
            root: config.state_dir.join(root),
        },
        StorageConfig::Memory => {
            warn!("storage.kind = \"memory\": recordings are lost at exit (tests only)");
            StoreKind::Memory
        }
        StorageConfig::S3 {
            bucket,
            region,
            endpoint,
            access_key_id,
            secret_access_key,
            allow_http,
            request_timeout,
        } => StoreKind::S3 {
            bucket: bucket.clone(),
            region: region.clone(),
            endpoint: endpoint.clone(),
            access_key_id: String::from_utf8_lossy(access_key_id.read()?.expose_trimmed())
                .into_owned(),
            secret_access_key: zeroize::Zeroizing::new(
                String::from_utf8_lossy(secret_access_key.read()?.expose_trimmed()).into_owned(),
            ),
            allow_http: *allow_http,
            request_timeout: *request_timeout,
        },
    })
}

/// Marks the daemon ready once the catalog answers and the object store takes, returns and deletes a
/// probe object; re-checks every few seconds and marks it not ready while a check fails.
async fn readiness(shared: Shared, ready: api::Readiness, shutdown: CancellationToken) {
    let mut was_ready = false;
    loop {
        let ok = match check(&shared).await {
            Ok(()) => true,
            Err(reason) => {
                if was_ready {
                    error!(%reason, "readiness check failed");
                } else {
                    warn!(%reason, "not ready yet");
                }
                false
            }
        };
        if ok && !was_ready {
            info!("ready");
        }
        was_ready = ok;
        ready.store(ok, Ordering::Release);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(READINESS_INTERVAL) => {}
        }
    }
}

/// Event ids are remembered for replay protection; a signed event older than the 5-minute
/// timestamp tolerance is refused anyway, so ids older than a day are forgotten, hourly.
async fn prune_seen_events(shared: Shared, shutdown: CancellationToken) {
    loop {
        let cutoff = shared.clock.now() - chrono::Duration::days(1);
        match shared.catalog.prune_seen_events(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(pruned = n, "forgot old event ids"),
            Err(e) => warn!(error = %e, "pruning old event ids failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

async fn check(shared: &Shared) -> Result<(), String> {
    shared
        .catalog
        .check()
        .await
        .map_err(|e| format!("catalog: {e}"))?;
    let probe = ObjectPath::from("_probe/readyz");
    let body = bytes::Bytes::from_static(b"callvault readiness probe");
    let store = &shared.store;
    let timeout = Duration::from_secs(5);
    let io = async {
        store.put(&probe, body.clone().into()).await?;
        let got = store.get(&probe).await?.bytes().await?;
        store.delete(&probe).await?;
        Ok::<_, object_store::Error>(got == body)
    };
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("object store returned a different probe".to_owned()),
        Ok(Err(e)) => Err(format!("object store: {e}")),
        Err(_) => Err("object store did not answer within 5s".to_owned()),
    }
}
