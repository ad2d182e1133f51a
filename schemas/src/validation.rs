//! Validation errors with JSON paths, and the reader that walks a parsed
//! JSON document collecting every problem instead of stopping at the first.
//!
//! serde's derived `Deserialize` stops at the first error and, for a type
//! error, forgets where it was. Publishers fix a metadata file faster when
//! they see all of its problems at once, each with its place, so documents
//! are read from a [`serde_json::Value`] field by field instead.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Every problem found in a document; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The problems, in the order the document was read.
    pub issues: Vec<ValidationIssue>,
}

/// One problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// A JSON path from the document root, e.g. `$.platforms[1]` or
    /// `$.pricing.currency`; `$` is the whole document.
    pub path: String,
    /// What is wrong, in words meant for the person who wrote the document.
    pub message: String,
}

impl fmt::Display for ValidationErrors {
    /// One issue per line, `path: message`, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects issues while a document is read or checked.
#[derive(Debug, Default)]
pub(crate) struct Issues(Vec<ValidationIssue>);

impl Issues {
    /// Records a problem at `path`.
    pub(crate) fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ValidationIssue {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Records the error of a rule, if it failed.
    pub(crate) fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(path, message);
        }
    }

    /// True while nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The collected issues as an error. Only call it when at least one
    /// issue was recorded; an empty list still makes a (useless) error
    /// rather than a panic.
    pub(crate) fn into_errors(self) -> ValidationErrors {
        ValidationErrors { issues: self.0 }
    }

    /// `Ok` when nothing was recorded.
    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_errors())
        }
    }
}

/// Parses `text` as JSON. A syntax error becomes one issue at `$` whose
/// message carries the line and column.
pub(crate) fn parse_json(text: &str) -> Result<Value, ValidationErrors> {
    serde_json::from_str(text).map_err(|err| {
        let mut issues = Issues::default();
        // serde_json's message already ends in "at line L column C".
        issues.push("$", format!("not valid JSON: {err}"));
        issues.into_errors()
    })
}

/// The path of member `key` of the object at `parent`: `$.id`, or
/// `$["odd key"]` when the key is not a plain identifier.
pub(crate) fn member_path(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{parent}.{key}")
    } else {
        // A JSON string literal is a valid bracket key in JSONPath.
        format!("{parent}[{}]", Value::String(key.to_owned()))
    }
}

/// The path of element `index` of the array at `parent`: `$.platforms[1]`.
pub(crate) fn element_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The JSON type of a value, in words, for "expected X, found Y" messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deserializes one value, recording serde's message at `path` on failure.
pub(crate) fn deserialize<'v, T: Deserialize<'v>>(
    value: &'v Value,
    path: &str,
    issues: &mut Issues,
) -> Option<T> {
    match T::deserialize(value) {
        Ok(v) => Some(v),
        Err(err) => {
            issues.push(path, err.to_string());
            None
        }
    }
}

/// Reads an array element by element so that each bad element is reported
/// with its own index. `None` when the value is not an array or any element
/// failed.
pub(crate) fn array<'v, T>(
    value: &'v Value,
    path: &str,
    issues: &mut Issues,
    mut element: impl FnMut(&'v Value, &str, &mut Issues) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = value else {
        issues.push(path, format!("expected an array, found {}", kind(value)));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut all_ok = true;
    for (i, item) in items.iter().enumerate() {
        match element(item, &element_path(path, i), issues) {
            Some(v) => out.push(v),
            None => all_ok = false,
        }
    }
    all_ok.then_some(out)
}

/// False (with an issue at `path`) when `value` is an array of more than
/// `max_items` elements. Checked before the elements are read, so that a
/// reader's work stays bounded by the limit rather than by the document.
pub(crate) fn within(value: &Value, max_items: usize, path: &str, issues: &mut Issues) -> bool {
    match value {
        Value::Array(items) if items.len() > max_items => {
            issues.push(
                path,
                format!(
                    "lists {} items; at most {max_items} are allowed",
                    items.len()
                ),
            );
            false
        }
        _ => true,
    }
}

/// Refuses a document of more than `max_bytes` before it is parsed.
pub(crate) fn check_size(text: &str, max_bytes: usize) -> Result<(), ValidationErrors> {
    if text.len() <= max_bytes {
        return Ok(());
    }
    let mut issues = Issues::default();
    issues.push(
        "$",
        format!(
            "the document is {} bytes; at most {max_bytes} are allowed",
            text.len()
        ),
    );
    Err(issues.into_errors())
}

/// Reads a string and applies `rule` to it. The string is returned even
/// when the rule fails, so that checks spanning several fields still run.
pub(crate) fn string(
    value: &Value,
    path: &str,
    issues: &mut Issues,
    rule: fn(&str) -> Result<(), String>,
) -> Option<String> {
    let Value::String(s) = value else {
        issues.push(path, format!("expected a string, found {}", kind(value)));
        return None;
    };
    issues.check(path, rule(s));
    Some(s.clone())
}

