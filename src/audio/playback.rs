//! A recording's playback layout: its stored segments in order, with the gaps between them (pauses,
//! and excised or shredded segments) rendered as its policy says. Playback and subject-access
//! export both lay recordings out here, so what a supervisor hears and what a bundle holds agree.

use std::sync::Arc;

use object_store::ObjectStore;

use super::render::{
    OutputFormat, Piece, RenderError, SegmentSource, Timeline, VaultSegmentSource,
};
use crate::catalog::{LedgerEntry, RecordingRow, SegmentRow, SegmentStatus};
use crate::domain::{MediaFormat, PauseRender};
use crate::vault::{Keyring, ObjectReader, VaultError, WrappedKey};

/// Why a recording cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A segment is still on the spool, waiting for upload; try again shortly.
    #[error("a segment is still waiting for upload")]
    NotUploaded,
    /// A key could not be unwrapped or an object not opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The timeline could not be built.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Where the stream itself went quiet, in ms from the recording's start: the ledger's `gap`
/// entries (a stream that stopped sending, a restart, a crash, a reconnect) that are holes in the
/// recording. Nothing was spoken, or nothing reached us, there: playback renders them as silence
/// whatever the policy does with pauses (a pause's tone says something was removed; nothing was).
pub fn stream_gaps(ledger: &[LedgerEntry]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = ledger
        .iter()
        .filter(|e| e.kind == "gap")
        .filter_map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
            if d.get("in_recording").and_then(serde_json::Value::as_bool) == Some(false) {
                return None;
            }
            let at = d.get("at_ms")?.as_u64()?;
            let len = d.get("length_ms")?.as_u64()?;
            Some((at, at + len))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The pieces of the gap `[from, to)` ms between two segments: what falls in one of `quiet`
/// ([`stream_gaps`]) is silence, the rest is rendered as `render`.
fn gap_pieces(
    format: &MediaFormat,
    from: u64,
    to: u64,
    quiet: &[(u64, u64)],
    render: PauseRender,
) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = from;
    for &(q0, q1) in quiet {
        let (q0, q1) = (q0.max(at), q1.min(to));
        if q0 >= q1 {
            continue;
        }
        if q0 > at {
            out.push(Piece::gap_ms(format, q0 - at, render));
        }
        out.push(Piece::gap_ms(format, q1 - q0, PauseRender::Silence));
        at = q1;
    }
    if to > at {
        out.push(Piece::gap_ms(format, to - at, render));
    }
    out
}

/// Lays out `row` from its `segments` (in order): each stored segment decrypted on demand, each gap
/// between segments, and each excised or shredded segment, rendered as `render`, except where the
/// stream itself went `quiet` ([`stream_gaps`]), which is silence.
pub async fn layout(
    row: &RecordingRow,
    segments: &[SegmentRow],
    quiet: &[(u64, u64)],
    render: PauseRender,
    keyring: &Keyring,
    store: &Arc<dyn ObjectStore>,
    output: OutputFormat,
) -> Result<Timeline, LayoutError> {
    let format = MediaFormat {
        codec: row.codec,
        sample_rate: row.sample_rate,
        channels: row.channels,
    };
    let mut pieces = Vec::new();
    let mut prev_end: Option<u64> = None;
    for s in segments {
        if let Some(end) = prev_end
            && s.media_start_ms > end
        {
            pieces.extend(gap_pieces(&format, end, s.media_start_ms, quiet, render));
        }
        prev_end = Some(s.media_end_ms.max(prev_end.unwrap_or(0)));
        let gap = Piece::gap_ms(
            &format,
            s.media_end_ms.saturating_sub(s.media_start_ms),
            render,
        );
        match s.status {
            SegmentStatus::Stored => {}
            SegmentStatus::Spooled => return Err(LayoutError::NotUploaded),
            // an excised or deleted segment plays as a gap
            SegmentStatus::Excised | SegmentStatus::Deleted => {
                pieces.push(gap);
                continue;
            }
        }
        let (Some(kek_id), Some(bytes)) = (s.kek_id.clone(), s.wrapped_key.clone()) else {
            pieces.push(gap);
            continue;
        };
        let key = keyring.unwrap(&WrappedKey { kek_id, bytes }, row.id, s.segment)?;
        let path = object_store::path::Path::from(s.object_key.as_str());
        let reader = ObjectReader::open(Arc::clone(store), path).await?;
        let source: Arc<dyn SegmentSource> = Arc::new(VaultSegmentSource::new(reader, key));
        pieces.push(Piece::Audio(source));
    }
    Ok(Timeline::new(format, output, pieces)?)
}
