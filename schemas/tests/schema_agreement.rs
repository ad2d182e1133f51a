//! The JSON Schema file and `WorkerMetadata::from_json` give the same
//! verdict on the same documents: the samples of `common/samples.rs`, each
//! member removed in turn, the fixture files, and what Rust serializes. The
//! few rules a portable regular expression cannot state are in
//! `rust_only.rs`, where the schema accepts and Rust refuses.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::samples::{Case, cases};
use common::{FREE, PREMIUM, doc, remove, rust_paths, schema, schema_errors, validator};
use rbee_schemas::{Backend, Platform, WorkerMetadata};
use serde_json::{Value, json};

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::draft202012::meta::validate(&schema)
        .expect("valid against the 2020-12 meta-schema");
}

#[test]
fn the_schema_lists_the_same_platforms_and_backends() {
    let schema = schema();
    let platforms: Vec<&str> = schema["properties"]["platforms"]["items"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(platforms, Platform::names());
    let backends: Vec<&str> = schema["properties"]["backend"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let rust: Vec<&str> = Backend::ALL.iter().map(|b| b.as_str()).collect();
    assert_eq!(backends, rust);
}

#[test]
fn schema_and_rust_agree_on_every_sample() {
    let validator = validator();
    let mut failures = Vec::new();
    for Case { name, doc, expect } in cases() {
        let text = doc.to_string();
        let rust = rust_paths(&text);
        let schema = schema_errors(&validator, &doc);
        if rust != expect {
            failures.push(format!(
                "{name}: Rust reported {rust:?}, expected {expect:?}"
            ));
        }
        if schema.is_empty() != expect.is_empty() {
            failures.push(format!(
                "{name}: schema says {schema:?}, expected valid={}",
                expect.is_empty()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_field_is_required_or_optional_in_both() {
    // Remove each member of each object in turn: the schema's `required`
    // lists decide, and Rust must agree, naming the missing member.
    let validator = validator();
    let schema = schema();
    let objects = [
        (PREMIUM, None, &schema),
        (FREE, Some("source"), &schema["properties"]["source"]),
        (
            FREE,
            Some("capabilities"),
            &schema["properties"]["capabilities"],
        ),
        (
            FREE,
            Some("distribution"),
            &schema["properties"]["distribution"],
        ),
        (PREMIUM, Some("pricing"), &schema["properties"]["pricing"]),
    ];
    let mut checked = 0;
    for (base, member, node) in objects {
        let required: Vec<&str> = node["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let target = doc(base);
        let keys: Vec<String> = match member {
            None => target.as_object().unwrap().keys().cloned().collect(),
            Some(m) => target[m].as_object().unwrap().keys().cloned().collect(),
        };
        for key in keys {
            let mut d = target.clone();
            let path = match member {
                None => {
                    remove(&mut d, &key);
                    format!("$.{key}")
                }
                Some(m) => {
                    remove(&mut d[m], &key);
                    format!("$.{m}.{key}")
                }
            };
            let is_required = required.contains(&key.as_str())
                // A premium worker cannot drop its price (the if/then rule).
                || (member.is_none() && key == "pricing");
            let rust = rust_paths(&d.to_string());
            assert_eq!(rust.contains(&path), is_required, "{path}: {rust:?}");
            assert_eq!(validator.is_valid(&d), !is_required, "{path}");
            checked += 1;
        }
    }
    assert!(checked > 25, "{checked}");
}

#[test]
fn the_schema_describes_exactly_the_serialized_fields() {
    // A document with every optional field set, serialized by Rust, uses
    // exactly the properties the schema declares (`branch` is the
    // alternative of `tag`, so it is checked through the premium sample).
    fn keys(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let path = format!("{prefix}{k}");
                if matches!(v, Value::Object(_)) {
                    keys(v, &format!("{path}."), out);
                }
                out.insert(path);
            }
        }
    }
    fn schema_keys(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Some(props) = node["properties"].as_object() {
            for (k, v) in props {
                let path = format!("{prefix}{k}");
                schema_keys(v, &format!("{path}."), out);
                out.insert(path);
            }
        }
    }
    let mut premium = doc(PREMIUM);
    premium["capabilities"]["max_context_length"] = 8192.into();
    premium["makedepends"] = json!(["cargo"]);
    let mut rust = BTreeSet::new();
    for text in [premium.to_string(), FREE.to_owned()] {
        let meta = WorkerMetadata::from_json(&text).unwrap();
        keys(&serde_json::to_value(&meta).unwrap(), "", &mut rust);
    }
    let mut declared = BTreeSet::new();
    schema_keys(&schema(), "", &mut declared);
    assert_eq!(rust, declared);
}

#[test]
fn fixture_files_get_the_same_verdict() {
    let validator = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seen = 0;
    for (sub, valid) in [("valid", true), ("invalid", false)] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let rust = WorkerMetadata::from_json(&text);
            assert_eq!(rust.is_ok(), valid, "{}: {rust:?}", path.display());
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                assert_eq!(
                    validator.is_valid(&value),
                    valid,
                    "{}: {:?}",
                    path.display(),
                    schema_errors(&validator, &value)
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 6, "{seen}");
}

#[test]
fn rust_output_validates_against_the_schema() {
    let validator = validator();
    for text in [
        FREE,
        PREMIUM,
        include_str!("fixtures/valid/minimal-nulls.json"),
    ] {
        let meta = WorkerMetadata::from_json(text).unwrap();
        let pretty = meta.to_json_pretty();
        let value: Value = serde_json::from_str(&pretty).unwrap();
        assert!(
            validator.is_valid(&value),
            "{:?}",
            schema_errors(&validator, &value)
        );
        assert_eq!(WorkerMetadata::from_json(&pretty).unwrap(), meta);
        assert_eq!(
            serde_json::from_str::<WorkerMetadata>(&pretty).unwrap(),
            meta
        );
        assert_eq!(meta.validate(), Ok(()));
    }
}