/// Reads a boolean.
pub(crate) fn boolean(value: &Value, path: &str, issues: &mut Issues) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        other => {
            issues.push(path, format!("expected a boolean, found {}", kind(other)));
            None
        }
    }
}

/// One JSON object being read member by member. Members are looked up by
/// name; [`Object::finish`] then reports the members nobody asked for.
#[derive(Debug)]
pub(crate) struct Object<'v> {
    map: &'v Map<String, Value>,
    path: String,
    read: Vec<&'static str>,
}

impl<'v> Object<'v> {
    /// Starts reading `value`, which must be an object.
    pub(crate) fn new(value: &'v Value, path: &str, issues: &mut Issues) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Object {
                map,
                path: path.to_owned(),
                read: Vec::new(),
            }),
            other => {
                issues.push(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// The path of member `key`.
    pub(crate) fn path_of(&self, key: &str) -> String {
        member_path(&self.path, key)
    }

    /// A member that must be present (and not `null`).
    pub(crate) fn required(&mut self, key: &'static str, issues: &mut Issues) -> Option<&'v Value> {
        self.read.push(key);
        match self.map.get(key) {
            None => {
                issues.push(
                    &self.path_of(key),
                    format!("missing required field `{key}`"),
                );
                None
            }
            Some(Value::Null) => {
                issues.push(
                    &self.path_of(key),
                    format!("`{key}` is required and must not be null"),
                );
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A member that may be absent; `null` counts as absent.
    pub(crate) fn optional(&mut self, key: &'static str) -> Option<&'v Value> {
        self.read.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required member deserialized with serde (enums, versions, numbers).
    pub(crate) fn value<T: Deserialize<'v>>(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Option<T> {
        let value = self.required(key, issues)?;
        deserialize(value, &self.path_of(key), issues)
    }

    /// A required string member that must pass `rule`.
    pub(crate) fn string(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
        rule: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let value = self.required(key, issues)?;
        string(value, &self.path_of(key), issues, rule)
    }

    /// An optional string member that must pass `rule` when present.
    /// `Some(None)` when absent or `null`, `None` when present but wrong.
    pub(crate) fn optional_string(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
        rule: fn(&str) -> Result<(), String>,
    ) -> Option<Option<String>> {
        match self.optional(key) {
            None => Some(None),
            Some(value) => string(value, &self.path_of(key), issues, rule).map(Some),
        }
    }

    /// A required boolean member.
    pub(crate) fn boolean(&mut self, key: &'static str, issues: &mut Issues) -> Option<bool> {
        let value = self.required(key, issues)?;
        boolean(value, &self.path_of(key), issues)
    }

    /// An array of at most `max_items` strings that must each pass `rule`;
    /// absent or `null` reads as empty when `required` is false. A longer
    /// array is one issue, and its elements are not read.
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
        required: bool,
        max_items: usize,
        issues: &mut Issues,
        rule: fn(&str) -> Result<(), String>,
    ) -> Option<Vec<String>> {
        let value = if required {
            self.required(key, issues)?
        } else {
            match self.optional(key) {
                None => return Some(Vec::new()),
                Some(value) => value,
            }
        };
        let path = self.path_of(key);
        if !within(value, max_items, &path, issues) {
            return None;
        }
        array(value, &path, issues, |item, path, issues| {
            string(item, path, issues, rule)
        })
    }

    /// Ends reading. With `deny_unknown`, every member that was not read is
    /// an issue; otherwise such members are ignored.
    pub(crate) fn finish(self, deny_unknown: bool, issues: &mut Issues) {
        if !deny_unknown {
            return;
        }
        for key in self.map.keys() {
            if !self.read.contains(&key.as_str()) {
                let mut known = self.read.clone();
                known.sort_unstable();
                issues.push(
                    &member_path(&self.path, key),
                    format!("unknown field `{key}`; known fields: {}", known.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_one_issue_per_line() {
        let errors = ValidationErrors {
            issues: vec![
                ValidationIssue {
                    path: "$.id".into(),
                    message: "bad".into(),
                },
                ValidationIssue {
                    path: "$.version".into(),
                    message: "worse".into(),
                },
            ],
        };
        assert_eq!(errors.to_string(), "$.id: bad\n$.version: worse");
    }

    #[test]
    fn odd_keys_use_bracket_paths() {
        assert_eq!(member_path("$", "build_system"), "$.build_system");
        assert_eq!(member_path("$", "build-system"), "$[\"build-system\"]");
        assert_eq!(member_path("$.a", "1x"), "$.a[\"1x\"]");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_json("{\n  \"id\": ,\n}").unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(err.issues[0].path, "$");
        assert!(err.issues[0].message.contains("line 2 column"), "{err}");
    }
}
