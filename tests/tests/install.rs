//! `rbee-worker-client` end to end: the example worker published with the
//! pusher to the catalog server (registry embedded), installed with the
//! library and with the `rbee-worker` CLI, run, listed and uninstalled;
//! version resolution and its typed errors; a blob corrupted in storage; a
//! download cut in the middle and resumed with `Range`; hostile archives
//! served as a release's layer; the registry fallback when the catalog is
//! down.
//!
//! The installed binary is the REAL `hello-worker-rbee` for the host
//! platform (stand-ins for the others), so "it installed" means "it runs".

mod common;

use std::collections::BTreeSet;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::install::*;
use common::publishing::{Fixture, PLATFORMS, binaries, host_platform};
use common::{Output, pseudo_random, run_expecting, sha256_digest};
use rbee_registry::{Action, Target};
use rbee_worker_client::{
    CatalogClient, ClientError, Installed, Installer, Outcome, Platform, RegistrySource,
};

/// Records every progress report of one install.
#[derive(Debug, Default)]
struct ProgressLog(Mutex<Vec<(u64, u64)>>);

impl ProgressLog {
    fn reports(&self) -> Vec<(u64, u64)> {
        self.0.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// An installer for this machine's platform.
fn installer(catalog_url: &str, dest: &Path) -> Installer {
    Installer::new(CatalogClient::new(catalog_url).expect("catalog URL"), dest)
        .expect("the tests run on a platform rbee builds for")
}

/// Installs `worker` at `requirement`, recording progress in `log`.
async fn install(
    installer: &Installer,
    requirement: Option<&str>,
    log: &ProgressLog,
) -> Result<Outcome, ClientError> {
    let progress = |done: u64, total: u64| log.0.lock().unwrap().push((done, total));
    installer.install(WORKER, requirement, &progress).await
}

/// A path argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Runs `rbee-worker --catalog <catalog> --dest <dest> <args>`, which
/// must succeed or fail as `success` says.
async fn rbee_worker(
    binary: &Path,
    catalog: &str,
    dest: &Path,
    args: &[&str],
    success: bool,
) -> Output {
    let mut all = vec!["--catalog", catalog, "--dest", arg(dest)];
    all.extend_from_slice(args);
    run_expecting(success, arg(binary), &all, &[]).await
}

/// The blob pulls the embedded registry reported since `events` subscribed.
fn blob_pulls(events: &mut tokio::sync::broadcast::Receiver<rbee_registry::Event>) -> Vec<String> {
    let mut pulls = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.action == Action::Pull && e.target == Target::Blob {
            pulls.push(e.digest);
        }
    }
    pulls
}

/// Nothing of `worker` in `dest`: no worker folder, no record, no staging
/// folder; only the (empty) download folder and the lock file may be there.
fn assert_nothing_installed(dest: &Path) {
    let names = names_in(dest);
    assert!(
        names.iter().all(|n| n == ".downloads" || n == ".lock"),
        "{} holds {names:?}",
        dest.display()
    );
    assert!(
        names_in(&dest.join(".downloads")).is_empty(),
        "downloads left: {:?}",
        names_in(&dest.join(".downloads"))
    );
}

// ---- publish, install, run, list, uninstall -------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_worker_installs_runs_lists_and_uninstalls() {
    let bins = binaries().await;
    let catalog = CatalogServer::start().await;
    let hello = std::fs::read(&bins.hello_worker).unwrap();
    let summary = catalog
        .publish(&release_with_host_build("0.1.0", &hello))
        .await;
    let build = host_build(&summary);
    let host = host_platform().unwrap();

