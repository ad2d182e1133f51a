//! `rbee-pusher validate`: what a push would check, without pushing.
//! `Release::load` checks the metadata against the schema, the PKGBUILD
//! (with bash) and that each build is a regular file; this adds what only
//! a publisher's checkout can get wrong: builds that are not executable,
//! a committed `.SRCINFO` that no longer matches the PKGBUILD, and (with
//! a registry) a version that is already published.

use std::path::Path;

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::publish::{self, PublishOptions};
use crate::release::{Release, ReleaseFiles};

/// The offline problems of a loaded release, each a line for people.
pub fn offline_problems(files: &ReleaseFiles, release: &Release) -> Vec<String> {
    let mut problems = Vec::new();
    for (platform, path) in &release.builds {
        // Windows has no executable bit to check.
        if !platform.name().starts_with("windows-") && !is_executable(path) {
            problems.push(format!(
                "{}: the {platform} build is not executable (chmod +x it)",
                path.display()
            ));
        }
    }
    if let (Some(pkgbuild_path), Some((_, generated))) = (&files.pkgbuild, &release.pkgbuild) {
        let committed = pkgbuild_path.with_file_name(".SRCINFO");
        match std::fs::read_to_string(&committed) {
            Ok(text) if text == *generated => {}
            Ok(_) => problems.push(format!(
                "{}: out of date with the PKGBUILD (regenerate it: rbee-pusher validate \
                 --write-srcinfo ...)",
                committed.display(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("{}: {e}", committed.display())),
        }
    }
    problems
}

/// Writes the generated `.SRCINFO` next to the PKGBUILD (when there is
/// one), atomically.
pub fn write_srcinfo(files: &ReleaseFiles, release: &Release) -> Result<(), PushError> {
    let (Some(pkgbuild_path), Some((_, generated))) = (&files.pkgbuild, &release.pkgbuild) else {
        return Ok(());
    };
    let path = pkgbuild_path.with_file_name(".SRCINFO");
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, generated.as_bytes())?;
    tmp.persist(&path).map_err(|e| PushError::Io(e.error))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// A problem when `release`'s version is already published in the
/// registry (the push would be a conflict, or nothing to do).
pub async fn published_problem(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
) -> Result<Option<String>, PushError> {
    let repo = publish::repository(release, opts);
    let version = release.metadata.version.to_string();
    Ok(client
        .get_manifest(&repo, &version, false)
        .await?
        .map(|_| format!("{repo}:{version} is already published; versions are immutable")))
}
