//! rbee's worker set in `examples/workers/` (issue 15): every worker's
//! release files pass `rbee-pusher validate` (metadata against the
//! schema, PKGBUILD syntax, the committed .SRCINFO up to date, the build
//! present and executable), and validate catches each of those going
//! wrong, and a version already published when given `--registry`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::publishing::*;

const WORKERS: [&str; 5] = [
    "llm-worker-rbee-cpu",
    "llm-worker-rbee-cuda",
    "llm-worker-rbee-metal",
    "llm-worker-rbee-premium",
    "sd-worker-rbee-cpu",
];

fn workers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples/workers")
}

fn stand_in(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("build");
    std::fs::write(&path, "#!/bin/sh\necho stand-in\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn first_platform(worker_dir: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(worker_dir.join("metadata.json")).unwrap()).unwrap();
    m["platforms"][0].as_str().unwrap().to_owned()
}

async fn validate(worker_dir: &Path, build: &Path, extra: &[&str]) -> PusherRun {
    let release = path_arg(&worker_dir.join("release.toml"));
    let platform = format!("{}={}", first_platform(worker_dir), build.display());
    let mut args = vec!["validate", "--release", &release, "--platform", &platform];
    args.extend_from_slice(extra);
    pusher(&args, &[]).await
}

/// A copy of `examples/workers/<id>` to break.
fn copy_of(id: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(workers_dir().join(id)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_of_the_set_validates() {
    let scratch = tempfile::tempdir().unwrap();
    let build = stand_in(scratch.path(), 0o755);
    let mut found: Vec<String> = std::fs::read_dir(workers_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, WORKERS);
    for id in WORKERS {
        let dir = workers_dir().join(id);
        validate(&dir, &build, &[]).await.expect_code(0);
        for file in ["metadata.json", "LICENSE", "README.md"] {
            assert!(dir.join(file).is_file(), "{id}/{file}");
        }
        let premium = id.ends_with("-premium");
        // The premium worker is binary only: no PKGBUILD.
        assert_eq!(dir.join("PKGBUILD").is_file(), !premium, "{id}");
        assert_eq!(dir.join(".SRCINFO").is_file(), !premium, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_catches_a_stale_srcinfo_and_a_build_that_is_not_executable() {
    let copy = copy_of("llm-worker-rbee-cpu");
    let scratch = tempfile::tempdir().unwrap();
    let build = stand_in(scratch.path(), 0o755);
    let pkgbuild = copy.path().join("PKGBUILD");
    let text = std::fs::read_to_string(&pkgbuild).unwrap();
    std::fs::write(&pkgbuild, text.replace("pkgrel=1", "pkgrel=2")).unwrap();
    let stale = validate(copy.path(), &build, &[]).await.expect_code(3);
    assert!(stale.stderr.contains(".SRCINFO"), "{}", stale.stderr);
    // --write-srcinfo regenerates it; then it validates.
    validate(copy.path(), &build, &["--write-srcinfo"])
        .await
        .expect_code(0);
    let srcinfo = std::fs::read_to_string(copy.path().join(".SRCINFO")).unwrap();
    assert!(srcinfo.contains("pkgrel = 2"), "{srcinfo}");

    let not_executable = stand_in(scratch.path(), 0o644);
    let refused = validate(copy.path(), &not_executable, &[])
        .await
        .expect_code(3);
    assert!(
        refused.stderr.contains("not executable"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_with_a_registry_refuses_a_published_version() {
    let registry = common::TestRegistry::start().await;
    let fixture = Fixture::new("0.1.0");
    let mut args = vec![
        "validate".to_owned(),
        "--registry".to_owned(),
        registry.url.clone(),
    ];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pusher(&args, &[]).await.expect_code(0);
    publish_with_library(&registry.url, &fixture, false)
        .await
        .expect("published");
    let refused = pusher(&args, &[]).await.expect_code(3);
    assert!(
        refused.stderr.contains("already published"),
        "{}",
        refused.stderr
    );
}
