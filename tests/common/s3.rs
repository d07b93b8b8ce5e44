//! The S3-compatible test server that `tests/s3/start.sh` starts: where it is and its key, a bucket
//! of its own for each test, a plain client to look into a bucket, and a [`Gate`] in front of the
//! server to take it away and bring it back.
//!
//! A missing or silent server is a test failure that names the start script, never a skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::Deployment;

/// The script that starts the server; CI runs it before the tests.
pub const START: &str = "tests/s3/start.sh";

/// The region the tests sign for (the server takes any).
pub const REGION: &str = "us-east-1";

/// The running S3 test server.
#[derive(Clone)]
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: String,
}

fn missing(what: String) -> ! {
    panic!(
        "no S3 test server: {what}. Start it with `bash {START}` (CI runs it in .ci/run before \
         the tests); these tests never skip"
    )
}

impl S3 {
    /// The server `tests/s3/start.sh` started (its state in `target/s3-server`, or
    /// `$CALLVAULT_S3_DIR`); panics, naming the script, if it is not there or does not answer.
    pub async fn server() -> S3 {
        let dir = std::env::var_os("CALLVAULT_S3_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3-server"));
        Self::at(&dir).await
    }

    /// The server whose state `start.sh` wrote to `dir`.
    pub async fn at(dir: &Path) -> S3 {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
                Ok(_) => missing(format!("{} is empty", path.display())),
                Err(e) => missing(format!("cannot read {}: {e}", path.display())),
            }
        };
        let endpoint = read("endpoint");
        let addr: SocketAddr = endpoint
            .strip_prefix("http://")
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| missing(format!("endpoint {endpoint} is not http://IP:PORT")));
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => missing(format!("{endpoint} refuses connections ({e})")),
            Err(_) => missing(format!("{endpoint} does not accept a connection within 5s")),
        }
        S3 {
            endpoint,
            addr,
            access_key_id: read("access_key_id"),
            secret_access_key: read("secret_access_key"),
        }
    }

    /// The same server and key, reached through `endpoint` (a [`Gate`]).
    pub fn via(&self, endpoint: &str) -> S3 {
        S3 {
            endpoint: endpoint.to_owned(),
            ..self.clone()
        }
    }

    /// Creates a fresh bucket named `{prefix}-{random}` (a signed `PUT /bucket`) and returns its name.
    pub async fn create_bucket(&self, prefix: &str) -> String {
        // the random tail of a UUIDv7 (its head is the time, shared by tests started together)
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let bucket = format!("{prefix}-{}", &suffix[20..]);
        let credential = AwsCredential {
            key_id: self.access_key_id.clone(),
            secret_key: self.secret_access_key.clone(),
            token: None,
        };
        let mut req = hyper::Request::builder()
            .method("PUT")
            .uri(format!("{}/{bucket}", self.endpoint))
            .body(HttpRequestBody::empty())
            .expect("a valid request");
        AwsAuthorizer::new(&credential, "s3", REGION).authorize(&mut req, None);
        let mut head = format!("PUT /{bucket} HTTP/1.1\r\n");
        for (name, value) in req.headers() {
            let value = value.to_str().expect("signed headers are ASCII");
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        let mut stream = TcpStream::connect(self.addr).await.expect("connect to S3");
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
            "create bucket {bucket}: {text}"
        );
        bucket
    }

    /// A plain client of `bucket` (object_store's own builder, not callvault's), to look inside.
    pub fn client(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(REGION)
                .with_endpoint(&self.endpoint)
                .with_access_key_id(&self.access_key_id)
                .with_secret_access_key(&self.secret_access_key)
                .with_allow_http(true)
                .build()
                .expect("an S3 client"),
        )
    }

    /// The `[storage]` section for `bucket`, its key written as secret files (mode 0600) beside the
    /// deployment's config, under the names `s3-access-key-id` and `s3-secret-access-key`.
    pub fn storage(&self, deployment: &Deployment, bucket: &str) -> String {
        self.write_secrets(deployment, &self.secret_access_key);
        format!(
            "[storage]\nkind = \"s3\"\nbucket = \"{bucket}\"\nregion = \"{REGION}\"\n\
             endpoint = \"{}\"\naccess_key_id = \"s3-access-key-id\"\n\
             secret_access_key = \"s3-secret-access-key\"\nallow_http = true\n",
            self.endpoint
        )
    }

    /// Writes the key's secret files, with `secret` as the secret access key.
    pub fn write_secrets(&self, deployment: &Deployment, secret: &str) {
        for (name, value) in [
            ("s3-access-key-id", self.access_key_id.as_str()),
            ("s3-secret-access-key", secret),
        ] {
            let path = deployment.path(name);
            std::fs::write(&path, format!("{value}\n")).expect("write secret");
            super::chmod_600(&path);
        }
    }
}

/// A deployment whose config has `extra` lines and the `[storage]` section of `bucket` on `s3`.
pub fn deployment(s3: &S3, bucket: &str, extra: &str) -> Deployment {
    let deployment = Deployment::new(extra);
    let storage = s3.storage(&deployment, bucket);
    let mut text = std::fs::read_to_string(&deployment.config).expect("read config");
    text.push_str(&storage);
    std::fs::write(&deployment.config, text).expect("write config");
    deployment
}

/// The objects in the bucket whose keys start with `prefix`, with their sizes, sorted by key.
///
/// Lists the whole bucket and filters here: moto's signature check refuses a `ListObjectsV2` whose
/// `prefix` holds a `/` (it canonicalises the query without re-encoding it; boto3 is refused too).
pub async fn objects(store: &Arc<dyn ObjectStore>, prefix: Option<&str>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = store
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_filter(|(key, _)| futures::future::ready(key.starts_with(prefix.unwrap_or(""))))
        .try_collect()
        .await
        .expect("list the bucket");
    out.sort();
    out
}

/// A TCP forwarder on a fixed loopback port in front of the S3 server: while it is closed the port
/// refuses connections and every open connection is cut, exactly what a client sees of a server that
/// stopped; reopened, it forwards again on the same port.
pub struct Gate {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    /// A gate in front of `upstream`, open.
    pub async fn open(upstream: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let addr = listener.local_addr().expect("gate address");
        let mut gate = Gate {
            addr,
            upstream,
            serving: None,
        };
        gate.serve(listener);
        gate
    }

    /// A closed gate: a port that refuses connections until [`Gate::reopen`].
    pub async fn closed(upstream: SocketAddr) -> Gate {
        let mut gate = Self::open(upstream).await;
        gate.close().await;
        gate
    }

    /// `http://` and the gate's address.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and cuts every forwarded connection.
    pub async fn close(&mut self) {
        if let Some(task) = self.serving.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    pub async fn reopen(&mut self) {
        assert!(self.serving.is_none(), "the gate is open already");
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("rebind the gate's port");
        self.serve(socket.listen(64).expect("listen"));
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.serving = Some(tokio::spawn(async move {
            // dropped with this task when the gate closes: every connection is cut
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        }));
    }
}

/// A server that accepts connections and never answers (a hung store, or a network that drops
/// replies): its address, and the task holding the connections, to abort when done.
pub async fn hung_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (addr, task)
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(task) = self.serving.take() {
            task.abort();
        }
    }
}
