//! Listings: `tags/list`, `_catalog` and `referrers`, paged with `n` and
//! `last` and linked to the next page with `Link: <...>; rel="next"`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Follows `Link` headers from `first`, returning every page's `key` list
/// and the links seen.
async fn all_pages(reg: &TestRegistry, first: &str, key: &str) -> (Vec<Vec<Value>>, Vec<String>) {
    let mut pages = Vec::new();
    let mut links = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let resp = reg.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        if let Some(link) = header(&resp, "link") {
            let target = link
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("malformed Link header `{link}`"));
            next = Some(target.to_owned());
            links.push(link);
        }
        let page: Value = resp.json().await.unwrap();
        pages.push(
            page[key]
                .as_array()
                .unwrap_or_else(|| panic!("no `{key}` in {page}"))
                .clone(),
        );
        assert!(pages.len() < 100, "the pages never end");
    }
    (pages, links)
}

#[tokio::test]
async fn tags_list_pages_follow_n_last_and_link() {
    let reg = TestRegistry::start().await;
    let tags = ["nightly", "1.0.0", "latest", "2.0.0", "1.1.0"];
    let (body, _) = reg.push_image("rbee/w", tags[0], b"layer").await;
    for tag in &tags[1..] {
        reg.push_manifest("rbee/w", tag, OCI_MANIFEST, &body).await;
    }

    // Everything at once, sorted, without a Link.
    let resp = reg.get("/v2/rbee/w/tags/list").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "link").is_none());
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"name": "rbee/w", "tags": ["1.0.0", "1.1.0", "2.0.0", "latest", "nightly"]})
    );

    let (pages, links) = all_pages(&reg, "/v2/rbee/w/tags/list?n=2", "tags").await;
    assert_eq!(
        pages,
        [
            json!(["1.0.0", "1.1.0"]),
            json!(["2.0.0", "latest"]),
            json!(["nightly"])
        ]
        .map(|p| p.as_array().unwrap().clone())
    );
    assert_eq!(
        links,
        [
            "</v2/rbee/w/tags/list?n=2&last=1.1.0>; rel=\"next\"",
            "</v2/rbee/w/tags/list?n=2&last=latest>; rel=\"next\"",
        ]
    );

    // `last` alone, `last` past the end, `n=0`, and an exact last page.
    let page = |path: &'static str| {
        let reg = &reg;
        async move {
            let resp = reg.get(path).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let link = header(&resp, "link");
            (resp.json::<Value>().await.unwrap()["tags"].clone(), link)
        }
    };
    assert_eq!(
        page("/v2/rbee/w/tags/list?last=2.0.0").await,
        (json!(["latest", "nightly"]), None)
    );
    assert_eq!(
        page("/v2/rbee/w/tags/list?last=zzz").await,
        (json!([]), None)
    );
    assert_eq!(
        page("/v2/rbee/w/tags/list?last=1.0.1").await.0,
        json!(["1.1.0", "2.0.0", "latest", "nightly"])
    );
    assert_eq!(page("/v2/rbee/w/tags/list?n=0").await, (json!([]), None));
    assert_eq!(
        page("/v2/rbee/w/tags/list?n=5").await.1,
        None,
        "no Link when nothing follows"
    );
    reg.stop().await;
}

