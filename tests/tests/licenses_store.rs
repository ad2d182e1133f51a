//! Licensed downloads with real licenses in the catalog's database, on
//! SQLite and on PostgreSQL: the right license gets a signed URL that a
//! plain client downloads with no header; another worker's license, a
//! revoked or an expired one does not; an expired license with the
//! perpetual fallback still unlocks what was published before it expired;
//! `/v1/licenses/verify` answers for each kind of key; and `rbee-worker
//! install` (the real binary) installs a premium worker with a key only.

mod common;

use chrono::{Duration, Utc};
use common::catalog::{TestCatalog, other_worker, publish_files};
use common::publishing::{Fixture, binaries};
use rbee_store::testing::TestDatabase;
use rbee_store::{Grant, NewLicense};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const PREMIUM: &str = "premium-worker-rbee-cuda";
const PREMIUM_OTHER: &str = "premium-worker-rbee-rocm";
const PURCHASE: &str = "https://rbee.dev/buy/premium-worker-rbee-cuda";
const PLATFORM: &str = "linux-x86_64";

async fn catalog_on(db: &TestDatabase) -> TestCatalog {
    let url = db.url().to_owned();
    TestCatalog::start(move |c| c.database_url = Some(url)).await
}

/// Publishes premium worker `id` 1.0.0 (created 2026-01-01).
async fn publish_premium(catalog: &TestCatalog, id: &str) -> Fixture {
    let (fixture, files) = other_worker(id, "1.0.0", false);
    fixture.edit_metadata(|m| {
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = json!({ "amount": 49.0, "currency": "EUR", "purchase_url": PURCHASE });
    });
    publish_files(&catalog.registry_url, &files).await;
    fixture
}

/// Issues a license and returns its key.
async fn license(catalog: &TestCatalog, new: NewLicense) -> String {
    let (_, key) = catalog
        .state()
        .store
        .create_license("test", new)
        .await
        .expect("a license");
    key.expose().to_owned()
}

fn for_workers(ids: &[&str]) -> NewLicense {
    NewLicense {
        owner: "customer".into(),
        grants: ids.iter().map(|id| Grant::Worker((*id).into())).collect(),
        expires_at: None,
        perpetual_fallback: false,
    }
}

fn download_path(id: &str) -> String {
    format!("/v1/workers/{id}/1.0.0/download?platform={PLATFORM}")
}

async fn download_with(catalog: &TestCatalog, id: &str, key: &str) -> common::catalog::Reply {
    catalog
        .get_with(
            &download_path(id),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await
}

async fn verify(catalog: &TestCatalog, token: &str) -> Value {
    catalog
        .send_json(
            reqwest::Method::POST,
            "/v1/licenses/verify",
            None,
            &json!({ "token": token }),
        )
        .await
        .ok_json()
}

rbee_store::database_test!(
    async fn with_the_right_license_a_plain_client_downloads_the_build(db) {
        let catalog = catalog_on(db).await;
        let _a = publish_premium(&catalog, PREMIUM).await;
        let _b = publish_premium(&catalog, PREMIUM_OTHER).await;
        let key = license(&catalog, for_workers(&[PREMIUM])).await;

        let reply = download_with(&catalog, PREMIUM, &key).await;
        assert_eq!(reply.header("cache-control"), "private, no-store");
        let body = reply.ok_json();
        assert_eq!(body["expires_in"], 3600);
        let url = body["download_url"].as_str().unwrap();
        assert!(url.starts_with(&catalog.url), "{url}");
        assert!(!url.contains(&key), "the key must not travel in the URL");
        // Plain reqwest, no header at all.
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            body["checksum"].as_str().unwrap()
        );
        assert_eq!(bytes.len() as u64, body["size"].as_u64().unwrap());

        // The listing says what this key unlocks.
        let list = catalog
            .get_with("/v1/workers", &[("authorization", &format!("Bearer {key}"))])
            .await
            .ok_json();
        let unlocked: Vec<(String, bool)> = list["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["id"].as_str().unwrap().to_owned(),
                    w["unlocked"].as_bool().unwrap(),
                )
            })
            .collect();
        assert!(unlocked.contains(&(PREMIUM.into(), true)), "{unlocked:?}");
        assert!(unlocked.contains(&(PREMIUM_OTHER.into(), false)), "{unlocked:?}");
        catalog.stop().await;
    }
);

