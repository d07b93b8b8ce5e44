//! Planning and writing a bundle.

use crate::audio::playback::{LayoutError, layout, stream_gaps};
use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use object_store::ObjectStore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use super::{BUNDLE_FORMAT, BundleSigner, ExportError, INDEX, MANIFEST, PUBLIC_KEY, SIGNATURE};
use crate::audio::render::{OutputFormat, Timeline};
use crate::audit::Checkpoint;
use crate::catalog::{
    Catalog, LedgerEntry, RecordingQuery, RecordingRow, RecordingStatus, SegmentRow, SegmentStatus,
};
use crate::config::Config;
use crate::domain::{PauseRender, RecordingId};
use crate::vault::Keyring;

/// Rows read per catalog page while planning.
const PAGE: usize = 500;

/// Where a bundle's recordings come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The configuration (for each recording's pause rendering).
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The object store of sealed audio.
    pub store: Arc<dyn ObjectStore>,
    /// The key-encryption keys.
    pub keyring: Arc<Keyring>,
}

/// What a bundle is for.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    /// The data subject's lookup tag.
    pub caller_tag: [u8; 32],
    /// The data subject's number as the manifest shows it (masked unless the role may see it).
    pub caller: String,
    /// Calls that started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this time.
    pub to: Option<DateTime<Utc>>,
    /// The subject access request's reference.
    pub sar_reference: String,
    /// Why the bundle is made.
    pub reason: String,
    /// Who asked for it.
    pub actor: String,
    /// Whether the requester holds the compliance role, which alone may export restricted
    /// recordings and those under review.
    pub compliance: bool,
    /// When the bundle was asked for (the manifest's `created_at`).
    pub created_at: DateTime<Utc>,
}

/// A recording that goes into the bundle, with everything its manifest entry says.
#[derive(Debug, Clone)]
pub struct PlannedRecording {
    /// Its catalog row.
    pub row: RecordingRow,
    /// Its WAV's name in the ZIP.
    pub file: String,
    /// Its segments.
    pub segments: Vec<SegmentRow>,
    /// Its ledger.
    pub ledger: Vec<LedgerEntry>,
    /// References of the active holds on it.
    pub holds: Vec<String>,
    /// How its pauses sound.
    pub render: PauseRender,
}

/// A recording of the subject that is left out, and why.
#[derive(Debug, Clone)]
pub struct Withheld {
    /// The recording.
    pub id: RecordingId,
    /// When its call started.
    pub started_at: DateTime<Utc>,
    /// Why it is not in the bundle, e.g. `restricted`, `audio_destroyed`.
    pub reason: &'static str,
}

/// What a bundle will hold.
#[derive(Debug, Clone)]
pub struct BundlePlan {
    /// What it is for.
    pub request: BundleRequest,
    /// The recordings in it, oldest first.
    pub recordings: Vec<PlannedRecording>,
    /// The subject's recordings left out.
    pub withheld: Vec<Withheld>,
    /// The audit chain's head, signed, when the bundle is written (`audit_checkpoint` in the
    /// manifest): a copy of the checkpoint kept outside the database with the bundle.
    pub checkpoint: Option<Checkpoint>,
}

/// How far [`write_bundle`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Recordings written.
    pub done: usize,
    /// Recordings to write.
    pub total: usize,
    /// Audio bytes written so far.
    pub bytes: u64,
}

/// Finds the subject's recordings in the range and decides which go in.
pub async fn plan(src: &Sources, request: BundleRequest) -> Result<BundlePlan, ExportError> {
    let mut query = RecordingQuery {
        caller_tag: Some(request.caller_tag),
        from: request.from,
        to: request.to,
        limit: PAGE,
        ..RecordingQuery::default()
    };
    let mut recordings = Vec::new();
    let mut withheld = Vec::new();
    loop {
        let page = src.catalog.search_recordings(&query).await?;
        let Some(last) = page.last() else { break };
        query.after = Some((last.started_at, last.id));
        for row in page {
            if let Some(reason) = withhold(&row, request.compliance) {
                withheld.push(Withheld {
                    id: row.id,
                    started_at: row.started_at,
                    reason,
                });
                continue;
            }
            let segments = src.catalog.segments(row.id).await?;
            let ledger = src.catalog.ledger(row.id).await?;
            let holds = src
                .catalog
                .holds_for_recording(row.id)
                .await?
                .into_iter()
                .map(|h| h.reference)
                .collect();
            let render = src
                .config
                .policy(&row.policy)
                .map_or(PauseRender::Tone, |p| p.pause_render);
            let file = format!(
                "recordings/{}_{}.wav",
                row.started_at.format("%Y-%m-%dT%H%M%SZ"),
                row.id
            );
            recordings.push(PlannedRecording {
                row,
                file,
                segments,
                ledger,
                holds,
                render,
            });
        }
    }
    Ok(BundlePlan {
        request,
        recordings,
        withheld,
        checkpoint: None,
    })
}

