//! The call's recording row, status and ledger: what `call.started` fixes, the narrow writes of
//! the call task (details compare-and-set on its status, transitions the
//! [status machine](crate::domain::status) gives, the seal), the caller's refusal through the one
//! destruction path, and ledger and audit entries kept and retried until the catalog takes them.
//! The audio path is the parent's.

use chrono::{DateTime, Utc};
use tracing::{error, warn};

use super::Call;
use crate::audit::NewAuditEntry;
use crate::catalog::{
    CallDetailsUpdate, NewLedgerEntry, PciReviewNote, RecordingStatus, StatusChange,
};
use crate::domain::CallerNumber;
use crate::domain::lifecycle::Note;
use crate::domain::status::{CallDetails, RefusalSource, expires_at};
use crate::recorder::RecorderError;

impl Call {
    /// Writes the end, the expiry and the final status the status machine gives (sealed, or
    /// quarantined when `bad` segments overlap a pause; a review or a refusal stays), compare-and-set;
    /// if another writer moved the status meanwhile, seals from there.
    pub(super) async fn seal(
        &mut self,
        ended: DateTime<Utc>,
        policy: &crate::domain::Policy,
        bad: &[usize],
    ) {
        for attempt in 0..2 {
            let from = self.recording.status;
            // a review the catalog did not take when the pause came is applied now
            let reviewed = if self.reviewed && from == RecordingStatus::Live {
                from.review()
            } else {
                Ok(from)
            };
            let to = reviewed.and_then(|s| {
                if bad.is_empty() {
                    s.seal()
                } else {
                    s.quarantine()
                }
            });
            let to = match to {
                Ok(to) => to,
                Err(e) => {
                    error!(call_id = %self.id, error = %e, "the recording cannot be sealed");
                    break;
                }
            };
            let expires_at = (!to.is_destroyed() && to != RecordingStatus::RefusalHeld)
                .then(|| expires_at(ended, policy.retention))
                .flatten();
            let change = StatusChange {
                ended_at: Some(ended),
                expires_at,
                ..StatusChange::new(self.recording.id, from, to, self.deps.clock.now())
            };
            match self.deps.catalog.transition_recording(&change).await {
                Ok(true) => {
                    self.recording.status = to;
                    self.recording.ended_at = Some(ended);
                    self.recording.expires_at = expires_at.or(self.recording.expires_at);
                    if to == RecordingStatus::Quarantined {
                        warn!(call_id = %self.id, segments = ?bad, "a segment overlaps a pause; recording quarantined");
                        metrics::counter!("callvault_quarantined_total").increment(1);
                        self.audit(
                            "recording.quarantined",
                            serde_json::json!({ "segments": bad }),
                        )
                        .await;
                    }
                    break;
                }
                // another writer moved it (a refusal's sweep, a late pause): seal from there
                Ok(false) if attempt == 0 => self.reload_status().await,
                Ok(false) => error!(call_id = %self.id, "the recording kept changing; not sealed"),
                Err(e) => {
                    error!(call_id = %self.id, error = %e, "saving the sealed recording failed");
                    break;
                }
            }
        }
    }

