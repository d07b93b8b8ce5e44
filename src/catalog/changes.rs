//! The narrow writes to a recording: each writes only the columns its change is about, so two
//! writers (the call task sealing, a compliance user restricting) never undo each other.
//!
//! Which status follows which is the [status machine](crate::domain::status)'s to say; these
//! carry its answer, and the catalog stores it compare-and-set on the status it started from.

use chrono::{DateTime, Utc};

use super::RecordingStatus;
use crate::domain::{Codec, RecordingId};

/// A status change, stored only while the recording is still in `from`
/// ([`Catalog::transition_recording`](super::Catalog::transition_recording)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The recording.
    pub id: RecordingId,
    /// The status the change starts from; nothing is written if the recording is no longer in it.
    pub from: RecordingStatus,
    /// The status it enters.
    pub to: RecordingStatus,
    /// When (the recording's `updated_at`).
    pub at: DateTime<Utc>,
    /// The end of the call, written when set (a seal); kept when `None`.
    pub ended_at: Option<DateTime<Utc>>,
    /// The expiry, written when set (a seal, a refusal kept under a hold); kept when `None`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Restricts the recording as well (a refusal kept under a hold). `false` leaves the flag as
    /// it is: no status change lifts a restriction.
    pub restrict: bool,
}

impl StatusChange {
    /// A change of status alone.
    pub fn new(
        id: RecordingId,
        from: RecordingStatus,
        to: RecordingStatus,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            from,
            to,
            at,
            ended_at: None,
            expires_at: None,
            restrict: false,
        }
    }
}

/// What a live call learns about itself (`call.started`, the media stream's format), written only
/// while the recording is still in `expected`
/// ([`Catalog::update_call_details`](super::Catalog::update_call_details)): never its status, its
/// end, its expiry or its restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDetailsUpdate {
    /// The recording.
    pub id: RecordingId,
    /// The status the call task knows it in; nothing is written if it changed.
    pub expected: RecordingStatus,
    /// The dialled line.
    pub line: Option<String>,
    /// The queue.
    pub queue: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// The caller's lookup tag.
    pub caller_tag: Option<[u8; 32]>,
    /// The caller's number, sealed.
    pub caller_sealed: Option<Vec<u8>>,
    /// The policy that governs it.
    pub policy: String,
    /// The audio codec.
    pub codec: Codec,
    /// Samples a second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
    /// When the call started.
    pub started_at: DateTime<Utc>,
    /// When (the recording's `updated_at`).
    pub at: DateTime<Utc>,
}

impl CallDetailsUpdate {
    /// The call details of `row`, to be written while it is in `row.status`.
    pub fn of(row: &super::RecordingRow, at: DateTime<Utc>) -> Self {
        Self {
            id: row.id,
            expected: row.status,
            line: row.line.clone(),
            queue: row.queue.clone(),
            agent: row.agent.clone(),
            caller_tag: row.caller_tag,
            caller_sealed: row.caller_sealed.clone(),
            policy: row.policy.clone(),
            codec: row.codec,
            sample_rate: row.sample_rate,
            channels: row.channels,
            started_at: row.started_at,
            at,
        }
    }
}
