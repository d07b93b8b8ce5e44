//! Checking a bundle offline: the signature over the manifest, then every file's SHA-256.

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ExportError, MANIFEST, PUBLIC_KEY, SIGNATURE, parse_public_key};
use crate::audit::Checkpoint;

/// What [`verify_bundle`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files whose hash was checked and matched.
    pub files_ok: usize,
    /// Whether the signature was checked against a key given by the verifier (`true`) or only
    /// against the key the bundle carries (`false`: integrity, not origin).
    pub key_pinned: bool,
    /// One line per failure, each naming the file.
    pub failures: Vec<String>,
    /// The audit checkpoint the manifest carries, its signature checked with the same key as the
    /// manifest's (a bundle written before checkpoints existed has none).
    pub checkpoint: Option<Checkpoint>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

struct Hashing(Sha256, u64);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn read_small<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)
        .map_err(|e| format!("{name}: unreadable: {e}"))?;
    Ok(out)
}

/// Checks a bundle: the Ed25519 signature over `manifest.json` (with `key`, else with the key the
/// bundle carries), the SHA-256 and size of every file the manifest lists, and that nothing else is
/// in the ZIP. Every failure names its file. Err only when the ZIP cannot be read at all.
pub fn verify_bundle<R: Read + Seek>(
    reader: R,
    key: Option<&VerifyingKey>,
) -> Result<VerifyReport, ExportError> {
    let mut zip = zip::ZipArchive::new(reader)?;
    let mut report = VerifyReport {
        key_pinned: key.is_some(),
        ..VerifyReport::default()
    };
    let manifest = match read_small(&mut zip, MANIFEST) {
        Ok(m) => m,
        Err(e) => {
            report.failures.push(e);
            return Ok(report);
        }
    };
    let carried = read_small(&mut zip, PUBLIC_KEY)
        .ok()
        .and_then(|k| parse_public_key(&k));
    let signature = read_small(&mut zip, SIGNATURE).ok().and_then(|s| {
        let bytes = B64.decode(s.trim_ascii()).ok()?;
        Signature::from_slice(&bytes).ok()
    });
    match (key.or(carried.as_ref()), signature) {
        (None, _) => report.failures.push(format!(
            "{PUBLIC_KEY}: missing or malformed, and no --key given"
        )),
        (Some(_), None) => report
            .failures
            .push(format!("{SIGNATURE}: missing or malformed")),
        (Some(k), Some(sig)) => {
            if k.verify_strict(&manifest, &sig).is_err() {
                report.failures.push(format!(
                    "{MANIFEST}: the signature does not verify (altered, or signed by another key)"
                ));
            }
        }
    }
    let parsed: Value = match serde_json::from_slice(&manifest) {
        Ok(v) => v,
        Err(e) => {
            report.failures.push(format!("{MANIFEST}: not json: {e}"));
            return Ok(report);
        }
    };
    match parsed.get("audit_checkpoint") {
        None | Some(Value::Null) => {}
        Some(v) => match Checkpoint::from_json(v) {
            Ok(cp) => {
                let checked = match key.or(carried.as_ref()) {
                    Some(k) => cp.verify(k),
                    None => cp.verify_carried(),
                };
                match checked {
                    Ok(()) => report.checkpoint = Some(cp),
                    Err(e) => report
                        .failures
                        .push(format!("{MANIFEST}: audit_checkpoint: {e}")),
                }
            }
            Err(e) => report
                .failures
                .push(format!("{MANIFEST}: audit_checkpoint: {e}")),
        },
    }
    let Some(files) = parsed.get("files").and_then(Value::as_object) else {
        report.failures.push(format!("{MANIFEST}: no files listed"));
        return Ok(report);
    };
    let mut listed: BTreeSet<&str> = [MANIFEST, SIGNATURE, PUBLIC_KEY].into_iter().collect();
    for (name, want) in files {
        listed.insert(name);
        let want_hash = want.get("sha256").and_then(Value::as_str).unwrap_or("");
        let want_size = want.get("size").and_then(Value::as_u64);
        let mut f = match zip.by_name(name) {
            Ok(f) => f,
            Err(_) => {
                report.failures.push(format!("{name}: missing"));
                continue;
            }
        };
        let mut h = Hashing(Sha256::new(), 0);
        if let Err(e) = io::copy(&mut f, &mut h) {
            report.failures.push(format!("{name}: unreadable: {e}"));
            continue;
        }
        if hex::encode(h.0.finalize()) != want_hash || want_size != Some(h.1) {
            report
                .failures
                .push(format!("{name}: sha-256 differs from the manifest"));
        } else {
            report.files_ok += 1;
        }
    }
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    for name in names {
        if !listed.contains(name.as_str()) {
            report
                .failures
                .push(format!("{name}: not listed in the manifest"));
        }
    }
    Ok(report)
}
