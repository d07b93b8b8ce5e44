//! Asterisk AudioSocket framing (`shared/protocols/audiosocket.md`): a byte stream of frames, each
//! a kind byte, a big-endian u16 payload length and the payload.
//!
//! [`decode`] cuts one frame off the front of a buffer; [`SocketSession`] checks the order (the UUID
//! first, one audio rate per call). The listener in `server` owns the TCP socket and hands the bytes
//! here; it ends the call's stream on the first [`IngestError`].

use uuid::Uuid;

use super::IngestError;
use crate::domain::{CallId, Codec, MediaFormat};

/// Frame kind: hangup.
pub const KIND_HANGUP: u8 = 0x00;
/// Frame kind: the call's UUID, 16 bytes.
pub const KIND_UUID: u8 = 0x01;
/// Frame kind: one DTMF digit, ASCII.
pub const KIND_DTMF: u8 = 0x03;
/// Frame kind: signed linear 16-bit little-endian audio at 8 kHz, mono.
pub const KIND_AUDIO: u8 = 0x10;
/// Frame kind: an error, with an optional code.
pub const KIND_ERROR: u8 = 0xff;
/// Header length.
pub const HEADER: usize = 3;

/// The sample rate of an audio kind: `0x10` is 8 kHz, `0x11`..`0x18` are 12, 16, 24, 32, 44.1, 48,
/// 96 and 192 kHz (the current Asterisk documentation).
pub const fn audio_rate(kind: u8) -> Option<u32> {
    match kind {
        0x10 => Some(8000),
        0x11 => Some(12000),
        0x12 => Some(16000),
        0x13 => Some(24000),
        0x14 => Some(32000),
        0x15 => Some(44100),
        0x16 => Some(48000),
        0x17 => Some(96000),
        0x18 => Some(192000),
        _ => None,
    }
}

/// One frame, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The caller hung up.
    Hangup,
    /// The call's UUID.
    Uuid(CallId),
    /// A DTMF digit.
    Dtmf(u8),
    /// Audio: L16 little-endian mono at `rate`.
    Audio {
        /// Samples per second.
        rate: u32,
        /// The samples.
        bytes: &'a [u8],
    },
    /// Asterisk reported an error, with its code when it gave one.
    Error(Option<u8>),
}

/// Cuts one frame off the front of `buf`: `Ok(None)` when more bytes are needed, else the frame and
/// the bytes it took. An unknown kind or a payload that does not fit its kind is an error at once.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, IngestError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if !(matches!(kind, KIND_HANGUP | KIND_UUID | KIND_DTMF | KIND_ERROR)
        || audio_rate(kind).is_some())
    {
        return Err(IngestError::unknown_type(&format!(
            "frame kind 0x{kind:02x}"
        )));
    }
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Ok(None);
    };
    let frame = match kind {
        KIND_HANGUP => Frame::Hangup,
        KIND_UUID => {
            let bytes: [u8; 16] = payload
                .try_into()
                .map_err(|_| IngestError::bad("uuid", format!("{len} bytes, expected 16")))?;
            let id = Uuid::from_bytes(bytes).hyphenated().to_string();
            Frame::Uuid(
                id.parse()
                    .map_err(|e| IngestError::bad("uuid", format!("{e}")))?,
            )
        }
        KIND_DTMF => match payload {
            [d] => Frame::Dtmf(*d),
            _ => return Err(IngestError::bad("dtmf", format!("{len} bytes, expected 1"))),
        },
        KIND_ERROR => Frame::Error(payload.first().copied()),
        _ => {
            if len == 0 || len % 2 != 0 {
                return Err(IngestError::BadAudioFrame {
                    reason: format!("{len} bytes is not whole 16-bit samples"),
                });
            }
            Frame::Audio {
                rate: audio_rate(kind).expect("checked above"),
                bytes: payload,
            }
        }
    };
    Ok(Some((frame, HEADER + len)))
}

/// Encodes one frame (for clients, tests and the fuzz targets' round trips).
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = vec![kind];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}

/// What a frame means to the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketOutput<'a> {
    /// The call is known: events and audio are for `CallId`.
    Call(CallId),
    /// Open the media in this format (before the first audio).
    Open(MediaFormat),
    /// Audio for the open media.
    Audio(&'a [u8]),
    /// The call ended (hangup).
    Hangup,
    /// A key the platform signalled (its value is not kept: digits may be card numbers).
    Key,
    /// Asterisk reported an error; the stream ends.
    Error(Option<u8>),
}

/// One AudioSocket connection's place in the protocol.
#[derive(Debug, Clone, Default)]
pub struct SocketSession {
    call: Option<CallId>,
    rate: Option<u32>,
}

impl SocketSession {
    /// A session awaiting the UUID frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call, once its UUID came.
    pub fn call(&self) -> Option<&CallId> {
        self.call.as_ref()
    }

