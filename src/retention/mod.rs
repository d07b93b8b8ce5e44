//! Retention: the expiry worker, complaint holds, and the data-subject remedies that delete or hide
//! audio (erasure, restriction, excision), with a deletion receipt for every deletion.
//!
//! It owns *when* and *how* stored audio goes: [`Retention::sweep`] deletes what expired, in batches,
//! through a journal of pending deletions in the catalog, so a sweep stopped half-way is finished by
//! the next one; [`worker`] runs sweeps on an interval and on demand and reports their status;
//! [`holds`] places and releases complaint holds (for the API and for `complaint.*` events alike);
//! [`plan`] recomputes expiry after a policy change. It must not touch `object_store` or keys except
//! through the [vault](crate::vault) and the [catalog](crate::catalog), and must not decide HTTP
//! status codes (that is [`api`](crate::api)'s).
//!
//! How a recording is destroyed, whatever the cause (expiry, erasure, refusal, excision of a
//! segment), in this order (module `destroy`): a pending row is stored (the commit point; a held
//! recording is refused here, except for an excision), its objects are deleted, then in one catalog
//! transaction its data keys are shredded, the caller's sealed number and lookup tag are forgotten,
//! its status becomes what the [status machine](crate::domain::status) says, and the receipt
//! (object keys, their SHA-256, policy, time) goes to its ledger and to the audit chain. A refusal
//! ([`Retention::begin_refusal`]) never destroys past a hold: the recording becomes `refusal_held`, restricted, and
//! goes at the first sweep after its last hold is released.
//!
//! Architecture invariant: a recording under an active hold is never deleted; erasure of one is
//! refused naming the holds. Holds do not change `expires_at`: releasing the last one returns the
//! recording to its normal expiry, and the next sweep deletes it if that date has passed.

mod destroy;
pub mod holds;
pub mod plan;
mod refusal;
mod remedies;
mod sweep;
pub mod worker;

use std::sync::Arc;

use object_store::ObjectStore;

use crate::catalog::{Catalog, CatalogError, RecordingStatus};
use crate::config::Config;
use crate::domain::{Clock, RecordingId, SegmentNo, TransitionError};

pub use refusal::RefusalStart;
pub use remedies::{ExciseReceipt, Receipt};
pub use sweep::{SweepOptions, SweepReport};
pub use worker::{RetentionHandle, WorkerStatus};

/// The actor of what the worker does on its own.
pub const SYSTEM_ACTOR: &str = "system:retention";

/// Why a retention operation failed, with variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No such recording.
    #[error("recording {0} not found")]
    UnknownRecording(RecordingId),
    /// No such segment.
    #[error("segment {segment} of recording {recording} not found")]
    UnknownSegment {
        /// The recording.
        recording: RecordingId,
        /// The segment.
        segment: SegmentNo,
    },
    /// The recording is under active holds and cannot be deleted.
    #[error("recording {recording} is held by {}", references.join(", "))]
    Held {
        /// The recording.
        recording: RecordingId,
        /// The references of the holds.
        references: Vec<String>,
    },
    /// The recording has no audio to act on: it is live, or its audio is destroyed already.
    #[error("recording {recording} is {status}")]
    NoAudio {
        /// The recording.
        recording: RecordingId,
        /// Its status.
        status: RecordingStatus,
    },
    /// A segment is not stored (still spooled, excised or deleted already).
    #[error("segment {segment} of recording {recording} is {status}")]
    SegmentNotStored {
        /// The recording.
        recording: RecordingId,
        /// The segment.
        segment: SegmentNo,
        /// Its status.
        status: crate::catalog::SegmentStatus,
    },
    /// A segment is still waiting for upload; try again shortly.
    #[error("recording {0} has segments waiting for upload")]
    NotUploaded(RecordingId),
    /// No hold with this reference.
    #[error("hold {0} not found")]
    UnknownHold(String),
    /// The hold was released already.
    #[error("hold {0} is released")]
    HoldReleased(String),
    /// A reason is required and none was given.
    #[error("a reason is required")]
    ReasonRequired,
    /// The status machine refuses the change from the recording's status.
    #[error("recording {recording}: {error}")]
    Transition {
        /// The recording.
        recording: RecordingId,
        /// Why.
        error: TransitionError,
    },
    /// Another destruction of the recording (an excision, a refusal) is pending; it finishes first.
    #[error("recording {0} has a deletion in progress")]
    InProgress(RecordingId),
    /// The recording's status changed while the change was being made; read it again.
    #[error("recording {0} changed meanwhile")]
    Changed(RecordingId),
}

/// The retention operations over one catalog and object store: a cheap `Clone` of handles.
#[derive(Debug, Clone)]
pub struct Retention {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
}

impl Retention {
    /// Retention over `catalog` and `store`, with `config`'s policies and batch size.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            catalog,
            store,
            clock,
            config,
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
}

/// A reason given by a person: trimmed, and required.
pub fn required_reason(reason: Option<&str>) -> Result<String, RetentionError> {
    reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or(RetentionError::ReasonRequired)
}

/// Whether a recording in this status has audio that retention deletes at its expiry (the status
/// machine's `expire` accepts it).
pub fn has_audio(status: RecordingStatus) -> bool {
    status.expire().is_ok()
}
