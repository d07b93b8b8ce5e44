//! The config tree, with every default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::SecretFile;
use super::platforms::{AudioHookConfig, AudioSocketConfig, TwilioConfig};
use crate::domain::{ConsentMode, DtmfMode, DtmfPolicy, PauseRender, Period, Policy};

/// The whole configuration. Relative paths are relative to the config file's directory, except those
/// documented as relative to [`Config::state_dir`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the catalog, the local object store and the spool live (systemd's `StateDirectory=`).
    pub state_dir: PathBuf,
    /// How long shutdown waits for connections and live calls to drain.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// The public listener: telephony platforms and supervisors.
    pub public: PublicConfig,
    /// The admin listener: health, readiness, metrics.
    pub admin: AdminConfig,
    /// Where metadata lives.
    pub catalog: CatalogConfig,
    /// Where sealed audio lives.
    pub storage: StorageConfig,
    /// Key-encryption keys.
    pub keys: KeysConfig,
    /// Other secrets.
    pub secrets: SecretsConfig,
    /// Card-payment pause timing.
    pub pci: PciConfig,
    /// Consent rules that are not per policy.
    pub consent: ConsentConfig,
    /// Live recording.
    pub recorder: RecorderConfig,
    /// The retention worker.
    pub retention: RetentionConfig,
    /// Signed checkpoints of the audit chain (issue 12).
    pub audit: AuditConfig,
    /// Every call accounted for: the completeness reconciler (issue 16).
    pub completeness: CompletenessConfig,
    /// Limits on every listener's connections.
    pub limits: LimitsConfig,
    /// The policy of lines and queues that no mapping names.
    pub default_policy: String,
    /// Named policies.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Dialled number (E.164) to policy name.
    pub lines: BTreeMap<String, String>,
    /// Queue name to policy name; a queue mapping wins over a line mapping.
    pub queues: BTreeMap<String, String>,
    /// Logging.
    pub log: LogConfig,
    /// How people authenticate besides bearer tokens (issue 5).
    pub auth: AuthConfig,
    /// Twilio Media Streams and status callbacks (off by default).
    pub twilio: TwilioConfig,
    /// Genesys Cloud AudioHook (off by default).
    pub audiohook: AudioHookConfig,
    /// Asterisk AudioSocket listener (off by default).
    pub audiosocket: AudioSocketConfig,
    /// The supervisor web console under `/console/` (issue 15).
    pub console: ConsoleConfig,
    /// SIPREC recording server (off by default).
    pub siprec: super::siprec::SiprecConfig,
    /// Imported recordings: `POST /v1/imports` and `callvault import` (issue 17).
    pub import: ImportConfig,
    /// The directory of the config file, against which relative paths were resolved.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/callvault"),
            shutdown_grace: Duration::from_secs(20),
            public: PublicConfig::default(),
            admin: AdminConfig::default(),
            catalog: CatalogConfig::default(),
            storage: StorageConfig::default(),
            keys: KeysConfig::default(),
            secrets: SecretsConfig::default(),
            pci: PciConfig::default(),
            consent: ConsentConfig::default(),
            recorder: RecorderConfig::default(),
            retention: RetentionConfig::default(),
            audit: AuditConfig::default(),
            completeness: CompletenessConfig::default(),
            limits: LimitsConfig::default(),
            default_policy: "standard".to_owned(),
            policies: BTreeMap::from([("standard".to_owned(), PolicyConfig::default())]),
            lines: BTreeMap::new(),
            queues: BTreeMap::new(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            twilio: TwilioConfig::default(),
            audiohook: AudioHookConfig::default(),
            audiosocket: AudioSocketConfig::default(),
            console: ConsoleConfig::default(),
            siprec: super::siprec::SiprecConfig::default(),
            import: ImportConfig::default(),
            config_dir: PathBuf::from("."),
        }
    }
}

