//! `callvault fsck`: the catalog against the object store and the spool.
//!
//! Finds stored segments whose object is missing, or whose size or SHA-256 differs from the
//! catalog's; objects no segment row names (orphans); data keys kept for segments that have no
//! object (deleted or excised, key not shredded), objects of such segments counting as orphans;
//! and spool files of no recording, of a destroyed
//! one, or of a segment already stored. Exits 1 when it finds a problem.
//!
//! `--repair --reason TEXT` makes only the safe repairs, each with an audit entry: a missing object
//! whose sealed spool file is still there (with the catalog's size and SHA-256) is uploaded again,
//! and an orphan object whose recording is destroyed (refused, expired, erased) is deleted.
//! Everything else is reported for a person to decide.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

use crate::audit::NewAuditEntry;
use crate::catalog::{Catalog, RecordingRow, RecordingStatus, SegmentStatus};
use crate::config::Config;
use crate::domain::{Clock, RecordingId};
use crate::vault::layout::{LAYOUT_PREFIX, OBJECT_EXT};
use crate::vault::parse_object_path;

/// What fsck found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A stored segment's object is not in the store.
    MissingObject,
    /// The object's size differs from the catalog's.
    SizeMismatch,
    /// The object's SHA-256 differs from the catalog's.
    Sha256Mismatch,
    /// An object that no segment row names.
    OrphanObject,
    /// A data key kept for a segment that has no object.
    KeyWithoutObject,
    /// A spool file of no recording, of a destroyed one, or of a segment already stored.
    StraySpool,
}

impl Fault {
    fn as_str(self) -> &'static str {
        match self {
            Fault::MissingObject => "missing_object",
            Fault::SizeMismatch => "size_mismatch",
            Fault::Sha256Mismatch => "sha256_mismatch",
            Fault::OrphanObject => "orphan_object",
            Fault::KeyWithoutObject => "key_without_object",
            Fault::StraySpool => "stray_spool",
        }
    }
}

/// One problem: its kind, where, and what was done about it.
#[derive(Debug)]
struct Finding {
    fault: Fault,
    place: String,
    detail: String,
    repaired: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.repaired { "repaired" } else { "found" };
        write!(
            f,
            "{state}\t{}\t{}\t{}",
            self.fault.as_str(),
            self.place,
            self.detail
        )
    }
}

/// The arguments of `callvault fsck`.
#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    /// Make the safe repairs (re-upload from the spool; delete orphans of destroyed recordings).
    #[arg(long, requires = "reason")]
    repair: bool,
    /// Why the repairs are made; recorded in each audit entry.
    #[arg(long)]
    reason: Option<String>,
}