    /// Reads one frame.
    pub fn on_frame<'a>(&mut self, frame: Frame<'a>) -> Result<SocketOutput<'a>, IngestError> {
        match (frame, &self.call) {
            (Frame::Uuid(id), None) => {
                self.call = Some(id.clone());
                Ok(SocketOutput::Call(id))
            }
            (Frame::Uuid(_), Some(_)) => Err(IngestError::OutOfOrder {
                what: "second uuid",
            }),
            (Frame::Error(code), _) => Ok(SocketOutput::Error(code)),
            (Frame::Hangup, _) => Ok(SocketOutput::Hangup),
            (_, None) => Err(IngestError::OutOfOrder {
                what: "frame before uuid",
            }),
            (Frame::Dtmf(_), Some(_)) => Ok(SocketOutput::Key),
            (Frame::Audio { rate, bytes }, Some(_)) => match self.rate {
                Some(r) if r == rate => Ok(SocketOutput::Audio(bytes)),
                Some(_) => Err(IngestError::BadAudioFrame {
                    reason: "the audio rate changed mid-call".into(),
                }),
                None => {
                    if !super::media::L16_RATES.contains(&rate) {
                        return Err(IngestError::BadAudioFrame {
                            reason: format!("{rate} hz audio is not supported by the recorder"),
                        });
                    }
                    self.rate = Some(rate);
                    Ok(SocketOutput::Open(MediaFormat {
                        codec: Codec::L16,
                        sample_rate: rate,
                        channels: 1,
                    }))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];

    #[test]
    fn frames_decode() {
        let mut buf = encode(KIND_UUID, &UUID);
        buf.extend(encode(KIND_AUDIO, &[1, 0, 2, 0]));
        buf.extend(encode(KIND_DTMF, b"5"));
        buf.extend(encode(KIND_HANGUP, &[]));
        let (f, n) = decode(&buf).expect("ok").expect("frame");
        assert_eq!(
            f,
            Frame::Uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8".parse().expect("id"))
        );
        let rest = &buf[n..];
        let (f, n2) = decode(rest).expect("ok").expect("frame");
        assert_eq!(
            f,
            Frame::Audio {
                rate: 8000,
                bytes: &[1, 0, 2, 0]
            }
        );
        let (f, n3) = decode(&rest[n2..]).expect("ok").expect("frame");
        assert_eq!(f, Frame::Dtmf(b'5'));
        assert_eq!(
            decode(&rest[n2 + n3..]).expect("ok").map(|x| x.0),
            Some(Frame::Hangup)
        );
        // partial header, partial payload
        assert_eq!(decode(&buf[..2]), Ok(None));
        assert_eq!(decode(&buf[..10]), Ok(None));
        assert_eq!(decode(&[]), Ok(None));
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(
            decode(&[0x42, 0, 0]),
            Err(IngestError::UnknownType { .. })
        ));
        assert!(decode(&encode(KIND_UUID, &[1, 2])).is_err());
        assert!(decode(&encode(KIND_AUDIO, &[1, 2, 3])).is_err());
        assert!(decode(&encode(KIND_AUDIO, &[])).is_err());
        assert!(decode(&encode(KIND_DTMF, b"12")).is_err());
        assert_eq!(
            decode(&encode(0x12, &[0, 0])).expect("ok").map(|x| x.0),
            Some(Frame::Audio {
                rate: 16000,
                bytes: &[0, 0]
            })
        );
    }

    #[test]
    fn session_order() {
        let mut s = SocketSession::new();
        assert!(
            s.on_frame(Frame::Audio {
                rate: 8000,
                bytes: &[0, 0]
            })
            .is_err()
        );
        assert!(matches!(
            s.on_frame(Frame::Uuid("c1".parse().expect("id"))),
            Ok(SocketOutput::Call(_))
        ));
        assert!(s.on_frame(Frame::Uuid("c2".parse().expect("id"))).is_err());
        assert!(
            matches!(s.on_frame(Frame::Audio { rate: 8000, bytes: &[0, 0] }), Ok(SocketOutput::Open(f)) if f.sample_rate == 8000)
        );
        assert!(matches!(
            s.on_frame(Frame::Audio {
                rate: 8000,
                bytes: &[0, 0]
            }),
            Ok(SocketOutput::Audio(_))
        ));
        assert!(
            s.on_frame(Frame::Audio {
                rate: 16000,
                bytes: &[0, 0]
            })
            .is_err()
        );
        let mut s = SocketSession::new();
        s.on_frame(Frame::Uuid("c1".parse().expect("id")))
            .expect("uuid");
        assert!(
            s.on_frame(Frame::Audio {
                rate: 96000,
                bytes: &[0, 0]
            })
            .is_err()
        );
    }
}
