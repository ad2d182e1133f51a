//! Every `rbee-pusher` subcommand that talks to a registry takes the same
//! connection budgets, flags and environment alike (`--connect-timeout`,
//! `--read-timeout`, `--request-timeout`, `--attempts`): against a
//! registry that accepts connections and never answers, `release`, `yank`,
//! `unyank`, `validate --registry` and `push --stage` all give up after
//! the one-second timeouts and the one attempt they were given (exit 5),
//! within a minute instead of the defaults' ten.

mod common;

use std::time::{Duration, Instant};

use common::publishing::{Fixture, pusher};
use tokio::io::AsyncReadExt;

/// A "registry" on a free local port that reads requests and never
/// answers; it lives as long as the test's runtime.
async fn stalling_registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    url
}

const BUDGETS: [&str; 8] = [
    "--connect-timeout",
    "1",
    "--read-timeout",
    "1",
    "--request-timeout",
    "1",
    "--attempts",
    "1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registry_subcommand_honours_the_connection_budgets() {
    let url = stalling_registry().await;
    let fixture = Fixture::new("0.1.0");
    let release = fixture.args();
    let release: Vec<&str> = release.iter().map(String::as_str).collect();
    let id = "hello-worker-rbee-cpu";
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["release", "--registry", &url, id, "0.1.0"],
        vec!["yank", "--registry", &url, id, "0.1.0", "--reason", "r"],
        vec!["unyank", "--registry", &url, id, "0.1.0"],
    ];
    let mut validate = vec!["validate", "--registry", &url];
    validate.extend(&release);
    commands.push(validate);
    let mut stage = vec!["push", "--stage", "--registry", &url];
    stage.extend(&release);
    commands.push(stage);
    for mut args in commands {
        args.extend(BUDGETS);
        let started = Instant::now();
        let run = pusher(&args, &[]).await;
        let took = started.elapsed();
        assert_eq!(run.code, 5, "{}: exit code\n{}", args.join(" "), run.stderr);
        // One attempt of one second, plus start-up on a busy machine; the
        // defaults (120 s a request, five attempts) would take ten minutes.
        assert!(
            took < Duration::from_secs(60),
            "{} took {took:?}",
            args.join(" ")
        );
    }

    // The environment twins work the same.
    let started = Instant::now();
    let run = pusher(
        &["release", "--registry", &url, id, "0.1.0"],
        &[
            ("RBEE_PUSHER_REQUEST_TIMEOUT", "1"),
            ("RBEE_PUSHER_READ_TIMEOUT", "1"),
            ("RBEE_PUSHER_ATTEMPTS", "1"),
        ],
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
}
