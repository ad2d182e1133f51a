//! Opening the database: SQLite (embedded, one file) or PostgreSQL
//! (several catalog nodes on one database), with the migrations of each.
//!
//! The two dialects are two pools behind [`Db`], not sqlx's `Any` driver:
//! each keeps its native types (TIMESTAMPTZ, BOOLEAN) and features
//! (LISTEN/NOTIFY, COPY), and the queries both understand are written once
//! and run on either through `with_pool!`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// Migrations of each dialect. Each set holds the same tables in the
/// same order of files: a new table (analytics, ...) is a new
/// `NNNN_name.sql` in both folders.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a writer waits for SQLite's lock before giving up, and how
/// long any caller waits for a pooled connection: a stuck database makes
/// requests fail, not hang.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection pool of one dialect. Public so that other parts of the
/// catalog (analytics) can run dialect-specific SQL on the same database.
#[derive(Debug, Clone)]
pub enum Db {
    /// A file in the data dir, in WAL mode.
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

impl Db {
    /// Opens `url` (`sqlite://PATH`, `sqlite:PATH` or `postgres://...`),
    /// creating a SQLite file if missing, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Db, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url).map_err(StoreError::Connect)?;
                Db::open_sqlite_with(options).await
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
                Db::open_postgres_with(options).await
            }
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.chars().take(20).collect(),
            }),
        }
    }

    /// Opens (or creates) the SQLite database in the file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Db, StoreError> {
        Db::open_sqlite_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_sqlite_with(options: SqliteConnectOptions) -> Result<Db, StoreError> {
        // WAL lets readers run beside the one writer; NORMAL sync is
        // durable across process crashes in WAL mode (a power cut may lose
        // the last commits, never corrupt the file).
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // 16 MiB of page cache per connection (SQLite's default is
            // 2 MiB): the analytics tables' upper B-tree levels stay in
            // memory while batches are written. At most 4 connections.
            .pragma("cache_size", "-16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Db::Sqlite(pool))
    }

    async fn open_postgres_with(options: PgConnectOptions) -> Result<Db, StoreError> {
        // PostgreSQL's NOTICEs ("relation ... already exists, skipping" at
        // every start) would reach the log as INFO lines, and the admin
        // commands' output with them; warnings and errors still come.
        let options = options.options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        // sqlx holds an advisory lock while migrating, so nodes starting
        // together on one database migrate it once.
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Db::Postgres(pool))
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn dialect(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Runs `$body` with `$pool` bound to the pool of either dialect. The body
/// is compiled once per dialect, so it must be SQL both understand:
/// placeholders `$1`, `$2`... (SQLite reads them too), `ON CONFLICT`, no
/// dialect-only functions.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;
