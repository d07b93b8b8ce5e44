//! The lifecycle, transition by transition, including events that come early, late, twice, or out
//! of order.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::domain::{PauseRender, Period};

fn t(secs: f64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("valid time");
    base + Duration::microseconds((secs * 1e6) as i64)
}

fn policy(consent: ConsentMode, max_pause: Option<u64>) -> Policy {
    Policy {
        name: "standard".into(),
        retention: Period::months(3),
        consent,
        consent_wait: StdDuration::from_secs(20),
        pause_render: PauseRender::Tone,
        max_pause: max_pause.map(StdDuration::from_secs),
        dtmf: crate::domain::DtmfPolicy::default(),
    }
}

fn timing() -> Timing {
    Timing {
        lookback: Duration::seconds(3),
        guard: Duration::milliseconds(500),
        dtmf: crate::domain::DtmfPolicy::default(),
        resume_margin: Duration::seconds(1),
    }
}

/// A call with implied consent that started at t(0).
fn call() -> Lifecycle {
    let mut l = Lifecycle::new(timing());
    l.set_policy(policy(ConsentMode::Implied, None), t(0.0));
    l
}

fn kept(l: &Lifecycle, from: f64, to: f64) -> Vec<(f64, f64, bool)> {
    let secs = |d: DateTime<Utc>| (d - t(0.0)).num_microseconds().expect("small") as f64 / 1e6;
    l.classify(t(from), t(to))
        .into_iter()
        .map(|(a, b, k)| (secs(a), secs(b), k))
        .collect()
}

fn ledger_kinds(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Ledger(n) => Some(n.kind),
            _ => None,
        })
        .collect()
}

#[test]
fn implied_consent_captures_and_commits_after_the_window() {
    let l = call();
    assert!(l.captures(t(1.0)));
    assert_eq!(kept(&l, 0.0, 10.0), vec![(0.0, 10.0, true)]);
    assert_eq!(l.horizon(t(10.0)), Horizon::Until(t(6.5)));
}

#[test]
fn nothing_commits_before_the_policy_is_known() {
    let l = Lifecycle::new(timing());
    assert_eq!(l.horizon(t(10.0)), Horizon::Hold);
    assert!(l.captures(t(1.0)), "audio is held meanwhile");
}

#[test]
fn a_payment_on_time_pauses_from_its_instant_minus_the_guard() {
    let mut l = call();
    let fx = l
        .apply(&EventKind::PaymentStarted, t(10.0), t(10.0))
        .expect("applies");
    assert_eq!(fx[0], Effect::DropFrom(t(9.5)));
    assert_eq!(ledger_kinds(&fx), ["pause"]);
    assert_eq!(
        kept(&l, 9.0, 12.0),
        vec![(9.0, 9.5, true), (9.5, 12.0, false)]
    );
    assert!(!l.captures(t(100.0)), "no end: paused until the call ends");
}

#[test]
fn a_late_payment_uses_its_own_time_and_an_early_clock_uses_the_arrival() {
    let mut l = call();
    let fx = l
        .apply(&EventKind::PaymentStarted, t(10.0), t(12.9))
        .expect("applies");
    assert_eq!(
        fx[0],
        Effect::DropFrom(t(9.5)),
        "2.9 s late: the event's time counts"
    );
    let Effect::Ledger(n) = &fx[1] else {
        panic!("a ledger note")
    };
    assert_eq!(n.details["late_ms"], 2900);

    let mut l = call();
    let fx = l
        .apply(&EventKind::PaymentStarted, t(15.0), t(10.0))
        .expect("applies");
    assert_eq!(
        fx[0],
        Effect::DropFrom(t(9.5)),
        "a platform clock ahead: the arrival counts"
    );
}

#[test]
fn a_payment_before_the_stream_opens_drops_the_audio_that_follows() {
    let mut l = Lifecycle::new(timing());
    l.apply(&EventKind::PaymentStarted, t(0.2), t(0.2))
        .expect("applies");
    l.set_policy(policy(ConsentMode::Implied, None), t(1.0));
    assert_eq!(kept(&l, 1.0, 5.0), vec![(1.0, 5.0, false)]);
}

