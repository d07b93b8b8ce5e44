//! The event script: `--event "10s=payment.started"` specs, and handing events out as the call's
//! media clock passes their offsets.

use std::collections::VecDeque;
use std::time::Duration;

use crate::domain::{CallId, EventKind};

/// Parses one scripted event: `OFFSET=TYPE[:ARG]`, where `OFFSET` is a human duration (`10s`,
/// `1m 30s`, `2500ms`), `TYPE` any native event type, and `ARG` the reference of
/// `complaint.opened` / `complaint.resolved` (required) or the reason of `recording.paused` /
/// `recording.resumed` (optional).
pub fn parse_event_spec(spec: &str) -> Result<(Duration, EventKind), String> {
    let (offset, event) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected OFFSET=TYPE, such as 10s=payment.started"))?;
    let offset = humantime::parse_duration(offset.trim())
        .map_err(|e| format!("{spec:?}: bad offset: {e}"))?;
    let (name, arg) = match event.trim().split_once(':') {
        Some((n, a)) => (n, Some(a.to_owned())),
        None => (event.trim(), None),
    };
    let no_arg = |kind: EventKind| match &arg {
        None => Ok(kind),
        Some(_) => Err(format!("{spec:?}: {name} takes no argument")),
    };
    let reference = || match &arg {
        Some(r) if !r.trim().is_empty() => Ok(r.clone()),
        _ => Err(format!(
            "{spec:?}: {name} needs a reference, such as {name}:C-1234"
        )),
    };
    let kind = match name {
        "call.started" => no_arg(EventKind::CallStarted {
            line: None,
            caller: None,
            agent: None,
            queue: None,
        })?,
        "call.ended" => no_arg(EventKind::CallEnded)?,
        "consent.given" => no_arg(EventKind::ConsentGiven)?,
        "consent.refused" => no_arg(EventKind::ConsentRefused)?,
        "payment.started" => no_arg(EventKind::PaymentStarted)?,
        "payment.ended" => no_arg(EventKind::PaymentEnded)?,
        "recording.paused" => EventKind::RecordingPaused { reason: arg },
        "recording.resumed" => EventKind::RecordingResumed { reason: arg },
        "complaint.opened" => EventKind::ComplaintOpened {
            reference: reference()?,
            call_ids: Vec::<CallId>::new(),
            caller: None,
        },
        "complaint.resolved" => EventKind::ComplaintResolved {
            reference: reference()?,
        },
        other => return Err(format!("{spec:?}: unknown event type {other:?}")),
    };
    Ok((offset, kind))
}

/// Scripted events in offset order, handed out as the media clock passes them.
#[derive(Debug, Default)]
pub(super) struct Script {
    events: VecDeque<(Duration, EventKind)>,
}

impl Script {
    /// Sorts `events` by offset; events at the same offset keep their order.
    pub(super) fn new(mut events: Vec<(Duration, EventKind)>) -> Self {
        events.sort_by_key(|(offset, _)| *offset);
        Self {
            events: events.into(),
        }
    }

    /// Takes every event whose offset is at or before `now`.
    pub(super) fn due(&mut self, now: Duration) -> Vec<(Duration, EventKind)> {
        let n = self.events.iter().take_while(|(o, _)| *o <= now).count();
        self.events.drain(..n).collect()
    }

    /// Takes every remaining event.
    pub(super) fn rest(&mut self) -> Vec<(Duration, EventKind)> {
        self.events.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn specs_parse() {
        let ok = [
            ("10s=payment.started", secs(10), EventKind::PaymentStarted),
            ("1m 5s=payment.ended", secs(65), EventKind::PaymentEnded),
            (
                "2500ms = consent.refused",
                Duration::from_millis(2500),
                EventKind::ConsentRefused,
            ),
            ("0s=consent.given", secs(0), EventKind::ConsentGiven),
            ("30s=call.ended", secs(30), EventKind::CallEnded),
            (
                "3s=recording.paused",
                secs(3),
                EventKind::RecordingPaused { reason: None },
            ),
            (
                "4s=recording.resumed:back to the call",
                secs(4),
                EventKind::RecordingResumed {
                    reason: Some("back to the call".into()),
                },
            ),
            (
                "5s=complaint.opened:C-1234",
                secs(5),
                EventKind::ComplaintOpened {
                    reference: "C-1234".into(),
                    call_ids: vec![],
                    caller: None,
                },
            ),
            (
                "6s=complaint.resolved:C-1234",
                secs(6),
                EventKind::ComplaintResolved {
                    reference: "C-1234".into(),
                },
            ),
        ];
        for (spec, offset, kind) in ok {
            assert_eq!(parse_event_spec(spec), Ok((offset, kind)), "{spec}");
        }
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("payment.started", "OFFSET=TYPE"),
            ("ten=payment.started", "bad offset"),
            ("10s=payment.begun", "unknown event type"),
            ("10s=payment.started:x", "takes no argument"),
            ("10s=complaint.opened", "needs a reference"),
            ("10s=complaint.resolved: ", "needs a reference"),
        ] {
            let e = parse_event_spec(spec).expect_err(spec);
            assert!(e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn events_come_due_in_offset_order() {
        let mut s = Script::new(vec![
            (secs(20), EventKind::PaymentEnded),
            (secs(10), EventKind::PaymentStarted),
            (secs(10), EventKind::ConsentGiven),
            (secs(99), EventKind::ConsentRefused),
        ]);
        assert!(s.due(secs(9)).is_empty());
        let kinds =
            |v: Vec<(Duration, EventKind)>| v.into_iter().map(|(_, k)| k).collect::<Vec<_>>();
        assert_eq!(
            kinds(s.due(secs(10))),
            [EventKind::PaymentStarted, EventKind::ConsentGiven]
        );
        assert!(s.due(secs(10)).is_empty());
        assert_eq!(kinds(s.due(secs(25))), [EventKind::PaymentEnded]);
        assert_eq!(kinds(s.rest()), [EventKind::ConsentRefused]);
        assert!(s.rest().is_empty());
    }
}
