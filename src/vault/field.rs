//! Short sealed fields: a caller's number, stored only encrypted (AES-256-GCM) under a key derived
//! from the keyring, bound to its recording; and the keyed HMAC-SHA256 tag that is the only
//! searchable form of a number.
//!
//! Sealed field (frozen, version 1): `0x01` ‖ key id length (u8) ‖ key id (UTF-8) ‖ nonce (12) ‖
//! ciphertext ‖ tag (16). The field key is HMAC-SHA256(key-encryption key, [`FIELD_KEY_LABEL`]), so
//! rotating the keyring leaves old fields readable for as long as their key id is kept. The
//! associated data is [`FIELD_AAD_TAG`] ‖ recording id (16) ‖ key id, so a sealed number cannot be
//! moved to another recording.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Keyring;
use crate::config::Secret;
use crate::domain::{CallerNumber, KeyId, RecordingId};

/// Format version of a sealed field (frozen).
pub const FIELD_VERSION: u8 = 1;
/// The label from which a field key is derived from a key-encryption key (frozen).
pub const FIELD_KEY_LABEL: &[u8] = b"callvault/field-key/v1";
/// First bytes of the associated data of every sealed field (frozen).
pub const FIELD_AAD_TAG: &[u8] = b"callvault/caller/v1\0";
/// First bytes of the associated data of a sealed note (frozen): personal text other than a
/// number, such as a SIPREC session's metadata.
pub const NOTE_AAD_TAG: &[u8] = b"callvault/note/v1\0";

const NONCE_LEN: usize = 12;

/// Why a sealed field could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Not a sealed field of a version this build reads.
    #[error("malformed sealed field")]
    Malformed,
    /// The key-encryption key it was sealed under is not in the keyring.
    #[error("sealed under key {0}, which the keyring lacks")]
    UnknownKey(String),
    /// It does not authenticate: altered, or sealed for another recording.
    #[error("sealed field failed authentication")]
    Authentication,
}

/// What turns caller numbers into their stored forms: the pepper of the lookup tag and the keyring
/// that seals the number itself. A cheap `Clone`; `Debug` shows nothing secret.
#[derive(Clone)]
pub struct CallerKeys {
    pepper: Arc<Secret>,
    keyring: Arc<Keyring>,
}

impl fmt::Debug for CallerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerKeys")
            .field("pepper", &"[redacted]")
            .field("keyring", &self.keyring)
            .finish()
    }
}

impl CallerKeys {
    /// Keys from the `secrets.caller_pepper` secret (its trimmed text is the HMAC key) and the keyring.
    pub fn new(pepper: Secret, keyring: Arc<Keyring>) -> Self {
        Self {
            pepper: Arc::new(pepper),
            keyring,
        }
    }

