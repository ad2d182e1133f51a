//! The documented limits of the wire documents (issue 8): what a text
//! field may contain and how long it may be, which URLs are links, how
//! large a whole document may be, and how many workers and versions a
//! catalog index may list. Each test is a document that used to be
//! accepted (or took minutes to refuse) and is now refused quickly, with
//! the JSON path of the problem.

mod common;

use std::time::{Duration, Instant};

use common::{FREE, doc, rust_paths, validator};
use rbee_schemas::{CatalogIndex, WorkerMetadata, limits};
use serde_json::{Value, json};

/// Rust and the schema both refuse `d`, Rust at exactly `paths`.
#[track_caller]
fn refused(d: &Value, paths: &[&str]) {
    assert_eq!(rust_paths(&d.to_string()), paths, "{d}");
    assert!(!validator().is_valid(d), "the schema accepts {d}");
}

#[test]
fn text_fields_refuse_control_characters_and_bidi_overrides() {
    let bad = [
        ("name", "LLM\u{0}Worker"),
        ("name", "LLM \u{1b}[31mred\u{1b}[0m"),
        ("name", "LLM\nWorker"),
        ("name", "evil\u{202e}txt.exe"),
        ("description", "isolate \u{2066}here\u{2069}"),
        ("description", "clear the screen \u{1b}[2J"),
        ("description", "carriage\rreturn"),
        ("description", "C1 control \u{9b}31m"),
        ("implementation", "rust\u{7f}"),
        ("install_path", "/usr/bin/x\u{0}"),
    ];
    for (field, text) in bad {
        let mut d = doc(FREE);
        d[field] = text.into();
        refused(&d, &[&format!("$.{field}")]);
    }
    let mut d = doc(FREE);
    d["source"]["tag"] = "v1\u{202a}".into();
    d["depends"] = json!(["gcc\u{0}libs"]);
    d["capabilities"]["supported_formats"] = json!(["gguf\u{2067}"]);
    refused(
        &d,
        &[
            "$.source.tag",
            "$.capabilities.supported_formats[0]",
            "$.depends[0]",
        ],
    );
}

#[test]
fn a_description_may_hold_newlines_and_tabs() {
    let mut d = doc(FREE);
    d["description"] = "First line.\n\tSecond line, indented.".into();
    assert_eq!(rust_paths(&d.to_string()), Vec::<String>::new());
    assert!(validator().is_valid(&d));
}

#[test]
fn text_fields_have_documented_lengths() {
    let cases = [
        ("name", limits::NAME_MAX_CHARS),
        ("description", limits::DESCRIPTION_MAX_CHARS),
        ("install_path", limits::PATH_MAX_CHARS),
    ];
    for (field, max) in cases {
        // Counted in characters (code points), as JSON Schema counts.
        let mut d = doc(FREE);
        d[field] = "é".repeat(max).into();
        assert_eq!(rust_paths(&d.to_string()), Vec::<String>::new(), "{field}");
        assert!(validator().is_valid(&d), "{field}");
        d[field] = "é".repeat(max + 1).into();
        refused(&d, &[&format!("$.{field}")]);
    }
    let mut d = doc(FREE);
    d["depends"] = json!(vec!["x"; limits::LIST_MAX_ITEMS + 1]);
    d["makedepends"] = json!(["y".repeat(limits::WORD_MAX_CHARS + 1)]);
    d["version"] = format!("1.0.0-{}", "a".repeat(limits::VERSION_MAX_CHARS)).into();
    refused(&d, &["$.version", "$.depends", "$.makedepends[0]"]);
}

#[test]
fn a_huge_document_is_refused_at_once() {
    // 3 MiB of description: refused for its size before it is parsed.
    let mut d = doc(FREE);
    d["description"] = "a".repeat(3 << 20).into();
    let text = d.to_string();
    let started = Instant::now();
    let err = WorkerMetadata::from_json(&text).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(err.issues[0].path, "$");
    assert!(
        err.issues[0]
            .message
            .contains(&limits::METADATA_MAX_BYTES.to_string()),
        "{err}"
    );
    assert!(validator().iter_errors(&d).next().is_some());
    assert!(serde_json::from_str::<WorkerMetadata>(&text).is_err());
}

