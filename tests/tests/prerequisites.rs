//! The test harness itself: a missing client skips a test locally and fails
//! it in CI, and `scripts/install-test-deps.sh` is a quick no-op on a
//! machine that already has everything.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_missing_tool_skips_locally_and_fails_in_ci() {
    assert!(
        !report_missing("`no-such-tool`", false),
        "outside CI the test is told to return early"
    );
    let in_ci = std::panic::catch_unwind(|| report_missing("`no-such-tool`", true));
    let message = in_ci.expect_err("in CI a missing tool fails the test");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("no-such-tool") && message.contains("install-test-deps.sh"),
        "{message}"
    );
    assert!(find_tool("no-such-tool-for-rbee").is_none());
    assert!(find_tool("sh").is_some(), "PATH lookup finds /bin/sh");
}

#[tokio::test]
async fn install_script_is_a_quick_no_op_when_everything_is_present() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-test-deps.sh");
    // nginx lives in /usr/sbin, which is not on every PATH; the script
    // looks there too.
    let nginx = find_tool("nginx").is_some() || Path::new("/usr/sbin/nginx").is_file();
    let all_present = ["skopeo", "docker-registry", "htpasswd", "wrk"]
        .iter()
        .all(|t| find_tool(t).is_some())
        && nginx;
    // Only when nothing is missing: otherwise the script would install.
    if !all_present || !require_python_module("oras") {
        if !all_present {
            report_missing(
                "one of skopeo, docker-registry, htpasswd, nginx, wrk",
                std::env::var("CI").is_ok_and(|v| v == "true"),
            );
        }
        return;
    }
    let started = Instant::now();
    let out = run("sh", &[script.to_str().unwrap()], &[]).await;
    let took = started.elapsed();
    assert!(
        out.text().contains("everything is present"),
        "{}{}",
        out.text(),
        out.stderr
    );
    assert!(took < Duration::from_secs(1), "the no-op run took {took:?}");
}
