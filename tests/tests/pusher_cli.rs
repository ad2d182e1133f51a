//! `rbee-pusher`'s command line end to end, on our registry AND CNCF
//! Distribution 2.8: invalid releases refused before anything is pushed
//! (exit 3), `--dry-run` and `--json`, and Basic auth (exit 6 without the
//! right credentials; flags, environment, docker `config.json`).
//!
//! Every test here runs the real `rbee-pusher` binary: the command line is
//! the point (exit codes, `--json`, messages). Each body below runs once
//! per registry: see [`on_both_registries`].

mod common;

use std::collections::BTreeSet;

use base64::Engine as _;
use common::publishing::*;
use serde_json::{Value, json};

const VERSION: &str = "0.1.0";

on_both_registries!(
    invalid_releases_push_nothing,
    dry_run_pushes_nothing_and_json_is_the_summary,
);

// ---- 1. invalid releases ----------------------------------------------------

/// Runs `rbee-pusher push` expecting exit code 3 (invalid release);
/// returns stderr.
async fn refused_as_invalid(reg: &UnderTest, args: &[String]) -> String {
    let mut all = vec!["push", "--registry", reg.url()];
    all.extend(args.iter().map(String::as_str));
    let run = pusher(&all, &[]).await.expect_code(3);
    assert_eq!(run.stdout, "");
    run.stderr
}

async fn invalid_releases_push_nothing(reg: UnderTest) {
    let mut events = reg.subscribe();

    // Metadata with two problems: both reported, with their JSON paths.
    let fixture = Fixture::new(VERSION);
    fixture.edit_metadata(|m| {
        m["version"] = "1.x".into();
        m["id"] = "Hello_Worker".into();
    });
    let err = refused_as_invalid(&reg, &fixture.args()).await;
    let shown = fixture.metadata.display().to_string();
    for needle in [format!("{shown}: $.version"), format!("{shown}: $.id")] {
        assert!(err.contains(&needle), "{needle}: {err}");
    }

    // An unknown platform: the message lists the valid names.
    let fixture = Fixture::new(VERSION);
    let mut args = fixture.args();
    args.push("--platform".to_owned());
    args.push(format!(
        "linux-riscv64={}",
        fixture.build("linux-x86_64").display()
    ));
    let err = refused_as_invalid(&reg, &args).await;
    assert!(err.contains("linux-riscv64"), "{err}");
    for valid in [
        "linux-x86_64",
        "linux-aarch64",
        "macos-x86_64",
        "macos-aarch64",
        "windows-x86_64",
        "windows-aarch64",
    ] {
        assert!(err.contains(valid), "lists {valid}: {err}");
    }

    // A PKGBUILD with a syntax error: the file and the line are named.
    let fixture = Fixture::new(VERSION);
    let pkgbuild = std::fs::read_to_string(&fixture.pkgbuild).unwrap();
    let pkgrel_line = 1 + pkgbuild
        .lines()
        .position(|l| l == "pkgrel=1")
        .expect("the example PKGBUILD sets pkgrel=1 on a line of its own");
    std::fs::write(
        &fixture.pkgbuild,
        pkgbuild.replace("\npkgrel=1\n", "\npkgrel=1)\n"),
    )
    .unwrap();
    let err = refused_as_invalid(&reg, &fixture.args()).await;
    let shown = fixture.pkgbuild.display().to_string();
    assert!(
        err.contains(&shown)
            && err.contains(&format!("line {pkgrel_line}"))
            && err.contains("syntax error"),
        "{err}"
    );

    // A PKGBUILD whose pkgver is not the metadata version.
    let fixture = Fixture::new(VERSION);
    let pkgbuild = std::fs::read_to_string(&fixture.pkgbuild).unwrap();
    let pkgver_line = 1 + pkgbuild
        .lines()
        .position(|l| l == "pkgver=0.1.0")
        .expect("the example PKGBUILD sets pkgver=0.1.0 on a line of its own");
    std::fs::write(
        &fixture.pkgbuild,
        pkgbuild.replace("\npkgver=0.1.0\n", "\npkgver=0.0.9\n"),
    )
    .unwrap();
    let err = refused_as_invalid(&reg, &fixture.args()).await;
    let needle = format!(
        "{}:{pkgver_line}: pkgver is `0.0.9` but the metadata version is `0.1.0`",
        fixture.pkgbuild.display()
    );
    assert!(err.contains(&needle), "{err}");

    // `validate` agrees: the good release passes and prints its .SRCINFO.
    let good = Fixture::new(VERSION);
    let mut args = vec!["validate"];
    let good_args = good.args();
    args.extend(good_args.iter().map(String::as_str));
    let valid = pusher(&args, &[]).await.expect_code(0);
    assert!(
        valid
            .stdout
            .starts_with("pkgbase = hello-worker-rbee-cpu\n"),
        "{}",
        valid.stdout
    );
    let mut args = vec!["validate"];
    let bad_args = fixture.args();
    args.extend(bad_args.iter().map(String::as_str));
    pusher(&args, &[]).await.expect_code(3);

    assert_eq!(reg.repositories().await, Vec::<String>::new());
    assert_eq!(writes(&mut events), [], "nothing was pushed");
    reg.stop().await;
}

// ---- 2. --dry-run and --json --------------------------------------------------

