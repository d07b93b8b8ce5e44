//! Migration manifests: which file holds which call, from an old recorder's export (CSV with a
//! header row, or JSON), with a column mapping that fits common exports and can be overridden.
//!
//! Each of callvault's fields is looked up under its own name and the usual names of old
//! recorders' exports ([`ALIASES`]; case, spaces, `_` and `-` ignored); `--map field=Column` names
//! the column outright. Only `file`, `call_id`, `started_at` and `ended_at` (or `duration`) are
//! required.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::RawMeta;

/// callvault's manifest fields and the column names each is found under by default.
pub const ALIASES: &[(&str, &[&str])] = &[
    (
        "file",
        &[
            "file",
            "filename",
            "file name",
            "path",
            "recording",
            "recording file",
            "audio",
        ],
    ),
    (
        "call_id",
        &[
            "call_id",
            "call id",
            "callid",
            "inum",
            "ucid",
            "contact id",
            "interaction id",
            "id",
        ],
    ),
    (
        "started_at",
        &[
            "started_at",
            "start",
            "start time",
            "starttime",
            "call start",
            "begin",
            "date",
        ],
    ),
    (
        "ended_at",
        &["ended_at", "end", "end time", "endtime", "call end"],
    ),
    (
        "duration",
        &[
            "duration",
            "duration seconds",
            "duration_s",
            "length",
            "seconds",
        ],
    ),
    (
        "line",
        &[
            "line",
            "dnis",
            "dialled number",
            "dialed number",
            "called number",
            "to",
        ],
    ),
    (
        "caller",
        &[
            "caller",
            "ani",
            "cli",
            "calling number",
            "caller number",
            "other party",
            "from",
        ],
    ),
    (
        "agent",
        &[
            "agent",
            "agent id",
            "agent name",
            "agentid",
            "user",
            "owner",
        ],
    ),
    (
        "queue",
        &[
            "queue",
            "skill",
            "split",
            "hunt group",
            "service",
            "campaign",
        ],
    ),
];

/// One row of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the manifest, from 1 (data rows, not counting a CSV header).
    pub row: usize,
    /// The audio file, resolved against the files' directory.
    pub file: PathBuf,
    /// The call's metadata, as written.
    pub meta: RawMeta,
}

