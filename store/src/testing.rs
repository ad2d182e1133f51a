//! Throwaway databases for tests, one per test: a SQLite file in a temp
//! dir, or a fresh database on the test PostgreSQL cluster that
//! `scripts/install-test-deps.sh` starts. [`store_test!`](crate::store_test)
//! runs one test body on both.
//!
//! The PostgreSQL URL comes from `RBEE_TEST_POSTGRES_URL`, or else from the
//! file the script writes (`$TMPDIR/rbee-test-postgres/url`). Without a
//! reachable server a PostgreSQL test fails when `CI` is set and skips
//! (with a message) on a developer's machine.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::Store;

/// The variable that names the test cluster's admin URL.
pub const POSTGRES_URL_VAR: &str = "RBEE_TEST_POSTGRES_URL";

/// One test's database.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    /// For PostgreSQL: the cluster's admin URL and this test's database,
    /// dropped by [`TestDatabase::finish`].
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A SQLite file in a new temp dir.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
        TestDatabase {
            url,
            postgres: None,
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the test cluster; `None` (skip) when there
    /// is no cluster and `CI` is unset. Panics under CI without one.
    pub async fn postgres() -> Option<TestDatabase> {
        let Some(admin_url) = postgres_admin_url() else {
            return skip_or_fail(&format!(
                "no PostgreSQL for tests: set {POSTGRES_URL_VAR} or run scripts/install-test-deps.sh"
            ));
        };
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(err) => {
                return skip_or_fail(&format!("cannot reach the test PostgreSQL: {err}"));
            }
        };
        let name = format!("rbee_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(TestDatabase {
            url,
            postgres: Some((admin_url, name)),
            _dir: None,
        })
    }

    /// The database's URL, for [`Store::open`] or a catalog's
    /// `--database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the store on this database.
    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.expect("open the test store")
    }

    /// Drops a PostgreSQL test database (close every store on it first).
    /// A test that panics leaves its database behind on the throwaway
    /// cluster, which is harmless.
    pub async fn finish(self) {
        if let Some((admin_url, name)) = &self.postgres {
            let mut admin = PgConnection::connect(admin_url)
                .await
                .expect("reach the test PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop the test database");
        }
    }
}

fn skip_or_fail(why: &str) -> Option<TestDatabase> {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{why} (CI is set, so this test fails instead of skipping)");
    }
    eprintln!("SKIPPED (PostgreSQL): {why}");
    None
}

fn postgres_admin_url() -> Option<String> {
    if let Ok(url) = std::env::var(POSTGRES_URL_VAR)
        && !url.is_empty()
    {
        return Some(url);
    }
    let file = std::env::temp_dir().join("rbee-test-postgres").join("url");
    std::fs::read_to_string(file)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// `admin_url` with its database replaced by `name` (user, password,
/// host and query kept).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut url = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Runs an async test body against SQLite and PostgreSQL: expands to a
/// module `$name` with the tests `sqlite` and `postgres`, so the test
/// output names the database each ran on.
///
/// ```ignore
/// rbee_store::store_test!(async fn revoked_keys_fail(store) {
///     // `store` is a fresh `Store` on an empty database.
/// });
/// ```
#[macro_export]
macro_rules! store_test {
    ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: $crate::Store) $body

            #[tokio::test]
            async fn sqlite() {
                let db = $crate::testing::TestDatabase::sqlite();
                let store = db.store().await;
                body(store.clone()).await;
                store.close().await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = $crate::testing::TestDatabase::postgres().await else {
                    return;
                };
                let store = db.store().await;
                body(store.clone()).await;
                store.close().await;
                db.finish().await;
            }
        }
    };
}

/// Like [`store_test!`](crate::store_test), but the body gets the
/// [`TestDatabase`] itself (`&TestDatabase`), for tests that open it their
/// own way (a catalog server with `database_url`).
#[macro_export]
macro_rules! database_test {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: &$crate::testing::TestDatabase) $body

            #[tokio::test]
            async fn sqlite() {
                let db = $crate::testing::TestDatabase::sqlite();
                body(&db).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = $crate::testing::TestDatabase::postgres().await else {
                    return;
                };
                body(&db).await;
                db.finish().await;
            }
        }
    };
}
