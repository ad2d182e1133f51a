//! The real `rbee-registry` with a configuration file: `config check`
//! prints what `serve` would run with (the server limit flags under the
//! registry's own variable names, the AWS credentials only as set or not)
//! and exits 2 for settings that do not go together, whichever layer each
//! came from; `gc` reads the file's data dir. In an empty environment, so
//! the test's own variables change nothing.

use std::process::{Command, Output};

fn registry(args: &[&str], file: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    std::fs::write(&path, file).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-registry"));
    cmd.arg("--config").arg(&path).args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_check_names_each_source_and_hides_credentials() {
    let out = registry(
        &["config", "check"],
        "listen = \"127.0.0.1:5555\"\nbody-memory-mib = 128\ndisable_delete = true\n",
        &[
            ("RBEE_REGISTRY_MAX_CONNECTIONS", "64"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for line in [
        "listen = \"127.0.0.1:5555\"  # config file",
        "body-memory-mib = 128  # config file",
        "disable-delete = true  # config file",
        "max-connections = 64  # environment: RBEE_REGISTRY_MAX_CONNECTIONS",
        "upload-ttl = 86400  # default",
        "# AWS_SECRET_ACCESS_KEY is set (value hidden)",
        "# AWS_ACCESS_KEY_ID is not set",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no `{line}` in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("very-secret"), "{stdout}");
}

#[test]
fn settings_that_do_not_go_together_exit_2_from_any_layer() {
    // The realm from the file, its keys missing; then the keys from the
    // environment, the realm from the file (clap's `requires` would not
    // see the file's value).
    let out = registry(
        &["config", "check"],
        "token-realm = \"https://catalog.example/token\"\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--token-realm needs --token-jwks"),
        "{stderr}"
    );
    let out = registry(
        &["config", "check"],
        "token-realm = \"https://catalog.example/token\"\n",
        &[("RBEE_REGISTRY_TOKEN_JWKS", "/nonexistent/jwks.json")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/jwks.json"), "{stderr}");
    let out = registry(&["config", "check"], "presigned-redirects = \"yes\"\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--presigned-redirects needs --storage"),
        "{stderr}"
    );
}

#[test]
fn gc_reads_the_data_dir_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry-data");
    let out = registry(
        &["gc", "--dry-run"],
        &format!("data-dir = {:?}\n", data.to_str().unwrap()),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(data.is_dir(), "gc did not open the file's data dir");
}
