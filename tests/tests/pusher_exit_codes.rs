//! `rbee-pusher`'s exit codes, one test per code, as `docs/pusher.md` and
//! `--help` list them, and its connection errors: the registry is checked
//! (`GET /v2/`) before anything is packaged, a refused connection is said
//! at once with its cause (not retried four times as "registry busy"), a
//! TLS handshake with a plain-HTTP server suggests `http://`, and a URL
//! without a scheme is said to become https.
//!
//! Codes 4 (conflict) and 6 (credentials) have their own tests:
//! `pusher_publish.rs` (`expect_code(4)`) and `pusher_cli.rs` (Basic
//! auth, `expect_code(6)`).

mod common;

use common::TestRegistry;
use common::publishing::*;

const VERSION: &str = "0.1.0";

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn exit_0_when_published() {
    let reg = TestRegistry::start().await;
    let fixture = Fixture::new(VERSION);
    let mut args = vec!["push".to_owned(), "--registry".into(), reg.url.clone()];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pusher(&args, &[]).await.expect_code(0);
    // The registry was checked before the builds were packaged.
    let checked = run.stderr.find("checking").expect("a checking line");
    let packaged = run.stderr.find("packaging").expect("a packaging line");
    assert!(checked < packaged, "{}", run.stderr);
}

#[tokio::test]
async fn exit_1_when_a_local_file_cannot_be_written() {
    // Packaging streams into the upload and writes no file; what the
    // pusher writes locally is the `.SRCINFO` of `validate
    // --write-srcinfo`. A directory in its place cannot be replaced (even
    // by root).
    let fixture = Fixture::new(VERSION);
    let srcinfo = fixture.pkgbuild.with_file_name(".SRCINFO");
    std::fs::create_dir_all(srcinfo.join("in-the-way")).unwrap();
    let mut args = vec!["validate".to_owned(), "--write-srcinfo".into()];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pusher(&args, &[]).await.expect_code(1);
    assert!(run.stderr.contains("file error"), "{}", run.stderr);
}

#[tokio::test]
async fn exit_2_on_a_bad_command_line() {
    let run = pusher(&["push", "--no-such-flag"], &[])
        .await
        .expect_code(2);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
}

#[tokio::test]
async fn exit_3_when_a_release_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("metadata.json");
    let run = pusher(&["validate", "--metadata", missing.to_str().unwrap()], &[])
        .await
        .expect_code(3);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn exit_5_at_once_when_nothing_listens_and_before_packaging() {
    let fixture = Fixture::new(VERSION);
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut args = vec!["push".to_owned(), "--registry".into(), url];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pusher(&args, &[("RBEE_LOG", "warn")]).await.expect_code(5);
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing listens"), "{}", run.stderr);
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(!run.stderr.contains("packaging"), "{}", run.stderr);
}

#[tokio::test]
async fn tls_to_a_plain_http_registry_suggests_http() {
    let reg = TestRegistry::start().await;
    let fixture = Fixture::new(VERSION);
    let url = format!("https://{}", reg.host);
    let mut args = vec!["push".to_owned(), "--registry".into(), url];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pusher(&args, &[("RBEE_LOG", "warn")]).await.expect_code(5);
    assert!(
        run.stderr.contains("try --registry http://"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
}

#[tokio::test]
async fn a_registry_url_without_a_scheme_is_said_to_become_https() {
    let fixture = Fixture::new(VERSION);
    let host = format!("127.0.0.1:{}", closed_port());
    let mut args = vec!["push".to_owned(), "--registry".into(), host.clone()];
    args.extend(fixture.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pusher(&args, &[]).await.expect_code(5);
    assert!(
        run.stderr
            .contains(&format!("has no scheme; using https://{host}")),
        "{}",
        run.stderr
    );
}
