//! One live call: the task that owns its look-back buffer, its open segment and its lifecycle.
//!
//! Audio arrives as byte frames at stream positions; each frame is classified by the
//! [`Lifecycle`](crate::domain::lifecycle::Lifecycle) at arrival (what falls in a pause is dropped
//! there and then, never buffered), kept in memory for the look-back window, and only then committed
//! to the open segment, which seals it chunk by chunk into the spool.

use std::collections::VecDeque;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

mod row;

use super::listen::{LISTEN_QUEUE, ListenFeed, ListenFrame};
use super::persist::OpenSegment;
use super::{Deps, EventOutcome, RecorderError};
use crate::audit::NewAuditEntry;
use crate::catalog::{NewLedgerEntry, RecordingRow, RecordingStatus};
use crate::domain::lifecycle::{
    Committed, Effect, Horizon, Lifecycle, Remedy, bytes_to_duration, duration_to_bytes,
    late_pause_remedy, overlapping_segments,
};
use crate::domain::status::{CallDetails, seal_end};
use crate::domain::{CallEvent, CallId, EventKind, MediaFormat, RecordingId, SegmentNo};

/// How often a call re-evaluates its buffer when no input comes.
const TICK: StdDuration = StdDuration::from_millis(100);
/// A segment is closed and a new one opened after this much audio, so an upload is never huge.
const SEGMENT_MAX: StdDuration = StdDuration::from_secs(300);
/// A call with no stream and no event for this long ends by itself.
const IDLE_LIMIT: StdDuration = StdDuration::from_secs(3600);
/// Most inputs a call takes from its queue before it advances its buffer.
const DRAIN_MAX: usize = 64;
/// How far audio may run ahead of the wall clock before the stream is refused.
const MAX_AHEAD: StdDuration = StdDuration::from_secs(20);

/// What a call task is told.
#[derive(Debug)]
pub(super) enum Input {
    /// A call event, and where to say whether it applied.
    Event {
        event: CallEvent,
        arrival: DateTime<Utc>,
        reply: oneshot::Sender<Result<EventOutcome, RecorderError>>,
    },
    /// The media stream opened with this format, anchored at this wall time.
    MediaOpen {
        format: MediaFormat,
        anchor: DateTime<Utc>,
        reply: oneshot::Sender<Result<(), RecorderError>>,
    },
    /// Audio bytes, in stream order.
    Audio(bytes::Bytes),
    /// The media stream closed (by the platform, or on a bad frame).
    MediaClosed,
    /// A supervisor listens live.
    Listen { reply: oneshot::Sender<ListenFeed> },
}

/// A frame kept in memory, not yet committed: its byte position in the stream and its bytes.
struct Held {
    pos: u64,
    bytes: Vec<u8>,
}

impl Drop for Held {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

struct Stream {
    format: MediaFormat,
    anchor: DateTime<Utc>,
    /// Bytes received so far: the position of the next frame.
    received: u64,
    closed_at: Option<DateTime<Utc>>,
}

impl Stream {
    fn bps(&self) -> u64 {
        self.format.bytes_per_second()
    }

    fn wall(&self, pos: u64) -> DateTime<Utc> {
        self.anchor + bytes_to_duration(pos, self.bps())
    }

    /// The stream position of wall time `t`, rounded down to a whole frame.
    fn pos_floor(&self, t: DateTime<Utc>) -> u64 {
        let fb = u64::from(self.format.frame_bytes());
        duration_to_bytes(t - self.anchor, self.bps()) / fb * fb
    }

