//! Token attacks sent over HTTP to a running catalog's embedded registry,
//! as `serve` runs it (tokens required, keys in its data dir): each is
//! answered 401 `UNAUTHORIZED` with the `WWW-Authenticate: Bearer`
//! challenge a standard client follows (`error="invalid_token"` for a
//! token that does not verify, `error="insufficient_scope"` for one that
//! does but does not grant the request). The verifier's own tests
//! (`auth/src/token/tests.rs`) cover every attack in process; these prove
//! the registry answers them the same way on the wire.

mod common;

use base64::Engine as _;
use common::catalog::publish_premium;
use hmac::{Hmac, Mac};
use rbee_auth::{Issuer, Scope, SigningKey};
use rbee_catalog::{CatalogConfig, RunningCatalog};
use serde_json::{Value, json};
use sha2::Sha256;

const PREMIUM: &str = "premium-worker-rbee-cuda";
const SERVICE: &str = rbee_auth::token::DEFAULT_SERVICE;
const ISSUER: &str = rbee_auth::token::DEFAULT_ISSUER;

struct Setup {
    catalog: RunningCatalog,
    data: tempfile::TempDir,
    http: reqwest::Client,
    _fixture: common::publishing::Fixture,
}

impl Setup {
    /// A catalog with `rbee-premium/PREMIUM:1.0.0` published.
    async fn start() -> Setup {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let catalog = rbee_catalog::start(CatalogConfig::new(data.path()), listener)
            .await
            .unwrap();
        let fixture = publish_premium(&catalog, PREMIUM).await;
        Setup {
            catalog,
            data,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _fixture: fixture,
        }
    }

    /// An issuer holding the catalog's own signing key, for `audience`.
    fn issuer(&self, audience: &str) -> Issuer {
        let key = SigningKey::read(&self.data.path().join("tokens/signing-key.pk8")).unwrap();
        Issuer::new(key, ISSUER, audience)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.catalog.url())
    }

    /// `method path` with `token` as bearer token.
    async fn send(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .header("accept", common::OCI_INDEX)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Asserts a 401 with the challenge for `scope` and `error`.
    async fn expect_refused(&self, resp: reqwest::Response, scope: &str, error: &str, what: &str) {
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            challenge,
            format!(
                "Bearer realm=\"{}\",service=\"{SERVICE}\",scope=\"{scope}\",error=\"{error}\"",
                self.url("/token")
            ),
            "{what}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{what}");
    }
}

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| Scope::parse(s).unwrap()).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload (claims) part of a compact JWT.
fn payload(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}

fn manifest_path() -> String {
    format!("/v2/rbee-premium/{PREMIUM}/manifests/1.0.0")
}

fn pull_scope() -> String {
    format!("repository:rbee-premium/{PREMIUM}:pull")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused_with_invalid_token() {
    let s = Setup::start().await;
    let get = reqwest::Method::GET;
    let issuer = s.issuer(SERVICE);
    let good = issuer
        .issue(None, None, &scopes(&[&pull_scope()]))
        .unwrap()
        .token;
    // The control: the catalog's key and the right claims open the door.
    assert_eq!(
        s.send(get.clone(), &manifest_path(), &good).await.status(),
        200
    );
    let kid = issuer.key().kid().to_owned();

    // alg none, with and without a signature.
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string();
    for signature in ["", "AAAA"] {
        let token = format!("{}.{}.{signature}", b64(header.as_bytes()), payload(&good));
        let resp = s.send(get.clone(), &manifest_path(), &token).await;
        s.expect_refused(resp, &pull_scope(), "invalid_token", "alg none")
            .await;
    }

    // HS256 keyed with the public key, in each form an attacker finds it
    // at the JWKS URL.
    let jwks: Value = s
        .http
        .get(s.url("/token/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let x = jwk["x"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string();
    let signing_input = format!("{}.{}", b64(header.as_bytes()), payload(&good));
    for secret in [raw, x.as_bytes().to_vec(), jwk.to_string().into_bytes()] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(signing_input.as_bytes());
        let token = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
        let resp = s.send(get.clone(), &manifest_path(), &token).await;
        s.expect_refused(
            resp,
            &pull_scope(),
            "invalid_token",
            "HS256 with the public key",
        )
        .await;
    }

    // A key the registry does not know (its own kid).
    let (stranger, _) = SigningKey::generate().unwrap();
    let token = Issuer::new(stranger, ISSUER, SERVICE)
        .issue(None, None, &scopes(&[&pull_scope()]))
        .unwrap()
        .token;
    let resp = s.send(get.clone(), &manifest_path(), &token).await;
    s.expect_refused(resp, &pull_scope(), "invalid_token", "unknown kid")
        .await;

    // Expired: issued 61 s ago, so past its 60 s life (no leeway).
    let token = issuer
        .issue_at(
            rbee_auth::token::unix_now() - 61,
            None,
            None,
            &scopes(&[&pull_scope()]),
        )
        .unwrap()
        .token;
    let resp = s.send(get.clone(), &manifest_path(), &token).await;
    s.expect_refused(resp, &pull_scope(), "invalid_token", "expired")
        .await;

    // The catalog's own key, for another registry service.
    let token = s
        .issuer("another-registry")
        .issue(None, None, &scopes(&[&pull_scope()]))
        .unwrap()
        .token;
    let resp = s.send(get.clone(), &manifest_path(), &token).await;
    s.expect_refused(resp, &pull_scope(), "invalid_token", "other audience")
        .await;

    // Even for a public read, a bad token is not silently anonymous.
    let resp = s.send(get, "/v2/rbee/catalog/tags/list", &token).await;
    s.expect_refused(
        resp,
        "repository:rbee/catalog:pull",
        "invalid_token",
        "public read",
    )
    .await;
    s.catalog.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_open_only_what_they_grant_with_insufficient_scope() {
    let s = Setup::start().await;
    let issuer = s.issuer(SERVICE);

    // A token for repository A used on B.
    let other = issuer
        .issue(
            None,
            None,
            &scopes(&["repository:rbee-premium/other-worker:pull"]),
        )
        .unwrap()
        .token;
    let resp = s.send(reqwest::Method::GET, &manifest_path(), &other).await;
    s.expect_refused(
        resp,
        &pull_scope(),
        "insufficient_scope",
        "repository A on B",
    )
    .await;

    // A pull token used to push (open an upload) and to delete.
    let pull = issuer
        .issue(None, None, &scopes(&[&pull_scope()]))
        .unwrap()
        .token;
    let uploads = format!("/v2/rbee-premium/{PREMIUM}/blobs/uploads/");
    let resp = s.send(reqwest::Method::POST, &uploads, &pull).await;
    let push_scope = format!("repository:rbee-premium/{PREMIUM}:pull,push");
    s.expect_refused(
        resp,
        &push_scope,
        "insufficient_scope",
        "pull token pushing",
    )
    .await;
    let resp = s
        .send(reqwest::Method::DELETE, &manifest_path(), &pull)
        .await;
    let delete_scope = format!("repository:rbee-premium/{PREMIUM}:delete");
    s.expect_refused(
        resp,
        &delete_scope,
        "insufficient_scope",
        "pull token deleting",
    )
    .await;
    // Nothing was changed: the manifest is still there for the puller.
    assert_eq!(
        s.send(reqwest::Method::GET, &manifest_path(), &pull)
            .await
            .status(),
        200
    );
    s.catalog.stop().await.unwrap();
}
