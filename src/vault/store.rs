//! The object store: which backend ([`StoreKind`]), opening it ([`open_store`]), and a verified,
//! durable upload ([`put_verified`]).
//!
//! This module owns backend construction and upload checks. It must not know the container format or
//! the object layout, and must not print credentials: [`StoreKind`]'s `Debug` redacts the secret.
//!
//! Durability: `object_store`'s local filesystem store writes to a temporary file and renames it, but
//! never calls fsync. [`put_verified`] therefore syncs the file and every directory from it up to the
//! root after a local upload. Other writes through the store (deletes) are not synced by this module.
//!
//! S3: every request has a deadline ([`CONNECT_TIMEOUT`] to connect, `request_timeout` of
//! [`StoreKind::S3`] for the whole request), and `object_store`'s own retries are kept short
//! ([`retry_config`]): the uploader retries for as long as an outage lasts, with its own backoff, so
//! a request that cannot succeed must fail within one deadline and a few seconds rather than hold the
//! upload gate (and with it a consent refusal's destruction), playback or the next upload for
//! minutes, as `object_store`'s default of 10 retries within 3 minutes does against a hung store. A
//! segment larger than [`MULTIPART_THRESHOLD`] is uploaded in parts of [`PART_SIZE`], so that no one
//! request has to move more than a part within its deadline. After every upload the object's size is
//! read back (`HEAD`) and compared with what was sent; a store that refuses the credentials is told
//! apart from one that is down ([`VaultError::StoreAccessDenied`], and [`check_access`] at start-up).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::VaultError;

/// Which object store holds the sealed segments.
#[derive(Clone)]
pub enum StoreKind {
    /// A directory on local disk (the embedded default, under the state directory).
    Local {
        /// The directory; created if missing.
        root: PathBuf,
    },
    /// In memory, lost on exit: for tests.
    Memory,
    /// An S3-compatible bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region (S3-compatible servers often accept any, e.g. `garage` or `us-east-1`).
        region: String,
        /// Endpoint URL for a non-AWS server, e.g. `https://s3.example.net`.
        endpoint: Option<String>,
        /// Access key id.
        access_key_id: String,
        /// Secret access key, wiped on drop.
        secret_access_key: Zeroizing<String>,
        /// Allow a plain `http://` endpoint (a loopback test server only).
        allow_http: bool,
        /// The longest one request may take, body included (config `storage.request_timeout`).
        request_timeout: Duration,
    },
}

impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            StoreKind::Memory => f.write_str("Memory"),
            StoreKind::S3 {
                bucket,
                region,
                endpoint,
                access_key_id,
                secret_access_key: _,
                allow_http,
                request_timeout,
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("region", region)
                .field("endpoint", endpoint)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"[redacted]")
                .field("allow_http", allow_http)
                .field("request_timeout", request_timeout)
                .finish(),
        }
    }
}

/// The longest an S3 connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the start-up access check waits for the store.
pub const ACCESS_CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Segments larger than this are uploaded in parts (S3 refuses parts under 5 MiB but the last).
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part of a multipart upload but the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// `object_store`'s own retries of one request (a connection refused, a 5xx, a timeout of an
/// idempotent request): at most 2 more tries, none begun 10 s after the first. Its default (10 more
/// within 3 minutes) stacks under the uploader's own retries, and against a store that accepts
/// connections but does not answer, holds one request (and the upload gate) for over 3 minutes.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

fn config(reason: &'static str) -> VaultError {
    VaultError::StoreConfig { reason }
}

/// Opens the configured store, checking the configuration first. Opening S3 makes no request.
pub fn open_store(kind: &StoreKind) -> Result<Arc<dyn ObjectStore>, VaultError> {
    match kind {
        StoreKind::Local { root } => {
            std::fs::create_dir_all(root)?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(root)?))
        }
        StoreKind::Memory => Ok(Arc::new(InMemory::new())),
        StoreKind::S3 {
            bucket,
            region,
            endpoint,
            access_key_id,
            secret_access_key,
            allow_http,
            request_timeout,
        } => {
            if bucket.is_empty() {
                return Err(config("s3 bucket is empty"));
            }
            if access_key_id.is_empty() {
                return Err(config("s3 access key id is empty"));
            }
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_access_key_id(access_key_id)
                // The builder keeps its own copy, which is not wiped; no way around that here.
                .with_secret_access_key(secret_access_key.as_str())
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(CONNECT_TIMEOUT)
                        .with_timeout(*request_timeout)
                        .with_allow_http(*allow_http),
                )
                .with_retry(retry_config());
            if !region.is_empty() {
                builder = builder.with_region(region);
            }
            if let Some(url) = endpoint {
                check_endpoint(url, *allow_http)?;
                builder = builder.with_endpoint(url);
            }
            Ok(Arc::new(builder.build()?))
        }
    }
}

