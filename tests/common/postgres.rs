//! A PostgreSQL schema of one test's own on the test server, dropped after it.
//!
//! The server is `$CALLVAULT_TEST_POSTGRES` (a connection string), by default the CI's: trust auth
//! on 127.0.0.1:5432, user `postgres`, database `test`. A server that cannot be reached fails the
//! test, naming it (CI has one, so a skip would hide a broken setup).

/// The test server's connection string.
pub fn server_url() -> String {
    std::env::var("CALLVAULT_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned())
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at `{url}`: {e}. The postgres catalog tests need a \
             server: .ci/run starts one; or set CALLVAULT_TEST_POSTGRES to a connection string"
        ),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A schema created for one test, dropped when this is dropped.
pub struct Scratch {
    server: String,
    schema: String,
    /// A connection string whose `search_path` is the schema (as `catalog.url` takes it).
    pub url: String,
}

impl Scratch {
    pub async fn new() -> Scratch {
        let server = server_url();
        let schema = format!("cv_t_{}", uuid::Uuid::now_v7().simple());
        admin(&server)
            .await
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        let url = format!("{server} options='-c search_path={schema}'");
        Scratch {
            server,
            schema,
            url,
        }
    }

    /// The `[catalog]` table of a config file on this schema.
    pub fn config(&self) -> String {
        let url = self.url.replace('\\', "\\\\").replace('"', "\\\"");
        format!("[catalog]\nkind = \"postgres\"\nurl = \"{url}\"\n")
    }

    /// A node's catalog on the schema.
    pub async fn open(&self) -> callvault::catalog::PostgresCatalog {
        callvault::catalog::PostgresCatalog::open(&self.url, None)
            .await
            .expect("open the postgres catalog")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Drop cannot await: a thread with a runtime of its own drops the schema, and is waited for
        let (server, schema) = (self.server.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let c = admin(&server).await;
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        })
        .join();
    }
}
