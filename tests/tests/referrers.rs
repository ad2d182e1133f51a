//! The Referrers API with real clients: a release index pushed by skopeo,
//! its PKGBUILD attached by oras-py as a referrer (`subject` = the index),
//! more referrers pushed over plain HTTP, then listing, `artifactType`
//! filtering, pagination and deletion through `GET /v2/<name>/referrers/`.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

const REPO: &str = "rbee/llm-worker-rbee-cpu";
const PKGBUILD_TYPE: &str = "application/vnd.rbee.pkgbuild.v1";
const SIGNATURE_TYPE: &str = "application/vnd.rbee.signature.v1";
const SBOM_CONFIG_TYPE: &str = "application/vnd.rbee.sbom.config.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The digests listed in a referrers response.
fn digests(body: &Value) -> BTreeSet<String> {
    body["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// An artifact manifest with one layer, pointing at `subject`.
fn referrer(
    artifact_type: Option<&str>,
    config: &Blob,
    layer: &Blob,
    subject: &Blob,
    note: &str,
) -> Blob {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject.descriptor(),
        "annotations": { "org.opencontainers.image.description": note },
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    Blob::json(OCI_MANIFEST, &manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkgbuild_referrer_is_listed_and_filtered() {
    if !require_tool("skopeo") || !require_python_module("oras") {
        return;
    }
    let reg = TestRegistry::start().await;
    let release = Release::build("llm-worker-rbee-cpu", "0.1.0");
    let src = reg.dir("src");
    release.write_layout(&src, "0.1.0");
    let remote = format!("docker://{}/{REPO}:0.1.0", reg.host);
    skopeo(
        &reg,
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:0.1.0", src.display()),
            &remote,
        ],
    )
    .await;
    let index = &release.index;

    // Nothing refers to the index yet: an empty index, not a 404.
    let (_, body) = reg.referrers(REPO, &index.digest, "").await;
    assert_eq!(body["manifests"], json!([]));

    // oras-py attaches the PKGBUILD and .SRCINFO, `subject` = the index.
    let files = reg.dir("pkgbuild");
    let pkgbuild = files.join("PKGBUILD");
    std::fs::write(
        &pkgbuild,
        "pkgname=llm-worker-rbee-cpu\npkgver=0.1.0\npkgrel=1\narch=('x86_64' 'aarch64')\n",
    )
    .unwrap();
    let srcinfo = files.join(".SRCINFO");
    std::fs::write(
        &srcinfo,
        "pkgbase = llm-worker-rbee-cpu\n\tpkgver = 0.1.0\n",
    )
    .unwrap();
    let pushed = oras(&[
        "push",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}:pkgbuild-0.1.0"),
        "--file",
        pkgbuild.to_str().unwrap(),
        "--file",
        srcinfo.to_str().unwrap(),
        "--artifact-type",
        PKGBUILD_TYPE,
        "--annotation",
        "org.opencontainers.image.version=0.1.0",
        "--subject-digest",
        &index.digest,
        "--subject-media-type",
        OCI_INDEX,
        "--subject-size",
        &index.bytes.len().to_string(),
    ])
    .await
    .last_json();
    assert_eq!(pushed["status"], 201, "{pushed}");
    assert_eq!(
        pushed["oci_subject"],
        index.digest.as_str(),
        "OCI-Subject answers the subject"
    );
    let pkgbuild_digest = pushed["digest"].as_str().unwrap().to_owned();

    // Two more referrers of the index, over plain HTTP: a signature with an
    // explicit artifactType, and an SBOM whose artifact type is only its
    // config media type. A fourth refers to the arm64 child instead.
    let empty = Blob::new(OCI_EMPTY, b"{}".to_vec());
    let signature_layer = Blob::new(
        "application/vnd.rbee.signature.v1+json",
        br#"{"sig":"abc"}"#.to_vec(),
    );
    let sbom_config = Blob::new(SBOM_CONFIG_TYPE, br#"{"format":"spdx"}"#.to_vec());
    let sbom_layer = Blob::new(
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec(),
    );
    for blob in [&empty, &signature_layer, &sbom_config, &sbom_layer] {
        reg.push_blob(REPO, blob).await;
    }
    let arm64 = &release.image("arm64").manifest;
    let signature = referrer(
        Some(SIGNATURE_TYPE),
        &empty,
        &signature_layer,
        index,
        "signature",
    );
    let sbom = referrer(None, &sbom_config, &sbom_layer, index, "sbom");
    let child_signature = referrer(
        Some(SIGNATURE_TYPE),
        &empty,
        &signature_layer,
        arm64,
        "arm64 signature",
    );
    for (manifest, subject) in [
        (&signature, index),
        (&sbom, index),
        (&child_signature, arm64),
    ] {
        let resp = reg.put_manifest(REPO, &manifest.digest, manifest).await;
        assert_eq!(resp.status(), 201);
        assert_eq!(header(&resp, "docker-content-digest"), manifest.digest);
        assert_eq!(header(&resp, "oci-subject"), subject.digest);
    }

    // All three referrers of the index, described as the spec asks.
    let (headers, body) = reg.referrers(REPO, &index.digest, "").await;
    assert!(
        headers.get("oci-filters-applied").is_none(),
        "no filter, no OCI-Filters-Applied"
    );
    let expected: BTreeSet<String> = [
        pkgbuild_digest.clone(),
        signature.digest.clone(),
        sbom.digest.clone(),
    ]
    .into_iter()
    .collect();
    assert_eq!(digests(&body), expected);
    for entry in body["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let stored = reg.get_manifest(REPO, digest).await.bytes().await.unwrap();
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert_eq!(entry["size"], stored.len(), "size of {digest}");
        let manifest: Value = serde_json::from_slice(&stored).unwrap();
        let artifact_type = manifest
            .get("artifactType")
            .unwrap_or(&manifest["config"]["mediaType"]);
        assert_eq!(
            &entry["artifactType"], artifact_type,
            "artifactType of {digest}"
        );
        assert_eq!(
            entry["annotations"], manifest["annotations"],
            "annotations of {digest}"
        );
    }
    let by_digest = |d: &str| {
        body["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["digest"] == d)
            .unwrap()
            .clone()
    };
    assert_eq!(by_digest(&pkgbuild_digest)["artifactType"], PKGBUILD_TYPE);
    assert_eq!(
        by_digest(&pkgbuild_digest)["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert_eq!(
        by_digest(&sbom.digest)["artifactType"],
        SBOM_CONFIG_TYPE,
        "config media type stands in"
    );

    // Filtered by artifactType.
    let (headers, body) = reg
        .referrers(
            REPO,
            &index.digest,
            &format!("?artifactType={PKGBUILD_TYPE}"),
        )
        .await;
    assert_eq!(
        headers
            .get("oci-filters-applied")
            .and_then(|v| v.to_str().ok()),
        Some("artifactType")
    );
    assert_eq!(digests(&body), BTreeSet::from([pkgbuild_digest.clone()]));
    let (_, body) = reg
        .referrers(
            REPO,
            &index.digest,
            &format!("?artifactType={SIGNATURE_TYPE}"),
        )
        .await;
    assert_eq!(digests(&body), BTreeSet::from([signature.digest.clone()]));
    let (_, body) = reg
        .referrers(
            REPO,
            &index.digest,
            "?artifactType=application/vnd.rbee.nothing.v1",
        )
        .await;
    assert_eq!(body["manifests"], json!([]));

    // The child's referrer is listed under the child only.
    let (_, body) = reg.referrers(REPO, &arm64.digest, "").await;
    assert_eq!(
        digests(&body),
        BTreeSet::from([child_signature.digest.clone()])
    );

    // One per page, following `Link`, visits each referrer once.
    let mut seen = BTreeSet::new();
    let mut next = Some(format!("/v2/{REPO}/referrers/{}?n=1", index.digest));
    while let Some(path) = next.take() {
        let resp = reg
            .http
            .get(format!("{}{path}", reg.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.strip_prefix('<'))
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(p, _)| p.to_owned());
        let page: Value = resp.json().await.unwrap();
        assert_eq!(
            page["manifests"].as_array().unwrap().len(),
            1,
            "n=1 holds one entry"
        );
        assert!(
            seen.insert(page["manifests"][0]["digest"].as_str().unwrap().to_owned()),
            "no repeats"
        );
        assert!(seen.len() <= 3, "pagination ends");
    }
    assert_eq!(seen, expected);

    // The PKGBUILD comes back with oras-py, byte-identical.
    let out = reg.dir("out");
    let pulled = oras(&[
        "pull",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}@{pkgbuild_digest}"),
        "--outdir",
        out.to_str().unwrap(),
    ])
    .await
    .last_json();
    assert_eq!(pulled["files"].as_array().unwrap().len(), 2);
    for file in [&pkgbuild, &srcinfo] {
        let name = file.file_name().unwrap();
        assert_eq!(
            sha256_hex(&std::fs::read(out.join(name)).unwrap()),
            sha256_hex(&std::fs::read(file).unwrap()),
            "{name:?} is byte-identical"
        );
    }

    // Attaching referrers left the release itself untouched.
    let raw = skopeo(&reg, &["inspect", "--raw", "--tls-verify=false", &remote]).await;
    assert_eq!(raw.stdout, index.bytes);

    // Deleting a referrer takes it off the list.
    let resp = reg
        .http
        .delete(format!(
            "{}/v2/{REPO}/manifests/{}",
            reg.url, signature.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let (_, body) = reg.referrers(REPO, &index.digest, "").await;
    assert_eq!(
        digests(&body),
        BTreeSet::from([pkgbuild_digest, sbom.digest.clone()])
    );

    reg.stop().await;
}
