//! Complaint holds: placing one (or adding recordings to an active one) and releasing it. The API and
//! the `complaint.opened` / `complaint.resolved` events both come here, so the two paths cannot
//! drift apart.
//!
//! A hold never changes a recording's `expires_at`; the sweep skips held recordings, and erasure is
//! refused while one is held. Holds on a caller (every recording of a caller tag in a date range)
//! are stored and honoured by the catalog; placing them needs the caller's tag, which the API does
//! not compute yet.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::RetentionError;
use crate::audit::NewAuditEntry;
use crate::catalog::{Catalog, CatalogError, HoldRow, NewLedgerEntry};
use crate::domain::RecordingId;

/// A hold to place, or recordings to add to the active hold with the same reference.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The external reference, e.g. a complaint number.
    pub reference: String,
    /// Why it is placed.
    pub reason: String,
    /// Who places it (the token's actor, or `telephony`).
    pub actor: String,
    /// The recordings it covers.
    pub recordings: Vec<RecordingId>,
    /// A caller whose recordings it covers, those made later while it is open included.
    pub caller: Option<CallerHold>,
    /// How it was placed, for the audit entry (`api`, `complaint.opened`).
    pub via: &'static str,
}

/// A hold on every recording of one caller in a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerHold {
    /// The caller's keyed lookup tag (never the number).
    pub tag: [u8; 32],
    /// Recordings that started at or after this; `None` for all earlier ones.
    pub from: Option<DateTime<Utc>>,
    /// Recordings that started before this; `None` for all later ones, while the hold is open.
    pub to: Option<DateTime<Utc>>,
}

/// What placing a hold did.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The hold, as stored.
    pub hold: HoldRow,
    /// True if the hold is new; false if recordings were added to an active one.
    pub created: bool,
    /// The recordings now linked to it by this request.
    pub linked: Vec<RecordingId>,
}

/// Places a hold, or adds recordings to the active hold with the same reference. Every recording
/// must exist ([`RetentionError::UnknownRecording`] otherwise, and nothing is written). Each linked
/// recording gets a `hold` ledger entry; the hold gets one `hold.place` audit entry.
pub async fn place_hold(
    catalog: &Arc<dyn Catalog>,
    now: DateTime<Utc>,
    request: HoldRequest,
) -> Result<Placed, RetentionError> {
    for id in &request.recordings {
        if catalog.recording(*id).await?.is_none() {
            return Err(RetentionError::UnknownRecording(*id));
        }
    }
    let existing = catalog
        .hold(&request.reference)
        .await?
        .filter(HoldRow::is_active);
    let (hold, created) = match existing {
        Some(h) => (h, false),
        None => {
            let row = HoldRow {
                reference: request.reference.clone(),
                reason: request.reason.clone(),
                actor: request.actor.clone(),
                created_at: now,
                caller_tag: request.caller.map(|c| c.tag),
                from: request.caller.and_then(|c| c.from),
                to: request.caller.and_then(|c| c.to),
                released_at: None,
                released_by: None,
                release_reason: None,
            };
            match catalog.insert_hold(&row).await {
                Ok(()) => (row, true),
                // placed concurrently by another request: add to it
                Err(CatalogError::Conflict { .. }) => (
                    catalog
                        .hold(&request.reference)
                        .await?
                        .filter(HoldRow::is_active)
                        .ok_or_else(|| RetentionError::HoldReleased(request.reference.clone()))?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut linked = Vec::new();
    for id in &request.recordings {
        catalog.link_hold(&request.reference, *id).await?;
        catalog
            .append_ledger(&NewLedgerEntry {
                recording_id: *id,
                at: now,
                kind: "hold".to_owned(),
                actor: request.actor.clone(),
                reason: Some(request.reason.clone()),
                details: json!({ "reference": request.reference }).to_string(),
            })
            .await?;
        linked.push(*id);
    }
    let ids: Vec<String> = linked.iter().map(ToString::to_string).collect();
    catalog
        .append_audit(
            NewAuditEntry::new(now, &request.actor, "hold.place", &request.reference)
                .reason(&request.reason)
                .details(&json!({
                    "via": request.via, "created": created, "recordings": ids,
                    "on_caller": request.caller.is_some(),
                })),
        )
        .await?;
    metrics::counter!("callvault_holds_placed_total").increment(u64::from(created));
    Ok(Placed {
        hold,
        created,
        linked,
    })
}

/// Releases the active hold with this reference, with a `hold.release` audit entry. The recordings
/// it covered return to their normal expiry (unless another hold covers them).
pub async fn release_hold(
    catalog: &Arc<dyn Catalog>,
    now: DateTime<Utc>,
    reference: &str,
    actor: &str,
    reason: &str,
    via: &'static str,
) -> Result<HoldRow, RetentionError> {
    let released = match catalog
        .release_hold(reference, now, actor, Some(reason))
        .await
    {
        Ok(h) => h,
        Err(CatalogError::NotFound { .. }) => {
            return Err(RetentionError::UnknownHold(reference.to_owned()));
        }
        Err(CatalogError::Conflict { .. }) => {
            return Err(RetentionError::HoldReleased(reference.to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    catalog
        .append_audit(
            NewAuditEntry::new(now, actor, "hold.release", reference)
                .reason(reason)
                .details(&json!({ "via": via })),
        )
        .await?;
    metrics::counter!("callvault_holds_released_total").increment(1);
    Ok(released)
}
