use chrono::{DateTime, Duration, Utc};

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
        + Duration::seconds(s)
}

fn rules() -> Rules {
    Rules {
        settle: Duration::minutes(30),
        tolerance: Duration::seconds(5),
        lookback: Duration::milliseconds(3500),
    }
}

/// A 60 s call, started and ended by events, whose recording started with it.
fn call(recording: Option<RecordingFacts>) -> CallFacts {
    CallFacts {
        first_seen: t(0),
        started_at: Some(t(0)),
        ended_at: Some(t(60)),
        duration_ms: None,
        recording,
    }
}

fn seg(start_s: u64, end_s: u64) -> SegmentSpan {
    SegmentSpan {
        start_ms: start_s * 1000,
        end_ms: end_s * 1000,
        uploaded: true,
    }
}

fn rec(segments: Vec<SegmentSpan>) -> RecordingFacts {
    RecordingFacts {
        status: RecordingStatus::Sealed,
        started_at: t(0),
        ended_at: Some(t(60)),
        explicit_consent: false,
        consent_given: false,
        refused: false,
        media_opened: !segments.is_empty(),
        segments,
        pauses: Vec::new(),
        silences: Vec::new(),
        losses: Vec::new(),
    }
}

fn settled(facts: &CallFacts) -> Verdict {
    assess(facts, &rules(), t(60) + Duration::hours(1))
}

#[test]
fn state_texts_are_frozen_and_round_trip() {
    let texts: Vec<_> = CompletenessState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        texts,
        ["recorded", "partial", "not_recorded", "withheld", "failed"]
    );
    for s in CompletenessState::ALL {
        assert_eq!(s.as_str().parse::<CompletenessState>(), Ok(s));
    }
    assert_eq!("".parse::<CompletenessState>(), Err(UnknownState));
    let attention: Vec<_> = CompletenessState::ALL
        .into_iter()
        .filter(|s| s.needs_attention())
        .collect();
    assert_eq!(
        attention,
        [
            CompletenessState::Partial,
            CompletenessState::NotRecorded,
            CompletenessState::Failed
        ]
    );
}

#[test]
fn audio_covering_the_call_is_recorded() {
    let v = settled(&call(Some(rec(vec![seg(0, 30), seg(30, 60)]))));
    assert_eq!(
        (v.state, v.reason, v.settled),
        (CompletenessState::Recorded, Reason::Complete, true)
    );
}

#[test]
fn a_late_start_within_the_tolerance_is_still_recorded_and_beyond_it_is_short() {
    let v = settled(&call(Some(rec(vec![seg(4, 60)]))));
    assert_eq!(v.state, CompletenessState::Recorded);
    let v = settled(&call(Some(rec(vec![seg(12, 60)]))));
    assert_eq!(v.state, CompletenessState::Partial);
    assert_eq!(v.reason, Reason::ShortAudio { missing_ms: 12_000 });
    assert_eq!(
        v.reason.to_string(),
        "audio shorter than the call by 12.0 s beyond pauses and look-back"
    );
}

#[test]
fn a_call_with_no_recording_or_no_stream_is_not_recorded() {
    let v = settled(&call(None));
    assert_eq!(
        (v.state, v.reason),
        (CompletenessState::NotRecorded, Reason::NoMedia)
    );
    let v = settled(&call(Some(rec(Vec::new()))));
    assert_eq!(
        (v.state, v.reason),
        (CompletenessState::NotRecorded, Reason::NoMedia)
    );
    let mut opened = rec(vec![SegmentSpan {
        start_ms: 500,
        end_ms: 500,
        uploaded: true,
    }]);
    opened.media_opened = true;
    let v = settled(&call(Some(opened)));
    assert_eq!(
        (v.state, v.reason),
        (CompletenessState::NotRecorded, Reason::NoAudio)
    );
}

#[test]
fn a_stream_that_closed_half_way_ended_early() {
    let v = settled(&call(Some(rec(vec![seg(0, 30)]))));
    assert_eq!(v.state, CompletenessState::Partial);
    assert_eq!(v.reason, Reason::StreamEndedEarly { missing_ms: 30_000 });
    assert_eq!(v.reason.missing_ms(), Some(30_000));
}

#[test]
fn pauses_and_their_look_back_are_not_missing() {
    // 20 s paused for a card payment, and the 3.5 s before it dropped too: recorded
    let mut r = rec(vec![seg(0, 16), seg(40, 60)]);
    r.pauses.push(Window {
        from: t(20),
        to: Some(t(40)),
    });
    let v = settled(&call(Some(r.clone())));
    assert_eq!(v.state, CompletenessState::Recorded, "{v:?}");
    // a pause never resumed runs to the end of the call (fail closed)
    r.segments = vec![seg(0, 20)];
    r.pauses = vec![Window {
        from: t(20),
        to: None,
    }];
    assert_eq!(
        settled(&call(Some(r.clone()))).state,
        CompletenessState::Recorded
    );
    // but a hole away from any pause is missing audio
    r.segments = vec![seg(0, 10), seg(30, 50)];
    r.pauses = vec![Window {
        from: t(50),
        to: Some(t(60)),
    }];
    let v = settled(&call(Some(r)));
    assert_eq!(v.reason, Reason::ShortAudio { missing_ms: 20_000 });
}

#[test]
fn silence_the_stream_did_not_send_is_not_missing() {
    let mut r = rec(vec![seg(0, 20), seg(45, 60)]);
    r.silences.push(Window {
        from: t(20),
        to: Some(t(45)),
    });
    assert_eq!(settled(&call(Some(r))).state, CompletenessState::Recorded);
}