    // The library.
    let dest = catalog.path("library");
    let lib = installer(&catalog.url, &dest);
    let log = ProgressLog::default();
    let Outcome::Installed(installed) = install(&lib, Some("^0.1"), &log).await.unwrap() else {
        panic!("a first install installs");
    };
    assert_eq!(installed.worker_id, WORKER);
    assert_eq!(installed.version, "0.1.0");
    assert_eq!(installed.platform, host);
    assert_eq!(installed.digest, build.layer_digest);
    assert_eq!(installed.path, dest.join(WORKER).join("0.1.0"));
    assert_eq!(
        log.reports().last(),
        Some(&(build.size, build.size)),
        "progress ends at the published size"
    );
    assert_eq!(
        names_in(&installed.path),
        BTreeSet::from(
            ["LICENSE", "README.md", "hello-worker-rbee", "metadata.json"].map(String::from)
        )
    );
    assert_eq!(
        std::fs::read(installed.path.join("hello-worker-rbee")).unwrap(),
        hello,
        "the installed binary is the published one"
    );
    let printed = run_installed(&installed.path.join("hello-worker-rbee")).await;
    assert_eq!(printed.trim(), HELLO);
    assert_eq!(lib.list().unwrap(), std::slice::from_ref(&installed));
    assert_eq!(
        names_in(&dest),
        BTreeSet::from(
            [".cache", ".downloads", ".lock", "installed.json", WORKER].map(String::from)
        ),
        "no staging folder left"
    );
    assert!(
        names_in(&dest.join(".downloads")).is_empty(),
        "the archive leaves the downloads once unpacked"
    );
    assert_eq!(
        names_in(&dest.join(".cache").join(WORKER)),
        BTreeSet::from([installed.digest.replace(':', "-")]),
        "the archive is kept as the worker's last, for the next upgrade's delta"
    );

    // Again: the same digest is installed, so nothing is downloaded.
    let mut events = catalog
        .running
        .registry
        .as_ref()
        .expect("the registry is embedded")
        .events()
        .subscribe();
    log.clear();
    let again = install(&lib, Some("^0.1"), &log).await.unwrap();
    assert_eq!(again, Outcome::AlreadyInstalled(installed.clone()));
    assert!(log.reports().is_empty(), "no download: {:?}", log.reports());
    assert_eq!(blob_pulls(&mut events), Vec::<String>::new());

    // Uninstall removes the folder and the record.
    assert_eq!(
        lib.uninstall(WORKER, None).unwrap(),
        std::slice::from_ref(&installed)
    );
    assert!(!dest.join(WORKER).exists());
    assert_eq!(lib.list().unwrap(), Vec::<Installed>::new());
    assert!(matches!(
        lib.uninstall(WORKER, None),
        Err(ClientError::NotFound(_))
    ));

    // The CLI, into another folder.
    let dest = catalog.path("cli");
    let cli = |args: &'static [&'static str]| {
        rbee_worker(&bins.rbee_worker, &catalog.url, &dest, args, true)
    };
    let out = cli(&["install", "hello-worker-rbee-cpu@^0.1"]).await.text();
    let target = dest.join(WORKER).join("0.1.0");
    assert_eq!(
        out.trim(),
        format!(
            "installed {WORKER} 0.1.0 ({}) in {}",
            build.layer_digest,
            target.display()
        )
    );
    let printed = run_installed(&target.join("hello-worker-rbee")).await;
    assert_eq!(printed.trim(), HELLO);
    let out = cli(&["list"]).await.text();
    assert_eq!(
        out.trim(),
        format!(
            "{WORKER}\t0.1.0\t{host}\t{}\t{}",
            build.layer_digest,
            target.display()
        )
    );
    let out = cli(&["install", "hello-worker-rbee-cpu@^0.1"]).await.text();
    assert_eq!(
        out.trim(),
        format!(
            "{WORKER} 0.1.0 is already installed in {}",
            target.display()
        )
    );
    let out = cli(&["uninstall", WORKER]).await.text();
    assert_eq!(out.trim(), format!("removed {WORKER} 0.1.0"));
    assert!(!dest.join(WORKER).exists());
    assert_eq!(cli(&["list"]).await.text(), "");

    // Errors reach the command line as a message and a failing exit.
    let out = rbee_worker(
        &bins.rbee_worker,
        &catalog.url,
        &dest,
        &["install", "no-such-worker"],
        false,
    )
    .await;
    assert!(out.stderr.contains("not found"), "{}", out.stderr);

    catalog.stop().await;
}

