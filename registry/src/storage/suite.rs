//! The behaviour every [`Storage`] backend must show: one async fn per
//! behaviour, each given a fresh, empty store. A backend's test module
//! runs them all, each as its own named test, with one line:
//!
//! ```ignore
//! crate::storage_suite!(fresh_store);
//! ```
//!
//! where `fresh_store` is an `async fn` of that module returning the
//! store, or anything that derefs to it (e.g. a guard that also holds its
//! temporary folder).
//! A failing case then names itself: `...::shared_suite::uploads_grow_by_writes_and_commit_into_place`.
//! A new backend is done when it passes.

use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{ByteStream, Key, Storage, StorageError, UploadParts};

/// One `#[tokio::test]` per behaviour of the suite, in a module
/// `shared_suite`, each on a store from `$fresh().await` (`$fresh` names
/// an async fn of the calling module). Add a behaviour
/// here and as an async fn below.
#[macro_export]
macro_rules! storage_suite {
    ($fresh:ident) => {
        $crate::storage_suite!(@tests $fresh;
            missing_objects_are_absent_and_deleting_them_is_not_an_error,
            put_objects_read_back_whole_and_by_range,
            put_replaces_an_existing_object,
            list_shows_direct_children_objects_and_prefixes_alike,
            uploads_grow_by_writes_and_commit_into_place,
            a_failing_upload_input_is_reported_and_leaves_the_upload_as_it_was,
            an_upload_of_many_parts_reads_back_exactly,
            an_upload_continues_from_its_recorded_state_alone,
            an_empty_upload_commits_an_empty_object,
            an_aborted_upload_can_be_aborted_again,
            rename_moves_committed_uploads_and_small_objects,
            a_committed_upload_is_deleted_like_any_object,
            delete_removes_one_object,
            delete_prefix_removes_everything_under_it_and_is_idempotent,
            modified_tells_when_an_object_was_last_written,
        );
    };
    (@tests $fresh:ident; $($behaviour:ident),* $(,)?) => {
        mod shared_suite {
            $(
                #[::tokio::test]
                async fn $behaviour() {
                    let store = super::$fresh().await;
                    $crate::storage::suite::$behaviour(&*store).await;
                }
            )*
        }
    };
}

fn stream_of(parts: &[&'static [u8]]) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
    Box::pin(futures_util::stream::iter(items))
}

async fn read_all(s: &dyn Storage, key: &Key, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let stream = s.get(key, range).await.expect("get");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read");
    chunks.concat()
}

fn a() -> Key {
    Key::new(["suite", "a"])
}

fn session() -> Key {
    Key::new(["suite", "uploads", "1"])
}

/// Writes `abcdefgh` to a new upload of [`session`], in two writes.
async fn stage_eight_bytes(s: &dyn Storage) -> UploadParts {
    let upload = s
        .write_upload(
            &session(),
            &UploadParts::default(),
            stream_of(&[b"abc", b"def"]),
        )
        .await
        .unwrap();
    assert_eq!(upload.size, 6);
    let upload = s
        .write_upload(&session(), &upload, stream_of(&[b"gh"]))
        .await
        .unwrap();
    assert_eq!(upload.size, 8);
    upload
}

/// `len` bytes of a pattern that repeats only every 251 bytes, so that a
/// part written twice or out of order shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn chunks_of(data: &[u8], size: usize) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = data
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(items))
}

/// A missing object has no size, cannot be read, and deleting it is fine;
/// an empty prefix lists nothing.
pub async fn missing_objects_are_absent_and_deleting_them_is_not_an_error(s: &dyn Storage) {
    let missing = Key::new(["suite", "missing"]);
    assert_eq!(s.head(&missing).await.unwrap(), None);
    assert!(matches!(
        s.get(&missing, None).await,
        Err(StorageError::NotFound(_))
    ));
    s.delete(&missing)
        .await
        .expect("deleting a missing object is not an error");
    assert!(
        s.list(&Key::new(["nothing-here"]))
            .await
            .unwrap()
            .is_empty()
    );
}

/// What is put reads back, whole or by byte range (an empty range too).
pub async fn put_objects_read_back_whole_and_by_range(s: &dyn Storage) {
    let a = a();
    s.put(&a, Bytes::from_static(b"hello world")).await.unwrap();
    assert_eq!(s.head(&a).await.unwrap(), Some(11));
    assert_eq!(read_all(s, &a, None).await, b"hello world");
    assert_eq!(read_all(s, &a, Some(6..11)).await, b"world");
    assert_eq!(read_all(s, &a, Some(0..0)).await, b"");
}

