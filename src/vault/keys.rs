//! Key material: the per-segment [`DataKey`] that seals a container, the key-encryption key
//! [`Kek`] that wraps it, and the [`WrappedKey`] the catalog stores.
//!
//! This module owns how key bytes are generated, held and wiped. It must not persist anything (the
//! keyring file is [`Keyring`](super::Keyring)'s, wrapped keys are the catalog's) and must never let
//! key bytes reach `Debug`, `Display` or a log line: both key types print `[redacted]`, are
//! zeroized on drop, and hand their bytes only to the AES-GCM code inside the vault.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::domain::KeyId;

/// Length in bytes of every key in the vault (AES-256).
pub const KEY_LEN: usize = 32;

/// Declares a 32-byte AES-256 key type: boxed, zeroized on drop, `Debug` redacted. The two key
/// kinds stay distinct types so one can never be passed where the other is meant.
macro_rules! aes_key {
    ($(#[$doc:meta])* $name:ident, $from:literal) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name(Box<[u8; KEY_LEN]>);

        impl $name {
            /// A fresh key of 32 bytes from the operating system's random source.
            pub fn generate() -> Self {
                let mut key = Box::new([0u8; KEY_LEN]);
                OsRng.fill_bytes(&mut key[..]);
                Self(key)
            }

            #[doc = concat!("A key from 32 bytes (", $from, "). `None` if the slice is not 32 bytes.")]
            pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
                let key: [u8; KEY_LEN] = bytes.try_into().ok()?;
                let key = zeroize::Zeroizing::new(key);
                Some(Self(Box::new(*key)))
            }

            /// The key bytes, only for wrapping or writing the keyring file.
            pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// An AES-256-GCM cipher under this key.
            pub(crate) fn cipher(&self) -> Aes256Gcm {
                Aes256Gcm::new((&*self.0).into())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

aes_key!(
    /// A random AES-256 key that seals one segment. One per segment, never reused, stored only wrapped.
    DataKey,
    "as unwrapped from the catalog"
);

aes_key!(
    /// A key-encryption key: an AES-256 key from the keyring that wraps data keys.
    Kek,
    "as read from the keyring file"
);

/// A data key sealed under a key-encryption key, as the catalog stores it beside the segment.
///
/// `bytes` is `nonce (12) ‖ ciphertext (32) ‖ tag (16)`; the associated data binds the recording,
/// the segment and `kek_id` (see [`Keyring::wrap`](super::Keyring::wrap)). Deleting it crypto-shreds
/// the segment. Its bytes are not secret, so `Debug` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key-encryption key that wraps it.
    pub kek_id: KeyId,
    /// Nonce, ciphertext and tag.
    pub bytes: Vec<u8>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_redacted() {
        let a = DataKey::generate();
        let b = DataKey::generate();
        assert_ne!(a.expose(), b.expose());
        let shown = format!("{a:?}");
        assert_eq!(shown, "DataKey([redacted])");
        assert!(!shown.contains(&hex::encode(a.expose())));
        let k = Kek::generate();
        assert_eq!(format!("{k:?}"), "Kek([redacted])");
    }

    #[test]
    fn keys_from_slices_check_length() {
        assert!(DataKey::from_slice(&[0u8; 31]).is_none());
        assert!(Kek::from_slice(&[0u8; 33]).is_none());
        let k = DataKey::from_slice(&[7u8; 32]).expect("32 bytes");
        assert_eq!(k.expose(), &[7u8; 32]);
    }
}
