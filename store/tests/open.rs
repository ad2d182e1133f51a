//! Opening a database: URLs, file creation, SQLite settings, migrations.

use rbee_store::testing::TestDatabase;
use rbee_store::{Db, Store, StoreError};

#[tokio::test]
async fn a_missing_sqlite_file_is_created_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    assert!(!path.exists());
    let store = Store::open_sqlite(&path).await.unwrap();
    assert!(path.exists());
    let Db::Sqlite(pool) = store.db() else {
        panic!("a SQLite store")
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(timeout, 5000);
}

#[tokio::test]
async fn a_sqlite_url_reopens_with_the_records_and_migrates_once() {
    let db = TestDatabase::sqlite();
    reopen_keeps_records(&db).await;
}

#[tokio::test]
async fn a_postgres_url_reopens_with_the_records_and_migrates_once() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    reopen_keeps_records(&db).await;
    db.finish().await;
}

async fn reopen_keeps_records(db: &TestDatabase) {
    let first = Store::open(db.url()).await.unwrap();
    let key = first.ensure_admin_key().await.unwrap().unwrap();
    first.close().await;
    let second = Store::open(db.url()).await.unwrap();
    assert!(second.authenticate(key.expose()).await.unwrap().is_some());
    let (applied, dialect): (i64, _) = match second.db() {
        Db::Sqlite(pool) => (
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(pool)
                .await
                .unwrap(),
            "sqlite",
        ),
        Db::Postgres(pool) => (
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(pool)
                .await
                .unwrap(),
            "postgres",
        ),
    };
    // Each migration of the dialect applied once, not once per open.
    let files = std::fs::read_dir(format!(
        "{}/migrations/{dialect}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .count();
    assert_eq!(applied, i64::try_from(files).unwrap());
    second.close().await;
}

#[tokio::test]
async fn an_unsupported_url_is_refused_without_repeating_it() {
    let err = Store::open("mysql://root:hunter2@db/x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_postgres_fails_with_a_source() {
    // Port 1 on loopback: nothing listens there, so the connection is
    // refused at once.
    let err = Store::open("postgres://u:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(!err.to_string().contains("hunter2"));
}