fn check_endpoint(url: &str, allow_http: bool) -> Result<(), VaultError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| config("s3 endpoint must be an http(s) url"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(config("s3 endpoint has no host"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => Err(config("s3 endpoint is plain http: set allow_http")),
        _ => Err(config("s3 endpoint must be an http(s) url")),
    }
}

/// Checks at start-up that the store accepts the credentials: one `HEAD` of a key that need not
/// exist, given at most [`ACCESS_CHECK_TIMEOUT`]. A refusal (401 or 403) is
/// [`VaultError::StoreAccessDenied`]; any other failure (the store is down) is returned as it is,
/// for the caller to log and carry on with: audio is spooled until the store answers.
pub async fn check_access(store: &Arc<dyn ObjectStore>) -> Result<(), VaultError> {
    let probe = Path::from("_probe/access");
    match tokio::time::timeout(ACCESS_CHECK_TIMEOUT, store.head(&probe)).await {
        Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => Ok(()),
        Ok(Err(e)) => Err(store_error(e)),
        Err(_) => Err(VaultError::Store(object_store::Error::Generic {
            store: "callvault",
            source: "the object store did not answer the access check in time".into(),
        })),
    }
}

/// An `object_store` error, with a refusal of the credentials told apart.
pub fn store_error(e: object_store::Error) -> VaultError {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => VaultError::StoreAccessDenied(e),
        e => VaultError::Store(e),
    }
}

/// Uploads `bytes` to `path` (in parts of [`PART_SIZE`] when it is an S3 store and `bytes` is larger
/// than [`MULTIPART_THRESHOLD`]), makes a local upload durable (fsync of the file and its
/// directories), reads back the object's size and checks it, and returns that size with the SHA-256
/// of what was written, for the catalog to record.
///
/// `kind` must be the kind `store` was opened from: it tells where a local store's files live.
pub async fn put_verified(
    store: &Arc<dyn ObjectStore>,
    kind: &StoreKind,
    path: &Path,
    bytes: Bytes,
) -> Result<(u64, [u8; 32]), VaultError> {
    let expected = bytes.len() as u64;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if matches!(kind, StoreKind::S3 { .. }) && bytes.len() > MULTIPART_THRESHOLD {
        put_parts(store, path, bytes).await?;
    } else {
        store.put(path, bytes.into()).await.map_err(store_error)?;
    }
    if let StoreKind::Local { root } = kind {
        let root = root.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || sync_local(&root, &path))
            .await
            .map_err(|e| VaultError::Io(std::io::Error::other(e)))??;
    }
    let actual = store.head(path).await.map_err(store_error)?.size;
    if actual != expected {
        return Err(VaultError::SizeMismatch {
            path: path.to_string(),
            expected,
            actual,
        });
    }
    Ok((actual, digest))
}

/// Uploads `bytes` as a multipart upload, one part at a time (so memory and bandwidth stay bounded
/// by one part in flight); on failure the upload is aborted, best effort, so the store drops the
/// parts already sent.
async fn put_parts(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    bytes: Bytes,
) -> Result<(), VaultError> {
    let mut upload = store.put_multipart(path).await.map_err(store_error)?;
    if let Err(error) = send_parts(upload.as_mut(), &bytes).await {
        if let Err(abort) = upload.abort().await {
            tracing::warn!(object = %path, %abort, "cannot abort the failed multipart upload; the store keeps its parts until a lifecycle rule drops them");
        }
        return Err(store_error(error));
    }
    Ok(())
}

async fn send_parts(
    upload: &mut dyn object_store::MultipartUpload,
    bytes: &Bytes,
) -> Result<(), object_store::Error> {
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + PART_SIZE).min(bytes.len());
        upload.put_part(bytes.slice(at..end).into()).await?;
        at = end;
    }
    upload.complete().await.map(drop)
}

/// What [`delete_objects`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedObjects {
    /// Keys deleted, sorted.
    pub deleted: Vec<String>,
    /// Keys that were already absent (never uploaded, or deleted by an earlier attempt).
    pub absent: Vec<String>,
    /// Keys that could not be deleted (the store failed); their data keys are shredded all the same.
    pub failed: Vec<String>,
}

