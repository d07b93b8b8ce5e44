//! The audio codecs callvault stores.

use std::fmt;
use std::str::FromStr;

/// An audio codec, as stored in a container header and named in a media stream's `start` frame.
///
/// The numeric codes are part of the `CVA1` format and are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 mu-law, 8 bits a sample.
    Pcmu,
    /// G.711 A-law, 8 bits a sample.
    Pcma,
    /// Linear 16-bit signed little-endian PCM.
    L16,
}

impl Codec {
    /// The frozen code of this codec in a `CVA1` header.
    pub const fn code(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::L16 => 11,
        }
    }

    /// The codec of a `CVA1` header code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            11 => Some(Codec::L16),
            _ => None,
        }
    }

    /// Bytes one sample of one channel takes.
    pub const fn bytes_per_sample(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::L16 => 2,
        }
    }

    /// The codec's name as the native protocol spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::L16 => "L16",
        }
    }
}

impl FromStr for Codec {
    type Err = UnknownCodec;
    fn from_str(s: &str) -> Result<Self, UnknownCodec> {
        match s.to_ascii_uppercase().as_str() {
            "PCMU" | "ULAW" | "MULAW" => Ok(Codec::Pcmu),
            "PCMA" | "ALAW" => Ok(Codec::Pcma),
            "L16" => Ok(Codec::L16),
            _ => Err(UnknownCodec),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec name callvault does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec: expected PCMU, PCMA or L16")]
pub struct UnknownCodec;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in [Codec::Pcmu, Codec::Pcma, Codec::L16] {
            assert_eq!(Codec::from_code(c.code()), Some(c));
            assert_eq!(c.name().parse::<Codec>(), Ok(c));
        }
        assert_eq!(Codec::from_code(99), None);
        assert!("opus".parse::<Codec>().is_err());
    }
}
