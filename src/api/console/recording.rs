//! The recording page (metadata, status, holds, the ledger as a timeline, integrity, and once a
//! reason is given, the player and the waveform), the audio it plays (the API's own handler, with
//! `Range`), and the waveform's peaks, computed here from the rendered audio.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::markers::{self, Entry, Marker, Seg};
use super::pages::{self, Nav, when};
use super::{Console, ConsoleError, Signed};
use crate::api::auth::READERS;
use crate::api::{ApiError, recordings};
use crate::audio::peaks::PeaksBuilder;
use crate::audio::render::OutputFormat;
use crate::audit::NewAuditEntry;
use crate::domain::{PauseRender, Role};

/// Waveform buckets unless asked for fewer or more.
const DEFAULT_BUCKETS: usize = 600;
/// The most buckets a waveform has.
const MAX_BUCKETS: usize = 4000;

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The markers of a recording from the detail the API answered.
fn markers_of(st: &Console, detail: &Value) -> Vec<Marker> {
    let started = chrono::DateTime::parse_from_rfc3339(&s(detail, "started_at"))
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let skip = st
        .api
        .config
        .policy(&s(detail, "policy"))
        .is_some_and(|p| p.pause_render == PauseRender::Skip);
    let empty = Vec::new();
    let segs: Vec<Seg> = detail
        .get("segments")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .map(|g| Seg {
            start_ms: g.get("media_start_ms").and_then(Value::as_u64).unwrap_or(0),
            end_ms: g.get("media_end_ms").and_then(Value::as_u64).unwrap_or(0),
            stored: g.get("status").and_then(Value::as_str) == Some("stored"),
        })
        .collect();
    let ledger: Vec<Entry> = detail
        .get("ledger")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .map(|e| Entry {
            seq: e.get("seq").and_then(Value::as_u64).unwrap_or(0),
            at: chrono::DateTime::parse_from_rfc3339(&s(e, "at"))
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
            kind: s(e, "kind"),
            details: e.get("details").cloned().unwrap_or(Value::Null),
        })
        .collect();
    markers::markers(started, &segs, skip, &ledger)
}

fn seconds(ms: u64) -> String {
    if ms >= 60_000 {
        format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn compliance_forms(signed: &Signed, id: &str, detail: &Value) -> Markup {
    let restricted = detail.get("restricted").and_then(Value::as_bool) == Some(true);
    let segments = detail
        .get("segments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        section #compliance aria-labelledby="compliance-heading" {
            h2 #compliance-heading { "Compliance actions" }
            form method="post" action={ "/console/recordings/" (id) (if restricted { "/unrestrict" } else { "/restrict" }) } {
                input type="hidden" name="csrf" value=(signed.csrf);
                div.field {
                    label for="restrict-reason" { "Reason to " (if restricted { "lift the restriction" } else { "restrict" }) }
                    input #restrict-reason type="text" name="reason" required;
                }
                button type="submit" { (if restricted { "Lift restriction" } else { "Restrict" }) }
            }
            form method="post" action={ "/console/recordings/" (id) "/erase" } {
                input type="hidden" name="csrf" value=(signed.csrf);
                div.field {
                    label for="erase-reason" { "Reason to erase (this destroys the audio)" }
                    input #erase-reason type="text" name="reason" required;
                }
                button.warning type="submit" { "Erase recording" }
            }
            @if !segments.is_empty() {
                form method="post" action={ "/console/recordings/" (id) "/excise" } #excise-form {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    div.field {
                        label for="excise-segment" { "Segment to excise" }
                        select #excise-segment name="segment" {
                            @for g in &segments {
                                option value=(s(g, "segment")) { "Segment " (s(g, "segment")) " (" (s(g, "status")) ")" }
                            }
                        }
                    }
                    div.field {
                        label for="excise-reason" { "Reason to excise" }
                        input #excise-reason type="text" name="reason" required;
                    }
                    button.warning type="submit" { "Excise segment" }
                }
            }
        }
    }
}

