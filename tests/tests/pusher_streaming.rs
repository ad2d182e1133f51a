//! Packaging straight into the upload (issue 15): zstd and gzip layers
//! both publish and install with the library installer; a streamed
//! upload refused midway leaves no tag and a later push succeeds; a piece
//! whose answer was lost or refused is resent from memory; a registry
//! that forgot the session gets the build packaged again from its start.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::http::Method;
use common::TestRegistry;
use common::faults::{Fault, FaultProxy, Rule};
use common::install::{CatalogServer, WORKER, host_build, release_with_host_build};
use common::publishing::{Fixture, binaries};
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{Compression, PublishOptions, PublishSummary, publish};
use rbee_pusher::release::Release;
use rbee_worker_client::{CatalogClient, Installer, Outcome};

const REPO: &str = "rbee/hello-worker-rbee-cpu";

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
    )
    .unwrap()
}

fn options(compression: Compression) -> PublishOptions {
    PublishOptions {
        namespace: None,
        catalog_repository: "rbee/catalog".into(),
        force: false,
        dry_run: false,
        compression,
        created: "2026-01-01T00:00:00Z".into(),
    }
}

async fn push(
    client: &RegistryClient,
    fixture: &Fixture,
    c: Compression,
) -> Result<PublishSummary, rbee_pusher::PushError> {
    let release = Release::load(&fixture.files()).unwrap();
    publish(client, &release, &options(c), &Reporter::new(true)).await
}

