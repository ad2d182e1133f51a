//! The filesystem backend: one file per object under a root directory.
//!
//! Atomicity comes from `rename(2)`: `put` writes a temporary file under
//! `<root>/tmp`, `fsync`s it, renames it into place and `fsync`s the parent
//! directory, so after a crash an object is either wholly there or absent.
//! `<root>/tmp` holds nothing worth keeping and is emptied at start, after
//! the process took the data directory's lock (one process per folder).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{ByteStream, Key, Result, Storage, StorageError, UploadParts};

/// How much one read of a blob pulls from disk. Large enough that the
/// per-read hop to the blocking pool is noise, small enough that four
/// concurrent 1 GiB pulls stay within a few MiB of buffers.
const READ_CHUNK: u64 = 1 << 20;
/// Received bytes are gathered into writes of up to this size while the
/// previous write is still on the disk. With one write in flight, this
/// bounds the memory an upload holds to about two batches.
const WRITE_BATCH: usize = 1 << 20;
/// Writeback of an upload is started every this many bytes, so that the
/// final `fsync` has little left to do.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// The file in the data directory that the running process holds an
/// exclusive advisory lock on (see [`FsStorage::open`]).
pub const LOCK_FILE: &str = "lock";

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: Arc<PathBuf>,
    /// Held open, and so locked, for as long as any clone of this storage
    /// lives; the OS drops the lock when the process dies, even by kill -9.
    _lock: Arc<File>,
}

impl FsStorage {
    /// Opens (creating if needed) storage rooted at `root`, and clears the
    /// temporary files a crash may have left behind.
    ///
    /// Only one process may use a data directory at a time: two would empty
    /// each other's `tmp/` at start and interleave writes to one upload
    /// session (which once stored a 4 MiB blob under the digest of a 2 MiB
    /// body). So `open` first takes an exclusive lock on `<root>/lock`, and
    /// fails with [`io::ErrorKind::ResourceBusy`] naming the folder when
    /// another process holds it. The lock is taken before `tmp/` is
    /// touched.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let lock = lock_data_dir(&root)?;
        let tmp = root.join("tmp");
        match fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&tmp)?;
        Ok(FsStorage {
            root: Arc::new(root),
            _lock: Arc::new(lock),
        })
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// Takes the exclusive lock on `root`'s lock file, or says which folder is
/// in use and by whom.
fn lock_data_dir(root: &Path) -> io::Result<File> {
    let path = root.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "the data directory {} is in use by another process{holder}: \
                     stop it, or give this one another data directory",
                    root.display()
                ),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    // Who holds it, for the message above; only a hint, so failures to
    // write it are ignored.
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
        // `from` and not `Io`: a full disk is told apart from other failures.
        .map_err(StorageError::from)
}

/// The file that holds the bytes of upload session `session`.
fn upload_data(session: &Key) -> Key {
    session.child("data")
}

/// Cuts `file` back to `size` bytes when it is longer; a file shorter than
/// its record lost acknowledged bytes, which is reported, never papered over.
fn trim_to(file: &File, size: u64) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len > size {
        file.set_len(size)?;
    } else if len < size {
        return Err(io::Error::other(format!(
            "upload file holds {len} bytes, but {size} were acknowledged"
        )));
    }
    Ok(())
}

fn not_found(key: &Key) -> StorageError {
    StorageError::NotFound(key.to_string())
}

