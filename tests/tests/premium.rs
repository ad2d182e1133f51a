//! Premium workers without a license that unlocks them: their downloads
//! are refused with a purchase URL, in the catalog and through the client,
//! so a paid build is never handed out unchecked. (Licensed downloads:
//! `licenses.rs` and `licenses_store.rs`.)

mod common;

use common::catalog::{TestCatalog, other_worker, publish_files};
use rbee_worker_client::{CatalogClient, ClientError, Installer, Platform};

const PREMIUM: &str = "premium-worker-rbee-cuda";
const PURCHASE: &str = "https://rbee.dev/buy/premium-worker-rbee-cuda";

#[tokio::test]
async fn premium_downloads_need_a_license() {
    let catalog = TestCatalog::embedded().await;
    let (fixture, files) = other_worker(PREMIUM, "1.0.0", false);
    fixture.edit_metadata(|m| {
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] =
            serde_json::json!({ "amount": 49.0, "currency": "EUR", "purchase_url": PURCHASE });
    });
    let summary = publish_files(&catalog.registry_url, &files).await;
    assert!(
        summary.repository.starts_with("rbee-premium/"),
        "premium workers live in their own namespace: {}",
        summary.repository
    );

    // The worker is listed, and says it needs a license.
    let worker = catalog
        .get(&format!("/v1/workers/{PREMIUM}"))
        .await
        .ok_json();
    assert_eq!(worker["requires_license"], true);

    // Its download is refused, with or without a key, and says where to buy one.
    for headers in [vec![], vec![("authorization", "Bearer rbee_lic_unknown")]] {
        let body = catalog
            .get_with(
                &format!("/v1/workers/{PREMIUM}/latest/download?platform=linux-x86_64"),
                &headers,
            )
            .await
            .error(403, Some("License required"));
        assert_eq!(body["purchase_url"], PURCHASE);
        assert!(body.get("download_url").is_none());
    }
    catalog
        .get(&format!(
            "/v1/workers/{PREMIUM}/1.0.0/blob?platform=linux-x86_64"
        ))
        .await
        .error(403, Some("License required"));

    // The client tells the caller what to do: get a key, or another one.
    for key in [None, Some("rbee_lic_x")] {
        let dest = tempfile::tempdir().unwrap();
        let client = CatalogClient::new(&catalog.url)
            .unwrap()
            .with_license_key(key.map(String::from));
        let installer = Installer::new(client, dest.path())
            .unwrap()
            .with_platform(Platform::LinuxX86_64);
        match (key, installer.install(PREMIUM, None, &|_, _| {}).await) {
            (None, Err(ClientError::LicenseRequired { purchase_url }))
            | (Some(_), Err(ClientError::LicenseNotAccepted { purchase_url })) => {
                assert_eq!(purchase_url.as_deref(), Some(PURCHASE))
            }
            other => panic!("expected a license error, got {other:?}"),
        }
        assert!(installer.list().unwrap().is_empty());
    }
    drop(fixture);
    catalog.stop().await;
}
