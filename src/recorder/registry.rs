//! The registry of calls: which call has a live task, and what to do with an event for a call that
//! has none (not started yet, or already over).
//!
//! A call task is created on first contact (an event or its media stream), so events that come
//! before the stream opens are applied in order when it does. Events for a call that is over are
//! applied where they still mean something (a late pause that falls in the recording, a refusal, a
//! complaint) and refused with a reason where they do not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::call::{AudioBatch, Call, Input, Piece};
use super::persist::{PersistError, Persistence};
use crate::audit::NewAuditEntry;
use crate::catalog::{
    Catalog, CatalogError, NewLedgerEntry, PciReviewNote, RecordingRow, RecordingStatus,
    StatusChange,
};
use crate::config::Config;
use crate::domain::lifecycle::Refusal;
use crate::domain::status::{RefusalSource, pause_instant, segments_after_pause};
use crate::domain::timeline::MediaClock;
use crate::domain::{CallEvent, CallId, Clock, EventKind, MediaFormat, RecordingId};
use crate::retention::{Retention, RetentionError, holds};
use crate::vault::CallerKeys;

/// Inputs queued per call before its task takes them; audio waits here when the task is busy.
const CALL_QUEUE: usize = 256;
/// How long a finished call is remembered in memory for late events (the catalog answers after).
const REMEMBER_ENDED: i64 = 6 * 3600;

/// What every call task needs.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The configuration.
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// Spool, seal, upload.
    pub persistence: Persistence,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Turns `call.started`'s caller number into its lookup tag and sealed form.
    pub callers: CallerKeys,
    /// The one destruction path (a refusal goes through its journal) and the refusal rules.
    pub retention: Retention,
}

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// It was applied.
    Applied,
}

/// Why the recorder could not take an event or a stream.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The lifecycle refused the event (the call ended, or the caller refused recording).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The call is over; a stream cannot open for it.
    #[error("the call ended at {0}")]
    Ended(DateTime<Utc>),
    /// A stream is already open for this call.
    #[error("a media stream is already open for this call")]
    StreamOpen,
    /// A stream reconnected in another format than the call's first stream.
    #[error("the call's audio is {was:?}; a stream in {now:?} cannot continue it")]
    FormatChanged {
        /// The call's format.
        was: MediaFormat,
        /// The new stream's.
        now: MediaFormat,
    },
    /// `recorder.max_calls` calls are live.
    #[error("too many live calls")]
    Busy,
    /// The daemon is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Persisting audio failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Retention refused the change (a refusal's destruction) or failed.
    #[error(transparent)]
    Retention(Box<RetentionError>),
    /// A repeated `call.started` differs from the one applied: these fields.
    #[error("call.started conflicts with the one applied: {}", fields.join(", "))]
    Conflict {
        /// The fields that differ.
        fields: Vec<&'static str>,
    },
}

/// What a live call's task tells the sockets of its state.
#[derive(Clone)]
struct Watches {
    /// Whether a payment pause is on.
    payment: watch::Sender<bool>,
    /// Whether nothing may be captured now.
    gate: watch::Sender<bool>,
}

enum Slot {
    Live(mpsc::Sender<Input>),
    Ended {
        recording: RecordingId,
        at: DateTime<Utc>,
    },
}

/// The recorder: a cheap `Clone` handle shared by the API and protocol adapters.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    /// Held only to look up or change a slot, never across an `.await`; a std mutex is enough.
    calls: Mutex<HashMap<CallId, Slot>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Each live call's pause state, fed by its task (see [`Recorder::watch_pauses`]).
    /// Held like `calls`: never across an `.await`.
    pauses: Mutex<HashMap<CallId, Watches>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("live_calls", &self.live_calls())
            .finish()
    }
}

