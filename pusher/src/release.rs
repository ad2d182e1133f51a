//! A release as the publisher describes it (metadata, one build per
//! platform, PKGBUILD, LICENSE, README), loaded from flags or a release
//! file and checked as a whole before anything is pushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbee_schemas::{Platform, WorkerMetadata};
use serde::Deserialize;

use crate::error::PushError;
use crate::pkgbuild::{self, Pkgbuild};

/// The files that make a release, as given.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFiles {
    /// The worker metadata document (JSON).
    pub metadata: PathBuf,
    /// One build per platform.
    pub builds: Vec<(String, PathBuf)>,
    /// The PKGBUILD, if the worker has one.
    pub pkgbuild: Option<PathBuf>,
    /// LICENSE; defaults to `LICENSE` next to the metadata file.
    pub license: Option<PathBuf>,
    /// README; defaults to `README.md` next to the metadata file.
    pub readme: Option<PathBuf>,
}

/// A release file (`release.toml`); paths are relative to the file.
///
/// ```toml
/// metadata = "metadata.json"
/// pkgbuild = "PKGBUILD"
/// license = "LICENSE"
/// readme = "README.md"
/// [platforms]
/// linux-x86_64 = "target/release/hello-worker-rbee"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseFile {
    metadata: PathBuf,
    #[serde(default)]
    platforms: BTreeMap<String, PathBuf>,
    pkgbuild: Option<PathBuf>,
    license: Option<PathBuf>,
    readme: Option<PathBuf>,
}

impl ReleaseFiles {
    /// Reads a release file.
    pub fn from_file(path: &Path) -> Result<Self, PushError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PushError::Invalid(format!("{}: cannot read: {e}", path.display())))?;
        let file: ReleaseFile = toml::from_str(&text)
            .map_err(|e| PushError::Invalid(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(ReleaseFiles {
            metadata: base.join(file.metadata),
            builds: file
                .platforms
                .into_iter()
                .map(|(p, f)| (p, base.join(f)))
                .collect(),
            pkgbuild: file.pkgbuild.map(|p| base.join(p)),
            license: file.license.map(|p| base.join(p)),
            readme: file.readme.map(|p| base.join(p)),
        })
    }

    /// Parses `--platform linux-x86_64=PATH`.
    pub fn parse_platform_arg(arg: &str) -> Result<(String, PathBuf), String> {
        let (platform, path) = arg.split_once('=').ok_or_else(|| {
            format!("expected PLATFORM=PATH, e.g. linux-x86_64=target/release/worker; got `{arg}`")
        })?;
        Ok((platform.to_owned(), PathBuf::from(path)))
    }
}

/// A checked release, ready to package.
#[derive(Debug, Clone)]
pub struct Release {
    /// The validated metadata.
    pub metadata: WorkerMetadata,
    /// The metadata as pushed: the config blob and `metadata.json`.
    pub metadata_json: Vec<u8>,
    /// The build of each platform.
    pub builds: BTreeMap<Platform, PathBuf>,
    /// The checked PKGBUILD and its generated `.SRCINFO`.
    pub pkgbuild: Option<(Pkgbuild, String)>,
    /// LICENSE file.
    pub license: PathBuf,
    /// README file.
    pub readme: PathBuf,
}

fn regular_file(path: &Path, what: &str, problems: &mut Vec<String>) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => problems.push(format!("{}: {what} is not a regular file", path.display())),
        Err(e) => problems.push(format!("{}: {what}: {e}", path.display())),
    }
}

impl Release {
    /// Loads and checks everything, reporting every problem at once.
    pub fn load(files: &ReleaseFiles) -> Result<Release, PushError> {
        let shown = files.metadata.display();
        let metadata = read_metadata(&files.metadata)?;
        let base = files.metadata.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let builds = check_builds(files, &metadata, &shown.to_string(), &mut problems);
        let license = files
            .license
            .clone()
            .unwrap_or_else(|| base.join("LICENSE"));
        let readme = files
            .readme
            .clone()
            .unwrap_or_else(|| base.join("README.md"));
        regular_file(&license, "LICENSE", &mut problems);
        regular_file(&readme, "README", &mut problems);
        let pkgbuild = load_pkgbuild(files, &metadata, &mut problems);
        check_version_is_a_tag(&metadata, &shown.to_string(), &mut problems);
        if !problems.is_empty() {
            return Err(PushError::Invalid(problems.join("\n")));
        }
        let metadata_json = metadata.to_json_pretty().into_bytes();
        let release = Release {
            metadata,
            metadata_json,
            builds,
            pkgbuild,
            license,
            readme,
        };
        release.check_published_forms(&shown.to_string())?;
        Ok(release)
    }