impl Config {
    /// The policy a call on `line` in `queue` is recorded under: the queue's, else the line's, else
    /// the default.
    pub fn policy_for(&self, line: Option<&str>, queue: Option<&str>) -> Policy {
        let name = queue
            .and_then(|q| self.queues.get(q))
            .or_else(|| line.and_then(|l| self.lines.get(l)))
            .unwrap_or(&self.default_policy);
        self.policy(name)
            .expect("load checked that every mapping and the default name a policy")
    }

    /// The named policy, if configured.
    pub fn policy(&self, name: &str) -> Option<Policy> {
        self.policies.get(name).map(|p| Policy {
            name: name.to_owned(),
            retention: p.retention,
            consent: p.consent,
            consent_wait: p.consent_wait,
            pause_render: p.pause_render,
            max_pause: p.max_pause,
            dtmf: DtmfPolicy {
                mode: p.dtmf.unwrap_or(self.pci.dtmf),
                quiet: p.dtmf_quiet.unwrap_or(self.pci.dtmf_quiet),
                sensitivity_dbm0: p.dtmf_sensitivity.unwrap_or(self.pci.dtmf_sensitivity),
            },
        })
    }

    /// Every configured secret, with the config key that names it.
    pub fn secret_files(&self) -> Vec<&SecretFile> {
        let mut v = vec![&self.keys.keyring];
        v.extend(self.public.tls.as_ref().map(|t| &t.key));
        v.extend([
            &self.secrets.webhook,
            &self.secrets.signing_key,
            &self.secrets.caller_pepper,
        ]);
        if let StorageConfig::S3 {
            access_key_id,
            secret_access_key,
            ..
        } = &self.storage
        {
            v.extend([access_key_id, secret_access_key]);
        }
        if let CatalogConfig::Postgres {
            password: Some(p), ..
        } = &self.catalog
        {
            v.push(p);
        }
        if self.twilio.enabled {
            v.push(&self.twilio.auth_token);
            v.extend(self.twilio.shared_key.as_ref());
        }
        if self.audiohook.enabled {
            v.extend([&self.audiohook.api_key, &self.audiohook.client_secret]);
        }
        v.extend(
            self.console
                .oidc
                .as_ref()
                .and_then(|o| o.client_secret.as_ref()),
        );
        v
    }

    /// Every configured secret with its dotted key, mutably, for resolution at load.
    pub(super) fn secret_files_mut(&mut self) -> Vec<(&'static str, &mut SecretFile)> {
        let mut v = vec![("keys.keyring", &mut self.keys.keyring)];
        v.extend(
            self.public
                .tls
                .as_mut()
                .map(|t| ("public.tls.key", &mut t.key)),
        );
        v.extend(
            self.siprec
                .tls
                .as_mut()
                .map(|t| ("siprec.tls.key", &mut t.key)),
        );
        v.extend([
            ("secrets.webhook", &mut self.secrets.webhook),
            ("secrets.signing_key", &mut self.secrets.signing_key),
            ("secrets.caller_pepper", &mut self.secrets.caller_pepper),
        ]);
        if let StorageConfig::S3 {
            access_key_id,
            secret_access_key,
            ..
        } = &mut self.storage
        {
            v.push(("storage.access_key_id", access_key_id));
            v.push(("storage.secret_access_key", secret_access_key));
        }
        if let CatalogConfig::Postgres {
            password: Some(p), ..
        } = &mut self.catalog
        {
            v.push(("catalog.password", p));
        }
        if self.twilio.enabled {
            v.push(("twilio.auth_token", &mut self.twilio.auth_token));
            v.extend(
                self.twilio
                    .shared_key
                    .as_mut()
                    .map(|k| ("twilio.shared_key", k)),
            );
        }
        if self.audiohook.enabled {
            v.push(("audiohook.api_key", &mut self.audiohook.api_key));
            v.push(("audiohook.client_secret", &mut self.audiohook.client_secret));
        }
        v.extend(
            self.console
                .oidc
                .as_mut()
                .and_then(|o| o.client_secret.as_mut())
                .map(|s| ("console.oidc.client_secret", s)),
        );
        v
    }
}

