//! Signed checkpoints: the chain head (sequence, hash, time) signed with the daemon's Ed25519 key.
//!
//! The hash chain proves that no entry was altered, removed or reordered *between* entries it
//! holds; it cannot tell that the newest entries were cut off, since a shorter chain is still a
//! valid chain. A checkpoint kept outside the database (the journal, an export bundle, a copy a
//! compliance officer saved) can: [`ChainVerifier::against`](super::ChainVerifier::against) fails
//! when the chain no longer reaches the checkpoint's entry, or reaches it with another hash.
//!
//! The document form ([`Checkpoint::to_document`]) is frozen: a JSON object with `format`
//! ([`CHECKPOINT_FORMAT`]), `seq`, `hash` (hex), `at` (RFC 3339, microseconds), `public_key` and
//! `signature` (base64). The signature covers [`Checkpoint::signed_message`], not the JSON text,
//! so the document may be re-indented or embedded in a log line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};

use super::ChainHead;
use crate::export::BundleSigner;

/// The document's format name (frozen; a new layout gets a new name).
pub const CHECKPOINT_FORMAT: &str = "callvault-audit-checkpoint/1";

/// Domain separation of the signed bytes, so a checkpoint signature can never pass for a bundle's
/// (whose signed bytes are a JSON manifest) or the reverse.
const SIGN_TAG: &[u8] = b"callvault-audit-checkpoint-v1\0";

/// The chain head at a moment, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last entry's position (0 for an empty chain).
    pub seq: u64,
    /// The last entry's hash.
    pub hash: [u8; 32],
    /// When the head was read (to the microsecond).
    pub at: DateTime<Utc>,
    /// The Ed25519 public key that signed it.
    pub public_key: [u8; 32],
    /// The Ed25519 signature over [`Checkpoint::signed_message`].
    pub signature: [u8; 64],
}

/// Why a checkpoint cannot be read or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text holds no checkpoint document.
    #[error(
        "no audit checkpoint found (expected a {CHECKPOINT_FORMAT} document or a log line carrying one)"
    )]
    NotFound,
    /// A field is missing or malformed.
    #[error("checkpoint field `{0}` is missing or malformed")]
    BadField(&'static str),
    /// Signed by another key than the one it is checked against.
    #[error("the checkpoint was signed by another key")]
    OtherKey,
    /// The signature does not verify: the checkpoint was altered.
    #[error("the checkpoint's signature does not verify (altered, or not a callvault checkpoint)")]
    BadSignature,
}

impl Checkpoint {
    /// Signs `head` as read at `at` (cut to the microsecond, as the catalog keeps times).
    pub fn sign(head: ChainHead, at: DateTime<Utc>, signer: &BundleSigner) -> Self {
        let at = at.trunc_subsecs(6);
        let signature = signer.sign(&Self::signed_message(head.seq, &head.hash, &at));
        Self {
            seq: head.seq,
            hash: head.hash,
            at,
            public_key: signer.public_key().to_bytes(),
            signature,
        }
    }

    /// The bytes the signature covers: a tag, `seq` (big-endian), `hash`, and `at` as RFC 3339
    /// text with six fractional digits, length-prefixed.
    pub fn signed_message(seq: u64, hash: &[u8; 32], at: &DateTime<Utc>) -> Vec<u8> {
        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut m = Vec::with_capacity(SIGN_TAG.len() + 8 + 32 + 8 + at.len());
        m.extend_from_slice(SIGN_TAG);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        m.extend_from_slice(&(at.len() as u64).to_be_bytes());
        m.extend_from_slice(at.as_bytes());
        m
    }