/// Why a recording is left out of a bundle for this requester, if it is.
fn withhold(row: &RecordingRow, compliance: bool) -> Option<&'static str> {
    match row.status {
        RecordingStatus::Sealed => {}
        RecordingStatus::Live => return Some("recording_live"),
        RecordingStatus::PciReview | RecordingStatus::Quarantined if !compliance => {
            return Some("under_review");
        }
        RecordingStatus::PciReview | RecordingStatus::Quarantined => {}
        RecordingStatus::RefusalHeld if !compliance => return Some("restricted"),
        RecordingStatus::RefusalHeld => {}
        RecordingStatus::Refused | RecordingStatus::Expired | RecordingStatus::Erased => {
            return Some("audio_destroyed");
        }
    }
    if row.restricted && !compliance {
        return Some("restricted");
    }
    None
}

/// Writes the bundle of `plan` to `out` and returns `out`. Blocking (run it on a blocking thread):
/// it pulls each recording's audio through `rt` a piece at a time.
pub fn write_bundle<W: Write>(
    plan: &BundlePlan,
    src: &Sources,
    signer: &BundleSigner,
    rt: &Handle,
    out: W,
    progress: &mut dyn FnMut(Progress),
) -> Result<W, ExportError> {
    // stored, not deflated: G.711 and PCM barely compress, and verifying stays a plain read
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(false);
    let mut zip = zip::ZipWriter::new_stream(out);
    let mut files = serde_json::Map::new();
    let mut state = Progress {
        done: 0,
        total: plan.recordings.len(),
        bytes: 0,
    };
    progress(state);
    let mut entries = Vec::new();
    for p in &plan.recordings {
        let timeline = rt.block_on(timeline(src, p))?;
        let len = timeline.file_len();
        zip.start_file(p.file.as_str(), options)?;
        let mut hash = Sha256::new();
        let mut stream = std::pin::pin!(timeline.stream(0..len));
        while let Some(piece) = rt.block_on(stream.next()) {
            let piece = piece.map_err(|source| ExportError::Render {
                id: p.row.id.to_string(),
                source,
            })?;
            hash.update(&piece);
            zip.write_all(&piece)?;
            state.bytes += piece.len() as u64;
            progress(state);
        }
        files.insert(
            p.file.clone(),
            json!({ "sha256": hex::encode(hash.finalize()), "size": len }),
        );
        entries.push(manifest_entry(p, &timeline));
        state.done += 1;
        progress(state);
    }
    let index = index_html(plan);
    zip.start_file(INDEX, options)?;
    zip.write_all(index.as_bytes())?;
    files.insert(
        INDEX.to_owned(),
        json!({ "sha256": hex::encode(Sha256::digest(index.as_bytes())), "size": index.len() }),
    );
    let r = &plan.request;
    let manifest = json!({
        "format": BUNDLE_FORMAT,
        "created_at": stamp(&r.created_at),
        "sar_reference": r.sar_reference,
        "reason": r.reason,
        "actor": r.actor,
        "caller": r.caller,
        "from": r.from.as_ref().map(stamp),
        "to": r.to.as_ref().map(stamp),
        "recordings": entries,
        "withheld": plan.withheld.iter().map(|w| json!({
            "id": w.id.to_string(), "started_at": stamp(&w.started_at), "reason": w.reason,
        })).collect::<Vec<_>>(),
        "files": files,
        "signing_key": signer.public_key_b64(),
        "audit_checkpoint": plan.checkpoint.as_ref().map(Checkpoint::to_json),
    });
    let manifest = serde_json::to_vec_pretty(&manifest).expect("a json value always serializes");
    zip.start_file(MANIFEST, options)?;
    zip.write_all(&manifest)?;
    zip.start_file(SIGNATURE, options)?;
    zip.write_all(signer.sign_b64(&manifest).as_bytes())?;
    zip.start_file(PUBLIC_KEY, options)?;
    zip.write_all(signer.public_key_b64().as_bytes())?;
    let out = zip.finish()?.into_inner();
    Ok(out)
}

fn stamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Stretches of the call without audio: the gaps between segments (pauses) and excised segments.
fn pauses(p: &PlannedRecording) -> Vec<(u64, u64, &'static str)> {
    let mut out = Vec::new();
    let mut prev_end: Option<u64> = None;
    for s in &p.segments {
        if let Some(end) = prev_end
            && s.media_start_ms > end
        {
            out.push((end, s.media_start_ms, "pause"));
        }
        if matches!(s.status, SegmentStatus::Excised | SegmentStatus::Deleted) {
            out.push((s.media_start_ms, s.media_end_ms, "excised"));
        }
        prev_end = Some(s.media_end_ms.max(prev_end.unwrap_or(0)));
    }
    out
}