/// The public listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Address and port. Without `tls`, only a loopback address is allowed.
    pub listen: SocketAddr,
    /// TLS certificate and key; required unless `listen` is a loopback address.
    pub tls: Option<TlsConfig>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for PublicConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// TLS for a listener (rustls).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (a secret file).
    pub key: SecretFile,
}

/// The admin listener: `/healthz`, `/readyz`, `/metrics`. Plain HTTP, loopback only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address and port; must be a loopback address.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Where the catalog lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum CatalogConfig {
    /// An embedded SQLite database (the default).
    Sqlite {
        /// Database file, relative to the state directory.
        #[serde(default = "default_sqlite_path")]
        path: PathBuf,
    },
    /// A PostgreSQL server, shared by several nodes.
    Postgres {
        /// Connection string without the password, e.g. `host=db user=callvault dbname=callvault`.
        url: String,
        /// The password (a secret file), if the server asks for one.
        password: Option<SecretFile>,
    },
}

fn default_sqlite_path() -> PathBuf {
    PathBuf::from("catalog.sqlite")
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig::Sqlite {
            path: default_sqlite_path(),
        }
    }
}

/// Where sealed audio objects live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum StorageConfig {
    /// A directory on local disk (the default).
    Local {
        /// Root directory, relative to the state directory.
        #[serde(default = "default_local_root")]
        root: PathBuf,
    },
    /// In memory: lost at exit. For tests only.
    Memory,
    /// An S3-compatible bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region.
        #[serde(default = "default_region")]
        region: String,
        /// Endpoint URL for a non-AWS server, e.g. `https://s3.example.net`.
        endpoint: Option<String>,
        /// Access key id (a secret file).
        access_key_id: SecretFile,
        /// Secret access key (a secret file).
        secret_access_key: SecretFile,
        /// Allow an `http://` endpoint (only for a server on this host).
        #[serde(default)]
        allow_http: bool,
        /// The longest one request may take, body included (an upload part is 8 MiB).
        #[serde(default = "default_request_timeout", deserialize_with = "duration")]
        request_timeout: Duration,
    },
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_local_root() -> PathBuf {
    PathBuf::from("objects")
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Local {
            root: default_local_root(),
        }
    }
}

/// Key-encryption keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The keyring file (a secret file), written by `callvault keys generate` and `keys rotate`.
    pub keyring: SecretFile,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            keyring: SecretFile::named("keyring"),
        }
    }
}

/// Secrets other than the keyring. Each is a file name, resolved as [`SecretFile`] says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Standard Webhooks secret (`whsec_...`) that signs native call events.
    pub webhook: SecretFile,
    /// Ed25519 signing key for export bundles.
    pub signing_key: SecretFile,
    /// Pepper of the keyed HMAC that turns caller numbers into lookup tags.
    pub caller_pepper: SecretFile,
    /// Create a secret that is missing with fresh random material at start-up. For development
    /// only: in production a missing secret must stop the daemon.
    pub create_missing: bool,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            webhook: SecretFile::named("webhook-secret"),
            signing_key: SecretFile::named("signing-key"),
            caller_pepper: SecretFile::named("caller-pepper"),
            create_missing: false,
        }
    }
}

/// Card-payment pause timing (DESIGN.md section 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PciConfig {
    /// How long captured audio waits in memory before it is committed, so a late pause still
    /// keeps card audio out of storage.
    #[serde(deserialize_with = "duration")]
    pub lookback: Duration,
    /// How far before a pause event's instant capture stops.
    #[serde(deserialize_with = "duration")]
    pub guard: Duration,
    /// How far before its first arrival a stream's media clock may be anchored, whatever the
    /// platform claims; audio arriving later than this behind its media time is watched to tell a
    /// stall from a gap (DESIGN.md section 2, "Two clocks").
    #[serde(deserialize_with = "duration")]
    pub max_latency: Duration,
    /// What keypad tones (DTMF) found in the audio or signalled by the platform cost capture:
    /// `pause` (from the first key's onset less `guard` until `dtmf_quiet` after the last), `mask`
    /// (only the keys' audio) or `off`. A policy may set its own.
    #[serde(deserialize_with = "from_str")]
    pub dtmf: DtmfMode,
    /// Under `dtmf = "pause"`, how long capture stays paused after the last key.
    #[serde(deserialize_with = "duration")]
    pub dtmf_quiet: Duration,
    /// The tone detector's sensitivity: the weakest tone that counts, in dBm0 for each of its two
    /// frequencies (-50 to -10).
    pub dtmf_sensitivity: i8,
}

