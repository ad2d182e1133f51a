//! `/openapi.json` says exactly what the server does: schemathesis (PyPI;
//! `scripts/install-test-deps.sh` installs the pinned version) generates
//! requests from the document, valid and invalid, and runs all its checks
//! on the answers of a running catalog holding the full example set
//! (a CPU, a CUDA, a Metal and a premium worker). Zero failures.
//!
//! Fails when schemathesis is missing and `CI=true`; skips otherwise.
//! The run is bounded (examples per operation, a fixed seed, a time
//! budget) so that it takes well under a minute on two cores.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::catalog::TestCatalog;
use common::example_set::publish_example_set;

/// Test cases per operation and phase: about 700 requests in all, 20 s
/// on two cores (measured: 19.75 s).
const MAX_EXAMPLES: &str = "30";
/// Longer than the run may ever take: a hung run fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_server_under_schemathesis() {
    // Run as a module: a `pip install --user` puts the `schemathesis`
    // script where PATH may not look.
    if !common::require_python_module("schemathesis.cli") {
        return;
    }
    // One credential for every route: a license key for the premium
    // namespace, which is also the webhook's secret. So `/token` and
    // premium downloads answer what a licensed caller gets, and the
    // webhook's 200 is reachable.
    let database = tempfile::tempdir().unwrap();
    let db_path = database.path().join("catalog.db");
    let store = rbee_store::Store::open_sqlite(&db_path).await.unwrap();
    let (_, key) = store
        .create_license(
            "test",
            rbee_store::NewLicense {
                owner: "schemathesis".into(),
                grants: vec![rbee_store::Grant::Namespace("rbee-premium".into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .unwrap();
    let secret = key.expose().to_owned();
    let catalog = TestCatalog::start(|c| {
        c.webhook_secret = Some(secret.clone());
        c.database_url = Some(format!("sqlite://{}", db_path.display()));
    })
    .await;
    let _fixtures = publish_example_set(&catalog).await;
    let reports = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args([
        "-m",
        "schemathesis.cli",
        "run",
        &format!("{}/openapi.json", catalog.url),
        "--url",
        &catalog.url,
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261130",
        // Implies no example database: every run starts from scratch.
        "--generation-deterministic",
        "--workers",
        "2",
        "--request-timeout",
        "10",
        // The license key (and webhook secret), sent on every request.
        "--header",
        &format!("Authorization: Bearer {secret}"),
        "--no-color",
        "--report-dir",
    ])
    .arg(reports.path())
    // The run must not depend on the user's configuration files.
    .current_dir(reports.path())
    .env("NO_PROXY", "127.0.0.1")
    .env("no_proxy", "127.0.0.1")
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_LIMIT:?}"))
        .expect("schemathesis runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found failures ({:?}, {took:?}):\n{stdout}\n{stderr}",
        out.status
    );
    // A run that tested nothing, or not everything, would also exit 0.
    let documented = catalog.get("/openapi.json").await.ok_json()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum::<usize>();
    // Schemathesis leaves out the route it loaded the document from.
    let expected = documented - 1;
    assert!(
        stdout.contains(&format!("Selected: {expected}/{expected}\n"))
            && stdout.contains(&format!("Tested: {expected}\n")),
        "schemathesis did not test all {expected} operations:\n{stdout}"
    );
    assert!(!stdout.contains("FAILURES"), "{stdout}");
    assert!(!stdout.contains("WARNINGS"), "{stdout}");
    eprintln!("schemathesis: all checks passed in {took:?}\n{stdout}");
    catalog.stop().await;
}
