use chrono::TimeZone;

use super::*;
use crate::domain::EventKind;

const PCMU_STEREO: &str = r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":2}"#;

fn session() -> MediaSession {
    MediaSession::new("CA1".parse().expect("valid call id"))
}

fn started(start: &str) -> MediaSession {
    let mut s = session();
    s.on_text(start).expect("valid start");
    s
}

fn fails(r: Result<impl std::fmt::Debug, MediaError>, code: u16, reason: &str) -> MediaError {
    let e = r.expect_err("should be refused");
    assert_eq!(e.close_code(), code, "{e:?}");
    assert!(
        e.reason().contains(reason),
        "{:?} lacks {reason:?}",
        e.reason()
    );
    assert!(e.reason().len() <= MAX_REASON_BYTES);
    e
}

#[test]
fn a_whole_stream() {
    let mut s = session();
    let start = r#"{"type":"start","codec":"L16","sample_rate":16000,"channels":2,
        "media_start":"2025-01-31T10:00:00Z","vendor":"x"}"#;
    let want = MediaStart {
        format: MediaFormat {
            codec: Codec::L16,
            sample_rate: 16000,
            channels: 2,
        },
        media_start: Utc.with_ymd_and_hms(2025, 1, 31, 10, 0, 0).single(),
    };
    assert_eq!(s.on_text(start), Ok(MediaMessage::Start(want)));
    assert_eq!(s.format(), Some(want.format));
    let audio = [0u8; 640];
    assert_eq!(s.on_binary(&audio), Ok(&audio[..]));
    let control = r#"{"id":"e1","type":"payment.started","at":"2025-01-31T10:00:05Z"}"#;
    let Ok(MediaMessage::Control(e)) = s.on_text(control) else {
        panic!("control frame");
    };
    assert_eq!(e.kind, EventKind::PaymentStarted);
    assert_eq!(e.call_id.as_str(), "CA1");
    assert_eq!(s.on_text(STOP_FRAME), Ok(MediaMessage::Stop));
    assert!(s.is_stopped());
    fails(s.on_binary(&audio), CLOSE_POLICY, "after stop");
    fails(s.on_text(STOP_FRAME), CLOSE_POLICY, "after stop");
}

#[test]
fn start_frames_are_validated() {
    let ok = [
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":1}"#,
            Codec::Pcmu,
        ),
        (
            r#"{"type":"start","codec":"PCMA","sample_rate":8000,"channels":2}"#,
            Codec::Pcma,
        ),
        (
            r#"{"type":"start","codec":"L16","sample_rate":44100,"channels":1}"#,
            Codec::L16,
        ),
        (
            r#"{"type":"start","codec":"L16","sample_rate":48000,"channels":2}"#,
            Codec::L16,
        ),
    ];
    for (json, codec) in ok {
        let Ok(MediaMessage::Start(st)) = session().on_text(json) else {
            panic!("{json}");
        };
        assert_eq!(st.format.codec, codec);
        assert_eq!(st.media_start, None);
    }
    let bad = [
        (
            r#"{"type":"start","codec":"OPUS","sample_rate":8000,"channels":1}"#,
            "codec",
        ),
        (
            r#"{"type":"start","codec":8,"sample_rate":8000,"channels":1}"#,
            "codec",
        ),
        (
            r#"{"type":"start","sample_rate":8000,"channels":1}"#,
            "codec",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":16000,"channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"PCMA","sample_rate":44100,"channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"L16","sample_rate":22050,"channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"L16","sample_rate":"8000","channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"L16","sample_rate":8000.5,"channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"L16","channels":1}"#,
            "sample_rate",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":3}"#,
            "channels",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":0}"#,
            "channels",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":-1}"#,
            "channels",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000}"#,
            "channels",
        ),
        (
            r#"{"type":"start","codec":"PCMU","sample_rate":8000,"channels":1,"media_start":"now"}"#,
            "media_start",
        ),
    ];
    for (json, field) in bad {
        let mut s = session();
        let e = fails(s.on_text(json), CLOSE_INVALID_DATA, field);
        assert!(
            matches!(e.error(), IngestError::BadField { field: f, .. } | IngestError::MissingField { field: f } if *f == field),
            "{json}: {e:?}"
        );
        assert_eq!(s.format(), None, "a bad start leaves the session waiting");
    }
}

