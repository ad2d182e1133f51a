//! The archive cache: the last installed archive of each worker, kept so
//! that the next upgrade can apply a delta to it instead of downloading
//! the whole new archive (`upgrade.rs`).
//!
//! ```text
//! <dest>/.cache/<worker>/sha256-<hex>   the last archive installed for <worker>
//! ```
//!
//! One file per worker, named after its digest (both parts are checked
//! types); a newer install replaces it, uninstalling the worker's last
//! version removes it, and an archive over the cap
//! ([`DEFAULT_MAX_CACHED_ARCHIVE`], `Installer::with_max_cached_archive`)
//! is not kept. Written only under the destination's lock. Its content
//! is verified again (sha256) before a delta is applied to it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::checked::{Sha256Digest, WorkerId};
use crate::layout::{Dest, sync_dir};

/// The largest archive kept for the next upgrade: 2 GiB. A larger one is
/// deleted after install, as before, and its upgrades download whole.
pub const DEFAULT_MAX_CACHED_ARCHIVE: u64 = 2 << 30;

fn worker_dir(dest: &Dest, worker: &WorkerId) -> PathBuf {
    dest.root().join(".cache").join(worker.as_str())
}

/// True when `.cache` and `.cache/<worker>` are real folders (or absent),
/// not links: a link planted there would lead writes and removals out of
/// the destination.
fn no_links(dest: &Dest, worker: &WorkerId) -> bool {
    let cache = dest.root().join(".cache");
    [cache.clone(), cache.join(worker.as_str())]
        .iter()
        .all(|p| match fs::symlink_metadata(p) {
            Ok(m) => m.is_dir(),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        })
}

/// Where the archive `digest` of `worker` is kept.
pub(crate) fn path_of(dest: &Dest, worker: &WorkerId, digest: &Sha256Digest) -> PathBuf {
    worker_dir(dest, worker).join(format!("sha256-{}", digest.hex()))
}

/// The cached archive `digest` of `worker`, when it is there (a plain file).
pub(crate) fn cached(dest: &Dest, worker: &WorkerId, digest: &Sha256Digest) -> Option<PathBuf> {
    if !no_links(dest, worker) {
        return None;
    }
    let path = path_of(dest, worker, digest);
    fs::symlink_metadata(&path)
        .is_ok_and(|m| m.is_file())
        .then_some(path)
}

/// Moves the verified, installed `archive` into the cache as `worker`'s
/// last archive, replacing the one there; deletes it instead when it is
/// over `max` bytes. The caller holds the destination's lock. A failure
/// only loses the next upgrade's delta, so it is logged, not returned.
pub(crate) fn keep(
    dest: &Dest,
    worker: &WorkerId,
    digest: &Sha256Digest,
    archive: &Path,
    max: u64,
) {
    let kept = (|| -> io::Result<()> {
        let size = fs::metadata(archive)?.len();
        let dir = worker_dir(dest, worker);
        if !no_links(dest, worker) {
            return Err(io::Error::other(
                "the cache folder is a link; refusing to use it",
            ));
        }
        if size > max {
            fs::remove_file(archive)?;
            return forget_dir(&dir);
        }
        fs::create_dir_all(&dir)?;
        if !no_links(dest, worker) {
            return Err(io::Error::other(
                "the cache folder is a link; refusing to use it",
            ));
        }
        let target = path_of(dest, worker, digest);
        fs::rename(archive, &target)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.path() != target {
                fs::remove_file(entry.path())?;
            }
        }
        sync_dir(&dir)
    })();
    if let Err(e) = kept {
        tracing::warn!(worker = %worker, error = %e, "could not keep the archive for the next upgrade");
        let _ = fs::remove_file(archive);
    }
}

/// Removes `worker`'s cached archive (its last version was uninstalled).
pub(crate) fn forget(dest: &Dest, worker: &WorkerId) {
    if !no_links(dest, worker) {
        tracing::warn!(worker = %worker, "the cache folder is a link; left alone");
        return;
    }
    if let Err(e) = forget_dir(&worker_dir(dest, worker)) {
        tracing::warn!(worker = %worker, error = %e, "could not remove the cached archive");
    }
}

fn forget_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
