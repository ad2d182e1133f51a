//! The variables of `rbee-pusher` are `RBEE_PUSHER_<FLAG>`; the names
//! before issue 18 are read for one release with a warning on stderr, and
//! the new name wins when both are set. (The binary, no network: a
//! registry URL that does not parse fails before any request.)

use std::process::{Command, Output};

fn pusher(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-pusher"));
    cmd.args(["release", "hello-worker-rbee-cpu", "0.1.0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn an_old_variable_is_read_with_a_warning() {
    let out = pusher(&[("RBEE_REGISTRY", "not a url")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: RBEE_REGISTRY is deprecated: use RBEE_PUSHER_REGISTRY"),
        "{stderr}"
    );
    // Its value reached --registry.
    assert!(stderr.contains("bad --registry `not a url`"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}

#[test]
fn the_new_variable_wins_over_the_old_one() {
    let out = pusher(&[
        ("RBEE_REGISTRY", "old url"),
        ("RBEE_PUSHER_REGISTRY", "new url"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: RBEE_REGISTRY is ignored: RBEE_PUSHER_REGISTRY is set"),
        "{stderr}"
    );
    assert!(stderr.contains("bad --registry `new url`"), "{stderr}");
    assert!(!stderr.contains("deprecated"), "{stderr}");
}

#[test]
fn the_new_variable_alone_gives_no_warning() {
    let out = pusher(&[("RBEE_PUSHER_REGISTRY", "new url")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("bad --registry `new url`"), "{stderr}");
}
