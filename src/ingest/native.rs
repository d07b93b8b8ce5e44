//! The native event format: one JSON object per event, as posted to `POST /v1/events` and sent as
//! control frames on a native media socket (DESIGN.md section 5).
//!
//! ```json
//! {"id": "evt_1", "type": "payment.started", "call_id": "CA123", "at": "2025-01-31T10:00:00Z"}
//! ```
//!
//! Unknown extra fields are ignored, because platforms add their own; a known field of the wrong
//! type is an error that names it. `null` counts as absent.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::IngestError;
use crate::domain::{CallEvent, CallId, EventKind};

/// Longest accepted event id.
pub const MAX_ID_LEN: usize = 200;
/// Longest accepted short text field (`line`, `caller`, `agent`, `queue`, `reference`).
pub const MAX_TEXT_LEN: usize = 256;
/// Longest accepted `reason`.
pub const MAX_REASON_LEN: usize = 1024;
/// Most call ids one `complaint.opened` may name.
pub const MAX_CALL_IDS: usize = 1000;

/// Parses one native event (the body of `POST /v1/events`).
pub fn parse_event(json: &[u8]) -> Result<CallEvent, IngestError> {
    let map = object(json)?;
    event_from_map(&map, None)
}

/// Parses one control frame of a native media socket: the same shape as [`parse_event`], except
/// that `call_id` may be left out (it is then the call of the socket's URL) and, when present, must
/// be that call.
pub fn parse_control(json: &str, call_id_from_url: &CallId) -> Result<CallEvent, IngestError> {
    let map = object(json.as_bytes())?;
    event_from_map(&map, Some(call_id_from_url))
}

/// Writes an event in the native format, the inverse of [`parse_event`]. The simulator and tests use
/// it to speak as a platform would.
pub fn encode_event(event: &CallEvent) -> String {
    let mut m = Map::new();
    m.insert("id".into(), event.id.clone().into());
    m.insert("type".into(), event.kind.name().into());
    m.insert("call_id".into(), event.call_id.as_str().into());
    m.insert(
        "at".into(),
        event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
    );
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), v.clone().into());
        }
    };
    match &event.kind {
        EventKind::CallStarted {
            line,
            caller,
            agent,
            queue,
        } => {
            opt("line", line);
            opt("caller", caller);
            opt("agent", agent);
            opt("queue", queue);
        }
        EventKind::RecordingPaused { reason } | EventKind::RecordingResumed { reason } => {
            opt("reason", reason);
        }
        EventKind::ComplaintOpened {
            reference,
            call_ids,
            caller,
        } => {
            opt("caller", caller);
            m.insert("reference".into(), reference.clone().into());
            if !call_ids.is_empty() {
                let ids = call_ids.iter().map(|c| Value::from(c.as_str())).collect();
                m.insert("call_ids".into(), Value::Array(ids));
            }
        }
        EventKind::ComplaintResolved { reference } => {
            m.insert("reference".into(), reference.clone().into());
        }
        EventKind::CallEnded
        | EventKind::ConsentGiven
        | EventKind::ConsentRefused
        | EventKind::PaymentStarted
        | EventKind::PaymentEnded => {}
    }
    Value::Object(m).to_string()
}

/// Parses `json` as a JSON object.
pub(super) fn object(json: &[u8]) -> Result<Map<String, Value>, IngestError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(IngestError::Json {
            reason: "expected a json object".into(),
        }),
        // serde_json's message names a line and column and the kind of error, never the input
        Err(e) => Err(IngestError::Json {
            reason: e.to_string(),
        }),
    }
}

