//! Genesys Cloud AudioHook, protocol version 2 (`shared/protocols/audiohook.md`).
//!
//! [`HookSession`] checks one socket's messages: the envelope (`version`, `id`, strictly +1 `seq`,
//! `serverseq` equal to the last server message), the order (`open` first, nothing after `close`),
//! and audio frames against the selected media. It builds every server message (`opened`, `pong`,
//! `pause`, `resume`, `closed`, `disconnect`) with the right `seq` and `clientseq`, and tells the
//! socket loop in `api` what each client message means ([`HookOutput`]). The probe session
//! (conversation id all zeros) is answered like any other and reported as such, so nothing is
//! recorded for it.

pub mod signature;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::IngestError;
use super::native::object;
use crate::domain::{CallEvent, CallId, Codec, EventKind, MediaFormat};

pub use signature::{HookAuth, SignedRequest};

/// Largest text message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest binary frame, in bytes (200 ms of stereo L16 at 16 kHz is 12800).
pub const MAX_AUDIO_BYTES: usize = 64 * 1024;
/// The probe's conversation id.
pub const PROBE_CONVERSATION: &str = "00000000-0000-0000-0000-000000000000";

/// What a client message means to the socket loop.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutput {
    /// Send this text message to the client.
    Send(String),
    /// The session opened. `format` is the selected media (`None`: no audio); `started` the
    /// `call.started` built from the participant. A probe is opened but records nothing.
    Opened {
        /// The conversation, which is the call id.
        call_id: CallId,
        /// The selected media as the recorder's format (external = caller, internal = agent).
        format: Option<MediaFormat>,
        /// Whether this is the connection probe.
        probe: bool,
        /// The call's start, from `participant` (`dnis` is the line, `ani` the caller).
        started: CallEvent,
    },
    /// The client paused the stream (its own pause, or an answer to a server `pause`).
    Paused,
    /// The client resumed; `discarded` of audio was not sent and `start` is where the gap began.
    Resumed {
        /// Stream position where the gap began.
        start: std::time::Duration,
        /// Length of the gap.
        discarded: std::time::Duration,
    },
    /// The client discarded audio without a pause (`discarded` message).
    Discarded {
        /// Stream position where the gap began.
        start: std::time::Duration,
        /// Length of the gap.
        discarded: std::time::Duration,
    },
    /// The client closed the session with this reason (`end` ends the call); `closed` is sent.
    Closed {
        /// `end`, `error`, `disconnect` or `reconnect`.
        reason: String,
    },
    /// The client reported an error.
    ClientError {
        /// Its code (400 .. 503).
        code: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingOpen,
    Open,
    Closed,
}

/// One AudioHook socket's place in the protocol.
#[derive(Debug, Clone)]
pub struct HookSession {
    state: State,
    session_id: Option<String>,
    client_seq: u64,
    server_seq: u64,
    /// The last `serverseq` the client sent: the server messages it had seen.
    acked: u64,
    format: Option<MediaFormat>,
    paused: bool,
}

impl Default for HookSession {
    fn default() -> Self {
        Self::new()
    }
}

impl HookSession {
    /// A session awaiting `open`.
    pub fn new() -> Self {
        Self {
            state: State::AwaitingOpen,
            session_id: None,
            client_seq: 0,
            server_seq: 0,
            acked: 0,
            format: None,
            paused: false,
        }
    }

    /// Whether the client has said it is paused (and not resumed since).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The `seq` of the last server message built.
    pub fn server_seq(&self) -> u64 {
        self.server_seq
    }

