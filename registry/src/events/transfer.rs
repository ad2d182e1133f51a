//! The body of a blob GET, which announces the pull once it is over: when
//! its last byte is handed to the connection, or when it fails or is
//! dropped before (the client went away). Only then is it known how many
//! bytes were sent and whether that was all of them, which is what tells a
//! download from an abandoned one.
//!
//! A complete pull is announced as the last chunk is handed over, not when
//! the stream is polled once more for its end: so it is published before
//! the client can have read its last byte, and whoever watches events sees
//! a download no later than the client finishes it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::{ByteRange, Event, EventBus, Transfer};
use crate::storage::ByteStream;

/// A byte stream that counts the bytes it hands over and calls `on_end`
/// once with that count: as the `expected`-th byte is handed over, or when
/// the stream fails, ends or is dropped before. The registry announces its
/// pulls with it ([`announced`]); the catalog records its `/blob` answers.
pub struct Counted<F: FnOnce(u64)> {
    inner: ByteStream,
    /// Taken when called.
    on_end: Option<F>,
    /// The bytes the answer promised (the range's, or the blob's).
    expected: u64,
    sent: u64,
}

impl<F: FnOnce(u64)> std::fmt::Debug for Counted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("expected", &self.expected)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<F: FnOnce(u64)> Counted<F> {
    /// `inner`, which is to yield `expected` bytes, calling `on_end` with
    /// the bytes it yielded once it is over.
    pub fn new(inner: ByteStream, expected: u64, on_end: F) -> Self {
        Counted {
            inner,
            on_end: Some(on_end),
            expected,
            sent: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

/// `inner`, which is to yield `expected` bytes (of `range`, when the
/// answer is a 206), publishing `event` on `bus`, completed with its
/// [`Transfer`], exactly once, when it is over.
pub(crate) fn announced(
    inner: ByteStream,
    mut event: Event,
    bus: EventBus,
    range: Option<ByteRange>,
    expected: u64,
) -> Counted<impl FnOnce(u64) + Send + Unpin> {
    Counted::new(inner, expected, move |sent| {
        event.timestamp = chrono::Utc::now();
        event.transfer = Some(Transfer {
            bytes_sent: sent,
            // Counting yielded bytes: storage never yields more than it
            // was asked for, and hyper stops at Content-Length anyway.
            completed: sent == expected,
            range,
            redirected: false,
        });
        bus.publish(event);
    })
}

impl<F: FnOnce(u64) + Unpin> Stream for Counted<F> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is `Unpin` (the inner stream is a `Pin<Box<…>>`).
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                this.sent += chunk.len() as u64;
                if this.sent >= this.expected {
                    this.finish();
                }
            }
            Poll::Ready(Some(Err(_)) | None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64)> Drop for Counted<F> {
    fn drop(&mut self) {
        self.finish();
    }
}