rbee_store::database_test!(
    async fn a_license_for_another_worker_is_403_with_the_purchase_url(db) {
        let catalog = catalog_on(db).await;
        let _a = publish_premium(&catalog, PREMIUM).await;
        let _b = publish_premium(&catalog, PREMIUM_OTHER).await;
        let key = license(&catalog, for_workers(&[PREMIUM_OTHER])).await;
        let body = download_with(&catalog, PREMIUM, &key)
            .await
            .error(403, Some("License required"));
        assert_eq!(body["purchase_url"], PURCHASE);
        assert!(body.get("download_url").is_none());
        // ... and it does unlock its own worker.
        download_with(&catalog, PREMIUM_OTHER, &key).await.ok_json();
        // A namespace grant unlocks both.
        let ns = license(
            &catalog,
            NewLicense {
                grants: vec![Grant::Namespace("rbee-premium".into())],
                ..for_workers(&[])
            },
        )
        .await;
        download_with(&catalog, PREMIUM, &ns).await.ok_json();
        catalog.stop().await;
    }
);

rbee_store::database_test!(
    async fn revoked_and_expired_licenses_unlock_nothing_but_the_perpetual_fallback(db) {
        let catalog = catalog_on(db).await;
        let _a = publish_premium(&catalog, PREMIUM).await;
        let store = &catalog.state().store;

        let (revoked, revoked_key) = store
            .create_license("test", for_workers(&[PREMIUM]))
            .await
            .unwrap();
        download_with(&catalog, PREMIUM, revoked_key.expose())
            .await
            .ok_json();
        store.revoke_license("test", &revoked.id).await.unwrap();
        download_with(&catalog, PREMIUM, revoked_key.expose())
            .await
            .error(403, Some("License required"));

        // Expired yesterday; the release was published on 2026-01-01, before.
        let yesterday = Utc::now() - Duration::days(1);
        let expired = license(
            &catalog,
            NewLicense {
                expires_at: Some(yesterday),
                ..for_workers(&[PREMIUM])
            },
        )
        .await;
        download_with(&catalog, PREMIUM, &expired)
            .await
            .error(403, Some("License required"));
        let fallback = license(
            &catalog,
            NewLicense {
                expires_at: Some(yesterday),
                perpetual_fallback: true,
                ..for_workers(&[PREMIUM])
            },
        )
        .await;
        download_with(&catalog, PREMIUM, &fallback).await.ok_json();
        // Expired before the release was published: the fallback does not
        // reach it.
        let too_old = license(
            &catalog,
            NewLicense {
                expires_at: Some("2025-06-01T00:00:00Z".parse().unwrap()),
                perpetual_fallback: true,
                ..for_workers(&[PREMIUM])
            },
        )
        .await;
        download_with(&catalog, PREMIUM, &too_old)
            .await
            .error(403, Some("License required"));
        catalog.stop().await;
    }
);

rbee_store::database_test!(
    async fn verify_answers_for_valid_malformed_unknown_revoked_and_expired_keys(db) {
        let catalog = catalog_on(db).await;
        let store = &catalog.state().store;
        let until: chrono::DateTime<Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
        let valid = license(
            &catalog,
            NewLicense {
                expires_at: Some(until),
                ..for_workers(&[PREMIUM, PREMIUM_OTHER])
            },
        )
        .await;
        let body = verify(&catalog, &valid).await;
        assert_eq!(body["valid"], true, "{body}");
        assert_eq!(body["worker_ids"], json!([PREMIUM, PREMIUM_OTHER]));
        assert_eq!(body["expires_at"], "2099-01-01T00:00:00Z");
        let forever = license(&catalog, for_workers(&[PREMIUM])).await;
        assert_eq!(verify(&catalog, &forever).await["expires_at"], Value::Null);

        let (lic, revoked) = store
            .create_license("test", for_workers(&[PREMIUM]))
            .await
            .unwrap();
        store.revoke_license("test", &lic.id).await.unwrap();
        let yesterday = Utc::now() - Duration::days(1);
        let expired = license(
            &catalog,
            NewLicense {
                expires_at: Some(yesterday),
                ..for_workers(&[PREMIUM])
            },
        )
        .await;
        let expired_fallback = license(
            &catalog,
            NewLicense {
                expires_at: Some(yesterday),
                perpetual_fallback: true,
                ..for_workers(&[PREMIUM])
            },
        )
        .await;
        let mut unknown = valid.clone();
        unknown.pop();
        unknown.push(if valid.ends_with('a') { 'b' } else { 'a' });
        for (what, token) in [
            ("malformed", "rbee_lic_!!"),
            ("unknown", unknown.as_str()),
            ("revoked", revoked.expose()),
            ("expired", expired.as_str()),
            ("expired with the fallback", expired_fallback.as_str()),
            ("not a license", "rbee_pub_0000"),
        ] {
            assert_eq!(
                verify(&catalog, token).await,
                json!({ "valid": false }),
                "{what}"
            );
        }
        catalog.stop().await;
    }
);