    /// Applies `call.started`'s details once. A repeat with the same details is acknowledged and
    /// changes nothing; one that differs is refused naming the fields (the first fixed the policy
    /// and the caller a subject-access search finds). The policy always follows the line and queue
    /// kept: if audio had to be committed under the default policy before this event came, the
    /// recording still takes its line's or queue's policy (its retention), and the ledger says so.
    pub(super) async fn call_started(
        &mut self,
        line: &Option<String>,
        caller: Option<&str>,
        agent: &Option<String>,
        queue: &Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), RecorderError> {
        // only the keyed tag and the sealed number are kept; a number that is not one is not kept
        // at all (and never logged)
        let number = match caller.map(str::parse::<CallerNumber>) {
            Some(Ok(number)) => Some(number),
            Some(Err(e)) => {
                warn!(call_id = %self.id, error = %e, "call.started caller is not a number; not kept");
                None
            }
            None => None,
        };
        let details = CallDetails {
            line: line.clone(),
            caller_tag: number.as_ref().map(|n| self.deps.callers.tag(n)),
            agent: agent.clone(),
            queue: queue.clone(),
        };
        if let Some(first) = &self.details {
            let fields = first.conflicts(&details);
            if fields.is_empty() {
                return Ok(());
            }
            warn!(call_id = %self.id, fields = ?fields, "call.started repeated with other details; refused");
            return Err(RecorderError::Conflict { fields });
        }
        if self.refused {
            // a tombstone keeps no caller, and nothing more is recorded
            self.details = Some(details);
            return Ok(());
        }
        self.recording.caller_tag = details.caller_tag;
        self.recording.caller_sealed = number
            .as_ref()
            .map(|n| self.deps.callers.seal(self.recording.id, n));
        self.recording.line.clone_from(line);
        self.recording.agent.clone_from(agent);
        self.recording.queue.clone_from(queue);
        let policy = self
            .deps
            .config
            .policy_for(line.as_deref(), queue.as_deref());
        if self.life.policy().is_none() {
            self.recording.started_at = at;
            self.life.set_policy(policy.clone(), at);
        } else if self.life.policy().is_some_and(|p| p.name != policy.name) {
            self.note_now(
                "policy.late",
                serde_json::json!({
                    "applied_until_now": self.recording.policy, "policy": policy.name,
                    "why": "audio was committed under the default policy before call.started came",
                }),
            )
            .await;
        }
        self.recording.policy.clone_from(&policy.name);
        self.details = Some(details);
        self.save_row().await
    }

    /// Moves the recording to `to` (a status the domain's transition gave), compare-and-set on
    /// the status this task knows; if another writer changed it meanwhile, takes the stored status
    /// and says so.
    pub(super) async fn transition(&mut self, to: RecordingStatus) {
        let change = StatusChange::new(
            self.recording.id,
            self.recording.status,
            to,
            self.deps.clock.now(),
        );
        match self.deps.catalog.transition_recording(&change).await {
            Ok(true) => self.recording.status = to,
            Ok(false) => self.reload_status().await,
            Err(e) => {
                error!(call_id = %self.id, error = %e, to = to.as_str(), "status change not stored");
            }
        }
    }

    /// Takes the status stored in the catalog (another writer changed it).
    pub(super) async fn reload_status(&mut self) {
        match self.deps.catalog.recording(self.recording.id).await {
            Ok(Some(row)) => {
                warn!(call_id = %self.id, status = row.status.as_str(), "status changed by another writer");
                self.recording.status = row.status;
            }
            Ok(None) => error!(call_id = %self.id, "the recording row is gone"),
            Err(e) => error!(call_id = %self.id, error = %e, "cannot read the recording's status"),
        }
    }

    /// The caller refused: capture stops for good, and the refusal goes through the one
    /// destruction path (see [`super::refusal`]).
    pub(super) async fn destroy(&mut self) {
        self.refused = true;
        self.timeline.drop_all();
        self.timeline.close();
        let now = self.deps.clock.now();
        let id = self.recording.id;
        let source = RefusalSource::DuringCall;
        match crate::recorder::refusal::begin(&self.deps, id, source, now, now).await {
            Ok(crate::recorder::refusal::Begun::Destroy(pending)) => {
                if let Some(open) = self.open.take()
                    && let Err(e) = open.segment.destroy().await
                {
                    // its spool file goes with the recording's directory below
                    warn!(call_id = %self.id, error = %e, "destroying the open segment failed");
                }
                self.sealed.clear();
                self.recording.caller_tag = None;
                self.recording.caller_sealed = None;
                if let Err(e) = crate::recorder::refusal::destroy(&self.deps, id, pending).await {
                    error!(call_id = %self.id, error = %e, "refusal committed but not finished; the next sweep finishes it");
                }
                self.reload_status().await;
            }
            Ok(crate::recorder::refusal::Begun::Held) => {
                // capture stops; what is committed stays, restricted, until the hold goes
                if let Err(e) = self.close_open().await {
                    error!(call_id = %self.id, error = %e, "closing the segment kept under a hold failed");
                }
                self.reload_status().await;
            }
            Ok(crate::recorder::refusal::Begun::Late) => {}
            Err(e) => {
                error!(call_id = %self.id, error = %e, "refusal not applied");
            }
        }
    }

