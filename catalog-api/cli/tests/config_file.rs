//! The real `rbee-catalog` with a configuration file: `config check`
//! prints the settings `serve` would run with (a flag wins over its
//! variable, the variable over the file, the file over the default),
//! masks secrets and exits 2 naming a bad key or value; switches take
//! `1/0/yes/no`; the file reaches the other subcommands; and `serve` runs
//! with it. Each runs the binary in an empty environment (but `PATH`), so
//! the test's own variables change nothing.

use std::path::Path;
use std::process::{Command, Output};

fn catalog(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `config check` with `file` as the configuration file.
fn check(file: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, file).unwrap();
    let out = catalog(
        &["--config", path.to_str().unwrap(), "config", "check"],
        env,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_prints_each_setting_with_its_source_and_masks_secrets() {
    let (code, out, err) = check(
        "listen = \"127.0.0.1:9999\"\n\
         data_dir = \"/srv/rbee\"\n\
         webhook-secret = \"hunter2\"\n\
         no-analytics = \"yes\"\n\
         cors-origins = [\"https://a.example\", \"https://b.example\"]\n\
         max-connections = 2048\n",
        &[
            ("RBEE_CATALOG_LISTEN", "127.0.0.1:7777"),
            (
                "RBEE_CATALOG_DATABASE_URL",
                "postgres://rbee:s3cret@db.internal/rbee",
            ),
            ("RBEE_CATALOG_NO_CATALOG_VIEW", "1"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        // The environment wins over the file.
        "listen = \"127.0.0.1:7777\"  # environment: RBEE_CATALOG_LISTEN",
        "data-dir = \"/srv/rbee\"  # config file",
        "webhook-secret = \"***\"  # config file",
        "database-url = \"postgres://rbee:***@db.internal/rbee\"  # environment: RBEE_CATALOG_DATABASE_URL",
        "no-analytics = true  # config file",
        "no-catalog-view = true  # environment: RBEE_CATALOG_NO_CATALOG_VIEW",
        "cors-origins = [\"https://a.example\", \"https://b.example\"]  # config file",
        // The limits shared with the registry, under the catalog's names.
        "max-connections = 2048  # config file",
        "header-timeout = 10  # default",
        "index-ttl = 300  # default",
        "# registry-url = (not set)",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    assert!(!out.contains("hunter2") && !out.contains("s3cret"), "{out}");
    assert!(!out.contains("--config"), "the file is no setting:\n{out}");
}

#[test]
fn a_bad_file_stops_every_command_with_exit_2_naming_the_key() {
    for (file, says) in [
        ("listn = \"127.0.0.1:1\"\n", "unknown key `listn`"),
        (
            "max-connections = \"many\"\n",
            "`max-connections`: `many`: invalid digit",
        ),
        ("token-ttl = 600\n", "`token-ttl`: `600`"),
        ("[serve]\nlisten = \"127.0.0.1:1\"\n", "`serve`: a table"),
        ("listen = \n", "not valid TOML"),
    ] {
        let (code, _, err) = check(file, &[]);
        assert_eq!(code, Some(2), "{file}: {err}");
        assert!(
            err.contains("catalog.toml") && err.contains(says),
            "{file}: {err}"
        );
    }
    // `serve` stops before it binds or touches the data dir.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listn = \"127.0.0.1:0\"\n").unwrap();
    let data = dir.path().join("data");
    let out = catalog(
        &[
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!data.exists());
    // A missing file is named too.
    let out = catalog(
        &["--config", "/nonexistent/catalog.toml", "config", "check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/catalog.toml"));
}

#[test]
fn switches_take_1_0_true_false_yes_no_from_the_environment_and_the_file() {
    for (word, value) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("0", false),
        ("no", false),
        ("false", false),
    ] {
        let (code, out, err) = check("", &[("RBEE_CATALOG_NO_ANONYMOUS_PULL", word)]);
        assert_eq!(code, Some(0), "{word}: {err}");
        let line =
            format!("no-anonymous-pull = {value}  # environment: RBEE_CATALOG_NO_ANONYMOUS_PULL");
        assert!(
            out.lines().any(|l| l == line),
            "{word}: no `{line}` in\n{out}"
        );
        let (code, out, err) = check(&format!("dev-open-loopback = \"{word}\"\n"), &[]);
        assert_eq!(code, Some(0), "{word}: {err}");
        let line = format!("dev-open-loopback = {value}  # config file");
        assert!(
            out.lines().any(|l| l == line),
            "{word}: no `{line}` in\n{out}"
        );
    }
    let (code, _, err) = check("", &[("RBEE_CATALOG_NO_ANONYMOUS_PULL", "maybe")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("maybe"), "{err}");
}

#[test]
fn config_check_refuses_settings_that_do_not_go_together() {
    // Every interface, and no public URL: download URLs would be unusable.
    let (code, _, err) = check("listen = \"0.0.0.0:8787\"\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--public-url"), "{err}");
    let (code, out, err) = check(
        "listen = \"0.0.0.0:8787\"\npublic-url = \"https://catalog.example.com\"\n",
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("public-url = \"https://catalog.example.com\""),
        "{out}"
    );
    // A user name for the external registry needs its password, which
    // may come from another layer than the name.
    let (code, _, err) = check("registry-username = \"bot\"\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--registry-password"), "{err}");
    let (code, out, err) = check(
        "registry-username = \"bot\"\n",
        &[("RBEE_CATALOG_REGISTRY_PASSWORD", "tok")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("registry-password = \"***\""), "{out}");
}

/// The embedded registry's storage flags are the registry's
/// (`StorageArgs`), under the catalog's variable names; the AWS
/// credentials show only as set or not; and what does not go together
/// exits 2: presigned redirects without a bucket, a bucket for an
/// external registry.
#[test]
fn the_storage_flags_have_catalog_variables_and_are_checked() {
    let (code, out, err) = check(
        "s3-path-style = \"yes\"\n",
        &[
            ("RBEE_CATALOG_STORAGE", "s3://rbee-registry/prod"),
            ("RBEE_CATALOG_S3_REGION", "auto"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "storage = \"s3://rbee-registry/prod\"  # environment: RBEE_CATALOG_STORAGE",
        "s3-region = \"auto\"  # environment: RBEE_CATALOG_S3_REGION",
        "s3-path-style = true  # config file",
        "s3-part-size-mib = 8  # default",
        "# AWS_SECRET_ACCESS_KEY is set (value hidden)",
        "# AWS_ACCESS_KEY_ID is not set",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    assert!(!out.contains("very-secret"), "{out}");
    let (code, _, err) = check("presigned-redirects = true\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--presigned-redirects needs --storage"),
        "{err}"
    );
    let (code, _, err) = check(
        "storage = \"s3://b/p\"\nregistry-url = \"https://ghcr.io\"\n",
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--registry-url"), "{err}");
    let (code, _, err) = check("storage = \"/var/lib/rbee\"\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("s3://BUCKET"), "{err}");
}

#[test]
fn the_file_reaches_the_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, format!("data-dir = {:?}\n", data.to_str().unwrap())).unwrap();
    let out = catalog(
        &[
            "--config",
            path.to_str().unwrap(),
            "license",
            "list",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        Path::new(&data).join("catalog.db").exists(),
        "the file's data-dir was not used"
    );
}

/// `serve` takes its settings from the file: the address, the data dir,
/// the public URL.
#[tokio::test]
async fn serve_runs_with_the_files_settings() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("catalog.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\npublic-url = \"https://catalog.example.com\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RBEE_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let listening = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if line.contains("catalog listening") {
                return Some(line);
            }
        }
        None
    })
    .await;
    let line = match listening {
        Ok(Some(line)) => line,
        _ => panic!("not listening within 60 s:\n{log}"),
    };
    assert!(line.contains("url=http://127.0.0.1:"), "{line}");
    assert!(
        line.contains("public_url=https://catalog.example.com"),
        "{line}"
    );
    assert!(
        data.join("catalog.db").exists(),
        "the file's data-dir is unused"
    );
}
