//! Loading: file, overrides, deserialization, path resolution, cross-field checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tree::{CatalogConfig, Config, StorageConfig};

/// Why a configuration was refused. Every variant names the file, the override or the dotted key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid toml: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// A `--set` argument is malformed.
    #[error("override {arg:?}: {reason}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key has a value that is not allowed.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl Config {
    /// Reads `path`, applies `overrides` (`dotted.key=value`), and checks the result.
    ///
    /// Secret files are resolved but not read: [`Config::check_secrets`] checks them all, and each
    /// command reads the ones it uses. `$CREDENTIALS_DIRECTORY`, when set, is where relative secret
    /// names are found.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::from_toml(&text, path, &dir, creds.as_deref(), overrides)
    }

    /// As [`Config::load`], from text, with the config directory and credentials directory given.
    pub fn from_toml(
        text: &str,
        path: &Path,
        config_dir: &Path,
        credentials_dir: Option<&Path>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    reason: e.to_string().trim_end().to_owned(),
                })?;
        for arg in overrides {
            merge(&mut table, parse_override(arg)?);
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." {
                    "(top level)".to_owned()
                } else {
                    key
                };
                let reason = e.into_inner().to_string();
                // the toml deserializer appends the key, which the error already names
                let reason = reason.split("\nin `").next().unwrap_or_default().trim_end();
                invalid(&key, reason)
            })?;
        config.config_dir = config_dir.to_owned();
        config.state_dir = config_dir.join(&config.state_dir);
        if let Some(tls) = &mut config.public.tls {
            tls.cert = config_dir.join(&tls.cert);
        }
        if let Some(tls) = &mut config.siprec.tls {
            tls.cert = config_dir.join(&tls.cert);
        }
        if let Some(oidc) = &mut config.auth.oidc {
            oidc.jwks = config_dir.join(&oidc.jwks);
        }
        for (key, secret) in config.secret_files_mut() {
            secret.resolve(key, config_dir, credentials_dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// The catalog database file, for the SQLite catalog.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.catalog {
            CatalogConfig::Sqlite { path } => Some(self.state_dir.join(path)),
            CatalogConfig::Postgres { .. } => None,
        }
    }

    /// The spool directory, where sealed chunks of live calls wait for upload.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.public.listen.ip().is_loopback() && self.public.tls.is_none() {
            return Err(invalid(
                "public.listen",
                format!(
                    "{} is not a loopback address, so public.tls (cert and key) is required",
                    self.public.listen
                ),
            ));
        }
        if !self.admin.listen.ip().is_loopback() {
            return Err(invalid(
                "admin.listen",
                format!(
                    "{} is not a loopback address: the admin listener has no tls",
                    self.admin.listen
                ),
            ));
        }
        if same_port(self.public.listen, self.admin.listen) {
            return Err(invalid("admin.listen", "must differ from public.listen"));
        }
        if let Some(tls) = &self.public.tls
            && !tls.cert.is_file()
        {
            return Err(invalid(
                "public.tls.cert",
                format!("{} is not a readable file", tls.cert.display()),
            ));
        }
        if let Some(oidc) = &self.auth.oidc
            && let Some((value, role)) = oidc
                .roles
                .iter()
                .find(|(_, r)| r.parse::<crate::domain::Role>().is_err())
        {
            return Err(invalid(
                &format!("auth.oidc.roles.{value}"),
                format!("{role:?} is not a role: supervisor, compliance, ops or telephony"),
            ));
        }
        // the console's OIDC sign-in maps roles as [auth.oidc] does (issue 15)
        if self.console.oidc.is_some() && self.auth.oidc.is_none() {
            return Err(invalid(
                "console.oidc",
                "needs [auth.oidc] (issuer, jwks, roles claim and mapping)",
            ));
        }
        if !(1024..=64 * 1024).contains(&self.public.max_body_bytes) {
            return Err(invalid(
                "public.max_body_bytes",
                "must be between 1024 and 65536",
            ));
        }
        within(
            "shutdown_grace",
            self.shutdown_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        )?;
        within(
            "pci.lookback",
            self.pci.lookback,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        within(
            "pci.guard",
            self.pci.guard,
            Duration::ZERO,
            self.pci.lookback,
        )
        .map_err(|_| invalid("pci.guard", "must not be longer than pci.lookback"))?;
        // a stall must be told from a gap while its audio is still in the look-back buffer
        within(
            "pci.max_latency",
            self.pci.max_latency,
            Duration::from_millis(100),
            self.pci.lookback.saturating_sub(Duration::from_secs(1)),
        )
        .map_err(|_| {
            invalid(
                "pci.max_latency",
                "must be at least 100ms and at least 1s less than pci.lookback",
            )
        })?;
        within(
            "consent.late_refusal",
            self.consent.late_refusal,
            Duration::ZERO,
            Duration::from_secs(86_400),
        )?;
        dtmf_limits("pci", self.pci.dtmf_quiet, self.pci.dtmf_sensitivity)?;
        if !(1024..=1024 * 1024).contains(&self.recorder.chunk_size) {
            return Err(invalid(
                "recorder.chunk_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        within(
            "recorder.spool_sync",
            self.recorder.spool_sync,
            Duration::from_millis(1),
            Duration::from_secs(5),
        )?;
        within(
            "recorder.spool_backlog",
            self.recorder.spool_backlog,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
        within(
            "recorder.spool_retry",
            self.recorder.spool_retry,
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?;
        // a stream that closed without call.ended is sealed only after the look-back window, so a
        // late pause is still honoured
        within(
            "recorder.idle_seal",
            self.recorder.idle_seal,
            self.pci.lookback + self.pci.guard,
            Duration::from_secs(3600),
        )?;
        self.siprec.check().map_err(|(k, r)| invalid(k, &r))?;
        if self.recorder.max_calls == 0 {
            return Err(invalid("recorder.max_calls", "must be at least 1"));
        }
        within(
            "retention.sweep_interval",
            self.retention.sweep_interval,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
        )?;
        if self.retention.batch_size == 0 {
            return Err(invalid("retention.batch_size", "must be at least 1"));
        }
        // a state settles after a late refusal could still change it
        within(
            "completeness.settle",
            self.completeness.settle,
            Duration::from_secs(1),
            Duration::from_secs(30 * 86_400),
        )?;
        within(
            "completeness.interval",
            self.completeness.interval,
            Duration::from_millis(100),
            Duration::from_secs(86_400),
        )?;
        within(
            "completeness.tolerance",
            self.completeness.tolerance,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        if self.completeness.batch_size == 0 {
            return Err(invalid("completeness.batch_size", "must be at least 1"));
        }
        // a checkpoint bounds how many of the newest audit entries could go unnoticed if cut off
        within(
            "audit.checkpoint_interval",
            self.audit.checkpoint_interval,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        )?;
        self.validate_limits()?;
        self.validate_policies()?;
        if self.import.workers == 0 || self.import.workers > 64 {
            return Err(invalid("import.workers", "must be 1 to 64"));
        }
        if self.import.max_bytes < 1024 {
            return Err(invalid("import.max_bytes", "must be at least 1024"));
        }
        within(
            "import.segment_length",
            self.import.segment_length,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
        if self.import.segment_length.subsec_nanos() != 0 {
            return Err(invalid("import.segment_length", "must be whole seconds"));
        }
        self.validate_storage()?;
        if let CatalogConfig::Postgres { url, .. } = &self.catalog {
            if url.trim().is_empty() {
                return Err(invalid("catalog.url", "must not be empty"));
            }
            crate::catalog::parse_postgres_url(url).map_err(|e| invalid("catalog.url", e))?;
        }
        if self.twilio.enabled {
            match self.twilio.public_url.as_deref() {
                Some(u)
                    if (u.starts_with("https://") || u.starts_with("http://"))
                        && !u.ends_with('/') => {}
                _ => {
                    return Err(invalid(
                        "twilio.public_url",
                        "required when twilio is enabled: the base URL Twilio calls, such as \"https://rec.example.gov.uk\", without a trailing slash",
                    ));
                }
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", format!("not a tracing filter: {e}")));
        }
        Ok(())
    }

    /// Checks that every secret file the config names exists with private permissions (a missing one
    /// is allowed with `secrets.create_missing`, which `serve` then creates). `check-config` and
    /// `serve` call it; the other commands read only the secrets they use, when they use them, so
    /// `callvault init` and `keys generate` work before the secrets exist.
    pub fn check_secrets(&self) -> Result<(), ConfigError> {
        for secret in self.secret_files() {
            let missing = !secret.path().exists();
            if !(missing && self.secrets.create_missing) {
                secret.check()?;
            }
        }
        Ok(())
    }

    fn validate_policies(&self) -> Result<(), ConfigError> {
        if !self.policies.contains_key(&self.default_policy) {
            return Err(invalid(
                "default_policy",
                format!("no policy named {:?} in [policies]", self.default_policy),
            ));
        }
        for (name, p) in &self.policies {
            if p.retention.is_zero() {
                return Err(invalid(
                    &format!("policies.{name}.retention"),
                    "must not be zero",
                ));
            }
            within(
                &format!("policies.{name}.consent_wait"),
                p.consent_wait,
                Duration::from_secs(1),
                Duration::from_secs(600),
            )?;
            dtmf_limits(
                &format!("policies.{name}"),
                p.dtmf_quiet.unwrap_or(self.pci.dtmf_quiet),
                p.dtmf_sensitivity.unwrap_or(self.pci.dtmf_sensitivity),
            )?;
            // imported audio is cut into segments at whole seconds, so any rate of whole hertz
            // keeps the segments' millisecond times exact at 1000 Hz multiples; the usual ones are
            if !(8000..=48_000).contains(&p.import_sample_rate) || p.import_sample_rate % 1000 != 0
            {
                return Err(invalid(
                    &format!("policies.{name}.import_sample_rate"),
                    "must be a multiple of 1000 hz from 8000 to 48000",
                ));
            }
            if let Some(max) = p.max_pause {
                within(
                    &format!("policies.{name}.max_pause"),
                    max,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )?;
            }
        }
        for (table, map) in [("lines", &self.lines), ("queues", &self.queues)] {
            for (from, policy) in map {
                if !self.policies.contains_key(policy) {
                    return Err(invalid(
                        &format!("{table}.{from}"),
                        format!("no policy named {policy:?} in [policies]"),
                    ));
                }
            }
        }
        for line in self.lines.keys() {
            let digits = line.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    &format!("lines.{line}"),
                    "a line must be an e.164 number such as \"+441744676789\"",
                ));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, v) in [
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.tls_handshake_timeout", l.tls_handshake_timeout),
        ] {
            within(
                key,
                v,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )?;
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if !(1..=l.max_connections).contains(&l.max_connections_per_peer) {
            return Err(invalid(
                "limits.max_connections_per_peer",
                "must be between 1 and limits.max_connections",
            ));
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        if let StorageConfig::S3 {
            bucket,
            endpoint,
            allow_http,
            request_timeout,
            ..
        } = &self.storage
        {
            if bucket.trim().is_empty() {
                return Err(invalid("storage.bucket", "must not be empty"));
            }
            if request_timeout.is_zero() {
                return Err(invalid("storage.request_timeout", "must be more than 0s"));
            }
            if let Some(url) = endpoint {
                if url.starts_with("http://") {
                    if !allow_http {
                        return Err(invalid(
                            "storage.endpoint",
                            "an http:// endpoint needs storage.allow_http = true",
                        ));
                    }
                } else if !url.starts_with("https://") {
                    return Err(invalid("storage.endpoint", "must be an http(s):// url"));
                }
            }
        }
        Ok(())
    }
}

fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified())
}

/// `dtmf_quiet` and `dtmf_sensitivity` of `[pci]` or of one policy (`prefix`).
fn dtmf_limits(prefix: &str, quiet: Duration, sensitivity: i8) -> Result<(), ConfigError> {
    within(
        &format!("{prefix}.dtmf_quiet"),
        quiet,
        Duration::ZERO,
        Duration::from_secs(600),
    )?;
    let range = crate::audio::dtmf::MIN_LEVEL_RANGE;
    if !range.contains(&f32::from(sensitivity)) {
        return Err(invalid(
            &format!("{prefix}.dtmf_sensitivity"),
            format!(
                "{sensitivity} is out of range {} to {} (dBm0)",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(())
}

fn within(key: &str, v: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(invalid(
            key,
            format!(
                "{} is out of range {} to {}",
                humantime::format_duration(v),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}

/// Parses `dotted.key=value` into a one-key TOML table. The key uses TOML's dotted-key syntax (quote
/// a part that holds dots: `lines."+441744676789"=complaints`); a value that is not TOML is taken
/// as a string, so `public.listen=127.0.0.1:0` needs no quotes.
fn parse_override(arg: &str) -> Result<toml::Table, ConfigError> {
    let bad = |reason: &str| ConfigError::Override {
        arg: arg.to_owned(),
        reason: reason.to_owned(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected dotted.key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad("expected dotted.key=value"));
    }
    if let Ok(t) = format!("{key} = {value}").parse::<toml::Table>() {
        return Ok(t);
    }
    let quoted = toml::Value::String(value.trim().to_owned());
    format!("{key} = {quoted}")
        .parse::<toml::Table>()
        .map_err(|_| bad("the key is not a valid dotted toml key"))
}

fn merge(base: &mut toml::Table, patch: toml::Table) {
    for (k, v) in patch {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(p)) => merge(b, p),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests;
