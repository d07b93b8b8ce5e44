//! Opening the PostgreSQL catalog: the connection string, the pool, the advisory locks, and the
//! migrations.

use std::error::Error as _;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use super::{POOL_SIZE, PostgresCatalog, convert};
use crate::catalog::CatalogError;
use crate::config::Secret;

/// The schema migrations, in order: migration `i` (from 0) brings the schema to version `i + 1`.
/// Released migrations are frozen; a change is a new file. Each has the meaning of SQLite's file of
/// the same number.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_retention.sql"),
    include_str!("../migrations/postgres/0003_supervisor.sql"),
    include_str!("../migrations/postgres/0004_checkpoints.sql"),
    include_str!("../migrations/postgres/0005_destruction.sql"),
    include_str!("../migrations/postgres/0006_queue_search.sql"),
    include_str!("../migrations/postgres/0007_completeness.sql"),
    include_str!("../migrations/postgres/0008_sealed_notes.sql"),
];

/// How long opening a connection may take, unless the connection string sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a free connection from the pool.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server cancels a statement that runs longer (`statement_timeout`); nothing the catalog
/// does takes near this long, so reaching it means the server is stalled.
const STATEMENT_TIMEOUT: &str = "30s";

/// The first key of callvault's advisory locks (`cv` and a kind); the second is the schema's oid.
const LOCK_MIGRATE: i32 = 0x6376_0001;
const LOCK_AUDIT: i32 = 0x6376_0002;
const LOCK_HOLDS: i32 = 0x6376_0003;
const LOCK_SWEEP: i32 = 0x6376_0004;

/// The advisory locks of one catalog: keyed by its schema, so every node sharing the schema takes
/// the same locks and another catalog in the same database takes others.
#[derive(Debug, Clone, Copy)]
pub(super) struct Locks {
    schema: i32,
}

impl Locks {
    /// The audit chain's lock, held to the end of the transaction.
    pub(super) async fn audit<C: GenericClient>(self, tx: &C) -> Result<(), CatalogError> {
        self.xact(tx, LOCK_AUDIT).await
    }

    /// The lock that orders hold placement against the start of deletions, held to the end of the
    /// transaction.
    pub(super) async fn holds<C: GenericClient>(self, tx: &C) -> Result<(), CatalogError> {
        self.xact(tx, LOCK_HOLDS).await
    }

    async fn xact<C: GenericClient>(self, tx: &C, kind: i32) -> Result<(), CatalogError> {
        convert::execute(
            tx,
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&kind, &self.schema],
        )
        .await?;
        Ok(())
    }

    /// The sweep lock, for the life of `c`'s session, if no other session has it.
    pub(super) async fn try_sweep<C: GenericClient>(self, c: &C) -> Result<bool, CatalogError> {
        convert::scalar(
            c,
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&LOCK_SWEEP, &self.schema],
        )
        .await
    }
}

/// Parses a `catalog.url` connection string (key-value or `postgresql://` URL form), refusing what
/// this build cannot honour or must not see: a password (it belongs in `catalog.password`, a secret
/// file) and `sslmode=require` (no TLS to the database yet).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    // the parser's messages name the option at fault, never its value
    let config = tokio_postgres::Config::from_str(url).map_err(|e| match e.source() {
        Some(why) => format!("{e}: {why}"),
        None => e.to_string(),
    })?;
    if config.get_password().is_some() {
        return Err(
            "the connection string holds a password: put it in catalog.password, a secret file"
                .to_owned(),
        );
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(
            "sslmode=require: this build does not speak TLS to postgres; use a trusted network \
             and sslmode=disable"
                .to_owned(),
        );
    }
    Ok(config)
}

/// The pool of connections to the database `url` names, with `password`, and a description of where
/// it connects for logs. Connects to nothing yet.
pub(super) fn pool(url: &str, password: Option<&Secret>) -> Result<(Pool, String), CatalogError> {
    let mut config = parse_url(url).map_err(CatalogError::invalid)?;
    if let Some(p) = password {
        config.password(p.expose_trimmed());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("callvault");
    }
    let options = match config.get_options() {
        Some(o) if !o.trim().is_empty() => {
            format!("{o} -c statement_timeout={STATEMENT_TIMEOUT}")
        }
        _ => format!("-c statement_timeout={STATEMENT_TIMEOUT}"),
    };
    config.options(options);
    let target = describe(&config);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| CatalogError::Backend(Box::new(e)))?;
    Ok((pool, target))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} dbname={} user={}",
        if hosts.is_empty() {
            "localhost".to_owned()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        },
        config.get_dbname().or(config.get_user()).unwrap_or("?"),
        config.get_user().unwrap_or("?"),
    )
}

/// The locks of the schema the tables live in: the first of the `search_path` that exists.
pub(super) async fn schema_locks(c: &Object) -> Result<Locks, CatalogError> {
    let oid: Option<u32> = convert::first(
        c,
        "SELECT oid FROM pg_namespace WHERE nspname = current_schema()",
        &[],
        |r| convert::get(r, 0),
    )
    .await?;
    let oid = oid.ok_or_else(|| CatalogError::Migration {
        version: 0,
        reason: "the connection's search_path names no schema that exists: create it first"
            .to_owned(),
    })?;
    Ok(Locks {
        // an oid is an unsigned 32-bit number; the lock functions take it as a signed one
        schema: i32::from_ne_bytes(oid.to_ne_bytes()),
    })
}

pub(super) async fn migrate(c: &mut Object, locks: Locks) -> Result<(), CatalogError> {
    // DDL is transactional in PostgreSQL: all the pending migrations commit together or not at
    // all, and the lock makes nodes that start together take turns
    let tx = c.transaction().await?;
    locks.xact(&tx, LOCK_MIGRATE).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     NOT NULL PRIMARY KEY,
             applied_at timestamptz NOT NULL
         )",
    )
    .await?;
    let current: i32 = convert::scalar(
        &tx,
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        &[],
    )
    .await?;
    let current = u32::try_from(current)
        .map_err(|_| CatalogError::corrupt(format!("schema_migrations: version {current}")))?;
    let known = PostgresCatalog::schema_version();
    if current > known {
        return Err(CatalogError::Migration {
            version: current,
            reason: format!("the database is newer than this build, which knows up to {known}"),
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(current as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| CatalogError::Migration {
                version,
                reason: format!(
                    "cannot apply: {}",
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_owned())
                ),
            })?;
        let v = i32::try_from(version).expect("a migration number fits an i32");
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
            &[&v],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
