//! Subject-access export bundles: a ZIP anyone can check offline.
//!
//! A bundle holds one WAV per recording (pauses rendered as each recording's policy says),
//! `index.html` (a readable list: dates, lines, durations, pauses, holds), `manifest.json` (every
//! recording's metadata and ledger, and the SHA-256 and size of every other file), `manifest.sig`
//! (base64 of the Ed25519 signature over the exact bytes of `manifest.json`) and `signing-key.pub`
//! (base64 of the public key, for convenience: pin the key with `callvault verify --key` to prove
//! the origin, not only the integrity).
//!
//! [`plan`] decides what goes in (it reads the catalog; restricted recordings only for the
//! compliance role); [`write_bundle`] writes it, blocking, streaming each WAV from its
//! [`Timeline`](crate::audio::render::Timeline) into the ZIP a piece at a time, so no recording is
//! ever whole in memory; [`verify_bundle`] checks one. The daemon and `callvault export` share them.
//! Plaintext audio goes only into the writer it is given (an HTTP body, or the file the operator
//! named): nothing is spooled to disk on the way.

mod bundle;
pub mod offline;
mod verify;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

pub use bundle::{
    BundlePlan, BundleRequest, PlannedRecording, Progress, Sources, Withheld, plan, write_bundle,
};
pub use verify::{VerifyReport, verify_bundle};

use crate::config::Secret;

/// The manifest's format name (frozen; a new layout gets a new name).
pub const BUNDLE_FORMAT: &str = "callvault-bundle/1";
/// The manifest's file name in the ZIP.
pub const MANIFEST: &str = "manifest.json";
/// The signature's file name in the ZIP.
pub const SIGNATURE: &str = "manifest.sig";
/// The public key's file name in the ZIP.
pub const PUBLIC_KEY: &str = "signing-key.pub";
/// The readable index's file name in the ZIP.
pub const INDEX: &str = "index.html";

/// Why a bundle could not be planned, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The signing key secret is not base64 of 32 bytes.
    #[error("signing key: {0}")]
    BadKey(&'static str),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A recording could not be decrypted or rendered.
    #[error("recording {id}: {source}")]
    Render {
        /// The recording.
        id: String,
        /// Why.
        #[source]
        source: crate::audio::render::RenderError,
    },
    /// A data key could not be unwrapped, or an object opened.
    #[error("recording {id}: {source}")]
    Vault {
        /// The recording.
        id: String,
        /// Why.
        #[source]
        source: crate::vault::VaultError,
    },
    /// A segment is still waiting for upload.
    #[error("recording {0} has a segment not yet uploaded")]
    NotUploaded(String),
    /// Writing the ZIP failed (the reader went away, a full disk).
    #[error("cannot write the bundle: {0}")]
    Write(#[from] std::io::Error),
    /// The ZIP library refused.
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// The Ed25519 key that signs bundles, from `secrets.signing_key` (base64 of a 32-byte seed).
/// `Debug` shows only the public key; the seed is zeroized on drop.
pub struct BundleSigner {
    key: SigningKey,
}

impl fmt::Debug for BundleSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleSigner")
            .field("public", &self.public_key_b64())
            .finish_non_exhaustive()
    }
}

impl BundleSigner {
    /// The signer whose seed is the secret's base64 text.
    pub fn from_secret(secret: &Secret) -> Result<Self, ExportError> {
        let bytes = zeroize::Zeroizing::new(
            B64.decode(secret.expose_trimmed())
                .map_err(|_| ExportError::BadKey("not base64"))?,
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ExportError::BadKey("not 32 bytes"))?;
        let seed = zeroize::Zeroizing::new(seed);
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as base64, the form of `GET /v1/signing-key` and `signing-key.pub`.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.public_key().as_bytes())
    }

    /// The signature over `message`, as base64.
    pub fn sign_b64(&self, message: &[u8]) -> String {
        B64.encode(self.sign(message))
    }

    /// The signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Reads a public key as `signing-key.pub` and `GET /v1/signing-key` give it (base64 of 32 bytes;
/// surrounding whitespace ignored).
pub fn parse_public_key(text: &[u8]) -> Option<VerifyingKey> {
    let bytes = B64.decode(text.trim_ascii()).ok()?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}
