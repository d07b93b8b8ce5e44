//! Calls for the console tests: a recorded call through the native media socket with an optional
//! card payment in the middle, as the platform would send it.

use callvault::domain::{Codec, MediaFormat};
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::audio::tone;
use crate::common::live::{Live, Socket, sync};

pub const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};
const LOOKBACK_AND_GUARD_MS: i64 = 3_500;

pub async fn open_media(live: &Live, call: &str) -> Socket {
    let mut ws = live
        .media_with(call, Some(&live.telephony))
        .await
        .expect("media socket opens");
    let start = json!({
        "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2,
        "media_start": live.now().to_rfc3339(),
    });
    ws.send(Message::Text(start.to_string().into()))
        .await
        .expect("start frame");
    ws
}

/// Starts a call from `caller` and opens its media.
pub async fn begin(live: &Live, call: &str, caller: &str) -> Socket {
    let (s, b) = live
        .event(
            call,
            "call.started",
            Some(live.now()),
            json!({ "line": "+441744000111", "agent": "agent-7", "caller": caller, "queue": "council-tax" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    open_media(live, call).await
}

/// Ends a call and waits until its recording is sealed and uploaded; its id.
pub async fn end(live: &Live, call: &str, mut ws: Socket) -> String {
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    let (s, b) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(s, 200, "{b}");
    live.advance_ms(LOOKBACK_AND_GUARD_MS + 500);
    live.wait_sealed(call).await.id.to_string()
}

/// A call from `caller`: 2 s of 1 kHz, then (with `pay`) `payment.started`, 2 s of 2 kHz and
/// `payment.ended`, then 2 s of 1 kHz; sealed and uploaded. Its recording id.
pub async fn record(live: &Live, call: &str, caller: &str, pay: bool) -> String {
    let mut ws = begin(live, call, caller).await;
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 2000)).await;
    sync(&mut ws).await;
    if pay {
        let (s, b) = live.event(call, "payment.started", None, json!({})).await;
        assert_eq!(s, 200, "{b}");
        live.stream(&mut ws, &tone(FORMAT, 2000.0, 2000)).await;
        sync(&mut ws).await;
        let (s, b) = live.event(call, "payment.ended", None, json!({})).await;
        assert_eq!(s, 200, "{b}");
    }
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 2000)).await;
    sync(&mut ws).await;
    end(live, call, ws).await
}

/// Waits until the server has read everything sent on `ws` so far.
pub async fn settle(ws: &mut Socket) {
    sync(ws).await;
}
