//! Shared by the schema tests: the two sample documents, the schema file
//! and its validator, and what each side says about a document.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod samples;

use jsonschema::Validator;
use rbee_schemas::{WORKER_METADATA_SCHEMA, WorkerMetadata};
use serde_json::Value;

pub const FREE: &str = include_str!("../fixtures/valid/llm-worker-rbee-cpu.json");
pub const PREMIUM: &str = include_str!("../fixtures/valid/premium-cuda.json");

pub fn schema() -> Value {
    serde_json::from_str(WORKER_METADATA_SCHEMA).expect("the schema file is JSON")
}

pub fn validator() -> Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

pub fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// What the schema says, as readable lines for assertion messages.
pub fn schema_errors(validator: &Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// What Rust says: the paths of the issues, empty when valid.
pub fn rust_paths(text: &str) -> Vec<String> {
    match WorkerMetadata::from_json(text) {
        Ok(_) => Vec::new(),
        Err(err) => err.issues.into_iter().map(|i| i.path).collect(),
    }
}

pub fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}