// ---- version resolution and typed errors ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_resolve_and_errors_tell_what_is_missing() {
    let catalog = CatalogServer::start().await;
    let first = catalog.publish(&Fixture::new("0.1.0")).await;
    let second = catalog.publish(&Fixture::new("0.2.0")).await;
    let dest = catalog.path("dest");
    let lib = installer(&catalog.url, &dest);
    let log = ProgressLog::default();

    let old = install(&lib, Some("^0.1"), &log).await.unwrap();
    assert_eq!(old.installed().version, "0.1.0");
    assert_eq!(old.installed().digest, host_build(&first).layer_digest);
    let new = install(&lib, None, &log).await.unwrap();
    assert!(matches!(new, Outcome::Installed(_)), "{new:?}");
    assert_eq!(
        new.installed().version,
        "0.2.0",
        "no requirement: the latest"
    );
    assert_eq!(new.installed().digest, host_build(&second).layer_digest);
    let listed: Vec<(String, String)> = lib
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (i.version, i.digest))
        .collect();
    assert_eq!(
        listed,
        [
            ("0.1.0".to_owned(), old.installed().digest.clone()),
            ("0.2.0".to_owned(), new.installed().digest.clone()),
        ]
    );

    match install(&lib, Some("^9"), &log).await {
        Err(ClientError::NoMatchingVersion {
            worker,
            requirement,
            published,
        }) => {
            assert_eq!(worker, WORKER);
            assert_eq!(requirement, "^9");
            assert_eq!(
                published.into_iter().collect::<BTreeSet<_>>(),
                BTreeSet::from(["0.1.0".to_owned(), "0.2.0".to_owned()])
            );
        }
        other => panic!("expected NoMatchingVersion, got {other:?}"),
    }

    let progress = |_: u64, _: u64| {};
    match lib.install("no-such-worker", None, &progress).await {
        Err(ClientError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    let windows_arm = installer(&catalog.url, &dest).with_platform(Platform::WindowsAarch64);
    match windows_arm.install(WORKER, Some("^0.1"), &progress).await {
        Err(ClientError::NoBuildForPlatform {
            platform,
            available,
        }) => {
            assert_eq!(platform, "windows-aarch64");
            assert_eq!(
                available.into_iter().collect::<BTreeSet<_>>(),
                PLATFORMS.iter().map(|p| p.0.to_owned()).collect()
            );
        }
        other => panic!("expected NoBuildForPlatform, got {other:?}"),
    }
    assert_eq!(
        lib.list().unwrap().len(),
        2,
        "failed installs change nothing"
    );

    catalog.stop().await;
}

// ---- a blob corrupted in storage --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_fails_the_checksum_and_changes_nothing() {
    let catalog = CatalogServer::start().await;
    let summary = catalog.publish(&Fixture::new("0.1.0")).await;
    let digest = &host_build(&summary).layer_digest;
    let stored = catalog.blob_file(digest);
    let mut bytes = std::fs::read(&stored)
        .unwrap_or_else(|e| panic!("the registry stores {digest} at {}: {e}", stored.display()));
    // Flip a few bytes in the middle, in place: same length, so only the
    // checksum can tell.
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xa5;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .unwrap();
    file.seek(SeekFrom::Start(middle as u64)).unwrap();
    file.write_all(&bytes[middle..middle + 16]).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let corrupted = sha256_digest(&bytes);

    let dest = catalog.path("dest");
    let lib = installer(&catalog.url, &dest);
    match install(&lib, Some("^0.1"), &ProgressLog::default()).await {
        Err(ClientError::Checksum { expected, actual }) => {
            assert_eq!(&expected, digest);
            assert_eq!(actual, corrupted, "the registry served the stored bytes");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert_nothing_installed(&dest);

    // The registry fallback verifies too.
    let source = RegistrySource {
        url: catalog.url.clone(),
        namespace: "rbee".into(),
    };
    match lib.install_from_registry(&source, WORKER, None).await {
        Err(ClientError::Checksum { expected, .. }) => assert_eq!(&expected, digest),
        other => panic!("expected a checksum error from the registry path, got {other:?}"),
    }
    assert_nothing_installed(&dest);

    catalog.stop().await;
}

// ---- a download cut in the middle -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_where_it_stopped() {
    const CUT: u64 = 3 << 20;
    let mut proxy = CuttingProxy::bind().await;
    let proxy_url = proxy.url.clone();
    // Download URLs point at the proxy; the catalog API is asked directly.
    let catalog = CatalogServer::start_with(|config| config.public_url = Some(proxy_url)).await;
    proxy.start(catalog.running.addr, CUT);
    // 8 MiB that gzip cannot shrink, so the archive is far larger than CUT.
    let big = pseudo_random(42, 8 << 20);
    let summary = catalog
        .publish(&release_with_host_build("0.1.0", &big))
        .await;
    let build = host_build(&summary);
    assert!(build.size > 2 * CUT, "the archive is {} bytes", build.size);

    let dest = catalog.path("dest");
    let partial = dest
        .join(".downloads")
        .join(format!("{}.partial", build.layer_digest.replace(':', "-")));
    match install(
        &installer(&catalog.url, &dest),
        Some("^0.1"),
        &ProgressLog::default(),
    )
    .await
    {
        Err(ClientError::Network(message)) => eprintln!("first attempt: {message}"),
        other => panic!("expected a network error, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&partial).map(|m| m.len()).ok(),
        Some(CUT),
        "the bytes received are kept in {}",
        partial.display()
    );
    assert_eq!(
        names_in(&dest),
        BTreeSet::from([".downloads", ".lock"].map(String::from)),
        "no worker folder, no record"
    );

    // A new installer, as after a restart of rbee-hive.
    let log = ProgressLog::default();
    let outcome = install(&installer(&catalog.url, &dest), Some("^0.1"), &log)
        .await
        .expect("the second attempt completes the download");
    let installed = outcome.installed();
    assert_eq!(installed.digest, build.layer_digest);
    assert_eq!(
        std::fs::read(installed.path.join("hello-worker-rbee")).unwrap(),
        big
    );
    assert!(!partial.exists());
    assert!(names_in(&dest.join(".downloads")).is_empty());

    let connections = proxy.log();
    assert_eq!(connections.len(), 2, "{connections:#?}");
    let blob_path = format!("/v2/rbee/{WORKER}/blobs/{}", build.layer_digest);
    assert!(
        connections
            .iter()
            .all(|c| c.request_head.starts_with(&format!("GET {blob_path} "))),
        "both attempts GET the layer: {connections:#?}"
    );
    assert_eq!(connections[0].request_header("range"), None);
    assert_eq!(connections[0].body_bytes, CUT);
    assert_eq!(
        connections[1].request_header("range"),
        Some(format!("bytes={CUT}-")),
        "the second attempt asks for the rest"
    );
    assert!(
        connections[1].response_head.starts_with("HTTP/1.1 206"),
        "{connections:#?}"
    );
    assert_eq!(
        connections[1].body_bytes,
        build.size - CUT,
        "only the remainder is fetched"
    );
    let reports = log.reports();
    assert!(
        reports.first().is_some_and(|(done, _)| *done > CUT),
        "progress starts from the resumed position: {:?}",
        reports.first()
    );
    assert_eq!(reports.last(), Some(&(build.size, build.size)));

    catalog.stop().await;
}

// ---- hostile archives -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_archives_are_refused_and_nothing_is_written() {
    const LIMIT: u64 = 16 << 10;
    let catalog = CatalogServer::start().await;
    let root = catalog.scratch.path().to_owned();
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let absolute = outside.join("absolute");
    let absolute = absolute.to_str().unwrap();
    let outside_str = outside.to_str().unwrap();
    let license = || Entry::File("LICENSE", b"GPL-3.0-or-later\n".to_vec());

    let releases = [
        // A good archive, so a refusal below is the archive's doing and
        // not a release published wrongly.
        (
            "0.9.0",
            tar_gz(&[
                license(),
                Entry::File("hello-worker-rbee", b"#!/bin/sh\necho hello\n".to_vec()),
            ]),
        ),
        (
            "1.0.0",
            tar_gz(&[license(), Entry::File("../x", b"climbed out\n".to_vec())]),
        ),
        (
            "2.0.0",
            tar_gz(&[license(), Entry::File(absolute, b"absolute\n".to_vec())]),
        ),
        (
            "3.0.0",
            tar_gz(&[
                license(),
                Entry::Symlink("lib", outside_str),
                Entry::File("lib/x", b"through the link\n".to_vec()),
            ]),
        ),
        (
            "4.0.0",
            tar_gz(&[
                license(),
                Entry::File("hello-worker-rbee", vec![0; 4 * LIMIT as usize]),
            ]),
        ),
    ];
    publish_by_hand(&catalog.url, &releases).await;
    catalog.running.state.catalog.invalidate_all();

    let control = root.join("control");
    let good = installer(&catalog.url, &control)
        .with_max_unpacked(LIMIT)
        .install(WORKER, Some("=0.9.0"), &|_, _| {})
        .await
        .expect("the hand-made good release installs");
    assert_eq!(
        std::fs::read(good.installed().path.join("hello-worker-rbee")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );

    let dest = root.join("workers/dest");
    let before = tree(&root);
    let lib = installer(&catalog.url, &dest).with_max_unpacked(LIMIT);
    for (version, says) in [
        ("1.0.0", "`..`"),
        ("2.0.0", "absolute"),
        ("3.0.0", "Symlink"),
        ("4.0.0", "more than"),
    ] {
        let requirement = format!("={version}");
        match lib.install(WORKER, Some(&requirement), &|_, _| {}).await {
            Err(ClientError::UnsafeArchive(message)) => {
                assert!(message.contains(says), "{version}: {message}")
            }
            other => panic!("{version}: expected UnsafeArchive, got {other:?}"),
        }
    }

    // Nothing new anywhere but the (empty) download folder.
    let after = tree(&root);
    let new: Vec<&PathBuf> = after.difference(&before).collect();
    let allowed = BTreeSet::from(
        [
            "workers",
            "workers/dest",
            "workers/dest/.downloads",
            "workers/dest/.lock",
        ]
        .map(PathBuf::from),
    );
    assert!(new.iter().all(|p| allowed.contains(*p)), "written: {new:?}");
    assert_nothing_installed(&dest);
    assert!(names_in(&outside).is_empty());
    assert!(!root.join("workers/x").exists() && !dest.join("x").exists());

    catalog.stop().await;
}

// ---- the registry fallback ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_fallback_installs_when_the_catalog_is_down() {
    let bins = binaries().await;
    let catalog = CatalogServer::start().await;
    let hello = std::fs::read(&bins.hello_worker).unwrap();
    let summary = catalog
        .publish(&release_with_host_build("0.1.0", &hello))
        .await;
    let build = host_build(&summary);
    // A port nothing listens on: the catalog is down.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };

    let dest = catalog.path("dest");
    let lib = installer(&down, &dest);
    match install(&lib, Some("^0.1"), &ProgressLog::default()).await {
        Err(ClientError::Network(_)) => {}
        other => panic!("expected a network error, got {other:?}"),
    }
    // The embedded registry lives at the catalog's address.
    let source = RegistrySource {
        url: catalog.url.clone(),
        namespace: "rbee".into(),
    };
    let outcome = lib
        .install_from_registry(&source, WORKER, Some("^0.1"))
        .await
        .expect("installs from the registry");
    let Outcome::Installed(installed) = &outcome else {
        panic!("a first install installs: {outcome:?}");
    };
    assert_eq!(installed.version, "0.1.0");
    assert_eq!(installed.digest, build.layer_digest, "the same build");
    assert_eq!(installed.platform, host_platform().unwrap());
    let printed = run_installed(&installed.path.join("hello-worker-rbee")).await;
    assert_eq!(printed.trim(), HELLO);
    assert_eq!(lib.list().unwrap(), std::slice::from_ref(installed));
    assert!(names_in(&dest.join(".downloads")).is_empty());

    // Idempotent there too: the same digest is not fetched again.
    let mut events = catalog
        .running
        .registry
        .as_ref()
        .unwrap()
        .events()
        .subscribe();
    let again = lib
        .install_from_registry(&source, WORKER, Some("^0.1"))
        .await
        .unwrap();
    assert_eq!(again, Outcome::AlreadyInstalled(installed.clone()));
    assert_eq!(blob_pulls(&mut events), Vec::<String>::new());

    // The CLI falls back when told where the registry is.
    let out = rbee_worker(
        &bins.rbee_worker,
        &down,
        &catalog.path("cli"),
        &[
            "install",
            "hello-worker-rbee-cpu@^0.1",
            "--registry",
            &catalog.url,
        ],
        true,
    )
    .await;
    assert!(
        out.stderr.contains("installing from the registry"),
        "{}",
        out.stderr
    );
    assert!(
        out.text().starts_with(&format!(
            "installed {WORKER} 0.1.0 ({})",
            build.layer_digest
        )),
        "{}",
        out.text()
    );

    catalog.stop().await;
}
