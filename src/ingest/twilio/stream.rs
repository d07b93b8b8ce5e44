//! Twilio Media Streams (`shared/protocols/twilio.md` section 1): `connected`, `start`, `media`,
//! `stop`, and the bidirectional-only `dtmf` (a key, its digit not kept) and `mark` (ignored).
//!
//! With both tracks, inbound (the caller) and outbound (the agent) media arrive as separate messages
//! on one socket. [`StreamSession`] places each payload by its track's `timestamp` (8 samples per
//! ms) and emits interleaved stereo µ-law, caller then agent, for the span both tracks cover. A
//! track that falls more than [`JITTER_MS`] behind the other (Twilio skips silence on outbound) has
//! its gap filled with µ-law silence (`0xFF`); a payload that comes after its span was emitted is
//! dropped.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::super::IngestError;
use super::super::native::{object, req_str};
use crate::domain::{CallEvent, CallId, Codec, EventKind, MediaFormat};

/// How far one track may run ahead of the other before the other's gap is filled with silence.
pub const JITTER_MS: u64 = 100;
/// Largest accepted message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A timestamp more than this ahead of what was emitted is refused (memory is bounded by it).
pub const MAX_AHEAD_MS: u64 = 30_000;
/// µ-law silence.
pub const ULAW_SILENCE: u8 = 0xFF;

const SAMPLES_PER_MS: u64 = 8;

/// What one message meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutput {
    /// The stream started: open the call's media in `format`; `started` is a `call.started` built
    /// from `customParameters` (`line`, `caller`, `agent`, `queue`), when they carry any.
    Started {
        /// The call: `customParameters.call_id`, else the CallSid.
        call_id: CallId,
        /// µ-law 8 kHz, two channels (caller, agent) when both tracks are sent.
        format: MediaFormat,
        /// The call's start, from the custom parameters.
        started: Option<CallEvent>,
    },
    /// Interleaved audio ready for the recorder, from sample `position` of the stream (per
    /// channel, from the tracks' `timestamp`s: a gap in both tracks is a jump, never a shift).
    Audio {
        /// Its first sample's position, in samples since the stream's start.
        position: u64,
        /// The interleaved bytes.
        bytes: Vec<u8>,
    },
    /// A `dtmf` message: a key the caller pressed (its digit is not kept: it may be card data).
    Key,
    /// `stop` came: this was the last output (with the flushed audio before it).
    Stopped,
}

#[derive(Debug, Default, Clone)]
struct Track {
    /// Payloads not yet emitted, by sample position.
    chunks: BTreeMap<u64, Vec<u8>>,
    /// One past the last sample received.
    end: u64,
}

impl Track {
    /// How far from `from` this track has audio with no gap.
    fn contiguous(&self, from: u64) -> u64 {
        let mut at = from;
        for (pos, bytes) in &self.chunks {
            if *pos > at {
                break;
            }
            at = at.max(pos + bytes.len() as u64);
        }
        at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Streaming,
    Stopped,
}

/// One Media Streams socket: where it is in the protocol, and the two tracks' reorder buffers.
#[derive(Debug, Clone)]
pub struct StreamSession {
    state: State,
    stereo: bool,
    tracks: [Track; 2],
    /// Samples per channel emitted so far.
    emitted: u64,
    dropped_late: u64,
}

impl Default for StreamSession {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamSession {
    /// A session awaiting `connected` and `start`.
    pub fn new() -> Self {
        Self {
            state: State::Waiting,
            stereo: false,
            tracks: [Track::default(), Track::default()],
            emitted: 0,
            dropped_late: 0,
        }
    }

    /// Media payloads that came after their span had been emitted, and were dropped.
    pub fn dropped_late(&self) -> u64 {
        self.dropped_late
    }

