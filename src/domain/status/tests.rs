use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use RecordingStatus::*;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid")
}

type Transition = fn(RecordingStatus) -> Result<RecordingStatus, TransitionError>;

/// Checks a transition against every status: `allowed` lists each status it accepts and where it
/// leads; every other status must be refused with `refused(status)`.
fn table(
    name: &str,
    f: Transition,
    allowed: &[(RecordingStatus, RecordingStatus)],
    refused: impl Fn(RecordingStatus) -> TransitionError,
) {
    for from in RecordingStatus::ALL {
        let got = f(from);
        match allowed.iter().find(|(a, _)| *a == from) {
            Some((_, to)) => assert_eq!(got, Ok(*to), "{name} from {from}"),
            None => assert_eq!(got, Err(refused(from)), "{name} from {from} is refused"),
        }
    }
}

#[test]
fn texts_are_frozen_and_round_trip() {
    let texts: Vec<_> = RecordingStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        texts,
        [
            "live",
            "sealed",
            "pci_review",
            "quarantined",
            "refused",
            "expired",
            "erased",
            "refusal_held"
        ]
    );
    for s in RecordingStatus::ALL {
        assert_eq!(s.as_str().parse::<RecordingStatus>(), Ok(s));
    }
    assert_eq!("Live".parse::<RecordingStatus>(), Err(UnknownStatus));
}

#[test]
fn seal_from_live_only_and_keeps_review_and_refusals() {
    table(
        "seal",
        RecordingStatus::seal,
        &[
            (Live, Sealed),
            (PciReview, PciReview),
            (Refused, Refused),
            (RefusalHeld, RefusalHeld),
        ],
        TransitionError::NotLive,
    );
}

#[test]
fn quarantine_from_live_only_and_keeps_review_and_refusals() {
    table(
        "quarantine",
        RecordingStatus::quarantine,
        &[
            (Live, Quarantined),
            (PciReview, PciReview),
            (Refused, Refused),
            (RefusalHeld, RefusalHeld),
        ],
        TransitionError::NotLive,
    );
}

#[test]
fn review_needs_audio_not_under_a_refusal() {
    table(
        "review",
        RecordingStatus::review,
        &[
            (Live, PciReview),
            (Sealed, PciReview),
            (Quarantined, PciReview),
            (PciReview, PciReview),
        ],
        TransitionError::NoAudio,
    );
}

#[test]
fn clear_review_only_from_review() {
    table(
        "clear_review",
        RecordingStatus::clear_review,
        &[(PciReview, Sealed)],
        TransitionError::NotUnderReview,
    );
}

