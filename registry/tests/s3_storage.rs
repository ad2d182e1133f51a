//! The S3 backend against a real S3 server on loopback (`s3s-fs`): the
//! behaviour suite every backend passes, and what only S3 does
//! (presigned URLs, pointers for committed uploads, a clear failure when
//! the bucket cannot be reached).

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use rbee_registry::storage::s3_server::S3TestServer;
use rbee_registry::storage::{ByteStream, Key, S3Storage, Storage, UploadParts};

/// A store on its own server, stopped when the store is dropped.
struct TempStore {
    storage: S3Storage,
    server: S3TestServer,
}

impl std::ops::Deref for TempStore {
    type Target = S3Storage;

    fn deref(&self) -> &S3Storage {
        &self.storage
    }
}

async fn fresh_store() -> TempStore {
    let server = S3TestServer::start();
    let storage = S3Storage::new(&server.options("registry")).unwrap();
    storage.check().await.expect("the test bucket answers");
    TempStore { storage, server }
}

rbee_registry::storage_suite!(fresh_store);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

fn stream(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// A committed upload of more than one part is a pointer to data of its
/// own; a presigned URL of it serves the bytes, `Range` included, straight
/// from the bucket, and deleting the key deletes the data too.
#[tokio::test]
async fn presigned_urls_serve_committed_uploads_with_ranges() {
    let store = fresh_store().await;
    let data = pattern((7 << 20) + 3);
    let session = Key::new(["uploads", "s1"]);
    let upload = store
        .write_upload(&session, &UploadParts::default(), stream(&data))
        .await
        .unwrap();
    assert_eq!(
        upload.parts.len(),
        1,
        "one whole part, the rest in the tail"
    );
    let blob = Key::new(["blobs", "b"]);
    store.commit_upload(&session, &upload, &blob).await.unwrap();
    let bucket = store.server.root.path().join("rbee-test/registry");
    let url = store
        .presigned_get(&blob, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("S3 presigns");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap() == data, "whole blob differs");
    let part = client
        .get(&url)
        .header("range", "bytes=5242880-5242889")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), data[5 << 20..(5 << 20) + 10]);
    let data_files = || {
        std::fs::read_dir(bucket.join("_data"))
            .map(|d| {
                d.filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(data_files(), 1, "the data lives under _data/");
    store.delete(&blob).await.unwrap();
    assert_eq!(data_files(), 0, "deleting the key deleted its data");
}

/// An upload that never filled a part is committed as a plain object.
#[tokio::test]
async fn small_uploads_are_stored_as_themselves() {
    let store = fresh_store().await;
    let session = Key::new(["uploads", "s2"]);
    let upload = store
        .write_upload(&session, &UploadParts::default(), stream(b"{}"))
        .await
        .unwrap();
    assert!(upload.multipart.is_none());
    let blob = Key::new(["blobs", "small"]);
    store.commit_upload(&session, &upload, &blob).await.unwrap();
    let on_disk = store
        .server
        .root
        .path()
        .join("rbee-test/registry/blobs/small");
    assert_eq!(std::fs::read(on_disk).unwrap(), b"{}");
    let read: Vec<Bytes> = store
        .get(&blob, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.concat(), b"{}");
}

/// A bucket that does not answer is reported by `check`, naming it.
#[tokio::test]
async fn an_unreachable_bucket_fails_the_check_and_names_it() {
    let server = S3TestServer::start();
    let mut options = server.options("p");
    drop(server);
    options.bucket = "rbee-test".into();
    let storage = S3Storage::new(&options).unwrap();
    let started = std::time::Instant::now();
    let err = storage.check().await.unwrap_err().to_string();
    assert!(err.contains("s3://rbee-test/p"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "retries are bounded"
    );
}