    /// Writes what the call learned about itself (details, format), and nothing else: never its
    /// status, end, expiry or restriction, which other writers may be changing.
    pub(super) async fn save_row(&mut self) -> Result<(), RecorderError> {
        self.recording.updated_at = self.deps.clock.now();
        for _ in 0..2 {
            let update = CallDetailsUpdate::of(&self.recording, self.recording.updated_at);
            if self.deps.catalog.update_call_details(&update).await? {
                return Ok(());
            }
            self.reload_status().await;
        }
        Err(RecorderError::Retention(Box::new(
            crate::retention::RetentionError::Changed(self.recording.id),
        )))
    }

    pub(super) async fn note(&mut self, note: Note) {
        self.note_now(note.kind, note.details).await;
    }

    pub(super) async fn note_now(&mut self, kind: &str, details: serde_json::Value) {
        let entry = NewLedgerEntry {
            recording_id: self.recording.id,
            at: self.deps.clock.now(),
            kind: kind.to_owned(),
            actor: "recorder".to_owned(),
            reason: None,
            details: details.to_string(),
        };
        self.write_ledger(entry).await;
    }

    /// Appends a ledger entry; one the catalog does not take waits in memory and is retried each
    /// step and at seal (with its own time), so a catalog hiccup loses no entry.
    pub(super) async fn write_ledger(&mut self, entry: NewLedgerEntry) {
        self.retry_ledger().await;
        if !self.unwritten.is_empty() {
            self.unwritten.push(entry);
            return;
        }
        if let Err(e) = self.deps.catalog.append_ledger(&entry).await {
            warn!(call_id = %self.id, kind = entry.kind, error = %e, "ledger append failed; will retry");
            self.unwritten.push(entry);
        }
    }

    /// Writes the ledger and audit entries that waited, in order, until one fails again.
    pub(super) async fn retry_ledger(&mut self) {
        while let Some(entry) = self.unwritten.first() {
            if self.deps.catalog.append_ledger(entry).await.is_err() {
                return;
            }
            self.unwritten.remove(0);
        }
        while let Some(entry) = self.unwritten_audit.first() {
            if self.deps.catalog.append_audit(entry.clone()).await.is_err() {
                return;
            }
            self.unwritten_audit.remove(0);
        }
    }

    /// Appends an audit entry; one the catalog does not take waits like a ledger entry.
    pub(super) async fn audit(&mut self, action: &str, details: serde_json::Value) {
        let entry = NewAuditEntry::new(
            self.deps.clock.now(),
            "system:recorder",
            action,
            self.recording.id.to_string(),
        )
        .details(&details);
        self.retry_ledger().await;
        if !self.unwritten_audit.is_empty() {
            self.unwritten_audit.push(entry);
            return;
        }
        if let Err(e) = self.deps.catalog.append_audit(entry.clone()).await {
            warn!(call_id = %self.id, action, error = %e, "audit append failed; will retry");
            self.unwritten_audit.push(entry);
        }
    }
    /// A late pause falls in sealed audio: the recording goes to `pci_review` (the status
    /// machine's `review`), with a typed note the excision reads back.
    pub(super) async fn pci_review(&mut self, at: DateTime<Utc>) {
        self.reviewed = true;
        match self.recording.status.review() {
            Ok(to) if to != self.recording.status => self.transition(to).await,
            Ok(_) => {}
            Err(e) => {
                warn!(call_id = %self.id, error = %e, "late pause on a recording without audio")
            }
        }
        warn!(call_id = %self.id, recording_id = %self.recording.id, "pause falls in a sealed segment; recording marked pci_review");
        metrics::counter!("callvault_pci_incidents_total").increment(1);
        let note = PciReviewNote {
            pause_at: at,
            event: None,
            arrived: None,
            segments_after_pause: Vec::new(),
            call_id: Some(self.id.as_str().to_owned()),
        };
        let entry = note.entry(self.recording.id, self.deps.clock.now(), "recorder");
        self.write_ledger(entry).await;
        self.audit(
            "recording.pci_review",
            serde_json::to_value(&note).unwrap_or_default(),
        )
        .await;
    }
}
