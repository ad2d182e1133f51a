//! Licenses, publisher keys, the admin key and `authenticate`, each test
//! on SQLite and on PostgreSQL (`store_test!`).

use chrono::{Duration, Utc};
use rbee_store::{
    CredentialKind, Grant, NewLicense, NewPublisherKey, Status, StoreError, store_test,
};

fn license_for(worker: &str) -> NewLicense {
    NewLicense {
        owner: "acme".into(),
        grants: vec![Grant::Worker(worker.into())],
        expires_at: None,
        perpetual_fallback: false,
    }
}

store_test!(async fn a_new_license_key_authenticates_as_its_license(store) {
    let (license, key) = store.create_license("cli", license_for("llm")).await.unwrap();
    assert!(license.id.starts_with("lic_"));
    let credential = store.authenticate(key.expose()).await.unwrap().unwrap();
    assert_eq!(credential.kind, CredentialKind::License);
    assert_eq!(credential.id, license.id);
    assert_eq!(credential.owner, "acme");
    assert_eq!(credential.grants, vec![Grant::Worker("llm".into())]);
    assert!(credential.covers("rbee-premium/llm"));
    assert!(!credential.covers("rbee-premium/other"));
});

store_test!(async fn licenses_are_listed_shown_and_found_by_key(store) {
    let (first, _) = store.create_license("cli", license_for("one")).await.unwrap();
    let (second, key) = store
        .create_license(
            "cli",
            NewLicense {
                owner: "globex".into(),
                grants: vec![
                    Grant::Namespace("rbee-premium".into()),
                    Grant::Worker("x".into()),
                ],
                expires_at: Some(Utc::now() + Duration::days(30)),
                perpetual_fallback: true,
            },
        )
        .await
        .unwrap();
    let listed = store.list_licenses().await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    assert_eq!(store.license(&second.id).await.unwrap(), Some(second.clone()));
    assert_eq!(store.license("lic_nope").await.unwrap(), None);
    assert_eq!(store.license_by_key(key.expose()).await.unwrap(), Some(second));
});

store_test!(async fn a_revoked_license_stops_authenticating_at_once(store) {
    let (license, key) = store.create_license("cli", license_for("llm")).await.unwrap();
    let revoked = store.revoke_license("adm_x", &license.id).await.unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.authenticate(key.expose()).await.unwrap(), None);
    // Still visible to admins and to the license check, as revoked.
    let found = store.license_by_key(key.expose()).await.unwrap().unwrap();
    assert_eq!(found.status, Status::Revoked);
    assert!(!found.is_valid_at(Utc::now()));
    // Revoking again keeps the first revocation time.
    let again = store.revoke_license("adm_x", &license.id).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
});

store_test!(async fn an_expired_license_authenticates_only_with_the_perpetual_fallback(store) {
    let end = Utc::now() + Duration::days(1);
    let mut plain = license_for("llm");
    plain.expires_at = Some(end);
    let (_, plain_key) = store.create_license("cli", plain.clone()).await.unwrap();
    let mut fallback = plain;
    fallback.perpetual_fallback = true;
    let (_, fallback_key) = store.create_license("cli", fallback).await.unwrap();

    let before = end - Duration::seconds(1);
    let after = end + Duration::seconds(1);
    assert!(store.authenticate_at(plain_key.expose(), before).await.unwrap().is_some());
    assert_eq!(store.authenticate_at(plain_key.expose(), after).await.unwrap(), None);
    assert_eq!(store.authenticate_at(plain_key.expose(), end).await.unwrap(), None);
    let kept = store
        .authenticate_at(fallback_key.expose(), after)
        .await
        .unwrap()
        .unwrap();
    assert!(kept.perpetual_fallback);
    // The end as stored: whole microseconds.
    let stored_end = kept.expires_at.unwrap();
    assert!((stored_end - end).num_microseconds().unwrap().abs() < 1);
});

store_test!(async fn malformed_unknown_and_lookalike_keys_do_not_authenticate(store) {
    let (_, key) = store.create_license("cli", license_for("llm")).await.unwrap();
    let text = key.expose();
    let unknown = format!("{}{}", &text[..text.len() - 1], if text.ends_with('a') { 'b' } else { 'a' });
    let as_publisher = text.replacen("rbee_lic_", "rbee_pub_", 1);
    let as_admin = text.replacen("rbee_lic_", "rbee_adm_", 1);
    for bad in ["", "rbee_lic_", "Bearer x", &unknown, &as_publisher, &as_admin, &text.to_uppercase()] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }
    assert_eq!(store.license_by_key(&as_publisher).await.unwrap(), None);
});

