//! The pusher refuses what the catalog would refuse at read, before it
//! writes anything (issue 8): metadata over the documented limits, a
//! version that cannot be an OCI tag, a worker with more versions than the
//! catalog index lists; and a huge catalog index is refused in moments
//! instead of hanging the pusher.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use common::publishing::{Fixture, publish_with_library};
use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::publish::read_catalog;
use rbee_pusher::release::Release;
use serde_json::json;

fn invalid(result: Result<Release, PushError>) -> String {
    match result {
        Err(err @ PushError::Invalid(_)) => err.to_string(),
        other => panic!("expected an invalid release, got {other:?}"),
    }
}

#[test]
fn metadata_over_the_limits_is_refused_at_load() {
    let fixture = Fixture::new("0.1.0");
    fixture.edit_metadata(|m| {
        m["name"] = "Hello\u{1b}[2J".into();
        m["description"] = "x".repeat(3 << 20).into();
        m["source"]["url"] = "javascript://x/%0Aalert(1)".into();
    });
    // The 3 MiB document is refused for its size, before its fields.
    let err = invalid(Release::load(&fixture.files()));
    assert!(err.contains(": $: the document is"), "{err}");

    fixture.edit_metadata(|m| m["description"] = "short".into());
    let err = invalid(Release::load(&fixture.files()));
    assert!(
        err.contains("$.name: character 6 is U+001B") && err.contains("$.source.url"),
        "{err}"
    );
    // The message itself carries no escape character.
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn a_version_that_cannot_be_a_tag_is_refused_at_load() {
    // Build metadata is valid semver but `+` is not allowed in an OCI
    // tag: the push used to upload every blob and fail at the tag.
    let fixture = Fixture::new("1.0.0");
    fixture.edit_metadata(|m| m["version"] = "1.0.0+build.7".into());
    let err = invalid(Release::load(&fixture.files()));
    assert!(
        err.contains("`1.0.0+build.7` cannot be an OCI tag") && err.contains("publish `1.0.0`"),
        "{err}"
    );
}

#[test]
fn layer_titles_are_plain_file_names() {
    // Ids, versions and platforms have grammars that keep quotes, `/`,
    // CR/LF and control characters out of the title; check the longest
    // and oddest ones they allow.
    let fixture = Fixture::new("0.1.0");
    let id = format!("a-{}", "0".repeat(98));
    fixture.edit_metadata(|m| {
        m["id"] = id.clone().into();
        m["version"] = format!("10.20.30-rc.1-x.{}", "a".repeat(100)).into();
    });
    // The PKGBUILD's pkgver no longer matches: load without it.
    let mut files = fixture.files();
    files.pkgbuild = None;
    let release = Release::load(&files).unwrap();
    for platform in release.builds.keys() {
        let title = release.archive_name(*platform);
        // `^[A-Za-z0-9][A-Za-z0-9._+-]*$`, at most 255 bytes: the rule
        // `rbee_schemas::validate_file_name` applies to it at load.
        assert!(
            title.len() <= 255
                && title.starts_with(|c: char| c.is_ascii_alphanumeric())
                && title
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')),
            "{title}"
        );
    }
}

/// A registry that lists `tags` for every repository, serves `catalog`
/// (if any) as `rbee/catalog:latest`, answers 404 to everything else and
/// records every request.
async fn fake_registry(
    tags: Vec<String>,
    catalog: Option<String>,
) -> (String, Arc<Mutex<Vec<(Method, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let catalog_blob = catalog.map(|c| (common::sha256_digest(c.as_bytes()), c));
    let app = axum::Router::new().fallback(move |req: Request| {
        let tags = tags.clone();
        let catalog_blob = catalog_blob.clone();
        log.lock()
            .unwrap()
            .push((req.method().clone(), req.uri().to_string()));
        async move {
            let path = req.uri().path();
            let json = |body: String, media_type: &str| {
                Response::builder()
                    .header("content-type", media_type)
                    .body(Body::from(body))
                    .unwrap()
            };
            if path.ends_with("/tags/list") {
                return json(
                    json!({"name": "x", "tags": tags}).to_string(),
                    "application/json",
                );
            }
            if let Some((digest, doc)) = &catalog_blob {
                if path == "/v2/rbee/catalog/manifests/latest" {
                    let manifest = json!({
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                   "digest": common::sha256_digest(b"{}"), "size": 2},
                        "layers": [{"mediaType": "application/vnd.rbee.catalog.v1+json",
                                    "digest": digest, "size": doc.len()}],
                    });
                    return json(
                        manifest.to_string(),
                        "application/vnd.oci.image.manifest.v1+json",
                    );
                }
                if path == format!("/v2/rbee/catalog/blobs/{digest}") {
                    return json(doc.clone(), "application/octet-stream");
                }
            }
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn a_worker_over_the_catalog_version_limit_is_refused_before_any_upload() {
    // `rbee_schemas::limits::CATALOG_MAX_VERSIONS`, as docs/artifact-format.md
    // documents it.
    let limit = 1_000;
    let tags = (0..limit).map(|i| format!("0.0.{i}")).collect();
    let (url, seen) = fake_registry(tags, None).await;
    let fixture = Fixture::new("1.0.0");
    let err = publish_with_library(&url, &fixture, false)
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Invalid(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string()
            .contains(&format!("would have {} versions", limit + 1)),
        "{err}"
    );
    let writes: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _)| !matches!(*m, Method::GET | Method::HEAD))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn a_huge_catalog_index_is_refused_quickly() {
    // The report's document: 361,843 versions of one worker in 4 MiB. The
    // pusher spent minutes in a quadratic duplicate check on it.
    let versions: Vec<String> = (0..361_843)
        .map(|i| format!("{}.{}.{}", i / 10_000, i / 100 % 100, i % 100))
        .collect();
    let doc = json!({
        "schema_version": 1,
        "updated_at": "2025-01-31T12:00:00Z",
        "workers": [{"id": "w", "repository": "rbee/w", "versions": versions,
                     "requires_license": false, "updated_at": "2025-01-31T12:00:00Z"}],
    })
    .to_string();
    // Within the documented 4 MiB: refused for its count, not its size.
    assert!(doc.len() <= 4 << 20);
    let (url, _) = fake_registry(Vec::new(), Some(doc)).await;
    let client = RegistryClient::new(
        reqwest::Url::parse(&url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy::default(),
    )
    .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        read_catalog(&client, "rbee/catalog"),
    )
    .await
    .expect("the pusher hung on a huge catalog index")
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        message.contains("$.workers[0].versions: lists 361843 items; at most 1000"),
        "{message}"
    );
}
