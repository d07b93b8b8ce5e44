//! The conformance suite, continued: the call roster and its completeness states (issue 16).

use std::sync::Arc;

use super::{call, recording, stored, t};
use crate::audit::{ChainVerifier, NewAuditEntry};
use crate::catalog::{
    CallAssessment, CallFilter, CallNote, CallQuery, CallSettlement, CallSource, Catalog,
    CatalogError, NewLedgerEntry,
};
use crate::domain::completeness::CompletenessState;

fn note(id: &str, source: CallSource, seen: i64) -> CallNote {
    CallNote::seen(call(id), source, t(seen))
}

fn assessment(state: CompletenessState, at: i64) -> CallAssessment {
    CallAssessment {
        state,
        reason: "short_audio".into(),
        missing_ms: Some(12_000),
        detail: "audio shorter than the call by 12.0 s beyond pauses and look-back".into(),
        checked_at: t(at),
    }
}

fn settlement(id: &str, state: CompletenessState, at: i64) -> CallSettlement {
    CallSettlement {
        call_id: call(id),
        assessment: assessment(state, at),
        ledger: None,
        audit: NewAuditEntry::new(t(at), "system", "call.completeness", id),
    }
}

pub(crate) async fn calls_are_noted_and_merged_never_overwritten(c: Arc<dyn Catalog>) {
    // first heard of from a status callback that says nothing but the call's existence
    c.note_call(&note("n-1", CallSource::Twilio, 10))
        .await
        .expect("note");
    let row = c.call(&call("n-1")).await.expect("read").expect("row");
    assert_eq!(row.sources, CallSource::Twilio.bit());
    assert_eq!((row.first_seen, row.at), (t(10), t(10)));
    assert_eq!(
        (row.started_at, row.ended_at, row.duration_ms),
        (None, None, None)
    );
    assert_eq!(row.recording_id, None);
    assert_eq!((row.assessment.clone(), row.settled_at), (None, None));
    // then its start, line, end and length: each written once, the first word kept
    let mut started = note("n-1", CallSource::Native, 20);
    started.started_at = Some(t(5));
    started.line = Some("+441234567890".into());
    c.note_call(&started).await.expect("note");
    let mut ended = note("n-1", CallSource::Twilio, 80);
    ended.ended_at = Some(t(75));
    ended.duration_ms = Some(70_000);
    ended.started_at = Some(t(6));
    ended.line = Some("+449999999999".into());
    c.note_call(&ended).await.expect("note");
    let row = c.call(&call("n-1")).await.expect("read").expect("row");
    assert_eq!(
        CallSource::from_bits(row.sources),
        [CallSource::Native, CallSource::Twilio]
    );
    assert_eq!(row.first_seen, t(10), "first seen is kept");
    assert_eq!(
        (row.started_at, row.at),
        (Some(t(5)), t(5)),
        "the first start wins"
    );
    assert_eq!((row.ended_at, row.duration_ms), (Some(t(75)), Some(70_000)));
    assert_eq!(row.line.as_deref(), Some("+441234567890"));
    assert!(c.call(&call("n-2")).await.expect("read").is_none());
}

pub(crate) async fn every_recording_is_a_call(c: Arc<dyn Catalog>) {
    // a recording of a call nobody reported: noted by the catalog itself
    let r = recording("rec-1");
    stored(c.as_ref(), &r).await;
    let row = c.call(&call("rec-1")).await.expect("read").expect("row");
    assert_eq!(row.recording_id, Some(r.id));
    assert_eq!(row.sources, CallSource::Recording.bit());
    assert_eq!(row.at, r.started_at);
    // a call reported first, then recorded: linked, its platform's start kept
    let mut started = note("rec-2", CallSource::Native, 100);
    started.started_at = Some(t(99));
    c.note_call(&started).await.expect("note");
    let r2 = recording("rec-2");
    stored(c.as_ref(), &r2).await;
    let row = c.call(&call("rec-2")).await.expect("read").expect("row");
    assert_eq!(row.recording_id, Some(r2.id));
    assert_eq!(
        CallSource::from_bits(row.sources),
        [CallSource::Recording, CallSource::Native]
    );
    assert_eq!((row.at, row.started_at), (t(99), Some(t(99))));
    // a recording that cannot be stored notes nothing either
    let dup = recording("rec-2");
    assert!(matches!(
        c.insert_recording(&dup).await,
        Err(CatalogError::Conflict { .. })
    ));
    let row = c.call(&call("rec-2")).await.expect("read").expect("row");
    assert_eq!(row.recording_id, Some(r2.id));
}

