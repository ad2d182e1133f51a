//! Where transfers enter the queue: the embedded registry's events (an
//! [`EventSink`]), and the body of `/v1/.../blob`, which streams a layer
//! the registry does not announce (it reads it as the catalog's own,
//! internal read). Neither ever waits: a full queue drops and counts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use bytes::Bytes;
use futures_util::Stream;
use rbee_registry::{AuthenticatedSubject, Event, EventSink, Offer, RequestContext};

use super::{Analytics, ClientFamily, Observed, Source, Subject};
use crate::domain::source::BlobStream;

/// Hands the registry's blob pulls that count to the analytics queue.
#[derive(Debug)]
pub struct RegistrySink(pub Arc<Analytics>);

impl EventSink for RegistrySink {
    fn offer(&self, event: &Event) -> Offer {
        let Some(mut observed) = Observed::of_registry(event) else {
            // Not a download: nothing is lost by not taking it.
            return Offer::Accepted;
        };
        if let Some(license) = self.0.v1_answer(&observed, &event.digest) {
            observed.source = Source::V1;
            observed.license_id = observed.license_id.or(license);
        }
        if self.0.offer(observed) {
            Offer::Accepted
        } else {
            Offer::Dropped
        }
    }
}

/// The body of a `/v1/.../blob` answer: the layer's bytes, and, once it
/// is over (sent to the end, failed, or dropped because the client went
/// away), one transfer offered to the queue.
pub struct RecordedStream {
    inner: BlobStream,
    /// Taken when offered.
    pending: Option<(Observed, Arc<Analytics>)>,
    expected: u64,
    sent: u64,
}

impl RecordedStream {
    /// `inner`, which is to yield `size` bytes of build `worker` `version`
    /// `platform`, requested as `context` says.
    pub fn new(
        inner: BlobStream,
        analytics: Arc<Analytics>,
        context: &RequestContext,
        (worker, version, platform): (String, String, String),
        size: u64,
    ) -> Self {
        let observed = Observed {
            subject: Subject::Build {
                worker,
                version,
                platform,
            },
            at: chrono::Utc::now(),
            source: Source::V1,
            client_addr: context.client_addr,
            family: ClientFamily::of(context.user_agent.as_deref()),
            license_id: context.subject.clone(),
            complete: false,
            resumed: false,
        };
        RecordedStream {
            inner,
            pending: Some((observed, analytics)),
            expected: size,
            sent: 0,
        }
    }

    /// The stream is `part` of the blob (of `size` bytes) rather than all
    /// of it: recorded only when the part reaches the blob's last byte,
    /// as the end of a download (complete if all of the part went out,
    /// `resumed` when it started past byte 0); a part that stops short of
    /// the end is a probe or one piece of a download in parts, and is not
    /// recorded (see docs/analytics.md, "Completion").
    pub fn of_part(mut self, part: Option<std::ops::Range<u64>>, size: u64) -> Self {
        let Some(part) = part else {
            return self;
        };
        if part.end < size {
            self.pending = None;
            return self;
        }
        self.expected = part.end - part.start;
        if let Some((observed, _)) = &mut self.pending {
            observed.resumed = part.start > 0;
        }
        self
    }

    fn finish(&mut self) {
        if let Some((mut observed, analytics)) = self.pending.take() {
            observed.at = chrono::Utc::now();
            observed.complete = self.sent == self.expected;
            analytics.offer(observed);
        }
    }
}

impl std::fmt::Debug for RecordedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedStream")
            .field("expected", &self.expected)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Stream for RecordedStream {
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
}

impl Drop for RecordedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The [`RequestContext`] of a catalog request (peer address, user agent),
/// as the registry builds it for its own requests.
#[derive(Debug)]
pub struct ClientContext(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for ClientContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only what `RequestContext::of` reads is copied.
        let mut req = axum::http::Request::new(());
        if let Some(ua) = parts.headers.get(axum::http::header::USER_AGENT) {
            req.headers_mut()
                .insert(axum::http::header::USER_AGENT, ua.clone());
        }
        if let Some(info) = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            req.extensions_mut().insert(*info);
        }
        if let Some(subject) = parts.extensions.get::<AuthenticatedSubject>() {
            req.extensions_mut().insert(subject.clone());
        }
        Ok(ClientContext(RequestContext::of(&req)))
    }
}