#[tokio::test]
async fn tags_list_of_an_unknown_repository_is_name_unknown() {
    let reg = TestRegistry::start().await;
    expect_error(
        reg.get("/v2/rbee/nothing/tags/list").send().await.unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    reg.push_image("rbee/w", "1.0.0", b"layer").await;
    expect_error(
        reg.get("/v2/rbee/nothing/tags/list").send().await.unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    expect_error(
        reg.get("/v2/rbee/tags/list").send().await.unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    expect_error(
        reg.get("/v2/rbee/w/x/tags/list").send().await.unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    reg.stop().await;
}

#[tokio::test]
async fn catalog_lists_repositories_in_pages() {
    let reg = TestRegistry::start().await;
    let resp = reg.get("/v2/_catalog").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"repositories": []})
    );

    let repos = [
        "rbee/llm-worker-rbee-cpu",
        "rbee-premium/sd-worker",
        "a/b/c",
        "rbee/w",
        "z",
    ];
    for repo in repos {
        reg.push_image(repo, "1.0.0", repo.as_bytes()).await;
    }
    // A repository holding only a blob is a repository too.
    reg.push_blob("rbee/blobs-only", b"x").await;

    let mut want: Vec<&str> = repos.to_vec();
    want.push("rbee/blobs-only");
    want.sort();
    let resp = reg.get("/v2/_catalog").send().await.unwrap();
    assert!(header(&resp, "link").is_none());
    assert_eq!(
        resp.json::<Value>().await.unwrap()["repositories"],
        json!(want)
    );

    let (pages, links) = all_pages(&reg, "/v2/_catalog?n=4", "repositories").await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0], json!(want[..4]).as_array().unwrap().clone());
    assert_eq!(pages[1], json!(want[4..]).as_array().unwrap().clone());
    assert_eq!(
        links,
        [format!("</v2/_catalog?n=4&last={}>; rel=\"next\"", want[3])]
    );

    let (pages, _) = all_pages(&reg, "/v2/_catalog?n=1", "repositories").await;
    assert_eq!(pages.concat(), json!(want).as_array().unwrap().clone());
    reg.stop().await;
}

#[tokio::test]
async fn referrers_are_paged_too() {
    let reg = TestRegistry::start().await;
    let (subject_body, subject) = reg.push_image("rbee/w", "1.0.0", b"layer").await;
    reg.push_blob("rbee/w", b"{}").await;
    let mut digests = Vec::new();
    for i in 0..3 {
        let body = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.note",
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"i": i.to_string()}
        }));
        digests.push(
            reg.push_manifest("rbee/w", &sha256(&body), OCI_MANIFEST, &body)
                .await,
        );
    }
    digests.sort();

    let (pages, links) = all_pages(
        &reg,
        &format!("/v2/rbee/w/referrers/{subject}?n=1"),
        "manifests",
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert_eq!(links.len(), 2);
    let listed: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, digests);
    reg.stop().await;
}

#[tokio::test]
async fn every_page_of_a_filtered_referrers_listing_keeps_the_filter() {
    let reg = TestRegistry::start().await;
    let (subject_body, subject) = reg.push_image("rbee/w", "1.0.0", b"layer").await;
    reg.push_blob("rbee/w", b"{}").await;
    // A `+` in the type is what a naive query string turns into a space.
    let wanted = "application/vnd.example.note+json";
    let mut notes = Vec::new();
    for i in 0..6 {
        let artifact_type = if i % 2 == 0 {
            wanted
        } else {
            "application/vnd.example.other"
        };
        let body = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"i": i.to_string()}
        }));
        let digest = reg
            .push_manifest("rbee/w", &sha256(&body), OCI_MANIFEST, &body)
            .await;
        if artifact_type == wanted {
            notes.push(digest);
        }
    }
    notes.sort();

    let mut next = Some(format!(
        "/v2/rbee/w/referrers/{subject}?n=1&artifactType=application%2Fvnd.example.note%2Bjson"
    ));
    let mut listed = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages <= notes.len(), "more pages than matching referrers");
        let resp = reg.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&resp, "oci-filters-applied").as_deref(),
            Some("artifactType"),
            "page {pages} ({path}) says it is filtered"
        );
        next = header(&resp, "link").map(|link| {
            link.strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("malformed Link header `{link}`"))
                .to_owned()
        });
        let page: Value = resp.json().await.unwrap();
        for d in page["manifests"].as_array().unwrap() {
            assert_eq!(d["artifactType"], wanted, "page {pages} ({path}): {d}");
            listed.push(d["digest"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(pages, notes.len(), "one matching referrer per page");
    assert_eq!(listed, notes);
    reg.stop().await;
}
