//! The catalog's web pages in a real browser (issue 16): Debian's
//! `chromium`, headless, driven by `playwright-core` (npm) through
//! `tests/browser/catalog.cjs`, with `axe-core` run in every page. The
//! script loads the list, filters by platform, searches, opens a worker,
//! reads its versions and install command, opens the PKGBUILD, checks
//! the charts after the downloads made here, the premium badge and price,
//! that a `<script>` in a description never runs, the dark theme, the
//! phone width, and the list without JavaScript. Screenshots (desktop,
//! dark, phone) go to `<target dir>/screenshots/`, which CI keeps.
//!
//! Needs `chromium` and the npm packages that
//! `scripts/install-test-deps.sh` installs (the versions of
//! `tests/browser/package.json`); fails when they are missing and
//! `CI=true`, skips otherwise.

mod common;
mod web_support;

use std::path::{Path, PathBuf};

use common::catalog::WORKER;
use web_support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The versions `tests/browser/package.json` pins.
fn pinned() -> Vec<(String, String)> {
    let package: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("tests/browser/package.json")).unwrap())
            .unwrap();
    package["dependencies"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The `node_modules` folder holding the pinned packages, where
/// `scripts/install-test-deps.sh` puts them.
fn browser_modules() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("RBEE_TEST_TOOLS") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push("/usr/local/lib/rbee-test-tools".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/rbee-test-tools"));
    }
    let pins = pinned();
    candidates
        .into_iter()
        .map(|d| d.join("node_modules"))
        .find(|modules| {
            pins.iter().all(|(name, version)| {
                std::fs::read(modules.join(name).join("package.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|p| p["version"] == version.as_str())
            })
        })
}

/// The browser: `$CHROMIUM`, else Debian's `chromium`.
fn chromium() -> Option<PathBuf> {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| common::find_tool("chromium"))
        .filter(|p| p.is_file())
}

/// `<target dir>/screenshots`: the test binary is `<target>/debug/deps/…`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| root().join("target"), Path::to_path_buf)
        .join("screenshots")
}

#[test]
fn the_install_script_pins_the_versions_of_tests_browser_package_json() {
    let script = std::fs::read_to_string(root().join("scripts/install-test-deps.sh")).unwrap();
    for (name, version) in pinned() {
        assert!(
            script.contains(&format!("{name}@{version}"))
                || script.contains(&format!("{}={version}", npm_variable(&name))),
            "scripts/install-test-deps.sh does not install {name} {version}"
        );
    }
}

/// The shell variable the install script keeps a package's version in.
fn npm_variable(name: &str) -> String {
    format!("{}_VERSION", name.to_uppercase().replace('-', "_"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_chromium_with_no_accessibility_violations() {
    if !common::require_tool("node") {
        return;
    }
    let Some(browser) = chromium() else {
        common::report_missing("`chromium`", in_ci());
        return;
    };
    let Some(modules) = browser_modules() else {
        common::report_missing(
            "the npm packages of tests/browser/package.json (playwright-core, axe-core)",
            in_ci(),
        );
        return;
    };
    let (catalog, _fixtures) = catalog_with_worker_set().await;
    download(&catalog, WORKER, "0.1.0", "linux-x86_64", 2, 0).await;
    download(&catalog, WORKER, "0.1.0", "windows-x86_64", 1, 2).await;
    let shots = screenshot_dir();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(root().join("tests/browser/catalog.cjs"))
            .arg(&catalog.url)
            .arg(&shots)
            .env("NODE_PATH", &modules)
            .env("CHROMIUM", &browser)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run ends within two minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(
        stdout.matches("ok - axe:").count() >= 6,
        "axe ran on every page: {stdout}"
    );
    for name in [
        "list-desktop",
        "worker-desktop",
        "stats-desktop",
        "list-dark",
        "list-phone",
        "worker-phone",
    ] {
        let file = shots.join(format!("{name}.png"));
        let size = std::fs::metadata(&file).map_or(0, |m| m.len());
        assert!(size > 1000, "no screenshot {}", file.display());
    }
    catalog.stop().await;
}