#[test]
fn overlapping_spans_are_counted_once() {
    // two segments and a pause overlapping one another still leave 30 s missing at the end
    let mut r = rec(vec![seg(0, 20), seg(10, 25)]);
    r.pauses.push(Window {
        from: t(15),
        to: Some(t(30)),
    });
    let v = settled(&call(Some(r)));
    assert_eq!(v.reason, Reason::StreamEndedEarly { missing_ms: 30_000 });
}

#[test]
fn a_loss_the_ledger_names_is_the_reason() {
    let mut r = rec(vec![seg(0, 40)]);
    r.losses.push(Loss {
        cause: "crash".to_owned(),
        ms: 2000,
    });
    let v = settled(&call(Some(r)));
    assert_eq!(
        v.reason,
        Reason::AudioLost {
            missing_ms: 20_000,
            cause: "crash".to_owned()
        }
    );
    assert_eq!(v.reason.to_string(), "20.0 s of audio lost: crash");
}

#[test]
fn a_refusal_or_consent_never_given_is_withheld() {
    let mut r = rec(vec![seg(0, 60)]);
    r.status = RecordingStatus::Refused;
    assert_eq!(
        settled(&call(Some(r.clone()))).reason,
        Reason::Refused,
        "a tombstone"
    );
    r.status = RecordingStatus::RefusalHeld;
    assert_eq!(
        settled(&call(Some(r.clone()))).state,
        CompletenessState::Withheld
    );
    r.status = RecordingStatus::Sealed;
    r.refused = true;
    assert_eq!(settled(&call(Some(r))).reason, Reason::Refused);

    let mut r = rec(Vec::new());
    r.explicit_consent = true;
    r.media_opened = true;
    let v = settled(&call(Some(r.clone())));
    assert_eq!(
        (v.state, v.reason),
        (CompletenessState::Withheld, Reason::ConsentNotGiven)
    );
    // consent given: judged like any other call
    r.consent_given = true;
    r.segments = vec![seg(0, 60)];
    assert_eq!(settled(&call(Some(r))).state, CompletenessState::Recorded);
}

#[test]
fn a_quarantined_recording_failed() {
    let mut r = rec(vec![seg(0, 60)]);
    r.status = RecordingStatus::Quarantined;
    let v = settled(&call(Some(r)));
    assert_eq!(
        (v.state, v.reason),
        (CompletenessState::Failed, Reason::Quarantined)
    );
}

#[test]
fn segments_not_uploaded_are_partial_until_settled_then_failed() {
    let mut r = rec(vec![seg(0, 30), seg(30, 60)]);
    r.segments[1].uploaded = false;
    let facts = call(Some(r));
    let early = assess(&facts, &rules(), t(61));
    assert_eq!(
        (early.state, early.reason, early.settled),
        (
            CompletenessState::Partial,
            Reason::UploadPending { segments: 1 },
            false
        )
    );
    let late = settled(&facts);
    assert_eq!(
        (late.state, late.reason, late.settled),
        (
            CompletenessState::Failed,
            Reason::UploadFailed { segments: 1 },
            true
        )
    );
    // once uploaded, before the settle time: recorded
    let mut facts = facts;
    if let Some(r) = facts.recording.as_mut() {
        r.segments[1].uploaded = true;
    }
    assert_eq!(
        assess(&facts, &rules(), t(61)).state,
        CompletenessState::Recorded
    );
}

#[test]
fn the_platforms_duration_is_the_calls_length_when_no_end_came() {
    let mut facts = call(Some(rec(vec![seg(0, 60)])));
    facts.ended_at = None;
    facts.duration_ms = Some(90_000);
    let v = settled(&facts);
    assert_eq!(v.reason, Reason::StreamEndedEarly { missing_ms: 30_000 });
    assert_eq!(facts.end(), Some(t(90)));
}

#[test]
fn a_call_settles_only_its_settle_time_after_it_ended_and_was_sealed() {
    let r = rules();
    let facts = call(Some(rec(vec![seg(0, 60)])));
    assert_eq!(facts.settles_at(&r), t(60) + Duration::minutes(30));
    assert!(!assess(&facts, &r, t(60) + Duration::minutes(29)).settled);
    assert!(assess(&facts, &r, t(60) + Duration::minutes(30)).settled);
    // sealed after the platform's end (audio sent after call.ended): counted from the seal
    let mut later = facts.clone();
    if let Some(rec) = later.recording.as_mut() {
        rec.ended_at = Some(t(75));
    }
    assert_eq!(later.settles_at(&r), t(75) + Duration::minutes(30));
    // still live: a day after it was first seen at the latest
    let mut live = facts.clone();
    if let Some(rec) = live.recording.as_mut() {
        rec.status = RecordingStatus::Live;
        rec.ended_at = None;
    }
    assert_eq!(
        live.settles_at(&r),
        t(0) + LONGEST_CALL + Duration::minutes(30)
    );
    // known from a call.started alone: no end, no recording
    let bare = CallFacts {
        first_seen: t(5),
        started_at: Some(t(0)),
        ended_at: None,
        duration_ms: None,
        recording: None,
    };
    assert_eq!(
        bare.settles_at(&r),
        t(5) + LONGEST_CALL + Duration::minutes(30)
    );
    assert_eq!(bare.start(), t(0));
}

#[test]
fn a_call_with_no_length_known_is_judged_by_its_audio_alone() {
    let mut facts = call(Some(rec(vec![seg(0, 20)])));
    facts.ended_at = None;
    facts.started_at = None;
    if let Some(r) = facts.recording.as_mut() {
        r.ended_at = None;
    }
    assert_eq!(settled(&facts).state, CompletenessState::Recorded);
}
