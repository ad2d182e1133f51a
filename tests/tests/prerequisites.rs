//! The test harness itself: a missing client skips a test locally and fails
//! it in CI, and `scripts/install-test-deps.sh` installs nothing on a
//! machine that already has everything.

mod common;

use std::path::Path;
use std::time::Instant;

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

/// Installers the script would call if it thought something was missing.
/// Stand-ins that record their call come first on PATH, so a run that
/// installs anything is caught (and installs nothing).
const INSTALLERS: [&str; 5] = ["apt-get", "sudo", "cargo", "npm", "pip"];

#[tokio::test]
async fn install_script_is_a_no_op_when_everything_is_present() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-test-deps.sh");
    // nginx lives in /usr/sbin, which is not on every PATH; the script
    // looks there too.
    let nginx = find_tool("nginx").is_some() || Path::new("/usr/sbin/nginx").is_file();
    let all_present = [
        "skopeo",
        "docker-registry",
        "htpasswd",
        "wrk",
        "chromium",
        "minisign",
    ]
    .iter()
    .all(|t| find_tool(t).is_some())
        && nginx;
    // Only when nothing is missing: otherwise the script would install.
    if !all_present || !require_python_module("oras") {
        if !all_present {
            report_missing(
                "one of skopeo, docker-registry, htpasswd, nginx, wrk, chromium",
                std::env::var("CI").is_ok_and(|v| v == "true"),
            );
        }
        return;
    }
    let stubs = tempfile::tempdir().unwrap();
    let calls = stubs.path().join("calls");
    for installer in INSTALLERS {
        let stub = stubs.path().join(installer);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho {installer} \"$@\" >> '{}'\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = std::env::join_paths(std::iter::once(stubs.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let started = Instant::now();
    let out = run(
        "sh",
        &[script.to_str().unwrap()],
        &[("PATH", Path::new(&path))],
    )
    .await;
    // Printed, not asserted: a wall-clock bound fails on a busy machine.
    eprintln!("the no-op run took {:?}", started.elapsed());
    assert!(
        out.text().contains("everything is present") && !out.text().contains("installing"),
        "{}{}",
        out.text(),
        out.stderr
    );
    assert!(
        !calls.exists(),
        "the no-op run called an installer: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
}