    /// The server messages the client had seen when it sent its last message (its `serverseq`).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether the session is open (after `open`, before `close`).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Reads one text message from the client, which arrived at `now`.
    pub fn on_text(
        &mut self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<HookOutput>, IngestError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(IngestError::FrameTooLarge {
                len: text.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let m = object(text.as_bytes())?;
        if m.get("version").and_then(Value::as_str) != Some("2") {
            return Err(IngestError::bad("version", "expected \"2\""));
        }
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .ok_or(IngestError::MissingField { field: "id" })?;
        match &self.session_id {
            Some(s) if s != id => return Err(IngestError::bad("id", "not this session's id")),
            Some(_) => {}
            None => {
                if id.is_empty() || id.len() > 64 {
                    return Err(IngestError::bad("id", "expected a uuid"));
                }
                self.session_id = Some(id.to_owned());
            }
        }
        let seq = uint(&m, "seq")?;
        if seq != self.client_seq + 1 {
            return Err(IngestError::bad(
                "seq",
                format!("expected {}, got {seq}", self.client_seq + 1),
            ));
        }
        // a server message may be in flight when the client sends: `serverseq` may lag what was
        // sent, but never run ahead of it nor go backwards
        let serverseq = uint(&m, "serverseq")?;
        if serverseq > self.server_seq || serverseq < self.acked {
            return Err(IngestError::bad(
                "serverseq",
                format!(
                    "expected {} to {}, got {serverseq}",
                    self.acked, self.server_seq
                ),
            ));
        }
        self.acked = serverseq;
        self.client_seq = seq;
        let ty = m
            .get("type")
            .and_then(Value::as_str)
            .ok_or(IngestError::MissingField { field: "type" })?;
        let empty = Map::new();
        let params = match m.get("parameters") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => &empty,
            Some(_) => return Err(IngestError::bad("parameters", "expected an object")),
        };
        match (ty, self.state) {
            ("open", State::AwaitingOpen) => self.open(params, now),
            ("open", _) => Err(IngestError::OutOfOrder {
                what: "second open",
            }),
            (_, State::AwaitingOpen) => Err(IngestError::OutOfOrder {
                what: "message before open",
            }),
            (_, State::Closed) => Err(IngestError::OutOfOrder {
                what: "message after close",
            }),
            ("ping", State::Open) => Ok(vec![HookOutput::Send(self.message("pong", json!({})))]),
            ("paused", State::Open) => {
                self.paused = true;
                Ok(vec![HookOutput::Paused])
            }
            ("resumed", State::Open) => {
                self.paused = false;
                Ok(vec![HookOutput::Resumed {
                    start: duration(params, "start")?,
                    discarded: duration(params, "discarded")?,
                }])
            }
            ("discarded", State::Open) => Ok(vec![HookOutput::Discarded {
                start: duration(params, "start")?,
                discarded: duration(params, "discarded")?,
            }]),
            ("update", State::Open) => Ok(Vec::new()),
            ("error", State::Open) => Ok(vec![HookOutput::ClientError {
                code: params.get("code").and_then(Value::as_u64).unwrap_or(0),
            }]),
            ("close", State::Open) => {
                self.state = State::Closed;
                let reason = params
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("end")
                    .chars()
                    .take(IngestError::MAX_ECHO)
                    .collect();
                Ok(vec![
                    HookOutput::Closed { reason },
                    HookOutput::Send(self.message("closed", json!({}))),
                ])
            }
            (other, _) => Err(IngestError::unknown_type(other)),
        }
    }

    /// Checks one binary frame: only while open and not paused, whole sample frames of the selected
    /// media.
    pub fn on_binary<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8], IngestError> {
        if self.state != State::Open {
            return Err(IngestError::OutOfOrder {
                what: "audio outside an open session",
            });
        }
        let Some(format) = self.format else {
            return Err(IngestError::OutOfOrder {
                what: "audio when no media was selected",
            });
        };
        if frame.len() > MAX_AUDIO_BYTES {
            return Err(IngestError::FrameTooLarge {
                len: frame.len(),
                max: MAX_AUDIO_BYTES,
            });
        }
        if frame.len() % format.frame_bytes() as usize != 0 {
            return Err(IngestError::BadAudioFrame {
                reason: format!("{} bytes is not whole sample frames", frame.len()),
            });
        }
        Ok(frame)
    }

    /// A server `pause` message.
    pub fn pause(&mut self) -> String {
        self.message("pause", json!({}))
    }

    /// A server `resume` message.
    pub fn resume(&mut self) -> String {
        self.message("resume", json!({}))
    }

    /// A server `disconnect` message with `reason` (`completed`, `unauthorized` or `error`) and
    /// optional `info`.
    pub fn disconnect(&mut self, reason: &str, info: Option<&str>) -> String {
        let mut p = json!({ "reason": reason });
        if let Some(i) = info {
            p["info"] = i.chars().take(200).collect::<String>().into();
        }
        self.message("disconnect", p)
    }

    fn message(&mut self, ty: &str, parameters: Value) -> String {
        self.server_seq += 1;
        json!({
            "version": "2",
            "id": self.session_id.as_deref().unwrap_or(PROBE_CONVERSATION),
            "type": ty,
            "seq": self.server_seq,
            "clientseq": self.client_seq,
            "parameters": parameters,
        })
        .to_string()
    }

