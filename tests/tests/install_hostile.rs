//! The installer against a hostile catalog and a hostile registry (fake
//! peers on `127.0.0.1:0`, see `common/hostile.rs`): answers whose
//! version, id, platform, digest or file name are paths or do not match
//! what was asked, for install, upgrade and uninstall; the license key
//! offered to another origin or across a redirect; absurd sizes and
//! endless bodies; servers that stall; a premium worker and hostile
//! digests and sizes through the registry fallback. Every refusal leaves
//! the destination and its neighbours as they were.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hostile::*;
use common::install::WORKER;
use common::publishing::binaries;
use common::{Output, run_expecting, sha256_digest};
use rbee_worker_client::{
    CatalogClient, ClientError, Installer, Outcome, Platform, RegistrySource, Timeouts,
};

/// A scratch root holding the destination and two folders that must never
/// change: `victim` (a path a hostile answer names) and `neighbour`.
struct Scene {
    root: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let root = tempfile::tempdir().unwrap();
        for dir in ["victim", "neighbour"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
            std::fs::write(root.path().join(dir).join("precious"), "keep me").unwrap();
        }
        Scene { root }
    }

    fn dest(&self) -> PathBuf {
        self.root.path().join("dest")
    }

    fn victim(&self) -> PathBuf {
        self.root.path().join("victim")
    }

    /// Everything outside the destination.
    fn outside(&self) -> Vec<(String, Vec<u8>)> {
        contents(self.root.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("dest"))
            .collect()
    }

    fn assert_outside_unchanged(&self, before: &[(String, Vec<u8>)]) {
        assert_eq!(self.outside(), before, "something outside dest changed");
        assert_eq!(
            std::fs::read_to_string(self.victim().join("precious")).unwrap(),
            "keep me"
        );
    }

    /// Nothing installed: no worker folder, no record, no download, no
    /// cached archive.
    fn assert_dest_empty(&self) {
        let names = common::install::names_in(&self.dest());
        assert!(
            names
                .iter()
                .all(|n| [".lock", ".downloads", ".cache", "installed.json"].contains(&n.as_str())),
            "dest holds {names:?}"
        );
        let lib = installer("http://127.0.0.1:9", &self.dest());
        assert_eq!(lib.list().unwrap(), []);
        assert!(common::install::names_in(&self.dest().join(".downloads")).is_empty());
        let cached = common::install::names_in(&self.dest().join(".cache"));
        assert!(
            cached
                .iter()
                .all(|w| common::install::names_in(&self.dest().join(".cache").join(w)).is_empty()),
            "a failed install left an archive in the cache: {cached:?}"
        );
    }
}

fn installer(catalog: &str, dest: &Path) -> Installer {
    installer_with(CatalogClient::new(catalog).unwrap(), dest)
}

fn installer_with(client: CatalogClient, dest: &Path) -> Installer {
    Installer::new(client, dest)
        .unwrap()
        .with_platform(Platform::LinuxX86_64)
}

fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        read_idle: Duration::from_millis(300),
        total: Duration::from_secs(20),
    }
}

async fn rbee_worker(catalog: &str, dest: &Path, args: &[&str], success: bool) -> Output {
    let bins = binaries().await;
    let mut all = vec!["--catalog", catalog, "--dest", dest.to_str().unwrap()];
    all.extend_from_slice(args);
    run_expecting(success, bins.rbee_worker.to_str().unwrap(), &all, &[]).await
}

fn refused_by_catalog(result: Result<Outcome, ClientError>, what: &str) {
    match result {
        Err(ClientError::BadAnswer {
            source_name: "catalog",
            ..
        }) => {}
        other => panic!("{what}: expected the catalog's answer refused, got {other:?}"),
    }
}