/// Runs fsck; exit 0 when nothing is wrong (or all of it was repaired), 1 otherwise.
pub async fn fsck(
    args: FsckArgs,
    config: &Config,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    actor: String,
) -> anyhow::Result<ExitCode> {
    let repair = args.repair.then(|| Repair {
        reason: args.reason.clone().unwrap_or_default(),
        actor,
        clock,
        catalog: Arc::clone(&catalog),
    });
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} checked")
            .expect("the template is valid"),
    );
    let mut findings = Vec::new();

    // 1. every segment of every recording against its object
    bar.set_message("segments");
    let mut recordings: BTreeMap<RecordingId, RecordingRow> = BTreeMap::new();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut after = None;
    loop {
        let page = catalog.recordings_after(after, super::PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for r in page {
            for s in catalog.segments(r.id).await? {
                bar.inc(1);
                // an object is expected only for a segment stored or on its way there
                if matches!(s.status, SegmentStatus::Stored | SegmentStatus::Spooled) {
                    named.insert(s.object_key.clone());
                }
                let place = format!("{}/{}", r.id, s.segment);
                let has_key = s.wrapped_key.is_some();
                match s.status {
                    SegmentStatus::Stored => {}
                    SegmentStatus::Deleted | SegmentStatus::Excised if has_key => {
                        findings.push(Finding {
                            fault: Fault::KeyWithoutObject,
                            place,
                            detail: format!(
                                "segment {} but its data key is kept",
                                s.status.as_str()
                            ),
                            repaired: false,
                        });
                        continue;
                    }
                    _ => continue,
                }
                let path = ObjectPath::from(s.object_key.as_str());
                let object = match store.get(&path).await {
                    Ok(got) => Some(got.bytes().await?),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                let Some(object) = object else {
                    let spooled = config
                        .spool_dir()
                        .join(r.id.to_string())
                        .join(format!("{}{}", s.segment, OBJECT_EXT));
                    let mut f = Finding {
                        fault: Fault::MissingObject,
                        place,
                        detail: s.object_key.clone(),
                        repaired: false,
                    };
                    if let Some(repair) = &repair {
                        f.repaired = repair
                            .reupload(&store, &path, &spooled, s.size, s.sha256, &mut f.detail)
                            .await?;
                    }
                    findings.push(f);
                    continue;
                };
                if object.len() as u64 != s.size {
                    findings.push(Finding {
                        fault: Fault::SizeMismatch,
                        place: place.clone(),
                        detail: format!(
                            "{}: {} bytes, the catalog says {}",
                            s.object_key,
                            object.len(),
                            s.size
                        ),
                        repaired: false,
                    });
                }
                if let Some(want) = s.sha256 {
                    let got: [u8; 32] = Sha256::digest(&object).into();
                    if got != want {
                        findings.push(Finding {
                            fault: Fault::Sha256Mismatch,
                            place,
                            detail: format!("{}: sha-256 {}", s.object_key, hex::encode(got)),
                            repaired: false,
                        });
                    }
                }
            }
            recordings.insert(r.id, r);
        }
    }

    // 2. every object against the segment rows
    bar.set_message("objects");
    let prefix = ObjectPath::from(LAYOUT_PREFIX);
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    for meta in objects {
        bar.inc(1);
        let key = meta.location.to_string();
        if named.contains(&key) {
            continue;
        }
        let owner = parse_object_path(&meta.location).ok().map(|(_, id, _)| id);
        let recording = owner.and_then(|id| recordings.get(&id));
        let destroyed = recording.is_some_and(|r| destroyed(r.status));
        let mut f = Finding {
            fault: Fault::OrphanObject,
            place: owner.map_or_else(|| "-".to_owned(), |id| id.to_string()),
            detail: match recording {
                Some(r) => format!(
                    "{key} ({} bytes; recording {})",
                    meta.size,
                    r.status.as_str()
                ),
                None => format!("{key} ({} bytes; no recording in the catalog)", meta.size),
            },
            repaired: false,
        };
        if destroyed && let Some(repair) = &repair {
            store.delete(&meta.location).await?;
            repair.audit("fsck.delete_orphan", &key, meta.size).await?;
            f.repaired = true;
        }
        findings.push(f);
    }

    // 3. the spool: files that no live segment is waiting on
    bar.set_message("spool");
    for (id, file) in spool_files(&config.spool_dir())? {
        bar.inc(1);
        let stray = match id.and_then(|id| recordings.get(&id)) {
            None => Some("no recording in the catalog".to_owned()),
            Some(r) if destroyed(r.status) => Some(format!("recording {}", r.status.as_str())),
            Some(r) => {
                let segments = catalog.segments(r.id).await?;
                let seg = segment_of(&file);
                let stored = segments
                    .iter()
                    .find(|s| Some(s.segment.0) == seg)
                    .is_some_and(|s| s.status != SegmentStatus::Spooled);
                (stored && r.status != RecordingStatus::Live)
                    .then(|| "its segment is already stored".to_owned())
            }
        };
        if let Some(why) = stray {
            findings.push(Finding {
                fault: Fault::StraySpool,
                place: id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                detail: format!("{}: {why}", file.display()),
                repaired: false,
            });
        }
    }
    bar.finish_and_clear();

    findings.sort_by(|a, b| (a.fault, &a.place).cmp(&(b.fault, &b.place)));
    for f in &findings {
        println!("{f}");
    }
    let open = findings.iter().filter(|f| !f.repaired).count();
    let repaired = findings.len() - open;
    println!(
        "fsck: {} recordings, {} problems found, {repaired} repaired, {open} left",
        recordings.len(),
        findings.len()
    );
    Ok(if open == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn destroyed(status: RecordingStatus) -> bool {
    matches!(
        status,
        RecordingStatus::Refused | RecordingStatus::Expired | RecordingStatus::Erased
    )
}

/// Every file under the spool: `{spool}/{recording}/{segment}.cva[.part]`, with the recording id
/// when the directory names one.
fn spool_files(spool: &Path) -> anyhow::Result<Vec<(Option<RecordingId>, PathBuf)>> {
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(spool) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for dir in dirs {
        let dir = dir?;
        let id = dir.file_name().to_str().and_then(|n| n.parse().ok());
        if !dir.file_type()?.is_dir() {
            out.push((None, dir.path()));
            continue;
        }
        for file in std::fs::read_dir(dir.path())? {
            out.push((id, file?.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The segment number a spool file's name starts with.
fn segment_of(file: &Path) -> Option<u32> {
    let name = file.file_name()?.to_str()?;
    name.split('.').next()?.parse().ok()
}

/// The safe repairs, each audited.
struct Repair {
    reason: String,
    actor: String,
    clock: Arc<dyn Clock>,
    catalog: Arc<dyn Catalog>,
}

impl Repair {
    /// Uploads a missing object again from its sealed spool file, if that file matches the
    /// catalog's size and SHA-256 (a file that does not is left and reported).
    async fn reupload(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &ObjectPath,
        spooled: &Path,
        size: u64,
        sha256: Option<[u8; 32]>,
        detail: &mut String,
    ) -> anyhow::Result<bool> {
        let bytes = match std::fs::read(spooled) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                detail.push_str(" (no spool file to upload it from)");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if bytes.len() as u64 != size || sha256.is_some_and(|want| want != hash) {
            detail.push_str(" (the spool file differs from the catalog; not uploaded)");
            return Ok(false);
        }
        store.put(path, bytes.into()).await?;
        self.audit("fsck.reupload", path.as_ref(), size).await?;
        detail.push_str(" (uploaded again from the spool)");
        Ok(true)
    }

    async fn audit(&self, action: &str, subject: &str, size: u64) -> anyhow::Result<()> {
        let mut entry = NewAuditEntry::new(self.clock.now(), &self.actor, action, subject)
            .details(&serde_json::json!({ "size": size }));
        entry.reason = Some(self.reason.clone());
        self.catalog.append_audit(entry).await?;
        Ok(())
    }
}