#[test]
fn payment_end_resumes_at_its_arrival_never_earlier() {
    let mut l = call();
    l.apply(&EventKind::PaymentStarted, t(10.0), t(10.0))
        .expect("applies");
    // sent at 20 s, arrived at 21 s: audio 20-21 s stays dropped, and so does audio that could
    // have been spoken before 21 s and was held up on its way (the margin, 1 s)
    let fx = l
        .apply(&EventKind::PaymentEnded, t(20.0), t(21.0))
        .expect("applies");
    assert_eq!(ledger_kinds(&fx), ["resume"]);
    assert_eq!(
        kept(&l, 9.0, 25.0),
        vec![(9.0, 9.5, true), (9.5, 22.0, false), (22.0, 25.0, true)]
    );
    assert_eq!(l.pauses()[0].to, Some(t(21.0)));
}

#[test]
fn repeated_starts_and_ends_change_nothing() {
    let mut l = call();
    l.apply(&EventKind::PaymentStarted, t(10.0), t(10.0))
        .expect("applies");
    let fx = l
        .apply(&EventKind::PaymentStarted, t(11.0), t(11.0))
        .expect("applies");
    assert_eq!(ledger_kinds(&fx), ["pause.repeated"]);
    assert_eq!(l.pauses().len(), 1);
    l.apply(&EventKind::PaymentEnded, t(20.0), t(20.0))
        .expect("applies");
    let fx = l
        .apply(&EventKind::PaymentEnded, t(21.0), t(21.0))
        .expect("applies");
    assert_eq!(ledger_kinds(&fx), ["resume.unmatched"]);
    assert_eq!(l.pauses()[0].to, Some(t(20.0)));
}

#[test]
fn an_end_that_overtakes_its_start_closes_the_pause_at_the_start_arrival() {
    let mut l = call();
    l.apply(&EventKind::PaymentEnded, t(20.0), t(20.1))
        .expect("noted");
    let fx = l
        .apply(&EventKind::PaymentStarted, t(10.0), t(20.3))
        .expect("applies");
    assert_eq!(fx[0], Effect::DropFrom(t(9.5)));
    assert_eq!(ledger_kinds(&fx), ["pause", "resume"]);
    assert_eq!(
        kept(&l, 9.0, 22.0),
        vec![(9.0, 9.5, true), (9.5, 21.3, false), (21.3, 22.0, true)]
    );
}

#[test]
fn an_end_for_an_older_payment_does_not_close_a_new_one() {
    let mut l = call();
    l.apply(&EventKind::PaymentEnded, t(5.0), t(5.0))
        .expect("noted");
    l.apply(&EventKind::PaymentStarted, t(10.0), t(10.0))
        .expect("applies");
    assert!(!l.captures(t(30.0)), "fails closed: still paused");
}

#[test]
fn max_pause_resumes_by_itself_and_says_so() {
    let mut l = Lifecycle::new(timing());
    l.set_policy(policy(ConsentMode::Implied, Some(60)), t(0.0));
    l.apply(&EventKind::PaymentStarted, t(10.0), t(10.0))
        .expect("applies");
    assert!(l.tick(t(60.0)).is_empty());
    let fx = l.tick(t(69.6));
    assert_eq!(ledger_kinds(&fx), ["resume"]);
    let Effect::Ledger(n) = &fx[0] else {
        panic!("a ledger note")
    };
    assert_eq!(n.details["cause"], "max_pause");
    assert!(l.captures(t(70.6)));
    assert!(!l.captures(t(70.5)));
}

#[test]
fn agent_pauses_and_payment_pauses_overlap_safely() {
    let mut l = call();
    l.apply(&EventKind::RecordingPaused { reason: None }, t(5.0), t(5.0))
        .expect("applies");
    l.apply(&EventKind::PaymentStarted, t(7.0), t(7.0))
        .expect("applies");
    l.apply(
        &EventKind::RecordingResumed { reason: None },
        t(8.0),
        t(8.0),
    )
    .expect("applies");
    assert!(!l.captures(t(9.0)), "the payment pause is still on");
    l.apply(&EventKind::PaymentEnded, t(10.0), t(10.0))
        .expect("applies");
    assert!(!l.captures(t(10.5)), "the resume margin");
    assert!(l.captures(t(11.0)));
}