    /// The head it vouches for.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Checks the signature against `key` (the deployment's signing key, pinned by the verifier).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        if key.as_bytes() != &self.public_key {
            return Err(CheckpointError::OtherKey);
        }
        self.verify_carried()
    }

    /// Checks the signature against the key the checkpoint carries: integrity, not origin.
    pub fn verify_carried(&self) -> Result<(), CheckpointError> {
        let key = VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| CheckpointError::BadField("public_key"))?;
        let message = Self::signed_message(self.seq, &self.hash, &self.at);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// The document, as a JSON value.
    pub fn to_json(&self) -> Value {
        json!({
            "format": CHECKPOINT_FORMAT,
            "seq": self.seq,
            "hash": hex::encode(self.hash),
            "at": self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "public_key": B64.encode(self.public_key),
            "signature": B64.encode(self.signature),
        })
    }

    /// The document as one line of compact JSON (what the log line and a checkpoint file hold).
    pub fn to_document(&self) -> String {
        self.to_json().to_string()
    }

    /// Reads a document. Its signature is not checked here: call [`Checkpoint::verify`].
    pub fn from_json(v: &Value) -> Result<Self, CheckpointError> {
        if v.get("format").and_then(Value::as_str) != Some(CHECKPOINT_FORMAT) {
            return Err(CheckpointError::BadField("format"));
        }
        let text = |f: &'static str| {
            v.get(f)
                .and_then(Value::as_str)
                .ok_or(CheckpointError::BadField(f))
        };
        let seq = v
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or(CheckpointError::BadField("seq"))?;
        let hash = hex::decode(text("hash")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadField("hash"))?;
        let at = DateTime::parse_from_rfc3339(text("at")?)
            .map_err(|_| CheckpointError::BadField("at"))?
            .with_timezone(&Utc);
        let public_key = B64
            .decode(text("public_key")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadField("public_key"))?;
        let signature = B64
            .decode(text("signature")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadField("signature"))?;
        Ok(Self {
            seq,
            hash,
            at,
            public_key,
            signature,
        })
    }

    /// The last checkpoint in `text`, which may be a document, a JSON log line whose `checkpoint`
    /// field holds one, or a text log line (`... checkpoint={...}`): so the lines `journalctl`
    /// prints can be given as they are. Lines without a checkpoint are skipped.
    pub fn find_in_text(text: &str) -> Result<Self, CheckpointError> {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            // a whole document, possibly pretty-printed over several lines
            if let Some(found) = Self::from_value(&v) {
                return found;
            }
        }
        let mut last = Err(CheckpointError::NotFound);
        for line in text.lines() {
            if let Some(found) = Self::from_line(line) {
                last = found;
            }
        }
        last
    }

    fn from_value(v: &Value) -> Option<Result<Self, CheckpointError>> {
        if v.get("format").is_some() {
            return Some(Self::from_json(v));
        }
        // a JSON log line: the document is the `checkpoint` field's text
        let inner = v.get("checkpoint")?;
        let inner = match inner {
            Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
            other => other.clone(),
        };
        Some(Self::from_json(&inner))
    }

    fn from_line(line: &str) -> Option<Result<Self, CheckpointError>> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        if let Ok(v) = serde_json::from_str::<Value>(line)
            && let Some(found) = Self::from_value(&v)
        {
            return Some(found);
        }
        // a text log line (`... checkpoint={...}`): the first JSON object in it with our format
        if !line.contains(CHECKPOINT_FORMAT) {
            return None;
        }
        let found = line.match_indices('{').find_map(|(i, _)| {
            let v = serde_json::Deserializer::from_str(&line[i..])
                .into_iter::<Value>()
                .next()?
                .ok()?;
            (v.get("format").and_then(Value::as_str) == Some(CHECKPOINT_FORMAT)).then_some(v)
        });
        Some(found.map_or(Err(CheckpointError::BadField("format")), |v| {
            Self::from_json(&v)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn signer(seed: u8) -> BundleSigner {
        BundleSigner::from_secret(&Secret::new(B64.encode([seed; 32]).into_bytes()))
            .expect("a valid seed")
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T07:30:00.123456789Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn checkpoint() -> Checkpoint {
        let head = ChainHead {
            seq: 42,
            hash: [7; 32],
        };
        Checkpoint::sign(head, at(), &signer(1))
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_and_only_with_it() {
        let cp = checkpoint();
        assert_eq!(
            cp.at.timestamp_subsec_nanos(),
            123_456_000,
            "cut to microseconds"
        );
        assert_eq!(cp.verify(&signer(1).public_key()), Ok(()));
        assert_eq!(
            cp.verify(&signer(2).public_key()),
            Err(CheckpointError::OtherKey)
        );
        for tamper in [
            |c: &mut Checkpoint| c.seq -= 3,
            |c: &mut Checkpoint| c.hash[0] ^= 1,
            |c: &mut Checkpoint| c.at += chrono::Duration::seconds(1),
        ] {
            let mut c = cp.clone();
            tamper(&mut c);
            assert_eq!(
                c.verify(&signer(1).public_key()),
                Err(CheckpointError::BadSignature)
            );
        }
        // another key's checkpoint with this key's public key written in does not verify either
        let mut forged = Checkpoint::sign(cp.head(), cp.at, &signer(2));
        forged.public_key = cp.public_key;
        assert_eq!(
            forged.verify(&signer(1).public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn the_document_round_trips_and_is_found_in_log_lines() {
        let cp = checkpoint();
        let doc = cp.to_document();
        assert_eq!(Checkpoint::find_in_text(&doc), Ok(cp.clone()));
        let pretty = serde_json::to_string_pretty(&cp.to_json()).expect("json");
        assert_eq!(Checkpoint::find_in_text(&pretty), Ok(cp.clone()));
        // a text log line, and a JSON log line, among other lines: the last checkpoint wins
        let older = Checkpoint::sign(
            ChainHead {
                seq: 1,
                hash: [1; 32],
            },
            at(),
            &signer(1),
        );
        let text = format!(
            "Dec 02 07:30:00 host callvault[1]: INFO callvault::audit: audit checkpoint seq=1 checkpoint={}\n\
             Dec 02 07:31:00 host callvault[1]: INFO serving\n\
             {{\"level\":\"INFO\",\"message\":\"audit checkpoint\",\"seq\":42,\"checkpoint\":{}}}\n",
            older.to_document(),
            serde_json::to_string(&doc).expect("json string"),
        );
        assert_eq!(Checkpoint::find_in_text(&text), Ok(cp));
        let line = format!(
            "INFO callvault::audit::checkpointer: audit checkpoint seq=1 trigger=\"interval\" checkpoint={}",
            older.to_document()
        );
        assert_eq!(Checkpoint::find_in_text(&line), Ok(older));
        assert_eq!(
            Checkpoint::find_in_text("nothing here\n"),
            Err(CheckpointError::NotFound)
        );
        let mut v = checkpoint().to_json();
        v["hash"] = json!("zz");
        assert_eq!(
            Checkpoint::from_json(&v),
            Err(CheckpointError::BadField("hash"))
        );
    }
}
