//! The conformance suite every [`Catalog`] backend must pass, written only against the trait.
//!
//! A backend runs it with one line in its tests:
//!
//! ```ignore
//! crate::catalog::conformance::catalog_conformance!(make_catalog().await);
//! ```
//!
//! where the expression gives `(Arc<dyn Catalog>, guard)`: a fresh, empty catalog and whatever must
//! live as long as it (a temporary directory, a scratch database; `()` if nothing). The macro expands
//! to one `#[tokio::test]` per suite function, on a multi-thread runtime so the concurrency tests
//! race for real.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    Catalog, CatalogError, HoldRow, NewLedgerEntry, RecordingRow, RecordingStatus, SegmentRow,
    SegmentStatus, TokenRow, WrappedKeyRow,
};
use crate::audit::{ChainHead, ChainVerifier, NewAuditEntry};
use crate::domain::{CallId, Codec, KeyId, RecordingId, SegmentNo};

/// Expands to one `#[tokio::test]` per suite function, each on a fresh catalog from `$make`.
macro_rules! catalog_conformance {
    ($make:expr) => {
        $crate::catalog::conformance::catalog_conformance!(@each $make;
            check_answers,
            recordings_round_trip,
            recording_conflicts_and_absences,
            recordings_by_status_in_id_order,
            times_are_kept_to_the_microsecond,
            segments_round_trip_in_order,
            segment_conflicts_and_absences,
            update_segment_never_touches_the_key,
            shredding_forgets_the_key,
            key_ids_and_counts_follow_the_segments,
            wrapped_keys_page_in_order,
            wrapped_keys_compare_and_swap,
            ledger_counts_per_recording,
            sealed_notes_sit_beside_their_ledger_entries,
            ledger_appends_race_without_gaps,
            holds_place_link_and_release,
            holds_filter_active,
            caller_holds_cover_recordings_in_range,
            audit_appends_in_order,
            audit_appends_race_without_forking,
            events_are_seen_once,
            tokens_round_trip_and_revoke,
            // supervisor access (issue 5)
            search_filters_and_pages,
            sars_record_once_and_list_open_by_due,
            audit_search_filters,
            retention_skips_held_and_finishes_pending,
            sweep_lock_is_taken_again_once_dropped,
            // audit checkpoints and closing SARs (issue 12)
            checkpoints_are_kept_and_the_furthest_is_latest,
            sars_close_once_with_who_and_why,
            // narrow writes and one destruction path (issue 12)
            transitions_are_compare_and_set,
            restriction_survives_every_other_write,
            call_details_write_only_while_expected,
            retention_is_written_only_while_expected,
            refusals_and_excisions_use_the_journal,
            held_refusals_are_due_once_released,
            // every call accounted for (issue 16)
            calls_are_noted_and_merged_never_overwritten,
            every_recording_is_a_call,
            a_call_settles_once_with_its_ledger_and_audit_entries,
            totals_and_listings_by_period_and_state,
            // imported recordings (issue 17)
            imports_are_stored_whole_or_not_at_all,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (catalog, _guard) = $make;
                $crate::catalog::conformance::$name(catalog).await;
            }
        )*
    };
}
pub(crate) use catalog_conformance;

mod audit_sars;
pub(crate) use audit_sars::{
    checkpoints_are_kept_and_the_furthest_is_latest, sars_close_once_with_who_and_why,
};
mod narrow;
pub(crate) use narrow::*;
mod calls;
pub(crate) use calls::*;
mod import;
pub(crate) use import::imports_are_stored_whole_or_not_at_all;

// --- fixtures

/// A time `secs` after 2026-03-01T09:00:00Z, with microseconds so precision is exercised.
pub(super) fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_355_600 + secs, 123_456_000).expect("valid time")
}

fn call(s: &str) -> CallId {
    s.parse().expect("valid call id")
}

fn kek(s: &str) -> KeyId {
    s.parse().expect("valid key id")
}

