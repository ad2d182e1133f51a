//! The worker metadata document: what a worker is, where its source lives,
//! which platforms it is built for and whether it needs a license. It is the
//! `config` blob of every platform manifest (media type
//! [`WORKER_METADATA`](crate::media_types::WORKER_METADATA)) and the
//! `metadata.json` inside each layer.
//!
//! The same document is described by `schemas/worker-metadata.schema.json`
//! ([`WORKER_METADATA_SCHEMA`](crate::WORKER_METADATA_SCHEMA)); the tests
//! run both over the same samples and expect the same verdict.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits;
use crate::platform::Platform;
use crate::rules;
use crate::validation::{self, Issues, Object, ValidationErrors};
use crate::worker_id::{validate_published_worker_id, validate_worker_id};

pub use crate::rules::{BUILD_SYSTEMS, IMPLEMENTATIONS};

/// The worker metadata document (snake_case JSON, unknown fields refused).
///
/// Build one with [`WorkerMetadata::from_json`] (or serde, which runs the
/// same checks); a value built in code can be checked with
/// [`WorkerMetadata::validate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerMetadata {
    /// Worker id, `^[a-z0-9-]+$`, at most 100 characters, e.g.
    /// `llm-worker-rbee-cpu`. It names the OCI repository and the catalog
    /// routes, which is why its alphabet is narrow.
    pub id: String,
    /// The worker family this build belongs to, e.g. `llm-worker-rbee`;
    /// same alphabet as `id`.
    pub family: String,
    /// The compute backend this build targets.
    pub backend: Backend,
    /// Human-readable name, e.g. `LLM Worker (CPU)`.
    pub name: String,
    /// One or two sentences for the catalog and the marketplace.
    pub description: String,
    /// The release version (semver, no leading `v`); it is also the OCI tag.
    pub version: semver::Version,
    /// SPDX license expression, e.g. `GPL-3.0-or-later` or
    /// `LicenseRef-rbee-commercial`; copied to the
    /// `org.opencontainers.image.licenses` annotation.
    pub license: String,
    /// Implementation language: one of
    /// [`IMPLEMENTATIONS`](crate::metadata::IMPLEMENTATIONS) (`rust`,
    /// `python`, `cpp`), the values rbee's strict readers accept.
    pub implementation: String,
    /// Build tool: one of [`BUILD_SYSTEMS`](crate::metadata::BUILD_SYSTEMS)
    /// (`cargo`, `make`, `cmake`), the values rbee's strict readers accept.
    pub build_system: String,
    /// Where the source comes from.
    pub source: Source,
    /// The platforms this release is built for, as rbee names
    /// (`linux-x86_64`); at least one, no duplicates.
    pub platforms: Vec<Platform>,
    /// What the worker can do, for rbee-hive to choose a worker.
    pub capabilities: Capabilities,
    /// Runtime package dependencies (PKGBUILD `depends`); empty when absent.
    pub depends: Vec<String>,
    /// Build-time package dependencies (PKGBUILD `makedepends`); empty when
    /// absent.
    pub makedepends: Vec<String>,
    /// File name of the worker executable inside the layer, e.g.
    /// `llm-worker-rbee-cpu`; a plain file name, never a path.
    pub binary_name: String,
    /// Where the binary is installed on the user's machine, e.g.
    /// `/usr/local/bin/llm-worker-rbee-cpu`. Informative: the client chooses
    /// its own install directory.
    pub install_path: String,
    /// How the worker may be obtained.
    pub distribution: Distribution,
    /// Price of a license. Present exactly when
    /// `distribution.requires_license` is true: a premium worker must say
    /// where to buy it, and a free one must not show a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// The compute backend of a worker build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Plain CPU.
    Cpu,
    /// NVIDIA CUDA.
    Cuda,
    /// Apple Metal.
    Metal,
    /// AMD ROCm.
    Rocm,
}

/// Where the worker's source comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Kind of source, e.g. `git` (JSON field `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// URL with a scheme, e.g. `https://github.com/rbee/llm-worker-rbee.git`.
    pub url: String,
    /// The tag the release was built from; at most one of `tag` and
    /// `branch` is given, since both would be ambiguous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The branch the release was built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// What a worker can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Model formats the worker loads, e.g. `gguf`, `safetensors`; each
    /// one word.
    pub supported_formats: Vec<String>,
    /// Longest context the worker handles, in tokens (at least 1); absent
    /// when it does not apply or is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<u64>,
    /// Whether the worker streams tokens as they are generated.
    pub streaming: bool,
    /// Whether the worker batches concurrent requests.
    pub batching: bool,
}

