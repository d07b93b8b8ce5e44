//! Identifier newtypes. Each is parsed once at the edge; after that the type is the proof.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty or longer than its limit.
    #[error("{kind} must be 1 to {max} characters long")]
    Length {
        /// Which identifier.
        kind: &'static str,
        /// Its maximum length.
        max: usize,
    },
    /// The identifier contains a character outside `A-Z a-z 0-9 . _ : -`.
    #[error("{kind} may contain only letters, digits, '.', '_', ':' and '-'")]
    Charset {
        /// Which identifier.
        kind: &'static str,
    },
    /// A recording id that is not a UUID.
    #[error("recording id is not a uuid")]
    NotUuid,
}

fn check_token(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() || s.len() > max {
        return Err(IdError::Length { kind, max });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(IdError::Charset { kind });
    }
    Ok(())
}

/// The telephony platform's identifier of one call (a Twilio CallSid, a Genesys conversation id, an
/// Asterisk uuid, or a native id). At most 128 characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(String);

impl CallId {
    /// Longest accepted call id.
    pub const MAX_LEN: usize = 128;

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CallId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        check_token("call id", s, Self::MAX_LEN)?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identifier of one recording: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordingId(Uuid);

impl RecordingId {
    /// A fresh time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID (as read back from storage).
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The 16 bytes of the UUID, as bound into container headers and key-wrapping data.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for RecordingId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for RecordingId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdError::NotUuid)
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The identifier of a key-encryption key in the keyring. At most 64 characters of
/// `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Longest accepted key id.
    pub const MAX_LEN: usize = 64;

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        check_token("key id", s, Self::MAX_LEN)?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The position of a segment within its recording, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentNo(pub u32);

impl fmt::Display for SegmentNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_checked() {
        assert!("CA1234567890abcdef".parse::<CallId>().is_ok());
        assert!("abc:def-1.2_3".parse::<CallId>().is_ok());
        assert_eq!(
            "".parse::<CallId>(),
            Err(IdError::Length {
                kind: "call id",
                max: 128
            })
        );
        assert_eq!(
            "a/b".parse::<CallId>(),
            Err(IdError::Charset { kind: "call id" })
        );
        assert!("x".repeat(129).parse::<CallId>().is_err());
    }

    #[test]
    fn recording_ids_round_trip_and_sort_by_time() {
        let a = RecordingId::new();
        let b = RecordingId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RecordingId>(), Ok(a));
        assert_eq!("nope".parse::<RecordingId>(), Err(IdError::NotUuid));
    }

    #[test]
    fn segment_numbers_print_four_digits() {
        assert_eq!(SegmentNo(7).to_string(), "0007");
    }
}
