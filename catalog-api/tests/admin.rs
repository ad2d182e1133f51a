//! The `/admin` API against a real catalog on `127.0.0.1:0`, on SQLite and
//! on PostgreSQL (`database_test!`): the admin key guards every route, keys
//! are shown once, revocation works at once, every action is audited, and
//! errors are JSON `{"error", "message"}`. Also the library functions
//! behind the `rbee-catalog license|publisher-key|audit` commands.

use rbee_catalog::admin::{self, Format};
use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_store::testing::TestDatabase;
use rbee_store::{Grant, NewLicense, NewPublisherKey, Store, database_test};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running catalog on the test database, with its admin key.
struct Server {
    running: RunningCatalog,
    http: reqwest::Client,
    admin_key: String,
    data: tempfile::TempDir,
}

impl Server {
    async fn start(db: &TestDatabase) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig::new(data.path());
        config.database_url = Some(db.url().to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rbee_catalog::start(config, listener).await.unwrap();
        let admin_key = std::fs::read_to_string(admin::admin_key_path(data.path()))
            .expect("the first start writes the admin key")
            .trim()
            .to_owned();
        Server {
            running,
            http: reqwest::Client::new(),
            admin_key,
            data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin{path}", self.running.url())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap();
        answer(resp).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(resp).await
    }

    /// Stops the catalog, then closes its database pool: on PostgreSQL
    /// the catalog holds a LISTEN connection until it stops, and
    /// `close()` waits for every connection to come back.
    async fn stop(self) {
        let store = self.running.state.store.clone();
        self.running.stop().await.unwrap();
        store.close().await;
    }
}

async fn answer(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    if status.is_success() {
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    (status, resp.json().await.expect("a JSON body"))
}

fn assert_json_error(body: &Value) {
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

database_test!(async fn licenses_are_issued_shown_and_revoked_over_http(db) {
    let server = Server::start(db).await;
    let (status, created) = server
        .post(
            "/licenses",
            json!({
                "owner": "acme",
                "grants": [{"worker": "llm"}, {"namespace": "rbee-premium"}],
                "expires_at": "2099-01-01T00:00:00Z",
                "perpetual_fallback": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("rbee_lic_"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["expired"], false);
    assert_eq!(created["perpetual_fallback"], true);
    assert_eq!(created["grants"], json!([{"worker": "llm"}, {"namespace": "rbee-premium"}]));

    let store = &server.running.state.store;
    assert_eq!(store.authenticate(&key).await.unwrap().unwrap().id, id);

    let (status, listed) = server.get("/licenses").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("key").is_none(), "a key is shown only at creation");
    let (status, shown) = server.get(&format!("/licenses/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["owner"], "acme");
    assert!(!shown.to_string().contains(&key));

    let (status, revoked) = server.post(&format!("/licenses/{id}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(store.authenticate(&key).await.unwrap(), None);

    let (status, body) = server.get("/licenses/lic_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_json_error(&body);
    let (status, body) = server.post("/licenses/lic_nope/revoke", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_json_error(&body);
    server.stop().await;
});

database_test!(async fn publisher_keys_are_issued_and_revoked_over_http(db) {
    let server = Server::start(db).await;
    let (status, created) = server
        .post("/publisher-keys", json!({"owner": "ci", "grants": [{"namespace": "acme"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("rbee_pub_"));
    let store = &server.running.state.store;
    assert!(store.authenticate(&key).await.unwrap().unwrap().covers("acme/x"));
    let (_, listed) = server.get("/publisher-keys").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let id = created["id"].as_str().unwrap();
    let (status, _) = server.post(&format!("/publisher-keys/{id}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.authenticate(&key).await.unwrap(), None);
    server.stop().await;
});

database_test!(async fn every_admin_route_needs_the_admin_key(db) {
    let server = Server::start(db).await;
    let store = server.running.state.store.clone();
    let (_, license_key) = store
        .create_license(
            "cli",
            NewLicense {
                owner: "acme".into(),
                grants: vec![Grant::Worker("llm".into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .unwrap();
    let revoked_admin = server.admin_key.clone();
    let routes = [
        ("GET", "/licenses"),
        ("POST", "/licenses"),
        ("GET", "/licenses/x"),
        ("POST", "/licenses/x/revoke"),
        ("GET", "/publisher-keys"),
        ("POST", "/publisher-keys"),
        ("POST", "/publisher-keys/x/revoke"),
        ("GET", "/audit"),
    ];
    let audit_before = store.audit_log(1000, None).await.unwrap().len();
    let wrong = [
        None,
        Some(license_key.expose().to_owned()),
        Some("rbee_adm_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned()),
        Some("garbage".to_owned()),
    ];
    for (method, path) in routes {
        for key in &wrong {
            let mut request = server
                .http
                .request(method.parse().unwrap(), server.url(path))
                .json(&json!({"owner": "x", "grants": [{"worker": "x"}]}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path} {key:?}");
            assert_json_error(&resp.json().await.unwrap());
        }
    }
    // A rotated admin key stops working at once.
    let new_admin = store.rotate_admin_key("cli").await.unwrap();
    let resp = server
        .http
        .get(server.url("/licenses"))
        .bearer_auth(&revoked_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = server
        .http
        .get(server.url("/licenses"))
        .bearer_auth(new_admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Nothing was created by the refused requests.
    assert_eq!(store.list_licenses().await.unwrap().len(), 1);
    assert!(store.list_publisher_keys().await.unwrap().is_empty());
    // Only the rotation and the one allowed list were audited.
    assert_eq!(store.audit_log(1000, None).await.unwrap().len(), audit_before + 2);
    server.stop().await;
});

database_test!(async fn bad_admin_requests_get_json_errors(db) {
    let server = Server::start(db).await;
    for body in [
        json!({"owner": "acme"}),
        json!({"owner": "acme", "grants": []}),
        json!({"owner": "acme", "grants": [{"worker": "Bad Id"}]}),
        json!({"owner": "acme", "grants": [{"repo": "x"}]}),
        json!({"owner": "", "grants": [{"worker": "llm"}]}),
        json!({"owner": "acme", "grants": [{"worker": "llm"}], "expires_at": "tomorrow"}),
        json!({"owner": "acme", "grants": [{"worker": "llm"}], "unknown": 1}),
    ] {
        let (status, answer) = server.post("/licenses", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_json_error(&answer);
    }
    let resp = server
        .http
        .post(server.url("/licenses"))
        .bearer_auth(&server.admin_key)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = server
        .http
        .post(server.url("/licenses"))
        .bearer_auth(&server.admin_key)
        .body(vec![b' '; 300 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, answer) = server.get("/audit?limit=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_json_error(&answer);
    assert!(server.running.state.store.list_licenses().await.unwrap().is_empty());
    server.stop().await;
});

database_test!(async fn every_admin_action_is_audited_under_the_admin_key_id(db) {
    let server = Server::start(db).await;
    let admin = server
        .running
        .state
        .store
        .authenticate(&server.admin_key)
        .await
        .unwrap()
        .unwrap();
    let (_, created) = server
        .post("/licenses", json!({"owner": "acme", "grants": [{"worker": "llm"}]}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.get("/licenses").await;
    server.get(&format!("/licenses/{id}")).await;
    server.post(&format!("/licenses/{id}/revoke"), json!({})).await;
    let (status, log) = server.get("/audit?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    let me = admin.id.as_str();
    assert_eq!(
        actions,
        vec![
            (me, "audit.list"),
            (me, "license.revoke"),
            (me, "license.show"),
            (me, "license.list"),
            (me, "license.create"),
        ]
    );
    let oldest_shown = log[4]["id"].as_i64().unwrap();
    let (_, older) = server.get(&format!("/audit?before={oldest_shown}")).await;
    assert_eq!(older[0]["action"], "admin_key.create");
    assert_eq!(older[0]["actor"], "system");
    // No key in the log, not even the admin key.
    let everything = server.get("/audit?limit=1000").await.1.to_string();
    assert!(!everything.contains(&server.admin_key));
    assert!(!everything.contains(created["key"].as_str().unwrap()));
    server.stop().await;
});

database_test!(async fn the_admin_key_file_is_written_once_and_private(db) {
    let server = Server::start(db).await;
    let path = admin::admin_key_path(server.data.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first = server.admin_key.clone();
    // Another node (or a restart) on the same database keeps the key and
    // writes no file. (A new data dir: the first server's registry keeps
    // its own locked until the process ends.)
    let other = tempfile::tempdir().unwrap();
    let mut config = CatalogConfig::new(other.path());
    config.database_url = Some(db.url().to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = rbee_catalog::start(config, listener).await.unwrap();
    assert!(!admin::admin_key_path(other.path()).exists(), "no new key while one is active");
    assert!(second.state.store.authenticate(&first).await.unwrap().is_some());
    let store = second.state.store.clone();
    second.stop().await.unwrap();
    store.close().await;
    server.stop().await;
});

database_test!(async fn the_command_functions_print_keys_once_and_records_after(db) {
    let store: Store = db.store().await;
    let created = admin::license_create(
        &store,
        NewLicense {
            owner: "acme".into(),
            grants: vec!["worker:llm".parse().unwrap()],
            expires_at: None,
            perpetual_fallback: false,
        },
        Format::Text,
    )
    .await
    .unwrap();
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_owned();
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(store.authenticate(&key).await.unwrap().is_some());
    let listed = admin::license_list(&store, Format::Text).await.unwrap();
    assert!(listed.contains(&id) && listed.contains("worker:llm") && !listed.contains(&key));
    let json: Value =
        serde_json::from_str(&admin::license_show(&store, &id, Format::Json).await.unwrap())
            .unwrap();
    assert_eq!(json["id"], id.as_str());
    admin::license_revoke(&store, &id, Format::Text).await.unwrap();
    assert!(store.authenticate(&key).await.unwrap().is_none());
    assert!(admin::license_show(&store, "lic_nope", Format::Text).await.is_err());

    let created: Value = serde_json::from_str(
        &admin::publisher_key_create(
            &store,
            NewPublisherKey { owner: "ci".into(), grants: vec![Grant::Namespace("acme".into())] },
            Format::Json,
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let pub_id = created["id"].as_str().unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("rbee_pub_"));
    assert!(admin::publisher_key_list(&store, Format::Text).await.unwrap().contains(pub_id));
    admin::publisher_key_revoke(&store, pub_id, Format::Text).await.unwrap();

    let audit = admin::audit(&store, 10, Format::Text).await.unwrap();
    for action in ["license.create", "license.revoke", "publisher_key.create", "publisher_key.revoke"] {
        assert!(audit.contains(action), "{action} in\n{audit}");
    }
    assert!(!audit.contains(&key));

    let dir = tempfile::tempdir().unwrap();
    let said = admin::admin_key_rotate(&store, dir.path()).await.unwrap();
    let rotated = std::fs::read_to_string(admin::admin_key_path(dir.path())).unwrap();
    assert!(!said.contains(rotated.trim()), "the key goes to the file, not the output");
    assert!(store.authenticate(rotated.trim()).await.unwrap().is_some());
    store.close().await;
});