/// How a worker may be obtained. At least one of `source_available` and
/// `binary_available` is true, or nobody could install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Distribution {
    /// Whether users may build it from source (PKGBUILD).
    pub source_available: bool,
    /// Whether prebuilt binaries are published.
    pub binary_available: bool,
    /// Whether downloading needs a license key (a premium worker).
    pub requires_license: bool,
}

/// The price of a license for a premium worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pricing {
    /// Price in units of `currency` (e.g. `29.99` for EUR 29.99), a JSON
    /// number greater than 0. A number rather than a decimal string because
    /// the document only displays the price: the payment happens at
    /// `purchase_url`, which owns the exact amount, so no arithmetic is
    /// ever done on this value.
    pub amount: f64,
    /// ISO 4217 code, three upper-case letters, e.g. `EUR`.
    pub currency: String,
    /// `https://` page where a license is bought; the catalog answers a 403
    /// with this URL.
    pub purchase_url: String,
}

impl WorkerMetadata {
    /// Parses and validates a metadata document, reporting every problem
    /// found (syntax, missing or unknown fields, wrong types, rule
    /// violations), each with its JSON path.
    ///
    /// A document larger than [`limits::METADATA_MAX_BYTES`] is refused
    /// before it is parsed; text fields and lists have the limits of
    /// [`limits`].
    pub fn from_json(text: &str) -> Result<WorkerMetadata, ValidationErrors> {
        validation::check_size(text, limits::METADATA_MAX_BYTES)?;
        Self::from_value(&validation::parse_json(text)?)
    }

    /// Checks a value built in code against the same rules as
    /// [`from_json`](Self::from_json), with the same paths and messages.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        // Checking the serialized form keeps one set of rules: what this
        // returns is exactly what `from_json` would say about the JSON the
        // pusher is about to publish.
        match serde_json::to_value(self) {
            Ok(value) => {
                Self::from_value(&value)?;
                validation::check_size(&self.to_json_pretty(), limits::METADATA_MAX_BYTES)
            }
            Err(err) => {
                let mut issues = Issues::default();
                issues.push("$", format!("cannot be serialized: {err}"));
                Err(issues.into_errors())
            }
        }
    }

    /// The document as indented JSON, fields in declaration order. The
    /// output is deterministic, so the same metadata gives the same digest.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("only strings, numbers, booleans and arrays: serialization cannot fail")
    }

    fn from_value(value: &Value) -> Result<WorkerMetadata, ValidationErrors> {
        let mut iss = Issues::default();
        let Some(mut doc) = Object::new(value, "$", &mut iss) else {
            return Err(iss.into_errors());
        };
        let id = doc.string("id", &mut iss, validate_published_worker_id);
        let family = doc.string("family", &mut iss, validate_worker_id);
        let backend = doc.value::<Backend>("backend", &mut iss);
        let name = doc.string("name", &mut iss, rules::name);
        let description = doc.string("description", &mut iss, rules::description);
        let version = match doc.required("version", &mut iss) {
            Some(Value::String(v)) if rules::version_length(v).is_err() => {
                iss.check(&doc.path_of("version"), rules::version_length(v));
                None
            }
            Some(v) => {
                validation::deserialize::<semver::Version>(v, &doc.path_of("version"), &mut iss)
            }
            None => None,
        };
        let license = doc.string("license", &mut iss, rules::license_expression);
        let implementation = doc.string("implementation", &mut iss, rules::implementation);
        let build_system = doc.string("build_system", &mut iss, rules::build_system);
        let source = doc
            .required("source", &mut iss)
            .and_then(|v| Source::read(v, &doc.path_of("source"), &mut iss));
        let platforms = doc
            .required("platforms", &mut iss)
            .and_then(|v| read_platforms(v, &doc.path_of("platforms"), &mut iss));
        let capabilities = doc
            .required("capabilities", &mut iss)
            .and_then(|v| Capabilities::read(v, &doc.path_of("capabilities"), &mut iss));
        let depends = doc.strings(
            "depends",
            false,
            limits::LIST_MAX_ITEMS,
            &mut iss,
            rules::word,
        );
        let makedepends = doc.strings(
            "makedepends",
            false,
            limits::LIST_MAX_ITEMS,
            &mut iss,
            rules::word,
        );
        let binary_name = doc.string("binary_name", &mut iss, rules::file_name);
        let install_path = doc.string("install_path", &mut iss, rules::install_path);
        let distribution = doc
            .required("distribution", &mut iss)
            .and_then(|v| Distribution::read(v, &doc.path_of("distribution"), &mut iss));
        let pricing = match doc.optional("pricing") {
            None => Some(None),
            Some(v) => Pricing::read(v, &doc.path_of("pricing"), &mut iss).map(Some),
        };
        if let (Some(distribution), Some(pricing)) = (&distribution, &pricing) {
            match (distribution.requires_license, pricing) {
                (true, None) => iss.push(
                    "$.pricing",
                    "required when distribution.requires_license is true: give the amount, currency and purchase_url of a license",
                ),
                (false, Some(_)) => iss.push(
                    "$.pricing",
                    "only allowed when distribution.requires_license is true; a free worker has no price",
                ),
                _ => {}
            }
        }
        doc.finish(true, &mut iss);

        let (
            Some(id),
            Some(family),
            Some(backend),
            Some(name),
            Some(description),
            Some(version),
            Some(license),
            Some(implementation),
            Some(build_system),
            Some(source),
            Some(platforms),
            Some(capabilities),
            Some(depends),
            Some(makedepends),
            Some(binary_name),
            Some(install_path),
            Some(distribution),
            Some(pricing),
        ) = (
            id,
            family,
            backend,
            name,
            description,
            version,
            license,
            implementation,
            build_system,
            source,
            platforms,
            capabilities,
            depends,
            makedepends,
            binary_name,
            install_path,
            distribution,
            pricing,
        )
        else {
            return Err(iss.into_errors());
        };
        iss.into_result()?;
        Ok(WorkerMetadata {
            id,
            family,
            backend,
            name,
            description,
            version,
            license,
            implementation,
            build_system,
            source,
            platforms,
            capabilities,
            depends,
            makedepends,
            binary_name,
            install_path,
            distribution,
            pricing,
        })
    }
}

