//! `rbee-worker`'s exit codes, one test per code, as `docs/client.md` and
//! `--help` list them; the `--registry` fallback when the catalog answers
//! 503 (not only when it is unreachable), with a worker missing from the
//! registry reported as missing; and errors that say what is wrong: a plain
//! registry given as `--catalog`, a refused connection, TLS against plain
//! HTTP. A stand-in catalog answers what each case needs.

mod common;

use std::process::Stdio;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::TestRegistry;
use common::publishing::binaries;

/// A stand-in catalog answering every request with `status` and `body`.
async fn fake_catalog(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let status = StatusCode::from_u16(status).unwrap();
    let app = axum::Router::new().fallback(move || async move {
        (status, [("content-type", "application/json")], body).into_response()
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A port nothing listens on (bound, then closed).
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Runs `rbee-worker args` with a fresh `--dest`; returns the exit code
/// and stderr.
async fn rbee_worker(args: &[&str]) -> (i32, String) {
    let dest = tempfile::tempdir().unwrap();
    rbee_worker_in(dest.path(), args).await
}

async fn rbee_worker_in(dest: &std::path::Path, args: &[&str]) -> (i32, String) {
    let bins = binaries().await;
    let out = tokio::process::Command::new(&bins.rbee_worker)
        .args(args)
        .arg("--dest")
        .arg(dest)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("WORKER_CATALOG_URL")
        .env_remove("RBEE_WORKER_CATALOG")
        .env_remove("RBEE_WORKER_LICENSE")
        .env_remove("RBEE_LICENSE_KEY")
        .env_remove("RBEE_WORKER_REGISTRY")
        .env_remove("RBEE_REGISTRY_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("rbee-worker {}: {:?}\n{stderr}", args.join(" "), out.status);
    (out.status.code().unwrap_or(-1), stderr)
}

#[tokio::test]
async fn exit_0_when_done() {
    let (code, _) = rbee_worker(&["list"]).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn exit_1_on_local_trouble() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // The install folder is a file: nothing can be listed in it.
    let (code, stderr) = rbee_worker_in(&file, &["list"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("file error"), "{stderr}");
}

#[tokio::test]
async fn exit_2_on_a_bad_command_line() {
    let (code, stderr) = rbee_worker(&["install"]).await;
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = rbee_worker(&["install", "w", "--catalog", "localhost:8787"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("http://"), "{stderr}");
}

#[tokio::test]
async fn exit_3_when_not_found() {
    let catalog = fake_catalog(404, r#"{"error":"Not found","message":"no worker `nope`"}"#).await;
    let (code, stderr) = rbee_worker(&["install", "nope", "--catalog", &catalog]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no worker `nope`"), "{stderr}");
}

#[tokio::test]
async fn exit_4_when_a_license_is_required() {
    let catalog = fake_catalog(
        403,
        r#"{"error":"License required","message":"a license key is required"}"#,
    )
    .await;
    let (code, stderr) = rbee_worker(&["install", "premium", "--catalog", &catalog]).await;
    assert_eq!(code, 4, "{stderr}");
}

#[tokio::test]
async fn exit_5_when_nothing_listens_with_the_cause() {
    let (code, stderr) = rbee_worker(&["install", "w", "--catalog", &closed_url()]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("nothing listens"), "{stderr}");
}

#[tokio::test]
async fn tls_to_plain_http_suggests_http() {
    let catalog = fake_catalog(200, "{}").await;
    let https = catalog.replace("http://", "https://");
    let (code, stderr) = rbee_worker(&["install", "w", "--catalog", &https]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("try an http:// URL"), "{stderr}");
}

#[tokio::test]
async fn a_plain_registry_as_catalog_is_named() {
    let reg = TestRegistry::start().await;
    let (code, stderr) = rbee_worker(&["install", "w", "--catalog", &reg.url]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is it an rbee catalog"), "{stderr}");
    assert!(!stderr.trim_end().ends_with(": "), "{stderr}");
}

#[tokio::test]
async fn a_catalog_answering_503_falls_back_and_a_missing_worker_is_missing() {
    let catalog = fake_catalog(
        503,
        r#"{"error":"Upstream unavailable","message":"the registry is down"}"#,
    )
    .await;
    let reg = TestRegistry::start().await;
    let (code, stderr) = rbee_worker(&[
        "install",
        "nope",
        "--catalog",
        &catalog,
        "--registry",
        &reg.url,
    ])
    .await;
    assert!(stderr.contains("installing from the registry"), "{stderr}");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(!stderr.contains("network error"), "{stderr}");
}

#[tokio::test]
async fn help_shows_the_default_dest_and_version_names_the_binary() {
    let bins = binaries().await;
    let run = |arg: &'static str| {
        tokio::process::Command::new(&bins.rbee_worker)
            .arg(arg)
            .env("XDG_DATA_HOME", "/xdg-data")
            .env_remove("RBEE_WORKER_DEST")
            .env_remove("RBEE_WORKERS_DIR")
            .output()
    };
    let help = String::from_utf8_lossy(&run("--help").await.unwrap().stdout).into_owned();
    assert!(help.contains("[default: /xdg-data/rbee/workers]"), "{help}");
    assert!(help.contains("Exit codes"), "{help}");
    let version = String::from_utf8_lossy(&run("--version").await.unwrap().stdout).into_owned();
    assert!(version.starts_with("rbee-worker "), "{version}");
}