    /// Reads one text message that arrived at `arrival`.
    pub fn on_text(
        &mut self,
        text: &str,
        arrival: DateTime<Utc>,
    ) -> Result<Vec<StreamOutput>, IngestError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(IngestError::FrameTooLarge {
                len: text.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.state == State::Stopped {
            return Err(IngestError::OutOfOrder {
                what: "message after stop",
            });
        }
        let m = object(text.as_bytes())?;
        match (field_str(&m, "event")?, self.state) {
            ("connected", State::Waiting) => Ok(Vec::new()),
            ("connected", _) => Err(IngestError::OutOfOrder {
                what: "connected after start",
            }),
            ("start", State::Waiting) => {
                let out = self.start(&m, arrival)?;
                self.state = State::Streaming;
                Ok(vec![out])
            }
            ("start", _) => Err(IngestError::OutOfOrder {
                what: "second start",
            }),
            ("media", State::Streaming) => {
                self.media(&m)?;
                Ok(self.drain(false))
            }
            ("stop", State::Streaming) => {
                self.state = State::Stopped;
                let mut out = self.drain(true);
                out.push(StreamOutput::Stopped);
                Ok(out)
            }
            // a key: the audio before it goes first, so the key is applied after what preceded it
            ("dtmf", State::Streaming) => {
                let mut out = self.drain(false);
                out.push(StreamOutput::Key);
                Ok(out)
            }
            ("mark", State::Streaming) => Ok(Vec::new()),
            ("media" | "stop" | "dtmf" | "mark", _) => Err(IngestError::OutOfOrder {
                what: "message before start",
            }),
            (other, _) => Err(IngestError::unknown_type(other)),
        }
    }

    /// The audio still buffered, when the socket closes without `stop`.
    pub fn finish(&mut self) -> Vec<StreamOutput> {
        self.state = State::Stopped;
        self.drain(true)
    }

    fn start(
        &mut self,
        m: &Map<String, Value>,
        arrival: DateTime<Utc>,
    ) -> Result<StreamOutput, IngestError> {
        let start = match m.get("start") {
            Some(Value::Object(s)) => s,
            _ => return Err(IngestError::MissingField { field: "start" }),
        };
        if let Some(Value::Object(mf)) = start.get("mediaFormat") {
            let enc = mf.get("encoding").and_then(Value::as_str).unwrap_or("");
            let rate = mf.get("sampleRate").and_then(Value::as_u64).unwrap_or(0);
            let ch = mf.get("channels").and_then(Value::as_u64).unwrap_or(1);
            if enc != "audio/x-mulaw" || rate != 8000 || ch != 1 {
                return Err(IngestError::bad(
                    "mediaFormat",
                    "expected audio/x-mulaw, 8000 hz, 1 channel",
                ));
            }
        }
        let tracks: Vec<&str> = match start.get("tracks") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec!["inbound"],
        };
        if tracks.iter().any(|t| !matches!(*t, "inbound" | "outbound")) || tracks.is_empty() {
            return Err(IngestError::bad(
                "tracks",
                "expected inbound and/or outbound",
            ));
        }
        self.stereo = tracks.len() > 1;
        let params = match start.get("customParameters") {
            Some(Value::Object(p)) => p.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(IngestError::bad("customParameters", "expected an object")),
        };
        let param = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let call_id: CallId = match param("call_id") {
            Some(id) => id
                .parse()
                .map_err(|e| IngestError::bad("call_id", format!("{e}")))?,
            None => start
                .get("callSid")
                .and_then(Value::as_str)
                .ok_or(IngestError::MissingField { field: "callSid" })?
                .parse()
                .map_err(|e| IngestError::bad("callSid", format!("{e}")))?,
        };
        let (line, caller, agent, queue) = (
            param("line"),
            param("caller"),
            param("agent"),
            param("queue"),
        );
        let started = (line.is_some() || caller.is_some() || agent.is_some() || queue.is_some())
            .then(|| {
                let kind = EventKind::CallStarted {
                    line,
                    caller,
                    agent,
                    queue,
                };
                CallEvent {
                    id: super::event_id(&call_id, &kind),
                    call_id: call_id.clone(),
                    at: arrival,
                    kind,
                }
            });
        Ok(StreamOutput::Started {
            call_id,
            format: MediaFormat {
                codec: Codec::Pcmu,
                sample_rate: 8000,
                channels: if self.stereo { 2 } else { 1 },
            },
            started,
        })
    }