/// A recording with every optional field set.
fn recording(call_id: &str) -> RecordingRow {
    RecordingRow {
        id: RecordingId::new(),
        call_id: call(call_id),
        status: RecordingStatus::Live,
        line: Some("+441234567890".into()),
        queue: Some("council-tax".into()),
        agent: Some("agent-7".into()),
        caller_tag: Some([7; 32]),
        caller_sealed: Some(vec![1, 2, 3, 0, 255]),
        policy: "standard".into(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: t(0),
        ended_at: Some(t(300)),
        expires_at: Some(t(90 * 86_400)),
        restricted: false,
        updated_at: t(301),
    }
}

/// A recording with every optional field empty.
fn bare_recording(call_id: &str) -> RecordingRow {
    RecordingRow {
        line: None,
        queue: None,
        agent: None,
        caller_tag: None,
        caller_sealed: None,
        ended_at: None,
        expires_at: None,
        ..recording(call_id)
    }
}

fn segment(recording_id: RecordingId, n: u32, kek_id: &str) -> SegmentRow {
    SegmentRow {
        recording_id,
        segment: SegmentNo(n),
        object_key: format!("v1/2026/03/01/{recording_id}/{n:04}.cva"),
        kek_id: Some(kek(kek_id)),
        wrapped_key: Some(vec![n as u8; 60]),
        media_start_ms: u64::from(n) * 10_000,
        media_end_ms: u64::from(n) * 10_000 + 9_000,
        size: 123_456,
        sha256: None,
        status: SegmentStatus::Spooled,
    }
}

fn hold(reference: &str, at: DateTime<Utc>) -> HoldRow {
    HoldRow {
        reference: reference.into(),
        reason: "complaint about a missed collection".into(),
        actor: "alice".into(),
        created_at: at,
        caller_tag: None,
        from: None,
        to: None,
        released_at: None,
        released_by: None,
        release_reason: None,
    }
}

fn token(id: &str, hash: u8, at: DateTime<Utc>) -> TokenRow {
    TokenRow {
        id: id.into(),
        name: format!("{id}-name"),
        role: "supervisor".into(),
        hash: [hash; 32],
        created_at: at,
        revoked_at: None,
    }
}

fn ledger_entry(recording_id: RecordingId, kind: &str, at: DateTime<Utc>) -> NewLedgerEntry {
    NewLedgerEntry {
        recording_id,
        at,
        kind: kind.into(),
        actor: "system".into(),
        reason: Some("payment.started".into()),
        details: r#"{"ms":1200}"#.into(),
    }
}

async fn stored(c: &dyn Catalog, row: &RecordingRow) {
    c.insert_recording(row).await.expect("insert recording");
}

// --- the suite

pub(crate) async fn check_answers(c: Arc<dyn Catalog>) {
    c.check().await.expect("a fresh catalog answers");
}

pub(crate) async fn recordings_round_trip(c: Arc<dyn Catalog>) {
    let full = recording("CA-full");
    let bare = bare_recording("CA-bare");
    stored(&*c, &full).await;
    stored(&*c, &bare).await;
    assert_eq!(
        c.recording(full.id).await.expect("read"),
        Some(full.clone())
    );
    assert_eq!(
        c.recording(bare.id).await.expect("read"),
        Some(bare.clone())
    );
    assert_eq!(
        c.recording_by_call(&call("CA-bare")).await.expect("read"),
        Some(bare.clone())
    );
    assert_eq!(c.recording(RecordingId::new()).await.expect("read"), None);
    assert_eq!(
        c.recording_by_call(&call("CA-none")).await.expect("read"),
        None
    );

    // every status and codec survives, and an update replaces every field
    let mut row = full.clone();
    for (status, codec) in RecordingStatus::ALL
        .into_iter()
        .zip([Codec::Pcma, Codec::L16].into_iter().cycle())
    {
        row = RecordingRow {
            status,
            codec,
            // only set_restricted writes the flag: a whole-row update keeps it
            restricted: row.restricted,
            caller_sealed: None,
            line: None,
            expires_at: Some(t(1000)),
            sample_rate: 16_000,
            channels: 1,
            updated_at: row.updated_at + chrono::Duration::seconds(1),
            ..row
        };
        let mut lifted = row.clone();
        lifted.restricted = !row.restricted;
        c.update_recording(&lifted).await.expect("update");
        assert_eq!(c.recording(row.id).await.expect("read"), Some(row.clone()));
    }
    // the other row is untouched
    assert_eq!(c.recording(bare.id).await.expect("read"), Some(bare));
}

pub(crate) async fn recordings_by_status_in_id_order(c: Arc<dyn Catalog>) {
    let mut live = Vec::new();
    for i in 0..5 {
        let row = recording(&format!("CA-live-{i}"));
        stored(&*c, &row).await;
        live.push(row);
    }
    let sealed = RecordingRow {
        status: RecordingStatus::Sealed,
        ..recording("CA-sealed")
    };
    stored(&*c, &sealed).await;
    live.sort_by_key(|r| r.id);
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Live, 100)
            .await
            .expect("read"),
        live
    );
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Live, 2)
            .await
            .expect("read"),
        live[..2]
    );
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Sealed, 100)
            .await
            .expect("read"),
        vec![sealed.clone()]
    );
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Expired, 100)
            .await
            .expect("read"),
        vec![]
    );
    // an update moves a recording from one status to the other
    let mut first = live[0].clone();
    first.status = RecordingStatus::Sealed;
    c.update_recording(&first).await.expect("update");
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Live, 100)
            .await
            .expect("read"),
        live[1..]
    );
    assert_eq!(
        c.recordings_by_status(RecordingStatus::Sealed, 100)
            .await
            .expect("read")
            .len(),
        2
    );
}

