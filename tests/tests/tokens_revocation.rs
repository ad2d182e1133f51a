//! Revoking a license through the admin API, on a running catalog with
//! its embedded registry: new tokens and licensed downloads are refused at
//! once (the catalog's credential cache forgets the key), and a token
//! issued before the revocation stops working when its lifetime ends. The
//! lifetime is `serve --token-ttl` (60 s by default and at most, which is
//! the bound the design promises); here 2 s, so the test does not wait a
//! minute. On SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::catalog::publish_premium;
use rbee_catalog::CatalogConfig;
use serde_json::{Value, json};

const PREMIUM: &str = "premium-worker-rbee-cuda";
const TTL: Duration = Duration::from_secs(2);

rbee_store::database_test!(
    async fn a_revoked_licenses_token_stops_working_within_the_token_lifetime(db) {
        let data = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig::new(data.path());
        config.database_url = Some(db.url().to_owned());
        config.tokens.ttl = TTL;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let catalog = rbee_catalog::start(config, listener).await.unwrap();
        let url = catalog.url();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();

        let fixture = publish_premium(&catalog, PREMIUM).await;

        // The license, issued through the admin API.
        let admin_key = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
        let admin_key = admin_key.trim();
        let created: Value = http
            .post(format!("{url}/admin/licenses"))
            .bearer_auth(admin_key)
            .json(&json!({"owner": "customer", "grants": [{"worker": PREMIUM}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = created["key"].as_str().unwrap().to_owned();
        let id = created["id"].as_str().unwrap().to_owned();

        let token_url = format!(
            "{url}/token?service=rbee-registry&scope=repository:rbee-premium/{PREMIUM}:pull"
        );
        let fetch_token = || http.get(&token_url).basic_auth("customer", Some(&key)).send();
        let manifest = format!("{url}/v2/rbee-premium/{PREMIUM}/manifests/1.0.0");
        let head = |token: String| {
            http.head(&manifest)
                .header("accept", common::OCI_INDEX)
                .bearer_auth(token)
                .send()
        };
        let download = format!("{url}/v1/workers/{PREMIUM}/1.0.0/download?platform=linux-x86_64");
        let licensed_download = || http.get(&download).bearer_auth(&key).send();

        let issued: Value = fetch_token().await.unwrap().json().await.unwrap();
        assert_eq!(issued["expires_in"], TTL.as_secs(), "the configured lifetime: {issued}");
        let token = issued["token"].as_str().unwrap().to_owned();
        assert_eq!(head(token.clone()).await.unwrap().status(), 200);
        assert_eq!(licensed_download().await.unwrap().status(), 200);

        let resp = http
            .post(format!("{url}/admin/licenses/{id}/revoke"))
            .bearer_auth(admin_key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let revoked = Instant::now();

        // At once: no new token, no download (the cached lookup is gone).
        assert_eq!(fetch_token().await.unwrap().status(), 401);
        assert_eq!(licensed_download().await.unwrap().status(), 403);

        // The token already issued: refused once its lifetime ends, with a
        // challenge that sends the client back to the token service.
        let refused = loop {
            let resp = head(token.clone()).await.unwrap();
            if resp.status() != 200 {
                break resp;
            }
            assert!(
                revoked.elapsed() < TTL + Duration::from_secs(2),
                "the token still works {:?} after the revocation",
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(refused.status(), 401);
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(revoked.elapsed() <= TTL + Duration::from_secs(1));
        catalog.stop().await.unwrap();
        drop(fixture);
    }
);
