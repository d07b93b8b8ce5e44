//! Secrets: read from files or systemd credentials, refused when others can read them, never printed,
//! zeroized on drop.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::ConfigError;

/// Secret bytes. `Debug` prints `[redacted]`; the bytes are zeroized when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes that are secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text with surrounding whitespace (such as a final newline) removed.
    pub fn expose_trimmed(&self) -> &[u8] {
        self.0.trim_ascii()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret lives: a file path, resolved when the config is loaded.
///
/// An absolute path is used as it is. A relative name is looked up in `$CREDENTIALS_DIRECTORY`
/// when systemd set it and the credential is there (`LoadCredential=`), and otherwise beside the
/// config file. So one config file serves both the service and an operator running the CLI on the
/// same host, and a secret the unit does not hand over as a credential (the keyring, which is read
/// again on reload) is read from beside the config file.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretFile {
    key: String,
    path: PathBuf,
}

impl SecretFile {
    /// A secret file not yet resolved: `path` as the config wrote it.
    pub(super) fn unresolved(path: PathBuf) -> Self {
        Self {
            key: String::new(),
            path,
        }
    }

    /// Resolves the path as described on [`SecretFile`] and remembers the config key that named it.
    pub(super) fn resolve(&mut self, key: &str, config_dir: &Path, credentials_dir: Option<&Path>) {
        if self.path.is_relative() {
            self.path = match credentials_dir.map(|dir| dir.join(&self.path)) {
                Some(credential) if credential.exists() => credential,
                _ => config_dir.join(&self.path),
            };
        }
        self.key = key.to_owned();
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config key that named this secret.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Checks that the file exists, is a regular file, and is not readable or writable by group or
    /// others.
    pub fn check(&self) -> Result<(), ConfigError> {
        let meta = fs::metadata(&self.path)
            .map_err(|e| self.error(format!("cannot read {}: {e}", self.path.display())))?;
        if !meta.is_file() {
            return Err(self.error(format!("{} is not a regular file", self.path.display())));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(self.error(format!(
                "{} has mode {mode:03o}: a secret file must not be accessible by group or others (chmod 600)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Reads the secret, after [`SecretFile::check`].
    pub fn read(&self) -> Result<Secret, ConfigError> {
        self.check()?;
        let bytes = fs::read(&self.path)
            .map_err(|e| self.error(format!("cannot read {}: {e}", self.path.display())))?;
        if bytes.trim_ascii().is_empty() {
            return Err(self.error(format!("{} is empty", self.path.display())));
        }
        Ok(Secret::new(bytes))
    }

    fn error(&self, reason: String) -> ConfigError {
        ConfigError::Invalid {
            key: self.key.clone(),
            reason,
        }
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the path is not secret, and ops need it in diagnostics
        write!(f, "SecretFile({})", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, body).expect("write test file");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod test file");
        p
    }

    fn resolved(key: &str, name: &str, dir: &Path, creds: Option<&Path>) -> SecretFile {
        let mut f = SecretFile::unresolved(PathBuf::from(name));
        f.resolve(key, dir, creds);
        f
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new(b"whsec_hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
    }

    #[test]
    fn readable_by_others_is_refused_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "open", b"x", 0o644);
        write(dir.path(), "group", b"x", 0o640);
        write(dir.path(), "tight", b"x\n", 0o600);
        write(dir.path(), "empty", b"\n", 0o600);
        let f = |n: &str| resolved("secrets.webhook", n, dir.path(), None);
        let err = f("open").read().expect_err("world-readable").to_string();
        assert!(
            err.contains("secrets.webhook") && err.contains("644"),
            "{err}"
        );
        assert!(f("group").read().is_err());
        assert!(f("empty").read().is_err());
        assert!(f("missing").read().is_err());
        assert_eq!(
            f("tight").read().expect("0600 is fine").expose_trimmed(),
            b"x"
        );
    }

    #[test]
    fn relative_names_prefer_systemd_credentials() {
        let cfg = tempfile::tempdir().expect("tempdir");
        let creds = tempfile::tempdir().expect("tempdir");
        let (cfg, creds) = (cfg.path(), creds.path());
        write(creds, "webhook-secret", b"x", 0o400);
        let f = resolved("k", "webhook-secret", cfg, Some(creds));
        assert_eq!(f.path(), creds.join("webhook-secret"));
        // not handed over as a credential: beside the config file
        let f = resolved("k", "keyring", cfg, Some(creds));
        assert_eq!(f.path(), cfg.join("keyring"));
        let f = resolved("k", "webhook-secret", cfg, None);
        assert_eq!(f.path(), cfg.join("webhook-secret"));
        let f = resolved("k", "/srv/k", cfg, Some(creds));
        assert_eq!(f.path(), Path::new("/srv/k"));
    }
}