#[test]
fn audio_before_start_is_refused() {
    let e = fails(
        session().on_binary(&[0; 160]),
        CLOSE_POLICY,
        "audio before start",
    );
    assert_eq!(e.reason(), "audio before start");
    assert_eq!(e.error().code(), "out_of_order");
}

#[test]
fn control_before_start_is_refused() {
    let control = r#"{"id":"e1","type":"payment.started","at":"2025-01-31T10:00:05Z"}"#;
    fails(session().on_text(control), CLOSE_POLICY, "before start");
}

#[test]
fn a_second_start_is_refused() {
    let mut s = started(PCMU_STEREO);
    fails(s.on_text(PCMU_STEREO), CLOSE_POLICY, "second start");
}

#[test]
fn malformed_text_frames_close_with_1007() {
    let mut s = started(PCMU_STEREO);
    fails(s.on_text("{not json"), CLOSE_INVALID_DATA, "json");
    fails(s.on_text("[1,2]"), CLOSE_INVALID_DATA, "json");
    fails(s.on_text(r#"{"codec":"PCMU"}"#), CLOSE_INVALID_DATA, "type");
    let e = fails(
        s.on_text(r#"{"id":"e","type":"dtmf","at":"2025-01-31T10:00:05Z"}"#),
        CLOSE_INVALID_DATA,
        "dtmf",
    );
    assert_eq!(e.error().code(), "unknown_type");
    fails(
        s.on_text(r#"{"id":"e","type":"payment.ended","at":"soon"}"#),
        CLOSE_INVALID_DATA,
        "at",
    );
    fails(
        s.on_text(
            r#"{"id":"e","type":"payment.ended","call_id":"CA2","at":"2025-01-31T10:00:05Z"}"#,
        ),
        CLOSE_INVALID_DATA,
        "call_id",
    );
    // still streaming: the socket loop decides to close, the session does not
    assert!(s.on_binary(&[0; 2]).is_ok());
}

#[test]
fn audio_frames_must_hold_whole_sample_frames() {
    let stereo_ulaw = started(PCMU_STEREO);
    assert!(stereo_ulaw.on_binary(&[0; 320]).is_ok());
    assert!(stereo_ulaw.on_binary(&[]).is_ok());
    let e = fails(stereo_ulaw.on_binary(&[0; 321]), CLOSE_INVALID_DATA, "321");
    assert_eq!(e.error().code(), "bad_audio_frame");

    let stereo_l16 = started(r#"{"type":"start","codec":"L16","sample_rate":8000,"channels":2}"#);
    assert!(stereo_l16.on_binary(&[0; 640]).is_ok());
    fails(
        stereo_l16.on_binary(&[0; 642]),
        CLOSE_INVALID_DATA,
        "4-byte",
    );
    let mono_l16 = started(r#"{"type":"start","codec":"L16","sample_rate":8000,"channels":1}"#);
    fails(mono_l16.on_binary(&[0; 3]), CLOSE_INVALID_DATA, "2-byte");
}

#[test]
fn frames_over_64_kib_close_with_1009() {
    let s = started(PCMU_STEREO);
    assert!(s.on_binary(&vec![0; MAX_FRAME_BYTES]).is_ok());
    let e = fails(
        s.on_binary(&vec![0; MAX_FRAME_BYTES + 2]),
        CLOSE_TOO_BIG,
        "over",
    );
    assert_eq!(e.error().code(), "frame_too_large");
    let mut s = started(PCMU_STEREO);
    let huge = format!(
        r#"{{"type":"stop","pad":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    fails(s.on_text(&huge), CLOSE_TOO_BIG, "over");
}

#[test]
fn close_reasons_are_short() {
    let mut s = started(PCMU_STEREO);
    let long_type = format!(
        r#"{{"id":"e","type":"{}","at":"2025-01-31T10:00:05Z"}}"#,
        "\u{e9}".repeat(200)
    );
    let e = fails(s.on_text(&long_type), CLOSE_INVALID_DATA, "unknown type");
    assert!(e.reason().len() <= MAX_REASON_BYTES);
}

#[test]
fn start_frames_round_trip() {
    let format = MediaFormat {
        codec: Codec::Pcma,
        sample_rate: 8000,
        channels: 1,
    };
    let at = Utc.with_ymd_and_hms(2025, 1, 31, 10, 0, 0).single();
    for media_start in [None, at] {
        let json = start_frame(format, media_start);
        assert_eq!(
            session().on_text(&json),
            Ok(MediaMessage::Start(MediaStart {
                format,
                media_start
            }))
        );
    }
}
