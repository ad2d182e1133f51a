//! The registry webhook accepts only CNCF Distribution's envelope, as
//! `docs/api.md` and `/openapi.json` say: a JSON body without `events`
//! (`{"nope":1}` got 200 and invalidated nothing) is 400, so a
//! misconfigured sender learns it at once.

use rbee_catalog::CatalogConfig;

async fn post(body: &str) -> (u16, serde_json::Value) {
    let data = tempfile::tempdir().unwrap();
    let mut config = CatalogConfig::new(data.path());
    config.webhook_secret = Some("s3cret".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = rbee_catalog::start(config, listener).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/registry", server.url()))
        .header("authorization", "Bearer s3cret")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    server.stop().await.unwrap();
    (code, body)
}

#[tokio::test]
async fn a_body_that_is_not_an_envelope_is_400() {
    for body in [r#"{"nope":1}"#, "{}", "[]", r#"{"events":{}}"#, "not json"] {
        let (code, answer) = post(body).await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "Bad request", "{body}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("not a notification envelope"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_envelope_is_applied() {
    let (code, answer) = post(
        r#"{"events":[{"action":"push","target":{"repository":"rbee/x"}},{"action":"pull"}]}"#,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["invalidated"], 1);
}
