//! One live call: the task that owns its look-back buffer, its open segment and its lifecycle.
//!
//! Audio arrives in batches of pieces, each at a stream position with its arrival time; the call's
//! [`Timeline`] places each piece and judges it by both clocks against the lifecycle's windows
//! (what could hold card audio is dropped there and then, never buffered), holds it in memory for
//! the look-back window, and only then is it committed to the open segment ([`audio`]), which seals
//! it chunk by chunk into the spool.

mod audio;
mod keys;
mod row;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub(super) use self::audio::{AudioBatch, Piece};
use super::listen::{LISTEN_QUEUE, ListenFeed, ListenFrame};
use super::persist::OpenSegment;
use super::{Deps, EventOutcome, RecorderError};
use crate::audit::NewAuditEntry;
use crate::catalog::{NewLedgerEntry, RecordingRow, RecordingStatus};
use crate::domain::lifecycle::{Effect, Horizon, Lifecycle, PauseKind};
use crate::domain::status::{CallDetails, seal_end};
use crate::domain::timeline::{self, Bounds, MediaClock, Timeline, TimelineRules};
use crate::domain::{CallEvent, CallId, EventKind, MediaFormat, RecordingId, SegmentNo};

/// How often a call re-evaluates its buffer when no input comes.
const TICK: StdDuration = StdDuration::from_millis(100);
/// A call with no stream and no event for this long ends by itself.
const IDLE_LIMIT: StdDuration = StdDuration::from_secs(3600);
/// Most inputs a call takes from its queue before it advances its buffer.
const DRAIN_MAX: usize = 64;

/// What a call task is told.
#[derive(Debug)]
pub(super) enum Input {
    /// A call event, and where to say whether it applied.
    Event {
        event: CallEvent,
        arrival: DateTime<Utc>,
        reply: oneshot::Sender<Result<EventOutcome, RecorderError>>,
    },
    /// The media stream opened with this format; `claimed` is the platform's instant of its
    /// first sample, if it says.
    MediaOpen {
        format: MediaFormat,
        clock: MediaClock,
        claimed: Option<DateTime<Utc>>,
        reply: oneshot::Sender<Result<(), RecorderError>>,
    },
    /// Audio, in stream order.
    Audio(AudioBatch),
    /// The media stream closed (by the platform, or on a bad frame).
    MediaClosed,
    /// A supervisor listens live.
    Listen { reply: oneshot::Sender<ListenFeed> },
}

/// The open segment.
struct Open {
    segment: OpenSegment,
    number: SegmentNo,
    /// Place of its first sample.
    place: u64,
    /// Samples committed to it.
    samples: u64,
    /// Plaintext bytes committed to it.
    len: u64,
    /// Bounds of all its audio.
    bounds: Bounds,
    /// Bounds of the audio in each of its chunks, in order (the last may be partial).
    chunks: Vec<Bounds>,
}

/// Why the call went unheard before a stream (re)opened: the ledger names it with its length.
#[derive(Debug, Clone, Copy)]
struct PendingGap {
    cause: &'static str,
    /// Place where the audio before it ended.
    place_end: u64,
}