/// The event in `m`; `url_call` is the media socket's call when this is a control frame.
pub(super) fn event_from_map(
    m: &Map<String, Value>,
    url_call: Option<&CallId>,
) -> Result<CallEvent, IngestError> {
    let ty = req_str(m, "type")?;
    let kind = match ty {
        "call.started" => EventKind::CallStarted {
            line: text(m, "line", MAX_TEXT_LEN)?,
            caller: text(m, "caller", MAX_TEXT_LEN)?,
            agent: text(m, "agent", MAX_TEXT_LEN)?,
            queue: text(m, "queue", MAX_TEXT_LEN)?,
        },
        "call.ended" => EventKind::CallEnded,
        "consent.given" => EventKind::ConsentGiven,
        "consent.refused" => EventKind::ConsentRefused,
        "payment.started" => EventKind::PaymentStarted,
        "payment.ended" => EventKind::PaymentEnded,
        "recording.paused" => EventKind::RecordingPaused {
            reason: text(m, "reason", MAX_REASON_LEN)?,
        },
        "recording.resumed" => EventKind::RecordingResumed {
            reason: text(m, "reason", MAX_REASON_LEN)?,
        },
        "complaint.opened" => EventKind::ComplaintOpened {
            reference: reference(m)?,
            call_ids: call_ids(m)?,
            caller: text(m, "caller", MAX_TEXT_LEN)?,
        },
        "complaint.resolved" => EventKind::ComplaintResolved {
            reference: reference(m)?,
        },
        other => return Err(IngestError::unknown_type(other)),
    };
    let id = req_str(m, "id")?;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(IngestError::bad(
            "id",
            format!("must be 1 to {MAX_ID_LEN} printable ascii characters"),
        ));
    }
    let call_id = match (opt_str(m, "call_id")?, url_call) {
        (Some(s), url) => {
            let c: CallId = s
                .parse()
                .map_err(|e: crate::domain::IdError| IngestError::bad("call_id", e.to_string()))?;
            if url.is_some_and(|u| *u != c) {
                return Err(IngestError::bad(
                    "call_id",
                    "differs from the call of the media socket",
                ));
            }
            c
        }
        (None, Some(url)) => url.clone(),
        (None, None) => return Err(IngestError::MissingField { field: "call_id" }),
    };
    let at = timestamp(m, "at")?.ok_or(IngestError::MissingField { field: "at" })?;
    Ok(CallEvent {
        id: id.to_owned(),
        call_id,
        at,
        kind,
    })
}

/// A required string field.
pub(super) fn req_str<'a>(
    m: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, IngestError> {
    opt_str(m, field)?.ok_or(IngestError::MissingField { field })
}

/// An optional string field; `null` is absent.
pub(super) fn opt_str<'a>(
    m: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, IngestError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(IngestError::bad(
            field,
            format!("expected a string, got {}", json_kind(v)),
        )),
    }
}

/// An optional RFC 3339 timestamp field.
pub(super) fn timestamp(
    m: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, IngestError> {
    opt_str(m, field)?
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| IngestError::bad(field, format!("not an rfc 3339 timestamp: {e}")))
        })
        .transpose()
}

/// An optional free-text field of at most `max` bytes without control characters.
fn text(
    m: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, IngestError> {
    let Some(s) = opt_str(m, field)? else {
        return Ok(None);
    };
    if s.len() > max {
        return Err(IngestError::bad(field, format!("longer than {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(IngestError::bad(field, "contains a control character"));
    }
    Ok(Some(s.to_owned()))
}

fn reference(m: &Map<String, Value>) -> Result<String, IngestError> {
    match text(m, "reference", MAX_TEXT_LEN)? {
        Some(r) if !r.trim().is_empty() => Ok(r),
        Some(_) => Err(IngestError::bad("reference", "is blank")),
        None => Err(IngestError::MissingField { field: "reference" }),
    }
}

fn call_ids(m: &Map<String, Value>) -> Result<Vec<CallId>, IngestError> {
    let items = match m.get("call_ids") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(IngestError::bad(
                "call_ids",
                format!("expected an array, got {}", json_kind(v)),
            ));
        }
    };
    if items.len() > MAX_CALL_IDS {
        return Err(IngestError::bad(
            "call_ids",
            format!("more than {MAX_CALL_IDS} items"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => s
                .parse()
                .map_err(|e| IngestError::bad("call_ids", format!("item {i}: {e}"))),
            v => Err(IngestError::bad(
                "call_ids",
                format!("item {i}: expected a string, got {}", json_kind(v)),
            )),
        })
        .collect()
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
