//! Imported recordings (issue 17): finished recordings from a platform that records calls itself,
//! or from an old recorder, brought into the vault after the call.
//!
//! One [`Importer`] serves the upload API (`POST /v1/imports`) and `callvault import` alike. For each
//! file it decides the rules ([`crate::domain::import`]: retention from the original end, refusal of
//! an expired call, `pci_review` by policy), decodes the file with `symphonia` on a blocking thread
//! ([`decode`]), resamples to the policy's rate where needed ([`resample`]), seals the audio into
//! `CVA1` segments under fresh data keys ([`seal`]) and uploads each as it fills, then catalogues
//! the recording, its segments, its ledger (with the original's SHA-256) and its audit entry in one
//! transaction ([`Catalog::insert_import`]).
//!
//! Architecture invariants:
//! - nothing half-imported is ever visible: segments are uploaded under a recording id no row
//!   names yet, and the row, segments, ledger and audit entry are written in one transaction at
//!   the end; a failure before it deletes what was uploaded (a crash leaves objects no row names,
//!   which `callvault fsck` reports as orphans);
//! - an import that runs twice never stores a recording twice: a call has one recording, and a
//!   second import of the same call with the same file (by SHA-256) answers with the recording
//!   already stored; with another file it is refused;
//! - plaintext audio is never written to disk: decoded audio exists only in memory, a segment at
//!   a time, until it is sealed.

pub mod decode;
pub mod manifest;
pub mod resample;
pub mod seal;

use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

use crate::audit::NewAuditEntry;
use crate::catalog::{
    Catalog, CatalogError, ImportedRecording, LedgerEntry, NewLedgerEntry, RecordingRow,
    SegmentRow, SegmentStatus,
};
use crate::config::Config;
use crate::domain::import::{ImportRefusal, duration_agrees, initial_status, plan};
use crate::domain::{CallId, CallerNumber, Clock, Codec, RecordingId};
use crate::vault::{CallerKeys, Keyring, StoreKind, delete_objects, object_path, put_verified};

use decode::{Audio, FileDigest, SourceFormat};
use seal::{SealedSegment, Sealer};

/// The ledger kind of an import, whose details are an [`ImportNote`].
pub const IMPORTED: &str = "imported";
/// The ledger kind of an import put under review for card data.
pub const IMPORT_REVIEW: &str = "import.pci_review";

/// Why an import failed, with a stable [`code`](Self::code) for the API and the CLI's report.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A metadata field the import needs is missing.
    #[error("metadata: {0} is required")]
    MissingField(&'static str),
    /// A metadata field is malformed.
    #[error("metadata: {field}: {detail}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The file's format or codec cannot be imported.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The file is damaged: its audio cannot be decoded.
    #[error("corrupt file: {0}")]
    Corrupt(String),
    /// The file is larger than `import.max_bytes`.
    #[error("the file is larger than import.max_bytes")]
    TooLarge,
    /// The decoded audio is not as long as the call's metadata says.
    #[error(
        "the audio lasts {decoded_ms} ms but the call lasted {declared_ms} ms (tolerance {tolerance_ms} ms)"
    )]
    DurationMismatch {
        /// The decoded audio's length.
        decoded_ms: u64,
        /// The call's end minus its start.
        declared_ms: u64,
        /// The tolerance.
        tolerance_ms: u64,
    },
    /// The rules refuse the import (expired, or a call ending before it starts).
    #[error("{0}")]
    Refused(#[from] ImportRefusal),
    /// The call already has a recording, from another file (or live capture).
    #[error("call {call_id} already has a recording that was not imported from this file")]
    Conflict {
        /// The call.
        call_id: CallId,
    },
    /// The file could not be read to its end (the upload broke off, a local read failed).
    #[error("reading the file failed: {0}")]
    Read(String),
    /// Sealing or storing failed.
    #[error("vault: {0}")]
    Vault(String),
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The daemon is stopping, or the pipeline stopped under the import.
    #[error("the import was stopped")]
    Stopped,
}