/// Runs `rbee-worker` with `args` and `env` (and no `RBEE_WORKER_LICENSE`
/// from the test's own environment); its exit status and everything it
/// printed.
async fn rbee_worker(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let bins = binaries().await;
    let mut cmd = tokio::process::Command::new(&bins.rbee_worker);
    cmd.args(args)
        .env_remove("RBEE_WORKER_LICENSE")
        .env_remove("RBEE_LICENSE_KEY")
        .env("NO_PROXY", "127.0.0.1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("rbee-worker finishes within a minute")
        .expect("rbee-worker starts");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

rbee_store::database_test!(
    async fn rbee_worker_installs_a_premium_worker_with_a_key_only(db) {
        let catalog = catalog_on(db).await;
        let _a = publish_premium(&catalog, PREMIUM).await;
        let key = license(&catalog, for_workers(&[PREMIUM])).await;
        let other_key = license(&catalog, for_workers(&[PREMIUM_OTHER])).await;
        let dest = tempfile::tempdir().unwrap();
        let dest_arg = dest.path().to_str().unwrap();
        let install = |extra: &[&'static str]| -> Vec<String> {
            let mut args = vec!["--catalog".to_owned(), catalog.url.clone()];
            args.extend(["--dest", dest_arg, "install", PREMIUM].map(String::from));
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let run = |args: Vec<String>, env: Vec<(&'static str, String)>| async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            rbee_worker(&args, &env).await
        };

        // No key: a clear error with the purchase URL and how to give one.
        let (ok, said) = run(install(&[]), vec![]).await;
        assert!(!ok, "{said}");
        assert!(said.contains(PURCHASE), "{said}");
        assert!(said.contains("--license"), "{said}");

        // Another worker's key: refused, and the key is never printed.
        let mut args = install(&[]);
        args.extend(["--license".to_owned(), other_key.clone()]);
        let (ok, said) = run(args, vec![]).await;
        assert!(!ok, "{said}");
        assert!(said.contains("does not unlock"), "{said}");
        assert!(said.contains(PURCHASE), "{said}");
        assert!(!said.contains(&other_key), "the key was printed: {said}");

        // The right key from a file installs it.
        let key_dir = tempfile::tempdir().unwrap();
        let key_file = key_dir.path().join("license.key");
        std::fs::write(&key_file, format!("{key}\n")).unwrap();
        let mut args = install(&[]);
        args.extend([
            "--license-file".to_owned(),
            key_file.to_str().unwrap().to_owned(),
        ]);
        let (ok, said) = run(args, vec![]).await;
        assert!(ok, "{said}");
        assert!(said.contains(&format!("installed {PREMIUM} 1.0.0")), "{said}");
        assert!(!said.contains(&key), "the key was printed: {said}");
        assert!(dest.path().join(PREMIUM).join("1.0.0").is_dir());

        // ... and from the environment (already installed by now).
        let (ok, said) = run(install(&[]), vec![("RBEE_WORKER_LICENSE", key.clone())]).await;
        assert!(ok, "{said}");
        assert!(said.contains("already installed"), "{said}");
        catalog.stop().await;
    }
);
