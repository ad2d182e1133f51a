//! Streamed blob uploads: a blob whose bytes are made while it is sent
//! (an archive being packaged), so its digest is known only at the end.
//!
//! The producer, on a blocking thread, writes into a [`PieceWriter`] that
//! hashes the bytes and hands them over in pieces of [`STREAM_PIECE`]
//! bytes through a channel of one slot: at most three pieces exist at once
//! (one being filled, one waiting, one being sent), whatever the blob's
//! size. A blob that ends within its first piece goes as one monolithic
//! upload (POST, then PUT `?digest=` with the body), unless the registry
//! has it already. A longer one opens a session, PATCHes each piece with
//! its `Content-Range`, and commits with PUT `?digest=` once the producer
//! is done and the digest known.
//!
//! Retries (see `retry.rs`): each piece is a retried step, and the piece
//! is in memory, so it can be sent again; after a failed attempt the
//! registry is asked where the upload stands, as for a file's chunks. What
//! cannot be sent again is what came before the current piece: when the
//! registry reports less than that (it lost data) or forgot the session,
//! the whole blob starts over: packaging again from the first byte, in a
//! new session, at most [`RESTARTS`] times. Packaging is deterministic, so
//! the new attempt makes the same bytes.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header;
use tokio::sync::mpsc;

use super::retry::Failure;
use super::transport::Activity;
use super::{Progress, RegistryClient, scope};
use crate::error::PushError;
use crate::package::{Hashing, Packed};

/// The size of the pieces a streamed blob is sent in. Three exist at
/// once per upload at most; 8 MiB is above the smallest chunk registries
/// accept (5 MiB on S3-backed ones) and few requests for a large build.
pub const STREAM_PIECE: u64 = 8 << 20;

/// How often a streamed blob is packaged and sent again from its start
/// after the registry lost part of it (not counting the first attempt).
/// Each attempt's own requests are retried by the policy as usual.
pub const RESTARTS: u32 = 2;

/// A blob uploaded by [`RegistryClient::upload_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedBlob {
    /// Its digest and size.
    pub packed: Packed,
    /// False when the registry had it already and nothing was sent.
    pub uploaded: bool,
}

/// The writer a producer writes the blob into: it hashes and counts the
/// bytes and hands them on in pieces of a fixed size.
#[derive(Debug)]
pub struct PieceWriter {
    hashing: Hashing<Pieces>,
}

