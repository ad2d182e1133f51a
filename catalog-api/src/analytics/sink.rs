//! Where transfers enter the queue: the embedded registry's events (an
//! [`EventSink`]), and the body of `/v1/.../blob`, which streams a layer
//! the registry does not announce (it reads it as the catalog's own,
//! internal read). Neither ever waits: a full queue drops and counts.

use std::ops::Range;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use rbee_registry::{AuthenticatedSubject, Counted, Event, EventSink, Offer, RequestContext};

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

/// The body of a `/v1/.../blob` answer: `inner`, which yields `part` of
/// (or all) the `size` bytes of build `worker` `version` `platform`,
/// requested as `context` says, and, once it is over (sent to the end,
/// failed, or dropped because the client went away), one transfer offered
/// to the queue.
///
/// A part is recorded only when it reaches the blob's last byte, as the
/// end of a download (complete if all of the part went out, `resumed`
/// when it started past byte 0); a part that stops short of the end is a
/// probe or one piece of a download in parts, and is not recorded (see
/// docs/analytics.md, "Completion").
pub fn recorded(
    inner: BlobStream,
    analytics: Arc<Analytics>,
    context: &RequestContext,
    build: (String, String, String),
    size: u64,
    part: Option<Range<u64>>,
) -> BlobStream {
    let (expected, resumed) = match part {
        None => (size, false),
        Some(part) if part.end < size => return inner,
        Some(part) => (part.end - part.start, part.start > 0),
    };
    let mut observed = v1_download(context, build, context.subject.clone());
    observed.resumed = resumed;
    Box::pin(Counted::new(inner, expected, move |sent| {
        observed.at = chrono::Utc::now();
        observed.complete = sent == expected;
        analytics.offer(observed);
    }))
}

/// Records a download of build `worker` `version` `platform` handed out
/// whole to `context` as a presigned URL of the bucket (a premium
/// `/v1/.../download` answer on S3): the bytes then go from the bucket,
/// which the catalog does not see, so it counts when the URL is handed
/// out, as the registry counts its presigned redirects.
pub fn handed_out(
    analytics: &Analytics,
    context: &RequestContext,
    build: (String, String, String),
    license_id: Option<String>,
) {
    let mut observed = v1_download(context, build, license_id);
    observed.complete = true;
    analytics.offer(observed);
}

/// A `/v1` download of build `worker` `version` `platform` by `context`,
/// now, not yet complete.
fn v1_download(
    context: &RequestContext,
    (worker, version, platform): (String, String, String),
    license_id: Option<String>,
) -> Observed {
    Observed {
        subject: Subject::Build {
            worker,
            version,
            platform,
        },
        at: chrono::Utc::now(),
        source: Source::V1,
        client_addr: context.client_addr,
        family: ClientFamily::of(context.user_agent.as_deref()),
        license_id,
        complete: false,
        resumed: false,
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
