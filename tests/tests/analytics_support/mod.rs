//! Helpers of the download analytics tests (`analytics.rs`,
//! `analytics_faults.rs`): a catalog on a given database with a large host
//! build published, downloads of every kind, waiting for the writer, the
//! analytics metrics, and a throwaway PostgreSQL cluster a test may stop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbee_pusher::publish::PlatformSummary;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::catalog::{TestCatalog, WORKER};
use crate::common::pseudo_random;
use crate::common::publishing::{Fixture, host_platform};

/// The size of the host build: large enough that a client that reads a
/// little and hangs up leaves the server unable to hand over the rest
/// (loopback socket buffers hold a few MiB).
pub const BIG: usize = 16 << 20;

/// How long a test waits for the writer to record what it expects.
pub const RECORD_WAIT: Duration = Duration::from_secs(60);

/// A catalog on `database_url` (none: SQLite in its data dir) with stats
/// answered fresh, and the example worker published with a [`BIG`] host
/// build. Returns the catalog and the host build.
pub async fn catalog_with_release(
    database_url: Option<&str>,
    queue_capacity: usize,
) -> (TestCatalog, PlatformSummary) {
    let url = database_url.map(str::to_owned);
    let catalog = TestCatalog::start(move |config| {
        config.database_url = url;
        config.analytics.stats_ttl = Duration::ZERO;
        config.analytics.queue_capacity = queue_capacity;
    })
    .await;
    let build = publish_big(&catalog).await;
    (catalog, build)
}

/// Publishes 0.1.0 of the example worker with a [`BIG`] host build to
/// `catalog`; the same bytes each time (so two catalogs hold the same
/// digests).
pub async fn publish_big(catalog: &TestCatalog) -> PlatformSummary {
    let host = host_platform().expect("the tests run on a platform the example worker lists");
    let fixture = Fixture::new("0.1.0");
    fixture.set_build(host, &pseudo_random(42, BIG));
    let summary = catalog.publish(&fixture).await;
    catalog.state().catalog.invalidate_all();
    // The catalog's view (in the database) learns of the push from the
    // registry's events: wait until it lists the release, as the writer
    // maps layers to builds through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = catalog.get(&format!("/v1/workers/{WORKER}/versions")).await;
        if reply.status == 200 && reply.text().contains("\"0.1.0\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the release is not listed: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    summary
        .platforms
        .iter()
        .find(|p| p.platform == host)
        .cloned()
        .expect("the host build was published")
}

/// The blob URL path of the host build.
pub fn blob_path(build: &PlatformSummary) -> String {
    format!("/v2/rbee/{WORKER}/blobs/{}", build.layer_digest)
}

/// A whole `GET` of the layer from the registry with `user_agent`; panics
/// unless all of it arrived.
pub async fn pull(catalog: &TestCatalog, build: &PlatformSummary, user_agent: &str) {
    let resp = catalog
        .http
        .get(format!("{}{}", catalog.url, blob_path(build)))
        .header("user-agent", user_agent)
        .send()
        .await
        .expect("the pull is answered");
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("the whole body");
    assert_eq!(body.len() as u64, build.size);
}

/// `GET` with `Range: bytes=<from>-<to>` (`to` empty: to the end);
/// returns the body's length.
pub async fn pull_range(catalog: &TestCatalog, build: &PlatformSummary, range: &str) -> usize {
    let resp = catalog
        .http
        .get(format!("{}{}", catalog.url, blob_path(build)))
        .header("user-agent", "curl/8.5.0")
        .header("range", format!("bytes={range}"))
        .send()
        .await
        .expect("the ranged pull is answered");
    assert_eq!(resp.status(), 206, "{range}");
    resp.bytes().await.expect("the whole range").len()
}

/// A pull that reads the first 64 KiB of the layer and hangs up.
pub async fn abandoned_pull(catalog: &TestCatalog, build: &PlatformSummary) {
    let mut conn = tokio::net::TcpStream::connect(catalog.host())
        .await
        .expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.5.0\r\n\r\n",
        blob_path(build),
        catalog.host()
    );
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < buf.len() {
        let n = conn.read(&mut buf[got..]).await.expect("read");
        assert!(n > 0, "the server hung up first");
        got += n;
    }
    drop(conn);
}

/// Waits until the catalog's writer recorded `n` events in all; panics
/// with what it did record after [`RECORD_WAIT`].
pub async fn wait_recorded(catalog: &TestCatalog, n: u64) {
    let got = catalog
        .state()
        .analytics
        .wait_recorded(n, RECORD_WAIT)
        .await;
    assert!(got >= n, "recorded {got} events, expected {n}");
}

/// The value of metric `name` on `/metrics` (0 when absent).
pub async fn metric(catalog: &TestCatalog, name: &str) -> f64 {
    let text = catalog.get("/metrics").await.expect(200).text();
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Polls `/metrics` until `name` reaches `at_least`, for at most
/// [`RECORD_WAIT`] (the writer's retry is on its own clock).
pub async fn wait_metric(catalog: &TestCatalog, name: &str, at_least: f64) -> f64 {
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    loop {
        let v = metric(catalog, name).await;
        if v >= at_least {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {v}, expected {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL cluster of the test's own, in a temp dir, that it may stop
/// and start (the shared test cluster other tests use is never touched).
#[derive(Debug)]
pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    /// Creates and starts one; `None` (skip) when PostgreSQL's binaries
    /// are not installed and CI is unset.
    pub fn start() -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                let mut bins: Vec<PathBuf> = dirs
                    .filter_map(|d| Some(d.ok()?.path().join("bin")))
                    .filter(|b| b.join("pg_ctl").exists())
                    .collect();
                bins.sort();
                bins.pop()
            });
        let Some(bin) = bin else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required when CI=true; run scripts/install-test-deps.sh");
            }
            eprintln!("SKIPPED: no PostgreSQL binaries");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = OwnPostgres { bin, dir, port };
        if is_root() {
            chown_postgres(pg.dir.path());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `postgres://...` of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server on its port, waiting until it answers.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server at once (connections are cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// `tool` of PostgreSQL, run as the `postgres` user when this is root
    /// (PostgreSQL refuses to run as root).
    fn command(&self, tool: &str) -> std::process::Command {
        let program = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_postgres(dir: &Path) {
    let status = std::process::Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postgres {}", dir.display());
}
