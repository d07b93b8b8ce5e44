//! Planning retention: what would expire, and when, under today's policies or a proposed change
//! ([`Retention::plan`], changes nothing), and recomputing stored expiry after a policy change
//! ([`Retention::apply`], one audit entry per change).
//!
//! A recording keeps the policy it was recorded under; its expiry is its end plus that policy's
//! period. A recording whose policy is no longer configured falls back to the default policy.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Retention, RetentionError, has_audio};
use crate::audit::NewAuditEntry;
use crate::catalog::{NewLedgerEntry, RecordingRow};
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
    /// Its stored expiry.
    pub current: Option<DateTime<Utc>>,
    /// Its expiry under the plan.
    pub planned: Option<DateTime<Utc>>,
    /// Whether an active hold covers it now.
    pub held: bool,
}

impl PlanEntry {
    /// Whether the plan changes its expiry.
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
            "{}\t{}\t{}\t{}{}",
            self.recording_id,
            self.policy,
            at(self.current),
            if self.changed() {
                format!("-> {}", at(self.planned))
            } else {
                "unchanged".to_owned()
            },
            if self.held { "\theld" } else { "" }
        )
    }
}

/// What a plan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Recordings with audio, considered.
    pub recordings: u64,
    /// Of those, how many would get another expiry.
    pub changed: u64,
    /// Of those, how many the next sweep would delete (expired under the plan, not held).
    pub due_now: u64,
    /// Of those, how many are held past their planned expiry.
    pub held_past_expiry: u64,
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recordings with audio; {} would change expiry; {} would be deleted at the next sweep; {} held past expiry",
            self.recordings, self.changed, self.due_now, self.held_past_expiry
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
        let expiry = row.ended_at.and_then(|end| period.after(end));
        (policy.name, expiry)
    }

    /// Lists, without changing anything, each recording with audio and its expiry under today's
    /// policies (or `proposal`), in id order, through `each`; returns the totals.
    pub async fn plan(
        &self,
        proposal: Option<&Proposal>,
        mut each: impl FnMut(&PlanEntry),
    ) -> Result<PlanSummary, RetentionError> {
        let now = self.clock.now();
        let mut summary = PlanSummary::default();
        let mut after = None;
        loop {
            let page = self.catalog.recordings_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for row in page.iter().filter(|r| has_audio(r.status)) {
                let (policy, planned) = self.planned(row, proposal);
                let held = !self.catalog.holds_for_recording(row.id).await?.is_empty();
                let entry = PlanEntry {
                    recording_id: row.id,
                    policy,
                    current: row.expires_at,
                    planned,
                    held,
                };
                summary.recordings += 1;
                summary.changed += u64::from(entry.changed());
                let expired = planned.is_some_and(|t| t <= now);
                summary.due_now += u64::from(expired && !held);
                summary.held_past_expiry += u64::from(expired && held);
                each(&entry);
            }
        }
        Ok(summary)
    }

    /// Recomputes the stored expiry of every recording with audio under today's policies, with a
    /// ledger and an audit entry for each one that changes. Returns how many changed.
    pub async fn apply(&self, actor: &str) -> Result<u64, RetentionError> {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = self.catalog.recordings_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for mut row in page.into_iter().filter(|r| has_audio(r.status)) {
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
                row.policy = policy;
                row.expires_at = planned;
                row.updated_at = now;
                self.catalog.update_recording(&row).await?;
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