impl ImportError {
    /// The stable code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingField(_) => "metadata_missing",
            Self::BadField { .. } => "bad_metadata",
            Self::Unsupported(_) => "unsupported_format",
            Self::Corrupt(_) => "corrupt_file",
            Self::TooLarge => "file_too_large",
            Self::DurationMismatch { .. } => "duration_mismatch",
            Self::Refused(ImportRefusal::Expired { .. }) => "expired",
            Self::Refused(_) => "bad_metadata",
            Self::Conflict { .. } => "call_has_recording",
            Self::Read(_) => "read_failed",
            Self::Vault(_) | Self::Catalog(_) | Self::Stopped => "import_failed",
        }
    }

    /// Whether the file or its metadata is at fault (as opposed to the vault or catalog).
    pub fn is_input(&self) -> bool {
        !matches!(self, Self::Vault(_) | Self::Catalog(_) | Self::Stopped)
    }
}

/// A call's metadata as given (strings from a JSON body or a manifest row), before parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMeta {
    /// The platform's call id.
    pub call_id: Option<String>,
    /// When the call started: RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC.
    pub started_at: Option<String>,
    /// When it ended (or give `duration`).
    pub ended_at: Option<String>,
    /// Its length in seconds, when no end is given.
    pub duration: Option<String>,
    /// The dialled line (E.164).
    pub line: Option<String>,
    /// The caller's number, in any usual form.
    pub caller: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// The queue.
    pub queue: Option<String>,
}