/// `GET /console/recordings/{id}[?reason=][&notice=]`.
pub(super) async fn page(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let Json(detail) = recordings::get_one(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
    )
    .await?;
    let detail = serde_json::to_value(&detail).map_err(|e| ApiError::internal(&e))?;
    let id = s(&detail, "id");
    let reason = q.get("reason").map(|r| r.trim()).filter(|r| !r.is_empty());
    let marks = markers_of(&st, &detail);
    let empty = Vec::new();
    let holds = detail
        .get("holds")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let ledger = detail
        .get("ledger")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let segments = detail
        .get("segments")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let checkpoint = st
        .api
        .catalog
        .latest_checkpoint()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let last_audit = st
        .api
        .catalog
        .audit_head()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let status = s(&detail, "status");
    let q_reason = reason.map(super::form_urlencoded_value).unwrap_or_default();
    let body = html! {
        @if let Some(n) = q.get("notice") {
            div.notice role="status" { (n) }
        }
        dl.summary {
            dt { "Call" } dd { (s(&detail, "call_id")) }
            dt { "Status" } dd #status { (status) @if detail.get("restricted").and_then(Value::as_bool) == Some(true) { " (restricted)" } }
            dt { "Started" } dd { (when(&s(&detail, "started_at"))) }
            dt { "Ended" } dd { (when(&s(&detail, "ended_at"))) }
            dt { "Audio kept" } dd { (seconds(detail.get("duration_ms").and_then(Value::as_u64).unwrap_or(0))) }
            dt { "Line" } dd { (s(&detail, "line")) }
            dt { "Queue" } dd { (s(&detail, "queue")) }
            dt { "Agent" } dd { (s(&detail, "agent")) }
            dt { "Policy" } dd { (s(&detail, "policy")) }
            dt { "Kept until" } dd { @if holds.is_empty() { (when(&s(&detail, "expires_at"))) } @else { "held (see below)" } }
        }
        section aria-labelledby="player-heading" {
            h2 #player-heading { "Listen" }
            @if let Some(r) = reason {
                p { "Reason given: " (r) }
                figure #waveform data-peaks={ "/console/recordings/" (id) "/peaks?reason=" (q_reason) } {
                    div.wave-canvas #wave-canvas {}
                    figcaption { "Waveform of both channels (caller above, agent below); marked stretches are listed under " a href="#events" { "Events in the call" } "." }
                }
                audio #player controls preload="metadata" src={ "/console/recordings/" (id) "/audio?reason=" (q_reason) } {
                    "Your browser cannot play this audio."
                }
                p { a #download href={ "/console/recordings/" (id) "/audio?reason=" (q_reason) "&download=1" } download={ "recording-" (id) ".wav" } { "Download the recording (WAV)" } }
            } @else {
                form method="get" action={ "/console/recordings/" (id) } #reason-form {
                    div.field {
                        label for="play-reason" { "Reason for listening or downloading" }
                        p.hint #play-reason-hint { "Recorded in the audit log with every play and download." }
                        input #play-reason type="text" name="reason" required aria-describedby="play-reason-hint";
                    }
                    button type="submit" { "Continue to the player" }
                }
            }
        }
        section #events aria-labelledby="events-heading" {
            h2 #events-heading { "Events in the call" }
            @if marks.is_empty() {
                p { "No pauses, refusals, gaps or cut-backs." }
            } @else {
                table #markers {
                    caption.visually-hidden { "Pauses and other events, by position in the recording" }
                    thead { tr { th scope="col" { "At" } th scope="col" { "Event" } th scope="col" { "Length in the call" } } }
                    tbody {
                        @for m in &marks {
                            tr data-class=(m.class) data-start-ms=(m.start_ms) data-length-ms=(m.length_ms) data-seq=(m.seq) {
                                td { (seconds(m.start_ms)) } td { (m.label) } td { (seconds(m.length_ms)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="holds-heading" {
            h2 #holds-heading { "Holds" }
            @if holds.is_empty() { p #no-holds { "No active hold." } }
            @else {
                ul #holds { @for h in holds { li { strong { (s(h, "reference")) } ": " (s(h, "reason")) " (since " (when(&s(h, "created_at"))) ")" } } }
            }
            form method="post" action={ "/console/recordings/" (id) "/hold" } #hold-form {
                input type="hidden" name="csrf" value=(signed.csrf);
                div.field {
                    label for="hold-reference" { "Complaint reference" }
                    input #hold-reference type="text" name="reference" required;
                }
                div.field {
                    label for="hold-reason" { "Reason for the hold" }
                    input #hold-reason type="text" name="reason" required;
                }
                button type="submit" { "Place a hold" }
            }
        }
        section aria-labelledby="ledger-heading" {
            h2 #ledger-heading { "Ledger" }
            ol.timeline #ledger {
                @for e in ledger {
                    li data-kind=(s(e, "kind")) {
                        span.time { (when(&s(e, "at"))) } " "
                        strong { (s(e, "kind")) }
                        " by " (s(e, "actor"))
                        @if !s(e, "reason").is_empty() { ": " (s(e, "reason")) }
                    }
                }
            }
        }
        section aria-labelledby="integrity-heading" {
            h2 #integrity-heading { "Integrity" }
            table #integrity {
                caption.visually-hidden { "Segments and their hashes" }
                thead { tr { th scope="col" { "Segment" } th scope="col" { "Media (ms)" } th scope="col" { "Status" } th scope="col" { "SHA-256 of the sealed object" } } }
                tbody {
                    @for g in segments {
                        tr { td { (s(g, "segment")) } td { (s(g, "media_start_ms")) "-" (s(g, "media_end_ms")) } td { (s(g, "status")) } td.hash { (s(g, "sha256")) } }
                    }
                }
            }
            @match &checkpoint {
                Some(cp) => p #checkpoint {
                    "The audit chain is signed up to entry " (cp.seq) " (" (when(&cp.at.to_rfc3339())) "), head hash "
                    code { (hex::encode(cp.hash)) } "; the chain now has " (last_audit.seq) " entries. "
                    @if cp.seq >= last_audit.seq { "Every entry about this recording is covered." } @else { "The newest entries are covered at the next checkpoint." }
                },
                None => p #checkpoint { "No signed checkpoint of the audit chain yet." },
            }
        }
        @if signed.caller.role == Role::Compliance {
            (compliance_forms(&signed, &id, &detail))
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::page("Recording", Some(&signed), Nav::Search, body),
    ))
}

/// `GET /console/recordings/{id}/audio?reason=[&download=1]`: the API's audio handler.
pub(super) async fn audio(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let download = q.remove("download").is_some();
    let mut r = recordings::audio(
        State(st.api.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query(q),
        headers,
    )
    .await?;
    if download
        && let Ok(v) = axum::http::HeaderValue::from_str(&format!(
            "attachment; filename=\"recording-{}.wav\"",
            id.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        ))
    {
        r.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `GET /console/recordings/{id}/peaks?reason=[&buckets=]`: both channels' peaks and the markers,
/// as JSON. Reading the audio for it is an access: the same reason, status and restriction rules
/// as playing, and an audit entry (`recording.waveform`).
pub(super) async fn peaks(
    State(st): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ConsoleError> {
    let caller = &signed.caller;
    caller.require(READERS)?;
    let reason = crate::api::query_reason(&q, "see a recording's waveform")?;
    let buckets = match q.get("buckets") {
        None => DEFAULT_BUCKETS,
        Some(b) => b
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BUCKETS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("bad_field", format!("buckets: 1 to {MAX_BUCKETS}"))
            })?,
    };
    let rid = recordings::parse_id(&id)?;
    let row = st
        .api
        .catalog
        .recording(rid)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::NotFound)?;
    recordings::check_playable(&row, caller)?;
    let timeline = recordings::timeline(&st.api, &row, OutputFormat::Pcm16).await?;
    st.api
        .catalog
        .append_audit(
            NewAuditEntry::new(
                st.api.clock.now(),
                &caller.actor,
                "recording.waveform",
                rid.to_string(),
            )
            .reason(reason)
            .details(&json!({ "buckets": buckets })),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let spec = timeline.wav_spec();
    let frames = timeline.frames();
    let mut builder = PeaksBuilder::new(spec.channels, frames, buckets);
    let mut audio = std::pin::pin!(timeline.stream(timeline.header_len()..timeline.file_len()));
    while let Some(piece) = audio.next().await {
        builder.push(&piece.map_err(|e| ApiError::internal(&e))?);
    }
    let peaks = builder.finish();
    let duration_ms = frames * 1000 / u64::from(spec.sample_rate.max(1));
    // the markers from the same rows the recording page reads (this access is audited above)
    let segments = st
        .api
        .catalog
        .segments(rid)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let ledger = st
        .api
        .catalog
        .ledger(rid)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let detail = json!({
        "started_at": row.started_at.to_rfc3339(),
        "policy": row.policy,
        "segments": segments.iter().map(|g| json!({
            "media_start_ms": g.media_start_ms, "media_end_ms": g.media_end_ms,
            "status": g.status.as_str(),
        })).collect::<Vec<_>>(),
        "ledger": ledger.iter().map(|e| json!({
            "seq": e.seq, "at": e.at.to_rfc3339(), "kind": e.kind,
            "details": serde_json::from_str::<Value>(&e.details).unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
    });
    let round = |x: f32| (x * 1000.0).round() / 1000.0;
    Ok(Json(json!({
        "duration_ms": duration_ms,
        "buckets": buckets,
        "channels": peaks.channels.iter().map(|c| c.iter().map(|(lo, hi)| [round(*lo), round(*hi)]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "markers": markers_of(&st, &detail),
    })))
}