/// Runs the same checks as [`WorkerMetadata::from_json`], so a
/// `WorkerMetadata` obtained through serde is always valid; the error lists
/// every issue.
impl<'de> Deserialize<'de> for WorkerMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl Backend {
    /// Every backend, in a stable order.
    pub const ALL: [Backend; 4] = [Backend::Cpu, Backend::Cuda, Backend::Metal, Backend::Rocm];

    /// The JSON and annotation form, e.g. `cuda`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
            Backend::Metal => "metal",
            Backend::Rocm => "rocm",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Source {
    fn read(value: &Value, path: &str, iss: &mut Issues) -> Option<Source> {
        let mut obj = Object::new(value, path, iss)?;
        let kind = obj.string("type", iss, rules::short_text);
        let url = obj.string("url", iss, rules::source_url);
        let tag = obj.optional_string("tag", iss, rules::git_ref);
        let branch = obj.optional_string("branch", iss, rules::git_ref);
        if let (Some(Some(_)), Some(Some(_))) = (&tag, &branch) {
            iss.push(path, "give either `tag` or `branch`, not both");
        }
        obj.finish(true, iss);
        Some(Source {
            kind: kind?,
            url: url?,
            tag: tag?,
            branch: branch?,
        })
    }
}

impl Capabilities {
    fn read(value: &Value, path: &str, iss: &mut Issues) -> Option<Capabilities> {
        let mut obj = Object::new(value, path, iss)?;
        let supported_formats = obj.strings(
            "supported_formats",
            true,
            limits::LIST_MAX_ITEMS,
            iss,
            rules::word,
        );
        let max_context_length = match obj.optional("max_context_length") {
            None => Some(None),
            Some(v) => {
                let path = obj.path_of("max_context_length");
                let n = validation::deserialize::<u64>(v, &path, iss);
                if n == Some(0) {
                    iss.push(
                        &path,
                        "must be at least 1; leave it out when it does not apply",
                    );
                }
                // rbee's readers hold it in a `u32`; a larger value would
                // fail to decode there and take the whole list with it.
                if n.is_some_and(|n| n > u64::from(u32::MAX)) {
                    iss.push(
                        &path,
                        format!("must be at most {} (rbee reads it as a u32)", u32::MAX),
                    );
                }
                n.map(Some)
            }
        };
        let streaming = obj.boolean("streaming", iss);
        let batching = obj.boolean("batching", iss);
        obj.finish(true, iss);
        Some(Capabilities {
            supported_formats: supported_formats?,
            max_context_length: max_context_length?,
            streaming: streaming?,
            batching: batching?,
        })
    }
}

impl Distribution {
    fn read(value: &Value, path: &str, iss: &mut Issues) -> Option<Distribution> {
        let mut obj = Object::new(value, path, iss)?;
        let source_available = obj.boolean("source_available", iss);
        let binary_available = obj.boolean("binary_available", iss);
        let requires_license = obj.boolean("requires_license", iss);
        if source_available == Some(false) && binary_available == Some(false) {
            iss.push(path, "source_available and binary_available cannot both be false: nobody could install the worker");
        }
        obj.finish(true, iss);
        Some(Distribution {
            source_available: source_available?,
            binary_available: binary_available?,
            requires_license: requires_license?,
        })
    }
}

impl Pricing {
    fn read(value: &Value, path: &str, iss: &mut Issues) -> Option<Pricing> {
        let mut obj = Object::new(value, path, iss)?;
        let amount = obj.required("amount", iss).and_then(|v| {
            let path = obj.path_of("amount");
            match v.as_f64() {
                Some(a) if a > 0.0 => Some(a),
                Some(_) => {
                    iss.push(&path, "must be greater than 0");
                    None
                }
                None => {
                    iss.push(
                        &path,
                        format!(
                            "expected a number greater than 0, found {}",
                            validation::kind(v)
                        ),
                    );
                    None
                }
            }
        });
        let currency = obj.string("currency", iss, rules::currency);
        let purchase_url = obj.string("purchase_url", iss, rules::https_url);
        obj.finish(true, iss);
        Some(Pricing {
            amount: amount?,
            currency: currency?,
            purchase_url: purchase_url?,
        })
    }
}

/// Reads the platform list: every element must be an rbee platform name,
/// the list must not be empty and must not name a platform twice.
fn read_platforms(value: &Value, path: &str, iss: &mut Issues) -> Option<Vec<Platform>> {
    let Value::Array(items) = value else {
        iss.push(
            path,
            format!(
                "expected an array of platform names, found {}",
                validation::kind(value)
            ),
        );
        return None;
    };
    if items.is_empty() {
        iss.push(
            path,
            format!(
                "must list at least one platform; valid platforms: {}",
                Platform::names().join(", ")
            ),
        );
    }
    let mut platforms = Vec::with_capacity(items.len());
    // Where each platform was first listed: a linear duplicate check.
    let mut first_at = HashMap::new();
    let mut all_ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = validation::element_path(path, i);
        let Some(platform) = validation::deserialize::<Platform>(item, &item_path, iss) else {
            all_ok = false;
            continue;
        };
        if let Entry::Occupied(first) = first_at.entry(platform) {
            let first = *first.get();
            iss.push(
                &item_path,
                format!(
                    "`{platform}` is listed twice (first at {})",
                    validation::element_path(path, first)
                ),
            );
        }
        first_at.entry(platform).or_insert(i);
        platforms.push(platform);
    }
    all_ok.then_some(platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkerMetadata {
        WorkerMetadata {
            id: "llm-worker-rbee-cpu".into(),
            family: "llm-worker-rbee".into(),
            backend: Backend::Cpu,
            name: "LLM Worker (CPU)".into(),
            description: "Candle-based LLM inference on the CPU.".into(),
            version: semver::Version::new(0, 1, 0),
            license: "GPL-3.0-or-later".into(),
            implementation: "rust".into(),
            build_system: "cargo".into(),
            source: Source {
                kind: "git".into(),
                url: "https://github.com/rbee/llm-worker-rbee.git".into(),
                tag: Some("v0.1.0".into()),
                branch: None,
            },
            platforms: vec![Platform::LinuxX86_64, Platform::MacosAarch64],
            capabilities: Capabilities {
                supported_formats: vec!["gguf".into(), "safetensors".into()],
                max_context_length: Some(32768),
                streaming: true,
                batching: false,
            },
            depends: vec!["gcc-libs".into()],
            makedepends: vec!["rust".into(), "cargo".into()],
            binary_name: "llm-worker-rbee-cpu".into(),
            install_path: "/usr/local/bin/llm-worker-rbee-cpu".into(),
            distribution: Distribution {
                source_available: true,
                binary_available: true,
                requires_license: false,
            },
            pricing: None,
        }
    }

    fn paths(err: &ValidationErrors) -> Vec<&str> {
        err.issues.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn a_valid_document_round_trips() {
        let meta = sample();
        assert_eq!(meta.validate(), Ok(()));
        let json = meta.to_json_pretty();
        assert_eq!(WorkerMetadata::from_json(&json), Ok(meta.clone()));
        assert_eq!(serde_json::from_str::<WorkerMetadata>(&json).unwrap(), meta);
        assert!(
            json.contains(
                r#""platforms": [
    "linux-x86_64",
    "macos-aarch64"
  ]"#
            ),
            "{json}"
        );
        assert!(
            json.contains(r#""type": "git""#) && !json.contains("pricing"),
            "{json}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["id"] = "LLM Worker".into();
        value["version"] = "v1".into();
        value["platforms"] = serde_json::json!(["linux-x86_64", "linux-riscv64", "linux-x86_64"]);
        value["capabilities"]["streaming"] = "yes".into();
        value["depends"] = serde_json::json!(["ok", 3]);
        value["extra"] = true.into();
        value.as_object_mut().unwrap().remove("binary_name");
        let err = WorkerMetadata::from_json(&value.to_string()).unwrap_err();
        assert_eq!(
            paths(&err),
            [
                "$.id",
                "$.version",
                "$.platforms[1]",
                "$.platforms[2]",
                "$.capabilities.streaming",
                "$.depends[1]",
                "$.binary_name",
                "$.extra"
            ],
            "{err}"
        );
        let text = err.to_string();
        assert_eq!(text.lines().count(), 8, "{text}");
        assert!(
            text.contains(
                "$.platforms[1]: unknown platform `linux-riscv64`; valid platforms: linux-x86_64"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "$.platforms[2]: `linux-x86_64` is listed twice (first at $.platforms[0])"
            ),
            "{text}"
        );
        assert!(
            text.contains("$.binary_name: missing required field `binary_name`"),
            "{text}"
        );
        assert!(text.contains("$.extra: unknown field `extra`"), "{text}");
    }

    #[test]
    fn premium_workers_need_a_price_and_free_ones_have_none() {
        let mut meta = sample();
        meta.distribution.requires_license = true;
        let err = meta.validate().unwrap_err();
        assert_eq!(paths(&err), ["$.pricing"]);

        meta.pricing = Some(Pricing {
            amount: 29.99,
            currency: "eur".into(),
            purchase_url: "http://rbee.dev/buy".into(),
        });
        let err = meta.validate().unwrap_err();
        assert_eq!(
            paths(&err),
            ["$.pricing.currency", "$.pricing.purchase_url"],
            "{err}"
        );

        meta.pricing = Some(Pricing {
            amount: 29.99,
            currency: "EUR".into(),
            purchase_url: "https://rbee.dev/buy".into(),
        });
        assert_eq!(meta.validate(), Ok(()));
        let back = WorkerMetadata::from_json(&meta.to_json_pretty()).unwrap();
        assert_eq!(back.pricing.unwrap().amount, 29.99);

        meta.distribution.requires_license = false;
        assert_eq!(paths(&meta.validate().unwrap_err()), ["$.pricing"]);
    }

    #[test]
    fn validate_checks_values_built_in_code() {
        let mut meta = sample();
        meta.platforms.clear();
        meta.binary_name = "../evil".into();
        meta.license = "MIT OR".into();
        meta.capabilities.max_context_length = Some(0);
        let err = meta.validate().unwrap_err();
        assert_eq!(
            paths(&err),
            [
                "$.license",
                "$.platforms",
                "$.capabilities.max_context_length",
                "$.binary_name"
            ],
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_and_wrong_shapes() {
        let err = WorkerMetadata::from_json("{\"id\": \"x\",\n\"family\" \"y\"}").unwrap_err();
        assert_eq!(paths(&err), ["$"]);
        assert!(err.issues[0].message.contains("line 2 column"), "{err}");

        let err = WorkerMetadata::from_json("[]").unwrap_err();
        assert_eq!(err.to_string(), "$: expected an object, found an array");
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let mut value = serde_json::to_value(sample()).unwrap();
        let obj = value.as_object_mut().unwrap();
        obj.remove("depends");
        obj.insert("makedepends".into(), Value::Null);
        obj.insert("pricing".into(), Value::Null);
        value["source"]["tag"] = Value::Null;
        value["capabilities"]["max_context_length"] = Value::Null;
        let meta = WorkerMetadata::from_json(&value.to_string()).unwrap();
        assert!(meta.depends.is_empty() && meta.makedepends.is_empty());
        assert_eq!(
            (meta.source.tag, meta.capabilities.max_context_length),
            (None, None)
        );
    }
}
