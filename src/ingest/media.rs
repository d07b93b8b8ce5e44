//! The native media WebSocket protocol (`GET /v1/calls/{call_id}/media`).
//!
//! 1. The first frame is a JSON text frame declaring the format:
//!    `{"type":"start","codec":"PCMU","sample_rate":8000,"channels":2,"media_start":"<RFC 3339>"}`
//!    (`media_start`, the instant of the first sample, is optional).
//! 2. Then binary frames of interleaved audio: G.711 bytes or L16 little-endian samples; in stereo,
//!    caller then agent. Each frame holds whole sample frames and at most [`MAX_FRAME_BYTES`].
//! 3. Text frames between them are control events in the native event format
//!    ([`super::native::parse_control`]); `call_id` may be left out.
//! 4. `{"type":"stop"}` or a close ends the stream.
//!
//! [`MediaSession`] checks one socket's frames against this; the socket loop in `api` owns the I/O
//! and closes the socket with the [`MediaError::close_code`] of the first error.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::IngestError;
use super::native::{self, event_from_map, req_str};
use crate::domain::{CallEvent, CallId, Codec, MediaFormat};

/// Largest accepted frame, text or binary, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest close reason, in bytes (a close frame's payload is at most 125 bytes, two of them the code).
pub const MAX_REASON_BYTES: usize = 120;
/// Sample rates accepted for L16; G.711 is always 8000.
pub const L16_RATES: [u32; 6] = [8000, 16000, 24000, 32000, 44100, 48000];
/// The text frame that ends a stream.
pub const STOP_FRAME: &str = r#"{"type":"stop"}"#;

/// WebSocket close code: the frame's data does not fit its type (RFC 6455 section 7.4.1).
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// WebSocket close code: the frame breaks the protocol's rules.
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code: the frame is too big.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What a `start` frame declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaStart {
    /// The format of every following audio frame.
    pub format: MediaFormat,
    /// The platform's instant of the first sample, when it gives one.
    pub media_start: Option<DateTime<Utc>>,
}

/// One text frame, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaMessage {
    /// The stream's format: audio may follow.
    Start(MediaStart),
    /// A call event sent in-band.
    Control(CallEvent),
    /// The stream ended.
    Stop,
}

/// A frame the protocol refuses: the socket is closed with [`MediaError::close_code`] and
/// [`MediaError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct MediaError {
    close_code: u16,
    reason: String,
    error: IngestError,
}

impl MediaError {
    fn new(error: IngestError) -> Self {
        let close_code = match &error {
            IngestError::FrameTooLarge { .. } => CLOSE_TOO_BIG,
            IngestError::MissingField { .. }
            | IngestError::BadField { .. }
            | IngestError::UnknownType { .. }
            | IngestError::Json { .. }
            | IngestError::BadAudioFrame { .. } => CLOSE_INVALID_DATA,
            IngestError::OutOfOrder { .. }
            | IngestError::BadSecret { .. }
            | IngestError::MissingSignature { .. }
            | IngestError::BadSignature
            | IngestError::StaleTimestamp { .. } => CLOSE_POLICY,
        };
        let mut reason = error.to_string();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Self {
            close_code,
            reason,
            error,
        }
    }

    /// The WebSocket close code: 1007, 1008 or 1009.
    pub fn close_code(&self) -> u16 {
        self.close_code
    }

    /// A short reason for the close frame, at most [`MAX_REASON_BYTES`] bytes.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The error, for logs and metrics ([`IngestError::code`]).
    pub fn error(&self) -> &IngestError {
        &self.error
    }
}

