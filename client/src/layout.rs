//! The destination folder on disk: its lock, the paths of builds (made of
//! checked parts only), the guard that keeps every removal inside it, the
//! fsyncs that make an install survive a power cut, and the cleaning of
//! what a crash left behind.
//!
//! ```text
//! <dest>/.lock                        held (OS advisory lock) by the one install or uninstall at work
//! <dest>/installed.json               what is installed (worker, version, platform, digests)
//! <dest>/<worker>/<version>/          the unpacked build
//! <dest>/.downloads/                  partial and verified downloads
//! <dest>/.staging-<random>/           unpacking in progress
//! <dest>/.old-<random>/               a replaced or uninstalled build on its way out
//! <dest>/.installed.json.<random>.tmp the next installed.json, before its rename
//! ```
//!
//! Staging, old and temporary entries are only ever made while the lock is
//! held, so whatever of them exists when the lock is taken was left by a
//! process that died, and is removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;

use crate::checked::WorkerId;
use crate::error::ClientError;

/// Prefixes of the entries only a live, locked install makes.
const LEFTOVER_PREFIXES: [&str; 3] = [".staging-", ".old-", ".installed.json."];

/// A destination folder that exists, by its canonical path.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    root: PathBuf,
}

/// The destination's lock; released when dropped (and by the OS when the
/// process dies, so a crash never leaves it stuck).
#[derive(Debug)]
pub(crate) struct DestLock {
    file: fs::File,
}

impl Drop for DestLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

impl Dest {
    /// Creates `dest` when missing and resolves it.
    pub fn create(dest: &Path) -> io::Result<Dest> {
        fs::create_dir_all(dest)?;
        Ok(Dest {
            root: fs::canonicalize(dest)?,
        })
    }

    /// `dest` when it exists.
    pub fn existing(dest: &Path) -> io::Result<Option<Dest>> {
        match fs::canonicalize(dest) {
            Ok(root) => Ok(Some(Dest { root })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The canonical path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where downloads go.
    pub fn downloads(&self) -> PathBuf {
        self.root.join(".downloads")
    }

    /// Where a build lives. Both parts are checked types, so this is a
    /// child of the root two levels down, whatever the network said.
    pub fn build_dir(&self, worker: &WorkerId, version: &semver::Version) -> PathBuf {
        self.root.join(worker.as_str()).join(version.to_string())
    }

    /// Waits for the lock (blocking), then removes what a dead process
    /// left behind.
    pub fn lock(&self) -> io::Result<DestLock> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))?;
        fs4::FileExt::lock(&file)?;
        let lock = DestLock { file };
        self.clean_leftovers()?;
        Ok(lock)
    }

    /// [`Dest::lock`] from async code.
    pub async fn lock_async(&self) -> Result<DestLock, ClientError> {
        let dest = self.clone();
        tokio::task::spawn_blocking(move || dest.lock())
            .await
            .map_err(|e| ClientError::Io(io::Error::other(e)))?
            .map_err(ClientError::from)
    }

    fn clean_leftovers(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !LEFTOVER_PREFIXES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            // Not followed if it is a link: the link itself goes.
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(entry.path())?;
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// A fresh name for a build on its way out.
    pub fn old_name(&self) -> PathBuf {
        self.root.join(format!(".old-{}", unique_suffix()))
    }

    /// Creates `<root>/<worker>` if needed and checks it is a real folder
    /// of the destination, not a link to somewhere else.
    pub fn worker_dir(&self, worker: &WorkerId) -> Result<PathBuf, ClientError> {
        let dir = self.root.join(worker.as_str());
        match fs::create_dir(&dir) {
            Ok(()) => sync_dir(&self.root)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        self.check_inside(&dir, &dir)?;
        Ok(dir)
    }

    /// Refuses `path` unless its canonical form is `expected` (a path of
    /// the root made of checked parts): a link anywhere on the way would
    /// make them differ.
    fn check_inside(&self, path: &Path, expected: &Path) -> Result<(), ClientError> {
        let real = fs::canonicalize(path)?;
        if real != expected || !real.starts_with(&self.root) {
            return Err(ClientError::Invalid(format!(
                "{} leads to {}, outside the destination {}; refusing to touch it",
                path.display(),
                real.display(),
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Removes the build of `worker` `version`, if there is one: moved
    /// aside in one rename (so a crash leaves either the build or a
    /// leftover), then deleted. Refused if the path leads out of the
    /// destination.
    pub fn remove_build(
        &self,
        worker: &WorkerId,
        version: &semver::Version,
    ) -> Result<bool, ClientError> {
        let dir = self.build_dir(worker, version);
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(false);
        }
        self.check_inside(&dir, &dir)?;
        let old = self.old_name();
        fs::rename(&dir, &old)?;
        sync_dir(&self.root.join(worker.as_str()))?;
        fs::remove_dir_all(&old)?;
        Ok(true)
    }

    /// Removes `<root>/<worker>` when it is an empty folder.
    pub fn remove_worker_dir_if_empty(&self, worker: &WorkerId) {
        let dir = self.root.join(worker.as_str());
        if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none())
            && self.check_inside(&dir, &dir).is_ok()
        {
            let _ = fs::remove_dir(&dir);
        }
    }
}

/// A name part no other install of this or another process picks.
pub(crate) fn unique_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes a folder's entries (creations, renames) durable. A no-op where
/// folders cannot be opened (Windows), whose file systems journal them.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Syncs every folder under `root` (files are synced as they are
/// written), deepest first, so the whole tree is on disk before it is
/// renamed into place.
pub(crate) fn sync_tree(root: &Path) -> io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(root)
}

/// `sha256:` over the sorted relative paths, kinds and sizes of what is
/// under `root` (links not followed). Recorded at install; a build whose
/// folder no longer matches (emptied or truncated by a power cut, edited
/// by hand) is not "already installed".
pub(crate) fn fingerprint(root: &Path) -> io::Result<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = fs::symlink_metadata(entry.path())?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if meta.is_dir() {
                out.push(format!("d {rel}"));
                walk(root, &entry.path(), out)?;
            } else if meta.is_file() {
                out.push(format!("f {rel} {}", meta.len()));
            } else {
                out.push(format!("o {rel}"));
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines)?;
    lines.sort();
    let mut hasher = sha2::Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