impl Default for PciConfig {
    fn default() -> Self {
        let dtmf = DtmfPolicy::default();
        Self {
            lookback: Duration::from_secs(3),
            guard: Duration::from_millis(500),
            max_latency: Duration::from_secs(1),
            dtmf: dtmf.mode,
            dtmf_quiet: dtmf.quiet,
            dtmf_sensitivity: dtmf.sensitivity_dbm0,
        }
    }
}

impl PciConfig {
    /// The timing rules of the look-back buffer, as the domain takes them: the one conversion, for
    /// the live call and for a pause that arrives after it alike. `Config::load` bounds both to a
    /// minute, so they always convert.
    pub fn timing(&self) -> crate::domain::lifecycle::Timing {
        let convert = |d: Duration| {
            chrono::Duration::from_std(d).expect("load bounds pci timings to a minute")
        };
        crate::domain::lifecycle::Timing {
            lookback: convert(self.lookback),
            guard: convert(self.guard),
            dtmf: crate::domain::DtmfPolicy {
                mode: self.dtmf,
                quiet: self.dtmf_quiet,
                sensitivity_dbm0: self.dtmf_sensitivity,
            },
            resume_margin: convert(self.max_latency),
        }
    }
}

/// Consent rules that are not per policy (DESIGN.md section 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// How long after a call ends a telephony `consent.refused` still destroys its recording.
    /// A later one is ledgered as `refused_late` and counted as an erasure request.
    #[serde(deserialize_with = "duration")]
    pub late_refusal: Duration,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            late_refusal: Duration::from_secs(600),
        }
    }
}

impl ConsentConfig {
    /// `late_refusal` as the domain takes it (`Config::load` bounds it to a day).
    pub fn late_refusal(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.late_refusal).expect("load bounds it to a day")
    }
}

/// Live recording.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// Plaintext bytes per sealed chunk (16 KiB is about one second of stereo G.711).
    pub chunk_size: u32,
    /// How often the spool is synced to disk across all live calls (group commit).
    #[serde(deserialize_with = "duration")]
    pub spool_sync: Duration,
    /// How much audio one call keeps in memory while the spool cannot be written (a full disk, an
    /// I/O error): it is written when the spool takes writes again; audio past it is dropped, and
    /// the recording's ledger names the seconds lost and the cause. Costs up to about 16 KB of
    /// memory per second per affected call (stereo G.711).
    #[serde(deserialize_with = "duration")]
    pub spool_backlog: Duration,
    /// How often a spool that cannot be written is tried again.
    #[serde(deserialize_with = "duration")]
    pub spool_retry: Duration,
    /// How long after a media stream closes without `call.ended` the segment is sealed.
    #[serde(deserialize_with = "duration")]
    pub idle_seal: Duration,
    /// Most concurrent live calls; more are refused.
    pub max_calls: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            chunk_size: 16 * 1024,
            spool_sync: Duration::from_millis(200),
            spool_backlog: Duration::from_secs(30),
            spool_retry: Duration::from_secs(1),
            idle_seal: Duration::from_secs(30),
            max_calls: 10_000,
        }
    }
}

/// The retention worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How often the worker wakes.
    #[serde(deserialize_with = "duration")]
    pub sweep_interval: Duration,
    /// Recordings taken per batch.
    pub batch_size: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(3600),
            batch_size: 500,
        }
    }
}

/// Signed checkpoints of the audit chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often the daemon signs the chain head (when it moved); it also signs at shutdown.
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