/// Renames `from` to `to` (creating parent directories) and makes the
/// rename durable by syncing the directory that now holds `to`.
fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to
        .parent()
        .ok_or_else(|| io::Error::other("object path has no parent"))?;
    // A concurrent delete may remove an empty parent between create and
    // rename; trying again recreates it.
    let mut attempts = 0;
    loop {
        fs::create_dir_all(parent)?;
        match fs::rename(from, to) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 && from.exists() => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
    File::open(parent)?.sync_all()
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk now,
/// without waiting. Purely a hint that spreads the cost of the final fsync
/// over the upload; failures are ignored because fsync still follows.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    #[expect(unsafe_code, reason = "sync_file_range has no safe wrapper in std")]
    // SAFETY: the descriptor is open for the duration of the call and the
    // call reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[async_trait]
impl Storage for FsStorage {
    async fn head(&self, key: &Key) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn modified(&self, key: &Key) -> Result<Option<std::time::SystemTime>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) if m.is_file() => Ok(Some(m.modified()?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.path(key);
        let opened = blocking(move || {
            let mut file = File::open(&path)?;
            let len = file.metadata()?.len();
            let range = range.unwrap_or(0..len);
            if range.end > len || range.start > range.end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "range outside object",
                ));
            }
            if range.start > 0 {
                io::Seek::seek(&mut file, io::SeekFrom::Start(range.start))?;
            }
            Ok((file, range.end - range.start))
        })
        .await;
        let (file, remaining) = match opened {
            Ok(v) => v,
            Err(StorageError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_found(key));
            }
            Err(e) => return Err(e),
        };
        // Each step reads the next chunk on the blocking pool straight into a
        // fresh buffer that becomes the `Bytes` sent to the socket: one copy
        // from the page cache, no intermediate buffer.
        let stream =
            futures_util::stream::try_unfold((Some(file), remaining), |(file, left)| async move {
                let Some(file) = file else { return Ok(None) };
                if left == 0 {
                    return Ok(None);
                }
                let want = left.min(READ_CHUNK);
                let (file, buf) = tokio::task::spawn_blocking(move || {
                    let mut buf = Vec::with_capacity(want as usize);
                    (&file).take(want).read_to_end(&mut buf)?;
                    Ok::<_, io::Error>((file, buf))
                })
                .await
                .map_err(io::Error::other)??;
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object shrank while read",
                    ));
                }
                let left = left - buf.len() as u64;
                Ok(Some((Bytes::from(buf), (Some(file), left))))
            });
        Ok(Box::pin(stream))
    }

    async fn put(&self, key: &Key, data: Bytes) -> Result<()> {
        let tmp = self.tmp_path();
        let dest = self.path(key);
        blocking(move || {
            let result = (|| {
                let mut f = File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
                rename_durably(&tmp, &dest)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_prefix(&self, prefix: &Key) -> Result<()> {
        match tokio::fs::remove_dir_all(self.path(prefix)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<String>> {
        let dir = self.path(prefix);
        blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                if let Ok(name) = entry?.file_name().into_string() {
                    names.push(name);
                }
            }
            Ok(names)
        })
        .await
    }

    async fn write_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        mut data: ByteStream,
    ) -> Result<UploadParts> {
        let path = self.path(&upload_data(session));
        let offset = upload.size;
        let file = blocking(move || {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .truncate(false)
                .open(&path)?;
            // Bytes past the recorded size are from a write that failed or
            // was cut off by a crash: they were never acknowledged, and the
            // hash the caller keeps does not cover them.
            trim_to(&file, offset)?;
            Ok(file)
        })
        .await?;
        // No blocking thread ever waits for the network: each batch of
        // received bytes is written by a blocking call of its own, and a
        // client that stalls holds no thread (with a thread per stalled
        // upload, a few hundred of them used up Tokio's blocking pool and
        // froze all storage). One write runs while the next batch is
        // received, so the disk and the network stay busy together; a
        // batch is written as soon as the previous write is done, and
        // grows up to WRITE_BATCH while it is not.
        let file = Arc::new(file);
        let mut written = offset;
        let mut flushed = offset;
        let mut writing: Option<tokio::task::JoinHandle<io::Result<()>>> = None;
        let mut batch = BytesMut::new();
        let mut input_error = None;
        let mut ended = false;
        loop {
            if writing.is_none() && !batch.is_empty() {
                let bytes = std::mem::take(&mut batch).freeze();
                let start_writeback_at =
                    (written + bytes.len() as u64 - flushed >= WRITEBACK_EVERY).then_some(flushed);
                written += bytes.len() as u64;
                if start_writeback_at.is_some() {
                    flushed = written;
                }
                let file = file.clone();
                writing = Some(tokio::task::spawn_blocking(move || {
                    (&*file).write_all(&bytes)?;
                    if let Some(from) = start_writeback_at {
                        start_writeback(&file, from, written - from);
                    }
                    Ok(())
                }));
            }
            let Some(write) = writing.as_mut() else {
                if ended {
                    break;
                }
                // Nothing to write: wait for the network alone.
                match data.next().await {
                    Some(Ok(chunk)) => batch.extend_from_slice(&chunk),
                    Some(Err(e)) => (input_error, ended) = (Some(e), true),
                    None => ended = true,
                }
                continue;
            };
            if ended || batch.len() >= WRITE_BATCH {
                // Enough gathered (or all of it): wait for the disk alone.
                let result = write.await;
                writing = None;
                result.map_err(|e| StorageError::Io(io::Error::other(e)))??;
                continue;
            }
            tokio::select! {
                result = write => {
                    writing = None;
                    result.map_err(|e| StorageError::Io(io::Error::other(e)))??;
                }
                item = data.next() => match item {
                    Some(Ok(chunk)) => batch.extend_from_slice(&chunk),
                    Some(Err(e)) => (input_error, ended) = (Some(e), true),
                    None => ended = true,
                },
            }
        }
        match input_error {
            Some(e) => Err(StorageError::Input(e)),
            None => Ok(UploadParts {
                size: written,
                ..UploadParts::default()
            }),
        }
    }

    async fn commit_upload(&self, session: &Key, upload: &UploadParts, to: &Key) -> Result<()> {
        if upload.size == 0 {
            // An empty upload may never have created its file.
            return self.put(to, Bytes::new()).await;
        }
        let from = upload_data(session);
        let (from_path, to_path, size) = (self.path(&from), self.path(to), upload.size);
        let result = blocking(move || {
            let file = OpenOptions::new().write(true).open(&from_path)?;
            trim_to(&file, size)?;
            file.sync_all()?;
            rename_durably(&from_path, &to_path)
        })
        .await;
        match result {
            Err(StorageError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                Err(not_found(&from))
            }
            other => other,
        }
    }

    async fn abort_upload(&self, _session: &Key, _upload: &UploadParts) -> Result<()> {
        // Nothing outside the session's folder, which the caller removes.
        Ok(())
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let (from_path, to_path) = (self.path(from), self.path(to));
        let result = blocking(move || rename_durably(&from_path, &to_path)).await;
        match result {
            Err(StorageError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Err(not_found(from)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in its own temporary folder, removed after the store is
    /// dropped (fields drop in order).
    struct TempStore {
        storage: FsStorage,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for TempStore {
        type Target = FsStorage;

        fn deref(&self) -> &FsStorage {
            &self.storage
        }
    }

    async fn fresh_store() -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        TempStore {
            storage: FsStorage::open(dir.path()).unwrap(),
            _dir: dir,
        }
    }

    crate::storage_suite!(fresh_store);

    #[test]
    fn a_second_open_of_a_locked_data_dir_fails_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = FsStorage::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/in-progress"), b"half a write").unwrap();
        let err = FsStorage::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(
            dir.path().join("tmp/in-progress").exists(),
            "tmp/ untouched"
        );
        drop(first);
        FsStorage::open(dir.path()).expect("free again once the first is gone");
    }

    #[tokio::test]
    async fn open_clears_leftover_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        fs::write(dir.path().join("tmp/leftover"), b"half a write").unwrap();
        FsStorage::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp/leftover").exists());
    }
}
