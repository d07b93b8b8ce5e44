use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

struct Req(Vec<(&'static str, String)>, &'static str, &'static str);

impl SignedRequest for Req {
    fn target(&self) -> &str {
        self.1
    }
    fn authority(&self) -> &str {
        self.2
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

const KEY: &str = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";
const SECRET: &str = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=";

fn params(authority: &str) -> String {
    format!(
        "(\"@request-target\" \"{authority}\" \"audiohook-organization-id\" \"audiohook-session-id\" \"audiohook-correlation-id\" \"x-api-key\");keyid=\"{KEY}\";nonce=\"VGhpc0lzQVVuaXF1ZU5vbmNl\";alg=\"hmac-sha256\";created=1641013200;expires=3282026430"
    )
}

fn request(authority: &str, signature: Option<&str>) -> Req {
    let mut h = vec![
        (
            "audiohook-organization-id",
            "d7934305-0972-4844-938e-9060eef73d05".to_owned(),
        ),
        (
            "audiohook-session-id",
            "30b0e395-84d3-4570-ac13-9a62d8f514c0".to_owned(),
        ),
        (
            "audiohook-correlation-id",
            "e160e428-53e2-487c-977d-96989bf5c99d".to_owned(),
        ),
        ("x-api-key", KEY.to_owned()),
        ("host", "audiohook.example.com".to_owned()),
        ("signature-input", format!("sig1={}", params(authority))),
    ];
    if let Some(s) = signature {
        h.push(("signature", format!("sig1=:{s}:")));
    }
    Req(h, "/api/v1/voicebiometrics/ws", "audiohook.example.com")
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("valid")
}

#[test]
fn signature_vector() {
    let auth = HookAuth::new(KEY, SECRET).expect("auth");
    let req = request("@authority", None);
    assert_eq!(
        auth.sign(&req, &params("@authority")).expect("sign"),
        "NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4="
    );
    assert_eq!(
        auth.sign(&req, &params("host")).expect("sign"),
        "zupMJUMfd/kMuvKc5zhRyfJPE3jTROuz1S1hn8SCTpE="
    );
    let signed = request(
        "@authority",
        Some("NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4="),
    );
    auth.verify(&signed, at(1_641_013_205))
        .expect("valid within 10 s");
    assert!(matches!(
        auth.verify(&signed, at(1_641_013_300)),
        Err(IngestError::StaleTimestamp { .. })
    ));
    assert!(matches!(
        auth.verify(&signed, at(1_641_013_100)),
        Err(IngestError::StaleTimestamp { .. })
    ));
    let wrong = HookAuth::new(KEY, "b3RoZXI=").expect("auth");
    assert_eq!(
        wrong.verify(&signed, at(1_641_013_205)),
        Err(IngestError::BadSignature)
    );
    let other_key = HookAuth::new("another-key", SECRET).expect("auth");
    assert_eq!(
        other_key.verify(&signed, at(1_641_013_205)),
        Err(IngestError::BadSignature)
    );
    // "host" instead of "@authority": a required component is missing
    let host = request("host", Some("zupMJUMfd/kMuvKc5zhRyfJPE3jTROuz1S1hn8SCTpE="));
    assert!(matches!(
        auth.verify(&host, at(1_641_013_205)),
        Err(IngestError::BadField { .. })
    ));
    assert!(matches!(
        auth.verify(&request("@authority", None), at(1_641_013_205)),
        Err(IngestError::MissingSignature { .. })
    ));
    assert!(HookAuth::new(KEY, "not base64!").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("PT0S"), Some(std::time::Duration::ZERO));
    assert_eq!(
        parse_duration("PT1.5S"),
        Some(std::time::Duration::from_millis(1500))
    );
    assert_eq!(
        parse_duration("PT1M2S"),
        Some(std::time::Duration::from_secs(62))
    );
    assert_eq!(parse_duration("PT"), None);
    assert_eq!(parse_duration("1S"), None);
    assert_eq!(parse_duration("PT1"), None);
}

const ID: &str = "30b0e395-84d3-4570-ac13-9a62d8f514c0";

fn msg(ty: &str, seq: u64, serverseq: u64, parameters: Value) -> String {
    json!({"version":"2","id":ID,"type":ty,"seq":seq,"serverseq":serverseq,"position":"PT0S","parameters":parameters}).to_string()
}

fn open_params(conversation: &str) -> Value {
    json!({"organizationId":"d7934305-0972-4844-938e-9060eef73d05","conversationId":conversation,
        "participant":{"id":"p","ani":"+447700900123","aniName":"","dnis":"+441744676789"},
        "media":[
            {"type":"audio","format":"PCMU","channels":["external"],"rate":8000},
            {"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000}]})
}

fn sent(out: &[HookOutput]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            HookOutput::Send(s) => serde_json::from_str(s).ok(),
            _ => None,
        })
        .collect()
}

#[test]
fn a_whole_session() {
    let now = at(1_800_000_000);
    let mut s = HookSession::new();
    let conv = "e1b1f7c0-0000-4000-8000-000000000001";
    let out = s
        .on_text(&msg("open", 1, 0, open_params(conv)), now)
        .expect("open");
    let opened = &sent(&out)[0];
    assert_eq!(opened["type"], "opened");
    assert_eq!(
        (opened["seq"].as_u64(), opened["clientseq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        opened["parameters"]["media"][0]["channels"],
        json!(["external", "internal"])
    );
    assert!(out.iter().any(
        |o| matches!(o, HookOutput::Opened { probe: false, format: Some(f), started, .. }
        if f.channels == 2 && started.call_id.as_str() == conv)
    ));
    s.on_binary(&[0xFF; 3200]).expect("audio");
    assert!(s.on_binary(&[0xFF; 3]).is_err());
    let pong = sent(&s.on_text(&msg("ping", 2, 1, json!({})), now).expect("ping"))[0].clone();
    assert_eq!(
        (
            pong["type"].as_str(),
            pong["clientseq"].as_u64(),
            pong["seq"].as_u64()
        ),
        (Some("pong"), Some(2), Some(2))
    );
    let pause: Value = serde_json::from_str(&s.pause()).expect("json");
    assert_eq!(pause["seq"], 3);
    // the pause may still be in flight: serverseq 2 is fine, 4 (never sent) is not
    assert!(
        s.clone()
            .on_text(&msg("paused", 3, 4, json!({})), now)
            .is_err()
    );
    assert!(
        s.clone()
            .on_text(&msg("paused", 3, 2, json!({})), now)
            .is_ok()
    );
    let mut s2 = s.clone();
    assert_eq!(
        s2.on_text(&msg("paused", 3, 3, json!({})), now),
        Ok(vec![HookOutput::Paused])
    );
    assert!(s2.is_paused());
    let out = s2
        .on_text(
            &msg(
                "resumed",
                4,
                3,
                json!({"start":"PT1S","discarded":"PT1.2S"}),
            ),
            now,
        )
        .expect("resumed");
    assert_eq!(
        out,
        vec![HookOutput::Resumed {
            start: std::time::Duration::from_secs(1),
            discarded: std::time::Duration::from_millis(1200)
        }]
    );
    let out = s2
        .on_text(&msg("close", 5, 3, json!({"reason":"end"})), now)
        .expect("close");
    assert!(matches!(&out[0], HookOutput::Closed { reason } if reason == "end"));
    assert_eq!(sent(&out)[0]["type"], "closed");
    assert!(s2.on_binary(&[0xFF; 2]).is_err());
    assert!(s2.on_text(&msg("ping", 6, 4, json!({})), now).is_err());
}

#[test]
fn sequence_errors() {
    let now = at(1_800_000_000);
    let mut s = HookSession::new();
    assert!(s.on_text(&msg("ping", 1, 0, json!({})), now).is_err());
    let mut s = HookSession::new();
    s.on_text(&msg("open", 1, 0, open_params("c1")), now)
        .expect("open");
    assert!(
        s.clone()
            .on_text(&msg("ping", 3, 1, json!({})), now)
            .is_err(),
        "gap"
    );
    assert!(
        s.clone()
            .on_text(&msg("ping", 1, 1, json!({})), now)
            .is_err(),
        "repeat"
    );
    assert!(
        s.clone()
            .on_text(&msg("ping", 2, 2, json!({})), now)
            .is_err(),
        "serverseq ahead"
    );
    let mut s3 = s.clone();
    s3.on_text(&msg("ping", 2, 1, json!({})), now)
        .expect("ping");
    assert!(
        s3.on_text(&msg("ping", 3, 0, json!({})), now).is_err(),
        "serverseq backwards"
    );
    assert!(
        s.clone()
            .on_text(&msg("open", 2, 1, open_params("c1")), now)
            .is_err()
    );
    let other =
        json!({"version":"2","id":"other","type":"ping","seq":2,"serverseq":1,"parameters":{}});
    assert!(s.clone().on_text(&other.to_string(), now).is_err());
    assert!(
        s.clone()
            .on_text(&msg("bogus", 2, 1, json!({})), now)
            .is_err()
    );
}

#[test]
fn probe_is_opened_and_marked() {
    let now = at(1_800_000_000);
    let mut s = HookSession::new();
    let mut p = open_params(PROBE_CONVERSATION);
    p["participant"] = Value::Null;
    let out = s.on_text(&msg("open", 1, 0, p), now).expect("open");
    assert!(
        out.iter()
            .any(|o| matches!(o, HookOutput::Opened { probe: true, .. }))
    );
    assert_eq!(sent(&out)[0]["type"], "opened");
}
