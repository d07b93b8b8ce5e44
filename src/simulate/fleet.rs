//! The load generator's calls: thousands of media sockets written by a few tasks.
//!
//! [`simulate`](super::simulate) gives a call its own task, tone synthesiser and WebSocket client:
//! right for one call, but at thousands of calls on the same machine that client would cost more
//! than the server it measures. Here every socket is opened with the simulator's own handshake
//! ([`Target::raw_media_socket`]) and is then written by one of a few shard tasks from a bank of
//! frames built once: a one-second loop of each call's stereo tone in PCMU, already framed as
//! masked WebSocket binary frames by tungstenite's encoder. A shard wakes every 20 ms and writes
//! each of its calls the frames due by then (catching up when it woke late), so every call streams
//! 50 frames a second in real time; control frames (the card payment, `call.ended`) go in the same
//! byte stream at their frame, or as signed webhooks. Shards wake at staggered phases, so the
//! server sees a steady flow rather than bursts.
//!
//! Masks are drawn once per banked frame, not per frame sent: RFC 6455 asks for unpredictable masks
//! to protect proxies' caches, a threat a load generator on loopback does not face. This module
//! must not be used as a platform's client.

use std::collections::VecDeque;
use std::io::{Cursor, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

use super::net::Target;
use super::source::{FRAME_MS, RATE, Tone, encode};
use super::{FRAME, at, post_event};
use crate::config::Secret;
use crate::domain::{CallEvent, CallId, Codec, EventKind, MediaFormat};
use crate::ingest::media::{STOP_FRAME, start_frame};
use crate::ingest::native::encode_event;
use crate::ingest::webhook::WebhookSecret;

/// Tasks that write the sockets; their ticks are spread evenly over one frame.
const SHARDS: usize = 8;
/// Distinct tones in the bank; call `i` plays tone `i % TONES`.
const TONES: usize = 40;
/// Frames in the banked loop of each tone: one second.
const LOOP_FRAMES: usize = 50;
/// Unsent bytes of one call past which the server is taken to have stopped reading (about 10 s of
/// audio).
const BACKLOG_LIMIT: usize = 10 * 50 * 330;
/// How long a call waits for the server's close frame after its own.
const CLOSE_WAIT: Duration = Duration::from_secs(15);
/// Most bytes of server frames read while waiting for the close.
const MAX_READ: usize = 1 << 20;

/// The stereo PCMU format every load call streams.
pub(super) const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: RATE,
    channels: 2,
};

/// One call of the run.
#[derive(Debug, Clone)]
pub(super) struct CallPlan {
    /// Its call id.
    pub call_id: CallId,
    /// When it starts, from the start of the run.
    pub start: Duration,
    /// Audio frames it sends.
    pub frames: u64,
    /// Events in the call, at the frame before which each is sent.
    pub events: Vec<(u64, EventKind)>,
}

/// Counters the sampler reads while the fleet runs.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Calls whose media socket is open.
    pub active: AtomicUsize,
    /// Audio frames handed to the sockets.
    pub frames: AtomicU64,
}

/// How one call ended: the audio frames it sent, or why it failed.
pub(super) type Outcome = (CallId, Result<u64, String>);

/// What every call of the fleet shares.
struct Shared {
    target: Target,
    token: Secret,
    webhook: Option<WebhookSecret>,
    bank: Bank,
    counters: Arc<Counters>,
    per_write: u64,
}

/// How the fleet reaches the server and paces its frames.
pub(super) struct Wire {
    /// The server's public listener.
    pub target: Target,
    /// A telephony token.
    pub token: Secret,
    /// Events go as signed webhooks with this secret, or as control frames without it.
    pub webhook: Option<WebhookSecret>,
    /// Frames written to a socket at once: 1 is one frame every 20 ms as platforms send them; more
    /// write that many together, every `per_write` × 20 ms.
    pub per_write: u64,
}

