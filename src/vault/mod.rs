//! The vault: the only code that touches `aes-gcm` and `object_store`.
//!
//! It owns the sealed audio container ([`container`], format `CVA1`) with its streaming
//! [`SegmentWriter`], whole and ranged readers ([`open`], [`open_range`], [`ObjectReader`]) and spool
//! crash recovery ([`recover_partial`]); the data keys ([`keys`]) and the [`Keyring`] of
//! key-encryption keys that wraps them ([`keyring`]); where objects and spool files live
//! ([`layout`]); and the object store itself ([`store`]). Every failure is one [`VaultError`].
//!
//! It must not decide *whether* audio may be kept (that is `domain/` and `recorder/`), nor store
//! metadata (the catalog keeps each segment's [`WrappedKey`], size and SHA-256).
//!
//! Architecture invariants:
//! - plaintext audio leaves this module only inside a [`Plaintext`], and key material only inside a
//!   [`DataKey`] or [`Kek`]; none of them prints its bytes through `Debug`, and all are zeroized on drop;
//! - a data key is stored only wrapped ([`Keyring::wrap`]), bound to its recording, segment and
//!   key-encryption key, and never inside the object it protects;
//! - the `CVA1` constants in [`container`] are frozen: a new layout gets a new version number.

pub mod container;
pub mod field;
pub mod keyring;
pub mod keys;
pub mod layout;
mod reader;
mod recover;
pub mod store;

pub use container::framed::{FramedHeader, FramedLayout, FramedWriter, Storage, open_framed};
pub use container::{Header, Layout, Plaintext, SegmentWriter, open, open_range};
pub use field::{CallerKeys, FieldError, sealed_field_key_id};
pub use keyring::{Keyring, Reloaded};
pub use keys::{DataKey, Kek, WrappedKey};
pub use layout::{object_path, parse_object_path, recording_prefix, spool_path};
pub use reader::ObjectReader;
pub use recover::{Recovered, recover_partial};
pub use store::{
    DeletedObjects, StoreKind, check_access, delete_objects, open_store, put_verified, store_error,
};

use crate::domain::KeyId;

/// Everything that can go wrong in the vault, with variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A container header (or a header about to be written) is malformed.
    #[error("bad container header: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A container written in a format version this build does not read.
    #[error("unsupported container format version {0}")]
    UnsupportedVersion(u16),
    /// A chunk failed authentication: the object was altered, reordered, mixed with another, or the
    /// data key is not this segment's.
    #[error("chunk {chunk} failed authentication")]
    Authentication {
        /// Index of the first chunk that failed.
        chunk: u32,
    },
    /// The container ends before its final chunk: it was cut short.
    #[error("container is truncated: final chunk missing")]
    Truncated,
    /// A plaintext byte range outside the segment was asked for.
    #[error("range {start}..{end} is outside the segment's {len} bytes")]
    Range {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Plaintext length of the segment.
        len: u64,
    },
    /// A segment would need more chunks than the 32-bit chunk counter allows.
    #[error("segment too large for the chunk counter")]
    TooLarge,
    /// The keyring has no key-encryption key with this id.
    #[error("no key-encryption key {0} in the keyring")]
    UnknownKey(KeyId),
    /// A wrapped data key failed to unwrap: altered, or bound to another recording, segment or key.
    #[error("wrapped data key failed to unwrap")]
    Unwrap,
    /// The keyring file or keyring operation is invalid.
    #[error("keyring: {reason}")]
    Keyring {
        /// What is wrong.
        reason: String,
    },
    /// An object path that is not a `v1` vault object key.
    #[error("not a vault object path ({path}): {reason}")]
    BadPath {
        /// The path that was given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The object store configuration is invalid.
    #[error("object store config: {reason}")]
    StoreConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// An object read back after upload does not have the size that was written.
    #[error("object {path} has {actual} bytes after upload, expected {expected}")]
    SizeMismatch {
        /// The object's path.
        path: String,
        /// Bytes written.
        expected: u64,
        /// Bytes the store reports.
        actual: u64,
    },
    /// The object store refused the credentials (HTTP 401 or 403): the access key, the secret or
    /// the bucket's policy is wrong. Not a passing outage: ops must fix the configuration.
    #[error(
        "object store refused the credentials (check storage.access_key_id, storage.secret_access_key and the bucket policy): {0}"
    )]
    StoreAccessDenied(#[source] object_store::Error),
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A local file operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
