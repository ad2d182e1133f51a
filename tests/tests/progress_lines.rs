//! Progress off a terminal (issue 18): with stderr a pipe, as in CI logs,
//! the real `rbee-pusher` and `rbee-worker` print a line when a transfer
//! starts and then periodic lines with bytes and rate while it moves,
//! instead of going silent. The interval is shortened
//! (`RBEE_PROGRESS_INTERVAL=0.01`) and the build is 24 MiB of noise, so
//! every step lasts many intervals.

mod common;

use common::install::{CatalogServer, release_with_host_build};
use common::publishing::{binaries, host_platform, pusher};
use common::{Output, pseudo_random};

use common::catalog::WORKER;

const INTERVAL: &str = "0.01";

/// Lines of `text` that start with `prefix` and carry a rate.
fn progress_lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.ends_with("/s"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pusher_prints_progress_lines_while_packaging_and_uploading() {
    let server = CatalogServer::start().await;
    let platform = host_platform().unwrap();
    let fixture = release_with_host_build("0.1.0", &pseudo_random(3, 24 << 20));
    let mut args = vec!["push".to_owned(), "--registry".into(), server.url.clone()];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("RBEE_PROGRESS_INTERVAL", INTERVAL),
        ("RBEE_PUSHER_COMPRESSION", "zstd"),
    ];

    let first = pusher(&args, &env).await.expect_code(0);
    let prefix = format!("  packaging and uploading {platform}: ");
    assert!(
        first
            .stderr
            .contains(&format!("  packaging and uploading {platform}\n")),
        "a line when the upload starts:\n{}",
        first.stderr
    );
    let lines = progress_lines(&first.stderr, &prefix);
    assert!(
        !lines.is_empty(),
        "periodic upload lines:\n{}",
        first.stderr
    );
    assert!(
        lines.iter().all(|l| l.contains("B, ")),
        "bytes, then the rate: {lines:?}"
    );

    // Again: the version exists, so the builds are packaged to compare.
    let again = pusher(&args, &env).await.expect_code(0);
    let lines = progress_lines(&again.stderr, &format!("  packaging {platform}: "));
    assert!(
        !lines.is_empty(),
        "periodic packaging lines:\n{}",
        again.stderr
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_worker_prints_progress_lines_while_downloading_and_unpacking() {
    let server = CatalogServer::start().await;
    server
        .publish(&release_with_host_build(
            "0.1.0",
            &pseudo_random(5, 24 << 20),
        ))
        .await;
    let bins = binaries().await;
    let dest = server.path("workers");
    let out: Output = common::run_expecting(
        true,
        bins.rbee_worker.to_str().unwrap(),
        &[
            "--catalog",
            &server.url,
            "--dest",
            dest.to_str().unwrap(),
            "install",
            &format!("{WORKER}@0.1.0"),
        ],
        &[("RBEE_PROGRESS_INTERVAL", std::path::Path::new(INTERVAL))],
    )
    .await;
    let err = &out.stderr;
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("downloading {WORKER} (")) && l.ends_with(" bytes)")),
        "a line when the download starts:\n{err}"
    );
    let downloading = progress_lines(err, &format!("downloading {WORKER}: "));
    assert!(!downloading.is_empty(), "periodic download lines:\n{err}");
    assert!(
        downloading
            .iter()
            .all(|l| l.contains(" of ") && l.contains("%)")),
        "bytes of the total, and the share: {downloading:?}"
    );
    let unpacking = progress_lines(err, &format!("unpacking {WORKER}: "));
    assert!(!unpacking.is_empty(), "periodic unpack lines:\n{err}");
    server.stop().await;
}