#[derive(Debug)]
struct Pieces {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    piece: usize,
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.piece - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.piece {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pieces {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.piece)).freeze();
        // Blocks while the uploader is a piece behind: this is what bounds
        // the memory. Fails when the uploader gave up.
        self.tx
            .blocking_send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for PieceWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hashing.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PieceWriter {
    /// Sends the last, partial piece; the blob's digest and size.
    fn finish(self) -> io::Result<Packed> {
        let (packed, mut pieces) = self.hashing.finish();
        if !pieces.buf.is_empty() {
            pieces.send()?;
        }
        Ok(packed)
    }
}

/// Where a streamed upload stands, as far as we know.
#[derive(Debug)]
struct Session {
    location: Url,
    /// Bytes the registry has.
    offset: u64,
    /// An attempt failed after sending: ask before sending again.
    unsure: bool,
}

/// Why one packaging-and-upload attempt failed.
enum AttemptError {
    /// The registry lost what came before the current piece: start over.
    Restart(PushError),
    /// Anything else: give up.
    Fatal(PushError),
}

impl From<PushError> for AttemptError {
    fn from(e: PushError) -> Self {
        AttemptError::Fatal(e)
    }
}

impl RegistryClient {
    /// Uploads the blob `produce` writes (on a blocking thread) into the
    /// [`PieceWriter`] it is given, returning the writer when done.
    /// `produce` may be called again when the upload has to start over
    /// (see the module doc); it must write the same bytes each time.
    pub async fn upload_stream<P>(
        &self,
        repo: &str,
        produce: P,
        progress: Progress,
    ) -> Result<StreamedBlob, PushError>
    where
        P: Fn(PieceWriter) -> io::Result<PieceWriter> + Send + Sync + 'static,
    {
        let produce = Arc::new(produce);
        let mut restarts = 0;
        loop {
            match self.stream_once(repo, produce.clone(), &progress).await {
                Ok(blob) => return Ok(blob),
                Err(AttemptError::Restart(e)) if restarts < RESTARTS => {
                    restarts += 1;
                    tracing::warn!(error = %e, restarts, "the registry lost part of a streamed upload; starting it over");
                }
                Err(AttemptError::Restart(e) | AttemptError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One attempt: package from the first byte, upload as it comes.
    async fn stream_once<P>(
        &self,
        repo: &str,
        produce: Arc<P>,
        progress: &Progress,
    ) -> Result<StreamedBlob, AttemptError>
    where
        P: Fn(PieceWriter) -> io::Result<PieceWriter> + Send + Sync + 'static,
    {
        let piece = usize::try_from(self.stream_piece)
            .unwrap_or(usize::MAX)
            .clamp(1, 1 << 30);
        let (tx, mut rx) = mpsc::channel::<Bytes>(1);
        let producer = tokio::task::spawn_blocking(move || {
            let writer = PieceWriter {
                hashing: Hashing::new(Pieces {
                    tx,
                    buf: BytesMut::with_capacity(piece),
                    piece,
                }),
            };
            produce(writer)?.finish()
        });
        let result = self.send_pieces(repo, &mut rx, progress).await;
        // Unblocks the producer if we stopped early; it then fails.
        drop(rx);
        let packed = producer
            .await
            .map_err(|e| PushError::Io(io::Error::other(e)))?;
        let sent = result?;
        // The producer's failure explains a short upload best.
        let packed = packed.map_err(PushError::Io)?;
        match sent {
            Sent::One(bytes) => {
                if self.blob_exists(repo, &packed.digest).await? {
                    return Ok(StreamedBlob {
                        packed,
                        uploaded: false,
                    });
                }
                self.retrying("uploading a blob", || {
                    self.upload_one(repo, &packed.digest, &bytes, progress)
                })
                .await?;
            }
            Sent::Session(session) => {
                if session.offset != packed.size {
                    return Err(AttemptError::Fatal(PushError::Registry(format!(
                        "sent {} bytes of a {}-byte blob",
                        session.offset, packed.size
                    ))));
                }
                self.commit(repo, &session.location, &packed.digest).await?;
            }
        }
        Ok(StreamedBlob {
            packed,
            uploaded: true,
        })
    }

    /// Sends the pieces as they come: nothing yet for a blob of one piece
    /// (its bytes are returned), PATCHes in a session otherwise.
    async fn send_pieces(
        &self,
        repo: &str,
        rx: &mut mpsc::Receiver<Bytes>,
        progress: &Progress,
    ) -> Result<Sent, AttemptError> {
        let Some(first) = rx.recv().await else {
            return Ok(Sent::One(Bytes::new()));
        };
        let Some(second) = rx.recv().await else {
            return Ok(Sent::One(first));
        };
        let location = self
            .retrying("starting an upload", || self.start_upload(repo))
            .await?;
        let session = std::sync::Mutex::new(Session {
            location,
            offset: 0,
            unsure: false,
        });
        let mut start = 0u64;
        let mut next = Some(second);
        let mut piece = first;
        loop {
            self.send_piece(repo, &session, start, &piece, progress)
                .await?;
            start += piece.len() as u64;
            let Some(p) = next.take() else { break };
            piece = p;
            next = rx.recv().await;
        }
        Ok(Sent::Session(
            session.into_inner().unwrap_or_else(|e| e.into_inner()),
        ))
    }

    /// Sends `piece`, which starts at `start`, as one retried step.
    async fn send_piece(
        &self,
        repo: &str,
        session: &std::sync::Mutex<Session>,
        start: u64,
        piece: &Bytes,
        progress: &Progress,
    ) -> Result<(), AttemptError> {
        let lost = std::sync::Mutex::new(None);
        let result = self
            .retrying("uploading a chunk", || {
                self.patch_piece(repo, session, start, piece, progress, &lost)
            })
            .await;
        match (result, lost.into_inner().unwrap_or_else(|e| e.into_inner())) {
            (Ok(()), _) => Ok(()),
            (Err(e), Some(())) => Err(AttemptError::Restart(e)),
            (Err(e), None) => Err(AttemptError::Fatal(e)),
        }
    }

    /// One attempt at a piece: after a failed attempt, first ask where
    /// the upload stands; resend the piece, skip it if it arrived, or
    /// report (through `lost`) that the registry has less than what came
    /// before it.
    async fn patch_piece(
        &self,
        repo: &str,
        session: &std::sync::Mutex<Session>,
        start: u64,
        piece: &Bytes,
        progress: &Progress,
        lost: &std::sync::Mutex<Option<()>>,
    ) -> Result<(), Failure> {
        let lock = || session.lock().unwrap_or_else(|e| e.into_inner());
        let (location, unsure) = {
            let s = lock();
            (s.location.clone(), s.unsure)
        };
        let end = start + piece.len() as u64;
        if unsure {
            let at = self.upload_offset(repo, &location).await?;
            match at {
                Some(at) if at == end => {
                    let mut s = lock();
                    s.offset = end;
                    s.unsure = false;
                    return Ok(());
                }
                Some(at) if at == start => lock().unsure = false,
                other => {
                    *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(());
                    return Err(Failure::fatal(PushError::Registry(match other {
                        Some(at) => {
                            format!("the registry holds {at} bytes of the upload, expected {start}")
                        }
                        None => "the registry forgot the upload session".into(),
                    })));
                }
            }
        }
        let activity = Activity::default();
        let body = {
            let (activity, progress) = (activity.clone(), progress.clone());
            let pieces = piece
                .chunks(1 << 20)
                .map(|c| piece.slice_ref(c))
                .collect::<Vec<_>>();
            reqwest::Body::wrap_stream(futures_util::stream::iter(pieces.into_iter().map(
                move |b| {
                    activity.touch();
                    progress(b.len() as u64);
                    Ok::<_, io::Error>(b)
                },
            )))
        };
        let mut req = self
            .http
            .patch(location.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, piece.len())
            .header(header::CONTENT_RANGE, format!("{start}-{}", end - 1))
            .body(body)
            .build()
            .map_err(|e| PushError::Registry(format!("bad chunk request: {e}")))?;
        self.authorize(&mut req, &scope(repo, true));
        // From here on, a failure leaves the registry's offset unknown.
        lock().unsure = true;
        let resp = self
            .execute(req, Some(&activity))
            .await
            .map_err(|e| Failure::send(e, "chunk upload failed"))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(resp).await);
        }
        let next = self.location(resp.headers(), &location)?;
        let mut s = lock();
        s.location = next;
        s.offset = end;
        s.unsure = false;
        Ok(())
    }

    /// One attempt at a blob held in memory: a new session, one PUT.
    async fn upload_one(
        &self,
        repo: &str,
        digest: &str,
        bytes: &Bytes,
        progress: &Progress,
    ) -> Result<(), Failure> {
        self.upload_small(repo, digest, bytes).await?;
        progress(bytes.len() as u64);
        Ok(())
    }

    /// Commits a session under `digest`. A retried commit whose first
    /// attempt went through finds the session gone: the blob being there
    /// then means success.
    async fn commit(&self, repo: &str, location: &Url, digest: &str) -> Result<(), PushError> {
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let build = |c: &reqwest::Client| c.put(url.clone()).header(header::CONTENT_LENGTH, "0");
        let committed = self
            .idempotent(
                "finishing an upload",
                repo,
                true,
                build,
                |resp| async move {
                    match resp.status() {
                        StatusCode::CREATED => Ok(true),
                        StatusCode::NOT_FOUND => Ok(false),
                        _ => Err(Failure::fatal(self.refusal(resp).await)),
                    }
                },
            )
            .await?;
        if committed || self.blob_exists(repo, digest).await? {
            Ok(())
        } else {
            Err(PushError::Registry(
                "the registry forgot the upload session before it was finished".into(),
            ))
        }
    }
}

/// What [`RegistryClient::send_pieces`] did.
enum Sent {
    /// The blob fits in one piece: here it is, nothing sent yet.
    One(Bytes),
    /// Sent in a session, not committed yet.
    Session(Session),
}