/// The state of one call, owned by its task.
pub(super) struct Call {
    id: CallId,
    deps: Deps,
    life: Lifecycle,
    recording: RecordingRow,
    /// The stream's format, once one opened (a reconnect must keep it).
    format: Option<MediaFormat>,
    timeline: Timeline<audio::Held>,
    /// When the stream closed, while none is open.
    closed_at: Option<DateTime<Utc>>,
    /// Arrival of the last audio.
    last_audio: Option<DateTime<Utc>>,
    open: Option<Open>,
    /// Bounds of each sealed segment.
    sealed: Vec<Bounds>,
    next_segment: u32,
    refused: bool,
    last_input: DateTime<Utc>,
    /// A reconnect (after a restart or a dropped stream) not yet ledgered.
    pending_gap: Option<PendingGap>,
    /// Set for a call adopted at start-up: sealed as interrupted if no stream returns by then.
    reconnect_by: Option<DateTime<Utc>>,
    /// Samples dropped on arrival, and dropped for going backwards.
    dropped_on_arrival: u64,
    backwards: u64,
    /// Samples dropped because the look-back buffer was full (a stream far ahead of real time).
    overrun: u64,
    /// Whether the ledger already says the stream ran ahead of the clock.
    ahead_noted: bool,
    /// Live listeners, once one asked; they get committed audio and pause markers.
    listeners: Option<tokio::sync::broadcast::Sender<ListenFrame>>,
    /// The pause listeners were last told of, if one is on.
    listen_paused: Option<&'static str>,
    /// Told whether a payment pause is on (`Recorder::watch_pauses`).
    pub(super) paused: Option<tokio::sync::watch::Sender<bool>>,
    /// Told whether nothing may be captured now (an open pause, a refusal): sockets drop audio on
    /// arrival while it says so.
    pub(super) gate: Option<tokio::sync::watch::Sender<bool>>,
    /// The details of the first `call.started` applied; a repeated one must match them.
    details: Option<CallDetails>,
    /// Ledger entries the catalog did not take yet; retried each step and at seal.
    unwritten: Vec<NewLedgerEntry>,
    /// Audit entries likewise.
    unwritten_audit: Vec<NewAuditEntry>,
    /// A late pause fell in sealed audio: the recording is under pci review (kept here too, so a
    /// review the catalog did not take is still applied at seal).
    reviewed: bool,
    /// The keypad-tone detector of the stream, unless the policy keeps tones.
    keys: Option<keys::Keys>,
    /// Where the last key window the ledger took ends, and how many it took.
    keys_noted_to: Option<DateTime<Utc>>,
    key_windows_noted: usize,
}