#[test]
fn urls_are_https_links_only() {
    for url in [
        "javascript:alert(1)",
        "javascript://%0Aalert(1)",
        "JAVASCRIPT://x/%0Aalert(1)",
        "data://text/html,<script>",
        "http://github.com/rbee/x.git",
        "git+ssh://git@github.com/rbee/x.git",
        "file:///etc/passwd",
        "https://",
        "https:///path",
        "https://host/\u{202e}",
        "https://host/\u{0}",
    ] {
        let mut d = doc(FREE);
        d["source"]["url"] = url.into();
        refused(&d, &["$.source.url"]);
    }
    for url in [
        "https://github.com/rbee/x.git",
        "git+https://github.com/rbee/x.git",
        "https://git.example.org:8443/rbee/x?ref=main#readme",
    ] {
        let mut d = doc(FREE);
        d["source"]["url"] = url.into();
        assert_eq!(rust_paths(&d.to_string()), Vec::<String>::new(), "{url}");
        assert!(validator().is_valid(&d), "{url}");
    }
    let mut d = doc(FREE);
    d["source"]["url"] = format!("https://h/{}", "a".repeat(limits::URL_MAX_CHARS)).into();
    refused(&d, &["$.source.url"]);
}

/// A catalog index of `workers` workers, the first listing `versions`
/// versions, the others one.
fn catalog(workers: usize, versions: usize) -> String {
    // `36.18.43`: short, so that the report's 361,843 fit in 4 MiB.
    let versions: Vec<String> = (0..versions)
        .map(|i| format!("{}.{}.{}", i / 10_000, i / 100 % 100, i % 100))
        .collect();
    let entry = |i: usize| {
        json!({
            "id": format!("w{i}"),
            "repository": format!("rbee/w{i}"),
            "versions": if i == 0 { versions.clone() } else { vec!["0.1.0".to_owned()] },
            "requires_license": false,
            "updated_at": "2025-01-31T12:00:00Z",
        })
    };
    json!({
        "schema_version": 1,
        "updated_at": "2025-01-31T12:00:00Z",
        "workers": (0..workers).map(entry).collect::<Vec<_>>(),
    })
    .to_string()
}

#[test]
fn a_catalog_with_too_many_versions_is_refused_quickly() {
    // The document of the report: one worker with 361,843 versions, just
    // under 4 MiB. It took 110 s of CPU to refuse (a quadratic duplicate
    // check); now it is refused for its count.
    let text = catalog(1, 361_843);
    assert!(text.len() <= limits::CATALOG_MAX_BYTES, "{}", text.len());
    let started = Instant::now();
    let err = CatalogIndex::from_json(&text).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(err.issues[0].path, "$.workers[0].versions");
    assert!(
        err.issues[0].message.contains("361843")
            && err.issues[0]
                .message
                .contains(&limits::CATALOG_MAX_VERSIONS.to_string()),
        "{err}"
    );
    // At the limit, it is read.
    let index = CatalogIndex::from_json(&catalog(1, limits::CATALOG_MAX_VERSIONS)).unwrap();
    assert_eq!(
        index.workers[0].versions.len(),
        limits::CATALOG_MAX_VERSIONS
    );
}

#[test]
fn a_catalog_with_too_many_workers_or_bytes_is_refused() {
    let err = CatalogIndex::from_json(&catalog(limits::CATALOG_MAX_WORKERS + 1, 1)).unwrap_err();
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(err.issues[0].path, "$.workers");
    assert!(CatalogIndex::from_json(&catalog(limits::CATALOG_MAX_WORKERS, 1)).is_ok());

    let big = format!("{}{}", catalog(1, 1), " ".repeat(limits::CATALOG_MAX_BYTES));
    let err = CatalogIndex::from_json(&big).unwrap_err();
    assert_eq!(err.issues[0].path, "$");
    assert!(
        err.issues[0]
            .message
            .contains(&limits::CATALOG_MAX_BYTES.to_string()),
        "{err}"
    );
}

#[test]
fn duplicate_checks_are_linear() {
    // Many workers, each listed twice: every duplicate is still reported,
    // with the index of its first occurrence, in well under a second.
    let one = catalog(5_000, 1);
    let mut value: Value = serde_json::from_str(&one).unwrap();
    let workers = value["workers"].as_array().unwrap().clone();
    value["workers"]
        .as_array_mut()
        .unwrap()
        .extend(workers.into_iter().take(5_000));
    let started = Instant::now();
    let err = CatalogIndex::from_json(&value.to_string()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.issues.len(), 5_000);
    assert_eq!(err.issues[0].path, "$.workers[5000].id");
    assert!(
        err.issues[0].message.contains("first at $.workers[0]"),
        "{err}"
    );
}
