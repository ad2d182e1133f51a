//! `rbee-worker install` and yanked versions (issue 15): an exactly named
//! yanked version installs (cargo's semantics) with a warning that gives
//! the yank reason; a range and "latest" never pick a yanked version.

mod common;

use common::install::CatalogServer;
use common::publishing::{Fixture, binaries, pusher};

use common::catalog::WORKER;

const REASON: &str = "crashes on start with AVX-512";

/// `rbee-worker --catalog URL --dest DEST install SPEC`, expecting success.
async fn install(server: &CatalogServer, spec: &str) -> common::Output {
    let bins = binaries().await;
    let dest = server.path("workers");
    common::run_expecting(
        true,
        bins.rbee_worker.to_str().unwrap(),
        &[
            "--catalog",
            &server.url,
            "--dest",
            dest.to_str().unwrap(),
            "install",
            spec,
        ],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_yanked_version_installs_with_a_warning_and_ranges_skip_it() {
    let server = CatalogServer::start().await;
    server.publish(&Fixture::new("1.0.0")).await;
    server.publish(&Fixture::new("1.1.0")).await;
    pusher(
        &[
            "yank",
            "--registry",
            &server.url,
            WORKER,
            "1.1.0",
            "--reason",
            REASON,
        ],
        &[],
    )
    .await
    .expect_code(0);
    server.running.state.catalog.invalidate_all();

    // A range, and no version at all: the highest version not yanked.
    for spec in [
        format!("{WORKER}@^1"),
        format!("{WORKER}@*"),
        WORKER.to_owned(),
    ] {
        let out = install(&server, &spec).await;
        assert!(
            out.text().contains(&format!("{WORKER} 1.0.0")),
            "{spec}: {}",
            out.text()
        );
        assert!(!out.stderr.contains("yanked"), "{spec}: {}", out.stderr);
    }

    // Named exactly: installed, with the reason.
    for spec in [format!("{WORKER}@1.1.0"), format!("{WORKER}@=1.1.0")] {
        let out = install(&server, &spec).await;
        assert!(
            out.text().contains(&format!("{WORKER} 1.1.0")),
            "{spec}: {}",
            out.text()
        );
        assert!(
            out.stderr
                .contains(&format!("warning: {WORKER} 1.1.0 is yanked: {REASON}")),
            "{spec}: {}",
            out.stderr
        );
    }
    server.stop().await;
}
