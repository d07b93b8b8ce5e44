//! The keyring: the key-encryption keys by [`KeyId`], exactly one active, its file format, and the
//! envelope operations (wrap, unwrap, rewrap) that put data keys under them.
//!
//! This module owns the keyring file format and the wrapped-key format. It reads its file only
//! through a [`SecretFile`] (which checks permissions) and must not log keys: its `Debug` lists key
//! ids only.
//!
//! A running daemon's keyring is replaced whole, live: [`Keyring::replace_with`] after a reload
//! (SIGHUP, or `POST /keyring/reload` on the admin listener), and [`Keyring::unwrap`] itself reads
//! the file again when a data key names a key it has not loaded (another node or the CLI rotated),
//! adding keys but never dropping one on that path.
//!
//! Keyring file (a secret file, version 1):
//!
//! ```json
//! {"version":1,"active":"kek-20261122-3fa1",
//!  "keys":[{"id":"kek-20261122-3fa1","key":"<base64 of 32 bytes>","created":"2026-11-22T10:00:00Z"}]}
//! ```
//!
//! Wrapped data key: AES-256-GCM under the active key-encryption key, `bytes` = random nonce (12) ‖
//! ciphertext (32) ‖ tag (16), associated data = [`WRAP_AAD_TAG`] ‖ recording id (16) ‖ segment
//! number (u32 big-endian) ‖ key id (UTF-8), so a wrapped key cannot be moved to another recording or
//! segment, nor relabelled with another key id.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::VaultError;
use super::keys::{DataKey, KEY_LEN, Kek, WrappedKey};
use crate::config::SecretFile;
use crate::domain::{KeyId, RecordingId, SegmentNo};

/// The keyring file format version this build reads and writes.
pub const KEYRING_VERSION: u32 = 1;

/// First bytes of the associated data of every wrapped data key (frozen).
pub const WRAP_AAD_TAG: &[u8] = b"callvault/data-key/v1\0";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of [`WrappedKey::bytes`].
pub const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// A data key naming an unloaded key re-reads the file at most this often.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Entry {
    kek: Kek,
    created: DateTime<Utc>,
}

#[derive(Clone)]
struct Ring {
    active: KeyId,
    keys: BTreeMap<KeyId, Entry>,
}

/// The key-encryption keys, by id, with exactly one active (the one new data keys are wrapped under).
///
/// Shared by the running daemon behind an `Arc`; its contents can be replaced live (see the module
/// documentation), each operation working on one consistent snapshot.
pub struct Keyring {
    ring: RwLock<Arc<Ring>>,
    source: Option<SecretFile>,
    last_miss_reload: Mutex<Option<Instant>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.snapshot();
        f.debug_struct("Keyring")
            .field("active", &ring.active)
            .field("keys", &ring.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a live reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The active key before.
    pub previous_active: KeyId,
    /// The active key now.
    pub active: KeyId,
    /// Keys loaded that were not.
    pub added: Vec<KeyId>,
    /// Keys no longer loaded.
    pub removed: Vec<KeyId>,
}

/// Key text that is wiped once parsed or written.
struct SecretText(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    version: u32,
    active: String,
    keys: Vec<KeyRepr>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KeyRepr {
    id: String,
    key: SecretText,
    created: String,
}

fn bad(reason: impl Into<String>) -> VaultError {
    VaultError::Keyring {
        reason: reason.into(),
    }
}

impl Keyring {
    /// A new keyring with one fresh active key, created at `now`.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let mut ring = Ring {
            active: fresh_id(now, &BTreeMap::new()),
            keys: BTreeMap::new(),
        };
        ring.keys.insert(
            ring.active.clone(),
            Entry {
                kek: Kek::generate(),
                created: now,
            },
        );
        Self::from_ring(ring)
    }