/// Runs every call of `plans` and returns how each ended, in no set order.
pub(super) async fn run(wire: Wire, plans: Vec<CallPlan>, counters: Arc<Counters>) -> Vec<Outcome> {
    let calls = plans.len();
    let shared = Arc::new(Shared {
        target: wire.target,
        token: wire.token,
        webhook: wire.webhook,
        bank: Bank::new(),
        counters,
        per_write: wire.per_write.max(1),
    });
    let origin = Instant::now();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let mut shards = Vec::with_capacity(SHARDS);
    for k in 0..SHARDS {
        let (tx, rx) = mpsc::channel::<Conn>(64);
        let phase = FRAME.mul_f64(k as f64 / SHARDS as f64);
        tokio::spawn(shard(
            rx,
            origin + phase,
            Arc::clone(&shared),
            done_tx.clone(),
        ));
        shards.push(tx);
    }
    for (i, plan) in plans.into_iter().enumerate() {
        let shard = shards[i % SHARDS].clone();
        let shared = Arc::clone(&shared);
        let done = done_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(origin + plan.start).await;
            let call_id = plan.call_id.clone();
            match Conn::open(plan, i % TONES, &shared).await {
                Ok(conn) => {
                    shared.counters.active.fetch_add(1, Ordering::Relaxed);
                    if shard.send(conn).await.is_err() {
                        let _ = done.send((call_id, Err("load shard stopped".into())));
                    }
                }
                Err(e) => {
                    let _ = done.send((call_id, Err(format!("{e:#}"))));
                }
            }
        });
    }
    drop((shards, done_tx));
    let mut outcomes = Vec::with_capacity(calls);
    while let Some(o) = done_rx.recv().await {
        outcomes.push(o);
    }
    outcomes
}

