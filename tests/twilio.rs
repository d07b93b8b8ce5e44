//! Twilio end to end, against Twilio's own Python library and the `streamdouble` Media Streams
//! simulator (both installed by `.ci/run`; a missing package fails these tests).

mod common;

use std::process::Command;

use callvault::catalog::RecordingStatus;
use common::audio::{decode_wav, goertzel};
use common::live::Live;
use common::{Deployment, exchange};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PUBLIC_URL: &str = "https://rec.example.com";

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed (is `pip install twilio streamdouble` done? .ci/run does it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Twilio's `RequestValidator` signature of a form POST.
fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let params = json!(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    python(
        "import sys, json\nfrom twilio.request_validator import RequestValidator\n\
         print(RequestValidator(sys.argv[1]).compute_signature(sys.argv[2], json.loads(sys.argv[3])))",
        &[token, url, &params.to_string()],
    )
}

fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post_status(live: &Live, body: &str, signature: &str) -> u16 {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let (status, _, _) = exchange(
        stream,
        "POST",
        "/v1/twilio/events",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", signature),
        ],
        body.as_bytes(),
    )
    .await;
    status
}

fn token(live: &Live) -> String {
    let s = live.config.twilio.auth_token.read().expect("token");
    String::from_utf8_lossy(s.expose_trimmed()).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_callbacks_signed_by_twilio_are_accepted_and_tampering_refused() {
    let live = Live::start(&format!(
        "[twilio]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\n"
    ))
    .await;
    let token = token(&live);
    let url = format!("{PUBLIC_URL}/v1/twilio/events");
    let params = [
        ("CallSid", "CAstatus1"),
        ("AccountSid", "AC1"),
        ("CallStatus", "in-progress"),
        ("From", "+447700900123"),
        ("To", "+441744676789"),
        ("Direction", "inbound"),
    ];
    let sig = twilio_sign(&token, &url, &params);
    assert_eq!(
        post_status(&live, &form(&params), &sig).await,
        200,
        "signed by RequestValidator"
    );
    let r = live
        .recording("CAstatus1")
        .await
        .expect("call.started made the recording");
    assert_eq!(r.line.as_deref(), Some("+441744676789"));

    let mut changed = params;
    changed[3].1 = "+447700900999";
    assert_eq!(
        post_status(&live, &form(&changed), &sig).await,
        401,
        "a changed parameter"
    );
    let wrong = twilio_sign("not-the-token", &url, &params);
    assert_eq!(
        post_status(&live, &form(&params), &wrong).await,
        401,
        "a wrong token"
    );

    let end = [("CallSid", "CAstatus1"), ("CallStatus", "completed")];
    let sig = twilio_sign(&token, &url, &end);
    assert_eq!(post_status(&live, &form(&end), &sig).await, 200);
    live.advance_ms(5_000);
    let r = live.wait_sealed("CAstatus1").await;
    assert_ne!(r.status, RecordingStatus::Live);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn media_upgrade_needs_the_signature() {
    let live = Live::start(&format!(
        "[twilio]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\n"
    ))
    .await;
    let token = token(&live);
    let connect = |sig: Option<String>| {
        let addr = live.public;
        async move {
            let mut req = format!("ws://{addr}/v1/twilio/media")
                .into_client_request()
                .expect("request");
            if let Some(s) = sig {
                req.headers_mut()
                    .insert("x-twilio-signature", s.parse().expect("header"));
            }
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tokio_tungstenite::client_async(req, tcp).await.map(|_| ())
        }
    };
    assert!(connect(None).await.is_err(), "unsigned upgrade refused");
    let good = twilio_sign(&token, "wss://rec.example.com/v1/twilio/media", &[]);
    connect(Some(good)).await.expect("signed upgrade accepted");
    let bad = twilio_sign("wrong", "wss://rec.example.com/v1/twilio/media", &[]);
    assert!(connect(Some(bad)).await.is_err(), "wrong token refused");
    live.stop().await;
}

fn write_tone(path: &std::path::Path, hz: f64, ms: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for n in 0..(8 * ms) {
        let t = f64::from(n) / 8000.0;
        let s = (0.5 * (std::f64::consts::TAU * hz * t).sin() * 32767.0) as i16;
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("wav");
}

#[tokio::test(flavor = "multi_thread")]
async fn streamdouble_two_track_call_is_recorded_in_stereo() {
    let live = Live::start_in(Deployment::new(&format!(
        "[twilio]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\nverify_media_signature = false\n"
    )))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (caller, agent) = (dir.path().join("caller.wav"), dir.path().join("agent.wav"));
    write_tone(&caller, 440.0, 2000);
    write_tone(&agent, 1300.0, 2000);
    let url = format!("ws://{}/v1/twilio/media", live.public);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-m",
                "streamdouble.cli",
                "call",
                &url,
                "--fork",
                "--track",
                "both",
            ])
            .arg("--audio")
            .arg(&caller)
            .arg("--agent-audio")
            .arg(&agent)
            .args([
                "--param",
                "call_id=twilio-sd-1",
                "--param",
                "line=+441744676789",
                "--json",
            ])
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "streamdouble failed (installed by .ci/run): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    live.advance_ms(2_500);
    let (status, body) = live
        .event("twilio-sd-1", "call.ended", None, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    live.advance_ms(5_000);
    let r = live.wait_sealed("twilio-sd-1").await;
    assert_eq!(r.channels, 2);
    assert_eq!(r.line.as_deref(), Some("+441744676789"));
    let (status, wav) = live.play(&r.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200);
    let d = decode_wav(&wav);
    assert_eq!(d.channels, 2);
    let secs = d.samples[0].len() as f64 / f64::from(d.rate);
    assert!(
        (1.8..=2.3).contains(&secs),
        "about 2 s recorded, got {secs}"
    );
    let mid = |ch: usize| &d.samples[ch][d.rate as usize / 2..d.rate as usize * 3 / 2];
    let (c440, c1300) = (
        goertzel(mid(0), d.rate, 440.0),
        goertzel(mid(0), d.rate, 1300.0),
    );
    let (a440, a1300) = (
        goertzel(mid(1), d.rate, 440.0),
        goertzel(mid(1), d.rate, 1300.0),
    );
    assert!(
        c440 > 0.05 && c1300 < 0.005,
        "caller channel: 440 {c440}, 1300 {c1300}"
    );
    assert!(
        a1300 > 0.05 && a440 < 0.005,
        "agent channel: 440 {a440}, 1300 {a1300}"
    );
    live.stop().await;
}
