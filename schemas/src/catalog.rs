//! The catalog index document: the list of worker repositories with their
//! versions, published as an artifact (e.g. `rbee/catalog:latest`, media
//! type [`CATALOG_INDEX`](crate::media_types::CATALOG_INDEX)) so the catalog
//! works on registries without `/v2/_catalog`. The pusher rewrites it on
//! every release.
//!
//! Unknown fields are ignored when reading, unlike in the metadata document:
//! a reader of schema version 1 keeps working when a later writer adds an
//! optional field. A change that old readers must not ignore raises
//! `schema_version`, which they refuse.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits;
use crate::rules;
use crate::validation::{self, Issues, Object, ValidationErrors};
use crate::worker_id::validate_published_worker_id;

/// The catalog index document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogIndex {
    /// Version of this document's layout; always
    /// [`CatalogIndex::SCHEMA_VERSION`], other values are refused.
    pub schema_version: u32,
    /// When the index was last written, RFC 3339 (`2025-01-31T12:00:00Z`).
    pub updated_at: String,
    /// One entry per worker, sorted by id, ids unique.
    pub workers: Vec<CatalogEntry>,
}

/// One worker in the catalog index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Worker id, e.g. `llm-worker-rbee-cpu`.
    pub id: String,
    /// OCI repository holding the releases, e.g. `rbee/llm-worker-rbee-cpu`
    /// or `rbee-premium/...`; relative to the registry the index lives in.
    pub repository: String,
    /// The version the `latest` tag points to: the highest stable version.
    /// Absent while only pre-releases exist. When present it is one of
    /// `versions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// Every published version (semver strings, unique); kept newest first
    /// by [`CatalogEntry::insert_version`]. Readers do not rely on the order.
    pub versions: Vec<String>,
    /// Whether downloading needs a license key, so a client can tell before
    /// it asks.
    pub requires_license: bool,
    /// When this worker was last published, RFC 3339.
    pub updated_at: String,
}

impl CatalogIndex {
    /// The layout version this crate reads and writes.
    pub const SCHEMA_VERSION: u32 = 1;

    /// An empty index written at `updated_at` (RFC 3339).
    pub fn new(updated_at: impl Into<String>) -> CatalogIndex {
        CatalogIndex {
            schema_version: Self::SCHEMA_VERSION,
            updated_at: updated_at.into(),
            workers: Vec::new(),
        }
    }

    /// Inserts `entry`, replacing the entry with the same id, and keeps the
    /// entries sorted by id. It does not touch `updated_at`; the caller
    /// sets it when it writes the index.
    pub fn upsert(&mut self, entry: CatalogEntry) {
        match self.workers.binary_search_by(|e| e.id.cmp(&entry.id)) {
            Ok(i) => self.workers[i] = entry,
            Err(i) => self.workers.insert(i, entry),
        }
    }

    /// The entry of worker `id`, if listed.
    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.workers
            .binary_search_by(|e| e.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.workers[i])
    }

    /// Parses and validates an index, reporting every problem with its JSON
    /// path. Entries come back sorted by id.
    ///
    /// A document larger than [`limits::CATALOG_MAX_BYTES`], more than
    /// [`limits::CATALOG_MAX_WORKERS`] workers or more than
    /// [`limits::CATALOG_MAX_VERSIONS`] versions of one worker are refused
    /// before the rest is read, so reading costs time linear in a bounded
    /// size.
    pub fn from_json(text: &str) -> Result<CatalogIndex, ValidationErrors> {
        validation::check_size(text, limits::CATALOG_MAX_BYTES)?;
        Self::from_value(&validation::parse_json(text)?)
    }

    /// Checks a value built in code against the rules of
    /// [`from_json`](Self::from_json), its size as
    /// [`to_json_pretty`](Self::to_json_pretty) writes it included: what
    /// passes is what a reader accepts.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        match serde_json::to_value(self) {
            Ok(value) => {
                Self::from_value(&value)?;
                validation::check_size(&self.to_json_pretty(), limits::CATALOG_MAX_BYTES)
            }
            Err(err) => {
                let mut issues = Issues::default();
                issues.push("$", format!("cannot be serialized: {err}"));
                Err(issues.into_errors())
            }
        }
    }

    /// The index as indented JSON; deterministic for the same value.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("only strings, numbers, booleans and arrays: serialization cannot fail")
    }

    fn from_value(value: &Value) -> Result<CatalogIndex, ValidationErrors> {
        let mut iss = Issues::default();
        let Some(mut doc) = Object::new(value, "$", &mut iss) else {
            return Err(iss.into_errors());
        };
        let schema_version = doc.value::<u32>("schema_version", &mut iss);
        if let Some(v) = schema_version.filter(|&v| v != Self::SCHEMA_VERSION) {
            iss.push(
                "$.schema_version",
                format!(
                    "unsupported schema_version {v}; this reader understands {}",
                    Self::SCHEMA_VERSION
                ),
            );
        }
        let updated_at = doc.string("updated_at", &mut iss, rules::rfc3339);
        let workers_path = doc.path_of("workers");
        let workers = doc
            .required("workers", &mut iss)
            .filter(|v| validation::within(v, limits::CATALOG_MAX_WORKERS, &workers_path, &mut iss))
            .and_then(|v| validation::array(v, &workers_path, &mut iss, CatalogEntry::read));
        if let Some(workers) = &workers {
            // Where each id was first listed: a linear duplicate check.
            let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(workers.len());
            for (i, entry) in workers.iter().enumerate() {
                if let Some(&first) = first_at.get(entry.id.as_str()) {
                    iss.push(
                        &format!("$.workers[{i}].id"),
                        format!(
                            "`{}` is listed twice (first at $.workers[{first}])",
                            entry.id
                        ),
                    );
                } else {
                    first_at.insert(&entry.id, i);
                }
            }
        }
        doc.finish(false, &mut iss);
        let (Some(schema_version), Some(updated_at), Some(mut workers)) =
            (schema_version, updated_at, workers)
        else {
            return Err(iss.into_errors());
        };
        iss.into_result()?;
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(CatalogIndex {
            schema_version,
            updated_at,
            workers,
        })
    }
}