    /// The first whole-frame position at or after wall time `t`.
    fn pos_ceil(&self, t: DateTime<Utc>) -> u64 {
        let fb = u64::from(self.format.frame_bytes());
        let p = self.pos_floor(t);
        if self.wall(p) < t { p + fb } else { p }
    }
}

struct Open {
    segment: OpenSegment,
    number: SegmentNo,
    /// Stream position of its first byte.
    start: u64,
    /// Plaintext bytes committed to it.
    len: u64,
}

/// The state of one call, owned by its task.
pub(super) struct Call {
    id: CallId,
    deps: Deps,
    life: Lifecycle,
    recording: RecordingRow,
    /// Ledger notes and the like wait here until the recording row exists in the catalog.
    stream: Option<Stream>,
    buffer: VecDeque<Held>,
    open: Option<Open>,
    /// Sealed segments as stream position ranges.
    sealed: Vec<(u64, u64)>,
    next_segment: u32,
    refused: bool,
    /// The details of the first `call.started` applied; a repeated one must match them.
    details: Option<CallDetails>,
    /// Ledger entries the catalog did not take yet; retried each step and at seal.
    unwritten: Vec<NewLedgerEntry>,
    /// Audit entries likewise.
    unwritten_audit: Vec<NewAuditEntry>,
    /// A late pause fell in sealed audio: the recording is under pci review (kept here too, so a
    /// review the catalog did not take is still applied at seal).
    reviewed: bool,
    last_input: DateTime<Utc>,
    /// Live listeners, once one asked; they get committed audio and pause markers.
    listeners: Option<tokio::sync::broadcast::Sender<ListenFrame>>,
    /// The pause listeners were last told of, if one is on.
    listen_paused: Option<&'static str>,
    /// Told whether a payment pause is on (`Recorder::watch_pauses`).
    pub(super) paused: Option<tokio::sync::watch::Sender<bool>>,
}

impl Call {
    /// Creates the call's recording row (status `live`, the default policy until `call.started`
    /// says otherwise) and its task state.
    pub(super) async fn create(
        id: CallId,
        deps: Deps,
        now: DateTime<Utc>,
    ) -> Result<Call, RecorderError> {
        let timing = deps.config.pci.timing();
        let (recording, next_segment) = match deps.catalog.recording_by_call(&id).await? {
            // a live row without a task: the daemon restarted while the call went on; carry on
            // with the same recording (one call, one recording) after its last segment
            Some(row) if row.status == RecordingStatus::Live => {
                let segments = deps.catalog.segments(row.id).await?;
                let next = segments.iter().map(|s| s.segment.0 + 1).max().unwrap_or(0);
                info!(call_id = %id, recording_id = %row.id, next_segment = next, "call resumed");
                (row, next)
            }
            Some(row) => {
                return Err(RecorderError::Ended(row.ended_at.unwrap_or(row.updated_at)));
            }
            None => {
                let policy = deps.config.policy_for(None, None);
                let row = RecordingRow {
                    id: RecordingId::new(),
                    call_id: id.clone(),
                    status: RecordingStatus::Live,
                    line: None,
                    queue: None,
                    agent: None,
                    caller_tag: None,
                    caller_sealed: None,
                    policy: policy.name.clone(),
                    codec: crate::domain::Codec::Pcmu,
                    sample_rate: 8000,
                    channels: 1,
                    started_at: now,
                    ended_at: None,
                    expires_at: None,
                    restricted: false,
                    updated_at: now,
                };
                deps.catalog.insert_recording(&row).await?;
                info!(call_id = %id, recording_id = %row.id, "call opened");
                (row, 0)
            }
        };
        Ok(Call {
            id,
            deps,
            life: Lifecycle::new(timing),
            recording,
            stream: None,
            buffer: VecDeque::new(),
            open: None,
            sealed: Vec::new(),
            next_segment,
            refused: false,
            details: None,
            unwritten: Vec::new(),
            unwritten_audit: Vec::new(),
            reviewed: false,
            last_input: now,
            listeners: None,
            listen_paused: None,
            paused: None,
        })
    }

    /// The recording this call writes.
    pub(super) fn recording_id(&self) -> RecordingId {
        self.recording.id
    }