#[test]
fn a_refusal_destroys_everything_and_stops_capture_for_good() {
    let mut l = call();
    let fx = l
        .apply(&EventKind::ConsentRefused, t(10.0), t(10.0))
        .expect("applies");
    assert_eq!(fx[0], Effect::DestroyAll);
    assert!(!l.captures(t(11.0)));
    assert!(!l.captures(t(5.0)), "not even what came before");
    assert_eq!(l.horizon(t(100.0)), Horizon::Hold);
    assert_eq!(
        l.apply(&EventKind::ConsentGiven, t(12.0), t(12.0)),
        Err(Refusal::Refused("consent.given"))
    );
    assert!(
        l.apply(&EventKind::ConsentRefused, t(13.0), t(13.0))
            .expect("idempotent")
            .is_empty()
    );
    assert!(l.apply(&EventKind::CallEnded, t(14.0), t(14.0)).is_ok());
}

#[test]
fn explicit_consent_in_time_keeps_the_held_audio() {
    let mut l = Lifecycle::new(timing());
    l.set_policy(policy(ConsentMode::Explicit, None), t(0.0));
    assert_eq!(l.horizon(t(10.0)), Horizon::Hold);
    let fx = l
        .apply(&EventKind::ConsentGiven, t(15.0), t(15.0))
        .expect("applies");
    assert_eq!(ledger_kinds(&fx), ["consent.given"]);
    assert!(l.captures(t(1.0)), "held audio may now be committed");
    assert_eq!(l.horizon(t(15.0)), Horizon::Until(t(11.5)));
    assert!(l.tick(t(30.0)).is_empty(), "consent given: nothing lapses");
}

#[test]
fn explicit_consent_that_never_comes_discards_the_held_audio() {
    let mut l = Lifecycle::new(timing());
    l.set_policy(policy(ConsentMode::Explicit, None), t(0.0));
    assert!(l.tick(t(19.9)).is_empty());
    let fx = l.tick(t(20.0));
    assert_eq!(fx[0], Effect::DiscardHeld);
    assert!(!l.captures(t(21.0)));
    assert_eq!(kept(&l, 19.0, 22.0), vec![(19.0, 22.0, false)]);
    // consent after the wait captures from its arrival only
    l.apply(&EventKind::ConsentGiven, t(24.0), t(25.0))
        .expect("applies");
    assert_eq!(
        kept(&l, 20.0, 30.0),
        vec![(20.0, 25.0, false), (25.0, 30.0, true)]
    );
}

#[test]
fn the_end_of_the_call_cuts_nothing_flushes_after_the_window_and_refuses_later_pauses() {
    let mut l = call();
    let fx = l
        .apply(&EventKind::CallEnded, t(60.0), t(60.0))
        .expect("applies");
    assert_eq!(ledger_kinds(&fx), ["call.ended"]);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::DropFrom(_))),
        "the end of a call never cuts audio that arrived before the stream closed"
    );
    assert_eq!(l.horizon(t(62.0)), Horizon::Until(t(58.5)));
    assert_eq!(l.horizon(t(63.5)), Horizon::All);
    assert!(
        l.captures(t(60.2)),
        "audio still arriving from the open stream is kept"
    );
    // a payment that started before the end still applies, though it arrives after it
    let fx = l
        .apply(&EventKind::PaymentStarted, t(59.0), t(61.0))
        .expect("applies");
    assert_eq!(fx[0], Effect::DropFrom(t(58.5)));
    // one that starts after the end does not
    assert!(matches!(
        l.apply(
            &EventKind::RecordingPaused { reason: None },
            t(61.0),
            t(61.0)
        ),
        Err(Refusal::CallEnded(..))
    ));
    let fx = l
        .apply(&EventKind::CallEnded, t(70.0), t(70.0))
        .expect("noted");
    assert_eq!(ledger_kinds(&fx), ["call.ended.repeated"]);
    assert_eq!(l.ended(), Some(t(60.0)));
}