    fn open(
        &mut self,
        p: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Vec<HookOutput>, IngestError> {
        let conversation =
            p.get("conversationId")
                .and_then(Value::as_str)
                .ok_or(IngestError::MissingField {
                    field: "conversationId",
                })?;
        let call_id: CallId = conversation
            .parse()
            .map_err(|e| IngestError::bad("conversationId", format!("{e}")))?;
        let probe = conversation == PROBE_CONVERSATION;
        let offered = match p.get("media") {
            Some(Value::Array(a)) => a.as_slice(),
            _ => return Err(IngestError::MissingField { field: "media" }),
        };
        let chosen = select_media(offered);
        let participant = p.get("participant").and_then(Value::as_object);
        let text = |k: &str| {
            participant
                .and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let kind = EventKind::CallStarted {
            line: text("dnis"),
            caller: text("ani"),
            agent: None,
            queue: None,
        };
        let started = CallEvent {
            id: format!("audiohook:{call_id}:call.started"),
            call_id: call_id.clone(),
            at: now,
            kind,
        };
        self.state = State::Open;
        self.format = chosen.map(|(_, f)| f);
        let media: Vec<Value> = chosen.map(|(v, _)| v.clone()).into_iter().collect();
        let reply = self.message("opened", json!({ "media": media, "startPaused": false }));
        Ok(vec![
            HookOutput::Send(reply),
            HookOutput::Opened {
                call_id,
                format: self.format,
                probe,
                started,
            },
        ])
    }
}

/// Picks one offered media entry: PCMU stereo (external, internal) first, then L16 stereo, then
/// PCMU and L16 mono; a stereo entry must list external first (caller, then agent). Returns the
/// entry as offered and its format.
fn select_media(offered: &[Value]) -> Option<(&Value, MediaFormat)> {
    let mut best: Option<(u8, &Value, MediaFormat)> = None;
    for v in offered {
        let Some(o) = v.as_object() else { continue };
        if o.get("type").and_then(Value::as_str) != Some("audio") {
            continue;
        }
        let rate = o.get("rate").and_then(Value::as_u64).unwrap_or(0);
        let codec = match o.get("format").and_then(Value::as_str) {
            Some("PCMU") if rate == 8000 => Codec::Pcmu,
            Some("L16")
                if super::media::L16_RATES
                    .iter()
                    .any(|r| u64::from(*r) == rate) =>
            {
                Codec::L16
            }
            _ => continue,
        };
        let channels: Vec<&str> = o
            .get("channels")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let stereo = match channels.as_slice() {
            ["external", "internal"] => true,
            ["external"] | ["internal"] => false,
            _ => continue,
        };
        let rank = match (codec, stereo) {
            (Codec::Pcmu, true) => 0,
            (Codec::L16, true) => 1,
            (Codec::Pcmu, false) => 2,
            _ => 3,
        };
        let format = MediaFormat {
            codec,
            sample_rate: u32::try_from(rate).expect("checked against the rate table"),
            channels: if stereo { 2 } else { 1 },
        };
        if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            best = Some((rank, v, format));
        }
    }
    best.map(|(_, v, f)| (v, f))
}

fn uint(m: &Map<String, Value>, field: &'static str) -> Result<u64, IngestError> {
    m.get(field)
        .ok_or(IngestError::MissingField { field })?
        .as_u64()
        .ok_or_else(|| IngestError::bad(field, "expected a non-negative integer"))
}

/// Reads an ISO 8601 duration of the form AudioHook uses, `PT<decimal>S` (also with `H` and `M`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let rest = s.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' | 'M' | 'S' => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                total += v * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
            }
            _ => return None,
        }
    }
    if !num.is_empty() || !total.is_finite() || total > 1e9 {
        return None;
    }
    Some(std::time::Duration::from_secs_f64(total))
}

fn duration(
    p: &Map<String, Value>,
    field: &'static str,
) -> Result<std::time::Duration, IngestError> {
    let s = p
        .get(field)
        .and_then(Value::as_str)
        .ok_or(IngestError::MissingField { field })?;
    parse_duration(s).ok_or_else(|| IngestError::bad(field, "expected a duration such as PT1.5S"))
}

#[cfg(test)]
mod tests;
