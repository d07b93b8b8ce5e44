//! Planning retention: exactly what the next sweep deletes (by stored expiry, as the sweep goes),
//! and separately what re-applying today's policies or a proposed change would change
//! ([`Retention::plan`], changes nothing); and recomputing stored expiry after a policy change
//! ([`Retention::apply`], one audit entry per change).
//!
//! A recording keeps the policy it was recorded under; its expiry is its end plus that policy's
//! period. A recording whose policy is no longer configured falls back to the default policy.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Retention, RetentionError, has_audio};
use crate::audit::NewAuditEntry;
use crate::catalog::{NewLedgerEntry, RecordingRow, RecordingStatus, SegmentStatus};
use crate::domain::status::expires_at;
use crate::domain::{Period, RecordingId};

/// Recordings read per catalog page.
const PAGE: usize = 500;

/// A proposed period for one policy.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The policy's name.
    pub policy: String,
    /// Its proposed retention period.
    pub period: Period,
}

/// One recording in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// The recording.
    pub recording_id: RecordingId,
    /// The policy it would be governed by.
    pub policy: String,
    /// Its stored expiry: what the sweep goes by.
    pub current: Option<DateTime<Utc>>,
    /// Its expiry if the policies (with the proposal) were re-applied.
    pub planned: Option<DateTime<Utc>>,
    /// Whether an active hold covers it now.
    pub held: bool,
    /// Whether the next sweep deletes it: by its stored expiry, as the sweep selects (not held,
    /// nothing waiting for upload), or because a deletion of it is pending.
    pub due: bool,
}

impl PlanEntry {
    /// Whether re-applying the policies changes its expiry.
    pub fn changed(&self) -> bool {
        self.current != self.planned
    }
}

impl std::fmt::Display for PlanEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at =
            |t: Option<DateTime<Utc>>| t.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
        write!(
            f,
            "{}\t{}\t{}\t{}{}{}",
            self.recording_id,
            self.policy,
            at(self.current),
            if self.changed() {
                format!("-> {} if re-applied", at(self.planned))
            } else {
                "unchanged".to_owned()
            },
            if self.due {
                "\tdeleted at the next sweep"
            } else {
                ""
            },
            if self.held { "\theld" } else { "" }
        )
    }
}

/// What a plan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Recordings with audio (or kept under a hold after a refusal), considered.
    pub recordings: u64,
    /// What the next sweep deletes, exactly: by stored expiry, not held, nothing waiting for
    /// upload; and deletions an earlier run left pending.
    pub due_now: u64,
    /// Of those, the deletions (and excisions) an earlier run left pending.
    pub pending: u64,
    /// Held past their stored expiry (kept until their holds are released).
    pub held_past_expiry: u64,
    /// Re-applying the policies (with the proposal) would change this many expiries ...
    pub changed: u64,
    /// ... after which this many would be past expiry and not held.
    pub due_if_applied: u64,
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recordings with audio; the next sweep deletes {} ({} of them pending from an earlier run); {} held past expiry\n\
             re-applying the policies would change the expiry of {}, after which {} would be past expiry and not held",
            self.recordings,
            self.due_now,
            self.pending,
            self.held_past_expiry,
            self.changed,
            self.due_if_applied
        )
    }
}

impl Retention {
    /// The policy name and expiry `row` has under the configuration, with `proposal` applied.
    fn planned(
        &self,
        row: &RecordingRow,
        proposal: Option<&Proposal>,
    ) -> (String, Option<DateTime<Utc>>) {
        let policy = self
            .config
            .policy(&row.policy)
            .unwrap_or_else(|| self.config.policy_for(None, None));
        let period = match proposal {
            Some(p) if p.policy == policy.name => p.period,
            _ => policy.retention,
        };
        let expiry = row.ended_at.and_then(|end| expires_at(end, period));
        (policy.name, expiry)
    }

