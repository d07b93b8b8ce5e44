use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::catalog::{
    CallNote, CallSource, RecordingRow, RecordingStatus, SegmentRow, SqliteCatalog,
};
use crate::domain::completeness::Reason;
use crate::domain::{CallId, Codec, ManualClock, RecordingId, SegmentNo};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
        + Duration::seconds(s)
}

fn setup() -> (Reconciler, Arc<dyn Catalog>, ManualClock) {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().expect("catalog"));
    let mut config = Config::default();
    config.completeness.settle = std::time::Duration::from_secs(60);
    let clock = ManualClock::new(t(0));
    let r = Reconciler::new(
        Arc::clone(&catalog),
        Arc::new(config),
        Arc::new(clock.clone()),
    );
    (r, catalog, clock)
}

fn id(s: &str) -> CallId {
    s.parse().expect("call id")
}

async fn recorded(catalog: &dyn Catalog, call: &str, segments: &[(u64, u64)]) -> RecordingId {
    let row = RecordingRow {
        id: RecordingId::new(),
        call_id: id(call),
        status: RecordingStatus::Sealed,
        line: None,
        queue: None,
        agent: None,
        caller_tag: None,
        caller_sealed: None,
        policy: "standard".into(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: t(0),
        ended_at: Some(t(60)),
        expires_at: None,
        restricted: false,
        updated_at: t(60),
    };
    catalog.insert_recording(&row).await.expect("recording");
    for (n, (a, b)) in segments.iter().enumerate() {
        catalog
            .insert_segment(&SegmentRow {
                recording_id: row.id,
                segment: SegmentNo(n as u32),
                object_key: format!("k/{n}"),
                kek_id: Some("k1".parse().expect("kek")),
                wrapped_key: Some(vec![1; 60]),
                media_start_ms: *a,
                media_end_ms: *b,
                size: 1,
                sha256: None,
                status: crate::catalog::SegmentStatus::Stored,
            })
            .await
            .expect("segment");
    }
    row.id
}

async fn ledger(catalog: &dyn Catalog, rec: RecordingId, kind: &str, details: serde_json::Value) {
    catalog
        .append_ledger(&NewLedgerEntry {
            recording_id: rec,
            at: t(1),
            kind: kind.into(),
            actor: "system".into(),
            reason: None,
            details: details.to_string(),
        })
        .await
        .expect("ledger");
}

#[tokio::test]
async fn calls_are_assessed_until_they_settle_then_settled_once_with_evidence() {
    let (r, catalog, clock) = setup();
    let mut started = CallNote::seen(id("c-events"), CallSource::Native, t(0));
    started.started_at = Some(t(0));
    started.ended_at = Some(t(60));
    catalog.note_call(&started).await.expect("note");
    let rec = recorded(catalog.as_ref(), "c-rec", &[(0, 30_000), (30_000, 60_000)]).await;
    let mut both = CallNote::seen(id("c-rec"), CallSource::Native, t(0));
    both.started_at = Some(t(0));
    both.ended_at = Some(t(60));
    catalog.note_call(&both).await.expect("note");

    // before the settle time: assessed, not settled
    clock.set(t(90));
    let report = r.pass().await.expect("pass");
    assert_eq!((report.checked, report.settled), (2, 0));
    let row = catalog
        .call(&id("c-events"))
        .await
        .expect("read")
        .expect("row");
    let a = row.assessment.expect("assessed");
    assert_eq!(
        (a.state, a.reason.as_str()),
        (CompletenessState::NotRecorded, "no_media")
    );
    assert_eq!(row.settled_at, None);

    // after it: settled, the recording's ledger and the audit chain say so
    clock.set(t(121));
    let report = r.pass().await.expect("pass");
    assert_eq!((report.checked, report.settled, report.missing), (2, 2, 1));
    let row = catalog
        .call(&id("c-rec"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.settled_at, Some(t(121)));
    assert_eq!(
        row.assessment.map(|a| a.state),
        Some(CompletenessState::Recorded)
    );
    let entries = catalog.ledger(rec).await.expect("ledger");
    let last = entries.last().expect("an entry");
    assert_eq!(
        (last.kind.as_str(), last.actor.as_str()),
        (LEDGER_KIND, ACTOR)
    );
    let details: serde_json::Value = serde_json::from_str(&last.details).expect("json");
    assert_eq!(details["state"], "recorded");
    let audit = catalog.audit_after(0, 10).await.expect("audit");
    let subjects: Vec<_> = audit.iter().map(|e| e.entry.subject.as_str()).collect();
    assert_eq!(subjects, ["c-events", "c-rec"]);
    assert!(audit.iter().all(|e| e.entry.action == AUDIT_ACTION));
    // nothing left to do, and nothing written twice
    clock.set(t(500));
    assert_eq!(r.pass().await.expect("pass").checked, 0);
    assert_eq!(catalog.audit_after(0, 10).await.expect("audit").len(), 2);
}

#[tokio::test]
async fn the_ledger_gives_pauses_silences_and_losses() {
    let (r, catalog, _clock) = setup();
    let rec = recorded(catalog.as_ref(), "c-1", &[(0, 10_000), (40_000, 50_000)]).await;
    ledger(catalog.as_ref(), rec, "media.opened", serde_json::json!({})).await;
    ledger(
        catalog.as_ref(),
        rec,
        "pause",
        serde_json::json!({ "kind": "payment", "from": t(10).to_rfc3339() }),
    )
    .await;
    ledger(
        catalog.as_ref(),
        rec,
        "resume",
        serde_json::json!({ "kind": "payment", "at": t(20).to_rfc3339() }),
    )
    .await;
    ledger(
        catalog.as_ref(),
        rec,
        "gap",
        serde_json::json!({ "cause": "stream_paused", "at_ms": 20_000, "length_ms": 5_000 }),
    )
    .await;
    ledger(
        catalog.as_ref(),
        rec,
        "gap",
        serde_json::json!({ "cause": "crash", "at_ms": 25_000, "length_ms": 15_000 }),
    )
    .await;
    let row = catalog.call(&id("c-1")).await.expect("read").expect("row");
    let facts = r.facts(&row).await.expect("facts");
    let f = facts.recording.clone().expect("recording");
    assert!(f.media_opened);
    assert_eq!(
        f.pauses,
        [Window {
            from: t(10),
            to: Some(t(20))
        }]
    );
    assert_eq!(
        f.silences,
        [Window {
            from: t(20),
            to: Some(t(25))
        }]
    );
    assert_eq!(
        f.losses,
        [Loss {
            cause: "crash".into(),
            ms: 15_000
        }]
    );
    // 60 s call: 20 s of audio, 10 s paused, 5 s silent; 15 s lost in the crash, 10 s at the end
    let v = assess(&facts, &rules(&r.config), t(1000));
    assert_eq!(
        v.reason,
        Reason::AudioLost {
            missing_ms: 25_000,
            cause: "crash".into()
        }
    );
}
