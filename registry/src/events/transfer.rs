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

/// A blob's byte stream that publishes `event`, completed with its
/// [`Transfer`], exactly once.
pub struct Announced {
    inner: ByteStream,
    /// Taken when published.
    pending: Option<(Event, EventBus)>,
    range: Option<ByteRange>,
    /// The bytes the answer promised (the range's, or the blob's).
    expected: u64,
    sent: u64,
}

impl Announced {
    /// `inner`, which is to yield `expected` bytes (of `range`, when the
    /// answer is a 206), announcing `event` on `bus` when it is over.
    pub fn new(
        inner: ByteStream,
        event: Event,
        bus: EventBus,
        range: Option<ByteRange>,
        expected: u64,
    ) -> Self {
        Announced {
            inner,
            pending: Some((event, bus)),
            range,
            expected,
            sent: 0,
        }
    }

    fn finish(&mut self) {
        if let Some((mut event, bus)) = self.pending.take() {
            event.timestamp = chrono::Utc::now();
            event.transfer = Some(Transfer {
                bytes_sent: self.sent,
                // Counting yielded bytes: storage never yields more than it
                // was asked for, and hyper stops at Content-Length anyway.
                completed: self.sent == self.expected,
                range: self.range,
            });
            bus.publish(event);
        }
    }
}

impl Stream for Announced {
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

impl Drop for Announced {
    fn drop(&mut self) {
        self.finish();
    }
}