fn recorded_ms(p: &PlannedRecording) -> u64 {
    p.segments
        .iter()
        .filter(|s| s.status == SegmentStatus::Stored)
        .map(|s| s.media_end_ms.saturating_sub(s.media_start_ms))
        .sum()
}

fn manifest_entry(p: &PlannedRecording, timeline: &Timeline) -> Value {
    let r = &p.row;
    let rate = u64::from(r.sample_rate.max(1));
    json!({
        "id": r.id.to_string(),
        "call_id": r.call_id.as_str(),
        "file": p.file,
        "status": r.status.as_str(),
        "policy": r.policy,
        "pause_render": p.render.to_string(),
        "line": r.line,
        "queue": r.queue,
        "agent": r.agent,
        "started_at": stamp(&r.started_at),
        "ended_at": r.ended_at.as_ref().map(stamp),
        "restricted": r.restricted,
        "recorded_ms": recorded_ms(p),
        "rendered_ms": timeline.frames() * 1000 / rate,
        "segments": p.segments.iter().map(|s| json!({
            "segment": s.segment.0, "media_start_ms": s.media_start_ms,
            "media_end_ms": s.media_end_ms, "status": s.status.as_str(),
        })).collect::<Vec<_>>(),
        "pauses": pauses(p).into_iter().map(|(a, b, kind)| json!({
            "from_ms": a, "to_ms": b, "kind": kind,
        })).collect::<Vec<_>>(),
        "holds": p.holds,
        "ledger": p.ledger.iter().map(|e| json!({
            "seq": e.seq, "at": stamp(&e.at), "kind": e.kind, "actor": e.actor,
            "reason": e.reason,
            "details": serde_json::from_str::<Value>(&e.details).unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn mmss(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
}

fn index_html(plan: &BundlePlan) -> String {
    let r = &plan.request;
    let mut rows = String::new();
    for p in &plan.recordings {
        let row = &p.row;
        let pauses: Vec<String> = pauses(p)
            .into_iter()
            .map(|(a, b, kind)| format!("{kind} {}–{}", mmss(a), mmss(b)))
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td></tr>\n",
            escape(&row.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            escape(row.line.as_deref().unwrap_or("")),
            escape(row.agent.as_deref().unwrap_or("")),
            mmss(recorded_ms(p)),
            escape(&if pauses.is_empty() { "none".to_owned() } else { pauses.join(", ") }),
            escape(&if p.holds.is_empty() { "none".to_owned() } else { p.holds.join(", ") }),
            escape(&p.file),
            escape(&p.file),
        ));
    }
    let withheld = if plan.withheld.is_empty() {
        String::new()
    } else {
        format!(
            "<p>{} recording(s) of this caller are not included (restricted, under review, or no longer held).</p>\n",
            plan.withheld.len()
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Call recordings: {sar}</title></head>\n\
         <body>\n<h1>Call recordings</h1>\n<p>Subject access request {sar}, caller {caller}, prepared {created}.</p>\n\
         <p>Where a recording was paused (for example while a card payment was taken) the audio was never recorded; \
         the pause is shown below and marked in the audio as the recording's policy says.</p>\n{withheld}\
         <table border=\"1\">\n<tr><th>Date</th><th>Line</th><th>Agent</th><th>Recorded</th><th>Pauses</th><th>Holds</th><th>File</th></tr>\n\
         {rows}</table>\n<p>The file manifest.json lists a SHA-256 for every file and is signed (manifest.sig, Ed25519).</p>\n</body></html>\n",
        sar = escape(&r.sar_reference),
        caller = escape(&r.caller),
        created = escape(&r.created_at.format("%Y-%m-%d %H:%M UTC").to_string()),
    )
}

/// The recording laid out as playback lays it out ([`crate::audio::playback::layout`]).
async fn timeline(src: &Sources, p: &PlannedRecording) -> Result<Timeline, ExportError> {
    let id = || p.row.id.to_string();
    layout(
        &p.row,
        &p.segments,
        &stream_gaps(&p.ledger),
        p.render,
        &src.keyring,
        &src.store,
        OutputFormat::Pcm16,
    )
    .await
    .map_err(|e| match e {
        LayoutError::NotUploaded => ExportError::NotUploaded(id()),
        LayoutError::Vault(source) => ExportError::Vault { id: id(), source },
        LayoutError::Render(source) => ExportError::Render { id: id(), source },
    })
}
