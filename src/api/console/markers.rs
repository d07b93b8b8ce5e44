//! Where the ledger's events sit on a recording's playback timeline: pauses (card payment, agent,
//! keypad tones), refusals, gaps, cut-backs, lost audio and excised segments, each with its length.
//!
//! Positions follow the same layout as playback ([`crate::audio::playback::layout`]): stored
//! segments in order, the stretches between them rendered as the policy says (skipped, or silence
//! or tone of their own length), excised segments likewise. A ledger time is a media position from
//! the recording's start, as the recorder counts it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One segment as the layout sees it.
#[derive(Debug, Clone)]
pub(super) struct Seg {
    pub start_ms: u64,
    pub end_ms: u64,
    pub stored: bool,
}

/// One ledger entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub details: Value,
}

/// A marked event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct Marker {
    /// A class for the drawing: `pause`, `refusal`, `gap`, `cut-back`, `lost`, `excised`.
    pub class: &'static str,
    /// What people read, e.g. "Card payment pause".
    pub label: String,
    /// Where it starts in the recording as played, in ms.
    pub start_ms: u64,
    /// How long it lasts as played (0 for an instant, or when the policy skips pauses).
    pub played_ms: u64,
    /// How long it lasted in the call, in ms, as the ledger says.
    pub length_ms: u64,
    /// The ledger entry.
    pub seq: u64,
}

fn time(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b - a).num_milliseconds().max(0) as u64
}

/// The playback position of media position `m`.
pub(super) fn played_at(segments: &[Seg], skip: bool, m: u64) -> u64 {
    let mut p = 0u64;
    let mut prev_end: Option<u64> = None;
    for s in segments {
        match prev_end {
            None if m < s.start_ms => return 0,
            Some(end) if s.start_ms > end => {
                if m < s.start_ms {
                    return p + if skip { 0 } else { m.saturating_sub(end) };
                }
                if !skip {
                    p += s.start_ms - end;
                }
            }
            _ => {}
        }
        let len = s.end_ms.saturating_sub(s.start_ms);
        let played = if s.stored || !skip { len } else { 0 };
        if m < s.end_ms {
            return p + if s.stored || !skip {
                m.saturating_sub(s.start_ms)
            } else {
                0
            };
        }
        p += played;
        prev_end = Some(s.end_ms.max(prev_end.unwrap_or(0)));
    }
    p
}