/// An empty index of the current schema version, dated at the Unix epoch
/// (a valid RFC 3339 date that says "never written"); the writer sets
/// `updated_at`.
impl Default for CatalogIndex {
    fn default() -> CatalogIndex {
        CatalogIndex::new("1970-01-01T00:00:00Z")
    }
}

/// Runs the same checks as [`CatalogIndex::from_json`].
impl<'de> Deserialize<'de> for CatalogIndex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl CatalogEntry {
    /// Adds `version` if it is new, keeps `versions` newest first (by
    /// semver precedence), and points `latest` at the highest stable (non
    /// pre-release) version, the rule the `latest` tag follows; `latest` is
    /// `None` while only pre-releases exist.
    pub fn insert_version(&mut self, version: &semver::Version) {
        self.insert_versions([version]);
    }

    /// [`insert_version`](Self::insert_version) for many versions at once:
    /// one sort, each string parsed once, so adding a whole tag list costs
    /// `O(n log n)` rather than a sort per version.
    pub fn insert_versions<'a>(&mut self, versions: impl IntoIterator<Item = &'a semver::Version>) {
        let mut seen: HashSet<String> = self.versions.iter().cloned().collect();
        for v in versions {
            let v = v.to_string();
            if seen.insert(v.clone()) {
                self.versions.push(v);
            }
        }
        // Strings that are not semver can only come from values built in
        // code (`from_json` refuses them); they sort last and are never
        // `latest`.
        let mut parsed: Vec<(Option<semver::Version>, String)> = std::mem::take(&mut self.versions)
            .into_iter()
            .map(|s| (semver::Version::parse(&s).ok(), s))
            .collect();
        parsed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => b.cmp(a),
            (a, b) => b.is_some().cmp(&a.is_some()),
        });
        self.latest = parsed
            .iter()
            .find(|(v, _)| v.as_ref().is_some_and(|v| v.pre.is_empty()))
            .map(|(_, s)| s.clone());
        self.versions = parsed.into_iter().map(|(_, s)| s).collect();
    }

    fn read(value: &Value, path: &str, iss: &mut Issues) -> Option<CatalogEntry> {
        let mut obj = Object::new(value, path, iss)?;
        let id = obj.string("id", iss, validate_published_worker_id);
        let repository = obj.string("repository", iss, rules::oci_repository);
        let latest = obj.optional_string("latest", iss, rules::semver);
        let versions = obj.strings(
            "versions",
            true,
            limits::CATALOG_MAX_VERSIONS,
            iss,
            rules::semver,
        );
        if let Some(versions) = &versions {
            // Where each version was first listed: a linear duplicate check.
            let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(versions.len());
            for (i, v) in versions.iter().enumerate() {
                if let Some(&first) = first_at.get(v.as_str()) {
                    iss.push(
                        &validation::element_path(&obj.path_of("versions"), i),
                        format!("`{v}` is listed twice (first at index {first})"),
                    );
                } else {
                    first_at.insert(v, i);
                }
            }
            if let Some(Some(latest)) = &latest
                && !first_at.contains_key(latest.as_str())
            {
                iss.push(
                    &obj.path_of("latest"),
                    format!("`{latest}` is not one of `versions`"),
                );
            }
        }
        let requires_license = obj.boolean("requires_license", iss);
        let updated_at = obj.string("updated_at", iss, rules::rfc3339);
        obj.finish(false, iss);
        Some(CatalogEntry {
            id: id?,
            repository: repository?,
            latest: latest?,
            versions: versions?,
            requires_license: requires_license?,
            updated_at: updated_at?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, versions: &[&str]) -> CatalogEntry {
        let mut e = CatalogEntry {
            id: id.into(),
            repository: format!("rbee/{id}"),
            latest: None,
            versions: Vec::new(),
            requires_license: false,
            updated_at: "2025-01-31T12:00:00Z".into(),
        };
        for v in versions {
            e.insert_version(&semver::Version::parse(v).unwrap());
        }
        e
    }

    #[test]
    fn upsert_replaces_by_id_and_keeps_ids_sorted() {
        let mut index = CatalogIndex::default();
        assert_eq!(index.validate(), Ok(()));
        index.updated_at = "2025-01-31T12:00:00Z".into();
        index.upsert(entry("sd-worker-rbee-cpu", &["0.1.0"]));
        index.upsert(entry("llm-worker-rbee-cuda", &["0.1.0"]));
        index.upsert(entry("llm-worker-rbee-cpu", &["0.1.0"]));
        index.upsert(entry("llm-worker-rbee-cuda", &["0.1.0", "0.2.0"]));
        let ids: Vec<_> = index.workers.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "llm-worker-rbee-cpu",
                "llm-worker-rbee-cuda",
                "sd-worker-rbee-cpu"
            ]
        );
        assert_eq!(
            index.get("llm-worker-rbee-cuda").unwrap().versions,
            ["0.2.0", "0.1.0"]
        );
        assert_eq!(index.get("nope"), None);
        assert_eq!(index.validate(), Ok(()));
        assert_eq!(CatalogIndex::from_json(&index.to_json_pretty()), Ok(index));
    }

    #[test]
    fn latest_is_the_highest_stable_version() {
        let e = entry("w", &["0.10.0", "0.9.0", "1.0.0-rc.1", "0.10.0"]);
        assert_eq!(e.versions, ["1.0.0-rc.1", "0.10.0", "0.9.0"]);
        assert_eq!(e.latest.as_deref(), Some("0.10.0"));
        assert_eq!(entry("w", &["1.0.0-rc.1"]).latest, None);
    }

    #[test]
    fn reading_reports_every_problem_and_sorts() {
        let text = r#"{
            "schema_version": 1,
            "updated_at": "2025-01-31T12:00:00Z",
            "future_field": {"ignored": true},
            "workers": [
                {"id": "b", "repository": "rbee/b", "versions": ["0.1.0"], "latest": "0.1.0",
                 "requires_license": true, "updated_at": "2025-01-31T12:00:00+01:00", "extra": 1},
                {"id": "a", "repository": "rbee/a", "versions": [], "requires_license": false,
                 "updated_at": "2025-01-31T12:00:00Z"}
            ]
        }"#;
        let index = CatalogIndex::from_json(text).unwrap();
        assert_eq!(index.workers[0].id, "a");
        assert_eq!(index.workers[1].latest.as_deref(), Some("0.1.0"));

        let bad = r#"{
            "schema_version": 2,
            "updated_at": "yesterday",
            "workers": [
                {"id": "B", "repository": "Rbee/b", "versions": ["0.1", "0.2.0", "0.2.0"],
                 "latest": "0.3.0", "requires_license": "no", "updated_at": "2025-01-31T12:00:00Z"},
                {"id": "a", "repository": "rbee/a", "versions": [], "requires_license": false,
                 "updated_at": "2025-01-31T12:00:00Z"},
                {"id": "a", "repository": "rbee/a", "versions": [], "requires_license": false,
                 "updated_at": "2025-01-31T12:00:00Z"}
            ]
        }"#;
        let err = CatalogIndex::from_json(bad).unwrap_err();
        let paths: Vec<_> = err.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.schema_version",
                "$.updated_at",
                "$.workers[0].id",
                "$.workers[0].repository",
                "$.workers[0].versions[0]",
                "$.workers[0].versions[2]",
                "$.workers[0].latest",
                "$.workers[0].requires_license",
            ],
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let text = r#"{"schema_version": 1, "updated_at": "2025-01-31T12:00:00Z", "workers": [
            {"id": "a", "repository": "rbee/a", "versions": [], "requires_license": false, "updated_at": "2025-01-31T12:00:00Z"},
            {"id": "a", "repository": "rbee/a2", "versions": [], "requires_license": false, "updated_at": "2025-01-31T12:00:00Z"}
        ]}"#;
        let err = CatalogIndex::from_json(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "$.workers[1].id: `a` is listed twice (first at $.workers[0])"
        );
    }
}