    fn media(&mut self, m: &Map<String, Value>) -> Result<(), IngestError> {
        let media = match m.get("media") {
            Some(Value::Object(s)) => s,
            _ => return Err(IngestError::MissingField { field: "media" }),
        };
        let track = match media.get("track").and_then(Value::as_str) {
            Some("inbound" | "inbound_track") => 0,
            Some("outbound" | "outbound_track") if self.stereo => 1,
            Some("outbound" | "outbound_track") => {
                return Err(IngestError::bad(
                    "track",
                    "outbound media on an inbound-only stream",
                ));
            }
            Some(_) => return Err(IngestError::bad("track", "expected inbound or outbound")),
            None if !self.stereo => 0,
            None => return Err(IngestError::MissingField { field: "track" }),
        };
        let ts: u64 = match media.get("timestamp") {
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| IngestError::bad("timestamp", "expected milliseconds"))?,
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| IngestError::bad("timestamp", "expected milliseconds"))?,
            _ => return Err(IngestError::MissingField { field: "timestamp" }),
        };
        let payload = STANDARD
            .decode(
                media
                    .get("payload")
                    .and_then(Value::as_str)
                    .ok_or(IngestError::MissingField { field: "payload" })?,
            )
            .map_err(|_| IngestError::bad("payload", "not base64"))?;
        let pos = ts
            .checked_mul(SAMPLES_PER_MS)
            .ok_or_else(|| IngestError::bad("timestamp", "out of range"))?;
        let end = pos + payload.len() as u64;
        if end > self.emitted + MAX_AHEAD_MS * SAMPLES_PER_MS {
            return Err(IngestError::bad(
                "timestamp",
                format!("more than {MAX_AHEAD_MS} ms ahead of the stream"),
            ));
        }
        if end <= self.emitted || payload.is_empty() {
            self.dropped_late += u64::from(!payload.is_empty());
            return Ok(());
        }
        let t = &mut self.tracks[track];
        t.end = t.end.max(end);
        t.chunks.insert(pos, payload);
        Ok(())
    }

    /// Emits what is ready; with `flush`, everything.
    fn drain(&mut self, flush: bool) -> Vec<StreamOutput> {
        let [a, b] = [self.tracks[0].end, self.tracks[1].end];
        let jitter = JITTER_MS * SAMPLES_PER_MS;
        let target = if flush {
            a.max(b)
        } else if !self.stereo {
            self.tracks[0]
                .contiguous(self.emitted)
                .max(a.saturating_sub(jitter))
        } else {
            let ready = self.tracks[0]
                .contiguous(self.emitted)
                .min(self.tracks[1].contiguous(self.emitted));
            ready.max(a.max(b).saturating_sub(jitter))
        };
        if target <= self.emitted {
            return Vec::new();
        }
        let from = self.emitted;
        let n = (target - from) as usize;
        let channels = if self.stereo { 2 } else { 1 };
        let mut out = vec![ULAW_SILENCE; n * channels];
        for (ch, track) in self.tracks.iter_mut().take(channels).enumerate() {
            let mut rest = BTreeMap::new();
            for (pos, bytes) in std::mem::take(&mut track.chunks) {
                let end = pos + bytes.len() as u64;
                let lo = pos.max(from);
                let hi = end.min(target);
                for s in lo..hi {
                    out[(s - from) as usize * channels + ch] = bytes[(s - pos) as usize];
                }
                if end > target {
                    let keep = target.max(pos);
                    rest.insert(keep, bytes[(keep - pos) as usize..].to_vec());
                }
            }
            track.chunks = rest;
        }
        self.emitted = target;
        vec![StreamOutput::Audio {
            position: from,
            bytes: out,
        }]
    }
}

fn field_str<'a>(m: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, IngestError> {
    req_str(m, field)
}
