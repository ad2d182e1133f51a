//! The store's credential cache: a revocation through the caching store
//! takes effect at once, expiry is decided at every use, and a flood of
//! unknown keys keeps the cache within its capacity. Each test on SQLite
//! and on PostgreSQL.

use std::time::Duration;

use rbee_store::{CacheConfig, Grant, NewLicense, NewPublisherKey, store_test};

/// A cache whose entries outlive every test: only an invalidation can
/// make a cached answer change.
fn long_lived(capacity: usize) -> CacheConfig {
    CacheConfig {
        capacity,
        positive_ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
    }
}

fn license_for(worker: &str, expires_at: Option<chrono::DateTime<chrono::Utc>>) -> NewLicense {
    NewLicense {
        owner: "acme".into(),
        grants: vec![Grant::Worker(worker.into())],
        expires_at,
        perpetual_fallback: false,
    }
}

store_test!(async fn a_revoked_license_is_refused_at_once_by_the_caching_store(store) {
    let store = store.with_credential_cache(long_lived(100));
    let (license, key) = store.create_license("cli", license_for("llm", None)).await.unwrap();
    assert!(store.authenticate(key.expose()).await.unwrap().is_some());
    assert_eq!(store.cached_credentials(), 1, "the lookup is cached");

    store.revoke_license("cli", &license.id).await.unwrap();
    assert_eq!(store.authenticate(key.expose()).await.unwrap(), None);
});

store_test!(async fn a_revoked_publisher_key_and_a_rotated_admin_key_are_refused_at_once(store) {
    let store = store.with_credential_cache(long_lived(100));
    let (key, secret) = store
        .create_publisher_key(
            "cli",
            NewPublisherKey { owner: "ci".into(), grants: vec![Grant::Namespace("acme".into())] },
        )
        .await
        .unwrap();
    assert!(store.authenticate(secret.expose()).await.unwrap().is_some());
    store.revoke_publisher_key("cli", &key.id).await.unwrap();
    assert_eq!(store.authenticate(secret.expose()).await.unwrap(), None);

    let admin = store.ensure_admin_key().await.unwrap().unwrap();
    assert!(store.authenticate(admin.expose()).await.unwrap().is_some());
    let rotated = store.rotate_admin_key("cli").await.unwrap();
    assert_eq!(store.authenticate(admin.expose()).await.unwrap(), None);
    assert!(store.authenticate(rotated.expose()).await.unwrap().is_some());
});

store_test!(async fn a_cached_license_still_expires_on_time(store) {
    let store = store.with_credential_cache(long_lived(100));
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let (_, key) = store.create_license("cli", license_for("llm", Some(end))).await.unwrap();
    assert!(store.authenticate(key.expose()).await.unwrap().is_some());
    assert_eq!(store.cached_credentials(), 1);
    let after = end + chrono::Duration::seconds(1);
    assert_eq!(store.authenticate_at(key.expose(), after).await.unwrap(), None);
});

store_test!(async fn a_flood_of_unknown_keys_keeps_the_cache_bounded(store) {
    let store = store.with_credential_cache(long_lived(64));
    let (_, key) = store.create_license("cli", license_for("llm", None)).await.unwrap();
    for i in 0..500u32 {
        // Well-formed (so it reaches the database), unknown.
        let unknown = format!("rbee_lic_{:a>52}", format!("{i}").replace(['0', '1', '8', '9'], "b"));
        assert_eq!(store.authenticate(&unknown).await.unwrap(), None, "{unknown}");
    }
    assert!(store.cached_credentials() > 0, "unknown keys are cached too");
    assert!(
        store.cached_credentials() <= 64,
        "{} entries for a capacity of 64",
        store.cached_credentials()
    );
    assert!(store.authenticate(key.expose()).await.unwrap().is_some());
});
