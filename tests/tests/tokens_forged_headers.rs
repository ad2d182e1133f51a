//! The token attacks of `auth/src/token/tests.rs` that `tokens_attacks.rs`
//! does not send over the wire, sent to a running catalog's embedded
//! registry (`/v2`, tokens required, keys in its data dir): a header that
//! names its own key (`jwk`, `jku`, `x5u`, `x5c`), whether the token is
//! signed by an attacker's key or even by the catalog's own, and tokens
//! signed by the catalog's own key that lack a required claim (`exp`,
//! `aud`, `iss`, `sub`, `nbf`, `iat`, `jti`, `access`) or carry one of the
//! wrong type. Each gets 401 `UNAUTHORIZED` with the `invalid_token`
//! challenge. A control token made the same way with every claim right
//! gets 200, so the refusals are the verifier's, not a broken signer's.

mod common;

use common::catalog::publish_premium;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rbee_auth::SigningKey;
use rbee_catalog::{CatalogConfig, RunningCatalog};
use serde_json::{Value, json};

const PREMIUM: &str = "premium-worker-rbee-cuda";
const SERVICE: &str = rbee_auth::token::DEFAULT_SERVICE;
const ISSUER: &str = rbee_auth::token::DEFAULT_ISSUER;

struct Setup {
    catalog: RunningCatalog,
    /// The catalog's signing key, as the attacker who stole nothing does
    /// NOT have it: used for the control and for the claim checks, which
    /// must fail even with the right signature.
    ours: EncodingKey,
    kid: String,
    http: reqwest::Client,
    data: tempfile::TempDir,
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
        let path = data.path().join("tokens/signing-key.pk8");
        let kid = SigningKey::read(&path).unwrap().kid().to_owned();
        Setup {
            ours: EncodingKey::from_ed_der(&std::fs::read(&path).unwrap()),
            kid,
            catalog,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            data,
            _fixture: fixture,
        }
    }

    /// GET of the premium manifest with `token`.
    async fn get(&self, token: &str) -> reqwest::Response {
        self.http
            .get(format!(
                "{}/v2/rbee-premium/{PREMIUM}/manifests/1.0.0",
                self.catalog.url()
            ))
            .header("accept", common::OCI_INDEX)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Asserts that `token` is refused as a token that does not verify.
    async fn expect_invalid(&self, token: &str, what: &str) {
        let resp = self.get(token).await;
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            challenge,
            format!(
                "Bearer realm=\"{}/token\",service=\"{SERVICE}\",\
                 scope=\"repository:rbee-premium/{PREMIUM}:pull\",error=\"invalid_token\"",
                self.catalog.url()
            ),
            "{what}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{what}: {body}");
    }

    /// An EdDSA header naming the catalog's key.
    fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header
    }
}

/// Claims that grant pull on the premium worker, right in every way.
fn claims() -> Value {
    let now = rbee_auth::token::unix_now();
    json!({
        "iss": ISSUER, "aud": SERVICE, "sub": "lic_forged",
        "exp": now + 60, "nbf": now - 10, "iat": now, "jti": "forged-1",
        "access": [{"type": "repository", "name": format!("rbee-premium/{PREMIUM}"), "actions": ["pull"]}],
    })
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_name_their_own_key_are_refused() {
    let s = Setup::start().await;
    // The control: the catalog's key, a plain header, the right claims.
    let good = sign(&s.header(), &claims(), &s.ours);
    assert_eq!(s.get(&good).await.status(), 200, "the control token");

    let (attacker, attacker_der) = SigningKey::generate().unwrap();
    let theirs = EncodingKey::from_ed_der(&attacker_der);
    let attacker_jwk = attacker.public().to_jwk();
    let catalog_jwk = rbee_auth::SigningKey::read(&s.data.path().join("tokens/signing-key.pk8"))
        .unwrap()
        .public()
        .to_jwk();

    // Signed by the attacker, carrying the attacker's key, under our kid
    // and under the attacker's own.
    for kid in [s.kid.clone(), attacker.kid().to_owned()] {
        let mut header = s.header();
        header.kid = Some(kid);
        header.jwk = Some(attacker_jwk.clone());
        s.expect_invalid(&sign(&header, &claims(), &theirs), "jwk: attacker's key")
            .await;
    }
    // Signed by the attacker, pointing at a key set or a certificate.
    let mut header = s.header();
    header.kid = Some(attacker.kid().to_owned());
    header.jku = Some("https://evil.example/jwks.json".into());
    s.expect_invalid(&sign(&header, &claims(), &theirs), "jku: attacker's key")
        .await;
    let mut header = s.header();
    header.x5u = Some("https://evil.example/cert.pem".into());
    s.expect_invalid(&sign(&header, &claims(), &theirs), "x5u: attacker's key")
        .await;

    // Even signed by the catalog's own key: a header that names a key is
    // refused, never followed.
    let mut named: Vec<(&str, Header)> = Vec::new();
    let mut header = s.header();
    header.jwk = Some(catalog_jwk);
    named.push(("jwk: our key", header));
    let mut header = s.header();
    header.jku = Some(format!("{}/token/jwks.json", s.catalog.url()));
    named.push(("jku: our JWKS", header));
    let mut header = s.header();
    header.x5u = Some("https://evil.example/cert.pem".into());
    named.push(("x5u", header));
    let mut header = s.header();
    header.x5c = Some(vec!["MIIB".into()]);
    named.push(("x5c", header));
    for (what, header) in named {
        s.expect_invalid(&sign(&header, &claims(), &s.ours), what)
            .await;
    }
    s.catalog.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_missing_or_mistyping_a_required_claim_are_refused() {
    let s = Setup::start().await;
    let good = sign(&s.header(), &claims(), &s.ours);
    assert_eq!(s.get(&good).await.status(), 200, "the control token");

    for claim in ["exp", "aud", "iss", "sub", "nbf", "iat", "jti", "access"] {
        let mut body = claims();
        body.as_object_mut().unwrap().remove(claim);
        let token = sign(&s.header(), &body, &s.ours);
        s.expect_invalid(&token, &format!("without {claim}")).await;
    }
    let now = rbee_auth::token::unix_now();
    let wrong: [(&str, Value); 6] = [
        ("exp", json!((now + 60).to_string())),
        ("nbf", json!((now - 10).to_string())),
        ("aud", json!(42)),
        ("iss", json!(["not", "a", "string"])),
        ("sub", json!(null)),
        ("access", json!("repository:rbee-premium/x:pull")),
    ];
    for (claim, value) in wrong {
        let mut body = claims();
        body[claim] = value.clone();
        let token = sign(&s.header(), &body, &s.ours);
        s.expect_invalid(&token, &format!("{claim} = {value}"))
            .await;
    }
    s.catalog.stop().await.unwrap();
}
