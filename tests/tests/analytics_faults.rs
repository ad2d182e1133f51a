//! Download analytics when the database fails: PostgreSQL stopped in the
//! middle of a run of downloads (a cluster of the test's own), and the
//! SQLite file locked by another process. Every download succeeds without
//! waiting on the database, the events held or dropped are counted on
//! `/metrics`, and recording resumes once the database is back.

mod analytics_support;
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use analytics_support::*;
use common::catalog::{TestCatalog, WORKER};
use common::require_tool;
use rbee_pusher::publish::PlatformSummary;
use tokio::io::AsyncBufReadExt as _;

/// A download while the database is away may take no longer than this:
/// far less than the database's lock wait and connection timeouts (5 s
/// each), which a download waiting on the database would show.
const DOWNLOAD_BOUND: Duration = Duration::from_secs(2);

const BASELINE: u64 = 3;
const DURING: u64 = 12;
const AFTER: u64 = 2;

/// Downloads `n` times, each within [`DOWNLOAD_BOUND`].
async fn timed_pulls(catalog: &TestCatalog, build: &PlatformSummary, n: u64) {
    for i in 0..n {
        let started = Instant::now();
        pull(catalog, build, "rbee-hive/0.1").await;
        let took = started.elapsed();
        assert!(took < DOWNLOAD_BOUND, "download {i} took {took:?}");
    }
}

/// The run both faults share: a baseline, `fault` on, downloads, the
/// failures and losses counted, `recover`, and recording resumed.
async fn downloads_survive(
    catalog: &TestCatalog,
    build: &PlatformSummary,
    fault: impl AsyncFnOnce(),
    recover: impl AsyncFnOnce(),
) {
    timed_pulls(catalog, build, BASELINE).await;
    wait_recorded(catalog, BASELINE).await;

    fault().await;
    timed_pulls(catalog, build, DURING).await;
    wait_metric(catalog, "rbee_catalog_analytics_write_failures_total", 1.0).await;
    // The queue holds 4 and the writer one batch: the rest is dropped.
    let held = metric(catalog, "rbee_catalog_analytics_events_buffered").await;
    let dropped = metric(catalog, "rbee_catalog_analytics_events_dropped_total").await;
    assert!(held >= 1.0, "events held for the database: {held}");
    assert!(dropped >= 1.0, "events dropped: {dropped}");
    assert_eq!(
        held as u64 + dropped as u64,
        DURING,
        "each event is held or counted as dropped"
    );

    recover().await;
    let kept = BASELINE + DURING - dropped as u64;
    wait_recorded(catalog, kept).await;
    timed_pulls(catalog, build, AFTER).await;
    wait_recorded(catalog, kept + AFTER).await;
    assert_eq!(
        metric(catalog, "rbee_catalog_analytics_events_buffered").await,
        0.0
    );
    let stats = catalog
        .get(&format!("/v1/workers/{WORKER}/stats"))
        .await
        .ok_json();
    assert_eq!(stats["total"], kept + AFTER, "{stats:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_go_on_while_postgres_is_stopped() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let (catalog, build) = catalog_with_release(Some(&pg.url()), 4).await;
    downloads_survive(
        &catalog,
        &build,
        async || pg.stop(),
        async || pg.start_again(),
    )
    .await;
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_go_on_while_sqlite_is_locked_by_another_process() {
    if !require_tool("python3") {
        return;
    }
    let (catalog, build) = catalog_with_release(None, 4).await;
    let rbee_store::Db::Sqlite(pool) = catalog.state().store.db() else {
        panic!("the default database is SQLite");
    };
    let path: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(pool)
            .await
            .unwrap();
    let locker = std::cell::RefCell::new(None);
    downloads_survive(
        &catalog,
        &build,
        async || {
            // Another process takes SQLite's write lock and keeps it until
            // its stdin closes.
            let mut child = tokio::process::Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys\n\
                     c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                     c.execute('BEGIN EXCLUSIVE')\n\
                     print('locked', flush=True)\n\
                     sys.stdin.read()\n",
                    &path,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("python3 starts");
            let mut line = String::new();
            tokio::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .await
                .unwrap();
            assert_eq!(line.trim(), "locked");
            *locker.borrow_mut() = Some(child);
        },
        async || {
            let mut child = locker.borrow_mut().take().expect("the lock was taken");
            drop(child.stdin.take());
            let status = child.wait().await.unwrap();
            assert!(status.success());
        },
    )
    .await;
    catalog.stop().await;
}