/// Why a manifest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read the manifest: {0}")]
    Io(#[from] std::io::Error),
    /// CSV that does not parse.
    #[error("manifest csv: {0}")]
    Csv(#[from] csv::Error),
    /// JSON that does not parse, or is not a list of objects.
    #[error("manifest json: {0}")]
    Json(String),
    /// A `--map` that names no field, or a required field with no column.
    #[error("manifest mapping: {0}")]
    Mapping(String),
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parses `field=Column` overrides.
pub fn parse_mapping(pairs: &[String]) -> Result<HashMap<&'static str, String>, ManifestError> {
    let mut out = HashMap::new();
    for p in pairs {
        let (field, column) = p
            .split_once('=')
            .ok_or_else(|| ManifestError::Mapping(format!("{p:?}: expected field=Column")))?;
        let field = ALIASES
            .iter()
            .map(|(f, _)| *f)
            .find(|f| *f == field.trim())
            .ok_or_else(|| {
                ManifestError::Mapping(format!(
                    "{field:?} is not a field: expected one of {}",
                    ALIASES
                        .iter()
                        .map(|(f, _)| *f)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        out.insert(field, column.trim().to_owned());
    }
    Ok(out)
}

/// Which column of `headers` holds each field.
fn resolve(
    headers: &[String],
    mapping: &HashMap<&'static str, String>,
) -> Result<HashMap<&'static str, usize>, ManifestError> {
    let mut out = HashMap::new();
    for (field, aliases) in ALIASES {
        let found = match mapping.get(field) {
            Some(column) => Some(
                headers
                    .iter()
                    .position(|h| squash(h) == squash(column))
                    .ok_or_else(|| {
                        ManifestError::Mapping(format!(
                            "--map {field}={column}: the manifest has no column {column:?}"
                        ))
                    })?,
            ),
            None => aliases
                .iter()
                .find_map(|a| headers.iter().position(|h| squash(h) == squash(a))),
        };
        if let Some(i) = found {
            out.insert(*field, i);
        }
    }
    for required in ["file", "call_id", "started_at"] {
        if !out.contains_key(required) {
            return Err(ManifestError::Mapping(format!(
                "no column for {required}: name it with --map {required}=Column"
            )));
        }
    }
    if !out.contains_key("ended_at") && !out.contains_key("duration") {
        return Err(ManifestError::Mapping(
            "no column for ended_at or duration: name one with --map".into(),
        ));
    }
    Ok(out)
}

fn entry(
    row: usize,
    cells: &[Option<String>],
    at: &HashMap<&'static str, usize>,
    dir: &Path,
) -> Entry {
    let get = |f: &str| {
        at.get(f)
            .and_then(|i| cells.get(*i).cloned().flatten())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let file = get("file").unwrap_or_default();
    Entry {
        row,
        file: dir.join(file),
        meta: RawMeta {
            call_id: get("call_id"),
            started_at: get("started_at"),
            ended_at: get("ended_at"),
            duration: get("duration"),
            line: get("line"),
            caller: get("caller"),
            agent: get("agent"),
            queue: get("queue"),
        },
    }
}

/// Reads a manifest (JSON when it starts with `[` or `{`, else CSV with a header row); files are
/// resolved against `dir`.
pub fn read(
    path: &Path,
    dir: &Path,
    mapping: &HashMap<&'static str, String>,
) -> Result<Vec<Entry>, ManifestError> {
    let text = std::fs::read_to_string(path)?;
    let text = text.trim_start_matches('\u{feff}');
    if matches!(text.trim_start().chars().next(), Some('[' | '{')) {
        read_json(text, dir, mapping)
    } else {
        read_csv(text, dir, mapping)
    }
}

fn read_csv(
    text: &str,
    dir: &Path,
    mapping: &HashMap<&'static str, String>,
) -> Result<Vec<Entry>, ManifestError> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = r.headers()?.iter().map(str::to_owned).collect();
    let at = resolve(&headers, mapping)?;
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec?;
        let cells: Vec<Option<String>> = rec.iter().map(|c| Some(c.to_owned())).collect();
        out.push(entry(i + 1, &cells, &at, dir));
    }
    Ok(out)
}

fn read_json(
    text: &str,
    dir: &Path,
    mapping: &HashMap<&'static str, String>,
) -> Result<Vec<Entry>, ManifestError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
    let rows = match value {
        serde_json::Value::Array(rows) => rows,
        serde_json::Value::Object(mut o) => match o.remove("recordings") {
            Some(serde_json::Value::Array(rows)) => rows,
            _ => {
                return Err(ManifestError::Json(
                    "expected a list of objects, or {\"recordings\": [...]}".into(),
                ));
            }
        },
        _ => return Err(ManifestError::Json("expected a list of objects".into())),
    };
    let mut out = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let serde_json::Value::Object(o) = row else {
            return Err(ManifestError::Json(format!("row {}: not an object", i + 1)));
        };
        let headers: Vec<String> = o.keys().cloned().collect();
        let cells: Vec<Option<String>> = o
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        let at = resolve(&headers, mapping)?;
        out.push(entry(i + 1, &cells, &at, dir));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("manifest");
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    #[test]
    fn an_old_recorder_export_maps_by_its_own_column_names() {
        let (dir, p) = write(
            "INUM,Start Time,Duration,Agent ID,Dialed Number,ANI,Skill,FileName\n\
             800123,2026-10-01 09:00:00,65.5,a7,+441744676789,01744 676700,tax,800123.wav\n",
        );
        let rows = read(&p, Path::new("/files"), &HashMap::new()).expect("read");
        assert_eq!(rows.len(), 1);
        let e = &rows[0];
        assert_eq!(e.row, 1);
        assert_eq!(e.file, Path::new("/files/800123.wav"));
        assert_eq!(e.meta.call_id.as_deref(), Some("800123"));
        assert_eq!(e.meta.duration.as_deref(), Some("65.5"));
        assert_eq!(e.meta.caller.as_deref(), Some("01744 676700"));
        assert_eq!(e.meta.line.as_deref(), Some("+441744676789"));
        assert_eq!(e.meta.queue.as_deref(), Some("tax"));
        let meta = e.meta.parse().expect("parses");
        assert_eq!((meta.ended_at - meta.started_at).num_milliseconds(), 65_500);
        drop(dir);
    }

    #[test]
    fn mapping_overrides_and_json_rows() {
        let (dir, p) = write(
            r#"{"recordings": [{"Ref": "c-1", "When": "2026-10-01T09:00:00Z",
                "Until": "2026-10-01T09:01:00Z", "Audio": "a/1.mp3", "Who": "+441744676700"}]}"#,
        );
        let map = parse_mapping(&[
            "call_id=Ref".into(),
            "started_at=When".into(),
            "ended_at=Until".into(),
            "caller=Who".into(),
        ])
        .expect("mapping");
        let rows = read(&p, Path::new("d"), &map).expect("read");
        assert_eq!(rows[0].file, Path::new("d/a/1.mp3"));
        assert_eq!(rows[0].meta.call_id.as_deref(), Some("c-1"));
        assert_eq!(rows[0].meta.caller.as_deref(), Some("+441744676700"));
        assert!(parse_mapping(&["colour=Red".into()]).is_err());
        let missing = parse_mapping(&["call_id=Nope".into()]).expect("mapping");
        assert!(matches!(
            read(&p, Path::new("d"), &missing),
            Err(ManifestError::Mapping(_))
        ));
        drop(dir);
    }

    #[test]
    fn a_manifest_without_the_required_columns_says_which() {
        let (dir, p) = write("name,colour\nx,y\n");
        let err = read(&p, Path::new("."), &HashMap::new()).expect_err("no mapping");
        assert!(err.to_string().contains("file"), "{err}");
        drop(dir);
    }
}