async fn dry_run_pushes_nothing_and_json_is_the_summary(reg: UnderTest) {
    let mut events = reg.subscribe();
    let fixture = Fixture::new(VERSION);
    let mut args = vec!["push", "--registry", reg.url()];
    let release_args = fixture.args();
    args.extend(release_args.iter().map(String::as_str));
    args.push("--json");
    // 2026-01-01T00:00:00Z, the index's `created`.
    let epoch = [("SOURCE_DATE_EPOCH", "1767225600")];

    let mut dry_args = args.clone();
    dry_args.push("--dry-run");
    let dry = pusher(&dry_args, &epoch).await.expect_code(0).json();
    let keys: BTreeSet<&str> = dry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "status",
            "reference",
            "repository",
            "version",
            "index_digest",
            "latest",
            "platforms",
            "pkgbuild_digest",
            "uploaded_bytes",
        ]),
        "the fields of PublishSummary"
    );
    assert_eq!(dry["status"], "dry-run");
    assert_eq!(dry["reference"], format!("{}/{REPO}:{VERSION}", reg.host()));
    assert_eq!(dry["repository"], REPO);
    assert_eq!(dry["version"], VERSION);
    assert_eq!(dry["uploaded_bytes"], 0);
    let is_digest = |v: &Value| {
        v.as_str()
            .and_then(|s| s.strip_prefix("sha256:"))
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    assert!(is_digest(&dry["index_digest"]), "{dry}");
    let platforms = dry["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), PLATFORMS.len());
    for p in platforms {
        let keys: BTreeSet<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "platform",
                "manifest_digest",
                "layer_digest",
                "size",
                "filename",
                "media_type"
            ])
        );
        assert!(
            is_digest(&p["manifest_digest"]) && is_digest(&p["layer_digest"]),
            "{p}"
        );
        assert!(p["size"].as_u64().unwrap() > 0);
        assert_eq!(
            p["filename"],
            format!(
                "hello-worker-rbee-cpu-{VERSION}-{}.tar.gz",
                p["platform"].as_str().unwrap()
            )
        );
    }
    assert_eq!(reg.repositories().await, Vec::<String>::new());
    assert_eq!(writes(&mut events), [], "a dry run writes nothing");

    // The real push publishes exactly what the dry run announced.
    let real = pusher(&args, &epoch).await.expect_code(0).json();
    assert_eq!(real["status"], "published");
    assert_eq!(real["index_digest"], dry["index_digest"]);
    assert_eq!(real["platforms"], dry["platforms"]);
    assert!(is_digest(&real["pkgbuild_digest"]), "{real}");
    let total: u64 = platforms.iter().map(|p| p["size"].as_u64().unwrap()).sum();
    assert!(real["uploaded_bytes"].as_u64().unwrap() > total, "{real}");
    let index = reg.expect_manifest(REPO, VERSION).await;
    assert_eq!(index.digest, real["index_digest"].as_str().unwrap());
    assert_eq!(
        index.json["annotations"]["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );
    if reg.has_referrers_api() {
        // The event subscription works, so the empty checks above mean
        // something.
        assert!(!writes(&mut events).is_empty());
    }

    // Without --json, stdout stays empty: progress and the result line go
    // to stderr.
    let quiet = pusher(&args[..args.len() - 1], &epoch).await.expect_code(0);
    assert_eq!(quiet.stdout, "");
    assert!(quiet.stderr.contains("unchanged"), "{}", quiet.stderr);
    reg.stop().await;
}

// ---- 3. Basic auth (Distribution with htpasswd) ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_on_distribution() {
    const USER: &str = "publisher";
    const PASSWORD: &str = "correct horse";
    let Some(registry) =
        common::distribution::Distribution::start_with_htpasswd(USER, PASSWORD).await
    else {
        return;
    };
    let reg = UnderTest::wrap(registry);
    let fixture = Fixture::new(VERSION);
    let mut args = vec!["push", "--registry", reg.url()];
    let release_args = fixture.args();
    args.extend(release_args.iter().map(String::as_str));

    let anonymous = pusher(&args, &[]).await.expect_code(6);
    assert!(
        anonymous.stderr.contains("needs credentials"),
        "{}",
        anonymous.stderr
    );
    let mut wrong = args.clone();
    wrong.extend(["--username", USER, "--password", "wrong"]);
    let refused = pusher(&wrong, &[]).await.expect_code(6);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert_eq!(reg.repositories().await, Vec::<String>::new());

    // Flags.
    let mut flags = args.clone();
    flags.extend(["--username", USER, "--password", PASSWORD, "--json"]);
    let published = pusher(&flags, &[]).await.expect_code(0).json();
    assert_eq!(published["status"], "published");
    assert_eq!(
        reg.expect_manifest(REPO, VERSION).await.digest,
        published["index_digest"].as_str().unwrap()
    );

    // The environment.
    let mut json_args = args.clone();
    json_args.push("--json");
    let from_env = pusher(
        &json_args,
        &[
            ("RBEE_PUSHER_USERNAME", USER),
            ("RBEE_PUSHER_PASSWORD", PASSWORD),
        ],
    )
    .await
    .expect_code(0)
    .json();
    assert_eq!(from_env["status"], "unchanged");

    // A docker config, as `docker login` writes it.
    let docker = reg.dir("docker");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        json!({ "auths": { reg.host(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    let from_config = pusher(&json_args, &[("DOCKER_CONFIG", docker.to_str().unwrap())])
        .await
        .expect_code(0)
        .json();
    assert_eq!(from_config["status"], "unchanged");
    reg.stop().await;
}
