//! The token service over HTTP, with a credential lookup standing in for
//! the store, and the embedded registry trusting it: the docker token
//! flow end to end (challenge, token, retry).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use rbee_auth::{Principal, Role, Rule};
use rbee_catalog::CatalogConfig;
use rbee_catalog::tokens::{Authenticated, CredentialLookup, LookupError};
use reqwest::StatusCode;
use serde_json::Value;

const LICENSE: &str = "rbee_lic_for_paid";
const PUBLISHER: &str = "rbee_pub_for_acme";
const BROKEN: &str = "rbee_lic_the_store_is_down";

/// Two keys and a failure, as the store would answer them.
#[derive(Debug)]
struct Keys;

#[async_trait]
impl CredentialLookup for Keys {
    async fn authenticate(&self, secret: &str) -> Result<Option<Authenticated>, LookupError> {
        Ok(match secret {
            LICENSE => Some(Authenticated {
                principal: Principal {
                    role: Role::License,
                    id: "lic_1".into(),
                    rules: vec![Rule::Worker("paid".into())],
                    expires_at: None,
                },
                license: Some("lic_1".into()),
            }),
            PUBLISHER => Some(Authenticated {
                principal: Principal {
                    role: Role::Publisher,
                    id: "pub_1".into(),
                    rules: vec![Rule::Namespace("acme".into())],
                    expires_at: None,
                },
                license: None,
            }),
            BROKEN => return Err(LookupError("connection refused".into())),
            _ => None,
        })
    }
}

struct Server {
    running: rbee_catalog::RunningCatalog,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig::new(data.path());
        config.tokens.credentials = Some(Arc::new(Keys));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rbee_catalog::start(config, listener).await.unwrap();
        Server {
            running,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// `GET /token?<query>` with an optional `Authorization` value.
    async fn token(&self, query: &str, auth: Option<String>) -> reqwest::Response {
        let mut req = self.http.get(self.url(&format!("/token?{query}")));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send().await.unwrap()
    }

    /// The `access` claim of a token answer (after checking the answer).
    async fn access_of(&self, resp: reqwest::Response) -> Value {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token"], body["access_token"]);
        assert_eq!(body["expires_in"], 60);
        assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
        let token = body["token"].as_str().unwrap();
        // It verifies against the published JWKS.
        let jwks = self
            .http
            .get(self.url("/token/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let keys = rbee_auth::parse_jwks(&jwks).unwrap();
        rbee_auth::Verifier::new(&keys, "rbee-token-service", "rbee-registry")
            .verify(token)
            .expect("the token verifies with the published keys");
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["access"].clone()
    }
}

fn basic(user: &str, password: &str) -> Option<String> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {encoded}"))
}

const PREMIUM_PULL: &str = "scope=repository:rbee-premium/paid:pull";

#[tokio::test]
async fn anonymous_callers_get_public_pulls_only() {
    let s = Server::start().await;
    let resp = s
        .token(
            &format!("service=rbee-registry&scope=repository:rbee/free:pull,push&{PREMIUM_PULL}"),
            None,
        )
        .await;
    assert_eq!(
        s.access_of(resp).await,
        serde_json::json!([{"type": "repository", "name": "rbee/free", "actions": ["pull"]}])
    );
}

#[tokio::test]
async fn a_license_key_as_basic_password_or_bearer_unlocks_its_worker() {
    let s = Server::start().await;
    let expected = serde_json::json!([
        {"type": "repository", "name": "rbee-premium/paid", "actions": ["pull"]}
    ]);
    for auth in [basic("anyone", LICENSE), Some(format!("Bearer {LICENSE}"))] {
        let query =
            "scope=repository:rbee-premium/paid:pull,push&scope=repository:rbee-premium/other:pull";
        let access = s.access_of(s.token(query, auth).await).await;
        assert_eq!(access, expected);
    }
}

#[tokio::test]
async fn a_publisher_key_pushes_into_its_namespace_only() {
    let s = Server::start().await;
    let query = "scope=repository:acme/w:pull,push&scope=repository:rbee/w:pull,push";
    let access = s
        .access_of(s.token(query, basic("ci", PUBLISHER)).await)
        .await;
    assert_eq!(
        access,
        serde_json::json!([
            {"type": "repository", "name": "acme/w", "actions": ["pull", "push"]},
            {"type": "repository", "name": "rbee/w", "actions": ["pull"]},
        ])
    );
}

#[tokio::test]
async fn bad_credentials_are_401_and_a_failing_store_503() {
    let s = Server::start().await;
    for auth in [
        basic("any", "rbee_lic_unknown"),
        Some("Bearer rbee_lic_unknown".into()),
        Some("Basic !!!".into()),
        Some("Digest x".into()),
    ] {
        let resp = s.token(PREMIUM_PULL, auth.clone()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "Unauthorized");
    }
    let resp = s.token(PREMIUM_PULL, basic("any", BROKEN)).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("connection refused"), "{text}");
}

#[tokio::test]
async fn malformed_scopes_are_400() {
    let s = Server::start().await;
    for query in [
        "scope=repository:../x:pull",
        "scope=repository:a:admin",
        "scope=nonsense",
    ] {
        let resp = s.token(query, None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "Bad request", "{query}");
    }
}

#[tokio::test]
async fn the_embedded_registry_challenges_and_accepts_the_services_tokens() {
    let s = Server::start().await;
    let manifest = s.url("/v2/rbee-premium/paid/manifests/1.0.0");
    let resp = s.http.get(&manifest).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}\",service=\"rbee-registry\",scope=\"repository:rbee-premium/paid:pull\"",
            s.url("/token")
        )
    );
    // The client follows the challenge with the license key...
    let resp = s.token(PREMIUM_PULL, basic("any", LICENSE)).await;
    let token: Value = resp.json().await.unwrap();
    let token = token["token"].as_str().unwrap();
    // ...and is let through (nothing is published: 404, not 401).
    let resp = s
        .http
        .get(&manifest)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The same token does not push.
    let resp = s
        .http
        .post(s.url("/v2/rbee-premium/paid/blobs/uploads/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // And anonymous pushes are refused by default.
    let resp = s
        .http
        .post(s.url("/v2/rbee/free/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    // An external registry (never reached): restarts need no registry lock.
    let config = || {
        let mut config = CatalogConfig::new(data.path());
        config.registry_url = Some("http://127.0.0.1:9".into());
        config
    };
    let mut kids = Vec::new();
    for _ in 0..2 {
        let config = config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rbee_catalog::start(config, listener).await.unwrap();
        let jwks: Value = reqwest::get(format!("{}/token/jwks.json", running.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        kids.push(jwks["keys"][0]["kid"].clone());
        running.stop().await.unwrap();
    }
    assert_eq!(kids[0], kids[1]);
    // A previous key next to it is published too (a rotation).
    std::fs::rename(
        data.path().join("tokens/signing-key.pk8"),
        data.path().join("tokens/previous-signing-key.pk8"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = rbee_catalog::start(config(), listener).await.unwrap();
    let jwks: Value = reqwest::get(format!("{}/token/jwks.json", running.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], &kids[0]);
    assert_ne!(listed[0], &kids[0]);
}
