//! Hostile and malformed request targets: repository names, tags, digests,
//! pagination numbers and odd query strings. Every case answers a 4xx with
//! the right OCI error code, never a 500, and nothing is written outside the
//! data directory. Paths go through a raw HTTP client, because `reqwest`
//! would resolve `..` and `%2e%2e` before sending them.

mod common;

use common::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn hostile_names_are_name_invalid() {
    let reg = TestRegistry::start().await;
    let valid = sha256(b"x");
    let too_long = "a".repeat(256);
    let mut cases = Vec::new();
    for name in [
        "..",
        "../..",
        "rbee/../..",
        "%2e%2e",
        "rbee%2F..%2F..%2Fescaped",
        "a//b",
        "Rbee/worker",
        "rbee/Worker",
        "rbee/w/",
        "rbee/",
        "/rbee",
        "-rbee",
        "rbee/w.",
        "rbee\\w",
        too_long.as_str(),
    ] {
        cases.push(case(
            "GET",
            format!("/v2/{name}/manifests/latest"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "GET",
            format!("/v2/{name}/tags/list"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "GET",
            format!("/v2/{name}/blobs/{valid}"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "HEAD",
            format!("/v2/{name}/blobs/{valid}"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "POST",
            format!("/v2/{name}/blobs/uploads/"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "POST",
            format!("/v2/{name}/blobs/uploads/?digest={valid}"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "DELETE",
            format!("/v2/{name}/manifests/latest"),
            400,
            "NAME_INVALID",
        ));
        cases.push(case(
            "GET",
            format!("/v2/{name}/referrers/{valid}"),
            400,
            "NAME_INVALID",
        ));
        let mut put = case(
            "PUT",
            format!("/v2/{name}/manifests/latest"),
            400,
            "NAME_INVALID",
        );
        put.body = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
        cases.push(put);
    }
    // A hostile `from` of a mount.
    for from in ["..", "../../escaped", "a//b", "UPPER", too_long.as_str()] {
        cases.push(case(
            "POST",
            format!("/v2/rbee/w/blobs/uploads/?mount={valid}&from={from}"),
            400,
            "NAME_INVALID",
        ));
    }
    run_cases(&reg, cases).await;

    // The longest valid name is accepted (and simply unknown).
    let longest = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(longest.len(), 255);
    expect_error(
        reg.get(&format!("/v2/{longest}/tags/list"))
            .send()
            .await
            .unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    let digest = reg.push_blob(&longest, b"fits").await;
    assert_eq!(
        reg.get(&format!("/v2/{longest}/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn hostile_tags_are_unknown_to_reads_and_invalid_to_writes() {
    let reg = TestRegistry::start().await;
    let (body, _) = reg.push_image("rbee/w", "1.0.0", b"layer").await;
    let too_long = "t".repeat(129);
    let mut cases = Vec::new();
    for tag in [
        too_long.as_str(),
        "..",
        ".hidden",
        "-dash",
        "a%2F..%2F..%2Fescaped",
        "%2e%2e",
    ] {
        // No manifest can have such a reference: reads and deletes find
        // none (as the OCI conformance suite expects); a PUT is invalid.
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/manifests/{tag}"),
            404,
            "MANIFEST_UNKNOWN",
        ));
        cases.push(case(
            "HEAD",
            format!("/v2/rbee/w/manifests/{tag}"),
            404,
            "MANIFEST_UNKNOWN",
        ));
        cases.push(case(
            "DELETE",
            format!("/v2/rbee/w/manifests/{tag}"),
            404,
            "MANIFEST_UNKNOWN",
        ));
        let mut put = case(
            "PUT",
            format!("/v2/rbee/w/manifests/{tag}"),
            400,
            "TAG_INVALID",
        );
        put.body = body.clone();
        cases.push(put);
    }
    run_cases(&reg, cases).await;

    // 128 characters is the longest valid tag.
    let longest = "t".repeat(128);
    reg.push_manifest("rbee/w", &longest, OCI_MANIFEST, &body)
        .await;
    let tags: Value = reg
        .get("/v2/rbee/w/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["1.0.0", longest]));

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn hostile_digests_are_digest_invalid() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let mut cases = Vec::new();
    for digest in [
        "sha256:..%2F..%2Fescaped".to_owned(),
        "sha256:..%2f..%2f..%2f..%2fescaped".to_owned(),
        "sha256:abc".to_owned(),
        format!("sha256:{}", "a".repeat(63)),
        format!("sha256:{}", "a".repeat(65)),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha512:{}", "a".repeat(64)),
        format!("md5:{}", "a".repeat(32)),
        format!("sha384:{}", "a".repeat(96)),
        format!("SHA256:{}", "a".repeat(64)),
        format!(":{}", "a".repeat(64)),
    ] {
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/blobs/{digest}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "HEAD",
            format!("/v2/rbee/w/blobs/{digest}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "DELETE",
            format!("/v2/rbee/w/blobs/{digest}"),
            400,
            "DIGEST_INVALID",
        ));
        // As a manifest reference it is no digest (nor tag): no manifest has it.
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/manifests/{digest}"),
            404,
            "MANIFEST_UNKNOWN",
        ));
        // As a manifest reference it is no digest (nor tag): no manifest has it.
        cases.push(case(
            "DELETE",
            format!("/v2/rbee/w/manifests/{digest}"),
            404,
            "MANIFEST_UNKNOWN",
        ));
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/referrers/{digest}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "POST",
            format!("/v2/rbee/w/blobs/uploads/?digest={digest}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "POST",
            format!("/v2/rbee/w/blobs/uploads/?mount={digest}&from=rbee/a"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "PUT",
            format!("{session}?digest={digest}"),
            400,
            "DIGEST_INVALID",
        ));
    }
    // Unencoded, a digest with slashes is not even a route; in a query it
    // is a digest, and an invalid one.
    cases.push(case(
        "GET",
        "/v2/rbee/w/blobs/sha256:../../escaped",
        404,
        "UNSUPPORTED",
    ));
    cases.push(case(
        "GET",
        "/v2/rbee/w/manifests/sha256:../../escaped",
        404,
        "UNSUPPORTED",
    ));
    cases.push(case(
        "POST",
        "/v2/rbee/w/blobs/uploads/?digest=sha256:../../escaped",
        400,
        "DIGEST_INVALID",
    ));
    cases.push(case(
        "PUT",
        format!("{session}?digest=sha256:../../escaped"),
        400,
        "DIGEST_INVALID",
    ));
    // A PUT that finishes an upload needs a digest.
    cases.push(case("PUT", session.clone(), 400, "DIGEST_INVALID"));
    run_cases(&reg, cases).await;

    // None of that opened a session or touched the one that is open.
    assert_eq!(reg.stored_sessions().len(), 1);
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(reg.files_in("blobs").is_empty());

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn pagination_numbers_are_checked_and_clamped() {
    let reg = TestRegistry::start().await;
    let (body, subject) = reg.push_image("rbee/w", "seed", b"layer").await;
    for path in [
        "/v2/rbee/w/tags/list".to_owned(),
        "/v2/_catalog".to_owned(),
        format!("/v2/rbee/w/referrers/{subject}"),
    ] {
        for n in ["-1", "abc", "", "1.5", "+3", "0x10", "%20"] {
            let target = format!("{path}?n={n}");
            reg.raw("GET", &target, &[], b"").await.expect_error(
                400,
                "PAGINATION_NUMBER_INVALID",
                &target,
            );
        }
    }

    // 1001 tags, more than one page can ever hold.
    let tags: Vec<String> = (0..1000).map(|i| format!("v{i:04}")).collect();
    let statuses: Vec<StatusCode> = futures_util::stream::iter(tags.iter())
        .map(|tag| {
            let reg = &reg;
            let body = &body;
            async move {
                reg.put_manifest("rbee/w", tag, OCI_MANIFEST, body)
                    .await
                    .status()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));

    for n in ["1000000000000", "99999999999999999999999999999"] {
        let resp = reg
            .get(&format!("/v2/rbee/w/tags/list?n={n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "n={n}");
        let link = header(&resp, "link").expect("a Link to the rest");
        let page: Value = resp.json().await.unwrap();
        let listed = page["tags"].as_array().unwrap();
        assert_eq!(listed.len(), 1000, "n={n} is clamped to 1000");
        assert_eq!(listed[0], "seed");
        assert_eq!(listed[999], "v0998");
        assert_eq!(
            link,
            "</v2/rbee/w/tags/list?n=1000&last=v0998>; rel=\"next\""
        );
    }
    let resp = reg
        .get("/v2/_catalog?n=1000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["repositories"],
        json!(["rbee/w"])
    );

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn odd_query_strings_do_not_fail_the_server() {
    let reg = TestRegistry::start().await;
    reg.push_image("rbee/w", "1.0.0", b"layer").await;
    // Not UTF-8 once decoded: not a number.
    let target = "/v2/rbee/w/tags/list?n=%FF%FE";
    reg.raw("GET", target, &[], b"")
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID", target);
    // A stray `%` is kept as it is (form decoding), and `last` may be anything.
    for target in [
        "/v2/_catalog?last=%",
        "/v2/rbee/w/tags/list?last=%00%2F..%2F",
        "/v2/rbee/w/tags/list?n=1&n=2",
    ] {
        let resp = reg.raw("GET", target, &[], b"").await;
        assert_eq!(
            resp.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}