#[test]
fn refuse_destroys_anything_with_audio_once() {
    table(
        "refuse",
        RecordingStatus::refuse,
        &[
            (Live, Refused),
            (Sealed, Refused),
            (PciReview, Refused),
            (Quarantined, Refused),
            (RefusalHeld, Refused),
        ],
        |s| match s {
            Refused => TransitionError::AlreadyRefused,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn refuse_held_keeps_audio_once() {
    table(
        "refuse_held",
        RecordingStatus::refuse_held,
        &[
            (Live, RefusalHeld),
            (Sealed, RefusalHeld),
            (PciReview, RefusalHeld),
            (Quarantined, RefusalHeld),
        ],
        |s| match s {
            Refused | RefusalHeld => TransitionError::AlreadyRefused,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn expire_never_a_live_call_nor_a_held_refusal() {
    table(
        "expire",
        RecordingStatus::expire,
        &[
            (Sealed, Expired),
            (PciReview, Expired),
            (Quarantined, Expired),
        ],
        |s| match s {
            Live => TransitionError::Live,
            RefusalHeld => TransitionError::RefusalHeld,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn erase_anything_stored() {
    table(
        "erase",
        RecordingStatus::erase,
        &[
            (Sealed, Erased),
            (PciReview, Erased),
            (Quarantined, Erased),
            (RefusalHeld, Erased),
        ],
        |s| match s {
            Live => TransitionError::Live,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn excise_keeps_the_status_unless_the_review_clears() {
    table(
        "excise (review not cleared)",
        |s| s.excise(false),
        &[
            (Sealed, Sealed),
            (PciReview, PciReview),
            (Quarantined, Quarantined),
            (RefusalHeld, RefusalHeld),
        ],
        |s| match s {
            Live => TransitionError::Live,
            s => TransitionError::Destroyed(s),
        },
    );
    table(
        "excise (review cleared)",
        |s| s.excise(true),
        &[
            (Sealed, Sealed),
            (PciReview, Sealed),
            (Quarantined, Quarantined),
            (RefusalHeld, RefusalHeld),
        ],
        |s| match s {
            Live => TransitionError::Live,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn restrict_anything_with_audio_and_a_held_refusal_stays_restricted() {
    table(
        "restrict",
        RecordingStatus::restrict,
        &[
            (Live, Live),
            (Sealed, Sealed),
            (PciReview, PciReview),
            (Quarantined, Quarantined),
            (RefusalHeld, RefusalHeld),
        ],
        TransitionError::Destroyed,
    );
    table(
        "unrestrict",
        RecordingStatus::unrestrict,
        &[
            (Live, Live),
            (Sealed, Sealed),
            (PciReview, PciReview),
            (Quarantined, Quarantined),
        ],
        |s| match s {
            RefusalHeld => TransitionError::RefusalHeld,
            s => TransitionError::Destroyed(s),
        },
    );
}

#[test]
fn audio_and_destroyed_partition_the_statuses() {
    for s in RecordingStatus::ALL {
        assert_ne!(s.has_audio(), s.is_destroyed(), "{s}");
    }
}

#[test]
fn expiry_counts_calendar_months() {
    assert_eq!(
        expires_at(at(2026, 1, 31), Period::months(3)),
        Some(at(2026, 4, 30))
    );
    assert_eq!(
        expires_at(at(2026, 3, 15), Period::months(12)),
        Some(at(2027, 3, 15))
    );
}

#[test]
fn a_call_never_ends_before_it_started() {
    let started = at(2026, 3, 1);
    assert_eq!(seal_end(started, started - Duration::minutes(5)), started);
    let ended = started + Duration::minutes(5);
    assert_eq!(seal_end(started, ended), ended);
}

#[test]
fn pause_instant_is_the_earlier_time_minus_the_guard() {
    let t = at(2026, 3, 1);
    let guard = Duration::milliseconds(500);
    assert_eq!(pause_instant(t, t + Duration::seconds(2), guard), t - guard);
    assert_eq!(
        pause_instant(t + Duration::seconds(2), t, guard),
        t - guard,
        "a timestamp in the future does not delay the pause"
    );
}

#[test]
fn refusal_after_the_window_is_late_whatever_the_holds() {
    let ended = at(2026, 3, 1);
    let window = Duration::minutes(10);
    let after = |m: i64| {
        (
            RefusalSource::AfterCall { ended },
            ended + Duration::minutes(m),
        )
    };
    assert_eq!(
        refusal_decision(RefusalSource::DuringCall, ended, window, false),
        RefusalDecision::Destroy
    );
    assert_eq!(
        refusal_decision(RefusalSource::DuringCall, ended, window, true),
        RefusalDecision::Hold
    );
    let (source, arrival) = after(9);
    assert_eq!(
        refusal_decision(source, arrival, window, false),
        RefusalDecision::Destroy
    );
    assert_eq!(
        refusal_decision(source, arrival, window, true),
        RefusalDecision::Hold
    );
    let (source, arrival) = after(10);
    assert_eq!(
        refusal_decision(source, arrival, window, false),
        RefusalDecision::Destroy,
        "at the limit still applies"
    );
    let (source, arrival) = after(11);
    assert_eq!(
        refusal_decision(source, arrival, window, false),
        RefusalDecision::Late
    );
    assert_eq!(
        refusal_decision(source, arrival, window, true),
        RefusalDecision::Late
    );
}

#[test]
fn review_clears_only_when_no_stored_segment_holds_a_pause() {
    assert!(review_cleared(&[], &[(0, 10_000)]));
    assert!(!review_cleared(&[5_000], &[(0, 10_000)]));
    assert!(
        review_cleared(&[10_000], &[(0, 10_000)]),
        "end is exclusive"
    );
    assert!(review_cleared(&[5_000], &[(6_000, 10_000)]));
    assert!(!review_cleared(&[1, 5_000], &[(0, 2), (6_000, 10_000)]));
    assert_eq!(
        segments_after_pause(5_000, &[(0, 4_000), (1, 6_000), (2, 9_000)]),
        vec![1, 2]
    );
    assert!(segments_after_pause(9_000, &[(0, 9_000)]).is_empty());
}

#[test]
fn a_repeated_call_started_names_each_difference() {
    let first = CallDetails {
        line: Some("+441000000001".into()),
        caller_tag: Some([1; 32]),
        agent: Some("a".into()),
        queue: Some("standard".into()),
    };
    assert!(first.conflicts(&first.clone()).is_empty());
    let again = CallDetails {
        caller_tag: Some([2; 32]),
        queue: Some("complaints".into()),
        ..first.clone()
    };
    assert_eq!(first.conflicts(&again), vec!["caller", "queue"]);
    let filled = CallDetails {
        agent: None,
        ..first.clone()
    };
    assert_eq!(filled.conflicts(&first), vec!["agent"]);
}
