//! The recording lifecycle of one call, as a pure state machine: consent, payment and agent pauses,
//! the end of the call, and the commit horizon of the look-back buffer (DESIGN.md section 2).
//!
//! Everything here is in wall-clock time (UTC), so events that arrive before the media stream opens,
//! late, twice, or out of order are placed where they belong. The machine says which windows of
//! time no audio may be kept in ([`Lifecycle::windows`]); the [`timeline`](super::timeline) judges
//! each piece of audio against them by both of its clocks, and, on each tick, this machine says how
//! far the look-back buffer may be committed.
//!
//! The rules, in one place:
//! - A pause's instant is the earlier of the event's time and its arrival, minus `pci.guard`. Audio
//!   that could have been spoken from that instant on is dropped on arrival and cut from the buffer
//!   ([`Effect::DropFrom`]).
//! - A resume takes effect at the arrival of its event, never earlier: what was dropped stays
//!   dropped, and audio arriving after it that could have been spoken before it is dropped too. As
//!   the media clock is anchored at an arrival, a frame could have been spoken up to
//!   `pci.max_latency` before its media time says ([`Timing::resume_margin`]): a pause's window
//!   reaches that far past its resume, so audio held up longer than the event cannot slip out.
//! - The end of the call cuts nothing: audio that arrived before the stream closed is kept.
//! - A payment pause without an end stays on until the call ends (fail closed), unless the policy's
//!   `max_pause` resumes it, which the ledger says.
//! - Audio is committed only once it is older than `pci.lookback + pci.guard`, so an event up to
//!   `lookback` late still keeps card audio out of storage. Under explicit consent nothing is committed
//!   before consent; if consent does not come within `consent_wait`, the held audio is discarded.
//! - A refusal destroys everything and stops capture for good.
//! - Keys the caller presses (tones found in the audio, or signalled by the platform) are card data
//!   too: their windows ([`super::dtmf::key_windows`], under the policy's `pci.dtmf`) are windows
//!   like a pause's ([`Lifecycle::key_down`], [`Lifecycle::key_up`]). Until the call's policy is
//!   known, `pci.dtmf` of the configuration applies ([`Timing::dtmf`]).

use chrono::{DateTime, Duration, Utc};

use super::dtmf::{KeySource, KeyWindow, Keypress, key_windows};
use super::timeline::{Bounds, Window};
use super::{ConsentMode, DtmfPolicy, EventKind, Policy};

/// Why a pause is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    /// A card payment (PCI DSS).
    Payment,
    /// The agent paused recording.
    Agent,
}

impl PauseKind {
    /// The word used in the ledger.
    pub const fn as_str(self) -> &'static str {
        match self {
            PauseKind::Payment => "payment",
            PauseKind::Agent => "agent",
        }
    }
}

/// One pause: capture is off over `[from, to)`; `to` is `None` while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// Why.
    pub kind: PauseKind,
    /// Its instant: audio from here on is not kept.
    pub from: DateTime<Utc>,
    /// Where capture resumed, if it has.
    pub to: Option<DateTime<Utc>>,
}

impl Pause {
    /// Whether the pause covers instant `t`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        t >= self.from && self.to.is_none_or(|to| t < to)
    }
}

/// Consent, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Implied consent: recording from the start; the caller may still refuse.
    Implied,
    /// Explicit consent asked; audio is held in memory until `deadline`.
    Awaiting {
        /// When held audio is discarded if consent has not come.
        deadline: DateTime<Utc>,
    },
    /// Explicit consent did not come in time; nothing is captured unless it comes later.
    Lapsed {
        /// When capture stopped.
        since: DateTime<Utc>,
    },
    /// Consent was given; audio from `from` on may be kept (everything held, if it came in time).
    Given {
        /// From when audio may be kept.
        from: DateTime<Utc>,
    },
    /// The caller refused: nothing is kept, ever.
    Refused,
}

/// What the recorder must do besides classifying audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A window in which nothing may be kept begins at this instant: drop held audio that
    /// overlaps [`Lifecycle::windows`]; committed audio that does needs a
    /// [`late_remedy`](super::timeline::late_remedy).
    DropFrom(DateTime<Utc>),
    /// Drop all audio held for consent.
    DiscardHeld,
    /// Destroy every byte of this call's audio: memory, spool, object store, data keys.
    DestroyAll,
    /// Write this to the recording's ledger.
    Ledger(Note),
}

/// A ledger entry the lifecycle asks for: its kind and its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The entry's kind, e.g. `pause`, `resume`, `consent.refused`.
    pub kind: &'static str,
    /// Facts as JSON.
    pub details: serde_json::Value,
}