/// Download answers that name a path or something not asked for.
fn hostile_edits(victim: &Path) -> Vec<(&'static str, Edit)> {
    let abs = victim.to_str().unwrap().to_owned();
    let abs2 = abs.clone();
    vec![
        (
            "absolute version",
            Box::new(move |a, _, _| a["version"] = abs.clone().into()),
        ),
        (
            "`..` version",
            Box::new(|a, _, _| a["version"] = "../../victim".into()),
        ),
        (
            "`..` version after a real one",
            Box::new(|a, _, _| a["version"] = "0.1.0/../../../victim".into()),
        ),
        (
            "another version",
            Box::new(|a, _, _| a["version"] = "0.9.0".into()),
        ),
        (
            "another worker",
            Box::new(|a, _, _| a["worker_id"] = "other-worker-rbee".into()),
        ),
        (
            "`..` worker",
            Box::new(|a, _, _| a["worker_id"] = "../victim".into()),
        ),
        (
            "absolute worker",
            Box::new(move |a, _, _| a["worker_id"] = abs2.clone().into()),
        ),
        (
            "another platform",
            Box::new(|a, _, _| a["platform"] = "linux-aarch64".into()),
        ),
        (
            "path digest",
            Box::new(|a, _, _| a["checksum"] = "/srv/x".into()),
        ),
        (
            "`..` digest",
            Box::new(|a, _, _| a["checksum"] = format!("sha256:../../{}", "a".repeat(58)).into()),
        ),
        (
            "`..` file name",
            Box::new(|a, _, _| a["filename"] = "../../victim/precious".into()),
        ),
        (
            "file URL",
            Box::new(|a, _, _| a["download_url"] = "file:///etc/passwd".into()),
        ),
    ]
}