/// One shard: takes new calls, and every frame writes each of its calls what is due.
async fn shard(
    mut new: mpsc::Receiver<Conn>,
    first_tick: Instant,
    shared: Arc<Shared>,
    done: mpsc::UnboundedSender<Outcome>,
) {
    let mut tick = tokio::time::interval_at(first_tick, FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut conns: Vec<Conn> = Vec::new();
    let mut accepting = true;
    loop {
        tokio::select! {
            conn = new.recv(), if accepting => {
                match conn {
                    Some(conn) => conns.push(conn),
                    None => accepting = false,
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        if !accepting && conns.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < conns.len() {
            match conns[i].pump(now, &shared) {
                Ok(false) => i += 1,
                Ok(true) => {
                    let conn = conns.swap_remove(i);
                    tokio::spawn(finish(conn, None, Arc::clone(&shared), done.clone()));
                }
                Err(e) => {
                    let conn = conns.swap_remove(i);
                    tokio::spawn(finish(conn, Some(e), Arc::clone(&shared), done.clone()));
                }
            }
        }
    }
}

/// Waits for the server's close frame and reports the call.
async fn finish(
    mut conn: Conn,
    failed: Option<String>,
    shared: Arc<Shared>,
    done: mpsc::UnboundedSender<Outcome>,
) {
    let close = tokio::time::timeout(CLOSE_WAIT, read_close(&mut conn.tcp)).await;
    shared.counters.active.fetch_sub(1, Ordering::Relaxed);
    let close = match close {
        Ok(c) => c,
        Err(_) => Err("no close frame from the server".into()),
    };
    let result = match (failed, close) {
        (None, Ok((1000, _))) => Ok(conn.sent),
        (None, Ok((code, reason))) => Err(format!("the server closed with {code} {reason:?}")),
        (None, Err(e)) => Err(e),
        (Some(e), Ok((code, reason))) => {
            Err(format!("{e}; the server closed with {code} {reason:?}"))
        }
        (Some(e), Err(_)) => Err(e),
    };
    let _ = done.send((conn.call_id, result));
}

/// Reads server frames until the close frame; returns its code and reason.
async fn read_close(tcp: &mut TcpStream) -> Result<(u16, String), String> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut cursor = Cursor::new(&buf[..]);
        let parsed =
            FrameHeader::parse(&mut cursor).map_err(|e| format!("bad server frame: {e}"))?;
        if let Some((header, len)) = parsed {
            let start = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            if buf.len() >= end {
                if header.opcode == OpCode::Control(Control::Close) {
                    let payload = &buf[start..end];
                    return Ok(match payload {
                        [a, b, reason @ ..] => (
                            u16::from_be_bytes([*a, *b]),
                            String::from_utf8_lossy(reason).into_owned(),
                        ),
                        _ => (u16::from(CloseCode::Status), String::new()),
                    });
                }
                buf.drain(..end);
                continue;
            }
        }
        if buf.len() > MAX_READ {
            return Err("the server sent too much before its close".into());
        }
        let n = tcp
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("cannot read the media socket: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection without a close frame".into());
        }
    }
}

/// A call whose socket is open: what it has sent, and the bytes not yet written.
struct Conn {
    call_id: CallId,
    tcp: TcpStream,
    tone: usize,
    /// The instant of the media start, and the same on the wall clock.
    began: Instant,
    media_start: DateTime<Utc>,
    frames: u64,
    sent: u64,
    events: VecDeque<(u64, EventKind)>,
    ended: bool,
    /// Bytes queued for the socket, of which `out[..written]` are written.
    out: Vec<u8>,
    written: usize,
}

impl Conn {
    /// Opens the media socket (posting `call.started` first when events go as webhooks) and
    /// writes the `start` frame.
    async fn open(plan: CallPlan, tone: usize, shared: &Shared) -> anyhow::Result<Conn> {
        let call_id = plan.call_id;
        if let Some(secret) = &shared.webhook {
            let event = event(&call_id, started(), Utc::now());
            post_event(&shared.target, secret, &event).await?;
        }
        let tcp = shared
            .target
            .raw_media_socket(&call_id, &shared.token)
            .await?;
        let media_start = Utc::now();
        let mut conn = Conn {
            call_id,
            tcp,
            tone,
            began: Instant::now(),
            media_start,
            frames: plan.frames,
            sent: 0,
            events: plan.events.into(),
            ended: false,
            out: Vec::with_capacity(4096),
            written: 0,
        };
        conn.queue(text(start_frame(FORMAT, Some(media_start))));
        if shared.webhook.is_none() {
            conn.control(started(), shared);
        }
        conn.flush().map_err(anyhow::Error::msg)?;
        Ok(conn)
    }

    /// Queues what is due at `now` and writes what the socket takes; true once the call is over
    /// and all of it written.
    fn pump(&mut self, now: Instant, shared: &Shared) -> Result<bool, String> {
        let elapsed = now.saturating_duration_since(self.began).as_millis();
        let due = (u64::try_from(elapsed / u128::from(FRAME_MS)).unwrap_or(u64::MAX) + 1)
            .min(self.frames);
        // frames go out `per_write` at a time (the last ones whatever is left)
        let due = if due < self.frames {
            due / shared.per_write * shared.per_write
        } else {
            due
        };
        while self.sent < due {
            while let Some(kind) = self.events.front().filter(|(f, _)| *f <= self.sent) {
                let kind = kind.1.clone();
                self.events.pop_front();
                self.control(kind, shared);
            }
            self.out
                .extend_from_slice(shared.bank.frame(self.tone, self.sent));
            self.sent += 1;
            shared.counters.frames.fetch_add(1, Ordering::Relaxed);
        }
        if self.sent == self.frames && !self.ended {
            self.ended = true;
            while let Some((_, kind)) = self.events.pop_front() {
                self.control(kind, shared);
            }
            self.control(EventKind::CallEnded, shared);
            self.queue(text(STOP_FRAME));
            self.queue(close());
        }
        self.flush()?;
        Ok(self.ended && self.out.is_empty())
    }

    /// Sends an event at the current frame: a control frame, or a webhook posted in the background.
    fn control(&mut self, kind: EventKind, shared: &Shared) {
        let at = at(
            self.media_start,
            FRAME.saturating_mul(u32::try_from(self.sent).unwrap_or(u32::MAX)),
        );
        let event = event(&self.call_id, kind, at);
        match &shared.webhook {
            None => self.queue(text(encode_event(&event))),
            Some(secret) => {
                let (target, secret) = (shared.target.clone(), secret.clone());
                tokio::spawn(async move {
                    if let Err(e) = post_event(&target, &secret, &event).await {
                        tracing::warn!(call_id = %event.call_id, error = %format!("{e:#}"), "load event post failed");
                    }
                });
            }
        }
    }

    fn queue(&mut self, frame: Frame) {
        masked(frame, &mut self.out);
    }

    /// Writes what the socket takes without waiting.
    fn flush(&mut self) -> Result<(), String> {
        while self.written < self.out.len() {
            match self.tcp.try_write(&self.out[self.written..]) {
                Ok(0) => return Err("the media socket closed".into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("cannot write the media socket: {e}")),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.out.len() - self.written > BACKLOG_LIMIT {
            return Err(format!(
                "the server stopped reading: {} KiB unsent",
                (self.out.len() - self.written) / 1024
            ));
        }
        Ok(())
    }
}

fn started() -> EventKind {
    EventKind::CallStarted {
        line: None,
        caller: None,
        agent: None,
        queue: None,
    }
}

fn event(call_id: &CallId, kind: EventKind, at: DateTime<Utc>) -> CallEvent {
    CallEvent {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        call_id: call_id.clone(),
        at,
        kind,
    }
}

/// A whole text frame.
fn text(payload: impl Into<Bytes>) -> Frame {
    Frame::message(payload, OpCode::Data(Data::Text), true)
}

/// The close frame a call ends with.
fn close() -> Frame {
    Frame::close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "call ended".into(),
    }))
}

