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
//! A failing case then names itself: `...::shared_suite::append_checks_offsets_and_reports_sizes`.
//! A new backend is done when it passes.

use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{ByteStream, Key, Storage, StorageError};

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
            append_checks_offsets_and_reports_sizes,
            a_failing_append_input_is_reported_as_such,
            promote_moves_the_staged_object_into_place,
            delete_removes_one_object,
            delete_prefix_removes_everything_under_it_and_is_idempotent,
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

fn staged() -> Key {
    Key::new(["suite", "staging", "1"])
}

/// Stages `abcdefgh` under [`staged`], in two appends.
async fn stage_eight_bytes(s: &dyn Storage) {
    assert_eq!(
        s.append(&staged(), 0, stream_of(&[b"abc", b"def"]))
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        s.append(&staged(), 6, stream_of(&[b"gh"])).await.unwrap(),
        8
    );
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

/// `append` goes on where the staged object ends, reports the new size,
/// and refuses any other offset.
pub async fn append_checks_offsets_and_reports_sizes(s: &dyn Storage) {
    stage_eight_bytes(s).await;
    match s.append(&staged(), 3, stream_of(&[b"zz"])).await {
        Err(StorageError::OffsetMismatch {
            offset: 3,
            actual: 8,
            ..
        }) => {}
        other => panic!("out-of-order append gave {other:?}"),
    }
    assert_eq!(read_all(s, &staged(), None).await, b"abcdefgh");
}

/// An append whose input fails is an `Input` error, and leaves the staged
/// object either as it was or with what arrived before the failure.
pub async fn a_failing_append_input_is_reported_as_such(s: &dyn Storage) {
    stage_eight_bytes(s).await;
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"ij")),
        Err(io::Error::other("client went away")),
    ]));
    assert!(matches!(
        s.append(&staged(), 8, failing).await,
        Err(StorageError::Input(_))
    ));
    let after = s.head(&staged()).await.unwrap().unwrap();
    assert!(
        after == 8 || after == 10,
        "size after a failed append: {after}"
    );
}

/// `promote` moves the staged object into place, replacing an old one;
/// the staged object is gone after it.
pub async fn promote_moves_the_staged_object_into_place(s: &dyn Storage) {
    stage_eight_bytes(s).await;
    let dest = Key::new(["suite", "blobs", "x"]);
    s.put(&dest, Bytes::from_static(b"old")).await.unwrap();
    s.promote(&staged(), &dest).await.unwrap();
    assert_eq!(&read_all(s, &dest, None).await[..8], b"abcdefgh");
    assert_eq!(s.head(&staged()).await.unwrap(), None);
    assert!(matches!(
        s.promote(&staged(), &dest).await,
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