fn note(kind: &'static str, details: serde_json::Value) -> Effect {
    Effect::Ledger(Note { kind, details })
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call has ended and the event no longer means anything for it.
    #[error("the call ended at {0}; a {1} event no longer applies")]
    CallEnded(DateTime<Utc>, &'static str),
    /// The caller refused recording; nothing more is captured.
    #[error("the caller refused recording; the {0} event does not apply")]
    Refused(&'static str),
}

/// How far the look-back buffer may be committed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// Commit nothing; keep holding.
    Hold,
    /// Commit audio that ends at or before this instant.
    Until(DateTime<Utc>),
    /// Commit everything: the call is over and the look-back window has passed.
    All,
}

/// The timing rules of the look-back buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `pci.lookback`.
    pub lookback: Duration,
    /// `pci.guard`.
    pub guard: Duration,
    /// `pci.dtmf` (with its quiet time and sensitivity): how keys are handled until the call's
    /// policy is known.
    pub dtmf: DtmfPolicy,
    /// `pci.max_latency`: the most audio may be delayed on its way here beyond an event, so audio
    /// arriving this long after a resume could still have been spoken in the pause.
    pub resume_margin: Duration,
}

impl Timing {
    /// How long audio waits in memory before it may be committed.
    pub fn window(&self) -> Duration {
        self.lookback + self.guard
    }
}

/// The lifecycle of one call's recording.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    timing: Timing,
    policy: Option<Policy>,
    /// When the call (or its stream, if no call.started came first) began.
    started: Option<DateTime<Utc>>,
    consent: Consent,
    pauses: Vec<Pause>,
    ended: Option<DateTime<Utc>>,
    /// A `payment.ended` that came while no payment pause was on: (its time, its arrival).
    early_payment_end: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Every key pressed so far (values never known here).
    keys: Vec<Keypress>,
}

/// A key pressed and not yet released, as [`Lifecycle::key_down`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDown(usize);

