//! `callvault import`: bulk migration from an old recorder. A folder of audio files and a manifest
//! (CSV or JSON, see [`crate::import::manifest`]) are imported into the catalog and object store the
//! daemon uses, a bounded number at a time, with a progress bar (rate and time left), a summary, and
//! a machine-readable report of every file that failed and why.
//!
//! Resumable and idempotent: a file whose call is stored already from the same file (same SHA-256)
//! is skipped without being decoded, so a run that was interrupted (even by `kill -9`) is finished
//! by running it again; each recording is catalogued whole in one transaction, so an interrupted
//! run leaves nothing half-imported visible.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::domain::Clock;
use crate::import::manifest::{self, Entry};
use crate::import::{ImportError, Importer, ImporterParts, Outcome, Upload, decode};
use crate::server;
use crate::vault::{self, Keyring};

/// What `callvault import` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The manifest: CSV with a header row, or JSON (a list of objects, or {"recordings": [...]}).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The folder the manifest's file names are relative to (default: the manifest's own folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The manifest column of a field, as `field=Column` (repeatable). Fields: file, call_id,
    /// started_at, ended_at, duration, line, caller, agent, queue. Unmapped fields are found by
    /// their usual names (README, "Importing recordings").
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    pub map: Vec<String>,
    /// Files imported at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Where to write the JSON report of every file that failed (default: beside the manifest,
    /// `<manifest>.report.json`).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Serialize)]
struct Failure {
    row: usize,
    file: String,
    call_id: Option<String>,
    code: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct Report {
    manifest: String,
    total: usize,
    imported: usize,
    already_imported: usize,
    failed: Vec<Failure>,
}

enum Done {
    Imported,
    Already,
    Failed(Failure),
}

/// Runs `callvault import`.
pub async fn import(
    args: ImportArgs,
    config: Config,
    clock: Arc<dyn Clock>,
    actor: String,
) -> anyhow::Result<ExitCode> {
    let jobs = args.jobs.clamp(1, 64);
    let mapping = manifest::parse_mapping(&args.map)?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => args
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let entries = manifest::read(&args.manifest, &dir, &mapping)
        .with_context(|| format!("manifest {}", args.manifest.display()))?;
    let report_path = args.report.clone().unwrap_or_else(|| {
        let mut p = args.manifest.clone().into_os_string();
        p.push(".report.json");
        PathBuf::from(p)
    });
    let keyring = Arc::new(Keyring::from_bytes(config.keys.keyring.read()?.expose())?);
    let callers = server::supervisor_access(&config, &keyring)?.callers;
    let catalog = server::open_catalog(&config).await?;
    let kind = server::store_kind(&config)?;
    let store = vault::open_store(&kind)?;
    let limit = config.import.max_bytes;
    let importer = Importer::new(ImporterParts {
        config: Arc::new(config),
        catalog,
        store,
        kind,
        keyring,
        callers,
        clock,
        workers: jobs,
    });
    let total = entries.len();
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} files, {per_sec}, {eta} left")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message("importing");
    let started = Instant::now();
    let mut done = futures::stream::iter(entries)
        .map(|e| {
            let importer = importer.clone();
            let actor = actor.clone();
            async move { one(&importer, e, limit, &actor).await }
        })
        .buffer_unordered(jobs);
    let (mut imported, mut already, mut failed) = (0, 0, Vec::new());
    while let Some(d) = done.next().await {
        bar.inc(1);
        match d {
            Done::Imported => imported += 1,
            Done::Already => already += 1,
            Done::Failed(f) => {
                bar.println(format!(
                    "row {} ({}): {}: {}",
                    f.row, f.file, f.code, f.detail
                ));
                failed.push(f);
            }
        }
    }
    bar.finish_and_clear();
    failed.sort_by_key(|f| f.row);
    let report = Report {
        manifest: args.manifest.display().to_string(),
        total,
        imported,
        already_imported: already,
        failed,
    };
    write_report(&report_path, &report)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{total} files: {imported} imported, {already} already imported, {} failed, in {secs:.1} s ({:.1} files/s); report: {}",
        report.failed.len(),
        total as f64 / secs.max(0.001),
        report_path.display()
    );
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn one(importer: &Importer, e: Entry, limit: u64, actor: &str) -> Done {
    let fail = |err: &ImportError| {
        Done::Failed(Failure {
            row: e.row,
            file: e.file.display().to_string(),
            call_id: e.meta.call_id.clone(),
            code: err.code(),
            detail: err.to_string(),
        })
    };
    let meta = match e.meta.parse() {
        Ok(m) => m,
        Err(err) => return fail(&err),
    };
    // an expired call is refused before its file is read
    if let Err(refused) = importer.check(&meta) {
        // the importer audits the refusal; the file is not read
        let err = importer
            .import(&meta, empty_upload(), actor)
            .await
            .err()
            .unwrap_or(refused);
        return fail(&err);
    }
    let path = e.file.clone();
    let hashed = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)
            .map_err(|err| ImportError::Read(format!("{}: {err}", path.display())))?;
        decode::digest(std::io::BufReader::new(file), limit)
    })
    .await;
    let digest = match hashed {
        Ok(Ok(d)) => d,
        Ok(Err(err)) => return fail(&err),
        Err(err) => return fail(&ImportError::Read(err.to_string())),
    };
    let file = match std::fs::File::open(&e.file) {
        Ok(f) => f,
        Err(err) => return fail(&ImportError::Read(format!("{}: {err}", e.file.display()))),
    };
    let upload = Upload {
        reader: Box::new(std::io::BufReader::new(file)),
        file_name: e
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned),
        sha256: Some(digest.sha256),
    };
    match importer.import(&meta, upload, actor).await {
        Ok(Outcome::Imported(_)) => Done::Imported,
        Ok(Outcome::AlreadyImported(_)) => Done::Already,
        Err(err) => fail(&err),
    }
}

/// An upload with no bytes, for a refusal decided before the file is read (the importer audits it).
fn empty_upload() -> Upload {
    Upload {
        reader: Box::new(std::io::empty()),
        file_name: None,
        sha256: None,
    }
}

/// Writes the report whole or not at all (a temporary file renamed over it).
fn write_report(path: &Path, report: &Report) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.part");
    let text = serde_json::to_vec_pretty(report).expect("a report of plain fields serialises");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