pub(crate) async fn recording_conflicts_and_absences(c: Arc<dyn Catalog>) {
    let a = recording("CA-a");
    stored(&*c, &a).await;
    let same_call = recording("CA-a");
    assert!(matches!(
        c.insert_recording(&same_call).await,
        Err(CatalogError::Conflict { .. })
    ));
    let same_id = RecordingRow {
        call_id: call("CA-other"),
        ..a.clone()
    };
    assert!(matches!(
        c.insert_recording(&same_id).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        c.update_recording(&recording("CA-ghost")).await,
        Err(CatalogError::NotFound { .. })
    ));
    let b = recording("CA-b");
    stored(&*c, &b).await;
    let steal = RecordingRow {
        call_id: call("CA-a"),
        ..b.clone()
    };
    assert!(matches!(
        c.update_recording(&steal).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert_eq!(c.recording(a.id).await.expect("read"), Some(a));
    assert_eq!(c.recording(b.id).await.expect("read"), Some(b));
}

pub(crate) async fn times_are_kept_to_the_microsecond(c: Arc<dyn Catalog>) {
    let fine = DateTime::from_timestamp(1_772_355_600, 123_456_789).expect("valid time");
    let kept = DateTime::from_timestamp(1_772_355_600, 123_456_000).expect("valid time");
    let row = RecordingRow {
        started_at: fine,
        ..recording("CA-fine")
    };
    stored(&*c, &row).await;
    let back = c.recording(row.id).await.expect("read").expect("present");
    assert_eq!(back.started_at, kept);

    let e = c
        .append_ledger(&ledger_entry(row.id, "pause", fine))
        .await
        .expect("append");
    assert_eq!(e.at, kept);
    assert_eq!(c.ledger(row.id).await.expect("read")[0].at, kept);

    let a = c
        .append_audit(NewAuditEntry::new(fine, "alice", "recording.play", "x"))
        .await
        .expect("append");
    assert_eq!(a.entry.at, kept);
    assert_eq!(c.audit_after(0, 10).await.expect("read"), vec![a]);
}

pub(crate) async fn segments_round_trip_in_order(c: Arc<dyn Catalog>) {
    let r = recording("CA-seg");
    let other = recording("CA-seg-other");
    stored(&*c, &r).await;
    stored(&*c, &other).await;
    let mut segs: Vec<_> = [2, 0, 1].map(|n| segment(r.id, n, "kek-1")).into();
    segs[1].sha256 = Some([9; 32]);
    segs[1].status = SegmentStatus::Stored;
    segs[2].media_end_ms = u64::MAX >> 1;
    for s in &segs {
        c.insert_segment(s).await.expect("insert segment");
    }
    c.insert_segment(&segment(other.id, 0, "kek-2"))
        .await
        .expect("insert segment");
    segs.sort_by_key(|s| s.segment);
    assert_eq!(c.segments(r.id).await.expect("read"), segs);
    assert_eq!(c.segments(RecordingId::new()).await.expect("read"), vec![]);

    let mut s = segs[0].clone();
    for status in SegmentStatus::ALL {
        s = SegmentRow {
            object_key: format!("{}-moved", s.object_key),
            media_start_ms: s.media_start_ms + 1,
            media_end_ms: s.media_end_ms + 1,
            size: s.size + 1,
            sha256: Some([status as u8; 32]),
            status,
            ..s
        };
        c.update_segment(&s).await.expect("update segment");
        assert_eq!(c.segments(r.id).await.expect("read")[0], s);
    }
    assert!(matches!(
        c.update_segment(&segment(r.id, 9, "kek-1")).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub(crate) async fn segment_conflicts_and_absences(c: Arc<dyn Catalog>) {
    let r = recording("CA-seg-c");
    stored(&*c, &r).await;
    c.insert_segment(&segment(r.id, 0, "kek-1"))
        .await
        .expect("insert");
    assert!(matches!(
        c.insert_segment(&segment(r.id, 0, "kek-2")).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        c.insert_segment(&segment(RecordingId::new(), 0, "kek-1"))
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    let half = SegmentRow {
        wrapped_key: None,
        ..segment(r.id, 1, "kek-1")
    };
    assert!(matches!(
        c.insert_segment(&half).await,
        Err(CatalogError::Invalid { .. })
    ));
    // a segment may be recorded without a key (one destroyed before it was stored)
    let keyless = SegmentRow {
        kek_id: None,
        wrapped_key: None,
        status: SegmentStatus::Deleted,
        ..segment(r.id, 2, "kek-1")
    };
    c.insert_segment(&keyless).await.expect("insert keyless");
    assert_eq!(c.segments(r.id).await.expect("read").len(), 2);
    assert!(matches!(
        c.shred_segment_key(r.id, SegmentNo(5)).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub(crate) async fn update_segment_never_touches_the_key(c: Arc<dyn Catalog>) {
    let r = recording("CA-upd-key");
    stored(&*c, &r).await;
    let s = segment(r.id, 0, "kek-1");
    c.insert_segment(&s).await.expect("insert");
    let forged = SegmentRow {
        kek_id: Some(kek("kek-evil")),
        wrapped_key: Some(vec![0; 60]),
        status: SegmentStatus::Stored,
        ..s.clone()
    };
    c.update_segment(&forged).await.expect("update");
    let back = &c.segments(r.id).await.expect("read")[0];
    assert_eq!(back.status, SegmentStatus::Stored);
    assert_eq!(
        (&back.kek_id, &back.wrapped_key),
        (&s.kek_id, &s.wrapped_key)
    );
}

pub(crate) async fn shredding_forgets_the_key(c: Arc<dyn Catalog>) {
    let r = recording("CA-shred");
    stored(&*c, &r).await;
    let s = segment(r.id, 0, "kek-1");
    c.insert_segment(&s).await.expect("insert");
    c.shred_segment_key(r.id, SegmentNo(0))
        .await
        .expect("shred");
    c.shred_segment_key(r.id, SegmentNo(0))
        .await
        .expect("shredding twice is fine");
    let back = &c.segments(r.id).await.expect("read")[0];
    assert_eq!((&back.kek_id, &back.wrapped_key), (&None, &None));

    // a stale row written back after the shred does not bring the key back
    let stale = SegmentRow {
        status: SegmentStatus::Excised,
        ..s
    };
    c.update_segment(&stale).await.expect("update");
    let back = &c.segments(r.id).await.expect("read")[0];
    assert_eq!(back.status, SegmentStatus::Excised);
    assert_eq!((&back.kek_id, &back.wrapped_key), (&None, &None));
    assert_eq!(c.count_wrapped_keys().await.expect("count"), 0);
    assert!(c.key_ids_in_use().await.expect("keys").is_empty());
}

pub(crate) async fn key_ids_and_counts_follow_the_segments(c: Arc<dyn Catalog>) {
    assert_eq!(c.count_wrapped_keys().await.expect("count"), 0);
    assert!(c.key_ids_in_use().await.expect("keys").is_empty());
    let r = recording("CA-keys");
    stored(&*c, &r).await;
    for (n, k) in [(0, "kek-a"), (1, "kek-b"), (2, "kek-a"), (3, "kek-c")] {
        c.insert_segment(&segment(r.id, n, k))
            .await
            .expect("insert");
    }
    assert_eq!(c.count_wrapped_keys().await.expect("count"), 4);
    let want: BTreeSet<_> = ["kek-a", "kek-b", "kek-c"].map(kek).into();
    assert_eq!(c.key_ids_in_use().await.expect("keys"), want);
    c.shred_segment_key(r.id, SegmentNo(3))
        .await
        .expect("shred");
    assert_eq!(c.count_wrapped_keys().await.expect("count"), 3);
    let want: BTreeSet<_> = ["kek-a", "kek-b"].map(kek).into();
    assert_eq!(c.key_ids_in_use().await.expect("keys"), want);
}

pub(crate) async fn wrapped_keys_page_in_order(c: Arc<dyn Catalog>) {
    let mut want = Vec::new();
    for i in 0..4 {
        let r = recording(&format!("CA-page-{i}"));
        stored(&*c, &r).await;
        for n in [2, 0, 1] {
            let s = segment(r.id, n, if n == 1 { "kek-b" } else { "kek-a" });
            c.insert_segment(&s).await.expect("insert");
            want.push(WrappedKeyRow {
                recording_id: s.recording_id,
                segment: s.segment,
                kek_id: s.kek_id.clone().expect("has a key"),
                wrapped_key: s.wrapped_key.clone().expect("has a key"),
            });
        }
    }
    // shredded segments are skipped
    let gone = want.remove(4);
    c.shred_segment_key(gone.recording_id, gone.segment)
        .await
        .expect("shred");
    want.sort_by_key(|w| (w.recording_id, w.segment));

    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = c.wrapped_keys_after(after, 5).await.expect("page");
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some((last.recording_id, last.segment));
        got.extend(page);
    }
    assert_eq!(got, want);
    assert_eq!(c.count_wrapped_keys().await.expect("count"), 11);
    assert!(
        c.wrapped_keys_after(None, 0)
            .await
            .expect("page")
            .is_empty()
    );
    let all = c.wrapped_keys_after(None, 100).await.expect("page");
    assert_eq!(all, want);
}

pub(crate) async fn wrapped_keys_compare_and_swap(c: Arc<dyn Catalog>) {
    let r = recording("CA-cas");
    stored(&*c, &r).await;
    for n in 0..2 {
        c.insert_segment(&segment(r.id, n, "kek-old"))
            .await
            .expect("insert");
    }
    let rewrapped = WrappedKeyRow {
        recording_id: r.id,
        segment: SegmentNo(0),
        kek_id: kek("kek-new"),
        wrapped_key: vec![42; 60],
    };
    assert!(
        c.replace_wrapped_key(&rewrapped, &kek("kek-old"))
            .await
            .expect("cas")
    );
    // a second rewrap that read the old key loses the race
    let late = WrappedKeyRow {
        kek_id: kek("kek-other"),
        wrapped_key: vec![7; 60],
        ..rewrapped.clone()
    };
    assert!(
        !c.replace_wrapped_key(&late, &kek("kek-old"))
            .await
            .expect("cas")
    );
    let segs = c.segments(r.id).await.expect("read");
    assert_eq!(segs[0].kek_id, Some(kek("kek-new")));
    assert_eq!(segs[0].wrapped_key, Some(vec![42; 60]));
    assert_eq!(segs[1].kek_id, Some(kek("kek-old")));

    // a shredded key is never rewrapped back into existence
    c.shred_segment_key(r.id, SegmentNo(1))
        .await
        .expect("shred");
    let revive = WrappedKeyRow {
        segment: SegmentNo(1),
        ..rewrapped.clone()
    };
    assert!(
        !c.replace_wrapped_key(&revive, &kek("kek-old"))
            .await
            .expect("cas")
    );
    assert_eq!(c.segments(r.id).await.expect("read")[1].wrapped_key, None);
    // nor is a missing segment created
    let missing = WrappedKeyRow {
        segment: SegmentNo(9),
        ..rewrapped
    };
    assert!(
        !c.replace_wrapped_key(&missing, &kek("kek-new"))
            .await
            .expect("cas")
    );
    assert_eq!(c.segments(r.id).await.expect("read").len(), 2);
}

pub(crate) async fn ledger_counts_per_recording(c: Arc<dyn Catalog>) {
    let a = recording("CA-ledger-a");
    let b = recording("CA-ledger-b");
    stored(&*c, &a).await;
    stored(&*c, &b).await;
    let mut want_a = Vec::new();
    for (i, kind) in ["pause", "resume", "consent.refused"]
        .into_iter()
        .enumerate()
    {
        let e = c
            .append_ledger(&ledger_entry(a.id, kind, t(i as i64)))
            .await
            .expect("append");
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!((e.recording_id, e.kind.as_str()), (a.id, kind));
        want_a.push(e);
        let other = c
            .append_ledger(&NewLedgerEntry {
                reason: None,
                details: "{}".into(),
                ..ledger_entry(b.id, "deleted", t(10))
            })
            .await
            .expect("append");
        assert_eq!(other.seq, i as u64 + 1);
    }
    assert_eq!(c.ledger(a.id).await.expect("read"), want_a);
    let bs = c.ledger(b.id).await.expect("read");
    assert_eq!(bs.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(bs[0].reason, None);
    assert!(matches!(
        c.append_ledger(&ledger_entry(RecordingId::new(), "pause", t(0)))
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(c.ledger(RecordingId::new()).await.expect("read").is_empty());
}

pub(crate) async fn sealed_notes_sit_beside_their_ledger_entries(c: Arc<dyn Catalog>) {
    let r = recording("CA-sealed-notes");
    stored(&*c, &r).await;
    c.append_ledger(&ledger_entry(r.id, "media.opened", t(0)))
        .await
        .expect("append");
    let mut seqs = Vec::new();
    for (i, bytes) in [vec![1u8, 2, 3], vec![9u8; 4000]].into_iter().enumerate() {
        let e = c
            .append_sealed_note(&crate::catalog::NewSealedNote {
                entry: ledger_entry(r.id, "siprec.metadata", t(1 + i as i64)),
                sealed: bytes,
            })
            .await
            .expect("note");
        assert_eq!(e.kind, "siprec.metadata");
        seqs.push(e.seq);
    }
    assert_eq!(seqs, [2, 3], "the note takes its ledger entry's place");
    let notes = c.sealed_notes(r.id).await.expect("notes");
    assert_eq!(notes.iter().map(|n| n.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(notes[0].sealed, [1, 2, 3]);
    assert_eq!(notes[1].sealed.len(), 4000);
    assert_eq!(c.ledger(r.id).await.expect("ledger").len(), 3);
    assert!(matches!(
        c.append_sealed_note(&crate::catalog::NewSealedNote {
            entry: ledger_entry(RecordingId::new(), "siprec.metadata", t(0)),
            sealed: vec![1],
        })
        .await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(
        c.sealed_notes(RecordingId::new())
            .await
            .expect("read")
            .is_empty()
    );
}

pub(crate) async fn ledger_appends_race_without_gaps(c: Arc<dyn Catalog>) {
    let r = recording("CA-ledger-race");
    stored(&*c, &r).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.append_ledger(&ledger_entry(r.id, "pause", t(i))).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.expect("task").expect("append").seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
}

pub(crate) async fn holds_place_link_and_release(c: Arc<dyn Catalog>) {
    let r1 = recording("CA-held-1");
    let r2 = recording("CA-held-2");
    stored(&*c, &r1).await;
    stored(&*c, &r2).await;
    let h = hold("C-100", t(0));
    c.insert_hold(&h).await.expect("insert hold");
    assert_eq!(c.hold("C-100").await.expect("read"), Some(h.clone()));
    assert_eq!(c.hold("C-none").await.expect("read"), None);
    assert!(matches!(
        c.insert_hold(&hold("C-100", t(1))).await,
        Err(CatalogError::Conflict { .. })
    ));

    c.link_hold("C-100", r1.id).await.expect("link");
    c.link_hold("C-100", r1.id)
        .await
        .expect("linking twice is fine");
    assert!(matches!(
        c.link_hold("C-none", r1.id).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        c.link_hold("C-100", RecordingId::new()).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert_eq!(
        c.holds_for_recording(r1.id).await.expect("read"),
        vec![h.clone()]
    );
    assert!(c.holds_for_recording(r2.id).await.expect("read").is_empty());
    assert!(matches!(
        c.holds_for_recording(RecordingId::new()).await,
        Err(CatalogError::NotFound { .. })
    ));

    // many to many: a second hold on both recordings
    let h2 = hold("C-200", t(5));
    c.insert_hold(&h2).await.expect("insert hold");
    c.link_hold("C-200", r1.id).await.expect("link");
    c.link_hold("C-200", r2.id).await.expect("link");
    assert_eq!(
        c.holds_for_recording(r1.id).await.expect("read"),
        vec![h.clone(), h2.clone()]
    );

    let released = c
        .release_hold("C-100", t(60), "bob", Some("complaint resolved"))
        .await
        .expect("release");
    let want = HoldRow {
        released_at: Some(t(60)),
        released_by: Some("bob".into()),
        release_reason: Some("complaint resolved".into()),
        ..h.clone()
    };
    assert_eq!(released, want);
    assert!(!released.is_active());
    assert_eq!(c.hold("C-100").await.expect("read"), Some(want.clone()));
    assert_eq!(
        c.holds_for_recording(r1.id).await.expect("read"),
        vec![h2.clone()]
    );
    assert!(matches!(
        c.release_hold("C-100", t(61), "bob", None).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        c.release_hold("C-none", t(61), "bob", None).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        c.link_hold("C-100", r2.id).await,
        Err(CatalogError::Conflict { .. })
    ));

    // a released reference can be used again; the active hold is the one found
    let again = hold("C-100", t(120));
    c.insert_hold(&again).await.expect("insert hold again");
    assert_eq!(c.hold("C-100").await.expect("read"), Some(again.clone()));
    assert_eq!(
        c.holds_for_recording(r1.id).await.expect("read"),
        vec![h2.clone()],
        "links belong to the released hold, not to its reference"
    );
    let released_again = c
        .release_hold("C-100", t(130), "carol", None)
        .await
        .expect("release");
    assert_eq!(released_again.released_by.as_deref(), Some("carol"));
    assert_eq!(released_again.release_reason, None);
    assert_eq!(
        c.hold("C-100").await.expect("read"),
        Some(released_again),
        "with no active hold, the last released one is found"
    );
}

pub(crate) async fn holds_filter_active(c: Arc<dyn Catalog>) {
    assert!(c.holds(false).await.expect("read").is_empty());
    let a = hold("C-a", t(0));
    let b = HoldRow {
        caller_tag: Some([3; 32]),
        from: Some(t(-86_400)),
        to: Some(t(86_400)),
        ..hold("C-b", t(10))
    };
    let cc = hold("C-c", t(20));
    for h in [&b, &a, &cc] {
        c.insert_hold(h).await.expect("insert hold");
    }
    assert_eq!(
        c.holds(false).await.expect("read"),
        vec![a.clone(), b.clone(), cc.clone()]
    );
    let released = c
        .release_hold("C-b", t(30), "bob", None)
        .await
        .expect("release");
    assert_eq!(
        c.holds(true).await.expect("read"),
        vec![a.clone(), cc.clone()]
    );
    assert_eq!(c.holds(false).await.expect("read"), vec![a, released, cc]);
}

pub(crate) async fn caller_holds_cover_recordings_in_range(c: Arc<dyn Catalog>) {
    let tag = [5; 32];
    let at = |call_id: &str, secs: i64, caller_tag: Option<[u8; 32]>| RecordingRow {
        started_at: t(secs),
        caller_tag,
        ..recording(call_id)
    };
    let before = at("CA-before", -10, Some(tag));
    let first = at("CA-first", 0, Some(tag));
    let inside = at("CA-inside", 50, Some(tag));
    let end = at("CA-end", 100, Some(tag));
    let stranger = at("CA-stranger", 50, Some([6; 32]));
    let anonymous = at("CA-anonymous", 50, None);
    for r in [&before, &first, &inside, &end, &stranger, &anonymous] {
        stored(&*c, r).await;
    }
    let ranged = HoldRow {
        caller_tag: Some(tag),
        from: Some(t(0)),
        to: Some(t(100)),
        ..hold("C-range", t(200))
    };
    let open = HoldRow {
        caller_tag: Some(tag),
        from: Some(t(50)),
        ..hold("C-open", t(201))
    };
    c.insert_hold(&ranged).await.expect("insert hold");
    c.insert_hold(&open).await.expect("insert hold");
    let refs = |holds: Vec<HoldRow>| holds.into_iter().map(|h| h.reference).collect::<Vec<_>>();
    let covering = async |r: &RecordingRow| refs(c.holds_for_recording(r.id).await.expect("read"));
    assert!(covering(&before).await.is_empty());
    assert_eq!(covering(&first).await, ["C-range"]);
    assert_eq!(covering(&inside).await, ["C-range", "C-open"]);
    assert_eq!(covering(&end).await, ["C-open"], "`to` is exclusive");
    assert!(covering(&stranger).await.is_empty());
    assert!(covering(&anonymous).await.is_empty());
    // linked and caller-covered at once: listed once
    c.link_hold("C-range", inside.id).await.expect("link");
    assert_eq!(covering(&inside).await, ["C-range", "C-open"]);
    c.release_hold("C-range", t(300), "bob", None)
        .await
        .expect("release");
    assert_eq!(covering(&inside).await, ["C-open"]);
    assert!(covering(&first).await.is_empty());
}

pub(crate) async fn audit_appends_in_order(c: Arc<dyn Catalog>) {
    assert_eq!(c.audit_head().await.expect("head"), ChainHead::EMPTY);
    assert!(c.audit_after(0, 10).await.expect("read").is_empty());
    let mut written = Vec::new();
    for i in 0..7 {
        let mut e = NewAuditEntry::new(t(i), "alice", "recording.play", format!("rec-{i}"));
        if i % 2 == 0 {
            e = e
                .reason("complaint C-1")
                .details(&serde_json::json!({"range": [0, i]}));
        }
        let stored = c.append_audit(e.clone()).await.expect("append");
        assert_eq!(stored.seq, i as u64 + 1);
        assert_eq!(stored.entry, e);
        assert_eq!(c.audit_head().await.expect("head"), stored.head());
        written.push(stored);
    }
    assert_eq!(written[0].prev_hash, ChainHead::EMPTY.hash);
    for pair in written.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(c.audit_after(0, 100).await.expect("read"), written);
    assert_eq!(c.audit_after(2, 3).await.expect("read"), written[2..5]);
    assert_eq!(c.audit_after(5, 100).await.expect("read"), written[5..]);
    assert!(c.audit_after(7, 100).await.expect("read").is_empty());
    assert!(c.audit_after(u64::MAX, 100).await.expect("read").is_empty());
    assert!(c.audit_after(0, 0).await.expect("read").is_empty());

    let mut v = ChainVerifier::new();
    written.iter().for_each(|e| v.push(e));
    assert_eq!(v.finish(), Ok((written[6].head(), 7)));
}

pub(crate) async fn audit_appends_race_without_forking(c: Arc<dyn Catalog>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                c.append_audit(NewAuditEntry::new(
                    t(i),
                    format!("actor-{i}"),
                    "recording.search",
                    "caller",
                ))
                .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.expect("task").expect("append").seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());

    // read back in pages, as `audit verify` does
    let mut v = ChainVerifier::new();
    let mut after = 0;
    loop {
        let page = c.audit_after(after, 16).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| v.push(e));
    }
    let head = c.audit_head().await.expect("head");
    assert_eq!(v.finish(), Ok((head, 50)));
}

pub(crate) async fn events_are_seen_once(c: Arc<dyn Catalog>) {
    assert!(c.mark_event_seen("evt-1", t(0)).await.expect("mark"));
    assert!(!c.mark_event_seen("evt-1", t(5)).await.expect("mark"));
    assert!(c.mark_event_seen("evt-2", t(10)).await.expect("mark"));
    assert!(c.mark_event_seen("evt-3", t(20)).await.expect("mark"));
    // prune forgets what was first seen before the cut-off, and only that
    assert_eq!(c.prune_seen_events(t(10)).await.expect("prune"), 1);
    assert_eq!(c.prune_seen_events(t(10)).await.expect("prune"), 0);
    assert!(!c.mark_event_seen("evt-2", t(30)).await.expect("mark"));
    assert!(c.mark_event_seen("evt-1", t(30)).await.expect("mark"));
    // a forgotten id is new again; forgetting an unknown id is no error
    c.forget_event("evt-1").await.expect("forget");
    c.forget_event("evt-never").await.expect("forget");
    assert!(c.mark_event_seen("evt-1", t(31)).await.expect("mark"));

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.mark_event_seen("evt-race", t(40)).await })
        })
        .collect();
    let mut firsts = 0;
    for task in tasks {
        firsts += usize::from(task.await.expect("task").expect("mark"));
    }
    assert_eq!(firsts, 1, "exactly one delivery is applied");
}

pub(crate) async fn tokens_round_trip_and_revoke(c: Arc<dyn Catalog>) {
    assert!(c.tokens().await.expect("read").is_empty());
    let a = token("tok-a", 1, t(0));
    let b = TokenRow {
        role: "compliance".into(),
        ..token("tok-b", 2, t(10))
    };
    c.insert_token(&b).await.expect("insert");
    c.insert_token(&a).await.expect("insert");
    assert_eq!(
        c.token_by_hash(&[1; 32]).await.expect("read"),
        Some(a.clone())
    );
    assert_eq!(
        c.token_by_hash(&[2; 32]).await.expect("read"),
        Some(b.clone())
    );
    assert_eq!(c.token_by_hash(&[3; 32]).await.expect("read"), None);
    assert!(matches!(
        c.insert_token(&token("tok-a", 9, t(20))).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        c.insert_token(&token("tok-c", 1, t(20))).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert_eq!(c.tokens().await.expect("read"), vec![a.clone(), b.clone()]);

    assert!(c.revoke_token("tok-a", t(30)).await.expect("revoke"));
    assert!(!c.revoke_token("tok-a", t(40)).await.expect("revoke"));
    assert!(!c.revoke_token("tok-none", t(40)).await.expect("revoke"));
    let revoked = c
        .token_by_hash(&[1; 32])
        .await
        .expect("read")
        .expect("a revoked token is still found");
    assert_eq!(
        revoked.revoked_at,
        Some(t(30)),
        "the first revocation time is kept"
    );
    assert!(!revoked.is_active());
    assert!(
        c.token_by_hash(&[2; 32])
            .await
            .expect("read")
            .expect("present")
            .is_active()
    );
    assert_eq!(c.tokens().await.expect("read"), vec![revoked, b]);
}

// --- supervisor access (issue 5)

pub(crate) async fn search_filters_and_pages(c: Arc<dyn Catalog>) {
    use super::RecordingQuery;
    let mut ids = Vec::new();
    for i in 0..7i64 {
        let mut r = recording(&format!("CA-search-{i}"));
        r.started_at = t(i * 60);
        r.caller_tag = Some(if i % 2 == 0 { [1; 32] } else { [2; 32] });
        r.agent = Some(if i < 4 { "agent-a" } else { "agent-b" }.into());
        r.queue = (i % 3 == 0).then(|| "council-tax".to_owned());
        c.insert_recording(&r).await.expect("insert");
        ids.push(r.id);
    }
    let q = |tag: Option<[u8; 32]>| RecordingQuery {
        caller_tag: tag,
        limit: 2,
        ..RecordingQuery::default()
    };
    // caller 1: recordings 0, 2, 4, 6, two a page
    let mut seen = Vec::new();
    let mut query = q(Some([1; 32]));
    loop {
        let page = c.search_recordings(&query).await.expect("search");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        let last = page.last().expect("non-empty");
        query.after = Some((last.started_at, last.id));
        seen.extend(page.iter().map(|r| r.id));
    }
    assert_eq!(seen, vec![ids[0], ids[2], ids[4], ids[6]]);
    // a range and an agent narrow it
    let found = c
        .search_recordings(&RecordingQuery {
            caller_tag: Some([1; 32]),
            from: Some(t(60)),
            to: Some(t(300)),
            agent: Some("agent-a".into()),
            limit: 10,
            ..RecordingQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2]]);
    let none = c
        .search_recordings(&RecordingQuery {
            caller_tag: Some([9; 32]),
            limit: 10,
            ..RecordingQuery::default()
        })
        .await
        .expect("search");
    assert!(none.is_empty());
    let by_line = c
        .search_recordings(&RecordingQuery {
            line: Some("+441234567890".into()),
            limit: 100,
            ..RecordingQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(by_line.len(), 7);
    // a queue narrows it too (issue 15): recordings 0, 3, 6, of which caller 1 has 0 and 6
    let by_queue = c
        .search_recordings(&RecordingQuery {
            caller_tag: Some([1; 32]),
            queue: Some("council-tax".into()),
            limit: 10,
            ..RecordingQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(
        by_queue.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[0], ids[6]]
    );
    let other_queue = c
        .search_recordings(&RecordingQuery {
            queue: Some("housing".into()),
            limit: 10,
            ..RecordingQuery::default()
        })
        .await
        .expect("search");
    assert!(other_queue.is_empty());
}

pub(crate) async fn sars_record_once_and_list_open_by_due(c: Arc<dyn Catalog>) {
    use super::SarRow;
    let sar = |reference: &str, received: i64| SarRow {
        reference: reference.into(),
        received_at: t(received),
        due_at: t(received + 30 * 86_400),
        caller_tag: Some([4; 32]),
        actor: "alice".into(),
        reason: "subject access request".into(),
        closed_at: None,
        closed_by: None,
        close_reason: None,
    };
    let late = c.record_sar(&sar("SAR-2", 100)).await.expect("record");
    assert_eq!(late, sar("SAR-2", 100));
    let early = c.record_sar(&sar("SAR-1", 50)).await.expect("record");
    // recording again keeps the first receipt
    assert_eq!(c.record_sar(&sar("SAR-2", 999)).await.expect("again"), late);
    assert_eq!(c.sar("SAR-2").await.expect("read"), Some(late.clone()));
    assert_eq!(c.sar("SAR-none").await.expect("read"), None);
    assert_eq!(
        c.open_sars(10).await.expect("list"),
        vec![early.clone(), late.clone()]
    );
    assert!(c.close_sar("SAR-1", t(200)).await.expect("close"));
    assert!(!c.close_sar("SAR-1", t(300)).await.expect("close"));
    assert!(!c.close_sar("SAR-none", t(300)).await.expect("close"));
    assert_eq!(c.open_sars(10).await.expect("list"), vec![late]);
    assert_eq!(
        c.sar("SAR-1")
            .await
            .expect("read")
            .and_then(|s| s.closed_at),
        Some(t(200))
    );
}

pub(crate) async fn audit_search_filters(c: Arc<dyn Catalog>) {
    use super::AuditQuery;
    for (i, (actor, action, subject)) in [
        ("alice", "recording.play", "r1"),
        ("bob", "recording.search", "caller"),
        ("alice", "recording.export", "SAR-1"),
        ("alice", "recording.play", "r2"),
    ]
    .into_iter()
    .enumerate()
    {
        c.append_audit(NewAuditEntry::new(t(i as i64 * 10), actor, action, subject))
            .await
            .expect("append");
    }
    let seqs = |v: Vec<crate::audit::AuditEntry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let all = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert_eq!(
        seqs(c.search_audit(&all).await.expect("search")),
        vec![1, 2, 3, 4]
    );
    let alice_plays = AuditQuery {
        actor: Some("alice".into()),
        action: Some("recording.play".into()),
        ..all.clone()
    };
    assert_eq!(
        seqs(c.search_audit(&alice_plays).await.expect("search")),
        vec![1, 4]
    );
    let paged = AuditQuery {
        after_seq: 1,
        limit: 1,
        ..alice_plays
    };
    assert_eq!(seqs(c.search_audit(&paged).await.expect("search")), vec![4]);
    let timed = AuditQuery {
        from: Some(t(10)),
        to: Some(t(30)),
        ..all.clone()
    };
    assert_eq!(
        seqs(c.search_audit(&timed).await.expect("search")),
        vec![2, 3]
    );
    let subject = AuditQuery {
        subject: Some("SAR-1".into()),
        ..all
    };
    assert_eq!(
        seqs(c.search_audit(&subject).await.expect("search")),
        vec![3]
    );
}

// --- retention (issue 4)

pub(crate) async fn retention_skips_held_and_finishes_pending(c: Arc<dyn Catalog>) {
    use super::{DeletionCause, FinishedDeletion, PendingDeletion, RetentionProgress};
    let now = t(100 * 86_400);
    let mut rows = Vec::new();
    for i in 0..3 {
        let mut r = recording(&format!("ret-{i}"));
        r.status = RecordingStatus::Sealed;
        r.caller_tag = Some([i as u8 + 1; 32]);
        r.expires_at = Some(t(90 * 86_400 + i));
        stored(c.as_ref(), &r).await;
        c.insert_segment(&SegmentRow {
            status: SegmentStatus::Stored,
            ..segment(r.id, 0, "kek-a")
        })
        .await
        .expect("segment");
        rows.push(r);
    }
    // one not yet due, one still spooled
    let mut later = recording("ret-later");
    later.status = RecordingStatus::Sealed;
    later.expires_at = Some(now + chrono::Duration::days(1));
    stored(c.as_ref(), &later).await;
    c.insert_hold(&hold("H-1", t(5))).await.expect("hold");
    c.link_hold("H-1", rows[0].id).await.expect("link");
    c.insert_hold(&HoldRow {
        caller_tag: Some([2; 32]),
        ..hold("H-2", t(6))
    })
    .await
    .expect("caller hold");
    let due = c.expired_recordings(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rows[2].id],
        "held (linked and by caller) and not yet due are left out"
    );
    let pending: Vec<PendingDeletion> = rows
        .iter()
        .map(|r| PendingDeletion {
            recording_id: r.id,
            cause: DeletionCause::Expired,
            actor: "system:retention".into(),
            reason: None,
            requested_at: now,
            segment: None,
        })
        .collect();
    let begun = c.begin_deletions(&pending).await.expect("begin");
    assert_eq!(begun, vec![rows[2].id], "a held recording cannot begin");
    assert_eq!(
        c.begin_deletions(&pending[2..]).await.expect("again"),
        vec![rows[2].id],
        "idempotent"
    );
    assert!(c.expired_recordings(now, 10).await.expect("due").is_empty());
    assert_eq!(
        c.pending_deletions(10).await.expect("pending"),
        vec![pending[2].clone()]
    );
    let finish = FinishedDeletion {
        recording_id: rows[2].id,
        status: RecordingStatus::Expired,
        segment: None,
        forget_caller: true,
        at: now,
        ledger: ledger_entry(rows[2].id, "deleted", now),
        audit: NewAuditEntry::new(now, "system:retention", "recording.expire", "x"),
    };
    assert_eq!(
        c.finish_deletions(std::slice::from_ref(&finish))
            .await
            .expect("finish"),
        1
    );
    assert_eq!(
        c.finish_deletions(&[finish]).await.expect("again"),
        0,
        "done once"
    );
    let row = c
        .recording(rows[2].id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(row.status, RecordingStatus::Expired);
    assert_eq!(
        (row.caller_tag, row.caller_sealed),
        (None, None),
        "the caller goes with the audio"
    );
    let segs = c.segments(rows[2].id).await.expect("segments");
    assert!(segs[0].wrapped_key.is_none());
    assert_eq!(segs[0].status, SegmentStatus::Deleted);
    assert_eq!(c.ledger(rows[2].id).await.expect("ledger").len(), 1);
    assert_eq!(c.audit_head().await.expect("head").seq, 1);
    assert!(c.pending_deletions(10).await.expect("pending").is_empty());

    // releasing the caller hold makes rows[1] due; rows[0] stays linked to H-1
    c.release_hold("H-2", t(7), "bob", None)
        .await
        .expect("release");
    let due = c.expired_recordings(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rows[1].id]
    );

    assert_eq!(
        c.retention_progress().await.expect("read"),
        RetentionProgress::default()
    );
    let p = RetentionProgress {
        sweeps: 2,
        expired: 5,
        erased: 1,
        last_started_at: Some(t(1)),
        last_finished_at: Some(t(2)),
        last_deleted: 3,
        last_error: Some("boom".into()),
    };
    c.save_retention_progress(&p).await.expect("save");
    assert_eq!(c.retention_progress().await.expect("read"), p);

    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = c.recordings_after(after, 2).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "id order");
}

pub(crate) async fn sweep_lock_is_taken_again_once_dropped(c: Arc<dyn Catalog>) {
    let lock = c
        .try_lock_sweep()
        .await
        .expect("lock")
        .expect("nobody else sweeps a fresh catalog");
    drop(lock);
    // a backend may release the lock a moment after the drop (a session closing): wait a little
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let held = loop {
        if let Some(again) = c.try_lock_sweep().await.expect("lock") {
            break again;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep lock was not released after its guard was dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // and the catalog still answers while a lock is held
    c.check().await.expect("check while locked");
    drop(held);
}