/// A second put of the same key replaces the object.
pub async fn put_replaces_an_existing_object(s: &dyn Storage) {
    let a = a();
    s.put(&a, Bytes::from_static(b"hello world")).await.unwrap();
    s.put(&a, Bytes::from_static(b"bye")).await.unwrap();
    assert_eq!(read_all(s, &a, None).await, b"bye");
}

/// `list` shows direct children, objects and prefixes alike.
pub async fn list_shows_direct_children_objects_and_prefixes_alike(s: &dyn Storage) {
    s.put(&a(), Bytes::from_static(b"bye")).await.unwrap();
    s.put(&Key::new(["suite", "dir", "x"]), Bytes::new())
        .await
        .unwrap();
    let mut names = s.list(&Key::new(["suite"])).await.unwrap();
    names.sort();
    assert_eq!(names, ["a", "dir"]);
}

/// Writes add to the upload and report its size; `commit_upload` makes
/// it the object, replacing an old one.
pub async fn uploads_grow_by_writes_and_commit_into_place(s: &dyn Storage) {
    let upload = stage_eight_bytes(s).await;
    let dest = Key::new(["suite", "blobs", "x"]);
    s.put(&dest, Bytes::from_static(b"old")).await.unwrap();
    s.commit_upload(&session(), &upload, &dest).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), Some(8));
    assert_eq!(read_all(s, &dest, None).await, b"abcdefgh");
    assert_eq!(read_all(s, &dest, Some(2..5)).await, b"cde");
}

/// A write whose input fails is an `Input` error; the upload stays as it
/// was before that write, and goes on from there.
pub async fn a_failing_upload_input_is_reported_and_leaves_the_upload_as_it_was(s: &dyn Storage) {
    let upload = stage_eight_bytes(s).await;
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"xx")),
        Err(io::Error::other("client went away")),
    ]));
    assert!(matches!(
        s.write_upload(&session(), &upload, failing).await,
        Err(StorageError::Input(_))
    ));
    let upload = s
        .write_upload(&session(), &upload, stream_of(&[b"ij"]))
        .await
        .unwrap();
    assert_eq!(upload.size, 10);
    let dest = Key::new(["suite", "blobs", "y"]);
    s.commit_upload(&session(), &upload, &dest).await.unwrap();
    assert_eq!(read_all(s, &dest, None).await, b"abcdefghij");
}

/// An upload larger than several parts, written in writes whose sizes have
/// nothing to do with the backend's part size, reads back byte for byte.
pub async fn an_upload_of_many_parts_reads_back_exactly(s: &dyn Storage) {
    let data = pattern((13 << 20) + 12_345);
    let mut upload = UploadParts::default();
    for (range, chunk) in [
        (0..(3 << 20) + 7, 100_000),
        ((3 << 20) + 7..(11 << 20) + 1, 1 << 20),
        ((11 << 20) + 1..data.len(), 65_536),
    ] {
        upload = s
            .write_upload(&session(), &upload, chunks_of(&data[range], chunk))
            .await
            .unwrap();
    }
    assert_eq!(upload.size, data.len() as u64);
    let dest = Key::new(["suite", "blobs", "big"]);
    s.commit_upload(&session(), &upload, &dest).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), Some(data.len() as u64));
    assert!(read_all(s, &dest, None).await == data, "content differs");
    let from = (5 << 20) - 3;
    assert!(
        read_all(s, &dest, Some(from as u64..(from + 10) as u64)).await == data[from..from + 10],
        "range differs"
    );
}

/// What a write returns is all another process needs to go on: the state
/// survives a round trip through JSON, and a write from an older state
/// (a retry after a failure nobody saw) overwrites what came after it.
pub async fn an_upload_continues_from_its_recorded_state_alone(s: &dyn Storage) {
    let data = pattern((6 << 20) + 5);
    let first = s
        .write_upload(
            &session(),
            &UploadParts::default(),
            chunks_of(&data[..(5 << 20) + 1], 1 << 20),
        )
        .await
        .unwrap();
    let recorded: UploadParts =
        serde_json::from_slice(&serde_json::to_vec(&first).unwrap()).unwrap();
    assert_eq!(recorded, first);
    // A write that went through but whose result was lost...
    s.write_upload(
        &session(),
        &recorded,
        chunks_of(b"garbage that must not stay", 4),
    )
    .await
    .unwrap();
    // ...is overwritten by the retry from the recorded state.
    let done = s
        .write_upload(
            &session(),
            &recorded,
            chunks_of(&data[(5 << 20) + 1..], 1 << 20),
        )
        .await
        .unwrap();
    let dest = Key::new(["suite", "blobs", "resumed"]);
    s.commit_upload(&session(), &done, &dest).await.unwrap();
    assert!(read_all(s, &dest, None).await == data, "content differs");
}

