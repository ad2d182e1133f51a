//! Installs racing into one destination and installs after a crash:
//! concurrent installs (library tasks and CLI processes, of different
//! builds and of the same one) lose no record and fail none; what a dead
//! process left (`.staging-*`, `.old-*`, a temporary `installed.json`) is
//! cleaned on the next run; a folder without a record, or a recorded build
//! whose folder was emptied, is installed again rather than reported
//! installed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::hostile::{FakeCatalog, Script, worker_archive};
use common::install::{WORKER, names_in};
use common::publishing::binaries;
use common::run_expecting;
use rbee_worker_client::{CatalogClient, Installer, Outcome, Platform};

fn installer(catalog: &str, dest: &Path) -> Installer {
    Installer::new(CatalogClient::new(catalog).unwrap(), dest)
        .unwrap()
        .with_platform(Platform::LinuxX86_64)
}

/// What an installed build holds: the script of `worker` `version`.
fn assert_build(dest: &Path, worker: &str, version: &str) {
    let script = std::fs::read_to_string(dest.join(worker).join(version).join("hello-worker-rbee"))
        .unwrap_or_else(|e| panic!("{worker} {version}: {e}"));
    assert_eq!(script, format!("#!/bin/sh\necho '{worker} {version}'\n"));
}

/// Only what a settled destination holds: no staging, old or temporary
/// entry, no download left.
fn assert_settled(dest: &Path) {
    for name in names_in(dest) {
        assert!(
            !name.starts_with(".staging-")
                && !name.starts_with(".old-")
                && !name.starts_with(".installed.json."),
            "left behind: {name}"
        );
    }
    assert!(names_in(&dest.join(".downloads")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_into_one_destination_lose_no_record() {
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0", "0.2.0"])).await;
    let dest = tempfile::tempdir().unwrap();
    let builds: Vec<(String, &str)> = (0..4)
        .flat_map(|w| {
            [
                (format!("race-worker-{w}"), "0.1.0"),
                (format!("race-worker-{w}"), "0.2.0"),
            ]
        })
        .collect();
    // Eight different builds, and four more installs of the first one.
    let mut jobs = builds.clone();
    jobs.extend(std::iter::repeat_n(builds[0].clone(), 4));
    let mut tasks = tokio::task::JoinSet::new();
    for (worker, version) in jobs {
        let lib = installer(catalog.url(), dest.path());
        tasks.spawn(async move {
            let req = format!("={version}");
            lib.install(&worker, Some(&req), &|_, _| {}).await
        });
    }
    let outcomes = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .expect("the installs finish");
    let installed = outcomes
        .into_iter()
        .map(|o| o.expect("no install fails"))
        .filter(|o| matches!(o, Outcome::Installed(_)))
        .count();
    assert_eq!(
        installed, 8,
        "each build installed once, the repeats found it"
    );

    let listed = installer(catalog.url(), dest.path()).list().unwrap();
    let mut got: Vec<(String, String)> = listed
        .iter()
        .map(|i| (i.worker_id.clone(), i.version.clone()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = builds
        .iter()
        .map(|(w, v)| (w.clone(), v.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "a record was lost");
    for (worker, version) in &builds {
        assert_build(dest.path(), worker, version);
    }
    assert_settled(dest.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cli_processes_lose_no_record() {
    let bins = binaries().await;
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let dest = tempfile::tempdir().unwrap();
    let workers = [
        "proc-worker-a",
        "proc-worker-b",
        "proc-worker-c",
        "proc-worker-a",
        "proc-worker-a",
        "proc-worker-b",
    ];
    let runs = workers.iter().map(|w| {
        let args = [
            "--catalog",
            catalog.url(),
            "--dest",
            dest.path().to_str().unwrap(),
            "install",
            w,
        ];
        let binary = bins.rbee_worker.to_str().unwrap();
        async move { run_expecting(true, binary, &args, &[]).await }
    });
    futures_util::future::join_all(runs).await;
    let listed = installer(catalog.url(), dest.path()).list().unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|i| i.worker_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["proc-worker-a", "proc-worker-b", "proc-worker-c"]);
    for w in ["proc-worker-a", "proc-worker-b", "proc-worker-c"] {
        assert_build(dest.path(), w, "0.1.0");
    }
    assert_settled(dest.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_leftovers_are_cleaned_on_the_next_run() {
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let dest = tempfile::tempdir().unwrap();
    for dir in [".staging-4242-1-0", ".old-4242-2-0/bin"] {
        std::fs::create_dir_all(dest.path().join(dir)).unwrap();
        std::fs::write(dest.path().join(dir).join("half"), "written").unwrap();
    }
    std::fs::write(dest.path().join(".installed.json.Xy12ab.tmp"), "{\"wor").unwrap();
    let lib = installer(catalog.url(), dest.path());
    let done = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    assert_settled(dest.path());
    assert_build(dest.path(), WORKER, "0.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_not_installed_without_an_intact_recorded_build() {
    let catalog = FakeCatalog::start(Script::honest(&["0.1.0"])).await;
    let dest = tempfile::tempdir().unwrap();
    let folder = dest.path().join(WORKER).join("0.1.0");
    let lib = installer(catalog.url(), dest.path());

    // A folder without a record.
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("junk"), "not a build").unwrap();
    let done = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    assert!(!folder.join("junk").exists());
    assert_build(dest.path(), WORKER, "0.1.0");
    let again = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(again, Outcome::AlreadyInstalled(_)), "{again:?}");

    // A recorded build whose folder lost its files (a power cut before
    // they reached the disk, or a hand): installed again.
    std::fs::write(folder.join("hello-worker-rbee"), "").unwrap();
    let done = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    assert_build(dest.path(), WORKER, "0.1.0");
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::create_dir(&folder).unwrap();
    let done = lib.install(WORKER, None, &|_, _| {}).await.unwrap();
    assert!(matches!(done, Outcome::Installed(_)), "{done:?}");
    assert_build(dest.path(), WORKER, "0.1.0");
    assert_eq!(lib.list().unwrap().len(), 1);
    assert_eq!(
        lib.list().unwrap()[0].digest,
        common::sha256_digest(&worker_archive(WORKER, "0.1.0"))
    );
    assert_settled(dest.path());
}