    /// The lookup tag of a number: HMAC-SHA256 keyed with the pepper over its E.164 text.
    pub fn tag(&self, number: &CallerNumber) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.pepper.expose_trimmed())
            .expect("hmac takes a key of any length");
        mac.update(number.as_e164().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seals a number for one recording, under the keyring's active key.
    pub fn seal(&self, recording: RecordingId, number: &CallerNumber) -> Vec<u8> {
        self.seal_with(FIELD_AAD_TAG, recording, number.as_e164().as_bytes())
    }

    /// Opens a number sealed for `recording`: its E.164 text. Callers must not log it.
    pub fn unseal(
        &self,
        recording: RecordingId,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, FieldError> {
        let plain = self.open_with(FIELD_AAD_TAG, recording, sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| FieldError::Malformed)?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    /// Seals other personal text of one recording (a SIPREC session's metadata XML, which names
    /// the participants), in the same format as a number but under [`NOTE_AAD_TAG`], so neither
    /// can pass for the other.
    pub fn seal_note(&self, recording: RecordingId, plain: &[u8]) -> Vec<u8> {
        self.seal_with(NOTE_AAD_TAG, recording, plain)
    }

    /// Opens a note sealed by [`CallerKeys::seal_note`] for `recording`.
    pub fn unseal_note(
        &self,
        recording: RecordingId,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, FieldError> {
        self.open_with(NOTE_AAD_TAG, recording, sealed)
    }

    fn seal_with(&self, tag: &[u8], recording: RecordingId, plain: &[u8]) -> Vec<u8> {
        let kek_id = self.keyring.active().clone();
        let key = self
            .field_key(&kek_id)
            .expect("the active key is in the keyring");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(tag, recording, &kek_id);
        let sealed = key
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("aes-gcm encryption of a short field cannot fail");
        let id = kek_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        out.push(FIELD_VERSION);
        out.push(u8::try_from(id.len()).expect("key ids are short"));
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open_with(
        &self,
        tag: &[u8],
        recording: RecordingId,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, FieldError> {
        let (&version, rest) = sealed.split_first().ok_or(FieldError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(FieldError::Malformed)?;
        if version != FIELD_VERSION || rest.len() < usize::from(id_len) + NONCE_LEN + 16 {
            return Err(FieldError::Malformed);
        }
        let (id, rest) = rest.split_at(usize::from(id_len));
        let id = std::str::from_utf8(id).map_err(|_| FieldError::Malformed)?;
        let kek_id: KeyId = id.parse().map_err(|_| FieldError::Malformed)?;
        let key = self
            .field_key(&kek_id)
            .ok_or_else(|| FieldError::UnknownKey(id.to_owned()))?;
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        Ok(Zeroizing::new(
            key.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &aad(tag, recording, &kek_id),
                },
            )
            .map_err(|_| FieldError::Authentication)?,
        ))
    }

    fn field_key(&self, kek_id: &KeyId) -> Option<Aes256Gcm> {
        let kek = self.keyring.kek(kek_id)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(kek.expose())
            .expect("hmac takes a key of any length");
        mac.update(FIELD_KEY_LABEL);
        let key = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Some(Aes256Gcm::new((&*key).into()))
    }
}

/// The key id a sealed field names (`None` if it is malformed).
pub fn sealed_field_key_id(sealed: &[u8]) -> Option<KeyId> {
    let (&version, rest) = sealed.split_first()?;
    let (&id_len, rest) = rest.split_first()?;
    if version != FIELD_VERSION || rest.len() < usize::from(id_len) {
        return None;
    }
    std::str::from_utf8(&rest[..usize::from(id_len)])
        .ok()?
        .parse()
        .ok()
}

fn aad(tag: &[u8], recording: RecordingId, kek: &KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tag.len() + 16 + kek.as_str().len());
    aad.extend_from_slice(tag);
    aad.extend_from_slice(recording.as_bytes());
    aad.extend_from_slice(kek.as_str().as_bytes());
    aad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys() -> CallerKeys {
        CallerKeys::new(
            Secret::new(b"pepper\n".to_vec()),
            Arc::new(Keyring::generate(chrono::Utc::now())),
        )
    }

    #[test]
    fn a_sealed_number_opens_only_for_its_recording() {
        let k = keys();
        let n: CallerNumber = "01744 676789".parse().unwrap();
        let r = RecordingId::new();
        let sealed = k.seal(r, &n);
        assert!(!sealed.windows(5).any(|w| w == b"17446"));
        assert_eq!(k.unseal(r, &sealed).unwrap().as_str(), "+441744676789");
        assert_eq!(
            k.unseal(RecordingId::new(), &sealed),
            Err(FieldError::Authentication)
        );
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(k.unseal(r, &bad), Err(FieldError::Authentication));
        assert_eq!(k.unseal(r, &sealed[..5]), Err(FieldError::Malformed));
    }

    #[test]
    fn a_sealed_note_opens_only_as_a_note_of_its_recording() {
        let k = keys();
        let r = RecordingId::new();
        let xml = b"<recording><participant/></recording>";
        let sealed = k.seal_note(r, xml);
        assert!(!sealed.windows(9).any(|w| w == b"recording"));
        assert_eq!(k.unseal_note(r, &sealed).unwrap().as_slice(), xml);
        assert_eq!(
            k.unseal_note(RecordingId::new(), &sealed),
            Err(FieldError::Authentication)
        );
        // a note cannot pass for a caller's number, nor a number for a note
        assert_eq!(k.unseal(r, &sealed), Err(FieldError::Authentication));
        let n: CallerNumber = "01744 676789".parse().unwrap();
        assert_eq!(
            k.unseal_note(r, &k.seal(r, &n)),
            Err(FieldError::Authentication)
        );
    }

    #[test]
    fn tags_are_keyed_and_agree_across_forms() {
        let k = keys();
        let a: CallerNumber = "01744 676789".parse().unwrap();
        let b: CallerNumber = "0044 1744 676789".parse().unwrap();
        assert_eq!(k.tag(&a), k.tag(&b));
        let other = CallerKeys::new(
            Secret::new(b"other".to_vec()),
            Arc::new(Keyring::generate(chrono::Utc::now())),
        );
        assert_ne!(k.tag(&a), other.tag(&a));
        assert!(!format!("{k:?}").contains("pepper\""));
    }
}
