//! The behaviour every [`Storage`] backend must show. Each backend's tests
//! call [`run`] on a fresh, empty store; a new backend is done when it passes.

use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{ByteStream, Key, Storage, StorageError};

fn stream_of(parts: &[&'static [u8]]) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
    Box::pin(futures_util::stream::iter(items))
}

async fn read_all(s: &dyn Storage, key: &Key, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let stream = s.get(key, range).await.expect("get");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read");
    chunks.concat()
}

/// Runs the whole suite against `s`, which must start empty.
pub async fn run(s: &dyn Storage) {
    let a = Key::new(["suite", "a"]);
    let missing = Key::new(["suite", "missing"]);

    // Missing objects.
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

    // put / get / ranges / replace.
    s.put(&a, Bytes::from_static(b"hello world")).await.unwrap();
    assert_eq!(s.head(&a).await.unwrap(), Some(11));
    assert_eq!(read_all(s, &a, None).await, b"hello world");
    assert_eq!(read_all(s, &a, Some(6..11)).await, b"world");
    assert_eq!(read_all(s, &a, Some(0..0)).await, b"");
    s.put(&a, Bytes::from_static(b"bye")).await.unwrap();
    assert_eq!(read_all(s, &a, None).await, b"bye");

    // list shows direct children, objects and prefixes alike.
    s.put(&Key::new(["suite", "dir", "x"]), Bytes::new())
        .await
        .unwrap();
    let mut names = s.list(&Key::new(["suite"])).await.unwrap();
    names.sort();
    assert_eq!(names, ["a", "dir"]);

    // append: offsets are checked, sizes reported.
    let staged = Key::new(["suite", "staging", "1"]);
    assert_eq!(
        s.append(&staged, 0, stream_of(&[b"abc", b"def"]))
            .await
            .unwrap(),
        6
    );
    assert_eq!(s.append(&staged, 6, stream_of(&[b"gh"])).await.unwrap(), 8);
    match s.append(&staged, 3, stream_of(&[b"zz"])).await {
        Err(StorageError::OffsetMismatch {
            offset: 3,
            actual: 8,
            ..
        }) => {}
        other => panic!("out-of-order append gave {other:?}"),
    }
    assert_eq!(read_all(s, &staged, None).await, b"abcdefgh");

    // A failing input is reported as such.
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"ij")),
        Err(io::Error::other("client went away")),
    ]));
    assert!(matches!(
        s.append(&staged, 8, failing).await,
        Err(StorageError::Input(_))
    ));
    let after = s.head(&staged).await.unwrap().unwrap();
    assert!(
        after == 8 || after == 10,
        "size after a failed append: {after}"
    );

    // promote moves the staged object into place, replacing an old one.
    let dest = Key::new(["suite", "blobs", "x"]);
    s.put(&dest, Bytes::from_static(b"old")).await.unwrap();
    s.promote(&staged, &dest).await.unwrap();
    assert_eq!(&read_all(s, &dest, None).await[..8], b"abcdefgh");
    assert_eq!(s.head(&staged).await.unwrap(), None);
    assert!(matches!(
        s.promote(&staged, &dest).await,
        Err(StorageError::NotFound(_))
    ));

    // delete and delete_prefix.
    s.delete(&a).await.unwrap();
    assert_eq!(s.head(&a).await.unwrap(), None);
    s.delete_prefix(&Key::new(["suite"])).await.unwrap();
    assert_eq!(s.head(&dest).await.unwrap(), None);
    s.delete_prefix(&Key::new(["suite"]))
        .await
        .expect("idempotent");
}
