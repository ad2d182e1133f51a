//! The access gate over HTTP, with tokens minted here by an
//! `rbee_auth::Issuer` whose public key the registry trusts: who may pull,
//! push and delete, the challenges standard clients follow, the catalog
//! listing, and cross-repository mounts.

mod common;

use std::sync::Arc;

use common::*;
use rbee_auth::{Issuer, Scope, SigningKey, Verifier};
use rbee_registry::gate::{AccessConfig, TokenAuth};
use reqwest::StatusCode;

const REALM: &str = "http://token.example/token";
const SERVICE: &str = "rbee-registry";
const ISSUER: &str = "rbee-token-service";

struct Fixture {
    reg: TestRegistry,
    issuer: Issuer,
    /// Pulls and pushes with the admin's grant, to set up content.
    admin: reqwest::Client,
}

/// A registry that trusts `issuer` (and nothing else), not in development
/// mode, holding `rbee/free:1.0` and `rbee-premium/paid:1.0`.
async fn fixture(configure: impl FnOnce(&mut AccessConfig)) -> Fixture {
    let (key, _) = SigningKey::generate().unwrap();
    let verifier = Verifier::new([key.public()], ISSUER, SERVICE);
    let issuer = Issuer::new(key, ISSUER, SERVICE);
    let mut reg = TestRegistry::start_with(|config| {
        config.access = AccessConfig {
            tokens: Some(TokenAuth {
                verifier: Arc::new(verifier),
                realm: REALM.into(),
                service: SERVICE.into(),
            }),
            ..AccessConfig::default()
        };
        configure(&mut config.access);
    })
    .await;
    let admin = client_with(&token(
        &issuer,
        &[
            "repository:rbee/free:pull,push,delete",
            "repository:rbee-premium/paid:pull,push,delete",
            "repository:rbee-premium/other:pull,push,delete",
            "registry:catalog:*",
        ],
    ));
    let anonymous = std::mem::replace(&mut reg.client, admin.clone());
    reg.push_image("rbee/free", "1.0", b"free layer").await;
    reg.push_image("rbee-premium/paid", "1.0", b"paid layer")
        .await;
    reg.client = anonymous;
    Fixture { reg, issuer, admin }
}

fn token(issuer: &Issuer, scopes: &[&str]) -> String {
    let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
    issuer.issue(None, None, &scopes).unwrap().token
}

fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Asserts a 401 `UNAUTHORIZED` with the challenge standard clients read.
async fn expect_challenge(resp: reqwest::Response, scope: Option<&str>, error: Option<&str>) {
    let challenge = header(&resp, "www-authenticate").expect("a WWW-Authenticate challenge");
    let mut expected = format!("Bearer realm=\"{REALM}\",service=\"{SERVICE}\"");
    if let Some(scope) = scope {
        expected.push_str(&format!(",scope=\"{scope}\""));
    }
    if let Some(error) = error {
        expected.push_str(&format!(",error=\"{error}\""));
    }
    assert_eq!(challenge, expected);
    expect_error(resp, 401, "UNAUTHORIZED").await;
}

fn layer_digest() -> String {
    sha256(b"paid layer")
}