/// Appends `frame` to `out`, masked as a client's frames are.
fn masked(mut frame: Frame, out: &mut Vec<u8>) {
    frame.header_mut().mask = Some(rand::random());
    frame
        .format(out)
        .expect("formatting into a Vec cannot fail");
}

/// The banked audio frames: for each tone, one second of masked binary frames.
struct Bank {
    frames: Vec<Vec<Vec<u8>>>,
}

impl Bank {
    fn new() -> Self {
        let frames = (0..TONES)
            .map(|k| {
                // whole hertz, so a one-second loop has no seam
                let mut tone = Tone::new((300.0 + k as f32 * 20.0, 2500.0), Duration::from_secs(1));
                let (mut samples, mut bytes) = (Vec::new(), Vec::new());
                let mut frames = Vec::with_capacity(LOOP_FRAMES);
                while tone.next_frame(&mut samples) {
                    encode(FORMAT.codec, &samples, &mut bytes);
                    let mut f = Vec::with_capacity(bytes.len() + 8);
                    let frame = Frame::message(bytes.clone(), OpCode::Data(Data::Binary), true);
                    masked(frame, &mut f);
                    frames.push(f);
                }
                frames
            })
            .collect();
        Self { frames }
    }

    fn frame(&self, tone: usize, n: u64) -> &[u8] {
        let loop_ = &self.frames[tone % TONES];
        &loop_[usize::try_from(n % LOOP_FRAMES as u64).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::media::{MediaMessage, MediaSession};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    /// Unmasks a run of client frames with tungstenite's own parser.
    fn parse(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let mut c = Cursor::new(bytes);
            let (h, len) = FrameHeader::parse(&mut c)
                .expect("valid")
                .expect("whole header");
            let start = c.position() as usize;
            let end = start + len as usize;
            let mask = h.mask.expect("client frames are masked");
            let payload = bytes[start..end]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            out.push((h.opcode, payload));
            bytes = &bytes[end..];
        }
        out
    }

    #[test]
    fn banked_frames_are_20_ms_of_stereo_pcmu_the_server_accepts() {
        let bank = Bank::new();
        let mut session = MediaSession::new("load-1".parse().expect("call id"));
        let start = start_frame(FORMAT, Some(Utc::now()));
        assert!(matches!(
            session.on_text(&start),
            Ok(MediaMessage::Start(_))
        ));
        for n in 0..(2 * LOOP_FRAMES as u64) {
            let frames = parse(bank.frame(n as usize % TONES, n));
            assert_eq!(frames.len(), 1);
            let (op, payload) = &frames[0];
            assert_eq!(*op, OpCode::Data(Data::Binary));
            // 160 samples a channel, two channels, a byte each
            assert_eq!(payload.len(), 320);
            assert_eq!(session.on_binary(payload).expect("accepted").len(), 320);
        }
        // the loop repeats exactly, and tones differ
        assert_eq!(bank.frame(3, 7), bank.frame(3, 57));
        assert_ne!(parse(bank.frame(0, 1)), parse(bank.frame(1, 1)));
    }

    #[test]
    fn control_frames_carry_the_native_events() {
        let mut out = Vec::new();
        let e = event(
            &"load-2".parse().expect("call id"),
            EventKind::PaymentStarted,
            Utc::now(),
        );
        masked(text(encode_event(&e)), &mut out);
        masked(close(), &mut out);
        let frames = parse(&out);
        let text = String::from_utf8(frames[0].1.clone()).expect("utf-8");
        let back = crate::ingest::native::parse_event(text.as_bytes()).expect("native event");
        assert_eq!(back.kind, EventKind::PaymentStarted);
        assert_eq!(frames[1].0, OpCode::Control(Control::Close));
        assert_eq!(&frames[1].1[..2], &1000u16.to_be_bytes());
    }
}
