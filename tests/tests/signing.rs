//! Signed releases verified before install (issue 17), end to end with the
//! real binaries: `rbee-pusher push|release --secret-key` signs, the
//! catalog shows the signature (`/v1` versions and downloads, with its
//! database view on and off), Debian's `minisign -V` verifies the
//! downloaded layer with the published signature, and `rbee-worker
//! install` refuses, with exit code 6 and the destination untouched,
//! what a pinned key did not sign: an unsigned build, one signed by
//! another or a revoked key, and, through a catalog that lies (it swaps a
//! blob and its digest consistently, or replays another version's
//! signature), tampered bytes. Key rotation (two keys trusted) installs;
//! staged releases are signed by the release job; CNCF Distribution
//! carries the signature through the referrers tag fallback.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::IntoResponse;
use common::install::{CatalogServer, tree};
use common::publishing::*;
use common::{require_tool, sha256_digest};
use serde_json::Value;

const WORKER: &str = "hello-worker-rbee-cpu";

// ---- keys ------------------------------------------------------------------

/// A key pair on disk.
#[derive(Debug)]
struct Key {
    secret: PathBuf,
    public_file: PathBuf,
    /// `RW...`.
    public: String,
    id: String,
}

/// A key made by Debian's `minisign -G -W` (no password): the publisher
/// uses minisign's own files.
async fn minisign_key(dir: &Path, name: &str) -> Key {
    let (secret, public_file) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    common::run(
        "minisign",
        &[
            "-G",
            "-W",
            "-p",
            public_file.to_str().unwrap(),
            "-s",
            secret.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    read_key(secret, public_file)
}

/// A key made by `rbee-pusher keygen`, encrypted with `password` (in a
/// file) or unencrypted.
async fn pusher_key(dir: &Path, name: &str, password: Option<&str>) -> Key {
    let (secret, public_file) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    let mut args = vec![
        "keygen".to_owned(),
        "--secret-key".to_owned(),
        path_arg(&secret),
        "--public-key".to_owned(),
        path_arg(&public_file),
        "--json".to_owned(),
    ];
    match password {
        Some(pw) => {
            let file = dir.join(format!("{name}.password"));
            std::fs::write(&file, format!("{pw}\n")).unwrap();
            args.extend(["--secret-key-password-file".to_owned(), path_arg(&file)]);
        }
        None => args.push("--unencrypted-key".to_owned()),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let made = pusher(&args, &[]).await.expect_code(0).json();
    let key = read_key(secret, public_file);
    assert_eq!(made["key_id"], key.id.as_str());
    assert_eq!(made["public_key"], key.public.as_str());
    key
}

fn read_key(secret: PathBuf, public_file: PathBuf) -> Key {
    let text = std::fs::read_to_string(&public_file).unwrap();
    let public = text.lines().nth(1).unwrap().trim().to_owned();
    let id = rbee_schemas::signature::public_key_id(&public).unwrap();
    Key {
        secret,
        public_file,
        public,
        id,
    }
}

/// The flags that sign with `key` (the password, if any, in `env`).
fn sign_flags(key: &Key, encrypted_password_file: Option<&Path>) -> Vec<String> {
    let mut flags = vec!["--secret-key".to_owned(), path_arg(&key.secret)];
    match encrypted_password_file {
        Some(file) => flags.extend(["--secret-key-password-file".to_owned(), path_arg(file)]),
        None => flags.push("--unencrypted-key".to_owned()),
    }
    flags
}

/// `rbee-pusher push` of `fixture`, signed with `key` when given.
async fn push(registry: &str, fixture: &Fixture, key: Option<&Key>) -> Value {
    let mut args = vec![
        "push".to_owned(),
        "--registry".to_owned(),
        registry.to_owned(),
        "--json".to_owned(),
    ];
    args.extend(fixture.args());
    if let Some(key) = key {
        args.extend(sign_flags(key, None));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pusher(&args, &[]).await.expect_code(0).json()
}

// ---- installing ----------------------------------------------------------

/// What `rbee-worker install` did.
#[derive(Debug)]
struct Installed {
    code: i32,
    stderr: String,
}

/// `rbee-worker install WORKER@VERSION` from `catalog` into `dest`, with
/// `trust` as the trust file's text and `extra` flags. The machine's own
/// trust file is never read (`XDG_CONFIG_HOME` is a fresh folder).
async fn install(
    catalog: &str,
    dest: &Path,
    version: &str,
    trust: &str,
    extra: &[&str],
) -> Installed {
    let bins = binaries().await;
    let config = tempfile::tempdir().unwrap();
    let trust_file = config.path().join("trusted-keys");
    std::fs::write(&trust_file, trust).unwrap();
    let out = tokio::process::Command::new(&bins.rbee_worker)
        .args([
            "install",
            &format!("{WORKER}@{version}"),
            "--catalog",
            catalog,
        ])
        .arg("--dest")
        .arg(dest)
        .arg("--trust-file")
        .arg(&trust_file)
        .args(extra)
        .env("XDG_CONFIG_HOME", config.path())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("WORKER_CATALOG_URL")
        .env_remove("RBEE_WORKER_TRUSTED_KEY")
        .env_remove("RBEE_WORKER_TRUST_FILE")
        .env_remove("RBEE_REGISTRY_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("rbee-worker install {version}: {:?}\n{stderr}", out.status);
    Installed {
        code: out.status.code().unwrap_or(-1),
        stderr,
    }
}

/// Installs and expects a refusal for `reason`: exit code 6, and nothing
/// in `dest` changed.
async fn refused(catalog: &str, dest: &Path, version: &str, trust: &str, reason: &str) {
    let before = tree(dest);
    let out = install(catalog, dest, version, trust, &[]).await;
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        out.stderr.contains("signature refused") && out.stderr.contains(reason),
        "expected `{reason}`: {}",
        out.stderr
    );
    let after: Vec<PathBuf> = tree(dest)
        .into_iter()
        .filter(|p| !p.starts_with(".downloads") && p != Path::new(".lock"))
        .collect();
    let before: Vec<PathBuf> = before
        .into_iter()
        .filter(|p| !p.starts_with(".downloads") && p != Path::new(".lock"))
        .collect();
    assert_eq!(after, before, "the destination changed");
    assert!(
        common::install::names_in(&dest.join(".downloads")).is_empty(),
        "a refused archive is not kept"
    );
}

async fn get_json(url: &str) -> Value {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap()
}

/// A manifest or index from a registry (Distribution serves an OCI index
/// only to a client that accepts one).
async fn get_manifest(url: &str) -> Value {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn get_bytes(url: &str) -> Vec<u8> {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.bytes().await.unwrap().to_vec()
}

fn host() -> &'static str {
    host_platform().expect("the tests run on a platform the example worker lists")
}

async fn download_answer(catalog: &str, version: &str) -> Value {
    get_json(&format!(
        "{catalog}/v1/workers/{WORKER}/{version}/download?platform={}",
        host()
    ))
    .await
}

/// `minisign -V` of the layer the download answer names, with the
/// signature it carries, against `public_file`: as a person checks a
/// layer pulled by hand.
async fn minisign_verifies(answer: &Value, base: &str, public_file: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let url = answer["download_url"].as_str().unwrap();
    let url = if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        url.to_owned()
    };
    let layer = dir.path().join(answer["filename"].as_str().unwrap());
    std::fs::write(&layer, get_bytes(&url).await).unwrap();
    let sig = dir.path().join("layer.minisig");
    std::fs::write(&sig, answer["signature"]["minisig"].as_str().unwrap()).unwrap();
    let out = common::run(
        "minisign",
        &[
            "-V",
            "-p",
            public_file.to_str().unwrap(),
            "-m",
            layer.to_str().unwrap(),
            "-x",
            sig.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let said = format!("{}{}", out.text(), out.stderr);
    assert!(
        said.contains("Signature and comment signature verified"),
        "{said}"
    );
    assert!(
        said.contains(answer["checksum"].as_str().unwrap()),
        "{said}"
    );
}

/// The statement a download answer's signature carries.
fn statement(answer: &Value) -> Value {
    serde_json::from_str(answer["signature"]["trusted_comment"].as_str().unwrap()).unwrap()
}

// ---- the cases -------------------------------------------------------------

async fn signed_release_installs_only_with_a_trusted_key(view: bool) {
    if !require_tool("minisign") {
        return;
    }
    let server = CatalogServer::start_with(|c| c.catalog_view = view).await;
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = (
        minisign_key(keys.path(), "a").await,
        minisign_key(keys.path(), "b").await,
    );
    let fixture = Fixture::new("0.1.0");
    let summary = push(&server.url, &fixture, Some(&a)).await;
    assert_eq!(summary["signature_key_id"], a.id.as_str());
    server.running.state.catalog.invalidate_all();

    // The catalog says who signed it, and hands the signature over.
    let versions = get_json(&format!("{}/v1/workers/{WORKER}/versions", server.url)).await;
    assert_eq!(
        versions["versions"][0]["signature"]["key_id"],
        a.id.as_str()
    );
    let answer = download_answer(&server.url, "0.1.0").await;
    assert_eq!(answer["signature"]["key_id"], a.id.as_str());
    let st = statement(&answer);
    assert_eq!(st["worker_id"], WORKER);
    assert_eq!(st["version"], "0.1.0");
    assert_eq!(st["platform"], host());
    assert_eq!(st["digest"], answer["checksum"]);
    minisign_verifies(&answer, &server.url, &a.public_file).await;

    let dest = server.path("dest");
    // Another key pinned for this worker: refused, naming the key.
    refused(
        &server.url,
        &dest,
        "0.1.0",
        &format!("trust {} for {WORKER}\n", b.public),
        &format!("signed by key {}, which is not trusted", a.id),
    )
    .await;
    // The signing key pinned, but revoked: refused.
    refused(
        &server.url,
        &dest,
        "0.1.0",
        &format!("trust {} for hello-worker-*\nrevoke {}\n", a.public, a.id),
        "revoked",
    )
    .await;
    // Rotation: the old and the new key trusted at once.
    let out = install(
        &server.url,
        &dest,
        "0.1.0",
        &format!("trust {}\ntrust {} for {WORKER}\n", b.public, a.public),
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dest.join(WORKER).join("0.1.0").is_dir());

    // `--trusted-key` (a key file) alone, into a fresh destination.
    let fresh = server.path("fresh");
    let out = install(
        &server.url,
        &fresh,
        "0.1.0",
        "",
        &["--trusted-key", a.public_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_release_installs_only_with_a_trusted_key_view_off() {
    signed_release_installs_only_with_a_trusted_key(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_release_installs_only_with_a_trusted_key_view_on() {
    signed_release_installs_only_with_a_trusted_key(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_release_is_refused_only_when_its_worker_is_pinned() {
    let server = CatalogServer::start().await;
    let keys = tempfile::tempdir().unwrap();
    let a = pusher_key(keys.path(), "a", None).await;
    push(&server.url, &Fixture::new("0.1.0"), None).await;
    server.running.state.catalog.invalidate_all();
    let versions = get_json(&format!("{}/v1/workers/{WORKER}/versions", server.url)).await;
    assert!(
        versions["versions"][0].get("signature").is_none(),
        "{versions}"
    );
    assert!(
        download_answer(&server.url, "0.1.0")
            .await
            .get("signature")
            .is_none()
    );

    let dest = server.path("dest");
    refused(
        &server.url,
        &dest,
        "0.1.0",
        &format!("trust {} for {WORKER}\n", a.public),
        "is unsigned",
    )
    .await;
    // A key pinned for other workers only: installs, as before signatures.
    let out = install(
        &server.url,
        &dest,
        "0.1.0",
        &format!("trust {} for llm-worker-rbee-*\n", a.public),
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.stop().await;
}

// ---- a catalog that lies -------------------------------------------------

/// How the lying catalog bends download answers.
#[derive(Debug, Clone)]
enum Lie {
    /// Passes answers on.
    None,
    /// Swaps the build for `evil` and the digest and size with it,
    /// consistently: the digest check passes; the signature is kept.
    Swap,
    /// Swaps the build and replaces the signature with this one (made by
    /// the attacker's own key, over the evil bytes, with a correct
    /// statement).
    SwapAndResign(String),
    /// Answers with `version`'s build and signature, relabelled as the
    /// version asked for.
    Replay(String),
    /// Leaves the signature out.
    Strip,
}

#[derive(Debug)]
struct Liar {
    upstream: String,
    url: String,
    lie: Mutex<Lie>,
    evil: Vec<u8>,
}

async fn versions_route(
    State(liar): State<Arc<Liar>>,
    UrlPath(id): UrlPath<String>,
) -> axum::response::Response {
    let body = get_json(&format!("{}/v1/workers/{id}/versions", liar.upstream)).await;
    axum::Json(body).into_response()
}

async fn download_route(
    State(liar): State<Arc<Liar>>,
    UrlPath((id, version)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    let query = query.unwrap_or_default();
    let lie = liar.lie.lock().unwrap().clone();
    let asked = match &lie {
        Lie::Replay(other) => other.clone(),
        _ => version.clone(),
    };
    let mut answer = get_json(&format!(
        "{}/v1/workers/{id}/{asked}/download?{query}",
        liar.upstream
    ))
    .await;
    if let Some(url) = answer["download_url"].as_str()
        && url.starts_with('/')
    {
        answer["download_url"] = format!("{}{url}", liar.upstream).into();
    }
    let swap = |answer: &mut Value| {
        answer["download_url"] = format!("{}/evil.tar.gz", liar.url).into();
        answer["checksum"] = sha256_digest(&liar.evil).into();
        answer["size"] = liar.evil.len().into();
    };
    match lie {
        Lie::None => {}
        Lie::Swap => swap(&mut answer),
        Lie::SwapAndResign(minisig) => {
            swap(&mut answer);
            let parsed = rbee_schemas::signature::Minisig::parse(&minisig).unwrap();
            answer["signature"] = serde_json::json!({
                "key_id": parsed.key_id,
                "minisig": minisig,
                "trusted_comment": parsed.trusted_comment,
            });
        }
        Lie::Replay(_) => answer["version"] = version.into(),
        Lie::Strip => {
            answer.as_object_mut().unwrap().remove("signature");
        }
    }
    axum::Json(answer).into_response()
}

async fn start_liar(upstream: &str, evil: Vec<u8>) -> Arc<Liar> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let liar = Arc::new(Liar {
        upstream: upstream.to_owned(),
        url,
        lie: Mutex::new(Lie::None),
        evil,
    });
    let evil = liar.evil.clone();
    let app = axum::Router::new()
        .route(
            "/v1/workers/{id}/versions",
            axum::routing::get(versions_route),
        )
        .route(
            "/v1/workers/{id}/{version}/download",
            axum::routing::get(download_route),
        )
        .route(
            "/evil.tar.gz",
            axum::routing::get(move || {
                let evil = evil.clone();
                async move { evil }
            }),
        )
        .with_state(liar.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    liar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_lies_is_refused_only_because_of_the_signature() {
    if !require_tool("minisign") {
        return;
    }
    let server = CatalogServer::start().await;
    let keys = tempfile::tempdir().unwrap();
    let (publisher, attacker) = (
        minisign_key(keys.path(), "publisher").await,
        minisign_key(keys.path(), "attacker").await,
    );
    push(&server.url, &Fixture::new("0.1.0"), Some(&publisher)).await;
    let mut newer = Fixture::new("0.2.0");
    newer.builds.iter_mut().for_each(|(p, path)| {
        let changed = path.with_extension("v2");
        std::fs::write(&changed, stand_in(p, 1)).unwrap();
        std::fs::set_permissions(
            &changed,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        *path = changed;
    });
    push(&server.url, &newer, Some(&publisher)).await;
    server.running.state.catalog.invalidate_all();

    // A valid worker archive, just not the publisher's.
    let evil = common::install::tar_gz(&[common::install::Entry::File(
        "hello-worker-rbee",
        b"#!/bin/sh\necho owned\n".to_vec(),
    )]);
    let liar = start_liar(&server.url, evil.clone()).await;
    let pinned = format!("trust {} for {WORKER}\n", publisher.public);
    let dest = server.path("dest");

    // Honest answers through the liar install.
    let out = install(&liar.url, &server.path("honest"), "0.1.0", &pinned, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    *liar.lie.lock().unwrap() = Lie::Swap;
    refused(
        &liar.url,
        &dest,
        "0.1.0",
        &pinned,
        "does not match the downloaded archive",
    )
    .await;

    // The attacker signs the evil archive with its own key, statement and
    // all: not a trusted key.
    let evil_file = keys.path().join("evil.tar.gz");
    std::fs::write(&evil_file, &evil).unwrap();
    let forged_statement = rbee_schemas::signature::SignedStatement::new(
        WORKER,
        "0.1.0",
        host().parse().unwrap(),
        &sha256_digest(&evil),
    )
    .to_trusted_comment();
    let forged = keys.path().join("evil.minisig");
    common::run(
        "minisign",
        &[
            "-S",
            "-s",
            attacker.secret.to_str().unwrap(),
            "-m",
            evil_file.to_str().unwrap(),
            "-x",
            forged.to_str().unwrap(),
            "-t",
            &forged_statement,
        ],
        &[],
    )
    .await;
    *liar.lie.lock().unwrap() = Lie::SwapAndResign(std::fs::read_to_string(&forged).unwrap());
    refused(
        &liar.url,
        &dest,
        "0.1.0",
        &pinned,
        &format!("signed by key {}, which is not trusted", attacker.id),
    )
    .await;

    // 0.2.0's genuine build and signature offered as 0.1.0.
    *liar.lie.lock().unwrap() = Lie::Replay("0.2.0".into());
    refused(
        &liar.url,
        &dest,
        "0.1.0",
        &pinned,
        "the signature is for hello-worker-rbee-cpu 0.2.0",
    )
    .await;

    *liar.lie.lock().unwrap() = Lie::Strip;
    refused(&liar.url, &dest, "0.1.0", &pinned, "is unsigned").await;

    // Only the signature stood in the way: without a pin the swapped
    // build installs (the digest matched what the liar said).
    *liar.lie.lock().unwrap() = Lie::Swap;
    let out = install(&liar.url, &dest, "0.1.0", "", &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let installed =
        std::fs::read(dest.join(WORKER).join("0.1.0").join("hello-worker-rbee")).unwrap();
    assert_eq!(installed, b"#!/bin/sh\necho owned\n");

    // The library rbee-hive embeds refuses the same way.
    let mut trust = rbee_worker_client::TrustStore::empty();
    trust.trust(&publisher.public, vec![WORKER.into()]).unwrap();
    let lib_dest = server.path("library");
    let installer = rbee_worker_client::Installer::new(
        rbee_worker_client::CatalogClient::new(&liar.url).unwrap(),
        &lib_dest,
    )
    .unwrap()
    .with_trust(trust);
    let refused = installer.install(WORKER, Some("0.1.0"), &|_, _| {}).await;
    assert!(
        matches!(
            refused,
            Err(rbee_worker_client::ClientError::Signature(
                rbee_worker_client::SignatureRefusal::Tampered { .. }
            ))
        ),
        "{refused:?}"
    );
    assert!(!lib_dest.join(WORKER).exists());
    server.stop().await;
}

// ---- staged releases -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_release_is_signed_by_the_release_job() {
    if !require_tool("minisign") {
        return;
    }
    let server = CatalogServer::start().await;
    let keys = tempfile::tempdir().unwrap();
    let key = pusher_key(keys.path(), "release", Some("correct horse")).await;
    let password = keys.path().join("release.password");
    let fixture = Fixture::new("0.3.0");
    let stage = |signing: Vec<String>| {
        let mut args = vec![
            "push".to_owned(),
            "--stage".to_owned(),
            "--registry".to_owned(),
            server.url.clone(),
            "--json".to_owned(),
        ];
        args.extend(fixture.args());
        args.extend(signing);
        args
    };
    // Stage jobs do not sign: the key belongs to the release job.
    let with_key = stage(sign_flags(&key, Some(&password)));
    let with_key: Vec<&str> = with_key.iter().map(String::as_str).collect();
    let refused = pusher(&with_key, &[]).await.expect_code(3);
    assert!(
        refused.stderr.contains("`rbee-pusher release`"),
        "{}",
        refused.stderr
    );
    let plain = stage(Vec::new());
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    assert_eq!(
        pusher(&plain, &[]).await.expect_code(0).json()["status"],
        "staged"
    );

    // A wrong password is refused before anything is written.
    let wrong = keys.path().join("wrong.password");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let mut release = vec![
        "release".to_owned(),
        "--registry".to_owned(),
        server.url.clone(),
        WORKER.to_owned(),
        "0.3.0".to_owned(),
        "--json".to_owned(),
    ];
    let mut bad = release.clone();
    bad.extend(sign_flags(&key, Some(&wrong)));
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let out = pusher(&bad, &[]).await.expect_code(3);
    assert!(
        out.stderr.contains("cannot load the secret key"),
        "{}",
        out.stderr
    );

    release.extend(sign_flags(&key, Some(&password)));
    let release: Vec<&str> = release.iter().map(String::as_str).collect();
    let released = pusher(&release, &[]).await.expect_code(0).json();
    assert_eq!(released["status"], "released");
    assert_eq!(released["signature_key_id"], key.id.as_str());
    // A rerun adds no second signature.
    let again = pusher(&release, &[]).await.expect_code(0);
    assert!(again.stderr.contains("already signed"), "{}", again.stderr);
    let index = released["index_digest"].as_str().unwrap();
    let referrers = get_json(&format!(
        "{}/v2/rbee/{WORKER}/referrers/{index}?artifactType={}",
        server.url,
        rbee_schemas::media_types::SIGNATURE_ARTIFACT_TYPE.replace('+', "%2B")
    ))
    .await;
    assert_eq!(
        referrers["manifests"].as_array().unwrap().len(),
        1,
        "{referrers}"
    );

    server.running.state.catalog.invalidate_all();
    let answer = download_answer(&server.url, "0.3.0").await;
    assert_eq!(answer["signature"]["key_id"], key.id.as_str());
    // `rbee-pusher keygen`'s public key file is minisign's.
    minisign_verifies(&answer, &server.url, &key.public_file).await;
    let out = install(
        &server.url,
        &server.path("dest"),
        "0.3.0",
        &format!("trust {}\n", key.public),
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.stop().await;
}

// ---- CNCF Distribution: the referrers tag fallback -------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_travel_through_the_tag_fallback_on_cncf_distribution() {
    if !require_tool("minisign") {
        return;
    }
    let Some(registry) = common::distribution::Distribution::start().await else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key = minisign_key(keys.path(), "a").await;
    let summary = push(&registry.url, &Fixture::new("0.1.0"), Some(&key)).await;
    let index = summary["index_digest"].as_str().unwrap();
    // No referrers API: the signature is listed under `sha256-<hex>`.
    let fallback = get_manifest(&format!(
        "{}/v2/rbee/{WORKER}/manifests/{}",
        registry.url,
        index.replace(':', "-")
    ))
    .await;
    let listed: Vec<&str> = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["artifactType"].as_str())
        .collect();
    assert!(
        listed.contains(&rbee_schemas::media_types::SIGNATURE_ARTIFACT_TYPE),
        "{fallback}"
    );

    let catalog = common::catalog::TestCatalog::external(&registry.url, |_| {}).await;
    let versions = get_json(&format!("{}/v1/workers/{WORKER}/versions", catalog.url)).await;
    assert_eq!(
        versions["versions"][0]["signature"]["key_id"],
        key.id.as_str()
    );
    let answer = download_answer(&catalog.url, "0.1.0").await;
    minisign_verifies(&answer, &catalog.url, &key.public_file).await;
    let dest = tempfile::tempdir().unwrap();
    let out = install(
        &catalog.url,
        dest.path(),
        "0.1.0",
        &format!("trust {}\n", key.public),
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // And a `.minisig` layer per platform, named after its archive, for
    // people who pull the artifact with oras.
    let referrer = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["artifactType"] == rbee_schemas::media_types::SIGNATURE_ARTIFACT_TYPE)
        .unwrap();
    let manifest = get_manifest(&format!(
        "{}/v2/rbee/{WORKER}/manifests/{}",
        registry.url,
        referrer["digest"].as_str().unwrap()
    ))
    .await;
    let titles: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["annotations"][TITLE].as_str())
        .collect();
    assert!(
        titles.contains(&format!("{}.minisig", answer["filename"].as_str().unwrap()).as_str()),
        "{titles:?}"
    );
    catalog.stop().await;
}

// ---- the registry fallback -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_fallback_checks_the_signature_too() {
    let server = CatalogServer::start().await;
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = (
        pusher_key(keys.path(), "a", None).await,
        pusher_key(keys.path(), "b", None).await,
    );
    push(&server.url, &Fixture::new("0.1.0"), Some(&a)).await;
    // No catalog listens there: the installer reads the registry.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let fallback = ["--registry", server.url.as_str()];
    let dest = server.path("dest");
    let before = tree(&dest);
    let out = install(
        &closed,
        &dest,
        "0.1.0",
        &format!("trust {} for {WORKER}\n", b.public),
        &fallback,
    )
    .await;
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("signed by key {}, which is not trusted", a.id)),
        "{}",
        out.stderr
    );
    assert!(
        !dest.join(WORKER).exists(),
        "{:?} then {:?}",
        before,
        tree(&dest)
    );
    let out = install(
        &closed,
        &dest,
        "0.1.0",
        &format!("trust {} for {WORKER}\n", a.public),
        &fallback,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dest.join(WORKER).join("0.1.0").is_dir());
    server.stop().await;
}
