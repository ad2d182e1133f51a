//! The JSON Schema file and `WorkerMetadata::from_json` give the same
//! verdict on the same documents. The few rules a portable regular
//! expression cannot state are listed in `rust_only_rules`, where the schema
//! accepts and Rust refuses.

use std::collections::BTreeSet;
use std::path::Path;

use jsonschema::Validator;
use rbee_schemas::{Backend, Platform, WORKER_METADATA_SCHEMA, WorkerMetadata};
use serde_json::{Value, json};

const FREE: &str = include_str!("fixtures/valid/llm-worker-rbee-cpu.json");
const PREMIUM: &str = include_str!("fixtures/valid/premium-cuda.json");

fn schema() -> Value {
    serde_json::from_str(WORKER_METADATA_SCHEMA).expect("the schema file is JSON")
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// What the schema says, as readable lines for assertion messages.
fn schema_errors(validator: &Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// What Rust says: the paths of the issues, empty when valid.
fn rust_paths(text: &str) -> Vec<String> {
    match WorkerMetadata::from_json(text) {
        Ok(_) => Vec::new(),
        Err(err) => err.issues.into_iter().map(|i| i.path).collect(),
    }
}

/// A sample document and the issue paths Rust must report (none: valid).
struct Case {
    name: String,
    doc: Value,
    expect: Vec<&'static str>,
}

fn case(name: &str, base: &str, edit: impl FnOnce(&mut Value), expect: &[&'static str]) -> Case {
    let mut doc = doc(base);
    edit(&mut doc);
    Case {
        name: name.to_owned(),
        doc,
        expect: expect.to_vec(),
    }
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

fn cases() -> Vec<Case> {
    let long_id = "a".repeat(100);
    let too_long_id = "a".repeat(101);
    vec![
        // Accepted by both.
        case("the free sample", FREE, |_| {}, &[]),
        case("the premium sample", PREMIUM, |_| {}, &[]),
        case(
            "id of exactly 100 characters",
            FREE,
            |d| d["id"] = long_id.into(),
            &[],
        ),
        case(
            "id of digits and dashes",
            FREE,
            |d| d["id"] = "0-9--".into(),
            &[],
        ),
        case("no depends", FREE, |d| remove(d, "depends"), &[]),
        case(
            "null makedepends",
            FREE,
            |d| d["makedepends"] = Value::Null,
            &[],
        ),
        case(
            "pre-release with build",
            FREE,
            |d| d["version"] = "1.0.0-alpha.1+sha.0a1".into(),
            &[],
        ),
        case(
            "license with exception",
            FREE,
            |d| d["license"] = "GPL-2.0-only WITH Classpath-exception-2.0".into(),
            &[],
        ),
        case(
            "license or-later",
            FREE,
            |d| d["license"] = "GPL-2.0+".into(),
            &[],
        ),
        case(
            "license nested",
            FREE,
            |d| d["license"] = "((MIT OR ISC)) AND (Zlib)".into(),
            &[],
        ),
        case(
            "source without tag or branch",
            FREE,
            |d| remove(&mut d["source"], "tag"),
            &[],
        ),
        case(
            "every platform",
            FREE,
            |d| d["platforms"] = Platform::names().into(),
            &[],
        ),
        case(
            "no max context length",
            FREE,
            |d| remove(&mut d["capabilities"], "max_context_length"),
            &[],
        ),
        case(
            "integer amount",
            PREMIUM,
            |d| d["pricing"]["amount"] = 5.into(),
            &[],
        ),
        case(
            "tiny amount",
            PREMIUM,
            |d| d["pricing"]["amount"] = 0.01.into(),
            &[],
        ),
        case(
            "binary name with extension",
            FREE,
            |d| d["binary_name"] = "llm-worker-rbee.exe".into(),
            &[],
        ),
        // Refused by both, with the path Rust reports.
        case(
            "id upper-case",
            FREE,
            |d| d["id"] = "LLM-worker".into(),
            &["$.id"],
        ),
        case(
            "id underscore",
            FREE,
            |d| d["id"] = "llm_worker".into(),
            &["$.id"],
        ),
        case("id empty", FREE, |d| d["id"] = "".into(), &["$.id"]),
        case(
            "id of 101 characters",
            FREE,
            |d| d["id"] = too_long_id.into(),
            &["$.id"],
        ),
        case("id a number", FREE, |d| d["id"] = 7.into(), &["$.id"]),
        case(
            "family with a space",
            FREE,
            |d| d["family"] = "llm worker".into(),
            &["$.family"],
        ),
        case(
            "unknown backend",
            FREE,
            |d| d["backend"] = "tpu".into(),
            &["$.backend"],
        ),
        case(
            "backend upper-case",
            FREE,
            |d| d["backend"] = "CPU".into(),
            &["$.backend"],
        ),
        case(
            "blank name",
            FREE,
            |d| d["name"] = "   ".into(),
            &["$.name"],
        ),
        case(
            "null description",
            FREE,
            |d| d["description"] = Value::Null,
            &["$.description"],
        ),
        case(
            "version with v",
            FREE,
            |d| d["version"] = "v0.1.0".into(),
            &["$.version"],
        ),
        case(
            "version of two parts",
            FREE,
            |d| d["version"] = "0.1".into(),
            &["$.version"],
        ),
        case(
            "version leading zero",
            FREE,
            |d| d["version"] = "01.0.0".into(),
            &["$.version"],
        ),
        case(
            "version pre-release leading zero",
            FREE,
            |d| d["version"] = "1.0.0-01".into(),
            &["$.version"],
        ),
        case(
            "version a number",
            FREE,
            |d| d["version"] = 1.into(),
            &["$.version"],
        ),
        case(
            "license empty",
            FREE,
            |d| d["license"] = "".into(),
            &["$.license"],
        ),
        case(
            "license lower-case operator",
            FREE,
            |d| d["license"] = "MIT or ISC".into(),
            &["$.license"],
        ),
        case(
            "license trailing operator",
            FREE,
            |d| d["license"] = "MIT AND".into(),
            &["$.license"],
        ),
        case(
            "license slash",
            FREE,
            |d| d["license"] = "MIT/ISC".into(),
            &["$.license"],
        ),
        case(
            "license plus inside",
            FREE,
            |d| d["license"] = "GPL+2".into(),
            &["$.license"],
        ),
        case(
            "license two ids",
            FREE,
            |d| d["license"] = "MIT ISC".into(),
            &["$.license"],
        ),
        case(
            "license tab",
            FREE,
            |d| d["license"] = "MIT\tOR ISC".into(),
            &["$.license"],
        ),
        case(
            "implementation blank",
            FREE,
            |d| d["implementation"] = "".into(),
            &["$.implementation"],
        ),
        case(
            "build system array",
            FREE,
            |d| d["build_system"] = json!(["cargo"]),
            &["$.build_system"],
        ),
        case(
            "source a string",
            FREE,
            |d| d["source"] = "git".into(),
            &["$.source"],
        ),
        case(
            "source scp url",
            FREE,
            |d| d["source"]["url"] = "git@github.com:rbee/x.git".into(),
            &["$.source.url"],
        ),
        case(
            "source url without rest",
            FREE,
            |d| d["source"]["url"] = "https://".into(),
            &["$.source.url"],
        ),
        case(
            "source blank tag",
            FREE,
            |d| d["source"]["tag"] = " ".into(),
            &["$.source.tag"],
        ),
        case(
            "source tag and branch",
            FREE,
            |d| d["source"]["branch"] = "main".into(),
            &["$.source"],
        ),
        case(
            "source extra field",
            FREE,
            |d| d["source"]["commit"] = "abc".into(),
            &["$.source.commit"],
        ),
        case(
            "no platforms",
            FREE,
            |d| d["platforms"] = json!([]),
            &["$.platforms"],
        ),
        case(
            "platforms a string",
            FREE,
            |d| d["platforms"] = "linux-x86_64".into(),
            &["$.platforms"],
        ),
        case(
            "OCI name as platform",
            FREE,
            |d| d["platforms"][1] = "linux/arm64".into(),
            &["$.platforms[1]"],
        ),
        case(
            "platform a number",
            FREE,
            |d| d["platforms"][0] = 1.into(),
            &["$.platforms[0]"],
        ),
        case(
            "platform twice",
            FREE,
            |d| d["platforms"][3] = "linux-x86_64".into(),
            &["$.platforms[3]"],
        ),
        case(
            "format with a space",
            FREE,
            |d| d["capabilities"]["supported_formats"][0] = "g guf".into(),
            &["$.capabilities.supported_formats[0]"],
        ),
        case(
            "context length zero",
            FREE,
            |d| d["capabilities"]["max_context_length"] = 0.into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length negative",
            FREE,
            |d| d["capabilities"]["max_context_length"] = (-1).into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length fractional",
            FREE,
            |d| d["capabilities"]["max_context_length"] = 1.5.into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length a string",
            FREE,
            |d| d["capabilities"]["max_context_length"] = "4096".into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "streaming a string",
            FREE,
            |d| d["capabilities"]["streaming"] = "yes".into(),
            &["$.capabilities.streaming"],
        ),
        case(
            "capabilities extra",
            FREE,
            |d| d["capabilities"]["gpu"] = true.into(),
            &["$.capabilities.gpu"],
        ),
        case(
            "depends with a space",
            FREE,
            |d| d["depends"] = json!(["gcc libs"]),
            &["$.depends[0]"],
        ),
        case(
            "depends a string",
            FREE,
            |d| d["depends"] = "gcc-libs".into(),
            &["$.depends"],
        ),
        case(
            "makedepends a number",
            FREE,
            |d| d["makedepends"][1] = 3.into(),
            &["$.makedepends[1]"],
        ),
        case(
            "binary name a path",
            FREE,
            |d| d["binary_name"] = "../bin/x".into(),
            &["$.binary_name"],
        ),
        case(
            "binary name hidden",
            FREE,
            |d| d["binary_name"] = ".x".into(),
            &["$.binary_name"],
        ),
        case(
            "binary name too long",
            FREE,
            |d| d["binary_name"] = "x".repeat(256).into(),
            &["$.binary_name"],
        ),
        case(
            "install path empty",
            FREE,
            |d| d["install_path"] = "".into(),
            &["$.install_path"],
        ),
        case(
            "not installable",
            FREE,
            |d| d["distribution"]["binary_available"] = false.into(),
            &[],
        ),
        case(
            "neither source nor binary",
            FREE,
            |d| {
                d["distribution"]["binary_available"] = false.into();
                d["distribution"]["source_available"] = false.into();
            },
            &["$.distribution"],
        ),
        case(
            "requires license a string",
            FREE,
            |d| d["distribution"]["requires_license"] = "true".into(),
            &["$.distribution.requires_license"],
        ),
        case(
            "premium without pricing",
            PREMIUM,
            |d| remove(d, "pricing"),
            &["$.pricing"],
        ),
        case(
            "premium with null pricing",
            PREMIUM,
            |d| d["pricing"] = Value::Null,
            &["$.pricing"],
        ),
        case(
            "free worker with pricing",
            PREMIUM,
            |d| d["distribution"]["requires_license"] = false.into(),
            &["$.pricing"],
        ),
        case(
            "amount zero",
            PREMIUM,
            |d| d["pricing"]["amount"] = 0.into(),
            &["$.pricing.amount"],
        ),
        case(
            "amount negative",
            PREMIUM,
            |d| d["pricing"]["amount"] = (-5.0).into(),
            &["$.pricing.amount"],
        ),
        case(
            "amount a string",
            PREMIUM,
            |d| d["pricing"]["amount"] = "29.99".into(),
            &["$.pricing.amount"],
        ),
        case(
            "currency lower-case",
            PREMIUM,
            |d| d["pricing"]["currency"] = "eur".into(),
            &["$.pricing.currency"],
        ),
        case(
            "currency four letters",
            PREMIUM,
            |d| d["pricing"]["currency"] = "EURO".into(),
            &["$.pricing.currency"],
        ),
        case(
            "purchase url http",
            PREMIUM,
            |d| d["pricing"]["purchase_url"] = "http://rbee.dev/buy".into(),
            &["$.pricing.purchase_url"],
        ),
        case(
            "purchase url without host",
            PREMIUM,
            |d| d["pricing"]["purchase_url"] = "https:///buy".into(),
            &["$.pricing.purchase_url"],
        ),
        case(
            "pricing extra",
            PREMIUM,
            |d| d["pricing"]["vat"] = 0.2.into(),
            &["$.pricing.vat"],
        ),
        case(
            "pricing a number",
            PREMIUM,
            |d| d["pricing"] = 29.into(),
            &["$.pricing"],
        ),
        case(
            "unknown field",
            FREE,
            |d| d["homepage"] = "https://rbee.dev".into(),
            &["$.homepage"],
        ),
        case(
            "odd unknown key",
            FREE,
            |d| d["build-system"] = "cargo".into(),
            &["$[\"build-system\"]"],
        ),
        case("an array", FREE, |d| *d = json!([]), &["$"]),
        case(
            "several problems at once",
            PREMIUM,
            |d| {
                d["id"] = "X".into();
                d["platforms"] = json!(["linux-x86_64", "beos-x86"]);
                d["pricing"]["currency"] = "euro".into();
                remove(d, "binary_name");
            },
            &[
                "$.id",
                "$.platforms[1]",
                "$.binary_name",
                "$.pricing.currency",
            ],
        ),
    ]
}

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
fn rust_only_rules() {
    // The schema's patterns stay portable regular expressions (no
    // look-around, no recursion), so these are checked by Rust alone. A
    // case that the schema starts refusing belongs in `cases()` instead.
    let validator = validator();
    let rust_only = [
        ("license unbalanced (", "(MIT OR ISC"),
        ("license unbalanced )", "MIT)"),
        ("license operator as id", "MIT AND AND"),
        (
            "license WITH a parenthesis",
            "MIT WITH (Classpath-exception-2.0)",
        ),
        (
            "license parenthesis WITH",
            "(MIT) WITH Classpath-exception-2.0",
        ),
    ];
    for (name, license) in rust_only {
        let mut d = doc(FREE);
        d["license"] = license.into();
        assert!(
            validator.is_valid(&d),
            "{name}: the schema now refuses it; move it to cases()"
        );
        assert_eq!(rust_paths(&d.to_string()), ["$.license"], "{name}");
    }
    // JSON Schema counts 1.0 as an integer; serde reads only 1 as a u64.
    let mut d = doc(FREE);
    d["capabilities"]["max_context_length"] = json!(1.0);
    assert!(validator.is_valid(&d));
    assert_eq!(
        rust_paths(&d.to_string()),
        ["$.capabilities.max_context_length"]
    );
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

#[test]
fn the_many_problems_fixture_reports_each_one() {
    let text = include_str!("fixtures/invalid/many-problems.json");
    let err = WorkerMetadata::from_json(text).unwrap_err();
    let paths: Vec<&str> = err.issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.id",
            "$.backend",
            "$.name",
            "$.version",
            "$.license",
            "$.source.url",
            "$.source",
            "$.platforms[1]",
            "$.platforms[2]",
            "$.capabilities.streaming",
            "$.capabilities.gpu",
            "$.binary_name",
            "$.distribution",
            "$.pricing",
        ],
        "{err}"
    );
    // Display: one issue per line, each starting with its path.
    let text = err.to_string();
    for (line, path) in text.lines().zip(&paths) {
        assert!(line.starts_with(&format!("{path}: ")), "{line}");
    }
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let text = include_str!("fixtures/invalid/syntax-error.json");
    let err = WorkerMetadata::from_json(text).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].path, "$");
    assert!(err.issues[0].message.contains("line 4 column 3"), "{err}");
}
