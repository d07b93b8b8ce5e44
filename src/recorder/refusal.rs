//! A caller's refusal, during the call or after it, through the one destruction path: the domain
//! decides ([`refusal_decision`]), the retention journal commits to it first
//! ([`Retention::begin_refusal`](crate::retention::Retention::begin_refusal)), then the recorder
//! drops what it holds (the open segment, the spool, queued uploads), and retention deletes the
//! objects, the keys and the caller's number and tag, and writes the receipt. A crash anywhere after
//! the commit is finished by the next sweep; the receipt (and its `recording.destroyed` audit entry)
//! exists only once destruction is complete.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Deps, RecorderError};
use crate::catalog::PendingDeletion;
use crate::domain::RecordingId;
use crate::domain::status::{RefusalDecision, RefusalSource, refusal_decision};
use crate::retention::{RefusalStart, RetentionError};

/// The actor of a refusal: the telephony platform that sent `consent.refused`.
const ACTOR: &str = "telephony";

/// How a refusal began.
pub(super) enum Begun {
    /// Committed to destroying: drop what is held locally, then [`destroy`] this.
    Destroy(PendingDeletion),
    /// A hold covers the recording: it is `refusal_held` now; capture stops and what is committed
    /// stays (restricted).
    Held,
    /// Later than `consent.late_refusal`: ledgered and audited as an erasure request, nothing more.
    Late,
}

/// Decides and begins a refusal of `recording` that arrived at `arrival`.
pub(super) async fn begin(
    deps: &Deps,
    recording: RecordingId,
    source: RefusalSource,
    at: DateTime<Utc>,
    arrival: DateTime<Utc>,
) -> Result<Begun, RecorderError> {
    let late = deps.config.consent.late_refusal();
    // lateness first: holds do not matter to a refusal that is not applied
    if let (RefusalDecision::Late, RefusalSource::AfterCall { ended }) =
        (refusal_decision(source, arrival, late, false), source)
    {
        deps.retention
            .refused_late(recording, ACTOR, at, arrival, ended)
            .await
            .map_err(retention_error)?;
        return Ok(Begun::Late);
    }
    match deps
        .retention
        .begin_refusal(recording, ACTOR, arrival)
        .await
        .map_err(retention_error)?
    {
        RefusalStart::Destroy(p) => Ok(Begun::Destroy(p)),
        RefusalStart::Held { .. } => Ok(Begun::Held),
    }
}

/// Finishes a begun refusal: drops the spool files and queued uploads (and deletes what the store
/// holds), then lets retention delete what is left, shred the keys, forget the caller and write
/// the receipt. An error leaves the pending row: the next sweep finishes it.
pub(super) async fn destroy(
    deps: &Deps,
    recording: RecordingId,
    pending: PendingDeletion,
) -> Result<(), RecorderError> {
    let report = deps.persistence.destroy_recording(recording).await?;
    deps.retention
        .finish_destruction(pending)
        .await
        .map_err(retention_error)?;
    info!(recording_id = %recording, segments = report.segments, spool_files = report.spool_files, "consent refused: recording destroyed");
    Ok(())
}

fn retention_error(e: RetentionError) -> RecorderError {
    match e {
        RetentionError::Catalog(e) => RecorderError::Catalog(e),
        other => RecorderError::Retention(Box::new(other)),
    }
}
