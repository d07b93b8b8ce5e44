//! A scripted telephony platform, for demos, the README and end-to-end tests (`callvault simulate`).
//!
//! [`simulate`] plays one call into a running callvault the way a platform would: `call.started`,
//! the native media socket with 20 ms audio frames (a WAV file or a generated stereo tone), scripted
//! events at their offsets, then `call.ended` and a close. Events go to `POST /v1/events` signed the
//! Standard Webhooks way when a webhook secret is given, and as control frames on the media socket
//! otherwise.
//!
//! It speaks only the public protocols, through the encoders in [`crate::ingest`]; it never reaches
//! into the daemon. Event times are on the call's media clock: `media_start` (when the `start` frame
//! is sent) plus the event's offset, also when `realtime` is off.

mod args;
mod fleet;
pub mod load;
mod net;
mod script;
mod source;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::time::{MissedTickBehavior, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};

pub use args::SimulateArgs;
pub use script::parse_event_spec;

use crate::config::Secret;
use crate::domain::{CallEvent, CallId, Codec, EventKind, MediaFormat};
use crate::ingest::media::{STOP_FRAME, start_frame};
use crate::ingest::native::encode_event;
use crate::ingest::webhook::{self, WebhookSecret};
use net::{Target, Ws};
use script::Script;
use source::{RATE, Source, Tone, encode, frame_offset};

/// Length of one audio frame on the media socket.
pub const FRAME: Duration = Duration::from_millis(source::FRAME_MS);

/// How long to wait for the server's close after ours.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// One simulated call. [`SimulateArgs::into_options`] builds it from the command line;
/// [`SimulateOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Base URL of the public listener: `http://host:port`, or `https://host:port` with `ca_cert`.
    pub base_url: String,
    /// PEM file of the CA to trust for `https`; the platform's roots are not used.
    pub ca_cert: Option<PathBuf>,
    /// Bearer token with the telephony role, for the media socket.
    pub token: Secret,
    /// The call's id.
    pub call_id: CallId,
    /// A 16-bit PCM WAV at 8000 Hz, mono or stereo (caller, agent), to play; `None` generates a tone.
    pub wav: Option<PathBuf>,
    /// Tone frequencies in Hz for the caller and agent channels, when generating.
    pub tone_hz: (f32, f32),
    /// How long the generated tone lasts.
    pub duration: Duration,
    /// Events to fire, each at an offset on the call's media clock.
    pub events: Vec<(Duration, EventKind)>,
    /// Post events to `/v1/events` signed with this; `None` sends them as control frames.
    pub webhook_secret: Option<WebhookSecret>,
    /// Pace frames at real time (20 ms apart); otherwise send as fast as the server takes them.
    pub realtime: bool,
    /// Codec of the audio frames.
    pub codec: Codec,
    /// The dialled line in `call.started`.
    pub line: Option<String>,
    /// The caller's number in `call.started`.
    pub caller: Option<String>,
    /// The agent in `call.started`.
    pub agent: Option<String>,
    /// The queue in `call.started`.
    pub queue: Option<String>,
}

impl SimulateOptions {
    /// A 30 s real-time call of a 440/660 Hz PCMU tone with no scripted events, its events sent
    /// as control frames.
    pub fn new(base_url: impl Into<String>, token: Secret, call_id: CallId) -> Self {
        Self {
            base_url: base_url.into(),
            ca_cert: None,
            token,
            call_id,
            wav: None,
            tone_hz: (440.0, 660.0),
            duration: Duration::from_secs(30),
            events: Vec::new(),
            webhook_secret: None,
            realtime: true,
            codec: Codec::Pcmu,
            line: None,
            caller: None,
            agent: None,
            queue: None,
        }
    }
}