// ---- install, upgrade, uninstall against hostile answers ---------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_download_answers_are_refused_and_nothing_outside_dest_changes() {
    let scene = Scene::new();
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let before = scene.outside();
    let lib = installer(catalog.url(), &scene.dest());
    for (what, edit) in hostile_edits(&scene.victim()) {
        catalog.set(|s| s.edit = edit);
        refused_by_catalog(lib.install(WORKER, None, &|_, _| {}).await, what);
        scene.assert_outside_unchanged(&before);
        scene.assert_dest_empty();
    }
    assert!(
        catalog.blob_requests().is_empty(),
        "a refused answer was followed"
    );

    // A `latest` that is a path is refused before anything is asked.
    catalog.set(|s| {
        s.edit = Box::new(|_, _, _| {});
        s.latest = "../../victim".into();
    });
    refused_by_catalog(lib.install(WORKER, None, &|_, _| {}).await, "`..` latest");
    scene.assert_dest_empty();

    // The CLI refuses too, and says why (it used to exit 0).
    let victim = scene.victim();
    let abs = victim.to_str().unwrap().to_owned();
    catalog.set(move |s| {
        s.latest = "0.1.0".into();
        s.edit = Box::new(move |a, _, _| a["version"] = abs.clone().into());
    });
    let out = rbee_worker(catalog.url(), &scene.dest(), &["install", WORKER], false).await;
    assert!(
        out.stderr.contains("refused the answer of catalog"),
        "{}",
        out.stderr
    );
    scene.assert_outside_unchanged(&before);
    scene.assert_dest_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_upgrade_leaves_the_installed_build_alone() {
    let scene = Scene::new();
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let lib = installer(catalog.url(), &scene.dest());
    let first = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    let Outcome::Installed(installed) = first else {
        panic!("a first install installs: {first:?}")
    };
    let before = scene.outside();
    let dest_before = contents(&scene.dest());

    catalog.set(|s| {
        s.versions.push("0.2.0".into());
        s.latest = "0.2.0".into();
    });
    for (what, edit) in hostile_edits(&scene.victim()) {
        catalog.set(|s| s.edit = edit);
        refused_by_catalog(lib.install(WORKER, Some("^0.2"), &|_, _| {}).await, what);
        scene.assert_outside_unchanged(&before);
        assert_eq!(contents(&scene.dest()), dest_before, "{what}: dest changed");
        assert_eq!(lib.list().unwrap(), std::slice::from_ref(&installed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_never_deletes_outside_dest() {
    let scene = Scene::new();
    let dest = scene.dest();
    std::fs::create_dir_all(dest.join(WORKER)).unwrap();
    // What an older installer recorded after a hostile answer.
    let record = |version: &str| {
        serde_json::json!({
            "worker_id": WORKER, "version": version, "platform": PLATFORM,
            "digest": sha256_digest(b"x"), "path": dest.join(WORKER).join(version),
            "installed_at": "2026-01-01T00:00:00Z",
        })
    };
    let victim = scene.victim();
    std::fs::write(
        dest.join("installed.json"),
        serde_json::to_vec(&serde_json::json!({ "workers": [
            record("../../victim"),
            record(victim.to_str().unwrap()),
        ]}))
        .unwrap(),
    )
    .unwrap();
    let before = scene.outside();

    // A version argument that is a path is refused outright.
    let out = rbee_worker(
        "http://127.0.0.1:9",
        &dest,
        &["uninstall", &format!("{WORKER}@../../victim")],
        false,
    )
    .await;
    assert!(out.stderr.contains("not a version"), "{}", out.stderr);
    scene.assert_outside_unchanged(&before);

    // The records go; nothing they name outside dest does.
    rbee_worker("http://127.0.0.1:9", &dest, &["uninstall", WORKER], true).await;
    scene.assert_outside_unchanged(&before);
    let lib = installer("http://127.0.0.1:9", &dest);
    assert!(lib.list().unwrap().is_empty());

    // A worker folder that is a link out of dest is refused, not followed.
    let elsewhere = scene.root.path().join("neighbour/hello");
    std::fs::create_dir_all(elsewhere.join("0.1.0")).unwrap();
    std::fs::write(elsewhere.join("0.1.0/precious"), "keep me").unwrap();
    let _ = std::fs::remove_dir(dest.join(WORKER));
    #[cfg(unix)]
    std::os::unix::fs::symlink(&elsewhere, dest.join(WORKER)).unwrap();
    std::fs::write(
        dest.join("installed.json"),
        serde_json::to_vec(&serde_json::json!({ "workers": [record("0.1.0")] })).unwrap(),
    )
    .unwrap();
    let before = scene.outside();
    match lib.uninstall(WORKER, None) {
        Err(ClientError::Invalid(message)) => {
            assert!(message.contains("outside the destination"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    scene.assert_outside_unchanged(&before);
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("0.1.0/precious")).unwrap(),
        "keep me"
    );
}

// ---- credentials -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_license_key_goes_only_to_the_catalog_origin() {
    const KEY: &str = "Bearer rbee_lic_secret";
    let other = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let keyed = || {
        CatalogClient::new(catalog.url())
            .unwrap()
            .with_license_key(Some("rbee_lic_secret".into()))
    };

    // A download URL on another origin gets no key.
    let elsewhere = other.url().to_owned();
    catalog.set(move |s| {
        s.edit = Box::new(move |a, id, v| {
            a["download_url"] = format!("{elsewhere}/blobs/{id}/{v}").into()
        })
    });
    let dest = tempfile::tempdir().unwrap();
    installer_with(keyed(), dest.path())
        .install(WORKER, None, &|_, _| {})
        .await
        .expect("installs from the other origin");
    let to_other = other.blob_requests();
    assert_eq!(to_other.len(), 1, "{to_other:?}");
    assert_eq!(
        to_other[0].authorization, None,
        "the key went to another origin"
    );
    let to_catalog = catalog.peer.seen();
    assert!(
        to_catalog
            .iter()
            .all(|s| s.authorization.as_deref() == Some(KEY)),
        "the catalog gets the key: {to_catalog:?}"
    );

    // A redirect from the catalog's origin is followed without it.
    let elsewhere = other.url().to_owned();
    catalog.set(move |s| {
        s.edit = Box::new(|_, _, _| {});
        s.blob = BlobMode::RedirectTo(format!("{elsewhere}/blobs/{WORKER}/0.1.0"));
    });
    let dest = tempfile::tempdir().unwrap();
    installer_with(keyed(), dest.path())
        .install(WORKER, None, &|_, _| {})
        .await
        .expect("installs through the redirect");
    assert_eq!(
        catalog.blob_requests()[0].authorization.as_deref(),
        Some(KEY)
    );
    let to_other = other.blob_requests();
    assert_eq!(to_other.len(), 2, "{to_other:?}");
    assert_eq!(
        to_other[1].authorization, None,
        "the key followed a redirect"
    );
}

// ---- sizes -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_are_refused_and_downloads_stop_at_the_announced_size() {
    let scene = Scene::new();
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let lib = installer(catalog.url(), &scene.dest());

    // 1e18 bytes: over the maximum, refused before any byte.
    catalog.set(|s| s.edit = Box::new(|a, _, _| a["size"] = 1_000_000_000_000_000_000u64.into()));
    match lib.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::TooLarge { size, max }) => {
            assert_eq!(size, 1_000_000_000_000_000_000);
            assert_eq!(max, rbee_worker_client::limits::DEFAULT_MAX_DOWNLOAD);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Under a raised maximum, more than the disk holds: refused too.
    let unbounded = installer(catalog.url(), &scene.dest()).with_max_download(u64::MAX);
    match unbounded.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::NoSpace { needed, available }) => assert!(needed > available),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(catalog.blob_requests().is_empty());
    scene.assert_dest_empty();

    // The CLI's maximum is a flag.
    catalog.set(|s| s.edit = Box::new(|_, _, _| {}));
    let out = rbee_worker(
        catalog.url(),
        &scene.dest(),
        &["install", WORKER, "--max-download", "100"],
        false,
    )
    .await;
    assert!(
        out.stderr.contains("more than the 100 bytes accepted"),
        "{}",
        out.stderr
    );

    // A body that never ends: the download stops at the announced size.
    catalog.set(|s| s.blob = BlobMode::Endless);
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        lib.install(WORKER, None, &|_, _| {}),
    )
    .await
    .expect("stops at the announced size")
    .unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    lib.uninstall(WORKER, None).unwrap();

    // An announced size one short of the truth: a checksum mismatch, and
    // no partial file left behind.
    catalog
        .set(|s| s.edit = Box::new(|a, _, _| a["size"] = (a["size"].as_u64().unwrap() - 1).into()));
    match lib.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::Checksum { .. }) => {}
        other => panic!("expected a checksum error, got {other:?}"),
    }
    scene.assert_dest_empty();
}

