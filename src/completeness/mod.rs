//! Every call accounted for (issue 16): the reconciler that judges each call the platform reported
//! until its state settles, the report, and the import of call-detail files.
//!
//! The catalog keeps a roster of calls ([`CallRow`]): noted by the event and protocol adapters,
//! by a call-detail import ([`import`]), and by the catalog itself for every recording. The
//! [`Reconciler`] reads what the catalog knows of each unsettled call (its recording, segments and
//! ledger), asks [`domain::completeness::assess`](crate::domain::completeness::assess) for its
//! state, stores the latest assessment for reports, and once the call settles writes the final
//! state, once, with a `completeness` ledger entry on its recording and a `call.completeness`
//! audit entry, in one transaction. [`worker`] runs it on an interval; [`report`] reads the result.
//!
//! What this module must not do: decide a state (the domain does), or write anything but the call
//! roster, the ledger entry and the audit entry.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::audit::NewAuditEntry;
use crate::catalog::{
    CallAssessment, CallRow, CallSettlement, Catalog, CatalogError, LedgerEntry, NewLedgerEntry,
    SegmentStatus,
};
use crate::config::Config;
use crate::domain::completeness::{
    CallFacts, CompletenessState, Loss, RecordingFacts, Rules, SegmentSpan, Verdict, Window, assess,
};
use crate::domain::{Clock, ConsentMode};

pub mod import;
pub mod report;
pub mod worker;

/// Who settles a call, in the ledger and the audit chain.
pub const ACTOR: &str = "system:completeness";
/// The ledger entry of a settled state.
pub const LEDGER_KIND: &str = "completeness";
/// The audit action of a settled state.
pub const AUDIT_ACTION: &str = "call.completeness";

/// Calls judged at once in a pass.
const CONCURRENT_CHECKS: usize = 16;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    /// Calls judged.
    pub checked: u64,
    /// Calls whose state became final.
    pub settled: u64,
    /// Of those, calls settled as `partial` or `not_recorded`.
    pub missing: u64,
    /// Calls that could not be judged this time (a catalog error); the next pass retries.
    pub errors: u64,
}

/// Judges calls and settles them: a cheap `Clone` of handles.
#[derive(Debug, Clone)]
pub struct Reconciler {
    catalog: Arc<dyn Catalog>,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
}

/// The rule's tolerances, from the configuration.
pub fn rules(config: &Config) -> Rules {
    let d = |v: std::time::Duration| Duration::from_std(v).unwrap_or(Duration::MAX);
    Rules {
        settle: d(config.completeness.settle),
        tolerance: d(config.completeness.tolerance),
        lookback: d(config.pci.lookback + config.pci.guard),
    }
}