    /// Checks what is derived from the metadata the way its readers will:
    /// the config blob (pretty-printed, so larger than the file) exactly
    /// as the catalog reads it, and each layer title as a plain file name
    /// (`oras pull` and installers save the layer under it, so no quote,
    /// `/`, CR/LF or control character may get in). The grammars of ids,
    /// versions and platforms already ensure the latter; this keeps it
    /// true if one of them changes.
    fn check_published_forms(&self, shown: &str) -> Result<(), PushError> {
        let mut problems = Vec::new();
        let text = String::from_utf8_lossy(&self.metadata_json);
        if let Err(e) = WorkerMetadata::from_json(&text) {
            for i in e.issues {
                problems.push(format!("{shown} as published: {}: {}", i.path, i.message));
            }
        }
        for platform in self.builds.keys() {
            if let Err(e) = rbee_schemas::validate_file_name(&self.archive_name(*platform)) {
                problems.push(format!("layer title: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PushError::Invalid(problems.join("\n")))
        }
    }

    /// The archive name of one platform's build, e.g.
    /// `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz`.
    pub fn archive_name(&self, platform: Platform) -> String {
        format!(
            "{}-{}-{}.tar.gz",
            self.metadata.id, self.metadata.version, platform
        )
    }
}

/// Reads the metadata document; its schema problems, each with the file
/// and the JSON path.
fn read_metadata(path: &Path) -> Result<WorkerMetadata, PushError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| PushError::Invalid(format!("{shown}: cannot read: {e}")))?;
    WorkerMetadata::from_json(&text).map_err(|e| {
        PushError::Invalid(
            e.issues
                .iter()
                .map(|i| format!("{shown}: {}: {}", i.path, i.message))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

/// The build of each platform: a platform the metadata lists, given once,
/// a regular file. `shown` names the metadata file in problems.
fn check_builds(
    files: &ReleaseFiles,
    metadata: &WorkerMetadata,
    shown: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<Platform, PathBuf> {
    let mut builds = BTreeMap::new();
    for (name, path) in &files.builds {
        match name.parse::<Platform>() {
            Ok(platform) => {
                if !metadata.platforms.contains(&platform) {
                    problems.push(format!(
                        "build for {platform} given, but {shown} lists only: {}",
                        metadata
                            .platforms
                            .iter()
                            .map(|p| p.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if builds.insert(platform, path.clone()).is_some() {
                    problems.push(format!("two builds given for {platform}"));
                }
                regular_file(path, &format!("the {platform} build"), problems);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if files.builds.is_empty() {
        problems.push("no platform build given (use --platform linux-x86_64=PATH)".into());
    }
    builds
}

/// The PKGBUILD, checked against the version, and its `.SRCINFO`.
fn load_pkgbuild(
    files: &ReleaseFiles,
    metadata: &WorkerMetadata,
    problems: &mut Vec<String>,
) -> Option<(Pkgbuild, String)> {
    match &files.pkgbuild {
        Some(path) => match pkgbuild::check(path, &metadata.version.to_string(), &metadata.id) {
            Ok(p) => {
                let info = pkgbuild::srcinfo(&p);
                Some((p, info))
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        None => None,
    }
}

/// The version becomes the OCI tag, whose grammar has no `+`: a version
/// with build metadata would upload every blob and then be refused at the
/// tag.
fn check_version_is_a_tag(metadata: &WorkerMetadata, shown: &str, problems: &mut Vec<String>) {
    if !metadata.version.build.is_empty() {
        problems.push(format!(
            "{shown}: $.version: `{}` cannot be an OCI tag: build metadata (`+{}`) is not allowed in tags; publish `{}`",
            metadata.version,
            metadata.version.build,
            semver::Version {
                build: semver::BuildMetadata::EMPTY,
                ..metadata.version.clone()
            }
        ));
    }
}