impl Lifecycle {
    /// A call about which nothing is known yet.
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            policy: None,
            started: None,
            consent: Consent::Implied,
            pauses: Vec::new(),
            ended: None,
            early_payment_end: None,
            keys: Vec::new(),
        }
    }

    /// The policy, once [`Lifecycle::set_policy`] was called.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// Fixes the call's policy (from `call.started`, or the default when audio must be committed
    /// before that event came) and the call's start. Explicit consent starts its wait here.
    pub fn set_policy(&mut self, policy: Policy, started: DateTime<Utc>) {
        if self.policy.is_some() {
            return;
        }
        self.started = Some(started);
        if policy.consent == ConsentMode::Explicit && self.consent == Consent::Implied {
            let wait = Duration::from_std(policy.consent_wait).unwrap_or(Duration::MAX);
            self.consent = Consent::Awaiting {
                deadline: started + wait,
            };
        }
        self.policy = Some(policy);
    }

    /// The consent state.
    pub fn consent(&self) -> Consent {
        self.consent
    }

    /// Every pause so far, in the order they began.
    pub fn pauses(&self) -> &[Pause] {
        &self.pauses
    }

    /// When the call ended, if it has.
    pub fn ended(&self) -> Option<DateTime<Utc>> {
        self.ended
    }

    /// The windows in which no audio may be kept: every pause, and all of the call while consent
    /// is refused or lapsed (or, once given late, before it was given). Audio is judged against
    /// them by its interval from earliest speaking time to arrival ([`super::timeline`]).
    pub fn windows(&self) -> Vec<Window> {
        let mut out: Vec<Window> = self
            .pauses
            .iter()
            .map(|p| Window {
                from: p.from,
                // the media clock is anchored at an arrival, so a frame's earliest speaking time
                // may be late by the audio's network delay: a pause reaches that far past its
                // resume
                to: p.to.map(|to| to + self.timing.resume_margin),
            })
            .collect();
        match self.consent {
            Consent::Implied | Consent::Awaiting { .. } => {}
            Consent::Given { from } => {
                if from > DateTime::<Utc>::MIN_UTC {
                    out.push(Window {
                        from: DateTime::<Utc>::MIN_UTC,
                        to: Some(from),
                    });
                }
            }
            Consent::Lapsed { .. } | Consent::Refused => out.push(Window {
                from: DateTime::<Utc>::MIN_UTC,
                to: None,
            }),
        }
        out.extend(self.key_windows().iter().map(|k| Window {
            from: k.from,
            to: k.to,
        }));
        out
    }

    /// Whether capture is off now for a reason other than keys: a pause without its end, or a
    /// refusal or lapse. (A key window is not: the audio must still reach the tone detector for it
    /// to see the key end.)
    pub fn capture_off(&self) -> bool {
        self.pauses.iter().any(|p| p.to.is_none())
            || matches!(self.consent, Consent::Lapsed { .. } | Consent::Refused)
    }

    /// The DTMF handling in force: the policy's, or `pci.dtmf` until the policy is known.
    pub fn dtmf(&self) -> DtmfPolicy {
        self.policy.as_ref().map_or(self.timing.dtmf, |p| p.dtmf)
    }

    /// The windows keys cost capture so far, in time order.
    pub fn key_windows(&self) -> Vec<KeyWindow> {
        let guard = self.timing.guard.to_std().unwrap_or_default();
        key_windows(&self.dtmf(), guard, &self.keys)
    }

    /// A key went down at `from` (a tone's onset: the earliest time its first sample could have
    /// been spoken): capture is off around it until [`Lifecycle::key_up`].
    pub fn key_down(&mut self, from: DateTime<Utc>) -> KeyDown {
        self.keys.push(Keypress {
            from,
            to: None,
            source: KeySource::Tones,
        });
        KeyDown(self.keys.len() - 1)
    }

    /// The key went up: its last sample arrived at `to`. (Its arrival, not its media time: a
    /// media clock re-anchored later cannot move the key's audio out of its window.)
    pub fn key_up(&mut self, key: KeyDown, to: DateTime<Utc>) {
        if let Some(k) = self.keys.get_mut(key.0) {
            k.to = Some(to.max(k.from));
        }
    }

    /// The platform signalled a key (AudioSocket DTMF, Twilio `dtmf`, RFC 4733) that arrived at
    /// `arrival`: placed there, and widened as the policy says.
    pub fn key_signalled(&mut self, arrival: DateTime<Utc>) {
        self.keys.push(Keypress {
            from: arrival,
            to: Some(arrival),
            source: KeySource::Signalled,
        });
    }

    /// Whether a payment pause is on at `t` (keys found outside one are the sign of a pause the
    /// agent or integration missed).
    pub fn payment_paused_at(&self, t: DateTime<Utc>) -> bool {
        self.pauses
            .iter()
            .any(|p| p.kind == PauseKind::Payment && p.covers(t))
    }

    /// Whether audio spoken and received at instant `t` may be kept.
    pub fn captures(&self, t: DateTime<Utc>) -> bool {
        let b = Bounds {
            earliest: t,
            arrival: t,
        };
        !self.windows().iter().any(|w| b.overlaps(w))
    }

    /// Splits the audio span `[from, to)` into the parts that may be kept (`true`) and those that
    /// must be dropped on arrival (`false`), in order.
    pub fn classify(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>, bool)> {
        let mut cuts: Vec<DateTime<Utc>> = vec![from, to];
        for w in self.windows() {
            cuts.push(w.from);
            cuts.extend(w.to);
        }
        if let Consent::Lapsed { since } = self.consent {
            cuts.push(since);
        }
        cuts.retain(|c| *c >= from && *c <= to);
        cuts.sort();
        cuts.dedup();
        let mut out: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> = Vec::new();
        for w in cuts.windows(2) {
            let keep = self.captures(w[0]);
            match out.last_mut() {
                Some(last) if last.2 == keep => last.1 = w[1],
                _ => out.push((w[0], w[1], keep)),
            }
        }
        out
    }

    /// Applies an event that arrived at `arrival`. Events that are not about the recording's
    /// lifecycle (call.started's metadata, complaints) return no effects.
    pub fn apply(
        &mut self,
        event: &EventKind,
        at: DateTime<Utc>,
        arrival: DateTime<Utc>,
    ) -> Result<Vec<Effect>, Refusal> {
        let name = event.name();
        if self.consent == Consent::Refused
            && !matches!(event, EventKind::CallEnded | EventKind::ConsentRefused)
            && is_capture_event(event)
        {
            return Err(Refusal::Refused(name));
        }
        let instant = super::status::pause_instant(at, arrival, self.timing.guard);
        match event {
            EventKind::CallStarted { .. }
            | EventKind::ComplaintOpened { .. }
            | EventKind::ComplaintResolved { .. } => Ok(Vec::new()),
            EventKind::CallEnded => Ok(self.end(at.min(arrival))),
            EventKind::ConsentRefused => Ok(self.refuse(at, arrival)),
            EventKind::ConsentGiven => self.give_consent(at, arrival),
            EventKind::PaymentStarted => self.pause(PauseKind::Payment, instant, at, arrival),
            EventKind::RecordingPaused { .. } => self.pause(PauseKind::Agent, instant, at, arrival),
            EventKind::PaymentEnded => self.resume(PauseKind::Payment, at, arrival),
            EventKind::RecordingResumed { .. } => self.resume(PauseKind::Agent, at, arrival),
        }
    }

    fn end(&mut self, end: DateTime<Utc>) -> Vec<Effect> {
        if self.ended.is_some() {
            return vec![note(
                "call.ended.repeated",
                serde_json::json!({ "at": ts(end) }),
            )];
        }
        // the end of a call never cuts audio that arrived before its stream closed: the recorder
        // keeps what the stream still delivers and closes it
        self.ended = Some(end);
        vec![note("call.ended", serde_json::json!({ "at": ts(end) }))]
    }

    fn refuse(&mut self, at: DateTime<Utc>, arrival: DateTime<Utc>) -> Vec<Effect> {
        if self.consent == Consent::Refused {
            return Vec::new();
        }
        self.consent = Consent::Refused;
        vec![
            Effect::DestroyAll,
            note(
                "consent.refused",
                serde_json::json!({ "at": ts(at), "arrived": ts(arrival) }),
            ),
        ]
    }

    fn give_consent(
        &mut self,
        at: DateTime<Utc>,
        arrival: DateTime<Utc>,
    ) -> Result<Vec<Effect>, Refusal> {
        if let Some(end) = self.ended
            && arrival > end + self.timing.window()
        {
            return Err(Refusal::CallEnded(end, "consent.given"));
        }
        let (from, held) = match self.consent {
            // consent in time keeps everything held while waiting
            Consent::Awaiting { .. } => (DateTime::<Utc>::MIN_UTC, true),
            // consent after the wait lapsed captures from its arrival, never earlier
            Consent::Lapsed { .. } => (arrival, false),
            // implied consent (or consent before the policy is known) changes nothing
            Consent::Implied | Consent::Given { .. } => {
                return Ok(vec![note(
                    "consent.given",
                    serde_json::json!({ "at": ts(at), "effect": "none" }),
                )]);
            }
            Consent::Refused => return Err(Refusal::Refused("consent.given")),
        };
        self.consent = Consent::Given { from };
        Ok(vec![note(
            "consent.given",
            serde_json::json!({
                "at": ts(at), "arrived": ts(arrival), "keeps_held_audio": held,
                "from": if held { serde_json::Value::Null } else { ts(from).into() },
            }),
        )])
    }

    fn pause(
        &mut self,
        kind: PauseKind,
        instant: DateTime<Utc>,
        at: DateTime<Utc>,
        arrival: DateTime<Utc>,
    ) -> Result<Vec<Effect>, Refusal> {
        let name = match kind {
            PauseKind::Payment => "payment.started",
            PauseKind::Agent => "recording.paused",
        };
        if let Some(end) = self.ended
            && instant >= end
        {
            return Err(Refusal::CallEnded(end, name));
        }
        if let Some(open) = self
            .pauses
            .iter_mut()
            .find(|p| p.kind == kind && p.to.is_none())
        {
            if instant < open.from {
                // a start for an earlier pause, overtaken by a later one (webhooks come in any
                // order): the pause on now reaches back to it, so its audio is dropped too
                let was = open.from;
                open.from = instant;
                return Ok(vec![
                    Effect::DropFrom(instant),
                    note(
                        "pause.extended",
                        serde_json::json!({
                            "kind": kind.as_str(), "from": ts(instant), "was": ts(was),
                            "event_at": ts(at), "arrived": ts(arrival),
                        }),
                    ),
                ]);
            }
            return Ok(vec![note(
                "pause.repeated",
                serde_json::json!({ "kind": kind.as_str(), "at": ts(at) }),
            )]);
        }
        // a payment.ended that came first and is later than this start closes the pause at once:
        // everything from the pause instant to now is dropped, and capture resumes from now
        let to = match (kind, self.early_payment_end.take()) {
            (PauseKind::Payment, Some((end_at, _))) if end_at > at => Some(arrival.max(instant)),
            (_, early) => {
                self.early_payment_end = early;
                None
            }
        };
        self.pauses.push(Pause {
            kind,
            from: instant,
            to,
        });
        let late_ms = (arrival - at).num_milliseconds().max(0);
        let mut effects = vec![
            Effect::DropFrom(instant),
            note(
                "pause",
                serde_json::json!({
                    "kind": kind.as_str(), "from": ts(instant), "event_at": ts(at),
                    "arrived": ts(arrival), "late_ms": late_ms,
                }),
            ),
        ];
        if let Some(to) = to {
            effects.push(note(
                "resume",
                serde_json::json!({ "kind": kind.as_str(), "at": ts(to), "cause": "payment.ended arrived before payment.started" }),
            ));
        }
        Ok(effects)
    }

    fn resume(
        &mut self,
        kind: PauseKind,
        at: DateTime<Utc>,
        arrival: DateTime<Utc>,
    ) -> Result<Vec<Effect>, Refusal> {
        let name = match kind {
            PauseKind::Payment => "payment.ended",
            PauseKind::Agent => "recording.resumed",
        };
        let Some(pause) = self
            .pauses
            .iter_mut()
            .rev()
            .find(|p| p.kind == kind && p.to.is_none())
        else {
            if kind == PauseKind::Payment {
                self.early_payment_end = Some((at, arrival));
            }
            return Ok(vec![note(
                "resume.unmatched",
                serde_json::json!({ "kind": kind.as_str(), "at": ts(at) }),
            )]);
        };
        if let Some(end) = self.ended
            && arrival >= end
        {
            // the pause lasts to the end of the call: nothing to resume
            return Err(Refusal::CallEnded(end, name));
        }
        // never from an earlier timestamp: capture resumes at the arrival
        let to = arrival.max(pause.from);
        pause.to = Some(to);
        Ok(vec![note(
            "resume",
            serde_json::json!({ "kind": kind.as_str(), "at": ts(to), "event_at": ts(at) }),
        )])
    }

    /// Restores a pause known before a restart (from the recording's ledger).
    pub fn restore_pause(&mut self, kind: PauseKind, from: DateTime<Utc>) {
        match self
            .pauses
            .iter_mut()
            .find(|p| p.kind == kind && p.to.is_none())
        {
            Some(open) => open.from = open.from.min(from),
            None => self.pauses.push(Pause {
                kind,
                from,
                to: None,
            }),
        }
    }

    /// Restores the end of a pause known before a restart.
    pub fn restore_resume(&mut self, kind: PauseKind, at: DateTime<Utc>) {
        if let Some(p) = self
            .pauses
            .iter_mut()
            .rev()
            .find(|p| p.kind == kind && p.to.is_none())
        {
            p.to = Some(at.max(p.from));
        }
    }

    /// Restores consent given before a restart (the held audio of then is gone with the process).
    pub fn restore_consent(&mut self) {
        if matches!(
            self.consent,
            Consent::Awaiting { .. } | Consent::Lapsed { .. }
        ) {
            self.consent = Consent::Given {
                from: DateTime::<Utc>::MIN_UTC,
            };
        }
    }

    /// Time passes: explicit consent may lapse and a payment pause may reach `max_pause`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Consent::Awaiting { deadline } = self.consent
            && now >= deadline
        {
            self.consent = Consent::Lapsed { since: deadline };
            effects.push(Effect::DiscardHeld);
            effects.push(note(
                "consent.lapsed",
                serde_json::json!({ "at": ts(deadline) }),
            ));
        }
        let max = self
            .policy
            .as_ref()
            .and_then(|p| p.max_pause)
            .and_then(|d| Duration::from_std(d).ok());
        if let Some(max) = max {
            for p in &mut self.pauses {
                if p.kind == PauseKind::Payment && p.to.is_none() && now >= p.from + max {
                    let to = now.max(p.from);
                    p.to = Some(to);
                    effects.push(note(
                        "resume",
                        serde_json::json!({ "kind": "payment", "at": ts(to), "cause": "max_pause" }),
                    ));
                }
            }
        }
        effects
    }

    /// How far the look-back buffer may be committed at `now`.
    pub fn horizon(&self, now: DateTime<Utc>) -> Horizon {
        match self.consent {
            Consent::Refused => return Horizon::Hold,
            Consent::Awaiting { .. } => return Horizon::Hold,
            _ => {}
        }
        if self.policy.is_none() {
            return Horizon::Hold;
        }
        let window = self.timing.window();
        match self.ended {
            Some(end) if now >= end + window => Horizon::All,
            _ => Horizon::Until(now - window),
        }
    }
}

fn is_capture_event(event: &EventKind) -> bool {
    matches!(
        event,
        EventKind::ConsentGiven
            | EventKind::PaymentStarted
            | EventKind::PaymentEnded
            | EventKind::RecordingPaused { .. }
            | EventKind::RecordingResumed { .. }
    )
}

#[cfg(test)]
mod tests;