impl Reconciler {
    /// A reconciler over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>, config: Arc<Config>, clock: Arc<dyn Clock>) -> Self {
        Self {
            catalog,
            config,
            clock,
        }
    }

    /// The catalog it reads and writes.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// One pass over every unsettled call: each is judged; a settled one gets its final state,
    /// the others their latest assessment. A call that cannot be judged is retried next pass.
    pub async fn pass(&self) -> Result<PassReport, CatalogError> {
        let batch = self.config.completeness.batch_size;
        let mut report = PassReport::default();
        let mut after = None;
        loop {
            let page = self.catalog.unsettled_calls(after.as_ref(), batch).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.call_id.clone());
            // several at once, so the catalog's group commit settles them in shared transactions
            let full = page.len() == batch;
            let mut checks = futures::stream::iter(page)
                .map(|call| {
                    let this = self.clone();
                    async move {
                        let result = this.check(&call).await;
                        (call, result)
                    }
                })
                .buffer_unordered(CONCURRENT_CHECKS);
            while let Some((call, result)) = checks.next().await {
                report.checked += 1;
                match result {
                    Ok(Some(v)) => {
                        report.settled += 1;
                        if matches!(
                            v.state,
                            CompletenessState::Partial | CompletenessState::NotRecorded
                        ) {
                            report.missing += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        report.errors += 1;
                        warn!(call_id = %call.call_id, error = %e, "cannot judge a call's completeness; the next pass retries");
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Judges one call now; returns its verdict if it settled now.
    async fn check(&self, call: &CallRow) -> Result<Option<Verdict>, CatalogError> {
        let now = self.clock.now();
        let (facts, recording) = self.gather(call).await?;
        let verdict = assess(&facts, &rules(&self.config), now);
        let assessment = CallAssessment {
            state: verdict.state,
            reason: verdict.reason.code().to_owned(),
            missing_ms: verdict.reason.missing_ms(),
            detail: verdict.reason.to_string(),
            checked_at: now,
        };
        if !verdict.settled {
            let same = call.assessment.as_ref().is_some_and(|a| {
                (a.state, &a.reason, a.missing_ms, &a.detail)
                    == (
                        assessment.state,
                        &assessment.reason,
                        assessment.missing_ms,
                        &assessment.detail,
                    )
            });
            if !same {
                self.catalog.assess_call(&call.call_id, &assessment).await?;
            }
            return Ok(None);
        }
        let details = json!({
            "state": verdict.state.as_str(), "reason": verdict.reason.code(),
            "missing_ms": verdict.reason.missing_ms(), "detail": assessment.detail,
            "call_start": facts.start().to_rfc3339(),
            "call_end": facts.end().map(|t| t.to_rfc3339()),
        });
        let ledger = recording.map(|id| NewLedgerEntry {
            recording_id: id,
            at: now,
            kind: LEDGER_KIND.to_owned(),
            actor: ACTOR.to_owned(),
            reason: Some(assessment.detail.clone()),
            details: details.to_string(),
        });
        let mut audit_details = details;
        if let (Value::Object(m), Some(id)) = (&mut audit_details, recording) {
            m.insert("recording_id".into(), id.to_string().into());
        }
        let audit = NewAuditEntry::new(now, ACTOR, AUDIT_ACTION, call.call_id.as_str())
            .reason(assessment.detail.clone())
            .details(&audit_details);
        let settlement = CallSettlement {
            call_id: call.call_id.clone(),
            assessment,
            ledger,
            audit,
        };
        if !self.catalog.settle_call(&settlement).await? {
            // another node settled it first
            return Ok(None);
        }
        if matches!(
            verdict.state,
            CompletenessState::Partial | CompletenessState::NotRecorded
        ) {
            metrics::counter!("callvault_calls_missing_total", "state" => verdict.state.as_str())
                .increment(1);
        }
        info!(call_id = %call.call_id, state = verdict.state.as_str(), reason = verdict.reason.code(), "call completeness settled");
        Ok(Some(verdict))
    }

    /// What the catalog knows of a call, for the rule.
    pub async fn facts(&self, call: &CallRow) -> Result<CallFacts, CatalogError> {
        Ok(self.gather(call).await?.0)
    }

    /// The call's facts, and the id of its recording if it has one.
    async fn gather(
        &self,
        call: &CallRow,
    ) -> Result<(CallFacts, Option<crate::domain::RecordingId>), CatalogError> {
        let row = match call.recording_id {
            Some(id) => self.catalog.recording(id).await?,
            None => self.catalog.recording_by_call(&call.call_id).await?,
        };
        let id = row.as_ref().map(|r| r.id);
        let recording = match row {
            None => None,
            Some(row) => {
                let segments = self.catalog.segments(row.id).await?;
                let ledger = self.catalog.ledger(row.id).await?;
                let explicit = self
                    .config
                    .policy(&row.policy)
                    .is_some_and(|p| p.consent == ConsentMode::Explicit);
                let mut facts = from_ledger(&ledger, row.started_at);
                facts.status = row.status;
                facts.ended_at = row.ended_at;
                facts.explicit_consent = explicit;
                facts.segments = segments
                    .iter()
                    .map(|s| SegmentSpan {
                        start_ms: s.media_start_ms,
                        end_ms: s.media_end_ms,
                        uploaded: s.status != SegmentStatus::Spooled,
                    })
                    .collect();
                Some(facts)
            }
        };
        let facts = CallFacts {
            first_seen: call.first_seen,
            started_at: call.started_at,
            ended_at: call.ended_at,
            duration_ms: call.duration_ms,
            recording,
        };
        Ok((facts, id))
    }
}

fn time(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn ms(v: &Value, field: &str) -> Option<u64> {
    v.get(field).and_then(Value::as_u64)
}

/// Reads what a recording's ledger says for the rule: consent, refusal, the stream opening,
/// pauses, silences the stream did not send, and audio lost with its cause. Entries it cannot read
/// are skipped; what they would have said is then counted as missing, never as kept.
fn from_ledger(ledger: &[LedgerEntry], origin: DateTime<Utc>) -> RecordingFacts {
    let mut f = RecordingFacts {
        status: crate::domain::RecordingStatus::Live,
        started_at: origin,
        ended_at: None,
        explicit_consent: false,
        consent_given: false,
        refused: false,
        media_opened: false,
        segments: Vec::new(),
        pauses: Vec::new(),
        silences: Vec::new(),
        losses: Vec::new(),
    };
    let at_ms = |ms: u64| origin + Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
    // open pauses by kind, closed by the next resume of that kind
    let mut open: Vec<(String, usize)> = Vec::new();
    let loss = |cause: &str, ms: u64| Loss {
        cause: cause.to_owned(),
        ms,
    };
    for e in ledger {
        let d: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
        let kind = d
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("payment")
            .to_owned();
        match e.kind.as_str() {
            "media.opened" => f.media_opened = true,
            "consent.given" => {
                f.consent_given = true;
                // consent after the wait lapsed: what came before it was withheld on purpose
                if let Some(from) = time(&d, "from") {
                    f.pauses.push(Window {
                        from: origin,
                        to: Some(from),
                    });
                }
            }
            "consent.refused" => f.refused = true,
            "pause" => {
                f.pauses.push(Window {
                    from: time(&d, "from").unwrap_or(e.at),
                    to: None,
                });
                open.push((kind, f.pauses.len() - 1));
            }
            "pause.extended" => {
                if let (Some(from), Some(&(_, i))) = (
                    time(&d, "from"),
                    open.iter().rev().find(|(k, _)| *k == kind),
                ) {
                    f.pauses[i].from = f.pauses[i].from.min(from);
                }
            }
            "resume" => {
                if let Some(pos) = open.iter().rposition(|(k, _)| *k == kind) {
                    let (_, i) = open.remove(pos);
                    f.pauses[i].to = Some(time(&d, "at").unwrap_or(e.at));
                }
            }
            // keys the caller pressed: capture paused (or masked) on purpose
            "dtmf_pause" | "dtmf_masked" => {
                if let (Some(start), Some(length)) = (ms(&d, "at_ms"), ms(&d, "length_ms")) {
                    f.pauses.push(Window {
                        from: at_ms(start),
                        to: Some(at_ms(start + length)),
                    });
                }
            }
            "gap" => {
                let cause = d.get("cause").and_then(Value::as_str).unwrap_or("unknown");
                let length = ms(&d, "length_ms").unwrap_or(0);
                if cause == "stream_paused" {
                    if let Some(start) = ms(&d, "at_ms") {
                        f.silences.push(Window {
                            from: at_ms(start),
                            to: Some(at_ms(start + length)),
                        });
                    }
                } else {
                    f.losses.push(loss(cause, length));
                }
            }
            "audio_lost" => {
                let cause = d.get("cause").and_then(Value::as_str).unwrap_or("unknown");
                f.losses.push(loss(cause, ms(&d, "length_ms").unwrap_or(0)));
            }
            "crash_recovery" => f.losses.push(loss("crash", 0)),
            "spool_fault" => f.losses.push(loss("spool_fault", 0)),
            "dropped_on_arrival" if ms(&d, "overrun_ms").unwrap_or(0) > 0 => {
                f.losses
                    .push(loss("overrun", ms(&d, "overrun_ms").unwrap_or(0)));
            }
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests;