/// What a simulated call sent, and how the server closed the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The call's id.
    pub call_id: CallId,
    /// The declared format of the audio.
    pub format: MediaFormat,
    /// Audio frames sent.
    pub frames: u64,
    /// Audio bytes sent.
    pub audio_bytes: u64,
    /// Audio sent, on the media clock.
    pub audio: Duration,
    /// Every event sent, in order, from `call.started` to `call.ended`.
    pub events: Vec<CallEvent>,
    /// The server's close code and reason, if it sent a close frame.
    pub close: Option<(u16, String)>,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "call {}: {} frames, {:.1} s of {} {} hz {}, {} bytes; {} events",
            self.call_id,
            self.frames,
            self.audio.as_secs_f64(),
            self.format.codec,
            self.format.sample_rate,
            if self.format.channels == 2 {
                "stereo"
            } else {
                "mono"
            },
            self.audio_bytes,
            self.events.len(),
        )?;
        match &self.close {
            Some((code, reason)) => write!(f, "; server closed with {code} {reason:?}"),
            None => write!(f, "; server sent no close frame"),
        }
    }
}

/// Plays one call into callvault and reports what was sent. Fails on the first refusal: an HTTP
/// error status, a refused socket, or a socket the server closed early (with its close reason).
pub async fn simulate(opts: SimulateOptions) -> anyhow::Result<SimReport> {
    let target = Target::parse(&opts.base_url, opts.ca_cert.as_deref())?;
    let mut source = match &opts.wav {
        Some(path) => Source::wav(path)?,
        None => Source::Tone(Tone::new(opts.tone_hz, opts.duration)),
    };
    let format = MediaFormat {
        codec: opts.codec,
        sample_rate: RATE,
        channels: source.channels(),
    };
    let mut call = Call {
        target,
        call_id: opts.call_id.clone(),
        webhook_secret: opts.webhook_secret.clone(),
        sent: Vec::new(),
    };
    let started = EventKind::CallStarted {
        line: opts.line.clone(),
        caller: opts.caller.clone(),
        agent: opts.agent.clone(),
        queue: opts.queue.clone(),
    };

    // with webhooks, the call exists before its audio, as on most platforms
    if call.webhook_secret.is_some() {
        call.post(started.clone(), Utc::now()).await?;
    }
    let ws = call.target.media_socket(&call.call_id, &opts.token).await?;
    let (mut sink, stream) = ws.split();
    let mut reader = tokio::spawn(read_close(stream));
    let media_start = Utc::now();
    let streamed = async {
        send(
            &mut sink,
            Message::text(start_frame(format, Some(media_start))),
        )
        .await?;
        if call.webhook_secret.is_none() {
            call.fire(&mut sink, started, media_start).await?;
        }
        let sent = stream_audio(
            &opts,
            &mut source,
            format,
            &mut call,
            &mut sink,
            media_start,
        )
        .await?;
        call.fire(&mut sink, EventKind::CallEnded, at(media_start, sent.audio))
            .await?;
        send(&mut sink, Message::text(STOP_FRAME)).await?;
        let bye = CloseFrame {
            code: CloseCode::Normal,
            reason: "call ended".into(),
        };
        // the server may close first on `stop`; then ours is only the closing handshake's reply
        if let Err(e) = send(&mut sink, Message::Close(Some(bye))).await {
            debug!(error = %format!("{e:#}"), "close after stop not sent");
        }
        anyhow::Ok(sent)
    }
    .await;
    let close = match timeout(CLOSE_WAIT, &mut reader).await {
        Ok(Ok(close)) => close,
        Ok(Err(_)) | Err(_) => None,
    };
    reader.abort();
    let sent = match streamed {
        Ok(sent) => sent,
        Err(e) => {
            return Err(match &close {
                Some((code, reason)) => e.context(format!(
                    "the server closed the media socket with {code} {reason:?}"
                )),
                None => e,
            });
        }
    };
    let report = SimReport {
        call_id: call.call_id,
        format,
        frames: sent.frames,
        audio_bytes: sent.bytes,
        audio: sent.audio,
        events: call.sent,
        close,
    };
    info!(call_id = %report.call_id, frames = report.frames, events = report.events.len(), "simulated call done");
    Ok(report)
}

/// What [`stream_audio`] sent.
struct Sent {
    frames: u64,
    bytes: u64,
    audio: Duration,
}

