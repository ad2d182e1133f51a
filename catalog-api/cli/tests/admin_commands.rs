//! The real `rbee-catalog` binary's admin commands (`license`,
//! `publisher-key`, `audit`, `admin-key`) on SQLite and PostgreSQL: a key
//! is printed once at creation, works until revoked, and every change is
//! in the audit log.

use std::path::Path;
use std::process::Output;

use rbee_store::database_test;
use rbee_store::testing::TestDatabase;
use serde_json::Value;

async fn catalog(db: &TestDatabase, data_dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(db.url())
        .env_remove("RBEE_CATALOG_DATABASE_URL")
        .env_remove("RBEE_CATALOG_DATA_DIR")
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

database_test!(async fn license_commands_issue_list_show_and_revoke(db) {
    let data = tempfile::tempdir().unwrap();
    let created: Value = serde_json::from_str(&stdout(
        &catalog(
            db,
            data.path(),
            &[
                "license", "create", "--owner", "acme", "--grant", "worker:llm",
                "--grant", "namespace:rbee-premium", "--expires-at", "2099-01-01T00:00:00Z",
                "--perpetual-fallback", "--json",
            ],
        )
        .await,
    ))
    .unwrap();
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(key.starts_with("rbee_lic_"));
    assert_eq!(created["perpetual_fallback"], true);

    let store = db.store().await;
    assert_eq!(store.authenticate(key).await.unwrap().unwrap().id, id);

    let list = stdout(&catalog(db, data.path(), &["license", "list"]).await);
    assert!(list.contains(id) && list.contains("acme") && !list.contains(key), "{list}");
    let show = stdout(&catalog(db, data.path(), &["license", "show", id]).await);
    assert!(show.contains("namespace:rbee-premium") && !show.contains(key), "{show}");
    stdout(&catalog(db, data.path(), &["license", "revoke", id]).await);
    assert_eq!(store.authenticate(key).await.unwrap(), None);

    let missing = catalog(db, data.path(), &["license", "show", "lic_nope"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("lic_nope"));
    let bad = catalog(db, data.path(), &["license", "create", "--owner", "x", "--grant", "llm"]).await;
    assert!(!bad.status.success());

    let audit = stdout(&catalog(db, data.path(), &["audit", "--limit", "10"]).await);
    assert!(audit.contains("license.create") && audit.contains("license.revoke"), "{audit}");
    assert!(!audit.contains(key));
    store.close().await;
});

database_test!(async fn publisher_key_and_admin_key_commands(db) {
    let data = tempfile::tempdir().unwrap();
    let created = stdout(
        &catalog(
            db,
            data.path(),
            &["publisher-key", "create", "--owner", "ci", "--grant", "namespace:acme"],
        )
        .await,
    );
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim();
    assert!(key.starts_with("rbee_pub_"));
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim();
    let store = db.store().await;
    assert!(store.authenticate(key).await.unwrap().is_some());
    let list = stdout(&catalog(db, data.path(), &["publisher-key", "list", "--json"]).await);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id);
    stdout(&catalog(db, data.path(), &["publisher-key", "revoke", id]).await);
    assert!(store.authenticate(key).await.unwrap().is_none());

    let said = stdout(&catalog(db, data.path(), &["admin-key", "rotate"]).await);
    let admin_key = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
    assert!(!said.contains(admin_key.trim()), "the admin key is never printed");
    assert!(store.authenticate(admin_key.trim()).await.unwrap().is_some());
    store.close().await;
});