/// The completeness reconciler: how long a call's state may change, and what counts as missing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompletenessConfig {
    /// How long after a call ended (and its recording was sealed) its state may still change: late
    /// media, uploads that retry, a refusal up to `consent.late_refusal` after the call. Then the
    /// state is final and written to the ledger and the audit chain.
    #[serde(deserialize_with = "duration")]
    pub settle: Duration,
    /// How often the reconciler re-checks the calls not settled yet.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Audio missing up to this much (stream set-up, clock skew) still counts as recorded.
    #[serde(deserialize_with = "duration")]
    pub tolerance: Duration,
    /// Calls read per catalog page.
    pub batch_size: usize,
}

impl Default for CompletenessConfig {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(3600),
            interval: Duration::from_secs(60),
            tolerance: Duration::from_secs(5),
            batch_size: 500,
        }
    }
}

/// Limits on every connection of every listener (public, admin, AudioSocket).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// How long an HTTP client may take to send a request's headers.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// A connection that moves no byte either way this long is closed.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a client may take over the TLS handshake.
    #[serde(deserialize_with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// Most connections one listener holds at once.
    pub max_connections: usize,
    /// Most connections one peer address holds on one listener at once.
    pub max_connections_per_peer: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_connections_per_peer: 10_000,
        }
    }
}

/// One named policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// How long recordings are kept after the call ends: a calendar period such as `3 months`.
    #[serde(deserialize_with = "from_str")]
    pub retention: Period,
    /// `implied` or `explicit`.
    #[serde(deserialize_with = "from_str")]
    pub consent: ConsentMode,
    /// Under explicit consent, how long audio waits in memory for consent.
    #[serde(deserialize_with = "duration")]
    pub consent_wait: Duration,
    /// `skip`, `silence` or `tone`.
    #[serde(deserialize_with = "from_str")]
    pub pause_render: PauseRender,
    /// A payment pause longer than this resumes by itself; unset stays paused until the call ends.
    #[serde(deserialize_with = "optional_duration")]
    pub max_pause: Option<Duration>,
    /// This policy's `pci.dtmf`; unset uses `pci.dtmf`.
    #[serde(deserialize_with = "optional_from_str")]
    pub dtmf: Option<DtmfMode>,
    /// This policy's `pci.dtmf_quiet`; unset uses `pci.dtmf_quiet`.
    #[serde(deserialize_with = "optional_duration")]
    pub dtmf_quiet: Option<Duration>,
    /// This policy's `pci.dtmf_sensitivity`; unset uses `pci.dtmf_sensitivity`.
    pub dtmf_sensitivity: Option<i8>,
    /// How 16-bit linear audio is stored: `raw` (L16 as it came) or `flac` (lossless FLAC frames
    /// in the sealed chunks). G.711 is stored as it came either way.
    #[serde(deserialize_with = "from_str")]
    pub storage_codec: StorageCodec,
    /// Imported recordings enter `pci_review` (compliance only, until a compliance user clears
    /// them): no pause removed card details from audio recorded elsewhere.
    pub import_review: bool,
    /// The sample rate (Hz) imported audio is stored at, when it is not G.711 at 8000 Hz: audio at
    /// another rate is resampled to it.
    pub import_sample_rate: u32,
}

/// How a policy stores 16-bit linear audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageCodec {
    /// As it came: L16, two bytes a sample.
    #[default]
    Raw,
    /// Lossless FLAC frames inside the sealed chunks.
    Flac,
}

impl FromStr for StorageCodec {
    type Err = crate::domain::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Self::Raw),
            "flac" => Ok(Self::Flac),
            _ => Err(crate::domain::UnknownWord::new("raw, flac", s)),
        }
    }
}

