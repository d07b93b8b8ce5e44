use chrono::TimeZone;

use super::*;

fn cid(s: &str) -> CallId {
    s.parse().expect("valid call id")
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 10, 0, 0)
        .single()
        .expect("valid time")
}

/// A valid event of `ty` with `extra` fields merged in (a `null` in `extra` removes the field).
fn body(ty: &str, extra: Value) -> String {
    let mut m = Map::new();
    m.insert("id".into(), "evt_1".into());
    m.insert("type".into(), ty.into());
    m.insert("call_id".into(), "CA1".into());
    m.insert("at".into(), "2025-01-31T10:00:00Z".into());
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
    }
    Value::Object(m).to_string()
}

fn ev(kind: EventKind) -> CallEvent {
    CallEvent {
        id: "evt_1".into(),
        call_id: cid("CA1"),
        at: at(),
        kind,
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn every_type_parses() {
    use serde_json::json;
    let cases: Vec<(&str, Value, EventKind)> = vec![
        (
            "call.started",
            json!({}),
            EventKind::CallStarted {
                line: None,
                caller: None,
                agent: None,
                queue: None,
            },
        ),
        (
            "call.started",
            json!({"line": "+441632960000", "caller": "07700 900123", "agent": "a7", "queue": "council-tax"}),
            EventKind::CallStarted {
                line: s("+441632960000"),
                caller: s("07700 900123"),
                agent: s("a7"),
                queue: s("council-tax"),
            },
        ),
        ("call.ended", json!({}), EventKind::CallEnded),
        ("consent.given", json!({}), EventKind::ConsentGiven),
        ("consent.refused", json!({}), EventKind::ConsentRefused),
        ("payment.started", json!({}), EventKind::PaymentStarted),
        ("payment.ended", json!({}), EventKind::PaymentEnded),
        (
            "recording.paused",
            json!({}),
            EventKind::RecordingPaused { reason: None },
        ),
        (
            "recording.paused",
            json!({"reason": "medical details"}),
            EventKind::RecordingPaused {
                reason: s("medical details"),
            },
        ),
        (
            "recording.resumed",
            json!({"reason": "done"}),
            EventKind::RecordingResumed { reason: s("done") },
        ),
        (
            "complaint.opened",
            json!({"reference": "C-1"}),
            EventKind::ComplaintOpened {
                reference: "C-1".into(),
                call_ids: vec![],
                caller: None,
            },
        ),
        (
            "complaint.opened",
            json!({"reference": "C-1", "call_ids": ["CA2", "CA3"], "caller": "+447700900123"}),
            EventKind::ComplaintOpened {
                reference: "C-1".into(),
                call_ids: vec![cid("CA2"), cid("CA3")],
                caller: s("+447700900123"),
            },
        ),
        (
            "complaint.resolved",
            json!({"reference": "C-1"}),
            EventKind::ComplaintResolved {
                reference: "C-1".into(),
            },
        ),
    ];
    for (ty, extra, kind) in cases {
        let json = body(ty, extra);
        let want = ev(kind);
        assert_eq!(parse_event(json.as_bytes()), Ok(want.clone()), "{json}");
        assert_eq!(want.kind.name(), ty);
        // and the encoder is its inverse
        let again = encode_event(&want);
        assert_eq!(parse_event(again.as_bytes()), Ok(want), "{again}");
    }
}

#[test]
fn unknown_fields_and_nulls_are_ignored() {
    let json = body(
        "call.started",
        serde_json::json!({"vendor": {"x": [1, 2]}, "priority": 3}),
    );
    assert!(parse_event(json.as_bytes()).is_ok());
    let json = r#"{"id":"e","type":"call.started","call_id":"CA1","at":"2025-01-31T10:00:00Z","line":null}"#;
    let Ok(CallEvent {
        kind: EventKind::CallStarted { line, .. },
        ..
    }) = parse_event(json.as_bytes())
    else {
        panic!("should parse");
    };
    assert_eq!(line, None);
}

#[test]
fn timestamps_keep_their_instant() {
    let json = body(
        "call.ended",
        serde_json::json!({"at": "2025-01-31T11:00:00.250+01:00"}),
    );
    let e = parse_event(json.as_bytes()).expect("valid");
    assert_eq!(e.at, at() + chrono::Duration::milliseconds(250));
}

#[test]
fn every_error_names_its_field() {
    use serde_json::json;
    let missing = |field| IngestError::MissingField { field };
    let long_id = "x".repeat(MAX_ID_LEN + 1);
    let many: Vec<String> = (0..=MAX_CALL_IDS).map(|i| format!("CA{i}")).collect();
    // (type, changes, expected error as (code, field or type))
    let cases: Vec<(&str, Value, Result<(), IngestError>)> = vec![
        ("call.ended", json!({"id": null}), Err(missing("id"))),
        ("call.ended", json!({"type": null}), Err(missing("type"))),
        (
            "call.ended",
            json!({"call_id": null}),
            Err(missing("call_id")),
        ),
        ("call.ended", json!({"at": null}), Err(missing("at"))),
        ("complaint.opened", json!({}), Err(missing("reference"))),
        ("complaint.resolved", json!({}), Err(missing("reference"))),
        (
            "call.transferred",
            json!({}),
            Err(IngestError::UnknownType {
                got: "call.transferred".into(),
            }),
        ),
    ];
    for (ty, changes, want) in cases {
        let json = body(ty, changes);
        assert_eq!(parse_event(json.as_bytes()).map(|_| ()), want, "{json}");
    }

    // wrong values: only the variant and field are checked, not the wording
    let bad: Vec<(&str, Value, &str)> = vec![
        ("call.ended", json!({"id": 7}), "id"),
        ("call.ended", json!({"id": ""}), "id"),
        ("call.ended", json!({"id": long_id}), "id"),
        ("call.ended", json!({"id": "a\nb"}), "id"),
        ("call.ended", json!({"id": "caf\u{e9}"}), "id"),
        ("call.ended", json!({"type": ["call.ended"]}), "type"),
        ("call.ended", json!({"call_id": "a/b"}), "call_id"),
        ("call.ended", json!({"call_id": 12}), "call_id"),
        ("call.ended", json!({"at": "yesterday"}), "at"),
        ("call.ended", json!({"at": "2025-01-31 10:00:00"}), "at"),
        ("call.ended", json!({"at": 1738317600}), "at"),
        ("call.started", json!({"line": 441632960000_u64}), "line"),
        ("call.started", json!({"caller": {"n": 1}}), "caller"),
        ("call.started", json!({"agent": true}), "agent"),
        (
            "call.started",
            json!({"queue": "x".repeat(MAX_TEXT_LEN + 1)}),
            "queue",
        ),
        (
            "call.started",
            json!({"caller": "07700\u{1b}[2J"}),
            "caller",
        ),
        ("recording.paused", json!({"reason": 1}), "reason"),
        (
            "recording.resumed",
            json!({"reason": "x".repeat(MAX_REASON_LEN + 1)}),
            "reason",
        ),
        ("complaint.opened", json!({"reference": 5}), "reference"),
        ("complaint.opened", json!({"reference": "  "}), "reference"),
        (
            "complaint.opened",
            json!({"reference": "C", "call_ids": "CA2"}),
            "call_ids",
        ),
        (
            "complaint.opened",
            json!({"reference": "C", "call_ids": ["CA2", 3]}),
            "call_ids",
        ),
        (
            "complaint.opened",
            json!({"reference": "C", "call_ids": ["a b"]}),
            "call_ids",
        ),
        (
            "complaint.opened",
            json!({"reference": "C", "call_ids": many}),
            "call_ids",
        ),
        (
            "complaint.opened",
            json!({"reference": "C", "caller": []}),
            "caller",
        ),
        (
            "complaint.resolved",
            json!({"reference": null, "x": 1}),
            "reference",
        ),
    ];
    for (ty, changes, field) in bad {
        let json = body(ty, changes);
        match parse_event(json.as_bytes()) {
            Err(IngestError::BadField { field: f, .. }) if f == field => {}
            Err(IngestError::MissingField { field: f }) if f == field && f == "reference" => {}
            other => panic!("{json}: expected bad field {field}, got {other:?}"),
        }
    }
}

#[test]
fn malformed_json_is_refused() {
    for json in ["", "{", "[]", "\"call.ended\"", "null", "{\"id\": \"e\",}"] {
        match parse_event(json.as_bytes()) {
            Err(e @ IngestError::Json { .. }) => assert_eq!(e.code(), "malformed_json"),
            other => panic!("{json:?}: {other:?}"),
        }
    }
    assert!(matches!(
        parse_event(b"{\"id\": \"\xff\"}"),
        Err(IngestError::Json { .. })
    ));
}

#[test]
fn control_frames_default_to_the_sockets_call() {
    let url = cid("CA1");
    let without = r#"{"id":"e1","type":"payment.started","at":"2025-01-31T10:00:00Z"}"#;
    assert_eq!(
        parse_control(without, &url),
        Ok(CallEvent {
            id: "e1".into(),
            call_id: url.clone(),
            at: at(),
            kind: EventKind::PaymentStarted,
        })
    );
    let same = body("payment.ended", Value::Null);
    assert!(parse_control(&same, &url).is_ok());
    let other = body("payment.ended", serde_json::json!({"call_id": "CA2"}));
    assert!(matches!(
        parse_control(&other, &url),
        Err(IngestError::BadField {
            field: "call_id",
            ..
        })
    ));
    let bad = body("payment.ended", serde_json::json!({"call_id": "no way"}));
    assert!(matches!(
        parse_control(&bad, &url),
        Err(IngestError::BadField {
            field: "call_id",
            ..
        })
    ));
    // a missing call id is only fine on a socket
    assert_eq!(
        parse_event(without.as_bytes()),
        Err(IngestError::MissingField { field: "call_id" })
    );
}