#[tokio::test]
async fn the_version_check_sends_clients_to_the_token_service() {
    let f = fixture(|_| {}).await;
    expect_challenge(f.reg.get("/v2/").send().await.unwrap(), None, None).await;
    let any = client_with(&token(&f.issuer, &[]));
    let resp = any.get(f.reg.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn public_repositories_are_readable_without_a_token_premium_ones_never() {
    let f = fixture(|_| {}).await;
    let resp = f
        .reg
        .get("/v2/rbee/free/manifests/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = f
        .reg
        .get("/v2/rbee-premium/paid/manifests/1.0")
        .send()
        .await
        .unwrap();
    expect_challenge(resp, Some("repository:rbee-premium/paid:pull"), None).await;
    let path = format!("/v2/rbee-premium/paid/blobs/{}", layer_digest());
    let resp = f.reg.get(&path).send().await.unwrap();
    expect_challenge(resp, Some("repository:rbee-premium/paid:pull"), None).await;
    for path in [
        "/v2/rbee-premium/paid/tags/list".to_owned(),
        format!("/v2/rbee-premium/paid/referrers/{}", layer_digest()),
    ] {
        let resp = f.reg.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // With a token for it, the premium layer comes back whole.
    let licensed = client_with(&token(&f.issuer, &["repository:rbee-premium/paid:pull"]));
    let resp = licensed.get(f.reg.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"paid layer");
}

#[tokio::test]
async fn anonymous_pull_can_be_switched_off() {
    let f = fixture(|access| access.anonymous_pull = false).await;
    let resp = f
        .reg
        .get("/v2/rbee/free/manifests/1.0")
        .send()
        .await
        .unwrap();
    expect_challenge(resp, Some("repository:rbee/free:pull"), None).await;
}

#[tokio::test]
async fn anonymous_push_and_delete_are_refused_with_a_challenge() {
    let f = fixture(|_| {}).await;
    let resp = f
        .reg
        .post("/v2/rbee/free/blobs/uploads/")
        .send()
        .await
        .unwrap();
    expect_challenge(resp, Some("repository:rbee/free:pull,push"), None).await;
    let resp = f
        .reg
        .put_manifest("rbee/free", "2.0", OCI_MANIFEST, b"{}")
        .await;
    expect_challenge(resp, Some("repository:rbee/free:pull,push"), None).await;
    let resp = f
        .reg
        .delete("/v2/rbee/free/manifests/1.0")
        .send()
        .await
        .unwrap();
    expect_challenge(resp, Some("repository:rbee/free:delete"), None).await;
    // Nothing changed.
    let resp = f
        .reg
        .get("/v2/rbee/free/manifests/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_pull_token_does_not_push_and_says_insufficient_scope() {
    let f = fixture(|_| {}).await;
    let puller = client_with(&token(&f.issuer, &["repository:rbee/free:pull"]));
    let resp = puller
        .post(f.reg.url("/v2/rbee/free/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    expect_challenge(
        resp,
        Some("repository:rbee/free:pull,push"),
        Some("insufficient_scope"),
    )
    .await;
    // A push token does not delete.
    let pusher = client_with(&token(&f.issuer, &["repository:rbee/free:pull,push"]));
    let resp = pusher
        .delete(f.reg.url("/v2/rbee/free/manifests/1.0"))
        .send()
        .await
        .unwrap();
    expect_challenge(
        resp,
        Some("repository:rbee/free:delete"),
        Some("insufficient_scope"),
    )
    .await;
    // And a push token pushes.
    let mut reg = f.reg;
    reg.client = pusher;
    reg.push_image("rbee/free", "2.0", b"new layer").await;
}

#[tokio::test]
async fn a_token_for_one_repository_does_not_open_another() {
    let f = fixture(|_| {}).await;
    let other = client_with(&token(
        &f.issuer,
        &["repository:rbee-premium/other:pull,push"],
    ));
    let resp = other
        .get(f.reg.url("/v2/rbee-premium/paid/manifests/1.0"))
        .send()
        .await
        .unwrap();
    expect_challenge(
        resp,
        Some("repository:rbee-premium/paid:pull"),
        Some("insufficient_scope"),
    )
    .await;
}

#[tokio::test]
async fn a_forged_or_foreign_token_is_refused_even_for_public_reads() {
    let f = fixture(|_| {}).await;
    let (stranger, _) = SigningKey::generate().unwrap();
    let foreign = Issuer::new(stranger, ISSUER, SERVICE);
    let client = client_with(&token(&foreign, &["repository:rbee-premium/paid:pull"]));
    for path in [
        "/v2/rbee-premium/paid/manifests/1.0",
        "/v2/rbee/free/manifests/1.0",
    ] {
        let resp = client.get(f.reg.url(path)).send().await.unwrap();
        let scope = if path.contains("premium") {
            "repository:rbee-premium/paid:pull"
        } else {
            "repository:rbee/free:pull"
        };
        expect_challenge(resp, Some(scope), Some("invalid_token")).await;
    }
}

#[tokio::test]
async fn the_catalog_lists_only_what_the_caller_may_pull() {
    let f = fixture(|_| {}).await;
    let list = |client: reqwest::Client| {
        let url = f.reg.url("/v2/_catalog");
        async move {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let body: serde_json::Value = resp.json().await.unwrap();
            body["repositories"].clone()
        }
    };
    assert_eq!(
        list(reqwest::Client::new()).await,
        serde_json::json!(["rbee/free"])
    );
    let licensed = client_with(&token(&f.issuer, &["repository:rbee-premium/paid:pull"]));
    assert_eq!(
        list(licensed).await,
        serde_json::json!(["rbee-premium/paid", "rbee/free"])
    );
    assert_eq!(
        list(f.admin.clone()).await,
        serde_json::json!(["rbee-premium/paid", "rbee/free"])
    );
}

#[tokio::test]
async fn a_mount_without_pull_on_the_source_is_a_plain_upload_never_linked() {
    let f = fixture(|_| {}).await;
    let digest = layer_digest();
    // Push rights on rbee-premium/other only: the premium layer of `paid`
    // must not become readable through it.
    let thief = client_with(&token(
        &f.issuer,
        &["repository:rbee-premium/other:pull,push"],
    ));
    let resp = thief
        .post(f.reg.url(&format!(
            "/v2/rbee-premium/other/blobs/uploads/?mount={digest}&from=rbee-premium/paid"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = thief
        .get(f.reg.url(&format!("/v2/rbee-premium/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // With pull on the source the same mount links the blob.
    let both = client_with(&token(
        &f.issuer,
        &[
            "repository:rbee-premium/other:pull,push",
            "repository:rbee-premium/paid:pull",
        ],
    ));
    let resp = both
        .post(f.reg.url(&format!(
            "/v2/rbee-premium/other/blobs/uploads/?mount={digest}&from=rbee-premium/paid"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn without_a_token_service_writes_are_denied() {
    let reg = TestRegistry::start_with(|config| config.access = AccessConfig::default()).await;
    let resp = reg
        .post("/v2/rbee/free/blobs/uploads/")
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "DENIED").await;
    let resp = reg
        .get("/v2/rbee-premium/paid/tags/list")
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "DENIED").await;
    // Public reads and the version check still work.
    assert_eq!(
        reg.get("/v2/").send().await.unwrap().status(),
        StatusCode::OK
    );
    let resp = reg.get("/v2/rbee/free/tags/list").send().await.unwrap();
    expect_error(resp, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn content_and_upload_sessions_never_cross_into_another_repository() {
    let f = fixture(|_| {}).await;
    // The premium layer exists only in rbee-premium/paid: through the
    // public repository's path it is unknown, not served.
    let resp = f
        .reg
        .get(&format!("/v2/rbee/free/blobs/{}", layer_digest()))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UNKNOWN").await;

    // An upload session opened in rbee/free, continued under another
    // repository the caller may push to: unknown there.
    let pusher = client_with(&token(
        &f.issuer,
        &[
            "repository:rbee/free:pull,push",
            "repository:rbee-premium/other:pull,push",
        ],
    ));
    let resp = pusher
        .post(f.reg.url("/v2/rbee/free/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").unwrap();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let bytes = b"smuggled".to_vec();
    let digest = sha256(&bytes);
    let resp = pusher
        .put(f.reg.url(&format!(
            "/v2/rbee-premium/other/blobs/uploads/{id}?digest={digest}"
        )))
        .body(bytes)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = pusher
        .get(f.reg.url(&format!("/v2/rbee-premium/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
