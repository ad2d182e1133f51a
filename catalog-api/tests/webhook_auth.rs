//! The registry webhook answers as `/openapi.json` says: without
//! `Authorization` it is 401 whether or not a secret is configured
//! (schemathesis found a 404 there); with a credential, 404 while the
//! webhook is off and 401 for a wrong secret.

use rbee_catalog::CatalogConfig;

async fn status(secret: Option<&str>, auth: Option<&str>) -> u16 {
    let data = tempfile::tempdir().unwrap();
    let mut config = CatalogConfig::new(data.path());
    config.webhook_secret = secret.map(str::to_owned);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = rbee_catalog::start(config, listener).await.unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/registry", server.url()))
        .json(&serde_json::json!({ "events": [] }));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    // Errors are JSON `{"error", "message"}`; a success says what it did.
    let key = if code == 200 { "invalidated" } else { "error" };
    assert!(body.get(key).is_some(), "{body}");
    server.stop().await.unwrap();
    code
}

#[tokio::test]
async fn no_credential_is_401_even_when_the_webhook_is_off() {
    assert_eq!(status(None, None).await, 401);
    assert_eq!(status(Some("s3cret"), None).await, 401);
    assert_eq!(status(Some("s3cret"), Some("Basic czNjcmV0")).await, 401);
}

#[tokio::test]
async fn a_credential_learns_that_the_webhook_is_off_or_wrong() {
    assert_eq!(status(None, Some("Bearer anything")).await, 404);
    assert_eq!(status(Some("s3cret"), Some("Bearer wrong")).await, 401);
    assert_eq!(status(Some("s3cret"), Some("Bearer s3cret")).await, 200);
}