pub(crate) async fn a_call_settles_once_with_its_ledger_and_audit_entries(c: Arc<dyn Catalog>) {
    let r = recording("s-1");
    stored(c.as_ref(), &r).await;
    c.note_call(&note("s-2", CallSource::Import, 0))
        .await
        .expect("note");
    // assessed while not settled: the latest is kept
    let first = assessment(CompletenessState::Partial, 50);
    assert!(c.assess_call(&call("s-1"), &first).await.expect("assess"));
    let again = assessment(CompletenessState::Recorded, 60);
    assert!(c.assess_call(&call("s-1"), &again).await.expect("assess"));
    let row = c.call(&call("s-1")).await.expect("read").expect("row");
    assert_eq!(row.assessment, Some(again));
    assert_eq!(row.settled_at, None);
    let unsettled: Vec<_> = c
        .unsettled_calls(None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.call_id.as_str().to_owned())
        .collect();
    assert_eq!(unsettled, ["s-1", "s-2"]);
    let page = c
        .unsettled_calls(Some(&call("s-1")), 10)
        .await
        .expect("list");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].call_id.as_str(), "s-2");

    // settled with a ledger entry on its recording and an audit entry, in one go
    let mut s = settlement("s-1", CompletenessState::Partial, 100);
    s.ledger = Some(NewLedgerEntry {
        recording_id: r.id,
        at: t(100),
        kind: "completeness".into(),
        actor: "system".into(),
        reason: None,
        details: r#"{"state":"partial"}"#.into(),
    });
    assert!(c.settle_call(&s).await.expect("settle"));
    let row = c.call(&call("s-1")).await.expect("read").expect("row");
    assert_eq!(row.settled_at, Some(t(100)));
    assert_eq!(
        row.assessment.map(|a| a.state),
        Some(CompletenessState::Partial)
    );
    let ledger = c.ledger(r.id).await.expect("ledger");
    assert_eq!(ledger.last().map(|e| e.kind.as_str()), Some("completeness"));
    let audit = c.audit_after(0, 10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].entry.action.as_str(),
            audit[0].entry.subject.as_str()
        ),
        ("call.completeness", "s-1")
    );
    let mut v = ChainVerifier::new();
    for e in &audit {
        v.push(e);
    }
    v.finish().expect("the chain holds");

    // once: neither a second settlement nor an assessment changes it, and nothing is appended
    let other = settlement("s-1", CompletenessState::Recorded, 200);
    assert!(!c.settle_call(&other).await.expect("settle"));
    assert!(
        !c.assess_call(&call("s-1"), &assessment(CompletenessState::Recorded, 200))
            .await
            .expect("assess")
    );
    let row = c.call(&call("s-1")).await.expect("read").expect("row");
    assert_eq!(
        row.assessment.map(|a| a.state),
        Some(CompletenessState::Partial)
    );
    assert_eq!(c.audit_after(0, 10).await.expect("audit").len(), 1);
    assert_eq!(c.ledger(r.id).await.expect("ledger").len(), ledger.len());
    // a settled call is still noted (its sources grow) but its state stays
    c.note_call(&note("s-1", CallSource::Import, 300))
        .await
        .expect("note after settle");
    let unsettled = c.unsettled_calls(None, 10).await.expect("list");
    assert_eq!(unsettled.len(), 1, "only s-2 is left");

    // a call with no recording settles on its own row and the audit chain
    assert!(
        c.settle_call(&settlement("s-2", CompletenessState::NotRecorded, 150))
            .await
            .expect("settle")
    );
    // unknown calls, or a ledger for a recording that is absent, are refused and write nothing
    assert!(matches!(
        c.settle_call(&settlement("s-9", CompletenessState::Recorded, 150))
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        c.assess_call(&call("s-9"), &assessment(CompletenessState::Recorded, 1))
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    c.note_call(&note("s-3", CallSource::Native, 0))
        .await
        .expect("note");
    let mut orphan = settlement("s-3", CompletenessState::Recorded, 150);
    orphan.ledger = Some(NewLedgerEntry {
        recording_id: crate::domain::RecordingId::new(),
        at: t(150),
        kind: "completeness".into(),
        actor: "system".into(),
        reason: None,
        details: "{}".into(),
    });
    assert!(matches!(
        c.settle_call(&orphan).await,
        Err(CatalogError::NotFound { .. })
    ));
    let row = c.call(&call("s-3")).await.expect("read").expect("row");
    assert_eq!(row.settled_at, None, "rolled back");
    assert_eq!(c.audit_after(0, 10).await.expect("audit").len(), 2);
}

pub(crate) async fn totals_and_listings_by_period_and_state(c: Arc<dyn Catalog>) {
    use CompletenessState as S;
    // twelve calls a minute apart, in several states; the last two not settled
    let states = [
        S::Recorded,
        S::Partial,
        S::Recorded,
        S::NotRecorded,
        S::Withheld,
        S::Failed,
        S::Recorded,
        S::Partial,
        S::NotRecorded,
        S::Recorded,
    ];
    for i in 0..12 {
        let mut n = note(&format!("tot-{i:02}"), CallSource::Native, i * 60);
        n.started_at = Some(t(i * 60));
        c.note_call(&n).await.expect("note");
        if let Some(state) = states.get(i as usize) {
            let s = settlement(&format!("tot-{i:02}"), *state, 10_000);
            assert!(c.settle_call(&s).await.expect("settle"));
        } else {
            let a = assessment(S::Partial, 10_000);
            assert!(c.assess_call(&n.call_id, &a).await.expect("assess"));
        }
    }
    let all = c.call_totals(None, None).await.expect("totals");
    assert_eq!(all.calls(), 12);
    assert_eq!(
        (
            all.of(S::Recorded),
            all.of(S::Partial),
            all.of(S::NotRecorded),
            all.of(S::Withheld),
            all.of(S::Failed),
            all.pending
        ),
        (4, 2, 2, 1, 1, 2)
    );
    // [1 min, 5 min): calls 1..=4
    let some = c
        .call_totals(Some(t(60)), Some(t(300)))
        .await
        .expect("totals");
    assert_eq!(some.calls(), 4);
    assert_eq!(
        (
            some.of(S::Recorded),
            some.of(S::Partial),
            some.of(S::NotRecorded),
            some.of(S::Withheld)
        ),
        (1, 1, 1, 1)
    );

    let list = |filter, from, to, after, limit| CallQuery {
        from,
        to,
        filter,
        after,
        limit,
    };
    let ids = |rows: Vec<crate::catalog::CallRow>| -> Vec<String> {
        rows.into_iter()
            .map(|r| r.call_id.as_str().to_owned())
            .collect()
    };
    let attention = c
        .calls(&list(CallFilter::NeedsAttention, None, None, None, 100))
        .await
        .expect("list");
    assert_eq!(
        ids(attention),
        ["tot-01", "tot-03", "tot-05", "tot-07", "tot-08"]
    );
    let pending = c
        .calls(&list(CallFilter::Pending, None, None, None, 100))
        .await
        .expect("list");
    assert_eq!(ids(pending), ["tot-10", "tot-11"]);
    let recorded = c
        .calls(&list(
            CallFilter::State(S::Recorded),
            Some(t(60)),
            Some(t(600)),
            None,
            100,
        ))
        .await
        .expect("list");
    assert_eq!(ids(recorded), ["tot-02", "tot-06", "tot-09"]);
    // keyset paging: two at a time, nothing twice, nothing missed
    let mut after = None;
    let mut seen = Vec::new();
    loop {
        let page = c
            .calls(&list(CallFilter::NeedsAttention, None, None, after, 2))
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some((last.at, last.call_id.clone()));
        seen.extend(ids(page));
    }
    assert_eq!(seen, ["tot-01", "tot-03", "tot-05", "tot-07", "tot-08"]);
}
