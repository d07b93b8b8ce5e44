//! The one internal vocabulary of call events. Every protocol adapter in `ingest` turns its wire
//! format into a [`CallEvent`]; nothing past `ingest` knows a protocol.

use chrono::{DateTime, Utc};

use super::{CallId, Codec};

/// Something the telephony platform says happened to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// The platform's unique id for this event; a repeated id is acknowledged and not applied twice.
    pub id: String,
    /// The call it is about.
    pub call_id: CallId,
    /// When it happened, by the platform's clock.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The call was answered: who called which line, and who took it.
    CallStarted {
        /// The dialled number (E.164), which selects the policy.
        line: Option<String>,
        /// The caller's number as the platform gave it (normalised later).
        caller: Option<String>,
        /// The agent who took the call.
        agent: Option<String>,
        /// The queue the call came through, which may select the policy.
        queue: Option<String>,
    },
    /// The call ended.
    CallEnded,
    /// The caller consented to recording.
    ConsentGiven,
    /// The caller refused recording: everything captured is destroyed.
    ConsentRefused,
    /// A card payment began: capture pauses.
    PaymentStarted,
    /// The card payment ended: capture resumes from this event's arrival.
    PaymentEnded,
    /// The agent paused recording.
    RecordingPaused {
        /// Why, as the agent gave it.
        reason: Option<String>,
    },
    /// The agent resumed recording.
    RecordingResumed {
        /// Why, as the agent gave it.
        reason: Option<String>,
    },
    /// A complaint was opened: its recordings are held.
    ComplaintOpened {
        /// The complaint's external reference.
        reference: String,
        /// Calls it covers, besides the event's own call.
        call_ids: Vec<CallId>,
        /// A caller whose recordings it covers.
        caller: Option<String>,
    },
    /// A complaint was resolved: its hold is released.
    ComplaintResolved {
        /// The complaint's external reference.
        reference: String,
    },
}

impl EventKind {
    /// The event's type name on the wire of the native protocol.
    pub const fn name(&self) -> &'static str {
        match self {
            EventKind::CallStarted { .. } => "call.started",
            EventKind::CallEnded => "call.ended",
            EventKind::ConsentGiven => "consent.given",
            EventKind::ConsentRefused => "consent.refused",
            EventKind::PaymentStarted => "payment.started",
            EventKind::PaymentEnded => "payment.ended",
            EventKind::RecordingPaused { .. } => "recording.paused",
            EventKind::RecordingResumed { .. } => "recording.resumed",
            EventKind::ComplaintOpened { .. } => "complaint.opened",
            EventKind::ComplaintResolved { .. } => "complaint.resolved",
        }
    }
}

/// The format of a call's audio stream, as its first message declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFormat {
    /// The codec of every audio frame.
    pub codec: Codec,
    /// Samples per second per channel (8000 for G.711; 8000 to 48000 for L16).
    pub sample_rate: u32,
    /// 1 (mixed) or 2 (caller then agent, interleaved sample by sample).
    pub channels: u8,
}

impl MediaFormat {
    /// Bytes of one sample frame (one sample of every channel).
    pub const fn frame_bytes(&self) -> u32 {
        self.codec.bytes_per_sample() * self.channels as u32
    }

    /// Bytes of one second of audio.
    pub const fn bytes_per_second(&self) -> u64 {
        self.frame_bytes() as u64 * self.sample_rate as u64
    }
}