/// Deletes the objects `named`, and, when `prefix` is given, every object listed under it too (to
/// catch one uploaded while the catalog did not yet name it). Idempotent: an absent object is
/// reported as such by stores that say so (local, memory); S3 answers `DELETE` of an absent key with
/// success, so there it is counted as deleted. A listing that fails is logged and the named objects
/// are still deleted.
pub async fn delete_objects(
    store: &Arc<dyn ObjectStore>,
    prefix: Option<&Path>,
    named: &[Path],
) -> DeletedObjects {
    use futures::TryStreamExt;
    let mut keys: Vec<Path> = match prefix {
        Some(prefix) => match store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
        {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%prefix, %error, "cannot list objects; deleting those named");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    for key in named {
        if !key.as_ref().is_empty() && !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let mut out = DeletedObjects::default();
    for key in keys {
        match store.delete(&key).await {
            Ok(()) => out.deleted.push(key.to_string()),
            Err(object_store::Error::NotFound { .. }) => out.absent.push(key.to_string()),
            Err(error) => {
                tracing::warn!(object = %key, %error, "cannot delete object; its key is shredded");
                out.failed.push(key.to_string());
            }
        }
    }
    out.deleted.sort();
    out
}

/// Syncs a local object's file and each directory from its parent up to the store root, so the
/// rename `object_store` did and any directories it created survive a power cut.
fn sync_local(root: &std::path::Path, path: &Path) -> Result<(), VaultError> {
    let fs = LocalFileSystem::new_with_prefix(root)?;
    let file = fs.path_to_filesystem(path)?;
    std::fs::File::open(&file)?.sync_all()?;
    let root = std::fs::canonicalize(root)?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if d == root || !d.starts_with(&root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, allow_http: bool) -> StoreKind {
        StoreKind::S3 {
            bucket: "recordings".into(),
            region: "garage".into(),
            endpoint: endpoint.map(str::to_owned),
            access_key_id: "GK123".into(),
            secret_access_key: Zeroizing::new("very-secret-value".into()),
            allow_http,
            request_timeout: Duration::from_secs(30),
        }
    }

    fn reason(r: Result<Arc<dyn ObjectStore>, VaultError>) -> &'static str {
        match r {
            Err(VaultError::StoreConfig { reason }) => reason,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn s3_config_is_checked_and_secret_redacted() {
        assert!(open_store(&s3(Some("https://s3.example.net"), false)).is_ok());
        assert!(open_store(&s3(Some("http://127.0.0.1:3900"), true)).is_ok());
        assert!(open_store(&s3(None, false)).is_ok());
        assert!(
            reason(open_store(&s3(Some("http://127.0.0.1:3900"), false))).contains("allow_http")
        );
        assert!(reason(open_store(&s3(Some("ftp://x"), true))).contains("http(s)"));
        assert!(reason(open_store(&s3(Some("s3.example.net"), true))).contains("http(s)"));
        assert!(reason(open_store(&s3(Some("https://"), true))).contains("no host"));
        let mut empty = s3(None, false);
        if let StoreKind::S3 { bucket, .. } = &mut empty {
            bucket.clear();
        }
        assert!(reason(open_store(&empty)).contains("bucket"));
        let shown = format!("{:?}", s3(None, false));
        assert!(shown.contains("[redacted]") && !shown.contains("very-secret-value"));
    }

    #[tokio::test]
    async fn put_verified_reports_size_and_hash_in_memory() {
        let kind = StoreKind::Memory;
        let store = open_store(&kind).unwrap();
        let path = Path::from("v1/a/b.cva");
        let (size, sha) = put_verified(&store, &kind, &path, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            hex::encode(sha),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let back = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&back[..], b"abc");
    }

    #[tokio::test]
    async fn put_verified_writes_and_syncs_local_files() {
        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::Local {
            root: dir.path().join("objects"),
        };
        let store = open_store(&kind).unwrap();
        assert!(dir.path().join("objects").is_dir());
        let path = Path::from("v1/2026/01/02/r/0000.cva");
        let data = Bytes::from(vec![9u8; 1000]);
        let (size, sha) = put_verified(&store, &kind, &path, data.clone())
            .await
            .unwrap();
        assert_eq!(size, 1000);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        let on_disk = std::fs::read(dir.path().join("objects/v1/2026/01/02/r/0000.cva")).unwrap();
        assert_eq!(on_disk, data);
    }
}