/// Sends every frame of `source`, paced when `opts.realtime`, firing scripted events as the media
/// clock passes them and the rest once the audio is over.
async fn stream_audio(
    opts: &SimulateOptions,
    source: &mut Source,
    format: MediaFormat,
    call: &mut Call,
    sink: &mut Sink,
    media_start: DateTime<Utc>,
) -> anyhow::Result<Sent> {
    let mut script = Script::new(opts.events.clone());
    let mut ticker = opts.realtime.then(|| {
        let mut t = tokio::time::interval(FRAME);
        // a slow event post delays some frames; catch up so the average rate stays real time
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let (mut samples, mut bytes) = (Vec::new(), Vec::new());
    let mut sent = Sent {
        frames: 0,
        bytes: 0,
        audio: Duration::ZERO,
    };
    while source.next_frame(&mut samples)? {
        if let Some(t) = &mut ticker {
            t.tick().await;
        }
        let now = frame_offset(sent.frames);
        for (offset, kind) in script.due(now) {
            call.fire(sink, kind, at(media_start, offset)).await?;
        }
        encode(format.codec, &samples, &mut bytes);
        sent.bytes += bytes.len() as u64;
        send(sink, Message::binary(bytes.clone())).await?;
        sent.frames += 1;
    }
    sent.audio = frame_offset(sent.frames);
    for (offset, kind) in script.rest() {
        call.fire(sink, kind, at(media_start, offset)).await?;
    }
    Ok(sent)
}

type Sink = SplitSink<Ws, Message>;

/// The call's identity and the events sent so far.
struct Call {
    target: Target,
    call_id: CallId,
    webhook_secret: Option<WebhookSecret>,
    sent: Vec<CallEvent>,
}

impl Call {
    fn event(&self, kind: EventKind, at: DateTime<Utc>) -> CallEvent {
        CallEvent {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            call_id: self.call_id.clone(),
            at,
            kind,
        }
    }

    /// Sends an event the configured way: signed webhook or control frame.
    async fn fire(
        &mut self,
        sink: &mut Sink,
        kind: EventKind,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if self.webhook_secret.is_some() {
            return self.post(kind, at).await;
        }
        let event = self.event(kind, at);
        send(sink, Message::text(encode_event(&event))).await?;
        info!(call_id = %self.call_id, event = event.kind.name(), "sent control frame");
        self.sent.push(event);
        Ok(())
    }

    /// Posts an event to `/v1/events`, signed.
    async fn post(&mut self, kind: EventKind, at: DateTime<Utc>) -> anyhow::Result<()> {
        let secret = self
            .webhook_secret
            .as_ref()
            .context("posting events needs a webhook secret")?;
        let event = self.event(kind, at);
        post_event(&self.target, secret, &event).await?;
        info!(call_id = %self.call_id, event = event.kind.name(), "posted event");
        self.sent.push(event);
        Ok(())
    }
}

/// Posts `event` to `/v1/events`, signed the Standard Webhooks way.
async fn post_event(
    target: &Target,
    secret: &WebhookSecret,
    event: &CallEvent,
) -> anyhow::Result<()> {
    let body = encode_event(event);
    let msg_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let timestamp = Utc::now().timestamp();
    let signature = secret.sign(&msg_id, timestamp, body.as_bytes());
    let headers = [
        (webhook::ID_HEADER, msg_id),
        (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
        (webhook::SIGNATURE_HEADER, signature),
    ];
    target
        .post_json("/v1/events", &headers, body)
        .await
        .with_context(|| format!("cannot post {}", event.kind.name()))
}

async fn send(sink: &mut Sink, msg: Message) -> anyhow::Result<()> {
    timeout(net::TIMEOUT, sink.send(msg))
        .await
        .context("timed out sending on the media socket")?
        .context("cannot send on the media socket")
}

/// Reads the server's side of the socket until it closes, answering pings, and returns its close
/// frame.
async fn read_close(mut stream: SplitStream<Ws>) -> Option<(u16, String)> {
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Close(frame)) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "media socket read failed");
                return None;
            }
        }
    }
    None
}

/// The instant `offset` into the call; absurd offsets saturate rather than overflow.
fn at(media_start: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(offset)
        .ok()
        .and_then(|d| media_start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests;
