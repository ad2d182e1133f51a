//! Unpacking a worker archive without trusting it: every entry must be a
//! plain file or directory whose path stays inside the target; links,
//! devices, absolute paths, `..` and oversize archives are refused before
//! anything is written.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::ClientError;

/// The most an archive may unpack to, in all. Workers are single binaries
/// plus a few text files; this leaves room for large GPU builds.
pub const DEFAULT_MAX_UNPACKED: u64 = 8 << 30;

/// The relative path an entry may be written to, or why not.
fn safe_path(raw: &Path) -> Result<PathBuf, ClientError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ClientError::UnsafeArchive(format!(
                    "entry `{}` climbs out with `..`",
                    raw.display()
                )));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ClientError::UnsafeArchive(format!(
                    "entry `{}` is an absolute path",
                    raw.display()
                )));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(ClientError::UnsafeArchive(format!(
            "entry `{}` has no name",
            raw.display()
        )));
    }
    Ok(out)
}

/// A reader that tells `progress` how much of the archive it has read.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    size: u64,
    progress: &'a dyn Fn(u64, u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read, self.size);
        Ok(n)
    }
}

/// The first bytes of a gzip member and of a zstd frame.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A reader of the tar inside `file`, whichever compression it has (the
/// two worker layer types: tar+gzip and tar+zstd), told apart by their
/// magic bytes rather than by a name or media type a server gave, so
/// every download path unpacks both. Anything else is refused.
fn decompressed<'a>(file: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ClientError> {
    use std::io::BufRead;
    let mut input = io::BufReader::new(file);
    let head = input.fill_buf()?;
    if head.starts_with(&GZIP_MAGIC) {
        // One gzip member (what the pusher writes); a MultiGzDecoder
        // would also read members appended after it.
        Ok(Box::new(flate2::read::GzDecoder::new(input)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(input)?))
    } else {
        Err(ClientError::UnsafeArchive(
            "the archive is neither tar+gzip nor tar+zstd".into(),
        ))
    }
}

/// Unpacks the tar.gz or tar.zst at `archive` into the empty directory
/// `target`, each file synced to disk. Blocking: call it from a blocking
/// thread.
pub fn unpack(
    archive: &Path,
    target: &Path,
    max_unpacked: u64,
) -> Result<Vec<PathBuf>, ClientError> {
    unpack_with_progress(archive, target, max_unpacked, &|_, _| {})
}

/// [`unpack`], telling `progress` `(archive bytes read, archive size)` as
/// it goes.
pub fn unpack_with_progress(
    archive: &Path,
    target: &Path,
    max_unpacked: u64,
    progress: &dyn Fn(u64, u64),
) -> Result<Vec<PathBuf>, ClientError> {
    let file = fs::File::open(archive)?;
    let size = file.metadata()?.len();
    let counted = Counted {
        inner: file,
        read: 0,
        size,
        progress,
    };
    let mut tar = tar::Archive::new(decompressed(counted)?);
    let mut written = Vec::new();
    let mut total = 0u64;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let rel = safe_path(&raw)?;
        let kind = entry.header().entry_type();
        let dest = target.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&dest)?;
            continue;
        }
        if !kind.is_file() {
            // Symlinks and hard links could point anywhere; a worker needs
            // neither, so they are refused rather than resolved.
            return Err(ClientError::UnsafeArchive(format!(
                "entry `{}` is a {kind:?}, only plain files and directories are allowed",
                raw.display()
            )));
        }
        let size = entry.header().size()?;
        total = total.saturating_add(size);
        if total > max_unpacked {
            return Err(ClientError::UnsafeArchive(format!(
                "archive unpacks to more than {max_unpacked} bytes (at `{}`)",
                raw.display()
            )));
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
        let mut out = fs::File::create(&dest)?;
        // Copy at most the declared size, so a lying header cannot grow it.
        let copied = io::copy(&mut (&mut entry).take(size), &mut out)?;
        if copied != size {
            return Err(ClientError::UnsafeArchive(format!(
                "entry `{}` is truncated",
                raw.display()
            )));
        }
        set_mode(&dest, mode)?;
        // On disk before the build is renamed into place and recorded:
        // after a power cut a recorded build is never empty.
        out.sync_all()?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tar.gz whose one entry has `path` and `kind`, writing the
    /// name bytes straight into the header, as a hostile archive would.
    fn archive(
        dir: &Path,
        path: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        size: u64,
    ) -> PathBuf {
        let out = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&out).unwrap(),
            flate2::Compression::fast(),
        );
        tar_into(gz, path, kind, link, size).finish().unwrap();
        out
    }

    /// The same archive, compressed with zstd.
    fn archive_zst(dir: &Path, path: &str, kind: tar::EntryType, size: u64) -> PathBuf {
        let out = dir.join("a.tar.zst");
        let zst = zstd::stream::write::Encoder::new(fs::File::create(&out).unwrap(), 3).unwrap();
        tar_into(zst, path, kind, None, size).finish().unwrap();
        out
    }

    fn tar_into<W: io::Write>(
        out: W,
        path: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        size: u64,
    ) -> W {
        let mut b = tar::Builder::new(out);
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, io::repeat(b'x').take(size)).unwrap();
        b.into_inner().unwrap()
    }

    fn refuses(
        path: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        size: u64,
        max: u64,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(dir.path(), path, kind, link, size);
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        let err = unpack(&a, &target, max).unwrap_err().to_string();
        assert!(
            fs::read_dir(&target).unwrap().next().is_none(),
            "something was written"
        );
        assert!(!dir.path().join("x").exists());
        err
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_is_written() {
        assert!(refuses("../x", tar::EntryType::Regular, None, 1, 100).contains(".."));
        assert!(refuses("/tmp/x", tar::EntryType::Regular, None, 1, 100).contains("absolute"));
        assert!(
            refuses("evil", tar::EntryType::Symlink, Some("/etc/passwd"), 0, 100)
                .contains("Symlink")
        );
        assert!(refuses("evil", tar::EntryType::Link, Some("../../x"), 0, 100).contains("Link"));
        assert!(refuses("dev", tar::EntryType::Char, None, 0, 100).contains("Char"));
        assert!(refuses("big", tar::EntryType::Regular, None, 200, 100).contains("more than"));
    }

    #[test]
    fn plain_files_unpack_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(dir.path(), "bin/worker", tar::EntryType::Regular, None, 3);
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        let files = unpack(&a, &target, 100).unwrap();
        assert_eq!(files, [PathBuf::from("bin/worker")]);
        assert_eq!(fs::read(target.join("bin/worker")).unwrap(), b"xxx");
    }

    #[test]
    fn zstd_archives_unpack_and_are_checked_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive_zst(dir.path(), "bin/worker", tar::EntryType::Regular, 3);
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        assert_eq!(
            unpack(&a, &target, 100).unwrap(),
            [PathBuf::from("bin/worker")]
        );
        assert_eq!(fs::read(target.join("bin/worker")).unwrap(), b"xxx");

        let evil = archive_zst(dir.path(), "../x", tar::EntryType::Regular, 1);
        let target = dir.path().join("u");
        fs::create_dir(&target).unwrap();
        let err = unpack(&evil, &target, 100).unwrap_err().to_string();
        assert!(err.contains(".."), "{err}");
    }

    #[test]
    fn an_archive_of_another_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.tar");
        fs::write(
            &plain,
            tar_into(Vec::new(), "w", tar::EntryType::Regular, None, 3),
        )
        .unwrap();
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        let err = unpack(&plain, &target, 100).unwrap_err().to_string();
        assert!(err.contains("neither tar+gzip nor tar+zstd"), "{err}");
    }
}
