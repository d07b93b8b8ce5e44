//! The conformance suite, continued: the narrow writes to a recording and the one destruction path
//! (refusal, excision and refusals kept under a hold in the retention journal).

use std::sync::Arc;

use super::{hold, ledger_entry, recording, segment, stored, t};
use crate::audit::NewAuditEntry;
use crate::catalog::{
    CallDetailsUpdate, Catalog, CatalogError, DeletionCause, FinishedDeletion, PendingDeletion,
    RecordingStatus, SegmentStatus, StatusChange,
};
use crate::domain::{Codec, RecordingId, SegmentNo};

fn pending(id: RecordingId, cause: DeletionCause, segment: Option<u32>) -> PendingDeletion {
    PendingDeletion {
        recording_id: id,
        cause,
        actor: "telephony".into(),
        reason: Some("consent.refused".into()),
        requested_at: t(400),
        segment: segment.map(SegmentNo),
    }
}

pub(crate) async fn transitions_are_compare_and_set(c: Arc<dyn Catalog>) {
    let r = recording("cas-1");
    stored(c.as_ref(), &r).await;
    let seal = StatusChange {
        ended_at: Some(t(600)),
        expires_at: Some(t(90 * 86_400)),
        ..StatusChange::new(r.id, RecordingStatus::Live, RecordingStatus::Sealed, t(601))
    };
    assert!(c.transition_recording(&seal).await.expect("seal"));
    let row = c.recording(r.id).await.expect("read").expect("row");
    assert_eq!(row.status, RecordingStatus::Sealed);
    assert_eq!(row.ended_at, Some(t(600)));
    assert_eq!(row.expires_at, Some(t(90 * 86_400)));
    assert_eq!(row.updated_at, t(601));
    assert_eq!(row.caller_tag, r.caller_tag, "nothing else is written");
    assert!(
        !c.transition_recording(&seal).await.expect("again"),
        "from live no more: nothing written"
    );
    // a change of status alone keeps the end and the expiry
    let review = StatusChange::new(
        r.id,
        RecordingStatus::Sealed,
        RecordingStatus::PciReview,
        t(700),
    );
    assert!(c.transition_recording(&review).await.expect("review"));
    let row = c.recording(r.id).await.expect("read").expect("row");
    assert_eq!(row.status, RecordingStatus::PciReview);
    assert_eq!(row.ended_at, Some(t(600)));
    assert_eq!(row.expires_at, Some(t(90 * 86_400)));
    let absent = StatusChange::new(
        RecordingId::new(),
        RecordingStatus::Live,
        RecordingStatus::Sealed,
        t(1),
    );
    assert!(matches!(
        c.transition_recording(&absent).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub(crate) async fn restriction_survives_every_other_write(c: Arc<dyn Catalog>) {
    let r = recording("restrict-1");
    stored(c.as_ref(), &r).await;
    assert!(c.set_restricted(r.id, true, t(10)).await.expect("restrict"));
    assert!(
        !c.set_restricted(r.id, true, t(11)).await.expect("again"),
        "unchanged"
    );
    // the call task's writes, a seal, a whole-row update: none lifts it
    let update = CallDetailsUpdate::of(&r, t(12));
    assert!(c.update_call_details(&update).await.expect("details"));
    let seal = StatusChange {
        ended_at: Some(t(600)),
        ..StatusChange::new(r.id, RecordingStatus::Live, RecordingStatus::Sealed, t(601))
    };
    assert!(c.transition_recording(&seal).await.expect("seal"));
    let mut stale = r.clone();
    stale.status = RecordingStatus::Sealed;
    c.update_recording(&stale).await.expect("whole row");
    let row = c.recording(r.id).await.expect("read").expect("row");
    assert!(row.restricted, "restriction is undone by no other write");
    // a status change may set it, never clear it
    let mut held = recording("restrict-2");
    held.status = RecordingStatus::Sealed;
    stored(c.as_ref(), &held).await;
    let refuse_held = StatusChange {
        expires_at: Some(t(900)),
        restrict: true,
        ..StatusChange::new(
            held.id,
            RecordingStatus::Sealed,
            RecordingStatus::RefusalHeld,
            t(900),
        )
    };
    assert!(c.transition_recording(&refuse_held).await.expect("held"));
    let row = c.recording(held.id).await.expect("read").expect("row");
    assert!(row.restricted);
    assert_eq!(row.expires_at, Some(t(900)));
    assert!(c.set_restricted(r.id, false, t(20)).await.expect("lift"));
    assert!(
        !c.recording(r.id)
            .await
            .expect("read")
            .expect("row")
            .restricted
    );
    assert!(matches!(
        c.set_restricted(RecordingId::new(), true, t(1)).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub(crate) async fn call_details_write_only_while_expected(c: Arc<dyn Catalog>) {
    let r = super::bare_recording("details-1");
    stored(c.as_ref(), &r).await;
    let mut update = CallDetailsUpdate::of(&r, t(5));
    update.line = Some("+441000000002".into());
    update.queue = Some("complaints".into());
    update.caller_tag = Some([9; 32]);
    update.caller_sealed = Some(vec![4, 5]);
    update.policy = "long".into();
    update.codec = Codec::Pcma;
    update.sample_rate = 16_000;
    update.channels = 1;
    assert!(c.update_call_details(&update).await.expect("write"));
    let row = c.recording(r.id).await.expect("read").expect("row");
    assert_eq!(row.line.as_deref(), Some("+441000000002"));
    assert_eq!(row.queue.as_deref(), Some("complaints"));
    assert_eq!(row.caller_tag, Some([9; 32]));
    assert_eq!(row.caller_sealed, Some(vec![4, 5]));
    assert_eq!(row.policy, "long");
    assert_eq!(
        (row.codec, row.sample_rate, row.channels),
        (Codec::Pcma, 16_000, 1)
    );
    assert_eq!(row.status, RecordingStatus::Live, "status untouched");
    // once refused (a tombstone), the call's details can no longer bring the caller back
    let refuse = StatusChange::new(r.id, RecordingStatus::Live, RecordingStatus::Refused, t(6));
    assert!(c.transition_recording(&refuse).await.expect("refuse"));
    assert!(!c.update_call_details(&update).await.expect("stale"));
    let mut gone = update.clone();
    gone.id = RecordingId::new();
    assert!(matches!(
        c.update_call_details(&gone).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub(crate) async fn retention_is_written_only_while_expected(c: Arc<dyn Catalog>) {
    let mut r = recording("retention-1");
    r.status = RecordingStatus::Sealed;
    stored(c.as_ref(), &r).await;
    assert!(
        c.set_retention(r.id, RecordingStatus::Sealed, "long", Some(t(999)), t(10))
            .await
            .expect("write")
    );
    let row = c.recording(r.id).await.expect("read").expect("row");
    assert_eq!(
        (row.policy.as_str(), row.expires_at),
        ("long", Some(t(999)))
    );
    assert!(
        !c.set_retention(r.id, RecordingStatus::PciReview, "x", None, t(11))
            .await
            .expect("stale")
    );
    assert_eq!(
        c.recording(r.id)
            .await
            .expect("read")
            .expect("row")
            .expires_at,
        Some(t(999))
    );
}

pub(crate) async fn refusals_and_excisions_use_the_journal(c: Arc<dyn Catalog>) {
    // a live call may be refused; a held one may not
    let live = recording("journal-live");
    stored(c.as_ref(), &live).await;
    c.insert_segment(&segment(live.id, 0, "kek-a"))
        .await
        .expect("segment");
    let mut held = recording("journal-held");
    held.status = RecordingStatus::Sealed;
    held.caller_tag = Some([42; 32]);
    stored(c.as_ref(), &held).await;
    c.insert_hold(&crate::catalog::HoldRow {
        caller_tag: Some([42; 32]),
        ..hold("H-caller", t(1))
    })
    .await
    .expect("hold");
    let refusals = [
        pending(live.id, DeletionCause::Refused, None),
        pending(held.id, DeletionCause::Refused, None),
    ];
    assert_eq!(
        c.begin_deletions(&refusals).await.expect("begin"),
        vec![live.id],
        "a refusal never begins under a hold"
    );
    // an excision is allowed under a hold, but not beside another pending deletion
    c.insert_segment(&crate::catalog::SegmentRow {
        status: SegmentStatus::Stored,
        ..segment(held.id, 0, "kek-a")
    })
    .await
    .expect("segment");
    c.insert_segment(&crate::catalog::SegmentRow {
        status: SegmentStatus::Stored,
        ..segment(held.id, 1, "kek-a")
    })
    .await
    .expect("segment");
    let excise = pending(held.id, DeletionCause::Excised, Some(1));
    assert_eq!(
        c.begin_deletions(std::slice::from_ref(&excise))
            .await
            .expect("excise"),
        vec![held.id]
    );
    assert!(
        c.begin_deletions(&[pending(held.id, DeletionCause::Excised, Some(0))])
            .await
            .expect("another")
            .is_empty(),
        "one deletion of a recording at a time"
    );
    assert!(
        c.begin_deletions(&[pending(live.id, DeletionCause::Erased, None)])
            .await
            .expect("other cause")
            .is_empty()
    );
    let mut listed = c.pending_deletions(10).await.expect("pending");
    listed.sort_by_key(|p| p.recording_id);
    let mut expected = vec![refusals[0].clone(), excise.clone()];
    expected.sort_by_key(|p| p.recording_id);
    assert_eq!(listed, expected, "the segment reads back");

    // sealed notes (siprec metadata) beside the ledger of both
    for r in [live.id, held.id] {
        let note = crate::catalog::NewSealedNote {
            entry: ledger_entry(r, "siprec.metadata", t(400)),
            sealed: vec![1, 2, 3],
        };
        c.append_sealed_note(&note).await.expect("note");
    }

    // finishing the excision shreds that one segment; the caller stays (segment 0 has audio)
    let finish = |p: &PendingDeletion, status, forget_caller| FinishedDeletion {
        recording_id: p.recording_id,
        status,
        segment: p.segment,
        forget_caller,
        at: t(500),
        ledger: ledger_entry(p.recording_id, "excised", t(500)),
        audit: NewAuditEntry::new(t(500), "alice", "segment.excise", "x"),
    };
    assert_eq!(
        c.finish_deletions(&[finish(&excise, RecordingStatus::Sealed, false)])
            .await
            .expect("finish"),
        1
    );
    let segs = c.segments(held.id).await.expect("segments");
    assert_eq!(segs[0].status, SegmentStatus::Stored);
    assert!(segs[0].wrapped_key.is_some());
    assert_eq!(segs[1].status, SegmentStatus::Excised);
    assert!(segs[1].wrapped_key.is_none());
    let row = c.recording(held.id).await.expect("read").expect("row");
    assert_eq!(row.caller_tag, Some([42; 32]));
    assert_eq!(
        c.sealed_notes(held.id).await.expect("notes").len(),
        1,
        "kept with the caller"
    );

    // finishing the refusal: every key, the caller, the status
    assert_eq!(
        c.finish_deletions(&[finish(&refusals[0], RecordingStatus::Refused, true)])
            .await
            .expect("finish"),
        1
    );
    let row = c.recording(live.id).await.expect("read").expect("row");
    assert_eq!(row.status, RecordingStatus::Refused);
    assert_eq!((row.caller_tag, row.caller_sealed), (None, None));
    assert!(
        c.sealed_notes(live.id).await.expect("notes").is_empty(),
        "sealed notes go with the caller's number"
    );
    assert!(
        c.ledger(live.id)
            .await
            .expect("ledger")
            .iter()
            .any(|e| e.kind == "siprec.metadata"),
        "the ledger still says a note was kept"
    );
    let segs = c.segments(live.id).await.expect("segments");
    assert_eq!(segs[0].status, SegmentStatus::Deleted);
    assert!(segs[0].wrapped_key.is_none());
    assert!(c.pending_deletions(10).await.expect("pending").is_empty());
}

pub(crate) async fn held_refusals_are_due_once_released(c: Arc<dyn Catalog>) {
    let now = t(1_000);
    let mut r = recording("held-refusal");
    r.status = RecordingStatus::RefusalHeld;
    r.caller_tag = Some([3; 32]);
    r.restricted = true;
    // its expiry is the refusal, long before its policy's
    r.expires_at = Some(t(500));
    stored(c.as_ref(), &r).await;
    c.insert_hold(&hold("H-9", t(1))).await.expect("hold");
    c.link_hold("H-9", r.id).await.expect("link");
    assert!(c.expired_recordings(now, 10).await.expect("due").is_empty());
    c.release_hold("H-9", t(2), "bob", None)
        .await
        .expect("release");
    let due = c.expired_recordings(now, 10).await.expect("due");
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r.id]);
    // it is destroyed as a refusal, never as an expiry
    assert!(
        c.begin_deletions(&[pending(r.id, DeletionCause::Expired, None)])
            .await
            .expect("expire")
            .is_empty()
    );
    assert_eq!(
        c.begin_deletions(&[pending(r.id, DeletionCause::Refused, None)])
            .await
            .expect("refuse"),
        vec![r.id]
    );
}