// ---- timeouts --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_servers_time_out_and_the_download_resumes() {
    let scene = Scene::new();
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let client = CatalogClient::new(catalog.url())
        .unwrap()
        .with_timeouts(short_timeouts())
        .unwrap();
    let lib = installer_with(client, &scene.dest());

    // A version list that stops after its headers.
    catalog.set(|s| s.stall_versions = true);
    let started = Instant::now();
    match lib.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A build that stops after 100 bytes: a timeout, the 100 bytes kept.
    catalog.set(|s| {
        s.stall_versions = false;
        s.blob = BlobMode::StallAfter(100);
    });
    let started = Instant::now();
    match lib.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let partials = common::install::names_in(&scene.dest().join(".downloads"));
    assert_eq!(partials.len(), 1, "{partials:?}");
    let partial = scene
        .dest()
        .join(".downloads")
        .join(partials.first().unwrap());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 100);

    // The next attempt resumes and installs.
    catalog.set(|s| s.blob = BlobMode::Honest);
    let done = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    lib.uninstall(WORKER, None).unwrap();

    // A server that trickles one byte at a time hits the total timeout.
    let client = CatalogClient::new(catalog.url())
        .unwrap()
        .with_timeouts(Timeouts {
            total: Duration::from_secs(1),
            ..short_timeouts()
        })
        .unwrap();
    let lib = installer_with(client, &scene.dest());
    catalog.set(|s| s.blob = BlobMode::Trickle(Duration::from_millis(20)));
    let started = Instant::now();
    match lib.install(WORKER, None, &|_, _| {}).await {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // The CLI's read timeout is a flag, and an environment variable.
    catalog.set(|s| s.blob = BlobMode::StallAfter(0));
    let dest = scene.root.path().join("cli");
    let started = Instant::now();
    let out = rbee_worker(
        catalog.url(),
        &dest,
        &["install", WORKER, "--read-timeout", "1"],
        false,
    )
    .await;
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let bins = binaries().await;
    let args = [
        "--catalog",
        catalog.url(),
        "--dest",
        dest.to_str().unwrap(),
        "install",
        WORKER,
    ];
    let out = run_expecting(
        false,
        bins.rbee_worker.to_str().unwrap(),
        &args,
        &[("RBEE_WORKER_READ_TIMEOUT", Path::new("1"))],
    )
    .await;
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// ---- the registry fallback ---------------------------------------------------

fn source(registry: &FakeRegistry) -> RegistrySource {
    RegistrySource {
        url: registry.peer.url.clone(),
        namespace: "rbee".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_fallback_checks_what_it_installs() {
    let scene = Scene::new();
    let layer = worker_archive(WORKER, "0.1.0");
    let lib = installer("http://127.0.0.1:9", &scene.dest());
    let before = scene.outside();

    // An honest registry installs (the fake is right).
    let honest =
        FakeRegistry::start(WORKER, "0.1.0", &worker_metadata("0.1.0"), &layer, |_| {}).await;
    let done = lib
        .install_from_registry(&source(&honest), WORKER, None)
        .await
        .unwrap();
    assert_eq!(done.installed().digest, sha256_digest(&layer));
    lib.uninstall(WORKER, None).unwrap();

    // A premium worker: refused, with where to buy it; its layer never read.
    let mut premium = worker_metadata("0.1.0");
    premium["distribution"]["requires_license"] = true.into();
    premium["pricing"] = serde_json::json!({
        "amount": 49.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy/x"
    });
    let registry = FakeRegistry::start(WORKER, "0.1.0", &premium, &layer, |_| {}).await;
    match lib
        .install_from_registry(&source(&registry), WORKER, None)
        .await
    {
        Err(ClientError::LicenseRequired { purchase_url }) => {
            assert_eq!(purchase_url.as_deref(), Some("https://rbee.dev/buy/x"))
        }
        other => panic!("expected LicenseRequired, got {other:?}"),
    }
    let layer_digest = sha256_digest(&layer);
    assert!(
        registry
            .blob_requests()
            .iter()
            .all(|s| !s.path.contains(&layer_digest))
    );

    // Metadata of another worker or version.
    let mut other = worker_metadata("0.1.0");
    other["id"] = "other-worker-rbee".into();
    let registry = FakeRegistry::start(WORKER, "0.1.0", &other, &layer, |_| {}).await;
    match lib
        .install_from_registry(&source(&registry), WORKER, None)
        .await
    {
        Err(ClientError::BadAnswer {
            source_name: "registry",
            ..
        }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Layer digests that are paths: refused; the file they name untouched.
    let target = scene.victim().join("precious");
    for digest in [
        target.to_str().unwrap().to_owned(),
        format!("sha256:../../victim/{}", "a".repeat(47)),
        "/srv/x".to_owned(),
    ] {
        let registry =
            FakeRegistry::start(WORKER, "0.1.0", &worker_metadata("0.1.0"), &layer, |m| {
                m["layers"][0]["digest"] = digest.clone().into();
            })
            .await;
        match lib
            .install_from_registry(&source(&registry), WORKER, None)
            .await
        {
            Err(ClientError::BadAnswer {
                source_name: "registry",
                ..
            }) => {}
            other => panic!("{digest}: expected a refusal, got {other:?}"),
        }
        scene.assert_outside_unchanged(&before);
        scene.assert_dest_empty();
    }

    // A layer of 20 GB: refused before a byte is read.
    let registry = FakeRegistry::start(WORKER, "0.1.0", &worker_metadata("0.1.0"), &layer, |m| {
        m["layers"][0]["size"] = 20_000_000_000u64.into();
    })
    .await;
    match lib
        .install_from_registry(&source(&registry), WORKER, None)
        .await
    {
        Err(ClientError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        registry
            .blob_requests()
            .iter()
            .all(|s| !s.path.contains(&layer_digest))
    );
    scene.assert_outside_unchanged(&before);
    scene.assert_dest_empty();
}