/// The sending side of one call's media stream.
///
/// An adapter [`push`](Self::push)es each piece of audio as it reads it (stamped with its arrival
/// then, and with its stream position: counted here, or the protocol's own with
/// [`push_at`](Self::push_at)). While the call captures nothing (an open pause, a refusal) audio is
/// dropped here, on arrival, never buffered. What is kept goes to the call in batches, at most
/// a tenth of a second apart ([`due`](Self::due) says when the adapter must
/// [`flush`](Self::flush)), so a call wakes a few times a second, not for every 20 ms frame. The
/// call judges every piece by its position and arrival, not by when the batch reaches it, so
/// batching cannot move audio into or out of a pause.
#[derive(Debug)]
pub struct MediaSink {
    tx: mpsc::Sender<Input>,
    clock: Arc<dyn Clock>,
    format: MediaFormat,
    /// The next counted position, in samples.
    next: u64,
    batch: AudioBatch,
    /// When the oldest piece of the batch was pushed.
    since: Option<tokio::time::Instant>,
    /// Whether the call captures nothing now.
    gate: Option<watch::Receiver<bool>>,
    /// Samples dropped here on arrival since the call was last told.
    dropped: u64,
}

/// Longest a piece waits in a [`MediaSink`] before the batch goes to the call.
const SINK_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(100);
/// Pending bytes past which a [`MediaSink`] batch goes at once: about half a second of stereo G.711.
const SINK_BATCH: usize = 8 * 1024;

impl MediaSink {
    /// Takes audio that follows the last (counted position), read now; true when the batch should
    /// go now.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let position = self.next;
        self.push_at(position, bytes)
    }

    /// Takes audio at stream position `position` (samples since the stream's start, from the
    /// protocol's timestamps), read now; true when the batch should go now. Bytes past the last
    /// whole sample frame are ignored.
    pub fn push_at(&mut self, position: u64, bytes: &[u8]) -> bool {
        let frame = self.format.frame_bytes() as usize;
        let len = bytes.len() / frame * frame;
        let samples = (len / frame) as u64;
        self.next = self.next.max(position + samples);
        if len == 0 {
            return false;
        }
        let arrival = self.clock.now();
        if self.gate.as_ref().is_some_and(|g| *g.borrow()) {
            // nothing may be captured now: dropped on arrival, never buffered; only where and when
            // it came goes on, for the call's clocks
            self.dropped += samples;
            match self.batch.pieces.last_mut() {
                Some(last) if last.gated > 0 && last.position + last.gated == position => {
                    last.gated += samples;
                    last.arrival = arrival;
                }
                _ => self.batch.pieces.push(Piece {
                    position,
                    len: 0,
                    gated: samples,
                    arrival,
                }),
            }
            self.since.get_or_insert_with(tokio::time::Instant::now);
            return false;
        }
        self.batch.bytes.extend_from_slice(&bytes[..len]);
        self.batch.pieces.push(Piece {
            position,
            len,
            gated: 0,
            arrival,
        });
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.batch.bytes.len() >= SINK_BATCH
    }

    /// Takes a key the platform signalled (AudioSocket DTMF, Twilio `dtmf`, RFC 4733), read now;
    /// its value is not taken. Returns true: the batch should go now, so the call drops what the
    /// key covers while it is still held.
    pub fn key(&mut self) -> bool {
        self.batch.keys.push(self.clock.now());
        self.since.get_or_insert_with(tokio::time::Instant::now);
        true
    }

    /// Moves the counted position on to `position` (a gap the protocol reports, such as
    /// AudioHook's `discarded`: the audio after it is placed after the gap, not shifted back).
    pub fn advance_to(&mut self, position: u64) {
        self.next = self.next.max(position);
    }

    /// When the pending batch must go to the call, if anything is pending.
    pub fn due(&self) -> Option<tokio::time::Instant> {
        self.since.map(|s| s + SINK_BATCH_TIME)
    }

    /// Hands the batch to the call; fails when the call is over.
    pub async fn flush(&mut self) -> Result<(), RecorderError> {
        self.since = None;
        if self.batch.pieces.is_empty() && self.batch.keys.is_empty() && self.dropped == 0 {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.dropped = std::mem::take(&mut self.dropped);
        batch.seen = Some(self.clock.now());
        self.tx
            .send(Input::Audio(batch))
            .await
            .map_err(|_| RecorderError::Ended(Utc::now()))
    }
}

