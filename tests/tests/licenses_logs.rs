//! No license key, no registry token and no signed URL's signature ever
//! reaches the logs: everything the process logs at debug level during
//! licensed downloads, refused downloads, license verification, token
//! requests (granted and refused) and registry reads with a token (valid
//! and tampered) is captured and searched.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::catalog::{TestCatalog, other_worker, publish_files};
use rbee_store::{Grant, NewLicense};
use serde_json::json;

const PREMIUM: &str = "premium-worker-rbee-cuda";

/// Every line logged by this test binary, at debug level and above.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .init();
        log
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

rbee_store::database_test!(
    async fn no_key_or_signature_appears_in_debug_logs(db) {
        let log = captured();
        tracing::debug!("capture works");
        let url = db.url().to_owned();
        let catalog = TestCatalog::start(move |c| c.database_url = Some(url)).await;
        let (fixture, files) = other_worker(PREMIUM, "1.0.0", false);
        fixture.edit_metadata(|m| {
            m["distribution"]["requires_license"] = true.into();
            m["pricing"] = json!({
                "amount": 49.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy"
            });
        });
        publish_files(&catalog.registry_url, &files).await;
        let (_, key) = catalog
            .state()
            .store
            .create_license(
                "test",
                NewLicense {
                    owner: "customer".into(),
                    grants: vec![Grant::Worker(PREMIUM.into())],
                    expires_at: None,
                    perpetual_fallback: false,
                },
            )
            .await
            .unwrap();
        let key = key.expose().to_owned();
        let bearer = format!("Bearer {key}");
        let path = format!("/v1/workers/{PREMIUM}/1.0.0/download?platform=linux-x86_64");

        // A licensed download, and the signed URL fetched.
        let body = catalog
            .get_with(&path, &[("authorization", &bearer)])
            .await
            .ok_json();
        let signed = body["download_url"].as_str().unwrap().to_owned();
        let signature = signed.split("signature=").nth(1).unwrap().to_owned();
        let resp = catalog.http.get(&signed).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        // A tampered URL, refused.
        let tampered = signed.replace("expires=", "expires=9");
        assert_eq!(
            catalog.http.get(&tampered).send().await.unwrap().status(),
            403
        );
        // The key in a listing, in a verify, and one that is refused.
        catalog
            .get_with("/v1/workers", &[("authorization", &bearer)])
            .await
            .ok_json();
        let verdict = catalog
            .send_json(
                reqwest::Method::POST,
                "/v1/licenses/verify",
                None,
                &json!({ "token": key }),
            )
            .await
            .ok_json();
        assert_eq!(verdict["valid"], true);
        let wrong = format!("{key}x");
        catalog
            .get_with(&path, &[("authorization", &format!("Bearer {wrong}"))])
            .await
            .error(403, Some("License required"));
        // A registry token for the key, used on the registry; a refused
        // token request, and a tampered token.
        let token_url = format!(
            "{}/token?service=rbee-registry&scope=repository:rbee-premium/{PREMIUM}:pull",
            catalog.url
        );
        let issued = catalog
            .http
            .get(&token_url)
            .basic_auth("customer", Some(&key))
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 200);
        let issued: serde_json::Value = issued.json().await.unwrap();
        let token = issued["token"].as_str().unwrap().to_owned();
        let manifest = format!("{}/v2/rbee-premium/{PREMIUM}/manifests/1.0.0", catalog.url);
        for (bearer, status) in [(token.clone(), 200), (format!("{token}x"), 200)] {
            // Loopback is open in these tests: a tampered token is logged
            // as refused, then the request goes through.
            let resp = catalog
                .http
                .head(&manifest)
                .header("accept", common::OCI_INDEX)
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status);
        }
        let refused = catalog
            .http
            .get(&token_url)
            .basic_auth("customer", Some(&wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        catalog.stop().await;
        drop(fixture);

        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        assert!(text.contains("capture works"), "nothing was captured");
        assert!(
            text.contains("licensed download"),
            "the licensed download was not logged at debug level:\n{text}"
        );
        // The key's random part, so that a prefix or a quoted form is found too.
        let secret_part = key.trim_start_matches("rbee_lic_");
        assert!(!secret_part.is_empty());
        assert!(!text.contains(secret_part), "the license key is in the log");
        assert!(text.contains("bearer token refused"), "the tampered token was not logged:\n{text}");
        let token_signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(token_signature), "a registry token is in the log");
        assert!(!text.contains(&signature), "a URL signature is in the log");
    }
);