/// An upload nothing was written to commits as an empty object.
pub async fn an_empty_upload_commits_an_empty_object(s: &dyn Storage) {
    let dest = Key::new(["suite", "blobs", "empty"]);
    let upload = s
        .write_upload(&session(), &UploadParts::default(), stream_of(&[]))
        .await
        .unwrap();
    assert_eq!(upload.size, 0);
    s.commit_upload(&session(), &upload, &dest).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), Some(0));
    assert_eq!(read_all(s, &dest, None).await, b"");
}

/// Aborting an upload, even twice, is fine, and its session can then be
/// deleted.
pub async fn an_aborted_upload_can_be_aborted_again(s: &dyn Storage) {
    let data = pattern((5 << 20) + 1);
    let upload = s
        .write_upload(
            &session(),
            &UploadParts::default(),
            chunks_of(&data, 1 << 20),
        )
        .await
        .unwrap();
    s.abort_upload(&session(), &upload).await.unwrap();
    s.abort_upload(&session(), &upload).await.unwrap();
    s.delete_prefix(&session()).await.unwrap();
    assert!(s.list(&session()).await.unwrap().is_empty());
}

/// `rename` moves a committed upload and a small object alike, replacing
/// the destination; the source is gone after it.
pub async fn rename_moves_committed_uploads_and_small_objects(s: &dyn Storage) {
    let upload = stage_eight_bytes(s).await;
    let staged = Key::new(["suite", "staged"]);
    s.commit_upload(&session(), &upload, &staged).await.unwrap();
    let dest = Key::new(["suite", "blobs", "x"]);
    s.put(&dest, Bytes::from_static(b"old")).await.unwrap();
    s.rename(&staged, &dest).await.unwrap();
    assert_eq!(read_all(s, &dest, None).await, b"abcdefgh");
    assert_eq!(s.head(&dest).await.unwrap(), Some(8));
    assert_eq!(s.head(&staged).await.unwrap(), None);
    assert!(matches!(
        s.rename(&staged, &dest).await,
        Err(StorageError::NotFound(_))
    ));
    s.put(&a(), Bytes::from_static(b"small")).await.unwrap();
    let moved = Key::new(["suite", "moved"]);
    s.rename(&a(), &moved).await.unwrap();
    assert_eq!(read_all(s, &moved, None).await, b"small");
    assert_eq!(s.head(&a()).await.unwrap(), None);
}

/// A committed upload is deleted by `delete`, like any object.
pub async fn a_committed_upload_is_deleted_like_any_object(s: &dyn Storage) {
    let upload = stage_eight_bytes(s).await;
    let dest = Key::new(["suite", "blobs", "x"]);
    s.commit_upload(&session(), &upload, &dest).await.unwrap();
    s.delete(&dest).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), None);
    assert!(matches!(
        s.get(&dest, None).await,
        Err(StorageError::NotFound(_))
    ));
}

/// `delete` removes the object.
pub async fn delete_removes_one_object(s: &dyn Storage) {
    let a = a();
    s.put(&a, Bytes::from_static(b"bye")).await.unwrap();
    s.delete(&a).await.unwrap();
    assert_eq!(s.head(&a).await.unwrap(), None);
}

/// `delete_prefix` removes every object under the prefix, and deleting an
/// empty prefix again is fine.
pub async fn delete_prefix_removes_everything_under_it_and_is_idempotent(s: &dyn Storage) {
    let dest = Key::new(["suite", "blobs", "x"]);
    s.put(&dest, Bytes::from_static(b"abcdefgh")).await.unwrap();
    s.put(&a(), Bytes::from_static(b"bye")).await.unwrap();
    s.delete_prefix(&Key::new(["suite"])).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), None);
    assert_eq!(s.head(&a()).await.unwrap(), None);
    s.delete_prefix(&Key::new(["suite"]))
        .await
        .expect("idempotent");
}

/// `modified` is `None` for a missing object and, for a written one, a
/// time close to the write (garbage collection spares what is recent).
pub async fn modified_tells_when_an_object_was_last_written(s: &dyn Storage) {
    let key = Key::new(["a", "when"]);
    assert_eq!(s.modified(&key).await.unwrap(), None);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    s.put(&key, Bytes::from_static(b"x")).await.unwrap();
    let at = s
        .modified(&key)
        .await
        .unwrap()
        .expect("a time for a written object");
    let after = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    assert!(before <= at && at <= after, "{at:?} is not about now");
}