    /// Whether the sweep at `now` selects `row` by its stored expiry: the same rules as
    /// [`Catalog::expired_recordings`](crate::catalog::Catalog::expired_recordings).
    async fn sweep_selects(
        &self,
        row: &RecordingRow,
        now: DateTime<Utc>,
        held: bool,
    ) -> Result<bool, RetentionError> {
        let eligible = has_audio(row.status) || row.status == RecordingStatus::RefusalHeld;
        if !eligible || held || row.expires_at.is_none_or(|t| t > now) {
            return Ok(false);
        }
        let segments = self.catalog.segments(row.id).await?;
        Ok(!segments.iter().any(|s| s.status == SegmentStatus::Spooled))
    }

    /// Lists, without changing anything, each recording with audio (or kept under a hold after a
    /// refusal): whether the next sweep deletes it (by its stored expiry, as the sweep goes, or a
    /// deletion pending), and separately its expiry were the policies (or `proposal`) re-applied;
    /// in id order, through `each`; returns the totals.
    pub async fn plan(
        &self,
        proposal: Option<&Proposal>,
        mut each: impl FnMut(&PlanEntry),
    ) -> Result<PlanSummary, RetentionError> {
        let now = self.clock.now();
        let mut summary = PlanSummary::default();
        let pending: HashSet<RecordingId> = self
            .catalog
            .pending_deletions(usize::MAX >> 1)
            .await?
            .into_iter()
            .map(|p| p.recording_id)
            .collect();
        let mut after = None;
        loop {
            let page = self.catalog.recordings_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for row in page.iter() {
                let is_pending = pending.contains(&row.id);
                let kept = has_audio(row.status) || row.status == RecordingStatus::RefusalHeld;
                if !kept && !is_pending {
                    continue;
                }
                let (policy, planned) = self.planned(row, proposal);
                let held = !self.catalog.holds_for_recording(row.id).await?.is_empty();
                let due = is_pending || self.sweep_selects(row, now, held).await?;
                let entry = PlanEntry {
                    recording_id: row.id,
                    policy,
                    current: row.expires_at,
                    planned,
                    held,
                    due,
                };
                summary.recordings += 1;
                summary.due_now += u64::from(due);
                summary.pending += u64::from(is_pending);
                let expired = row.expires_at.is_some_and(|t| t <= now);
                summary.held_past_expiry += u64::from(expired && held);
                if has_audio(row.status) {
                    summary.changed += u64::from(entry.changed());
                    let planned_expired = planned.is_some_and(|t| t <= now);
                    summary.due_if_applied += u64::from(planned_expired && !held);
                }
                each(&entry);
            }
        }
        Ok(summary)
    }

    /// Recomputes the stored expiry of every recording with audio under today's policies, with a
    /// ledger and an audit entry for each one that changes (a narrow write of the policy and the
    /// expiry, only while the recording keeps its status). Returns how many changed.
    pub async fn apply(&self, actor: &str) -> Result<u64, RetentionError> {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = self.catalog.recordings_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for row in page.into_iter().filter(|r| has_audio(r.status)) {
                let (policy, planned) = self.planned(&row, None);
                if planned == row.expires_at && policy == row.policy {
                    continue;
                }
                let now = self.clock.now();
                let details = json!({
                    "policy_before": row.policy,
                    "policy": policy,
                    "expires_at_before": row.expires_at.map(|t| t.to_rfc3339()),
                    "expires_at": planned.map(|t| t.to_rfc3339()),
                });
                if !self
                    .catalog
                    .set_retention(row.id, row.status, &policy, planned, now)
                    .await?
                {
                    // its status changed meanwhile (deleted, say): nothing to recompute
                    continue;
                }
                self.catalog
                    .append_ledger(&NewLedgerEntry {
                        recording_id: row.id,
                        at: now,
                        kind: "expiry.recomputed".to_owned(),
                        actor: actor.to_owned(),
                        reason: Some("retention policy changed".to_owned()),
                        details: details.to_string(),
                    })
                    .await?;
                self.catalog
                    .append_audit(
                        NewAuditEntry::new(now, actor, "retention.apply", row.id.to_string())
                            .reason("retention policy changed")
                            .details(&details),
                    )
                    .await?;
                changed += 1;
            }
        }
        Ok(changed)
    }
}
