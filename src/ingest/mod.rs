//! Ingest: turns what telephony platforms send into the one internal vocabulary,
//! [`crate::domain::CallEvent`], [`crate::domain::EventKind`] and [`crate::domain::MediaFormat`],
//! plus validated audio bytes.
//!
//! It owns the wire formats and their checks: the native event JSON ([`native`]), Standard Webhooks
//! signatures ([`webhook`]), the native media WebSocket protocol ([`media`]), and the telephony
//! platforms: Twilio ([`twilio`]), Genesys AudioHook ([`audiohook`]), Asterisk AudioSocket
//! ([`audiosocket`]) and SIPREC recording clients ([`siprec`]). It does no I/O and keeps no state beyond one session's position in its
//! protocol; `api` and `server` read the sockets and bodies and hand the bytes here.
//!
//! Architecture invariant: protocol types never leave `ingest`. What leaves is a domain type or an
//! [`IngestError`], whose [`IngestError::code`] the API puts in `application/problem+json`.

pub mod audiohook;
pub mod audiosocket;
pub mod media;
pub mod native;
pub mod siprec;
pub mod twilio;
pub mod webhook;

/// Why something a platform sent was refused. Each variant names what was wrong, and
/// [`IngestError::code`] gives a stable machine code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// A required field is absent (or `null`).
    #[error("missing field {field}")]
    MissingField {
        /// The field's name on the wire.
        field: &'static str,
    },
    /// A field is present but its value is not acceptable.
    #[error("bad field {field}: {reason}")]
    BadField {
        /// The field's name on the wire.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The `type` field names no event or message this protocol knows.
    #[error("unknown type {got:?}")]
    UnknownType {
        /// The type as sent, cut to [`IngestError::MAX_ECHO`] characters.
        got: String,
    },
    /// The payload is not a JSON object.
    #[error("malformed json: {reason}")]
    Json {
        /// The parser's complaint (position and kind, never the payload).
        reason: String,
    },
    /// The secret is not `whsec_<base64>` or plain base64 of at least one byte.
    #[error("bad webhook secret: {reason}")]
    BadSecret {
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// A Standard Webhooks header is absent.
    #[error("missing header {header}")]
    MissingSignature {
        /// The header's name.
        header: &'static str,
    },
    /// No `v1` signature in `webhook-signature` matches the body.
    #[error("no webhook signature matches")]
    BadSignature,
    /// `webhook-timestamp` is more than five minutes from now.
    #[error("webhook timestamp is {skew_secs} s from now")]
    StaleTimestamp {
        /// Now minus the timestamp, in seconds: positive when old, negative when in the future.
        skew_secs: i64,
    },
    /// A media frame is larger than the protocol allows.
    #[error("frame of {len} bytes is over the limit of {max}")]
    FrameTooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// An audio frame does not fit the stream's declared format.
    #[error("bad audio frame: {reason}")]
    BadAudioFrame {
        /// What is wrong with it.
        reason: String,
    },
    /// A media message came when the protocol does not allow it (audio before `start`, a second
    /// `start`, anything after `stop`).
    #[error("{what}")]
    OutOfOrder {
        /// What came out of order, such as `"audio before start"`.
        what: &'static str,
    },
}

impl IngestError {
    /// Longest piece of a platform's input echoed back in an error (`UnknownType::got`).
    pub const MAX_ECHO: usize = 64;

    /// The stable machine code of this error, for `application/problem+json` and metrics.
    pub const fn code(&self) -> &'static str {
        match self {
            IngestError::MissingField { .. } => "missing_field",
            IngestError::BadField { .. } => "bad_field",
            IngestError::UnknownType { .. } => "unknown_type",
            IngestError::Json { .. } => "malformed_json",
            IngestError::BadSecret { .. } => "bad_secret",
            IngestError::MissingSignature { .. } => "missing_signature",
            IngestError::BadSignature => "bad_signature",
            IngestError::StaleTimestamp { .. } => "stale_timestamp",
            IngestError::FrameTooLarge { .. } => "frame_too_large",
            IngestError::BadAudioFrame { .. } => "bad_audio_frame",
            IngestError::OutOfOrder { .. } => "out_of_order",
        }
    }

    pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> Self {
        IngestError::BadField {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn unknown_type(got: &str) -> Self {
        IngestError::UnknownType {
            got: got.chars().take(Self::MAX_ECHO).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_snake_case() {
        let all = [
            IngestError::MissingField { field: "id" },
            IngestError::bad("at", "x"),
            IngestError::unknown_type("x"),
            IngestError::Json { reason: "x".into() },
            IngestError::BadSecret { reason: "x" },
            IngestError::MissingSignature {
                header: "webhook-id",
            },
            IngestError::BadSignature,
            IngestError::StaleTimestamp { skew_secs: 301 },
            IngestError::FrameTooLarge { len: 2, max: 1 },
            IngestError::BadAudioFrame { reason: "x".into() },
            IngestError::OutOfOrder { what: "x" },
        ];
        let mut codes: Vec<_> = all.iter().map(IngestError::code).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn echoed_input_is_bounded() {
        let IngestError::UnknownType { got } = IngestError::unknown_type(&"é".repeat(500)) else {
            panic!("wrong variant");
        };
        assert_eq!(got.chars().count(), IngestError::MAX_ECHO);
    }

    #[test]
    fn messages_name_the_field() {
        assert_eq!(
            IngestError::bad("at", "not rfc 3339").to_string(),
            "bad field at: not rfc 3339"
        );
        assert_eq!(
            IngestError::MissingField { field: "call_id" }.to_string(),
            "missing field call_id"
        );
    }
}
