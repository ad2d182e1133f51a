//! The worker metadata document (`WorkerMetadata::from_json`, serde and
//! `validate`), fed arbitrary text.
//!
//! Invariants: serde and `from_json` give the same verdict; a refusal
//! names at least one problem, each at a JSON path; an accepted document
//! validates, serialises deterministically and reads back to itself; the
//! JSON Schema accepts it too (the schema may refuse less, never more);
//! and the values that later reach paths and repository names are safe
//! there (`binary_name` is one plain path component, `id` makes a valid
//! repository name).
#![no_main]

use std::path::{Component, Path};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rbee_registry::reference::RepoName;
use rbee_schemas::{WORKER_METADATA_SCHEMA, WorkerMetadata};

fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = serde_json::from_str(WORKER_METADATA_SCHEMA).unwrap();
        jsonschema::draft202012::new(&schema).unwrap()
    })
}

fuzz_target!(|text: &str| {
    let read = WorkerMetadata::from_json(text);
    assert_eq!(
        serde_json::from_str::<WorkerMetadata>(text).is_ok(),
        read.is_ok()
    );
    let m = match read {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.issues.is_empty());
            for issue in &e.issues {
                assert!(issue.path.starts_with('$'), "{issue}");
                assert!(!issue.message.is_empty(), "{issue}");
            }
            return;
        }
    };
    assert_eq!(m.validate(), Ok(()));
    let json = m.to_json_pretty();
    assert_eq!(json, m.to_json_pretty());
    assert_eq!(WorkerMetadata::from_json(&json).as_ref(), Ok(&m), "{json}");

    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let schema_errors: Vec<String> = schema()
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        schema_errors.is_empty(),
        "Rust accepts a document the JSON Schema refuses: {schema_errors:?}"
    );

    let mut components = Path::new(&m.binary_name).components();
    assert_eq!(
        components.next(),
        Some(Component::Normal(m.binary_name.as_ref()))
    );
    assert_eq!(components.next(), None);
    assert!(!m.platforms.is_empty());
    for (i, p) in m.platforms.iter().enumerate() {
        assert!(!m.platforms[..i].contains(p), "duplicate platform {p:?}");
    }
    assert_eq!(m.pricing.is_some(), m.distribution.requires_license);
    assert!(m.distribution.source_available || m.distribution.binary_available);
    for ns in ["rbee", "rbee-premium"] {
        let repo = format!("{ns}/{}", m.id);
        assert!(
            RepoName::parse(&repo).is_ok(),
            "id {:?} gives the invalid repository name {repo:?}",
            m.id
        );
    }
});
