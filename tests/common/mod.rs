//! Helpers shared by the integration tests: a temporary deployment and a minimal HTTP client.

#![allow(dead_code, missing_docs)]

pub mod audio;
pub mod live;
pub mod postgres;
pub mod s3;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A deployment in a temporary directory: a config file whose state and secrets live beside it.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Deployment {
    /// A config on loopback port 0 that creates its own secrets, plus `extra` TOML lines.
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("callvault.toml");
        let text = format!(
            "state_dir = \"state\"\nshutdown_grace = \"3s\"\n\
             [public]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [secrets]\ncreate_missing = true\n[log]\nlevel = \"warn\"\n{extra}"
        );
        std::fs::write(&config, text).expect("write config");
        Self { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn load(&self, overrides: &[&str]) -> callvault::config::Config {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        callvault::config::Config::load(&self.config, &o).expect("test config loads")
    }
}

/// One HTTP/1.1 request over any stream; returns status, headers (lowercased names) and body.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = exchange(stream, method, path, &[], b"").await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// One HTTP/1.1 request with headers and a body; the response body as bytes.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: callvault.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("send request");
    stream.write_all(body).await.expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response has a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if header(&headers, "transfer-encoding") == Some("chunked") {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// A plain-HTTP GET.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    request(stream, "GET", path).await
}

/// Polls `addr{path}` until it answers 200, or panics after `within`.
pub async fn wait_for_200(addr: SocketAddr, path: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(stream) = TcpStream::connect(addr).await
            && request(stream, "GET", path).await.0 == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} not 200 within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn chmod_600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// One sealed test segment: where it is, and the container and plaintext to check a key against.
pub struct Seeded {
    pub recording_id: callvault::domain::RecordingId,
    pub segment: callvault::domain::SegmentNo,
    pub sealed: Vec<u8>,
    pub plaintext: Vec<u8>,
}

/// Catalogues `recordings` recordings of `segments` segments each, every segment sealed under a
/// fresh data key wrapped by `keyring`'s active key.
pub async fn seed_segments(
    catalog: &dyn callvault::catalog::Catalog,
    keyring: &callvault::vault::Keyring,
    recordings: usize,
    segments: u32,
) -> Vec<Seeded> {
    use callvault::catalog::{RecordingRow, RecordingStatus, SegmentRow, SegmentStatus};
    use callvault::domain::{Codec, RecordingId, SegmentNo};
    use callvault::vault::{DataKey, Header, SegmentWriter, object_path};
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for r in 0..recordings {
        let id = RecordingId::new();
        catalog
            .insert_recording(&RecordingRow {
                id,
                call_id: format!("call-{id}").parse().expect("call id"),
                status: RecordingStatus::Sealed,
                line: None,
                queue: None,
                agent: None,
                caller_tag: None,
                caller_sealed: None,
                policy: "standard".into(),
                codec: Codec::Pcmu,
                sample_rate: 8000,
                channels: 2,
                started_at: now,
                ended_at: Some(now),
                expires_at: None,
                restricted: false,
                updated_at: now,
            })
            .await
            .expect("insert recording");
        for s in 0..segments {
            let segment = SegmentNo(s);
            let key = DataKey::generate();
            let header = Header::new(id, segment, Codec::Pcmu, 2, 8000, 0).expect("header");
            let mut w = SegmentWriter::new(header, &key);
            let plaintext: Vec<u8> = (0..40_000u32)
                .map(|i| (i * 7 + r as u32 + s) as u8)
                .collect();
            let mut sealed = w.header_bytes().to_vec();
            sealed.extend(w.append(&plaintext).expect("append"));
            sealed.extend(w.seal());
            let wrapped = keyring.wrap(&key, id, segment);
            catalog
                .insert_segment(&SegmentRow {
                    recording_id: id,
                    segment,
                    object_key: object_path(now, id, segment).to_string(),
                    kek_id: Some(wrapped.kek_id),
                    wrapped_key: Some(wrapped.bytes),
                    media_start_ms: 0,
                    media_end_ms: 2500,
                    size: sealed.len() as u64,
                    sha256: None,
                    status: SegmentStatus::Stored,
                })
                .await
                .expect("insert segment");
            out.push(Seeded {
                recording_id: id,
                segment,
                sealed,
                plaintext,
            });
        }
    }
    out
}