/// A call's metadata, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMeta {
    /// The platform's call id.
    pub call_id: CallId,
    /// When the call started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// The dialled line.
    pub line: Option<String>,
    /// The caller.
    pub caller: Option<CallerNumber>,
    /// The agent.
    pub agent: Option<String>,
    /// The queue.
    pub queue: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a time: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` / `YYYY-MM-DDTHH:MM:SS` taken as UTC.
pub fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ImportError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%d/%m/%Y %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    Err(ImportError::BadField {
        field,
        detail: format!("{s:?} is not an RFC 3339 time or YYYY-MM-DD HH:MM:SS (UTC)"),
    })
}

impl RawMeta {
    /// Parses the fields: the call id, the start, and the end or the duration are required; the
    /// caller, when given, must be a phone number.
    pub fn parse(&self) -> Result<ImportMeta, ImportError> {
        let call_id: CallId = non_empty(&self.call_id)
            .ok_or(ImportError::MissingField("call_id"))?
            .parse()
            .map_err(|e: crate::domain::IdError| ImportError::BadField {
                field: "call_id",
                detail: e.to_string(),
            })?;
        let started_at = parse_time(
            "started_at",
            non_empty(&self.started_at).ok_or(ImportError::MissingField("started_at"))?,
        )?;
        let ended_at = match (non_empty(&self.ended_at), non_empty(&self.duration)) {
            (Some(end), _) => parse_time("ended_at", end)?,
            (None, Some(d)) => {
                let secs: f64 = d
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 86_400.0 * 7.0)
                    .ok_or_else(|| ImportError::BadField {
                        field: "duration",
                        detail: format!("{d:?} is not a number of seconds"),
                    })?;
                started_at + chrono::Duration::milliseconds((secs * 1000.0).round() as i64)
            }
            (None, None) => return Err(ImportError::MissingField("ended_at")),
        };
        let caller = non_empty(&self.caller)
            .map(|c| {
                c.parse::<CallerNumber>()
                    .map_err(|e| ImportError::BadField {
                        field: "caller",
                        detail: e.to_string(),
                    })
            })
            .transpose()?;
        let text =
            |v: &Option<String>, field: &'static str| -> Result<Option<String>, ImportError> {
                match non_empty(v) {
                    Some(s) if s.len() > 200 => Err(ImportError::BadField {
                        field,
                        detail: "at most 200 characters".into(),
                    }),
                    s => Ok(s.map(str::to_owned)),
                }
            };
        Ok(ImportMeta {
            call_id,
            started_at,
            ended_at,
            line: text(&self.line, "line")?,
            caller,
            agent: text(&self.agent, "agent")?,
            queue: text(&self.queue, "queue")?,
        })
    }
}

/// The file to import.
pub struct Upload {
    /// Its bytes, read once on a blocking thread.
    pub reader: Box<dyn Read + Send + Sync>,
    /// Its name as given (kept in the ledger; its extension hints at the format).
    pub file_name: Option<String>,
    /// Its SHA-256 when the caller computed it already (the CLI): an import of a call stored
    /// already is then answered without reading the file again.
    pub sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("file_name", &self.file_name)
            .finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now.
    Imported(RecordingRow),
    /// The same file was imported for this call before: nothing was stored again.
    AlreadyImported(RecordingRow),
}

impl Outcome {
    /// The recording.
    pub fn recording(&self) -> &RecordingRow {
        match self {
            Self::Imported(r) | Self::AlreadyImported(r) => r,
        }
    }
}

/// The facts of an import, kept as the details of its `imported` ledger entry and read back to
/// answer an import that runs again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportNote {
    /// SHA-256 of the original file, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its name as given, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Its container (`wav`, `mp3`, `flac`, `ogg`).
    pub container: String,
    /// Its codec.
    pub codec: String,
    /// Its channels.
    pub channels: u8,
    /// Its sample rate.
    pub sample_rate: u32,
    /// Its audio's length in milliseconds.
    pub duration_ms: u64,
    /// The call's length by its metadata, in milliseconds.
    pub declared_ms: u64,
    /// The codec it is stored in.
    pub stored_codec: String,
    /// The rate it is stored at.
    pub stored_sample_rate: u32,
}

impl ImportNote {
    /// The `imported` note of a ledger, if there is one; `Corrupt` if it does not read back.
    pub fn of(ledger: &[LedgerEntry]) -> Result<Option<ImportNote>, CatalogError> {
        ledger
            .iter()
            .find(|e| e.kind == IMPORTED)
            .map(|e| {
                serde_json::from_str(&e.details).map_err(|err| {
                    CatalogError::corrupt(format!(
                        "ledger {} #{}: imported details: {err}",
                        e.recording_id, e.seq
                    ))
                })
            })
            .transpose()
    }
}

/// What the import pipeline needs, shared by the API and the CLI.
#[derive(Clone)]
pub struct Importer {
    inner: Arc<Deps>,
}

struct Deps {
    config: Arc<Config>,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    kind: StoreKind,
    keyring: Arc<Keyring>,
    callers: CallerKeys,
    clock: Arc<dyn Clock>,
    workers: Semaphore,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("workers", &self.inner.workers.available_permits())
            .finish_non_exhaustive()
    }
}

/// The handles an [`Importer`] works with.
pub struct ImporterParts {
    /// The configuration (policies, `[import]`).
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// What kind of store it is (local uploads are synced).
    pub kind: StoreKind,
    /// The keyring that wraps the data keys.
    pub keyring: Arc<Keyring>,
    /// Caller numbers' tags and sealing.
    pub callers: CallerKeys,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Most files decoded at once.
    pub workers: usize,
}

/// What the blocking pipeline found and stored.
struct Decoded {
    format: SourceFormat,
    digest: FileDigest,
    source_frames: u64,
    stored: Stored,
    /// Keypad tones heard in the stored audio (their digits are never kept).
    tones: u64,
}

#[derive(Debug, Clone, Copy)]
struct Stored {
    codec: Codec,
    rate: u32,
    channels: u8,
    flac: bool,
}

impl Importer {
    /// An importer over these handles.
    pub fn new(parts: ImporterParts) -> Self {
        Self {
            inner: Arc::new(Deps {
                config: parts.config,
                catalog: parts.catalog,
                store: parts.store,
                kind: parts.kind,
                keyring: parts.keyring,
                callers: parts.callers,
                clock: parts.clock,
                workers: Semaphore::new(parts.workers.max(1)),
            }),
        }
    }

    /// Checks the rules that need no audio: the policy's retention from the call's end. Called
    /// before the file is read, so an expired import is refused at once.
    pub fn check(&self, meta: &ImportMeta) -> Result<(), ImportError> {
        let d = &self.inner;
        let policy = d
            .config
            .policy_for(meta.line.as_deref(), meta.queue.as_deref());
        plan(
            d.clock.now(),
            meta.started_at,
            meta.ended_at,
            policy.retention,
        )?;
        Ok(())
    }

    /// Imports one file for one call, on behalf of `actor`.
    pub async fn import(
        &self,
        meta: &ImportMeta,
        upload: Upload,
        actor: &str,
    ) -> Result<Outcome, ImportError> {
        let d = &self.inner;
        let policy = d
            .config
            .policy_for(meta.line.as_deref(), meta.queue.as_deref());
        let settings = d
            .config
            .policies
            .get(&policy.name)
            .cloned()
            .unwrap_or_default();
        let planned = match plan(
            d.clock.now(),
            meta.started_at,
            meta.ended_at,
            policy.retention,
        ) {
            Ok(p) => p,
            Err(refusal) => {
                if let ImportRefusal::Expired { expired_at } = refusal {
                    // refused and reported, never stored: the refusal is audited, the audio is not kept
                    d.catalog
                        .append_audit(
                            NewAuditEntry::new(
                                d.clock.now(),
                                actor,
                                "recording.import_refused",
                                meta.call_id.as_str(),
                            )
                            .details(&serde_json::json!({
                                "code": "expired", "expired_at": expired_at.to_rfc3339(),
                                "policy": policy.name,
                            })),
                        )
                        .await?;
                }
                return Err(refusal.into());
            }
        };
        if let Some(existing) = d.catalog.recording_by_call(&meta.call_id).await? {
            return self.again(meta, existing, upload).await;
        }
        let _permit = d
            .workers
            .acquire()
            .await
            .map_err(|_| ImportError::Stopped)?;
        let id = RecordingId::new();
        let (tx, mut rx) = mpsc::channel::<SealedSegment>(1);
        let extension = upload.file_name.as_deref().and_then(|n| {
            std::path::Path::new(n)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
        });
        let job = Job {
            recording: id,
            limit: d.config.import.max_bytes,
            target_rate: settings.import_sample_rate,
            flac: settings.storage_codec == crate::config::StorageCodec::Flac,
            dtmf: policy.dtmf,
            segment_secs: d.config.import.segment_length.as_secs(),
            keyring: Arc::clone(&d.keyring),
        };
        let file_name = upload.file_name.clone();
        let expected = upload.sha256;
        let reader = upload.reader;
        let task = tokio::task::spawn_blocking(move || job.run(reader, extension.as_deref(), &tx));
        let mut segments = Vec::new();
        let mut failed = None;
        while let Some(seg) = rx.recv().await {
            match self.upload(meta, id, seg).await {
                Ok(row) => segments.push(row),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // the pipeline stops at its next segment once nobody takes them
        drop(rx);
        let decoded = match task.await {
            Ok(r) => r,
            Err(e) => Err(ImportError::Vault(format!("the decoder failed: {e}"))),
        };
        let decoded = match (failed, decoded) {
            (Some(e), _) | (None, Err(e)) => {
                self.discard(meta, id, &segments).await;
                return Err(e);
            }
            (None, Ok(decoded)) => decoded,
        };
        if expected.is_some_and(|e| e != decoded.digest.sha256) {
            self.discard(meta, id, &segments).await;
            return Err(ImportError::Read(
                "the file changed while it was being imported".into(),
            ));
        }
        let sha = decoded.digest.sha256;
        let commit = Commit {
            id,
            policy: &policy,
            review: settings.import_review,
            expires_at: planned.expires_at,
            decoded,
            file_name,
            segments: segments.clone(),
        };
        match self.commit(meta, commit, actor).await {
            Ok(row) => Ok(Outcome::Imported(row)),
            Err(e) => {
                self.discard(meta, id, &segments).await;
                if !matches!(e, ImportError::Catalog(CatalogError::Conflict { .. })) {
                    return Err(e);
                }
                // another import of this call committed first: the same file is that import
                match d.catalog.recording_by_call(&meta.call_id).await? {
                    Some(existing) => {
                        let note = ImportNote::of(&d.catalog.ledger(existing.id).await?)?;
                        if note.is_some_and(|n| n.sha256 == hex::encode(sha)) {
                            Ok(Outcome::AlreadyImported(existing))
                        } else {
                            Err(ImportError::Conflict {
                                call_id: meta.call_id.clone(),
                            })
                        }
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// The call has a recording already: the same file again is answered with it, another file
    /// is refused.
    async fn again(
        &self,
        meta: &ImportMeta,
        existing: RecordingRow,
        upload: Upload,
    ) -> Result<Outcome, ImportError> {
        let d = &self.inner;
        let note = ImportNote::of(&d.catalog.ledger(existing.id).await?)?;
        let Some(note) = note else {
            return Err(ImportError::Conflict {
                call_id: meta.call_id.clone(),
            });
        };
        let sha = match upload.sha256 {
            Some(s) => s,
            None => {
                let limit = d.config.import.max_bytes;
                let reader = upload.reader;
                tokio::task::spawn_blocking(move || decode::digest(reader, limit))
                    .await
                    .map_err(|e| ImportError::Vault(format!("hashing failed: {e}")))??
                    .sha256
            }
        };
        if note.sha256 == hex::encode(sha) {
            Ok(Outcome::AlreadyImported(existing))
        } else {
            Err(ImportError::Conflict {
                call_id: meta.call_id.clone(),
            })
        }
    }

    async fn upload(
        &self,
        meta: &ImportMeta,
        id: RecordingId,
        seg: SealedSegment,
    ) -> Result<SegmentRow, ImportError> {
        let d = &self.inner;
        let path = object_path(meta.started_at, id, seg.segment);
        let (size, sha256) = put_verified(&d.store, &d.kind, &path, seg.bytes.into())
            .await
            .map_err(|e| ImportError::Vault(e.to_string()))?;
        Ok(SegmentRow {
            recording_id: id,
            segment: seg.segment,
            object_key: path.to_string(),
            kek_id: Some(seg.key.kek_id),
            wrapped_key: Some(seg.key.bytes),
            media_start_ms: seg.media_start_ms,
            media_end_ms: seg.media_end_ms,
            size,
            sha256: Some(sha256),
            status: SegmentStatus::Stored,
        })
    }

    /// Deletes the objects of an import that will not be catalogued.
    async fn discard(&self, meta: &ImportMeta, id: RecordingId, segments: &[SegmentRow]) {
        let d = &self.inner;
        let named: Vec<_> = segments
            .iter()
            .map(|s| object_store::path::Path::from(s.object_key.as_str()))
            .collect();
        let prefix = crate::vault::recording_prefix(meta.started_at, id);
        let done = delete_objects(&d.store, Some(&prefix), &named).await;
        if !done.failed.is_empty() {
            warn!(recording_id = %id, failed = done.failed.len(), "objects of a failed import were not deleted; fsck reports them as orphans");
        }
    }

    async fn commit(
        &self,
        meta: &ImportMeta,
        c: Commit<'_>,
        actor: &str,
    ) -> Result<RecordingRow, ImportError> {
        let d = &self.inner;
        let Commit {
            id,
            policy,
            review,
            expires_at,
            decoded,
            file_name,
            segments,
        } = c;
        let sha = hex::encode(decoded.digest.sha256);
        if decoded.source_frames == 0 || segments.is_empty() {
            return Err(ImportError::Corrupt("the file holds no audio".into()));
        }
        let decoded_ms = u64::try_from(
            u128::from(decoded.source_frames) * 1000 / u128::from(decoded.format.sample_rate),
        )
        .unwrap_or(u64::MAX);
        let tolerance_ms = d.config.import.duration_tolerance.as_millis() as u64;
        let declared_ms =
            u64::try_from((meta.ended_at - meta.started_at).num_milliseconds()).unwrap_or(0);
        if !duration_agrees(decoded_ms, meta.started_at, meta.ended_at, tolerance_ms) {
            return Err(ImportError::DurationMismatch {
                decoded_ms,
                declared_ms,
                tolerance_ms,
            });
        }
        let status = initial_status(review, decoded.tones > 0);
        let now = d.clock.now();
        let row = RecordingRow {
            id,
            call_id: meta.call_id.clone(),
            status,
            line: meta.line.clone(),
            queue: meta.queue.clone(),
            agent: meta.agent.clone(),
            caller_tag: meta.caller.as_ref().map(|n| d.callers.tag(n)),
            caller_sealed: meta.caller.as_ref().map(|n| d.callers.seal(id, n)),
            policy: policy.name.clone(),
            codec: decoded.stored.codec,
            sample_rate: decoded.stored.rate,
            channels: decoded.stored.channels,
            started_at: meta.started_at,
            ended_at: Some(meta.ended_at),
            expires_at: Some(expires_at),
            restricted: false,
            updated_at: now,
        };
        let note = ImportNote {
            sha256: sha.clone(),
            bytes: decoded.digest.bytes,
            file_name,
            container: decoded.format.container.clone(),
            codec: decoded.format.codec.clone(),
            channels: decoded.format.channels,
            sample_rate: decoded.format.sample_rate,
            duration_ms: decoded_ms,
            declared_ms,
            stored_codec: if decoded.stored.flac {
                "FLAC".to_owned()
            } else {
                decoded.stored.codec.name().to_owned()
            },
            stored_sample_rate: decoded.stored.rate,
        };
        let mut ledger = vec![NewLedgerEntry {
            recording_id: id,
            at: now,
            kind: IMPORTED.to_owned(),
            actor: actor.to_owned(),
            reason: None,
            details: serde_json::to_string(&note).expect("a note of plain fields serialises"),
        }];
        if status == crate::domain::RecordingStatus::PciReview {
            // that keys were pressed, never which
            let reason = if decoded.tones > 0 {
                "keypad tones were heard in the imported audio".to_owned()
            } else {
                format!(
                    "policy {} reviews imported audio for card data",
                    policy.name
                )
            };
            ledger.push(NewLedgerEntry {
                recording_id: id,
                at: now,
                kind: IMPORT_REVIEW.to_owned(),
                actor: "system".to_owned(),
                reason: Some(reason),
                details: serde_json::json!({ "keypad_tones": decoded.tones }).to_string(),
            });
        }
        let audit = NewAuditEntry::new(now, actor, "recording.import", id.to_string()).details(
            &serde_json::json!({
                "call_id": meta.call_id.as_str(),
                "sha256": sha,
                "bytes": decoded.digest.bytes,
                "format": format!("{}/{}", decoded.format.container, decoded.format.codec),
                "duration_ms": decoded_ms,
                "status": status.as_str(),
                "segments": segments.len(),
                "keypad_tones": decoded.tones,
            }),
        );
        d.catalog
            .insert_import(&ImportedRecording {
                row: row.clone(),
                segments,
                ledger,
                audit,
            })
            .await?;
        metrics::counter!("callvault_imports_total").increment(1);
        Ok(row)
    }
}

/// Why a review of an import cannot be cleared.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such recording.
    #[error("no such recording")]
    NotFound,
    /// The recording is not an import under review (a live recording's review is cleared by
    /// excising the segments that hold the late pause).
    #[error("the recording is not an imported recording under pci review")]
    NotImportReview,
    /// Its status changed meanwhile.
    #[error("the recording changed meanwhile; try again")]
    Changed,
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
}

impl Importer {
    /// A compliance user has listened to an import under review and found no card data: it returns
    /// to `sealed` ([`RecordingStatus::clear_review`](crate::domain::RecordingStatus::clear_review),
    /// compare-and-set), with a ledger entry and an audit entry naming who and why.
    pub async fn clear_review(
        &self,
        id: RecordingId,
        actor: &str,
        reason: &str,
    ) -> Result<RecordingRow, ReviewError> {
        let d = &self.inner;
        let row = d
            .catalog
            .recording(id)
            .await?
            .ok_or(ReviewError::NotFound)?;
        let ledger = d.catalog.ledger(id).await?;
        if !ledger.iter().any(|e| e.kind == IMPORT_REVIEW) {
            return Err(ReviewError::NotImportReview);
        }
        let to = row
            .status
            .clear_review()
            .map_err(|_| ReviewError::NotImportReview)?;
        let now = d.clock.now();
        let change = crate::catalog::StatusChange::new(id, row.status, to, now);
        if !d.catalog.transition_recording(&change).await? {
            return Err(ReviewError::Changed);
        }
        d.catalog
            .append_ledger(&NewLedgerEntry {
                recording_id: id,
                at: now,
                kind: "import.pci_review_cleared".to_owned(),
                actor: actor.to_owned(),
                reason: Some(reason.to_owned()),
                details: "{}".to_owned(),
            })
            .await?;
        d.catalog
            .append_audit(
                NewAuditEntry::new(now, actor, "recording.review_cleared", id.to_string())
                    .reason(reason),
            )
            .await?;
        Ok(RecordingRow {
            status: to,
            updated_at: now,
            ..row
        })
    }
}

/// What [`Importer::commit`] stores.
struct Commit<'a> {
    id: RecordingId,
    policy: &'a crate::domain::Policy,
    review: bool,
    expires_at: DateTime<Utc>,
    decoded: Decoded,
    file_name: Option<String>,
    segments: Vec<SegmentRow>,
}

/// The blocking half of an import: decode, convert, seal.
struct Job {
    recording: RecordingId,
    limit: u64,
    target_rate: u32,
    flac: bool,
    dtmf: crate::domain::DtmfPolicy,
    segment_secs: u64,
    keyring: Arc<Keyring>,
}

/// How decoded audio becomes stored audio, decided at the first packet, and the keypad-tone
/// detector that hears the stored audio (DESIGN.md section 2: an import may hold keyed card
/// numbers no pause removed).
struct Stage {
    store: Store,
    tones: Tones,
}

/// Keypad tones heard in the audio as stored.
struct Tones {
    detector: Option<crate::audio::dtmf::DtmfDetector>,
    events: Vec<crate::audio::dtmf::ToneEvent>,
    heard: u64,
}

impl Tones {
    fn hear(&mut self, stored: &[u8]) {
        if let Some(d) = &mut self.detector {
            d.feed(stored, &mut self.events);
            self.count();
        }
    }

    fn count(&mut self) {
        self.heard += self
            .events
            .drain(..)
            .filter(|e| matches!(e, crate::audio::dtmf::ToneEvent::Started { .. }))
            .count() as u64;
    }
}

enum Store {
    /// G.711 at 8000 Hz: its bytes are kept as they came.
    Keep(Sealer),
    /// Everything else: 16-bit linear at the policy's rate.
    Linear {
        sealer: Sealer,
        widen: Option<&'static [i16; 256]>,
        resample: Option<Box<resample::Resample>>,
        scratch: Vec<i16>,
        bytes: Vec<u8>,
    },
    /// Finished.
    Done,
}

impl Job {
    fn run(
        self,
        reader: Box<dyn Read + Send + Sync>,
        extension: Option<&str>,
        tx: &mpsc::Sender<SealedSegment>,
    ) -> Result<Decoded, ImportError> {
        let mut emit = |seg: SealedSegment| tx.blocking_send(seg).map_err(|_| ImportError::Stopped);
        let mut stage: Option<(Stage, Stored)> = None;
        let (format, digest, source_frames) =
            decode::decode(reader, extension, self.limit, |fmt, audio| {
                if stage.is_none() {
                    stage = Some(self.stage(fmt, &audio)?);
                }
                let (stage, _) = stage.as_mut().expect("set above");
                stage.push(audio, &mut emit)
            })?;
        let Some((mut stage, stored)) = stage else {
            return Err(ImportError::Corrupt("the file holds no audio".into()));
        };
        let tones = stage.finish(&mut emit)?;
        Ok(Decoded {
            format,
            digest,
            source_frames,
            stored,
            tones,
        })
    }

    fn stage(&self, fmt: &SourceFormat, audio: &Audio<'_>) -> Result<(Stage, Stored), ImportError> {
        let (store, stored) = self.store(fmt, audio)?;
        let detector = (self.dtmf.mode != crate::domain::DtmfMode::Off)
            .then(|| {
                crate::audio::dtmf::DtmfDetector::new(
                    crate::domain::MediaFormat {
                        codec: stored.codec,
                        sample_rate: stored.rate,
                        channels: stored.channels,
                    },
                    crate::audio::dtmf::DetectorConfig::for_policy(&self.dtmf),
                )
                .ok()
            })
            .flatten();
        let tones = Tones {
            detector,
            events: Vec::new(),
            heard: 0,
        };
        Ok((Stage { store, tones }, stored))
    }

    fn store(&self, fmt: &SourceFormat, audio: &Audio<'_>) -> Result<(Store, Stored), ImportError> {
        let sealer = |codec, rate| {
            Sealer::new(
                self.recording,
                codec,
                fmt.channels,
                rate,
                self.segment_secs,
                Arc::clone(&self.keyring),
            )
        };
        let g711 = match fmt.codec.as_str() {
            "pcm_mulaw" => Some(Codec::Pcmu),
            "pcm_alaw" => Some(Codec::Pcma),
            _ => None,
        };
        if let (Audio::G711(_), Some(codec), 8000) = (audio, g711, fmt.sample_rate) {
            let stored = Stored {
                codec,
                rate: 8000,
                channels: fmt.channels,
                flac: false,
            };
            return Ok((Store::Keep(sealer(codec, 8000)), stored));
        }
        let rate = self.target_rate;
        let resample = (fmt.sample_rate != rate)
            .then(|| resample::Resample::new(fmt.sample_rate, rate, usize::from(fmt.channels)))
            .transpose()?
            .map(Box::new);
        let widen = match (audio, g711) {
            (Audio::G711(_), Some(Codec::Pcmu)) => Some(&crate::audio::g711::ULAW_TO_LINEAR),
            (Audio::G711(_), Some(Codec::Pcma)) => Some(&crate::audio::g711::ALAW_TO_LINEAR),
            _ => None,
        };
        let stored = Stored {
            codec: Codec::L16,
            rate,
            channels: fmt.channels,
            flac: self.flac,
        };
        Ok((
            Store::Linear {
                sealer: if self.flac {
                    sealer(Codec::L16, rate).with_flac()
                } else {
                    sealer(Codec::L16, rate)
                },
                widen,
                resample,
                scratch: Vec::new(),
                bytes: Vec::new(),
            },
            stored,
        ))
    }
}

impl Stage {
    fn push(
        &mut self,
        audio: Audio<'_>,
        emit: &mut impl FnMut(SealedSegment) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let tones = &mut self.tones;
        match &mut self.store {
            Store::Keep(sealer) => match audio {
                Audio::G711(bytes) => {
                    tones.hear(bytes);
                    sealer.push(bytes, emit)
                }
                Audio::Linear(_) => Err(ImportError::Corrupt(
                    "the audio changes its coding part way".into(),
                )),
            },
            Store::Linear {
                sealer,
                widen,
                resample,
                scratch,
                bytes,
            } => {
                let widened;
                let samples: &[i16] = match (audio, widen) {
                    (Audio::Linear(s), _) => s,
                    (Audio::G711(b), Some(table)) => {
                        widened = b.iter().map(|x| table[usize::from(*x)]).collect::<Vec<_>>();
                        &widened
                    }
                    (Audio::G711(_), None) => {
                        return Err(ImportError::Corrupt(
                            "the audio changes its coding part way".into(),
                        ));
                    }
                };
                let out: &[i16] = match resample {
                    Some(r) => {
                        scratch.clear();
                        r.push(samples, scratch)?;
                        scratch
                    }
                    None => samples,
                };
                bytes.clear();
                bytes.extend(out.iter().flat_map(|s| s.to_le_bytes()));
                tones.hear(bytes);
                sealer.push(bytes, emit)
            }
            Store::Done => Err(ImportError::Stopped),
        }
    }

    /// Seals what is left; returns the keypad tones heard in the whole recording.
    fn finish(
        &mut self,
        emit: &mut impl FnMut(SealedSegment) -> Result<(), ImportError>,
    ) -> Result<u64, ImportError> {
        let store = std::mem::replace(&mut self.store, Store::Done);
        match store {
            Store::Keep(sealer) => {
                sealer.finish(emit)?;
            }
            Store::Linear {
                mut sealer,
                resample,
                ..
            } => {
                if let Some(r) = resample {
                    let mut tail = Vec::new();
                    r.finish(&mut tail)?;
                    let bytes: Vec<u8> = tail.iter().flat_map(|s| s.to_le_bytes()).collect();
                    self.tones.hear(&bytes);
                    sealer.push(&bytes, emit)?;
                }
                sealer.finish(emit)?;
            }
            Store::Done => {}
        }
        if let Some(d) = &mut self.tones.detector {
            d.finish(&mut self.tones.events);
            self.tones.count();
        }
        Ok(self.tones.heard)
    }
}