/// The markers of a recording that started at `started`, laid out as `segments` with pauses
/// skipped or not.
pub(super) fn markers(
    started: DateTime<Utc>,
    segments: &[Seg],
    skip: bool,
    ledger: &[Entry],
) -> Vec<Marker> {
    let end_ms = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut push = |class: &'static str, label: String, media: u64, length: u64, seq: u64| {
        let start_ms = played_at(segments, skip, media);
        let played_ms = played_at(segments, skip, media.saturating_add(length)) - start_ms;
        out.push(Marker {
            class,
            label,
            start_ms,
            played_ms,
            length_ms: length,
            seq,
        });
    };
    for (i, e) in ledger.iter().enumerate() {
        let d = &e.details;
        let media = d
            .get("at_ms")
            .and_then(Value::as_u64)
            .or_else(|| time(d, "from").map(|t| ms_between(started, t)))
            .unwrap_or_else(|| ms_between(started, e.at));
        let given_len = d.get("length_ms").and_then(Value::as_u64);
        match e.kind.as_str() {
            "pause" | "dtmf_pause" => {
                let kind = d.get("kind").and_then(Value::as_str).unwrap_or("payment");
                let kind = if e.kind == "dtmf_pause" { "dtmf" } else { kind };
                let label = match kind {
                    "agent" => "Agent pause",
                    "dtmf" => "Keypad tones pause",
                    _ => "Card payment pause",
                };
                // it lasts until its resume (or its own end time); with none, to the end: fail closed
                let until = time(d, "to").or_else(|| {
                    ledger[i + 1..]
                        .iter()
                        .find(|r| {
                            r.kind == "resume"
                                && r.details
                                    .get("kind")
                                    .and_then(Value::as_str)
                                    .unwrap_or("payment")
                                    == kind
                        })
                        .and_then(|r| time(&r.details, "at").or(Some(r.at)))
                });
                let length = given_len.unwrap_or_else(|| match until {
                    Some(t) => ms_between(started, t).saturating_sub(media),
                    None => end_ms.saturating_sub(media),
                });
                push("pause", label.to_owned(), media, length, e.seq);
            }
            "gap" => push(
                "gap",
                "Gap in the stream".to_owned(),
                media,
                given_len.unwrap_or(0),
                e.seq,
            ),
            "audio_lost" | "spool_fault" | "crash_recovery" | "interrupted" => push(
                "lost",
                "Audio lost".to_owned(),
                media,
                given_len
                    .or_else(|| d.get("ms").and_then(Value::as_u64))
                    .unwrap_or(0),
                e.seq,
            ),
            "cut_back" => push(
                "cut-back",
                "Cut back after a late pause".to_owned(),
                media,
                0,
                e.seq,
            ),
            k if k.starts_with("consent.refused") || k.starts_with("refus") => {
                push(
                    "refusal",
                    "Caller refused recording".to_owned(),
                    media,
                    0,
                    e.seq,
                );
            }
            _ => {}
        }
    }
    let mut excised = Vec::new();
    for s in segments.iter().filter(|s| !s.stored) {
        excised.push((s.start_ms, s.end_ms.saturating_sub(s.start_ms)));
    }
    for (start, len) in excised {
        push("excised", "Excised segment".to_owned(), start, len, 0);
    }
    out.sort_by_key(|m| (m.start_ms, m.seq));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).expect("time")
            + chrono::Duration::milliseconds(ms)
    }

    fn seg(a: u64, b: u64) -> Seg {
        Seg {
            start_ms: a,
            end_ms: b,
            stored: true,
        }
    }

    fn entry(seq: u64, kind: &str, details: Value) -> Entry {
        Entry {
            seq,
            at: t(0),
            kind: kind.into(),
            details,
        }
    }

    #[test]
    fn a_payment_pause_sits_where_its_segments_leave_a_hole() {
        let segs = [seg(0, 2000), seg(4500, 6500)];
        let ledger = [
            entry(
                1,
                "pause",
                json!({ "kind": "payment", "from": t(1900).to_rfc3339() }),
            ),
            entry(
                2,
                "resume",
                json!({ "kind": "payment", "at": t(4500).to_rfc3339() }),
            ),
        ];
        let m = markers(t(0), &segs, false, &ledger);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].start_ms, m[0].length_ms, m[0].played_ms),
            (1900, 2600, 2600)
        );
        assert_eq!(m[0].label, "Card payment pause");
        // skipped pauses play as nothing: the marker is an instant at the join
        let m = markers(t(0), &segs, true, &ledger);
        assert_eq!(
            (m[0].start_ms, m[0].length_ms, m[0].played_ms),
            (1900, 2600, 100)
        );
    }

    #[test]
    fn an_unended_pause_lasts_to_the_end_and_other_events_are_marked() {
        let segs = [
            seg(0, 1000),
            Seg {
                start_ms: 1000,
                end_ms: 3000,
                stored: false,
            },
            seg(3000, 4000),
        ];
        let ledger = [
            entry(1, "gap", json!({ "at_ms": 500, "length_ms": 200 })),
            entry(
                2,
                "pause",
                json!({ "kind": "agent", "from": t(3500).to_rfc3339() }),
            ),
            Entry {
                seq: 3,
                at: t(3800),
                kind: "consent.refused".into(),
                details: json!({}),
            },
        ];
        let m = markers(t(0), &segs, false, &ledger);
        let classes: Vec<_> = m
            .iter()
            .map(|m| (m.class, m.start_ms, m.length_ms))
            .collect();
        assert_eq!(
            classes,
            vec![
                ("gap", 500, 200),
                ("excised", 1000, 2000),
                ("pause", 3500, 500),
                ("refusal", 3800, 0)
            ]
        );
        // with pauses skipped, the excised segment plays as nothing and what follows moves up
        assert_eq!(played_at(&segs, true, 3500), 1500);
    }
}
