//! Hostile and malformed input: every case answers a 4xx with the right OCI
//! error code, never a 500, and nothing is written outside the data
//! directory. Paths go through a raw HTTP client, because `reqwest` would
//! resolve `..` and `%2e%2e` before sending them.

mod common;

use common::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One request and the answer it must get.
struct Case {
    method: &'static str,
    target: String,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(method: &'static str, target: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        method,
        target: target.into(),
        body: Vec::new(),
        status,
        code,
    }
}

async fn run_cases(reg: &TestRegistry, cases: Vec<Case>) {
    for c in cases {
        let context = format!("{} {}", c.method, c.target);
        let headers: &[(&str, &str)] = if c.target.contains("/manifests/") && c.method == "PUT" {
            &[("Content-Type", OCI_MANIFEST)]
        } else {
            &[]
        };
        let resp = reg.raw(c.method, &c.target, headers, &c.body).await;
        if c.method == "HEAD" {
            assert_eq!(resp.status, c.status, "{context}");
            assert!(
                resp.body.is_empty(),
                "{context}: HEAD answers carry no body"
            );
        } else {
            resp.expect_error(c.status, c.code, &context);
        }
    }
}

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
async fn hostile_tags_are_tag_invalid() {
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
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/manifests/{tag}"),
            400,
            "TAG_INVALID",
        ));
        cases.push(case(
            "HEAD",
            format!("/v2/rbee/w/manifests/{tag}"),
            400,
            "TAG_INVALID",
        ));
        cases.push(case(
            "DELETE",
            format!("/v2/rbee/w/manifests/{tag}"),
            400,
            "TAG_INVALID",
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
        cases.push(case(
            "GET",
            format!("/v2/rbee/w/manifests/{digest}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "DELETE",
            format!("/v2/rbee/w/manifests/{digest}"),
            400,
            "DIGEST_INVALID",
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
        "NOT_FOUND",
    ));
    cases.push(case(
        "GET",
        "/v2/rbee/w/manifests/sha256:../../escaped",
        404,
        "NOT_FOUND",
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

/// Asserts that neither `digests` nor any blob at all exists, and that no
/// upload session is left.
async fn assert_no_blob_and_no_session(reg: &TestRegistry, digests: &[&str]) {
    for digest in digests {
        expect_error(
            reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
                .send()
                .await
                .unwrap(),
            404,
            "BLOB_UNKNOWN",
        )
        .await;
        assert!(
            !reg.blob_path(digest).exists(),
            "{digest} must not be stored"
        );
    }
    assert_eq!(reg.files_in("blobs"), Vec::<std::path::PathBuf>::new());
    assert_eq!(reg.stored_sessions(), Vec::<String>::new());
}

#[tokio::test]
async fn an_upload_that_does_not_match_its_digest_leaves_nothing() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(70_000, 11);
    let actual = sha256(&data);
    let claimed = sha256(b"something else entirely");

    // Monolithic POST.
    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={claimed}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // POST then PUT.
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .put(&format!("{session}?digest={claimed}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // Chunked, then a final PUT without body.
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "0-39999")
        .body(data[..40_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .patch(&session)
        .body(data[40_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .put(&format!("{session}?digest={claimed}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // The same bytes with their true digest are then accepted.
    reg.push_blob("rbee/w", &data).await;
    assert_eq!(std::fs::read(reg.blob_path(&actual)).unwrap(), data);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

/// A valid image manifest padded with an annotation to exactly `len` bytes.
fn manifest_of_size(config: &[u8], len: usize) -> Vec<u8> {
    let mut m = oci_manifest(descriptor(OCI_EMPTY, config), vec![]);
    m["annotations"] = json!({"pad": ""});
    let base = json_bytes(&m).len();
    m["annotations"]["pad"] = json!("p".repeat(len - base));
    let body = json_bytes(&m);
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn manifests_over_4_mib_are_payload_too_large() {
    let reg = TestRegistry::start().await;
    reg.push_blob("rbee/w", b"{}").await;
    const LIMIT: usize = 4 << 20;

    let at_limit = manifest_of_size(b"{}", LIMIT);
    reg.push_manifest("rbee/w", "at-limit", OCI_MANIFEST, &at_limit)
        .await;

    let over = manifest_of_size(b"{}", LIMIT + 1);
    let resp = reg
        .put_manifest("rbee/w", "over", OCI_MANIFEST, &over)
        .await;
    expect_error(resp, 413, "SIZE_INVALID").await;

    // Without Content-Length (chunked), the limit holds all the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let resp = reg
        .put("/v2/rbee/w/manifests/over-chunked")
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "SIZE_INVALID").await;

    for tag in ["over", "over-chunked"] {
        let resp = reg
            .get(&format!("/v2/rbee/w/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    expect_error(
        reg.get(&format!("/v2/rbee/w/manifests/{}", sha256(&over)))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: Value = reg
        .get("/v2/rbee/w/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["at-limit"]));

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn a_manifest_cannot_reference_another_repositorys_content() {
    let reg = TestRegistry::start().await;
    let (image, image_digest) = reg.push_image("rbee/a", "1.0.0", b"layer of a").await;

    // The same image manifest pushed into b, whose blobs live only in a.
    let resp = reg
        .put_manifest("rbee/b", "1.0.0", OCI_MANIFEST, &image)
        .await;
    let err = expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(
        err["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "detail names the blob: {err}"
    );

    // b has the config but not the layer: still refused.
    reg.push_blob("rbee/b", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let resp = reg
        .put_manifest("rbee/b", "1.0.0", OCI_MANIFEST, &image)
        .await;
    let err = expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_eq!(err["errors"][0]["detail"], sha256(b"layer of a"));

    // A layer dressed as a foreign layer with no URL is still a blob b lacks.
    let mut dressed: Value = serde_json::from_slice(&image).unwrap();
    dressed["layers"][0]["urls"] = json!([]);
    let resp = reg
        .put_manifest("rbee/b", "dressed", OCI_MANIFEST, &json_bytes(&dressed))
        .await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    // A real foreign layer need not be here, and naming it does not make
    // a's copy readable through b.
    dressed["layers"][0]["urls"] = json!(["https://example.com/layer.tar.gz"]);
    let resp = reg
        .put_manifest("rbee/b", "foreign", OCI_MANIFEST, &json_bytes(&dressed))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let layer = sha256(b"layer of a");
    let resp = reg
        .get(&format!("/v2/rbee/b/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UNKNOWN").await;

    // An index in b over a manifest of a.
    let index = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()}]
    }));
    let resp = reg.put_manifest("rbee/b", "index", OCI_INDEX, &index).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;

    for tag in ["1.0.0", "index", "dressed"] {
        let resp = reg
            .get(&format!("/v2/rbee/b/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    let resp = reg
        .get(&format!("/v2/rbee/b/manifests/{image_digest}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "MANIFEST_UNKNOWN").await;

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
async fn upload_sessions_are_bound_to_their_repository() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(3000, 12);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/a").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "0-999")
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let id = session.rsplit('/').next().unwrap().to_owned();

    // The same id under other repositories' paths, including a prefix and
    // an extension of the owner's name.
    for other in ["rbee/b", "rbee", "rbee/a/b"] {
        let path = format!("/v2/{other}/blobs/uploads/{id}");
        expect_error(
            reg.get(&path).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        let resp = reg
            .patch(&path)
            .header("content-range", "1000-1999")
            .body(data[1000..2000].to_vec())
            .send()
            .await;
        expect_error(resp.unwrap(), 404, "BLOB_UPLOAD_UNKNOWN").await;
        let resp = reg
            .patch(&path)
            .body(data[1000..2000].to_vec())
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let resp = reg
            .put(&format!("{path}?digest={digest}"))
            .body(data[1000..].to_vec())
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        expect_error(
            reg.delete(&path).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
    }
    expect_error(
        reg.get(&format!("/v2/rbee/b/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    // Ids that are not ids at all.
    let mut cases = Vec::new();
    for bad in [
        "..%2F..%2Fescaped",
        "%2e%2e",
        "not-a-session",
        &id.to_uppercase(),
        &id[..31],
        &format!("{id}0"),
    ] {
        for method in ["GET", "PATCH", "PUT", "DELETE"] {
            let target = format!("/v2/rbee/a/blobs/uploads/{bad}?digest={digest}");
            cases.push(case(method, target, 404, "BLOB_UPLOAD_UNKNOWN"));
        }
    }
    run_cases(&reg, cases).await;

    // The session still works in its own repository, untouched by the above.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-999"));
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .header("content-range", "1000-2999")
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        reg.get(&format!("/v2/rbee/a/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    expect_error(
        reg.get(&format!("/v2/rbee/b/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn a_blob_is_invisible_through_repositories_that_do_not_link_it() {
    let reg = TestRegistry::start().await;
    let digest = reg.push_blob("rbee/a", b"private layer").await;
    reg.push_blob("rbee/b", b"something else").await;

    for repo in ["rbee/b", "rbee/never-pushed", "rbee"] {
        let path = format!("/v2/{repo}/blobs/{digest}");
        expect_error(reg.get(&path).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
        let resp = reg
            .get(&path)
            .header("range", "bytes=0-3")
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UNKNOWN").await;
        assert_eq!(
            reg.head(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        expect_error(reg.delete(&path).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
    }
    // Still there for its own repository.
    let resp = reg
        .get(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), &b"private layer"[..]);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn invalid_manifests_are_manifest_invalid() {
    let reg = TestRegistry::start().await;
    let config = b"{}";
    let layer = b"layer";
    reg.push_blob("rbee/w", config).await;
    reg.push_blob("rbee/w", layer).await;
    let image = oci_manifest(
        descriptor(OCI_EMPTY, config),
        vec![descriptor(OCI_LAYER, layer)],
    );

    let mut both = image.clone();
    both["manifests"] = json!([]);
    let mut index_with_layers =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
    index_with_layers["layers"] = json!([descriptor(OCI_LAYER, layer)]);
    let mut version_one = image.clone();
    version_one["schemaVersion"] = json!(1);
    let mut no_config = image.clone();
    no_config.as_object_mut().unwrap().remove("config");
    let mut hostile_layer = image.clone();
    hostile_layer["layers"][0]["digest"] = json!("sha256:../../escaped");
    let mut unknown_type = image.clone();
    unknown_type["mediaType"] = json!("application/x-evil");

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "mediaType disagrees with Content-Type",
            OCI_INDEX,
            json_bytes(&image),
        ),
        (
            "mediaType disagrees with Content-Type",
            DOCKER_MANIFEST,
            json_bytes(&image),
        ),
        ("both manifests and layers", OCI_MANIFEST, json_bytes(&both)),
        (
            "an index with layers",
            OCI_INDEX,
            json_bytes(&index_with_layers),
        ),
        ("schemaVersion 1", OCI_MANIFEST, json_bytes(&version_one)),
        ("no config", OCI_MANIFEST, json_bytes(&no_config)),
        (
            "a hostile layer digest",
            OCI_MANIFEST,
            json_bytes(&hostile_layer),
        ),
        (
            "an unknown media type",
            "application/x-evil",
            json_bytes(&unknown_type),
        ),
        ("not JSON", OCI_MANIFEST, b"not json at all".to_vec()),
        ("empty body", OCI_MANIFEST, Vec::new()),
        (
            "JSON that is not an object",
            OCI_MANIFEST,
            b"[1,2,3]".to_vec(),
        ),
    ];
    for (what, content_type, body) in cases {
        let resp = reg.put_manifest("rbee/w", "bad", content_type, &body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        check_error_body(&resp.bytes().await.unwrap(), "MANIFEST_INVALID", what);
    }
    expect_error(
        reg.get("/v2/rbee/w/manifests/bad").send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;

    // The valid one goes in, with a Content-Type that carries parameters.
    let resp = reg
        .put_manifest(
            "rbee/w",
            "good",
            &format!("{OCI_MANIFEST}; charset=utf-8"),
            &json_bytes(&image),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn malformed_chunk_headers_are_refused() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    for range in ["abc", "5-1", "-3", "0-", "bytes=0-3"] {
        let resp = reg
            .patch(&session)
            .header("content-range", range)
            .body(b"abcd".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Content-Range: {range}"
        );
        check_error_body(&resp.bytes().await.unwrap(), "RANGE_INVALID", range);
    }
    // Content-Range and Content-Length disagree, also at the edge of u64
    // (where computing the range's length overflows).
    for range in ["0-9", "0-18446744073709551615", "1-18446744073709551615"] {
        for method in [reqwest::Method::PATCH, reqwest::Method::PUT] {
            let resp = reg
                .client
                .request(
                    method,
                    reg.url(&format!("{session}?digest={}", sha256(b"abcd"))),
                )
                .header("content-range", range)
                .body(b"abcd".to_vec())
                .send()
                .await
                .unwrap();
            expect_error(resp, 400, "SIZE_INVALID").await;
        }
    }
    let resp = reg
        .patch(&session)
        .header("content-range", "18446744073709551615-18446744073709551615")
        .body(b"a".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Nothing was appended by any of it.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    let resp = reg
        .put(&format!("{session}?digest={}", sha256(b"abcd")))
        .body(b"abcd".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

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

#[tokio::test]
async fn manifests_and_referrers_are_invisible_through_other_repositories() {
    let reg = TestRegistry::start().await;
    let (image, digest) = reg.push_image("rbee/a", "1.0.0", b"layer").await;
    reg.push_blob("rbee/a", b"{}").await;
    let referrer = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": image.len()}
    }));
    reg.push_manifest("rbee/a", &sha256(&referrer), OCI_MANIFEST, &referrer)
        .await;
    reg.push_image("rbee/b", "2.0.0", b"other layer").await;

    for reference in ["1.0.0", digest.as_str()] {
        let path = format!("/v2/rbee/b/manifests/{reference}");
        expect_error(
            reg.get(&path).send().await.unwrap(),
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(
            reg.head(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        expect_error(
            reg.delete(&path).send().await.unwrap(),
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
    // A manifest is not a blob, not even in its own repository.
    let resp = reg
        .get(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = reg
        .get(&format!("/v2/rbee/b/referrers/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["manifests"], json!([]));

    // Still all there for the owner.
    let resp = reg.get("/v2/rbee/a/manifests/1.0.0").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), image);
    let resp = reg
        .get(&format!("/v2/rbee/a/referrers/{digest}"))
        .send()
        .await
        .unwrap();
    let index: Value = resp.json().await.unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&referrer));
    reg.stop().await;
}