/// Imported recordings (issue 17): the upload API and `callvault import`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Most files decoded at once by the daemon (each on a blocking thread).
    pub workers: usize,
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// How far the decoded audio's length may be from the call's (end minus start).
    #[serde(deserialize_with = "duration")]
    pub duration_tolerance: Duration,
    /// Imported audio is sealed in segments of at most this long (whole seconds).
    #[serde(deserialize_with = "duration")]
    pub segment_length: Duration,
    /// Names of telephony tokens that may upload recordings (the import scope); the compliance
    /// role always may.
    pub telephony_tokens: Vec<String>,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_bytes: 1 << 30,
            duration_tolerance: Duration::from_secs(2),
            segment_length: Duration::from_secs(300),
            telephony_tokens: Vec::new(),
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            retention: Period::months(3),
            consent: ConsentMode::Implied,
            consent_wait: Duration::from_secs(60),
            pause_render: PauseRender::Tone,
            max_pause: None,
            dtmf: None,
            dtmf_quiet: None,
            dtmf_sensitivity: None,
            storage_codec: StorageCodec::Raw,
            import_review: false,
            import_sample_rate: 8000,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `callvault=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How people authenticate besides bearer tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// OIDC JWTs checked against a JWKS file; unset, only bearer tokens are accepted.
    pub oidc: Option<OidcConfig>,
}

/// OIDC JWTs: signed by a key of the JWKS file (RS256, ES256 or EdDSA), from `issuer`, for
/// `audience`, not expired (give or take `leeway`); the roles come from `roles_claim` through `roles`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The JWKS file (the identity provider's public keys; not a secret).
    pub jwks: PathBuf,
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(deserialize_with = "duration", default = "default_leeway")]
    pub leeway: Duration,
    /// The claim that holds the user's groups or roles (a string or an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim value to callvault role (`supervisor`, `compliance`, `ops`, `telephony`). A user whose
    /// values map to several roles gets the first of compliance, supervisor, ops, telephony; no
    /// mapped value, no access.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The claim used as the actor in the audit chain.
    #[serde(default = "default_actor_claim")]
    pub actor_claim: String,
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_actor_claim() -> String {
    "sub".to_owned()
}

/// The web console (issue 15): browser sessions, and OIDC sign-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether `/console/` is served at all.
    pub enabled: bool,
    /// How long a signed-in session lasts at most (an OIDC session ends earlier when its ID token
    /// expires).
    #[serde(deserialize_with = "duration")]
    pub session_lifetime: Duration,
    /// Most signed-in sessions held at once; signing in past it ends the oldest.
    pub max_sessions: usize,
    /// Sign-in through the council's identity provider; unset, people sign in with a token.
    pub oidc: Option<ConsoleOidcConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_lifetime: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
            oidc: None,
        }
    }
}

/// OIDC authorization code flow with PKCE. The issuer, the role claim and its mapping are
/// `[auth.oidc]`'s, so a person gets the same role in the console as with a JWT on the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidcConfig {
    /// The client id registered with the identity provider (the ID token's audience).
    pub client_id: String,
    /// The client secret file (`client_secret_basic`); unset for a public client (PKCE only).
    pub client_secret: Option<SecretFile>,
    /// The console's callback as registered, e.g. `https://callvault.example/console/oidc/callback`.
    pub redirect_uri: String,
    /// The discovery document; default `{issuer}/.well-known/openid-configuration`.
    pub discovery: Option<String>,
    /// The scopes asked for.
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// What the sign-in button says, e.g. "Sign in with the council account".
    #[serde(default = "default_oidc_label")]
    pub label: String,
}

fn default_scopes() -> String {
    "openid profile".to_owned()
}

fn default_oidc_label() -> String {
    "Sign in with your organisation account".to_owned()
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl SecretFile {
    /// A secret named relative to the credentials or config directory, unresolved until load.
    fn named(name: &str) -> Self {
        Self::unresolved(PathBuf::from(name))
    }
}

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom(
                "expected a file name, got an empty string",
            ));
        }
        Ok(Self::unresolved(PathBuf::from(s)))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "expected a duration such as \"3s\" or \"500ms\", got {s:?}: {e}"
        ))
    })
}

/// A human duration such as `"3s"` (for the sections kept in their own files).
pub(super) fn duration_de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn optional_from_str<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    from_str(d).map(Some)
}

fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}
