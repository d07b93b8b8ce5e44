//! Twilio: `POST /v1/twilio/events` (call status callbacks) and `GET /v1/twilio/media` (Media
//! Streams), both authenticated by `X-Twilio-Signature` over the URL Twilio called
//! (`twilio.public_url` plus the request's path and query).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::events::{apply, ingest_error, note_call, recorder_error};
use super::socket::{Pacer, Wake, close};
use super::{ApiError, ApiState};
use crate::catalog::CallSource;
use crate::domain::CallId;
use crate::domain::timeline::MediaClock;
use crate::ingest::twilio::stream::{StreamOutput, StreamSession};
use crate::ingest::twilio::{
    Algorithm, SETTINGS_HEADER, SIGNATURE_HEADER, TwilioAuth, json_params, parse_form, status_event,
};
use crate::recorder::MediaSink;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;

fn enabled(st: &ApiState) -> Result<&TwilioAuth, ApiError> {
    st.platforms.twilio.as_ref().ok_or(ApiError::NotFound)
}

/// The URL Twilio signed: the public base URL (its scheme swapped for `ws`/`wss` on the media
/// socket) plus the path and query as requested.
fn signed_url(st: &ApiState, uri: &axum::http::Uri, websocket: bool) -> String {
    let base = st.config.twilio.public_url.as_deref().unwrap_or_default();
    let base = if websocket {
        if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        }
    } else {
        base.to_owned()
    };
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{base}{pq}")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A call status callback: verified, turned into `call.started` or `call.ended`, and applied once.
pub(super) async fn events(
    State(st): State<ApiState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let auth = enabled(&st)?;
    let arrival = st.clock.now();
    let bytes = axum::body::to_bytes(body, st.config.public.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let url = signed_url(&st, &uri, false);
    let alg = Algorithm::from_settings(header(&headers, SETTINGS_HEADER))
        .map_err(|e| ingest_error(&e))?;
    let signature = header(&headers, SIGNATURE_HEADER);
    let json_body = header(&headers, "content-type")
        .is_some_and(|c| c.trim_start().starts_with("application/json"));
    let params = if json_body {
        auth.verify_json(&url, &bytes, signature, alg)
            .map_err(|e| ingest_error(&e))?;
        json_params(&bytes).map_err(|e| ingest_error(&e))?
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("bad_field", "body: not utf-8"))?;
        let params = parse_form(text).map_err(|e| ingest_error(&e))?;
        auth.verify(&url, &params, signature, alg)
            .map_err(|e| ingest_error(&e))?;
        params
    };
    match status_event(&params, arrival).map_err(|e| ingest_error(&e))? {
        Some(event) => {
            // Twilio's own count of the call's length, in whole seconds, on its final callback
            let duration_ms = params
                .iter()
                .find(|(n, _)| n == "CallDuration")
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000));
            note_call(&st, &event, CallSource::Twilio, duration_ms, arrival).await?;
            let status = apply(&st, event, arrival).await?;
            Ok(Json(json!({ "status": status })))
        }
        None => Ok(Json(json!({ "status": "ignored" }))),
    }
}

/// Verifies the upgrade's signature (unless `twilio.verify_media_signature` is off), then upgrades.
pub(super) async fn media(
    State(st): State<ApiState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let auth = enabled(&st)?;
    if st.config.twilio.verify_media_signature {
        let url = signed_url(&st, &uri, true);
        auth.verify(
            &url,
            &[],
            header(&headers, SIGNATURE_HEADER),
            Algorithm::Sha1,
        )
        .map_err(|e| ingest_error(&e))?;
    }
    Ok(super::telephony_socket(ws).on_upgrade(move |socket| stream(st, socket)))
}

async fn stream(st: ApiState, mut socket: WebSocket) {
    let mut session = StreamSession::new();
    let mut sink: Option<MediaSink> = None;
    let mut call: Option<CallId> = None;
    let mut pacer = Pacer::new(st.config.recorder.idle_seal, &st.shutdown);
    let (code, reason): (u16, String) = loop {
        let msg = match pacer.next(&mut socket, sink.as_ref()).await {
            Wake::Message(msg) => msg,
            Wake::Flush => {
                if let Some(s) = &mut sink
                    && s.flush().await.is_err()
                {
                    break (CLOSE_NORMAL, "call ended".into());
                }
                continue;
            }
            Wake::Idle => break (CLOSE_NORMAL, "idle".into()),
            Wake::Shutdown => break (CLOSE_GOING_AWAY, "server shutting down".into()),
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => break (CLOSE_NORMAL, String::new()),
            Some(Ok(Message::Binary(_))) => {
                break (CLOSE_INVALID, "binary frames are not media streams".into());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) => {
                debug!(error = %e, "twilio media socket error");
                break (CLOSE_POLICY, "protocol error".into());
            }
        };
        let outputs = match session.on_text(text.as_str(), st.clock.now()) {
            Ok(o) => o,
            Err(e) => {
                let mut reason = e.to_string();
                let mut cut = reason.len().min(crate::ingest::media::MAX_REASON_BYTES);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
                break (CLOSE_INVALID, reason);
            }
        };
        let mut stop = None;
        for out in outputs {
            match out {
                StreamOutput::Started {
                    call_id,
                    format,
                    started,
                } => {
                    if let Some(event) = started
                        && let Err(e) = apply(&st, event, st.clock.now()).await
                    {
                        warn!(call_id = %call_id, error = %e, "call.started from the media stream refused");
                    }
                    match st
                        .recorder
                        .open_media(&call_id, format, MediaClock::Stamped, None)
                        .await
                    {
                        Ok(s) => sink = Some(s),
                        Err(e) => {
                            let api = recorder_error(e);
                            stop = Some((CLOSE_POLICY, format!("{}: {api}", api.code())));
                        }
                    }
                    info!(call_id = %call_id, channels = format.channels, "twilio media stream started");
                    call = Some(call_id);
                }
                StreamOutput::Audio { position, bytes } => {
                    if let Some(s) = &mut sink
                        && s.push_at(position, &bytes)
                        && s.flush().await.is_err()
                    {
                        stop = Some((CLOSE_NORMAL, "call ended".into()));
                    }
                }
                StreamOutput::Key => {
                    if let Some(s) = &mut sink
                        && s.key()
                        && s.flush().await.is_err()
                    {
                        stop = Some((CLOSE_NORMAL, "call ended".into()));
                    }
                }
                StreamOutput::Stopped => stop = Some((CLOSE_NORMAL, "stop".into())),
            }
            if stop.is_some() {
                break;
            }
        }
        if let Some(s) = stop {
            break s;
        }
    };
    // an abrupt close without `stop` still delivers what was buffered
    if let Some(s) = &mut sink {
        for out in session.finish() {
            if let StreamOutput::Audio { position, bytes } = out {
                s.push_at(position, &bytes);
            }
        }
        if let Err(e) = s.flush().await {
            debug!(error = %e, "the call ended before the last audio reached it");
        }
    }
    let call = call.as_ref().map_or_else(String::new, ToString::to_string);
    if code == CLOSE_NORMAL || code == CLOSE_GOING_AWAY {
        info!(call_id = %call, dropped_late = session.dropped_late(), %reason, "twilio media stream closed");
    } else {
        warn!(call_id = %call, code, %reason, "twilio media stream closed on a bad message");
        metrics::counter!("callvault_media_rejected_total").increment(1);
    }
    drop(sink);
    close(socket, code, reason).await;
}