impl From<IngestError> for MediaError {
    fn from(error: IngestError) -> Self {
        Self::new(error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingStart,
    Streaming(MediaFormat),
    Stopped,
}

/// Where one media socket is in the protocol: before `start`, streaming, or stopped.
#[derive(Debug, Clone)]
pub struct MediaSession {
    call_id: CallId,
    state: State,
}

impl MediaSession {
    /// A session for the socket of `call_id` (from the URL), awaiting its `start` frame.
    pub fn new(call_id: CallId) -> Self {
        Self {
            call_id,
            state: State::AwaitingStart,
        }
    }

    /// The stream's format, once `start` has come.
    pub fn format(&self) -> Option<MediaFormat> {
        match self.state {
            State::Streaming(f) => Some(f),
            State::AwaitingStart | State::Stopped => None,
        }
    }

    /// Whether `stop` has come.
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Reads one text frame: `start`, `stop` or a control event.
    pub fn on_text(&mut self, text: &str) -> Result<MediaMessage, MediaError> {
        if self.state == State::Stopped {
            return Err(out_of_order("frame after stop"));
        }
        check_size(text.len())?;
        let m = native::object(text.as_bytes())?;
        match (req_str(&m, "type")?, self.state) {
            ("start", State::AwaitingStart) => {
                let start = parse_start(&m)?;
                self.state = State::Streaming(start.format);
                Ok(MediaMessage::Start(start))
            }
            ("start", _) => Err(out_of_order("second start")),
            ("stop", _) => {
                self.state = State::Stopped;
                Ok(MediaMessage::Stop)
            }
            (_, State::AwaitingStart) => Err(out_of_order("control before start")),
            (_, _) => Ok(MediaMessage::Control(event_from_map(
                &m,
                Some(&self.call_id),
            )?)),
        }
    }

    /// Checks one binary frame of audio and hands it back.
    pub fn on_binary<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8], MediaError> {
        let format = match self.state {
            State::Streaming(f) => f,
            State::AwaitingStart => return Err(out_of_order("audio before start")),
            State::Stopped => return Err(out_of_order("frame after stop")),
        };
        check_size(frame.len())?;
        let unit = format.frame_bytes() as usize;
        if frame.len() % unit != 0 {
            return Err(IngestError::BadAudioFrame {
                reason: format!(
                    "{} bytes is not a whole number of {unit}-byte sample frames",
                    frame.len()
                ),
            }
            .into());
        }
        Ok(frame)
    }
}

/// The `start` frame for a stream, as a platform (or the simulator) sends it.
pub fn start_frame(format: MediaFormat, media_start: Option<DateTime<Utc>>) -> String {
    let mut m = Map::new();
    m.insert("type".into(), "start".into());
    m.insert("codec".into(), format.codec.name().into());
    m.insert("sample_rate".into(), format.sample_rate.into());
    m.insert("channels".into(), format.channels.into());
    if let Some(t) = media_start {
        m.insert(
            "media_start".into(),
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        );
    }
    Value::Object(m).to_string()
}

fn out_of_order(what: &'static str) -> MediaError {
    IngestError::OutOfOrder { what }.into()
}

fn check_size(len: usize) -> Result<(), MediaError> {
    if len > MAX_FRAME_BYTES {
        return Err(IngestError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        }
        .into());
    }
    Ok(())
}

fn parse_start(m: &Map<String, Value>) -> Result<MediaStart, IngestError> {
    let codec = req_str(m, "codec")?
        .parse::<Codec>()
        .map_err(|e| IngestError::bad("codec", e.to_string()))?;
    let sample_rate = integer(m, "sample_rate")?;
    let channels = integer(m, "channels")?;
    let rate_ok = match codec {
        Codec::Pcmu | Codec::Pcma => sample_rate == 8000,
        Codec::L16 => L16_RATES.iter().any(|&r| u64::from(r) == sample_rate),
    };
    if !rate_ok {
        let reason = match codec {
            Codec::Pcmu | Codec::Pcma => "g.711 is 8000 hz only".to_owned(),
            Codec::L16 => format!("l16 takes one of {L16_RATES:?} hz"),
        };
        return Err(IngestError::bad("sample_rate", reason));
    }
    if !matches!(channels, 1 | 2) {
        return Err(IngestError::bad("channels", "expected 1 or 2"));
    }
    Ok(MediaStart {
        format: MediaFormat {
            codec,
            sample_rate: u32::try_from(sample_rate).expect("checked against the rate table"),
            channels: u8::try_from(channels).expect("checked to be 1 or 2"),
        },
        media_start: native::timestamp(m, "media_start")?,
    })
}

fn integer(m: &Map<String, Value>, field: &'static str) -> Result<u64, IngestError> {
    match m.get(field) {
        None | Some(Value::Null) => Err(IngestError::MissingField { field }),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| IngestError::bad(field, "expected a positive integer")),
        Some(v) => Err(IngestError::bad(
            field,
            format!("expected a number, got {}", native::json_kind(v)),
        )),
    }
}

#[cfg(test)]
mod tests;