    fn from_ring(ring: Ring) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            source: None,
            last_miss_reload: Mutex::new(None),
        }
    }

    /// Reads and parses the keyring file `file` (permissions checked), remembering it as the
    /// source that [`Keyring::unwrap`] re-reads when a data key names a key not loaded.
    pub fn load(file: &SecretFile) -> Result<Self, VaultError> {
        let secret = file.read().map_err(|e| bad(e.to_string()))?;
        let mut ring = Self::from_bytes(secret.expose())?;
        ring.source = Some(file.clone());
        Ok(ring)
    }

    fn snapshot(&self) -> Arc<Ring> {
        Arc::clone(&self.ring.read().expect("keyring lock is never poisoned"))
    }

    /// Replaces every key with those of `other` (a keyring just read again), and says what changed.
    pub fn replace_with(&self, other: &Keyring) -> Reloaded {
        let new = other.snapshot();
        let mut ring = self.ring.write().expect("keyring lock is never poisoned");
        let old = std::mem::replace(&mut *ring, Arc::clone(&new));
        Reloaded {
            previous_active: old.active.clone(),
            active: new.active.clone(),
            added: new
                .keys
                .keys()
                .filter(|k| !old.keys.contains_key(*k))
                .cloned()
                .collect(),
            removed: old
                .keys
                .keys()
                .filter(|k| !new.keys.contains_key(*k))
                .cloned()
                .collect(),
        }
    }

    /// Removes a key that is not the active one. The caller checks first that nothing is sealed
    /// under it (`callvault keys retire`).
    pub fn retire(&mut self, id: &KeyId) -> Result<(), VaultError> {
        let ring = Arc::make_mut(self.ring.get_mut().expect("keyring lock is never poisoned"));
        if &ring.active == id {
            return Err(bad(format!(
                "{id} is the active key: rotate first, then rewrap, then retire it"
            )));
        }
        if ring.keys.remove(id).is_none() {
            return Err(bad(format!("no key {id} in the keyring")));
        }
        Ok(())
    }

    /// A data key named `id`, which is not loaded: re-read the source (at most once a second) and
    /// add its keys, never dropping one. Whether `id` is loaded now.
    fn reload_for(&self, id: &KeyId) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        {
            let mut last = self
                .last_miss_reload
                .lock()
                .expect("keyring lock is never poisoned");
            if last.is_some_and(|t| t.elapsed() < MISS_RELOAD_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let read = source
            .read()
            .map_err(|e| e.to_string())
            .and_then(|s| Self::from_bytes(s.expose()).map_err(|e| e.to_string()));
        let fresh = match read {
            Ok(f) => f.snapshot(),
            Err(error) => {
                tracing::error!(key_id = %id, %error, "a data key names a key not loaded, and the keyring cannot be read again");
                return false;
            }
        };
        if !fresh.keys.contains_key(id) {
            return false;
        }
        let mut ring = self.ring.write().expect("keyring lock is never poisoned");
        let mut merged = (**ring).clone();
        merged.active = fresh.active.clone();
        for (k, e) in &fresh.keys {
            merged.keys.entry(k.clone()).or_insert_with(|| e.clone());
        }
        *ring = Arc::new(merged);
        metrics::counter!("callvault_keyring_reloads_total", "trigger" => "unknown_key", "result" => "ok").increment(1);
        tracing::info!(key_id = %id, active = %fresh.active, "keyring read again: a data key named a key not loaded");
        true
    }

    /// Parses a keyring file. Fails on an unknown version or field, a bad id, a key that is not
    /// base64 of 32 bytes, a duplicate id, or an active id that is not among the keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        let repr: FileRepr =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a keyring file: {e}")))?;
        if repr.version != KEYRING_VERSION {
            return Err(bad(format!("unsupported keyring version {}", repr.version)));
        }
        let mut keys = BTreeMap::new();
        for k in repr.keys {
            let id: KeyId =
                k.id.parse()
                    .map_err(|e| bad(format!("key id {:?}: {e}", k.id)))?;
            let raw = Zeroizing::new(
                B64.decode(k.key.0.as_bytes())
                    .map_err(|_| bad(format!("key {id} is not base64")))?,
            );
            let kek = Kek::from_slice(&raw).ok_or_else(|| {
                bad(format!(
                    "key {id} is {} bytes, expected {KEY_LEN}",
                    raw.len()
                ))
            })?;
            let created = DateTime::parse_from_rfc3339(&k.created)
                .map_err(|_| bad(format!("key {id} has a created time that is not rfc 3339")))?
                .with_timezone(&Utc);
            if keys.contains_key(&id) {
                return Err(bad(format!("duplicate key id {id}")));
            }
            keys.insert(id, Entry { kek, created });
        }
        let active: KeyId = repr
            .active
            .parse()
            .map_err(|e| bad(format!("active key id: {e}")))?;
        if !keys.contains_key(&active) {
            return Err(bad(format!("active key {active} is not among the keys")));
        }
        Ok(Self::from_ring(Ring { active, keys }))
    }

    /// The keyring file's bytes, in a buffer that is wiped on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let ring = self.snapshot();
        let repr = FileRepr {
            version: KEYRING_VERSION,
            active: ring.active.to_string(),
            keys: ring
                .keys
                .iter()
                .map(|(id, e)| KeyRepr {
                    id: id.to_string(),
                    key: SecretText(Zeroizing::new(B64.encode(e.kek.expose()))),
                    created: e.created.to_rfc3339_opts(SecondsFormat::Secs, true),
                })
                .collect(),
        };
        // Room for every entry up front, so the buffer never reallocates and leaves key text behind.
        let mut out = Zeroizing::new(Vec::with_capacity(128 + 256 * ring.keys.len()));
        serde_json::to_writer(&mut *out, &repr).map_err(|e| bad(format!("serialize: {e}")))?;
        Ok(out)
    }

    /// Writes the keyring file atomically: a temporary file in the same directory created with mode
    /// 0600, synced, renamed over `path`, then the directory synced.
    pub fn write_file(&self, path: &Path) -> Result<(), VaultError> {
        let bytes = self.to_bytes()?;
        let name = path
            .file_name()
            .ok_or_else(|| bad("keyring path has no file name"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{:08x}",
            name.to_string_lossy(),
            OsRng.next_u32()
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            // Best effort: the temporary file may not exist, and the first error is the one to report.
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(VaultError::Io)
    }

    /// Adds a fresh key created at `now`, makes it active, and returns its id. Older keys stay, so
    /// data keys wrapped under them still unwrap until they are rewrapped.
    pub fn rotate(&mut self, now: DateTime<Utc>) -> KeyId {
        let ring = Arc::make_mut(self.ring.get_mut().expect("keyring lock is never poisoned"));
        let id = fresh_id(now, &ring.keys);
        ring.keys.insert(
            id.clone(),
            Entry {
                kek: Kek::generate(),
                created: now,
            },
        );
        ring.active = id.clone();
        id
    }

    /// The id of the active key.
    pub fn active(&self) -> KeyId {
        self.snapshot().active.clone()
    }

    /// Whether the keyring holds this key.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.snapshot().keys.contains_key(id)
    }

    /// The ids of all keys, in order, with their creation times.
    pub fn key_ids(&self) -> Vec<(KeyId, DateTime<Utc>)> {
        let ring = self.snapshot();
        ring.keys
            .iter()
            .map(|(id, e)| (id.clone(), e.created))
            .collect()
    }

    /// The key-encryption key with this id, for the field sealing of [`super::field`].
    pub(super) fn kek(&self, id: &KeyId) -> Option<Kek> {
        let found = self.snapshot().keys.get(id).map(|e| e.kek.clone());
        found.or_else(|| {
            self.reload_for(id)
                .then(|| self.snapshot().keys.get(id).map(|e| e.kek.clone()))
                .flatten()
        })
    }

    /// Wraps a data key under the active key, bound to its recording and segment.
    pub fn wrap(&self, key: &DataKey, recording: RecordingId, segment: SegmentNo) -> WrappedKey {
        let ring = self.snapshot();
        let entry = ring
            .keys
            .get(&ring.active)
            .expect("the active key is in the keyring: checked on parse and on rotate");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = wrap_aad(recording, segment, &ring.active);
        let sealed = entry
            .kek
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: key.expose(),
                    aad: &aad,
                },
            )
            .expect("aes-gcm encryption of 32 bytes cannot fail");
        let mut bytes = Vec::with_capacity(WRAPPED_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        WrappedKey {
            kek_id: ring.active.clone(),
            bytes,
        }
    }

    /// Unwraps a data key wrapped for this recording and segment.
    ///
    /// Fails with [`VaultError::UnknownKey`] if the keyring lacks its key-encryption key, and
    /// [`VaultError::Unwrap`] if it does not authenticate (altered, or bound to something else).
    pub fn unwrap(
        &self,
        wrapped: &WrappedKey,
        recording: RecordingId,
        segment: SegmentNo,
    ) -> Result<DataKey, VaultError> {
        let kek = self
            .kek(&wrapped.kek_id)
            .ok_or_else(|| VaultError::UnknownKey(wrapped.kek_id.clone()))?;
        if wrapped.bytes.len() != WRAPPED_LEN {
            return Err(VaultError::Unwrap);
        }
        let (nonce, sealed) = wrapped.bytes.split_at(NONCE_LEN);
        let aad = wrap_aad(recording, segment, &wrapped.kek_id);
        let plain = Zeroizing::new(
            kek.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| VaultError::Unwrap)?,
        );
        DataKey::from_slice(&plain).ok_or(VaultError::Unwrap)
    }

    /// The same data key wrapped under the active key; a plain clone if it already is.
    pub fn rewrap(
        &self,
        wrapped: &WrappedKey,
        recording: RecordingId,
        segment: SegmentNo,
    ) -> Result<WrappedKey, VaultError> {
        if wrapped.kek_id == self.active() {
            return Ok(wrapped.clone());
        }
        let key = self.unwrap(wrapped, recording, segment)?;
        Ok(self.wrap(&key, recording, segment))
    }
}

fn wrap_aad(recording: RecordingId, segment: SegmentNo, kek: &KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_TAG.len() + 16 + 4 + kek.as_str().len());
    aad.extend_from_slice(WRAP_AAD_TAG);
    aad.extend_from_slice(recording.as_bytes());
    aad.extend_from_slice(&segment.0.to_be_bytes());
    aad.extend_from_slice(kek.as_str().as_bytes());
    aad
}

/// A key id `kek-YYYYMMDD-xxxx` not yet in `keys`.
fn fresh_id(now: DateTime<Utc>, keys: &BTreeMap<KeyId, Entry>) -> KeyId {
    loop {
        let text = format!(
            "kek-{}-{:04x}",
            now.format("%Y%m%d"),
            OsRng.next_u32() & 0xffff
        );
        let id: KeyId = text
            .parse()
            .expect("kek-, eight digits, - and four hex digits form a valid key id");
        if !keys.contains_key(&id) {
            return id;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