impl Drop for MediaSink {
    fn drop(&mut self) {
        let tx = self.tx.clone();
        let mut rest = std::mem::take(&mut self.batch);
        rest.dropped = self.dropped;
        // the close must not be lost behind queued audio, and a drop cannot await; audio pushed
        // and not flushed still goes first
        tokio::spawn(async move {
            if !rest.pieces.is_empty() || !rest.keys.is_empty() || rest.dropped > 0 {
                // the call may be over already: then there is nobody left to tell
                let _ = tx.send(Input::Audio(rest)).await;
            }
            let _ = tx.send(Input::MediaClosed).await;
        });
    }
}

impl Recorder {
    /// A recorder whose call tasks run on `tracker` and end on `shutdown`.
    pub fn new(deps: Deps, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        Self {
            inner: Arc::new(Inner {
                deps,
                calls: Mutex::new(HashMap::new()),
                shutdown,
                tracker,
                pauses: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Calls with a live task.
    pub fn live_calls(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s, Slot::Live(_)))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Slot>> {
        self.inner
            .calls
            .lock()
            .expect("the call map lock is never poisoned: no panics while held")
    }

    /// Applies an event that arrived at `arrival`.
    pub async fn event(
        &self,
        event: CallEvent,
        arrival: DateTime<Utc>,
    ) -> Result<EventOutcome, RecorderError> {
        if let EventKind::ComplaintOpened { .. } | EventKind::ComplaintResolved { .. } = &event.kind
        {
            return self.complaint(&event).await;
        }
        for _ in 0..2 {
            let tx = match self.slot(&event.call_id).await? {
                Target::Live(tx) => tx,
                Target::Ended(recording) => {
                    return self.late_event(&event, *recording, arrival).await;
                }
            };
            let (reply, answer) = oneshot::channel();
            let input = Input::Event {
                event: event.clone(),
                arrival,
                reply,
            };
            if tx.send(input).await.is_ok()
                && let Ok(result) = answer.await
            {
                return result;
            }
            // the task ended between the lookup and the send: look again, it is now over
        }
        Err(RecorderError::ShuttingDown)
    }

    /// Opens the media stream of `call_id`. `claimed` is the platform's instant of the first
    /// sample, if it says (clamped by the call's timeline); `clock` says whether the adapter gives
    /// positions from the protocol's timestamps or counts them.
    pub async fn open_media(
        &self,
        call_id: &CallId,
        format: MediaFormat,
        clock: MediaClock,
        claimed: Option<DateTime<Utc>>,
    ) -> Result<MediaSink, RecorderError> {
        let now = self.inner.deps.clock.now();
        let tx = match self.slot(call_id).await? {
            Target::Live(tx) => tx,
            Target::Ended(recording) => {
                let ended = recording.ended_at.unwrap_or(now);
                return Err(RecorderError::Ended(ended));
            }
        };
        let (reply, answer) = oneshot::channel();
        tx.send(Input::MediaOpen {
            format,
            clock,
            claimed,
            reply,
        })
        .await
        .map_err(|_| RecorderError::Ended(now))?;
        answer.await.map_err(|_| RecorderError::Ended(now))??;
        let gate = self.gate_map().get(call_id).map(|w| w.gate.subscribe());
        Ok(MediaSink {
            tx,
            clock: Arc::clone(&self.inner.deps.clock),
            format,
            next: 0,
            batch: AudioBatch::default(),
            since: None,
            gate,
            dropped: 0,
        })
    }

    /// Subscribes to a live call's committed audio and pause markers (see
    /// [`ListenFeed`](super::ListenFeed)); `None` if the call has no live task.
    pub async fn listen(&self, call_id: &CallId) -> Option<super::ListenFeed> {
        let tx = match self.lock().get(call_id) {
            Some(Slot::Live(tx)) => tx.clone(),
            _ => return None,
        };
        let (reply, answer) = oneshot::channel();
        tx.send(Input::Listen { reply }).await.ok()?;
        answer.await.ok()
    }

    async fn slot(&self, call_id: &CallId) -> Result<Target, RecorderError> {
        let ended = match self.lock().get(call_id) {
            Some(Slot::Live(tx)) => return Ok(Target::Live(tx.clone())),
            Some(Slot::Ended { recording, .. }) => Some(*recording),
            None => None,
        };
        let catalog = &self.inner.deps.catalog;
        if let Some(id) = ended {
            if let Some(row) = catalog.recording(id).await? {
                return Ok(Target::Ended(Box::new(row)));
            }
        } else if let Some(row) = catalog.recording_by_call(call_id).await?
            && row.status != RecordingStatus::Live
        {
            return Ok(Target::Ended(Box::new(row)));
        }
        self.spawn(call_id).map(Target::Live)
    }

    fn spawn(&self, call_id: &CallId) -> Result<mpsc::Sender<Input>, RecorderError> {
        self.spawn_with(call_id, None)
    }

    /// Takes back the calls whose recordings were still live when the daemon last stopped (or
    /// crashed): each waits `recorder.idle_seal` for its platform to reconnect and continue it, and
    /// is sealed as interrupted if none does.
    pub fn adopt(&self, calls: &[CallId]) {
        let idle = Duration::from_std(self.inner.deps.config.recorder.idle_seal)
            .unwrap_or(Duration::seconds(30));
        let by = self.inner.deps.clock.now() + idle;
        for call in calls {
            if let Err(e) = self.spawn_with(call, Some(by)) {
                warn!(call_id = %call, error = %e, "cannot take back an interrupted call");
            }
        }
    }

    fn spawn_with(
        &self,
        call_id: &CallId,
        reconnect_by: Option<DateTime<Utc>>,
    ) -> Result<mpsc::Sender<Input>, RecorderError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(RecorderError::ShuttingDown);
        }
        let mut calls = self.lock();
        if let Some(Slot::Live(tx)) = calls.get(call_id) {
            return Ok(tx.clone());
        }
        let live = calls
            .values()
            .filter(|s| matches!(s, Slot::Live(_)))
            .count();
        if live >= self.inner.deps.config.recorder.max_calls {
            metrics::counter!("callvault_calls_refused_total").increment(1);
            return Err(RecorderError::Busy);
        }
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        calls.insert(call_id.clone(), Slot::Live(tx.clone()));
        metrics::gauge!("callvault_live_calls").set((live + 1) as f64);
        drop(calls);
        let watches = Watches {
            payment: watch::channel(false).0,
            gate: watch::channel(false).0,
        };
        self.pause_map().insert(call_id.clone(), watches.clone());
        let this = self.clone();
        let call_id = call_id.clone();
        self.inner.tracker.spawn(async move {
            let deps = this.inner.deps.clone();
            let now = deps.clock.now();
            let outcome = match Call::create(call_id.clone(), deps, now).await {
                Ok(mut call) => {
                    call.paused = Some(watches.payment);
                    call.gate = Some(watches.gate);
                    if let Some(by) = reconnect_by {
                        call.expect_reconnect(by);
                    }
                    let recording = call.recording_id();
                    let (_, ended) = call.run(rx, this.inner.shutdown.clone()).await;
                    // no end: the daemon stopped and the recording stays live for a reconnect
                    ended.map(|at| (recording, at))
                }
                Err(e) => {
                    warn!(call_id = %call_id, error = %e, "cannot open the call's recording");
                    None
                }
            };
            this.finished(&call_id, outcome);
        });
        Ok(tx)
    }

    fn finished(&self, call_id: &CallId, outcome: Option<(RecordingId, DateTime<Utc>)>) {
        self.pause_map().remove(call_id);
        let now = self.inner.deps.clock.now();
        let mut calls = self.lock();
        match outcome {
            Some((recording, at)) => {
                calls.insert(call_id.clone(), Slot::Ended { recording, at });
            }
            None => {
                calls.remove(call_id);
            }
        }
        calls.retain(|_, s| match s {
            Slot::Live(_) => true,
            Slot::Ended { at, .. } => now - *at < Duration::seconds(REMEMBER_ENDED),
        });
        let live = calls
            .values()
            .filter(|s| matches!(s, Slot::Live(_)))
            .count();
        metrics::gauge!("callvault_live_calls").set(live as f64);
    }

    /// Whether a live call is in a payment pause, now and as it changes, for adapters whose
    /// platform must be told (AudioHook's server `pause`/`resume`). `None` when the call has no live
    /// task; the sender closes when the call ends.
    pub fn watch_pauses(&self, call_id: &CallId) -> Option<watch::Receiver<bool>> {
        self.pause_map().get(call_id).map(|w| w.payment.subscribe())
    }

    /// Appends a ledger entry of `kind` to the recording of `call_id` (an adapter's note, such as how
    /// much audio the platform discarded during a pause). Does nothing when the call has no recording.
    pub async fn note(
        &self,
        call_id: &CallId,
        kind: &str,
        details: serde_json::Value,
    ) -> Result<(), RecorderError> {
        if let Some(row) = self.inner.deps.catalog.recording_by_call(call_id).await? {
            self.ledger(row.id, kind, details).await?;
        }
        Ok(())
    }

    fn gate_map(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Watches>> {
        self.pause_map()
    }

    fn pause_map(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Watches>> {
        self.inner
            .pauses
            .lock()
            .expect("the pause map lock is never poisoned: no panics while held")
    }

    /// An event for a call that is over.
    async fn late_event(
        &self,
        event: &CallEvent,
        recording: RecordingRow,
        arrival: DateTime<Utc>,
    ) -> Result<EventOutcome, RecorderError> {
        let deps = &self.inner.deps;
        let ended = recording.ended_at.unwrap_or(recording.updated_at);
        let name = event.kind.name();
        match &event.kind {
            EventKind::PaymentStarted | EventKind::RecordingPaused { .. } => {
                // the same instant, by the same function and guard, as during the call
                let guard = deps.config.pci.timing().guard;
                let instant = pause_instant(event.at, arrival, guard);
                if instant >= ended {
                    return Err(Refusal::CallEnded(ended, name).into());
                }
                let instant_ms = (instant - recording.started_at).num_milliseconds().max(0) as u64;
                let segments = deps.catalog.segments(recording.id).await?;
                let keyed: Vec<(u32, u64)> = segments
                    .iter()
                    .filter(|s| s.wrapped_key.is_some())
                    .map(|s| (s.segment.0, s.media_end_ms))
                    .collect();
                let note = PciReviewNote {
                    pause_at: instant,
                    event: Some(name.to_owned()),
                    arrived: Some(arrival),
                    segments_after_pause: segments_after_pause(instant_ms, &keyed),
                    call_id: Some(event.call_id.as_str().to_owned()),
                };
                let now = deps.clock.now();
                if note.segments_after_pause.is_empty() {
                    let mut entry = note.entry(recording.id, now, "recorder");
                    entry.kind = "late_pause".to_owned();
                    deps.catalog.append_ledger(&entry).await?;
                    return Ok(EventOutcome::Applied);
                }
                let to = match recording.status.review() {
                    Ok(to) => to,
                    // nothing of it is left to review (refused, destroyed): the pause is noted
                    Err(e) => {
                        let mut entry = note.entry(recording.id, now, "recorder");
                        entry.kind = "late_pause".to_owned();
                        deps.catalog.append_ledger(&entry).await?;
                        info!(recording_id = %recording.id, error = %e, "late pause on a recording without audio");
                        return Ok(EventOutcome::Applied);
                    }
                };
                let change = StatusChange::new(recording.id, recording.status, to, now);
                if !deps.catalog.transition_recording(&change).await? {
                    return Err(RecorderError::Retention(Box::new(RetentionError::Changed(
                        recording.id,
                    ))));
                }
                warn!(recording_id = %recording.id, "a pause arrived after the call was sealed; recording marked pci_review");
                metrics::counter!("callvault_pci_incidents_total").increment(1);
                deps.catalog
                    .append_ledger(&note.entry(recording.id, now, "recorder"))
                    .await?;
                self.audit(
                    "recording.pci_review",
                    recording.id.to_string(),
                    serde_json::to_value(&note).unwrap_or_default(),
                )
                .await?;
                Ok(EventOutcome::Applied)
            }
            EventKind::ConsentRefused => {
                if recording.status == RecordingStatus::Refused {
                    return Ok(EventOutcome::Applied);
                }
                let source = RefusalSource::AfterCall { ended };
                match super::refusal::begin(deps, recording.id, source, event.at, arrival).await? {
                    super::refusal::Begun::Destroy(pending) => {
                        let details = serde_json::json!({
                            "at": event.at.to_rfc3339(), "arrived": arrival.to_rfc3339(),
                            "after_call_end": true,
                        });
                        self.ledger(recording.id, "consent.refused", details)
                            .await?;
                        super::refusal::destroy(deps, recording.id, pending).await?;
                    }
                    super::refusal::Begun::Held | super::refusal::Begun::Late => {}
                }
                Ok(EventOutcome::Applied)
            }
            _ => Err(Refusal::CallEnded(ended, name).into()),
        }
    }

    /// `complaint.opened` places a hold (or adds to one) on the recordings of the event's calls;
    /// `complaint.resolved` releases it.
    async fn complaint(&self, event: &CallEvent) -> Result<EventOutcome, RecorderError> {
        let deps = &self.inner.deps;
        let now = deps.clock.now();
        match &event.kind {
            EventKind::ComplaintOpened {
                reference,
                call_ids,
                caller,
            } => {
                let mut recordings = Vec::new();
                for call in std::iter::once(&event.call_id).chain(call_ids) {
                    if let Some(row) = deps.catalog.recording_by_call(call).await? {
                        recordings.push(row.id);
                    }
                }
                let request = holds::HoldRequest {
                    reference: reference.clone(),
                    reason: "complaint opened by the telephony platform".to_owned(),
                    actor: "telephony".to_owned(),
                    recordings,
                    // an unparsable number holds nothing by caller; the calls named still count
                    caller: caller
                        .as_deref()
                        .and_then(|n| n.parse::<crate::domain::CallerNumber>().ok())
                        .map(|n| holds::CallerHold {
                            tag: deps.callers.tag(&n),
                            from: None,
                            to: None,
                        }),
                    via: "complaint.opened",
                };
                match holds::place_hold(&deps.catalog, now, request).await {
                    Ok(placed) => {
                        info!(
                            reference,
                            linked = placed.linked.len(),
                            "complaint hold placed"
                        );
                    }
                    Err(RetentionError::Catalog(e)) => return Err(e.into()),
                    Err(e) => warn!(reference, error = %e, "complaint hold not placed"),
                }
            }
            EventKind::ComplaintResolved { reference } => {
                match holds::release_hold(
                    &deps.catalog,
                    now,
                    reference,
                    "telephony",
                    "complaint.resolved event",
                    "complaint.resolved",
                )
                .await
                {
                    Ok(_) => {}
                    Err(RetentionError::Catalog(e)) => return Err(e.into()),
                    // unknown, or released already: nothing to do
                    Err(_) => {}
                }
            }
            _ => {}
        }
        Ok(EventOutcome::Applied)
    }

    async fn ledger(
        &self,
        recording: RecordingId,
        kind: &str,
        details: serde_json::Value,
    ) -> Result<(), RecorderError> {
        let deps = &self.inner.deps;
        let entry = NewLedgerEntry {
            recording_id: recording,
            at: deps.clock.now(),
            kind: kind.to_owned(),
            actor: "recorder".to_owned(),
            reason: None,
            details: details.to_string(),
        };
        deps.catalog.append_ledger(&entry).await?;
        Ok(())
    }

    async fn audit(
        &self,
        action: &str,
        subject: String,
        details: serde_json::Value,
    ) -> Result<(), RecorderError> {
        let deps = &self.inner.deps;
        let entry = NewAuditEntry::new(deps.clock.now(), "system:recorder", action, subject)
            .details(&details);
        deps.catalog.append_audit(entry).await?;
        Ok(())
    }
}

enum Target {
    Live(mpsc::Sender<Input>),
    Ended(Box<RecordingRow>),
}
