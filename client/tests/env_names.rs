//! The variables of `rbee-worker` are `RBEE_WORKER_<FLAG>`; the names
//! before issue 18 are read for one release with a warning on stderr, and
//! rbee-hive's `WORKER_CATALOG_URL` for good, without one. (The binary, no
//! network: values that do not parse fail before any request.)

use std::process::{Command, Output};

fn worker(env: &[(&str, &str)]) -> Output {
    let dest = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-worker"));
    cmd.args(["install", "hello-worker-rbee-cpu", "--dest"])
        .arg(dest.path())
        .env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn an_old_variable_is_read_with_a_warning() {
    let out = worker(&[("RBEE_MAX_DOWNLOAD", "lots")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: RBEE_MAX_DOWNLOAD is deprecated: use RBEE_WORKER_MAX_DOWNLOAD"),
        "{stderr}"
    );
    // Its value reached --max-download, whose parser refused it.
    assert!(
        stderr.contains("'lots'") && stderr.contains("--max-download"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

#[test]
fn rbee_hives_catalog_variable_is_read_without_a_warning() {
    let out = worker(&[("WORKER_CATALOG_URL", "not a url")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("not a url"), "{stderr}");
    let out = worker(&[
        ("WORKER_CATALOG_URL", "not a url"),
        ("RBEE_WORKER_CATALOG", "neither a url"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("neither a url"), "{stderr}");
}