    /// Runs the call until it is over; returns the recording's id and the end of the call.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        shutdown: CancellationToken,
    ) -> (RecordingId, DateTime<Utc>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutting_down = false;
        // made once: a new `cancelled()` each turn would queue and unqueue a waiter every frame
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => {
                        self.on_input(input).await;
                        // audio queued behind it is taken now and the buffer advanced once for
                        // all; anything else finds the buffer advanced first, as it would have
                        // been had each input come alone
                        for _ in 1..DRAIN_MAX {
                            match rx.try_recv() {
                                Ok(audio @ Input::Audio(_)) => self.on_input(audio).await,
                                Ok(other) => {
                                    self.step().await;
                                    self.on_input(other).await;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    None => self.on_media_closed(),
                },
                _ = tick.tick() => {}
                () = &mut cancelled, if !shutting_down => {
                    shutting_down = true;
                    // the daemon is stopping: end the call now, and still let the look-back window
                    // pass before committing, so a late pause is honoured (shutdown_grace allows it)
                    let now = self.deps.clock.now();
                    let effects = self.life.apply(&EventKind::CallEnded, now, now).unwrap_or_default();
                    self.apply_effects(effects).await;
                    self.note_now("shutdown", serde_json::json!({})).await;
                }
            }
            let now = self.step().await;
            if self.is_over(now) {
                let ended = self.life.ended().unwrap_or(now);
                self.finish(ended).await;
                return (self.recording.id, ended);
            }
        }
    }

    /// Advances the buffer to now and tells listeners and watchers of a pause; returns now.
    async fn step(&mut self) -> DateTime<Utc> {
        let now = self.deps.clock.now();
        if let Err(e) = self.advance(now).await {
            warn!(call_id = %self.id, error = %e, "recorder step failed; will retry");
        }
        self.mark_pause();
        self.publish_pause();
        now
    }

    async fn on_input(&mut self, input: Input) {
        let now = self.deps.clock.now();
        self.last_input = now;
        match input {
            Input::Event {
                event,
                arrival,
                reply,
            } => {
                let result = self.on_event(event, arrival).await;
                self.publish_pause();
                let _ = reply.send(result);
            }
            Input::MediaOpen {
                format,
                anchor,
                reply,
            } => {
                let _ = reply.send(self.on_media_open(format, anchor).await);
            }
            Input::Audio(bytes) => self.on_audio(&bytes, now).await,
            Input::MediaClosed => self.on_media_closed(),
            Input::Listen { reply } => {
                let tx = self
                    .listeners
                    .get_or_insert_with(|| tokio::sync::broadcast::channel(LISTEN_QUEUE).0);
                let _ = reply.send(ListenFeed {
                    format: self.stream.as_ref().map(|s| s.format),
                    paused: self.listen_paused,
                    frames: tx.subscribe(),
                });
            }
        }
    }

    fn publish_pause(&self) {
        let on = self
            .life
            .pauses()
            .iter()
            .any(|p| p.kind == crate::domain::lifecycle::PauseKind::Payment && p.to.is_none());
        if let Some(w) = &self.paused {
            w.send_if_modified(|v| std::mem::replace(v, on) != on);
        }
    }

    async fn on_event(
        &mut self,
        event: CallEvent,
        arrival: DateTime<Utc>,
    ) -> Result<EventOutcome, RecorderError> {
        if let EventKind::CallStarted {
            line,
            caller,
            agent,
            queue,
        } = &event.kind
        {
            self.call_started(line, caller.as_deref(), agent, queue, event.at)
                .await?;
        }
        let effects = self.life.apply(&event.kind, event.at, arrival)?;
        debug!(call_id = %self.id, event = event.kind.name(), "event applied");
        self.apply_effects(effects).await;
        Ok(EventOutcome::Applied)
    }

    async fn on_media_open(
        &mut self,
        format: MediaFormat,
        anchor: DateTime<Utc>,
    ) -> Result<(), RecorderError> {
        if self.stream.as_ref().is_some_and(|s| s.closed_at.is_none()) {
            return Err(RecorderError::StreamOpen);
        }
        if let Some(end) = self.life.ended() {
            return Err(RecorderError::Ended(end));
        }
        if let Some(old) = &self.stream
            && old.format != format
        {
            // a reconnect with another format starts a new stream timeline; commit what is held first
            self.flush_all().await;
        }
        self.recording.codec = format.codec;
        self.recording.sample_rate = format.sample_rate;
        self.recording.channels = format.channels;
        if self.life.policy().is_none() {
            self.recording.started_at = anchor;
        }
        self.save_row().await?;
        // a reconnect in the same format continues the call's timeline: the positions of held,
        // committed and sealed audio keep their wall times, and the new audio starts at its anchor
        let (anchor, received) = match &self.stream {
            Some(old) if old.format == format => {
                (old.anchor, old.pos_ceil(anchor).max(old.received))
            }
            _ => (anchor, 0),
        };
        self.stream = Some(Stream {
            format,
            anchor,
            received,
            closed_at: None,
        });
        if let Some(tx) = &self.listeners {
            let _ = tx.send(ListenFrame::Format(format));
        }
        self.note_now(
            "media.opened",
            serde_json::json!({ "codec": format.codec.name(), "sample_rate": format.sample_rate, "channels": format.channels }),
        )
        .await;
        Ok(())
    }

    fn on_media_closed(&mut self) {
        if let Some(s) = &mut self.stream
            && s.closed_at.is_none()
        {
            s.closed_at = Some(self.deps.clock.now());
        }
    }

    async fn on_audio(&mut self, bytes: &[u8], now: DateTime<Utc>) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        let p0 = stream.received;
        let p1 = p0 + bytes.len() as u64;
        stream.received = p1;
        let (w0, w1) = (stream.wall(p0), stream.wall(p1));
        if w0 > now + Duration::from_std(MAX_AHEAD).unwrap_or(Duration::seconds(20)) {
            // audio far ahead of real time would pile up in memory; it is dropped and said once
            warn!(call_id = %self.id, "audio runs ahead of real time; dropping");
            return;
        }
        for (a, b, keep) in self.life.classify(w0, w1) {
            if !keep {
                continue;
            }
            let start = if a == w0 { p0 } else { stream.pos_ceil(a) };
            let end = if b == w1 { p1 } else { stream.pos_floor(b) };
            if end > start {
                let slice = &bytes[(start - p0) as usize..(end - p0) as usize];
                self.buffer.push_back(Held {
                    pos: start,
                    bytes: slice.to_vec(),
                });
            }
        }
    }

