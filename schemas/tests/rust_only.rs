//! What Rust alone decides: the rules the schema's portable regular
//! expressions cannot state (the schema accepts, Rust refuses), and how
//! Rust reports a document's issues (each with its path, in order; a
//! syntax error's line and column).

mod common;

use common::{FREE, doc, rust_paths, validator};
use rbee_schemas::WorkerMetadata;
use serde_json::json;

#[test]
fn rust_only_rules() {
    // The schema's patterns stay portable regular expressions (no
    // look-around, no recursion), so these are checked by Rust alone. A
    // case that the schema starts refusing belongs in `cases()`
    // (`common/samples.rs`) instead.
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
    // A JSON Schema cannot state a document's size in bytes: every field
    // within its limits, the whole above 64 KiB.
    let mut d = doc(FREE);
    let long_word = "\u{1F980}".repeat(rbee_schemas::limits::WORD_MAX_CHARS);
    d["depends"] = json!(vec![
        long_word.as_str();
        rbee_schemas::limits::LIST_MAX_ITEMS
    ]);
    d["makedepends"] = d["depends"].clone();
    assert!(d.to_string().len() > rbee_schemas::limits::METADATA_MAX_BYTES);
    assert!(validator.is_valid(&d));
    assert_eq!(rust_paths(&d.to_string()), ["$"]);
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