/// A build of `len` bytes that compresses somewhat (text and noise).
fn build_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    while out.len() < len {
        if (out.len() / 4096) % 2 == 0 {
            out.extend_from_slice(b"symbol_name_for_a_worker ");
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_and_gzip_layers_both_publish_and_install() {
    let bins = binaries().await;
    let hello = std::fs::read(&bins.hello_worker).unwrap();
    for (version, c, media_type, extension) in [
        (
            "0.1.0",
            Compression::Zstd(3),
            "application/vnd.rbee.worker.layer.v1.tar+zstd",
            ".tar.zst",
        ),
        (
            "0.2.0",
            Compression::Gzip(6),
            "application/vnd.rbee.worker.layer.v1.tar+gzip",
            ".tar.gz",
        ),
    ] {
        let catalog = CatalogServer::start().await;
        let summary = push(
            &client(&catalog.url),
            &release_with_host_build(version, &hello),
            c,
        )
        .await
        .unwrap();
        catalog.running.state.catalog.invalidate_all();
        let build = host_build(&summary);
        assert_eq!(build.media_type, media_type);
        assert!(build.filename.ends_with(extension), "{}", build.filename);

        let dest = catalog.path("library");
        let installer = Installer::new(CatalogClient::new(&catalog.url).unwrap(), &dest).unwrap();
        let Outcome::Installed(installed) = installer
            .install(WORKER, Some(version), &|_, _| {})
            .await
            .unwrap_or_else(|e| panic!("{c}: {e}"))
        else {
            panic!("{c}: a first install installs");
        };
        assert_eq!(installed.digest, build.layer_digest);
        assert_eq!(
            std::fs::read(installed.path.join("hello-worker-rbee")).unwrap(),
            hello,
            "{c}: the installed binary is the published one"
        );
        catalog.stop().await;
    }
}

/// Nothing is tagged: neither the version nor `latest`.
async fn assert_no_tag(reg: &TestRegistry) {
    for tag in ["0.1.0", "latest"] {
        assert_eq!(reg.get_manifest(REPO, tag).await.status(), 404, "{tag}");
    }
}

/// The blob of `digest` the registry holds hashes to `digest`.
async fn assert_blob(reg: &TestRegistry, digest: &str) {
    let blob = reg
        .http
        .get(format!("{}/v2/{REPO}/blobs/{digest}", reg.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(common::sha256_digest(&blob), digest);
}

fn big_fixture(dir_bytes: usize) -> Fixture {
    let fixture = Fixture::new("0.1.0");
    fixture.set_build("linux-aarch64", &build_bytes(dir_bytes));
    fixture
}

#[tokio::test]
async fn a_streamed_upload_refused_midway_leaves_no_tag_and_a_later_push_succeeds() {
    let reg = TestRegistry::start().await;
    // The second piece of a chunked upload is refused for good (a 400 is
    // not retried).
    let proxy = FaultProxy::start(
        &reg.url,
        vec![Rule {
            method: Method::PATCH,
            path_part: "/blobs/uploads/",
            nth: 2,
            fault: Fault::Refuse(400, None),
        }],
    )
    .await;
    let fixture = big_fixture(3 << 20);
    let chunked = |url: &str| client(url).with_chunking(1 << 20, 256 << 10);
    let err = push(&chunked(&proxy.url), &fixture, Compression::Gzip(0))
        .await
        .expect_err("a refused piece fails the push");
    assert!(err.to_string().contains("400"), "{err}");
    assert_no_tag(&reg).await;

    // The same push, the registry well again: published, every byte right.
    let summary = push(&chunked(&reg.url), &fixture, Compression::Gzip(0))
        .await
        .unwrap();
    assert_eq!(summary.status, "published");
    for p in &summary.platforms {
        assert_blob(&reg, &p.layer_digest).await;
    }
}

#[tokio::test]
async fn a_lost_or_refused_piece_is_resent_from_memory() {
    let reg = TestRegistry::start().await;
    let proxy = FaultProxy::start(
        &reg.url,
        vec![
            // The third piece arrives but its answer is lost: the next
            // PATCH goes on after it.
            Rule {
                method: Method::PATCH,
                path_part: "/blobs/uploads/",
                nth: 3,
                fault: Fault::LoseAnswer,
            },
            // The fifth is refused: sent again with the same range.
            Rule {
                method: Method::PATCH,
                path_part: "/blobs/uploads/",
                nth: 5,
                fault: Fault::Refuse(503, None),
            },
        ],
    )
    .await;
    let fixture = big_fixture(3 << 20);
    let client = client(&proxy.url).with_chunking(1 << 20, 256 << 10);
    let summary = push(&client, &fixture, Compression::Gzip(0)).await.unwrap();
    let arm = summary
        .platforms
        .iter()
        .find(|p| p.platform == "linux-aarch64")
        .unwrap();
    assert_blob(&reg, &arm.layer_digest).await;
    let ranges: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.method == Method::PATCH)
        .filter_map(|s| s.content_range.clone())
        .collect();
    let piece = 256u64 << 10;
    assert_eq!(
        ranges[3],
        format!("{}-{}", 3 * piece, 4 * piece - 1),
        "{ranges:?}"
    );
    assert_eq!(ranges[4], ranges[5], "{ranges:?}");
    // Resent from memory, not packaged again: the first piece went once.
    assert_eq!(ranges.iter().filter(|r| *r == "0-262143").count(), 1);
}

#[tokio::test]
async fn a_session_the_registry_forgot_is_packaged_again_from_the_start() {
    let reg = TestRegistry::start().await;
    let proxy = FaultProxy::start(
        &reg.url,
        vec![
            // The second piece fails; asked where the upload stands, the
            // registry says it does not know the session.
            Rule {
                method: Method::PATCH,
                path_part: "/blobs/uploads/",
                nth: 2,
                fault: Fault::Refuse(502, None),
            },
            Rule {
                method: Method::GET,
                path_part: "/blobs/uploads/",
                nth: 1,
                fault: Fault::Refuse(404, None),
            },
        ],
    )
    .await;
    let fixture = big_fixture(3 << 20);
    let client = client(&proxy.url).with_chunking(1 << 20, 256 << 10);
    let summary = push(&client, &fixture, Compression::Zstd(1)).await.unwrap();
    assert_eq!(summary.status, "published");
    let arm = summary
        .platforms
        .iter()
        .find(|p| p.platform == "linux-aarch64")
        .unwrap();
    assert_blob(&reg, &arm.layer_digest).await;
    let seen = proxy.seen();
    // The restart sent the first piece again, in a new session.
    let first_pieces = seen
        .iter()
        .filter(|s| s.method == Method::PATCH && s.content_range.as_deref() == Some("0-262143"))
        .count();
    assert_eq!(first_pieces, 2, "the build was sent again from its start");
}

/// The producer never gets more than a few pieces ahead of the upload:
/// memory is bounded by the piece size, not by the build's.
#[tokio::test]
async fn packaging_never_gets_more_than_a_few_pieces_ahead_of_the_upload() {
    let reg = TestRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    std::fs::write(&file, build_bytes(8 << 20)).unwrap();
    let piece = 64u64 << 10;
    let client = client(&reg.url).with_chunking(1 << 20, piece);
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ahead = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let blob = {
        let (produced, sent, ahead) = (produced.clone(), sent.clone(), ahead.clone());
        let path = file.clone();
        let progress_sent = sent.clone();
        client
            .upload_stream(
                REPO,
                move |mut out| {
                    copy_watching(&path, &mut out, &produced, &sent, &ahead)?;
                    Ok(out)
                },
                std::sync::Arc::new(move |n| {
                    progress_sent.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                }),
            )
            .await
            .unwrap()
    };
    assert_eq!(blob.packed.size, 8 << 20);
    assert_blob(&reg, &blob.packed.digest).await;
    let most = ahead.load(std::sync::atomic::Ordering::SeqCst);
    // Before the session opens, the first two pieces are held (to tell a
    // one-piece blob from a longer one); then one piece being filled or
    // blocked, one waiting, one being sent; plus the current write.
    assert!(
        most <= 5 * piece,
        "the producer got {most} bytes ahead of the upload (pieces of {piece})"
    );
}

/// Copies `path` into `out` in 16 KiB writes, recording how far the
/// writes got ahead of the bytes sent.
fn copy_watching(
    path: &Path,
    out: &mut impl std::io::Write,
    produced: &std::sync::atomic::AtomicU64,
    sent: &std::sync::atomic::AtomicU64,
    ahead: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let data = std::fs::read(path)?;
    for chunk in data.chunks(16 << 10) {
        out.write_all(chunk)?;
        let now = produced.fetch_add(chunk.len() as u64, SeqCst) + chunk.len() as u64;
        ahead.fetch_max(now.saturating_sub(sent.load(SeqCst)), SeqCst);
    }
    Ok(())
}