impl Call {
    /// Creates the call's recording row (status `live`, the default policy until `call.started`
    /// says otherwise) and its task state. A recording still `live` in the catalog (the daemon
    /// restarted during the call) is carried on: its pauses are restored from its ledger, and the
    /// next stream continues it in a new segment.
    pub(super) async fn create(
        id: CallId,
        deps: Deps,
        now: DateTime<Utc>,
    ) -> Result<Call, RecorderError> {
        let timing = deps.config.pci.timing();
        let rules = TimelineRules {
            max_latency: Duration::from_std(deps.config.pci.max_latency)
                .unwrap_or(Duration::seconds(1)),
        };
        let mut life = Lifecycle::new(timing);
        let mut pending_gap = None;
        let (recording, next_segment) = match deps.catalog.recording_by_call(&id).await? {
            // a live row without a task: the daemon restarted while the call went on; carry on
            // with the same recording (one call, one recording) after its last segment
            Some(row) if row.status == RecordingStatus::Live => {
                let segments = deps.catalog.segments(row.id).await?;
                let next = segments.iter().map(|s| s.segment.0 + 1).max().unwrap_or(0);
                let ledger = deps.catalog.ledger(row.id).await?;
                restore(&mut life, &deps, &row, &ledger);
                // a graceful stop says `shutdown` last; anything else was a crash
                let cause = match ledger.iter().rev().find(|e| {
                    matches!(
                        e.kind.as_str(),
                        "shutdown" | "crash_recovery" | "media.opened"
                    )
                }) {
                    Some(e) if e.kind == "shutdown" => "restart",
                    _ => "crash",
                };
                let end_ms = segments.iter().map(|s| s.media_end_ms).max().unwrap_or(0);
                pending_gap = Some((cause, end_ms));
                info!(call_id = %id, recording_id = %row.id, next_segment = next, cause, "call resumed");
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
        let mut timeline = Timeline::new(rules);
        let mut format = None;
        let resumed_end = pending_gap.map(|(_, end_ms): (&str, u64)| {
            recording.started_at + Duration::milliseconds(i64::try_from(end_ms).unwrap_or(0))
        });
        let pending_gap = pending_gap.map(|(cause, end_ms)| {
            // the places of the new stream continue after the recording's last audio
            let f = MediaFormat {
                codec: recording.codec,
                sample_rate: recording.sample_rate,
                channels: recording.channels,
            };
            format = Some(f);
            let origin = recording.started_at;
            let place_end = end_ms * u64::from(f.sample_rate) / 1000;
            timeline.resume_at(origin, place_end);
            PendingGap { cause, place_end }
        });
        Ok(Call {
            id,
            deps,
            life,
            recording,
            format,
            timeline,
            // a resumed call's audio stopped where its last segment ends
            closed_at: resumed_end,
            last_audio: resumed_end,
            open: None,
            sealed: Vec::new(),
            next_segment,
            refused: false,
            last_input: now,
            pending_gap,
            reconnect_by: None,
            dropped_on_arrival: 0,
            backwards: 0,
            overrun: 0,
            ahead_noted: false,
            listeners: None,
            listen_paused: None,
            paused: None,
            gate: None,
            details: None,
            unwritten: Vec::new(),
            unwritten_audit: Vec::new(),
            reviewed: false,
            keys: None,
            keys_noted_to: None,
            key_windows_noted: 0,
        })
    }

    /// The recording this call writes.
    pub(super) fn recording_id(&self) -> RecordingId {
        self.recording.id
    }

    /// A call adopted at start-up waits until `by` for its stream to return before it is sealed.
    pub(super) fn expect_reconnect(&mut self, by: DateTime<Utc>) {
        self.reconnect_by = Some(by);
    }

    /// Runs the call until it is over; returns the recording's id and the end of the call, or no
    /// end when the daemon stopped first (the recording stays live for the platform's reconnect).
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        shutdown: CancellationToken,
    ) -> (RecordingId, Option<DateTime<Utc>>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutting_down: Option<DateTime<Utc>> = None;
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
                () = &mut cancelled, if shutting_down.is_none() => {
                    // the daemon is stopping: the sockets close and hand over what they read; the
                    // look-back window passes before it is committed (so a late pause is still
                    // honoured; shutdown_grace allows it); then the recording is left live for
                    // the platform to reconnect to after the restart
                    shutting_down = Some(self.deps.clock.now());
                    self.note_now("shutdown", serde_json::json!({})).await;
                }
            }
            let now = self.step().await;
            let window = self.life_window();
            if let Some(since) = shutting_down
                && self.timeline.is_empty()
                && (!self.timeline.is_open() || now >= since + window)
            {
                if let Err(e) = self.close_open().await {
                    warn!(call_id = %self.id, error = %e, "closing the open segment at shutdown failed; the spool keeps it for recovery");
                }
                info!(call_id = %self.id, recording_id = %self.recording.id, "call left live for a reconnect after the restart");
                return (self.recording.id, None);
            }
            if self.is_over(now) {
                let ended = self.end_of_call(now);
                self.finish(ended).await;
                return (self.recording.id, Some(ended));
            }
        }
    }

    /// When the call ended: its `call.ended`, else the last audio, else now.
    fn end_of_call(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.life
            .ended()
            .or(self.last_audio)
            .or(self.closed_at)
            .unwrap_or(now)
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
                // the adapter may have given up waiting: nothing to tell then
                let _ = reply.send(result);
            }
            Input::MediaOpen {
                format,
                clock,
                claimed,
                reply,
            } => {
                // a socket that stopped waiting for the answer has closed: nothing to tell it
                let _ = reply.send(self.on_media_open(format, clock, claimed).await);
            }
            Input::Audio(batch) => self.on_audio(batch).await,
            Input::MediaClosed => self.on_media_closed(),
            Input::Listen { reply } => {
                let tx = self
                    .listeners
                    .get_or_insert_with(|| tokio::sync::broadcast::channel(LISTEN_QUEUE).0);
                let _ = reply.send(ListenFeed {
                    format: self.format,
                    paused: self.listen_paused,
                    frames: tx.subscribe(),
                });
            }
        }
    }

    fn publish_pause(&self) {
        let payment = self
            .life
            .pauses()
            .iter()
            .any(|p| p.kind == PauseKind::Payment && p.to.is_none());
        if let Some(w) = &self.paused {
            w.send_if_modified(|v| std::mem::replace(v, payment) != payment);
        }
        let off = self.refused || self.life.capture_off();
        if let Some(g) = &self.gate {
            g.send_if_modified(|v| std::mem::replace(v, off) != off);
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
        clock: MediaClock,
        claimed: Option<DateTime<Utc>>,
    ) -> Result<(), RecorderError> {
        if self.timeline.is_open() {
            return Err(RecorderError::StreamOpen);
        }
        if self.refused {
            return Err(RecorderError::Refused(
                crate::domain::lifecycle::Refusal::Refused("media"),
            ));
        }
        if let Some(end) = self.life.ended()
            && self.closed_at.is_some()
        {
            // the call ended and its stream closed: a new stream is not this call any more
            return Err(RecorderError::Ended(end));
        }
        if let Some(old) = self.format
            && old != format
        {
            // the recording's places are counted in the first stream's samples
            return Err(RecorderError::FormatChanged {
                was: old,
                now: format,
            });
        }
        let reopened = self.closed_at.is_some();
        if self.format.is_none() {
            self.recording.codec = format.codec;
            self.recording.sample_rate = format.sample_rate;
            self.recording.channels = format.channels;
            if self.life.policy().is_none() {
                let now = self.deps.clock.now();
                self.recording.started_at =
                    claimed.map_or(now, |c| c.clamp(now - Duration::seconds(1), now));
            }
            self.save_row().await?;
        }
        self.format = Some(format);
        self.closed_at = None;
        self.reconnect_by = None;
        if reopened && self.pending_gap.is_none() {
            self.pending_gap = Some(PendingGap {
                cause: "reconnect",
                place_end: self.timeline.place_end(),
            });
        }
        self.timeline.open(format.sample_rate, clock, claimed);
        self.start_keys().await;
        if let Some(tx) = &self.listeners {
            let _ = tx.send(ListenFrame::Format(format));
        }
        self.note_now(
            "media.opened",
            serde_json::json!({
                "codec": format.codec.name(), "sample_rate": format.sample_rate,
                "channels": format.channels,
                "clock": match clock { MediaClock::Counted => "counted", MediaClock::Stamped => "stamped" },
            }),
        )
        .await;
        Ok(())
    }

    fn on_media_closed(&mut self) {
        if self.timeline.is_open() {
            let now = self.deps.clock.now();
            self.close_keys(now);
            self.timeline.close();
            self.closed_at = Some(now);
        }
    }

    async fn apply_effects(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Ledger(note) => self.note(note).await,
                Effect::DiscardHeld => {
                    let dropped = self.timeline.drop_all();
                    self.note_now(
                        "consent.discarded",
                        serde_json::json!({ "samples": dropped }),
                    )
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

    /// Commits what the look-back window allows.
    async fn advance(&mut self, now: DateTime<Utc>) -> Result<(), RecorderError> {
        let effects = self.life.tick(now);
        self.apply_effects(effects).await;
        let window = self.life_window();
        if self.life.policy().is_none() {
            // no call.started yet: once audio is older than the window, or the call is over (so it
            // can seal even if all its audio came after the end), the default policy applies
            let stale = self
                .timeline
                .oldest_arrival()
                .is_some_and(|a| a + window <= now);
            if stale || self.life.ended().is_some() {
                let policy = self.deps.config.policy_for(None, None);
                let started = self.timeline.origin().unwrap_or(now);
                self.life.set_policy(policy, started);
            }
        }
        self.note_keys(now, false).await;
        match self.life.horizon(now) {
            Horizon::Hold => Ok(()),
            // committed by arrival: what arrived a window ago can no longer be reached by a pause
            // up to the look-back late
            Horizon::Until(_) | Horizon::All => self.commit_until(now - window).await,
        }
    }

    /// Milliseconds from the recording's start.
    fn media_ms(&self, t: DateTime<Utc>) -> u64 {
        (t - self.recording.started_at).num_milliseconds().max(0) as u64
    }

    async fn flush_all(&mut self) {
        if let Err(e) = self.commit_until(DateTime::<Utc>::MAX_UTC).await {
            warn!(call_id = %self.id, error = %e, "commit failed");
        }
        if let Err(e) = self.close_open().await {
            error!(call_id = %self.id, error = %e, "closing the last segment failed; the spool keeps it for recovery");
            self.note_now(
                "segment.close_failed",
                serde_json::json!({ "error": e.to_string() }),
            )
            .await;
        }
    }

    fn is_over(&self, now: DateTime<Utc>) -> bool {
        // held audio must be committed first; only the tail an open stream keeps for the tone
        // detector is committed by the seal itself
        let settled = self.timeline.is_empty()
            || (!matches!(self.life.horizon(now), Horizon::Hold)
                && self.timeline.holds_only_tail(self.key_tail()));
        if !settled {
            return false;
        }
        let idle = Duration::from_std(self.deps.config.recorder.idle_seal)
            .unwrap_or(Duration::seconds(30));
        let window = self.life_window();
        if let Some(by) = self.reconnect_by {
            // adopted at start-up: over if no stream returned in time
            return now >= by;
        }
        let open = self.timeline.is_open();
        let last_audio = self.last_audio.unwrap_or(self.last_input);
        match (self.life.ended(), open) {
            _ if self.refused && !open => self.life.ended().is_some(),
            // ended, stream closed: over once a late pause can no longer reach held audio
            (Some(end), false) => now >= end + window && now >= last_audio + window,
            // ended while the stream still sends: keep what it sends, for idle_seal at most
            (Some(end), true) => now >= end + idle,
            // the stream closed without call.ended: sealed after idle_seal
            (None, false) => match self.closed_at {
                Some(c) => now >= c + idle,
                None => {
                    now >= self.last_input
                        + Duration::from_std(IDLE_LIMIT).unwrap_or(Duration::hours(1))
                }
            },
            // a stream that stays open but sends nothing ends after idle_seal
            (None, true) => now >= last_audio + idle,
        }
    }

    /// Seals the recording: closes the open segment, checks that no segment overlaps a window,
    /// and writes the end, the expiry and the final status.
    async fn finish(&mut self, ended: DateTime<Utc>) {
        let over_by_idle = self.life.ended().is_none();
        if over_by_idle && let Err(refusal) = self.life.apply(&EventKind::CallEnded, ended, ended) {
            debug!(call_id = %self.id, %refusal, "the call could not be ended in its lifecycle");
        }
        if self.timeline.is_open() {
            // the stream outlived its call (or went silent): it is closed now
            self.close_keys(ended);
            self.timeline.close();
        }
        self.flush_all().await;
        self.note_keys(ended, true).await;
        if self.key_windows_noted > 0 {
            let unannounced = self.keys.as_ref().is_some_and(|k| k.unannounced);
            self.audit(
                "recording.dtmf",
                serde_json::json!({ "windows": self.key_windows_noted, "outside_payment_pause": unannounced }),
            )
            .await;
        }
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
        if self.dropped_on_arrival > 0 || self.backwards > 0 || self.overrun > 0 {
            let rate = self.format.map_or(8000, |f| f.sample_rate);
            self.note_now(
                "dropped_on_arrival",
                serde_json::json!({
                    "ms": timeline::samples_duration(self.dropped_on_arrival, rate).num_milliseconds(),
                    "backwards_ms": timeline::samples_duration(self.backwards, rate).num_milliseconds(),
                    "overrun_ms": timeline::samples_duration(self.overrun, rate).num_milliseconds(),
                }),
            )
            .await;
        }
        let bad = if self.refused {
            Vec::new()
        } else {
            timeline::overlapping(&self.sealed, &self.life.windows())
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

/// Restores what a call's lifecycle knew before a restart from its recording's ledger: its policy,
/// its pauses and given consent. A pause entry that cannot be read back restores an open payment
/// pause from the entry's time (fail closed: a pause never ends by being forgotten).
fn restore(
    life: &mut Lifecycle,
    deps: &Deps,
    row: &RecordingRow,
    ledger: &[crate::catalog::LedgerEntry],
) {
    let policy = deps
        .config
        .policy_for(row.line.as_deref(), row.queue.as_deref());
    life.set_policy(policy, row.started_at);
    let time = |v: &serde_json::Value, field: &str| {
        v.get(field)
            .and_then(serde_json::Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let kind = |v: &serde_json::Value| match v.get("kind").and_then(serde_json::Value::as_str) {
        Some("agent") => PauseKind::Agent,
        _ => PauseKind::Payment,
    };
    for e in ledger {
        let details: serde_json::Value =
            serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null);
        match e.kind.as_str() {
            "pause" | "pause.extended" => {
                life.restore_pause(kind(&details), time(&details, "from").unwrap_or(e.at));
            }
            "resume" => {
                if let Some(at) = time(&details, "at") {
                    life.restore_resume(kind(&details), at);
                }
            }
            "consent.given" => life.restore_consent(),
            _ => {}
        }
    }
}
