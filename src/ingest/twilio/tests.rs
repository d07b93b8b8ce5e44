use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::stream::{StreamOutput, StreamSession};
use super::*;

fn auth() -> TwilioAuth {
    TwilioAuth::new(b"12345", None)
}

fn vector_params() -> Vec<(String, String)> {
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect()
}

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

#[test]
fn sha1_vector() {
    let sig = auth().sign(URL, &vector_params(), Algorithm::Sha1);
    assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    auth()
        .verify(URL, &vector_params(), Some(&sig), Algorithm::Sha1)
        .expect("valid");
}

#[test]
fn sha256_vector() {
    let alg = Algorithm::from_settings(Some("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"))
        .expect("settings");
    assert_eq!(alg, Algorithm::Sha256);
    let sig = auth().sign(URL, &vector_params(), alg);
    assert_eq!(sig, "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M=");
    auth()
        .verify(URL, &vector_params(), Some(&sig), alg)
        .expect("valid");
    assert_eq!(
        auth().verify(URL, &vector_params(), Some(&sig), Algorithm::Sha1),
        Err(IngestError::BadSignature)
    );
}

#[test]
fn json_body_vector() {
    let body = br#"{"property": "value", "boolean": true}"#;
    let hash = body_hash(body);
    assert_eq!(
        hash,
        "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    );
    let url = format!("{URL}&bodySHA256={hash}");
    let sig = auth().sign(&url, &[], Algorithm::Sha1);
    assert_eq!(sig, "a9nBmqA0ju/hNViExpshrM61xv4=");
    auth()
        .verify_json(&url, body, Some(&sig), Algorithm::Sha1)
        .expect("valid");
    assert_eq!(
        auth().verify_json(
            &url,
            b"{\"property\": \"other\"}",
            Some(&sig),
            Algorithm::Sha1
        ),
        Err(IngestError::BadSignature)
    );
}

#[test]
fn media_upgrade_vector() {
    let url = "wss://rec.example.com/twilio/media";
    assert_eq!(
        auth().sign(url, &[], Algorithm::Sha1),
        "Xfkrb7iyiuZ0hy6l199BAaNUx5A="
    );
}

#[test]
fn refuses_changed_params_wrong_token_and_no_header() {
    let sig = auth().sign(URL, &vector_params(), Algorithm::Sha1);
    let mut changed = vector_params();
    changed[2].1 = "9999".into();
    assert_eq!(
        auth().verify(URL, &changed, Some(&sig), Algorithm::Sha1),
        Err(IngestError::BadSignature)
    );
    assert_eq!(
        TwilioAuth::new(b"54321", None).verify(URL, &vector_params(), Some(&sig), Algorithm::Sha1),
        Err(IngestError::BadSignature)
    );
    assert!(matches!(
        auth().verify(URL, &vector_params(), None, Algorithm::Sha1),
        Err(IngestError::MissingSignature { .. })
    ));
    assert!(Algorithm::from_settings(Some("algorithm=HMAC_MD5")).is_err());
}

#[test]
fn url_is_tried_with_and_without_the_default_port() {
    let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    let sig = auth().sign(with_port, &vector_params(), Algorithm::Sha1);
    auth()
        .verify(URL, &vector_params(), Some(&sig), Algorithm::Sha1)
        .expect("port added");
    let sig = auth().sign(URL, &vector_params(), Algorithm::Sha1);
    auth()
        .verify(with_port, &vector_params(), Some(&sig), Algorithm::Sha1)
        .expect("port removed");
}

#[test]
fn form_decoding() {
    let p = parse_form("From=%2B441234&To=+44+1&Empty=&Flag").expect("form");
    assert_eq!(
        p,
        vec![
            ("From".into(), "+441234".into()),
            ("To".into(), " 44 1".into()),
            ("Empty".into(), String::new()),
            ("Flag".into(), String::new()),
        ]
    );
    assert!(parse_form("a=%zz").is_err());
    assert!(parse_form("a=%f").is_err());
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn status_callbacks_become_events() {
    let started = status_event(
        &form(&[
            ("CallSid", "CA1"),
            ("CallStatus", "in-progress"),
            ("From", "+447700900123"),
            ("To", "+441744676789"),
            ("Direction", "inbound"),
            ("Timestamp", "Sun, 22 Nov 2026 09:59:58 +0000"),
        ]),
        t0(),
    )
    .expect("valid")
    .expect("an event");
    assert_eq!(started.id, "twilio:CA1:call.started");
    assert_eq!(started.at, t0() - chrono::Duration::seconds(2));
    assert_eq!(
        started.kind,
        EventKind::CallStarted {
            line: Some("+441744676789".into()),
            caller: Some("+447700900123".into()),
            agent: None,
            queue: None
        }
    );
    let ended = status_event(
        &form(&[("CallSid", "CA1"), ("CallStatus", "completed")]),
        t0(),
    )
    .expect("valid")
    .expect("an event");
    assert_eq!((ended.kind, ended.at), (EventKind::CallEnded, t0()));
    assert_eq!(
        status_event(
            &form(&[("CallSid", "CA1"), ("CallStatus", "ringing")]),
            t0()
        ),
        Ok(None)
    );
    assert!(status_event(&form(&[("CallStatus", "completed")]), t0()).is_err());
    assert!(status_event(&form(&[("CallSid", "CA1"), ("CallStatus", "x")]), t0()).is_err());
}

fn start_msg(tracks: &[&str], params: serde_json::Value) -> String {
    json!({"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{
        "streamSid":"MZ1","accountSid":"AC1","callSid":"CA9","tracks":tracks,
        "customParameters":params,
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}})
    .to_string()
}

fn media_msg(track: &str, ts: u64, payload: &[u8]) -> String {
    json!({"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{
        "track":track,"chunk":"1","timestamp":ts.to_string(),"payload":STANDARD.encode(payload)}})
    .to_string()
}

