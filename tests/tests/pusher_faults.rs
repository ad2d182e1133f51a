//! The pusher against a registry that fails: 5xx and 429 (with
//! `Retry-After`) are retried, and a chunked upload whose chunk failed
//! resumes from the offset the registry reports.

mod common;

use std::time::Duration;

use axum::http::Method;
use common::TestRegistry;
use common::faults::{Fault, FaultProxy, Rule};
use common::publishing::Fixture;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{PublishOptions, publish};
use rbee_pusher::release::Release;

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(5),
        },
    )
    .unwrap()
}

fn options() -> PublishOptions {
    PublishOptions {
        namespace: None,
        catalog_repository: "rbee/catalog".into(),
        force: false,
        dry_run: false,
        compression: rbee_pusher::publish::Compression::Gzip(0),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

/// The registry still holds exactly what was announced.
async fn assert_published(reg: &TestRegistry, index_digest: &str) {
    let resp = reg
        .get_manifest("rbee/hello-worker-rbee-cpu", "0.1.0")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(common::header(&resp, "docker-content-digest"), index_digest);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let reg = TestRegistry::start().await;
    let proxy = FaultProxy::start(
        &reg.url,
        vec![
            // The first blob upload to finish fails on the server side...
            Rule {
                method: Method::PUT,
                path_part: "/blobs/uploads/",
                nth: 1,
                fault: Fault::Refuse(503, None),
            },
            // ...and the index is rate-limited once, for one second.
            Rule {
                method: Method::PUT,
                path_part: "/manifests/0.1.0",
                nth: 1,
                fault: Fault::Refuse(429, Some(1)),
            },
        ],
    )
    .await;
    let fixture = Fixture::new("0.1.0");
    let release = Release::load(&fixture.files()).unwrap();
    let summary = publish(
        &client(&proxy.url),
        &release,
        &options(),
        &Reporter::new(true),
    )
    .await
    .expect("the push succeeds despite the faults");
    assert_eq!(summary.status, "published");
    assert_published(&reg, &summary.index_digest).await;

    let seen = proxy.seen();
    let refused_at = |status: u16| {
        seen.iter()
            .position(|s| matches!(s.fault, Some(Fault::Refuse(code, _)) if code == status))
            .unwrap_or_else(|| panic!("the {status} fault was never hit"))
    };
    // After the 429, the index PUT came back no sooner than Retry-After.
    let limited = refused_at(429);
    let again = seen[limited + 1..]
        .iter()
        .find(|s| s.method == Method::PUT && s.path.contains("/manifests/0.1.0"))
        .expect("the index was PUT again");
    assert!(
        again.at.duration_since(seen[limited].at) >= Duration::from_millis(950),
        "retried after {:?}, before Retry-After",
        again.at.duration_since(seen[limited].at)
    );
    // After the 503 the blob was uploaded again (a new session: the old
    // one's body was refused whole).
    let failed = refused_at(503);
    assert!(
        seen[failed + 1..]
            .iter()
            .any(|s| s.method == Method::PUT && s.path.contains("/blobs/uploads/")),
        "the refused blob upload was not retried"
    );
}

#[tokio::test]
async fn a_failed_chunk_resumes_from_where_the_registry_stands() {
    let reg = TestRegistry::start().await;
    let proxy = FaultProxy::start(
        &reg.url,
        vec![
            // The third chunk reaches the registry, but its answer is lost:
            // the client must ask where the upload stands, not resend it.
            Rule {
                method: Method::PATCH,
                path_part: "/blobs/uploads/",
                nth: 3,
                fault: Fault::LoseAnswer,
            },
            // The fifth chunk is refused outright: it must be sent again.
            Rule {
                method: Method::PATCH,
                path_part: "/blobs/uploads/",
                nth: 5,
                fault: Fault::Refuse(500, None),
            },
        ],
    )
    .await;
    let fixture = Fixture::new("0.1.0");
    // One big build, so one chunked upload: 2.5 MiB in 256 KiB chunks.
    let big: Vec<u8> = (0..(5u32 << 19))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fixture.set_build("linux-aarch64", &big);
    let release = Release::load(&fixture.files()).unwrap();
    let client = client(&proxy.url).with_chunking(1 << 20, 256 << 10);
    let summary = publish(&client, &release, &options(), &Reporter::new(true))
        .await
        .expect("the chunked push succeeds despite the faults");
    assert_published(&reg, &summary.index_digest).await;
    let arm = summary
        .platforms
        .iter()
        .find(|p| p.platform == "linux-aarch64")
        .unwrap();
    assert!(
        arm.size > 2 << 20,
        "the archive is big enough to be chunked: {}",
        arm.size
    );

    // The blob the registry holds is the archive, byte for byte.
    let blob = reg
        .http
        .get(format!(
            "{}/v2/rbee/hello-worker-rbee-cpu/blobs/{}",
            reg.url, arm.layer_digest
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(common::sha256_digest(&blob), arm.layer_digest);

    let seen = proxy.seen();
    let patches: Vec<&common::faults::Seen> =
        seen.iter().filter(|s| s.method == Method::PATCH).collect();
    let ranges: Vec<&str> = patches
        .iter()
        .filter_map(|s| s.content_range.as_deref())
        .collect();
    let chunk = 256u64 << 10;
    // Chunk 3 was received by the registry: the next PATCH goes on after it.
    assert_eq!(
        ranges[3],
        format!("{}-{}", 3 * chunk, 4 * chunk - 1),
        "ranges: {ranges:?}"
    );
    // Chunk 5 was refused: it is sent again with the same range.
    assert_eq!(ranges[4], ranges[5], "ranges: {ranges:?}");
    // Each failure was followed by a status request on the session.
    let status_checks = seen
        .iter()
        .filter(|s| s.method == Method::GET && s.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(status_checks, 2, "one status request per failed chunk");
}