    async fn apply_effects(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Ledger(note) => self.note(note).await,
                Effect::DiscardHeld => {
                    let dropped: usize = self.buffer.iter().map(|h| h.bytes.len()).sum();
                    self.buffer.clear();
                    self.note_now("consent.discarded", serde_json::json!({ "bytes": dropped }))
                        .await;
                }
                Effect::DropFrom(at) => {
                    if let Err(e) = self.drop_from(at).await {
                        warn!(call_id = %self.id, error = %e, "cutting back after a late pause failed");
                    }
                }
                Effect::DestroyAll => self.destroy().await,
            }
        }
    }

    /// Drops buffered audio at or after `at`, and remedies committed audio past it.
    async fn drop_from(&mut self, at: DateTime<Utc>) -> Result<(), RecorderError> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        let cut = stream.pos_floor(at);
        while let Some(last) = self.buffer.back_mut() {
            if last.pos >= cut {
                self.buffer.pop_back();
            } else {
                let keep = (cut - last.pos) as usize;
                if keep < last.bytes.len() {
                    zeroize::Zeroize::zeroize(&mut last.bytes[keep..]);
                    last.bytes.truncate(keep);
                }
                break;
            }
        }
        let committed = Committed {
            open: self.open.as_ref().map(|o| (stream.wall(o.start), o.len)),
            sealed_end: self.sealed.last().map(|(_, e)| stream.wall(*e)),
            bytes_per_second: stream.bps(),
            chunk_size: u64::from(self.deps.config.recorder.chunk_size),
        };
        match late_pause_remedy(at, committed) {
            Remedy::None => {}
            Remedy::CutBack { keep_bytes } => {
                let open = self
                    .open
                    .take()
                    .expect("a cut-back implies an open segment");
                self.cut_back(open, keep_bytes).await?;
            }
            Remedy::PciReview { cut_open } => {
                if cut_open && let Some(open) = self.open.take() {
                    self.cut_back(open, 0).await?;
                }
                self.pci_review(at).await;
            }
        }
        Ok(())
    }

    async fn cut_back(&mut self, open: Open, keep_bytes: u64) -> Result<(), RecorderError> {
        let chunk = u64::from(self.deps.config.recorder.chunk_size);
        let stream = self
            .stream
            .as_ref()
            .expect("committed audio implies a stream");
        let end_ms = self.media_ms(stream.wall(open.start + keep_bytes));
        let dropped = open.len - keep_bytes;
        open.segment.cut_back(keep_bytes / chunk, end_ms).await?;
        if keep_bytes > 0 {
            self.sealed.push((open.start, open.start + keep_bytes));
        }
        warn!(call_id = %self.id, segment = %open.number, dropped_bytes = dropped, "pause arrived after the look-back window; open segment cut back");
        metrics::counter!("callvault_pci_cutbacks_total").increment(1);
        self.note_now(
            "cut_back",
            serde_json::json!({ "segment": open.number.0, "kept_bytes": keep_bytes, "dropped_bytes": dropped }),
        )
        .await;
        Ok(())
    }

    /// Commits what the look-back window allows, and closes or rolls segments.
    async fn advance(&mut self, now: DateTime<Utc>) -> Result<(), RecorderError> {
        let effects = self.life.tick(now);
        self.apply_effects(effects).await;
        if self.life.policy().is_none() {
            // no call.started yet: once audio is older than the window, or the call is over (so it
            // can seal even if all its audio came after the end), the default policy applies
            let window =
                Duration::from_std(self.deps.config.pci.lookback + self.deps.config.pci.guard)
                    .unwrap_or(Duration::seconds(4));
            let stale = match (&self.stream, self.buffer.front()) {
                (Some(s), Some(h)) => s.wall(h.pos) + window <= now,
                _ => false,
            };
            if stale || self.life.ended().is_some() {
                let policy = self.deps.config.policy_for(None, None);
                let started = self.stream.as_ref().map_or(now, |s| s.anchor);
                self.life.set_policy(policy, started);
            }
        }
        let limit = match self.life.horizon(now) {
            Horizon::Hold => return Ok(()),
            Horizon::All => u64::MAX,
            Horizon::Until(t) => match &self.stream {
                Some(s) if t > s.anchor => s.pos_floor(t),
                _ => return Ok(()),
            },
        };
        // whole frames only while the horizon moves: a frame across it waits for the next step
        // (20 ms at most), which only keeps audio longer in the window a late pause can still drop
        while let Some(front) = self.buffer.front() {
            if front.pos + front.bytes.len() as u64 > limit {
                break;
            }
            let held = self.buffer.pop_front().expect("front exists");
            self.commit(held.pos, &held.bytes).await?;
        }
        Ok(())
    }

    /// Hands committed audio to live listeners, saying first that capture resumed if they were
    /// told of a pause.
    fn forward(&mut self, bytes: &[u8]) {
        let Some(tx) = &self.listeners else {
            return;
        };
        if tx.receiver_count() == 0 {
            return;
        }
        if self.listen_paused.take().is_some() {
            let _ = tx.send(ListenFrame::Resumed);
        }
        let _ = tx.send(ListenFrame::Audio(bytes::Bytes::copy_from_slice(bytes)));
    }

    /// Tells listeners of a pause once every byte before it was forwarded (so the marker sits where
    /// the pause is in what they hear).
    fn mark_pause(&mut self) {
        let Some(tx) = &self.listeners else {
            return;
        };
        if self.listen_paused.is_some() {
            return;
        }
        let Some(pause) = self.life.pauses().iter().rev().find(|p| p.to.is_none()) else {
            return;
        };
        let before_pause = match (&self.stream, self.buffer.front()) {
            (Some(s), Some(h)) => s.wall(h.pos) < pause.from,
            _ => false,
        };
        if !before_pause {
            self.listen_paused = Some(pause.kind.as_str());
            let _ = tx.send(ListenFrame::Paused {
                kind: pause.kind.as_str(),
            });
        }
    }

    async fn commit(&mut self, pos: u64, bytes: &[u8]) -> Result<(), RecorderError> {
        self.forward(bytes);
        let stream = self
            .stream
            .as_ref()
            .expect("buffered audio implies a stream");
        let max_len = duration_to_bytes(
            Duration::from_std(SEGMENT_MAX).unwrap_or(Duration::seconds(300)),
            stream.bps(),
        ) / u64::from(stream.format.frame_bytes())
            * u64::from(stream.format.frame_bytes());
        let mut pos = pos;
        let mut rest = bytes;
        while !rest.is_empty() {
            let contiguous = self
                .open
                .as_ref()
                .is_some_and(|o| o.start + o.len == pos && o.len < max_len);
            if !contiguous {
                self.close_open().await?;
                self.open_segment(pos).await?;
            }
            let open = self.open.as_mut().expect("just opened");
            let n = ((max_len - open.len) as usize).min(rest.len());
            open.segment.append(&rest[..n]).await?;
            open.len += n as u64;
            pos += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    async fn open_segment(&mut self, pos: u64) -> Result<(), RecorderError> {
        let stream = self
            .stream
            .as_ref()
            .expect("committed audio implies a stream");
        let number = SegmentNo(self.next_segment);
        let start_ms = self.media_ms(stream.wall(pos));
        let segment = self
            .deps
            .persistence
            .open_segment(&self.recording, number, stream.format, start_ms)
            .await?;
        self.next_segment += 1;
        self.open = Some(Open {
            segment,
            number,
            start: pos,
            len: 0,
        });
        Ok(())
    }

    async fn close_open(&mut self) -> Result<(), RecorderError> {
        if let Some(open) = self.open.take() {
            let stream = self
                .stream
                .as_ref()
                .expect("committed audio implies a stream");
            let end_ms = self.media_ms(stream.wall(open.start + open.len));
            open.segment.close(end_ms).await?;
            self.sealed.push((open.start, open.start + open.len));
        }
        Ok(())
    }

    /// Milliseconds from the recording's start.
    fn media_ms(&self, t: DateTime<Utc>) -> u64 {
        (t - self.recording.started_at).num_milliseconds().max(0) as u64
    }

    async fn flush_all(&mut self) {
        let now = self.deps.clock.now();
        let held: Vec<Held> = self.buffer.drain(..).collect();
        for h in &held {
            if let Err(e) = self.commit(h.pos, &h.bytes).await {
                warn!(call_id = %self.id, error = %e, at = %now, "commit failed");
            }
        }
        if let Err(e) = self.close_open().await {
            error!(call_id = %self.id, error = %e, "closing the last segment failed");
            self.note_now(
                "segment.close_failed",
                serde_json::json!({ "error": e.to_string() }),
            )
            .await;
        }
    }

    fn is_over(&self, now: DateTime<Utc>) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let idle = Duration::from_std(self.deps.config.recorder.idle_seal)
            .unwrap_or(Duration::seconds(30));
        match (self.life.horizon(now), &self.stream) {
            (Horizon::All, _) => true,
            (
                _,
                Some(Stream {
                    closed_at: Some(c), ..
                }),
            ) if self.life.ended().is_none() => now >= *c + idle,
            (_, None) => {
                now >= self.last_input
                    + Duration::from_std(IDLE_LIMIT).unwrap_or(Duration::hours(1))
            }
            _ => self.refused && self.life.ended().is_some(),
        }
    }

    /// Seals the recording: closes the open segment, checks that no segment overlaps a pause,
    /// and writes the end, the expiry and the final status.
    async fn finish(&mut self, ended: DateTime<Utc>) {
        if self.life.ended().is_none() {
            // the stream closed and no call.ended came within idle_seal
            let _ = self.life.apply(&EventKind::CallEnded, ended, ended);
        }
        self.flush_all().await;
        if self.life.policy().is_none() {
            self.life.set_policy(
                self.deps.config.policy_for(None, None),
                self.recording.started_at,
            );
        }
        // the recording's policy (its line's or queue's, even if call.started came late) decides
        // its expiry; a call never ends before it started
        let policy = self
            .deps
            .config
            .policy(&self.recording.policy)
            .or_else(|| self.life.policy().cloned())
            .expect("set above");
        let ended = seal_end(self.recording.started_at, ended);
        let stream_wall = |p: u64| self.stream.as_ref().map_or(ended, |s| s.wall(p));
        let ranges: Vec<_> = self
            .sealed
            .iter()
            .map(|(a, b)| (stream_wall(*a), stream_wall(*b)))
            .collect();
        let bad = if self.refused {
            Vec::new()
        } else {
            overlapping_segments(&ranges, self.life.pauses())
        };
        self.seal(ended, &policy, &bad).await;
        self.note_now(
            "sealed",
            serde_json::json!({
                "status": self.recording.status.as_str(), "segments": self.sealed.len(),
                "expires_at": self.recording.expires_at.map(|t| t.to_rfc3339()),
            }),
        )
        .await;
        self.retry_ledger().await;
        let lost = self.unwritten.len() + self.unwritten_audit.len();
        if lost > 0 {
            error!(call_id = %self.id, entries = lost, "ledger and audit entries lost: the catalog did not take them");
            metrics::counter!("callvault_ledger_entries_lost_total").increment(lost as u64);
        }
        info!(call_id = %self.id, recording_id = %self.recording.id, status = self.recording.status.as_str(), "call sealed");
    }
}
