//! oras-py (PyPI `oras`, driven through `tests/scripts/oras_client.py`)
//! against the registry: a file artifact with an `artifactType` and
//! annotations pushed, read back over plain HTTP and pulled byte-identical;
//! the same with chunked uploads; tag listing across `Link` pages.

mod common;

use std::path::Path;

use common::*;

on_each_backend!(file_artifact_round_trip, chunked_push_and_paginated_tags);
use rbee_registry::{Action, Target};
use serde_json::{Value, json};

const WORKER_TYPE: &str = "application/vnd.rbee.worker.v1";
const REPO: &str = "rbee/oras-test";

fn sha256_file(path: &Path) -> String {
    sha256_digest(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Checks that `dir` holds exactly `files` (by name), each with the same
/// sha256 as the original.
fn assert_same_files(pulled: &Value, dir: &Path, files: &[&Path]) {
    let mut names: Vec<String> = pulled["files"]
        .as_array()
        .expect("pull lists files")
        .iter()
        .map(|f| {
            Path::new(f.as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected, "oras pulled every file");
    for file in files {
        let pulled = dir.join(file.file_name().unwrap());
        assert_eq!(
            sha256_file(&pulled),
            sha256_file(file),
            "{} is byte-identical",
            pulled.display()
        );
    }
}

async fn file_artifact_round_trip(backend: Backend) {
    if !require_python_module("oras") {
        return;
    }
    let reg = TestRegistry::start_on(backend).await;
    let mut events = reg.running.registry.events().subscribe();

    let src = reg.dir("src");
    let archive = src.join("llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz");
    let binary = pseudo_random(7, 4 << 20);
    std::fs::write(
        &archive,
        gzip_stored(&tar_with_file("llm-worker-rbee-cpu", &binary)),
    )
    .unwrap();
    let readme = src.join("README.md");
    std::fs::write(&readme, "# llm-worker-rbee-cpu\n\nThe CPU build.\n").unwrap();

    let pushed = oras(&[
        "push",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}:0.1.0"),
        "--file",
        archive.to_str().unwrap(),
        "--file",
        readme.to_str().unwrap(),
        "--artifact-type",
        WORKER_TYPE,
        "--annotation",
        "org.opencontainers.image.version=0.1.0",
        "--annotation",
        "org.opencontainers.image.description=LLM worker, CPU build",
        "--annotation",
        "dev.rbee.worker.id=llm-worker-rbee-cpu",
    ])
    .await
    .last_json();
    assert_eq!(pushed["status"], 201, "manifest PUT answered 201: {pushed}");
    let digest = pushed["digest"]
        .as_str()
        .expect("Docker-Content-Digest on the manifest PUT")
        .to_owned();

    // What the registry stored, read with plain HTTP.
    let resp = reg.get_manifest(REPO, "0.1.0").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), OCI_MANIFEST);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), digest);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["artifactType"], WORKER_TYPE);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.description"],
        "LLM worker, CPU build"
    );
    assert_eq!(
        manifest["annotations"]["dev.rbee.worker.id"],
        "llm-worker-rbee-cpu"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (layer, file) in layers.iter().zip([&archive, &readme]) {
        assert_eq!(
            layer["digest"],
            sha256_file(file).as_str(),
            "layer digest is the file's sha256"
        );
        assert_eq!(
            layer["annotations"]["org.opencontainers.image.title"],
            file.file_name().unwrap().to_str().unwrap()
        );
        let blob = reg
            .http
            .get(format!(
                "{}/v2/{REPO}/blobs/{}",
                reg.url,
                layer["digest"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(blob.status(), 200);
        assert_eq!(blob.bytes().await.unwrap(), std::fs::read(file).unwrap());
    }

    // Pulled back by tag and by digest: the same files, byte for byte.
    let out = reg.dir("out-tag");
    let pulled = oras(&[
        "pull",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}:0.1.0"),
        "--outdir",
        out.to_str().unwrap(),
    ])
    .await
    .last_json();
    assert_same_files(&pulled, &out, &[&archive, &readme]);
    let out = reg.dir("out-digest");
    let pulled = oras(&[
        "pull",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}@{digest}"),
        "--outdir",
        out.to_str().unwrap(),
    ])
    .await
    .last_json();
    assert_same_files(&pulled, &out, &[&archive, &readme]);

    // The push was announced on the event channel, with its tag.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        seen.iter().any(|e| e.action == Action::Push
            && e.target == Target::Manifest
            && e.digest == digest
            && e.tag.as_deref() == Some("0.1.0")
            && e.repository == REPO),
        "a manifest push event for {digest}: {seen:?}"
    );
    assert!(
        seen.iter().any(|e| e.action == Action::Pull
            && e.target == Target::Blob
            && e.digest == sha256_file(&archive)),
        "a blob pull event for the archive"
    );

    reg.stop().await;
}

async fn chunked_push_and_paginated_tags(backend: Backend) {
    if !require_python_module("oras") {
        return;
    }
    let reg = TestRegistry::start_on(backend).await;
    let src = reg.dir("src");
    // Not a multiple of the chunk size, so the last PATCH is short.
    let archive = src.join("sd-worker-rbee-cpu-0.2.0-linux-aarch64.tar.gz");
    std::fs::write(&archive, pseudo_random(11, (1 << 20) + 123)).unwrap();

    for tag in ["0.2.0", "0.2.0-rc.1", "latest"] {
        let pushed = oras(&[
            "push",
            "--registry",
            &reg.host,
            "--target",
            &format!("{REPO}:{tag}"),
            "--file",
            archive.to_str().unwrap(),
            "--artifact-type",
            WORKER_TYPE,
            "--chunk-size",
            "65536",
        ])
        .await
        .last_json();
        assert_eq!(pushed["status"], 201, "{tag}: {pushed}");
    }

    let out = reg.dir("out");
    let pulled = oras(&[
        "pull",
        "--registry",
        &reg.host,
        "--target",
        &format!("{REPO}:latest"),
        "--outdir",
        out.to_str().unwrap(),
    ])
    .await
    .last_json();
    assert_same_files(&pulled, &out, &[&archive]);

    // One tag per page: oras-py has to follow the `Link` headers.
    let tags = oras(&[
        "tags",
        "--registry",
        &reg.host,
        "--repo",
        REPO,
        "--page-size",
        "1",
    ])
    .await
    .last_json();
    assert_eq!(tags["tags"], json!(["0.2.0", "0.2.0-rc.1", "latest"]));
    let tags = oras(&["tags", "--registry", &reg.host, "--repo", REPO])
        .await
        .last_json();
    assert_eq!(tags["tags"], json!(["0.2.0", "0.2.0-rc.1", "latest"]));

    reg.stop().await;
}