store_test!(async fn invalid_owners_and_grants_are_refused(store) {
    for new in [
        NewLicense { owner: " ".into(), ..license_for("llm") },
        NewLicense { owner: "a\nb".into(), ..license_for("llm") },
        NewLicense { grants: vec![], ..license_for("llm") },
        license_for("Not-An-Id"),
        license_for("-leading"),
        NewLicense { grants: vec![Grant::Namespace("a/b".into())], ..license_for("llm") },
    ] {
        let err = store.create_license("cli", new.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{new:?}: {err:?}");
    }
    assert!(store.list_licenses().await.unwrap().is_empty());
});

store_test!(async fn revoking_an_unknown_record_is_not_found(store) {
    let err = store.revoke_license("cli", "lic_nope").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: "license", .. }), "{err:?}");
    let err = store.revoke_publisher_key("cli", "pub_nope").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: "publisher key", .. }), "{err:?}");
    assert!(store.audit_log(10, None).await.unwrap().is_empty());
});

store_test!(async fn publisher_keys_authenticate_until_revoked(store) {
    let (key, secret) = store
        .create_publisher_key(
            "cli",
            NewPublisherKey {
                owner: "ci".into(),
                grants: vec![Grant::Namespace("acme".into())],
            },
        )
        .await
        .unwrap();
    assert!(secret.expose().starts_with("rbee_pub_"));
    let credential = store.authenticate(secret.expose()).await.unwrap().unwrap();
    assert_eq!(credential.kind, CredentialKind::Publisher);
    assert_eq!(credential.id, key.id);
    assert!(credential.covers("acme/worker"));
    assert!(!credential.covers("rbee/worker"));
    assert_eq!(store.list_publisher_keys().await.unwrap(), vec![key.clone()]);
    assert_eq!(store.publisher_key(&key.id).await.unwrap(), Some(key.clone()));
    let revoked = store.revoke_publisher_key("cli", &key.id).await.unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert_eq!(store.authenticate(secret.expose()).await.unwrap(), None);
});

store_test!(async fn the_admin_key_is_created_once_and_rotates(store) {
    let first = store.ensure_admin_key().await.unwrap().expect("created on first start");
    assert!(store.ensure_admin_key().await.unwrap().is_none());
    let admin = store.authenticate(first.expose()).await.unwrap().unwrap();
    assert_eq!(admin.kind, CredentialKind::Admin);
    assert!(admin.covers("rbee-premium/anything"));

    let second = store.rotate_admin_key("cli").await.unwrap();
    assert_eq!(store.authenticate(first.expose()).await.unwrap(), None);
    assert!(store.authenticate(second.expose()).await.unwrap().is_some());
    assert!(store.ensure_admin_key().await.unwrap().is_none());
});

store_test!(async fn nodes_starting_together_create_one_admin_key(store) {
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.ensure_admin_key().await.unwrap() })
    });
    let mut created = 0;
    for attempt in attempts {
        created += usize::from(attempt.await.unwrap().is_some());
    }
    assert_eq!(created, 1);
});

store_test!(async fn every_change_is_audited_without_the_key(store) {
    let (license, key) = store.create_license("cli", license_for("llm")).await.unwrap();
    store.revoke_license("adm_1", &license.id).await.unwrap();
    let (publisher, pub_key) = store
        .create_publisher_key(
            "adm_1",
            NewPublisherKey { owner: "ci".into(), grants: vec![Grant::Worker("llm".into())] },
        )
        .await
        .unwrap();
    store.record_audit("adm_1", "license.list", None, "").await.unwrap();

    let log = store.audit_log(10, None).await.unwrap();
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_deref()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("adm_1", "license.list", None),
            ("adm_1", "publisher_key.create", Some(publisher.id.as_str())),
            ("adm_1", "license.revoke", Some(license.id.as_str())),
            ("cli", "license.create", Some(license.id.as_str())),
        ]
    );
    assert!(log[3].detail.contains("acme"));
    for entry in &log {
        assert!(!entry.detail.contains(key.expose()) && !entry.detail.contains(pub_key.expose()));
    }
    // Paging: the entries before the second newest.
    let older = store.audit_log(10, Some(log[1].id)).await.unwrap();
    assert_eq!(older, log[2..].to_vec());
    assert_eq!(store.audit_log(1, None).await.unwrap(), log[..1].to_vec());
});

store_test!(async fn keys_are_stored_only_as_their_sha256(store) {
    use sha2::Digest;
    let (license, key) = store.create_license("cli", license_for("llm")).await.unwrap();
    let stored: String = match store.db() {
        rbee_store::Db::Sqlite(pool) => sqlx::query_scalar("SELECT key_hash FROM licenses WHERE id = $1")
            .bind(&license.id)
            .fetch_one(pool)
            .await
            .unwrap(),
        rbee_store::Db::Postgres(pool) => sqlx::query_scalar("SELECT key_hash FROM licenses WHERE id = $1")
            .bind(&license.id)
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    assert_eq!(stored, hex::encode(sha2::Sha256::digest(key.expose().as_bytes())));
});