fn audio(out: Vec<StreamOutput>) -> Vec<u8> {
    out.into_iter()
        .filter_map(|o| match o {
            StreamOutput::Audio { bytes, .. } => Some(bytes),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn start_picks_call_id_and_call_started() {
    let mut s = StreamSession::new();
    assert_eq!(
        s.on_text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
            t0()
        ),
        Ok(vec![])
    );
    let out = s
        .on_text(
            &start_msg(&["inbound", "outbound"], json!({"line":"+441744676789"})),
            t0(),
        )
        .expect("start");
    let [
        StreamOutput::Started {
            call_id,
            format,
            started,
        },
    ] = out.as_slice()
    else {
        panic!("expected a start: {out:?}");
    };
    assert_eq!(call_id.as_str(), "CA9");
    assert_eq!(format.channels, 2);
    let started = started.as_ref().expect("call.started");
    assert_eq!(started.id, "twilio:CA9:call.started");

    let mut s = StreamSession::new();
    let out = s
        .on_text(&start_msg(&["inbound"], json!({"call_id":"ours-1"})), t0())
        .expect("start");
    assert!(
        matches!(&out[0], StreamOutput::Started { call_id, format, started: None }
        if call_id.as_str() == "ours-1" && format.channels == 1)
    );
}

#[test]
fn tracks_are_interleaved_by_timestamp() {
    let mut s = StreamSession::new();
    s.on_text(&start_msg(&["inbound", "outbound"], json!({})), t0())
        .expect("start");
    let mut got = Vec::new();
    // outbound arrives first for slot 0; inbound for slot 1 before inbound for slot 0
    got.extend(audio(
        s.on_text(&media_msg("outbound", 0, &[2; 160]), t0())
            .expect("m"),
    ));
    got.extend(audio(
        s.on_text(&media_msg("inbound", 20, &[3; 160]), t0())
            .expect("m"),
    ));
    got.extend(audio(
        s.on_text(&media_msg("inbound", 0, &[1; 160]), t0())
            .expect("m"),
    ));
    got.extend(audio(
        s.on_text(&media_msg("outbound", 20, &[4; 160]), t0())
            .expect("m"),
    ));
    assert_eq!(got.len(), 640);
    assert_eq!(&got[..4], &[1, 2, 1, 2]);
    assert_eq!(&got[320..324], &[3, 4, 3, 4]);
}

#[test]
fn a_silent_outbound_track_is_filled_after_the_jitter_wait() {
    let mut s = StreamSession::new();
    s.on_text(&start_msg(&["inbound", "outbound"], json!({})), t0())
        .expect("start");
    let mut got = Vec::new();
    for i in 0..10u64 {
        got.extend(audio(
            s.on_text(&media_msg("inbound", i * 20, &[7; 160]), t0())
                .expect("m"),
        ));
    }
    // 200 ms of inbound, none outbound: everything up to 100 ms behind is out, agent silent
    assert_eq!(got.len(), 2 * 800);
    assert!(got.chunks(2).all(|f| f == [7, 0xFF]));
    // a late outbound payload for an emitted slot is dropped
    s.on_text(&media_msg("outbound", 0, &[9; 160]), t0())
        .expect("m");
    assert_eq!(s.dropped_late(), 1);
    let stop = s
        .on_text(
            r#"{"event":"stop","sequenceNumber":"12","streamSid":"MZ1","stop":{}}"#,
            t0(),
        )
        .expect("stop");
    assert_eq!(stop.last(), Some(&StreamOutput::Stopped));
    assert_eq!(audio(stop).len(), 2 * 800);
    assert!(
        s.on_text(&media_msg("inbound", 400, &[1; 160]), t0())
            .is_err()
    );
}

#[test]
fn protocol_errors() {
    let mut s = StreamSession::new();
    assert!(s.on_text(&media_msg("inbound", 0, &[1]), t0()).is_err());
    assert!(s.on_text("not json", t0()).is_err());
    assert!(s.on_text(r#"{"event":"bogus"}"#, t0()).is_err());
    s.on_text(&start_msg(&["inbound"], json!({})), t0())
        .expect("start");
    assert!(
        s.on_text(&start_msg(&["inbound"], json!({})), t0())
            .is_err()
    );
    assert!(s.on_text(&media_msg("outbound", 0, &[1]), t0()).is_err());
    assert!(
        s.on_text(&media_msg("inbound", 10_000_000, &[1]), t0())
            .is_err()
    );
    let bad_b64 = r#"{"event":"media","media":{"track":"inbound","timestamp":"0","payload":"%%"}}"#;
    assert!(s.on_text(bad_b64, t0()).is_err());
}
