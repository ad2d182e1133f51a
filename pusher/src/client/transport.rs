//! How one request travels: credentials only to the registry's own origin,
//! redirects followed without them, a total deadline for small requests, a
//! read-idle watchdog for every request (uploads included), and response
//! bodies read up to a cap.
//!
//! reqwest's client-wide `read_timeout` is not used: it starts when the
//! request is sent and runs until the answer's headers arrive, so it would
//! cut off a large upload that is still moving. The watchdog here only
//! fires when nothing moved (no body piece sent, no answer) for the idle
//! period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Request, Response, Url};

use super::RegistryClient;
use super::retry::Failure;
use crate::error::PushError;

/// Network budgets of a [`RegistryClient`]. Every value is configurable
/// (`--connect-timeout`, `--read-timeout`, `--request-timeout` and their
/// `RBEE_*` twins), so a slow link can be given more room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect: Duration,
    /// Longest time nothing may move on a request: no body piece sent and
    /// no answer received, or no piece of an answer's body received.
    pub read_idle: Duration,
    /// Total deadline of a request whose bodies are small (manifests,
    /// HEADs, tag lists, tokens), from sending to the end of the answer.
    /// Blob uploads have no total deadline, only `read_idle`.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read_idle: Duration::from_secs(60),
            request: Duration::from_secs(120),
        }
    }
}

/// How many redirects of a GET or HEAD are followed.
const MAX_REDIRECTS: usize = 5;

/// The most of an error answer's body that is read: enough for any OCI
/// error document, and the rest is never downloaded.
pub const ERROR_BODY_CAP: usize = 64 << 10;

/// Counts the pieces of a request body sent so far; the watchdog takes an
/// unchanged count over a whole idle period as a stall.
#[derive(Debug, Clone, Default)]
pub(super) struct Activity(Arc<AtomicU64>);

impl Activity {
    /// Notes that something moved.
    pub(super) fn touch(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a request produced no answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// reqwest failed (connection, deadline, protocol).
    Http(reqwest::Error),
    /// Nothing moved for the idle period.
    Stalled(Duration),
    /// The answer's body broke off while it was read.
    Cut(reqwest::Error),
}

impl SendError {
    /// Whether trying again may help.
    ///
    /// A refused connection, a host name that does not resolve and a TLS
    /// handshake that fails are not: they mean a wrong `--registry`, and
    /// four more attempts would only delay saying so.
    pub(super) fn retryable(&self) -> bool {
        match self {
            SendError::Http(e) => {
                (e.is_connect() || e.is_timeout() || e.is_request())
                    && connection_hint(&with_causes(e)).is_none()
            }
            SendError::Stalled(_) | SendError::Cut(_) => true,
        }
    }

    /// The error a caller reports, `what` naming the request.
    pub(super) fn into_push(self, what: &str) -> PushError {
        match self {
            SendError::Http(e) => {
                // reqwest's own message stops at "error sending request";
                // the cause (refused, DNS, TLS) is what a person needs.
                let text = with_causes(&e);
                let hint = connection_hint(&text).unwrap_or_default();
                PushError::Registry(format!("{what}: {text}{hint}"))
            }
            SendError::Stalled(idle) => PushError::Registry(format!(
                "{what}: nothing received from the registry for {}s (read timeout; see --read-timeout)",
                idle.as_secs()
            )),
            SendError::Cut(e) => PushError::Registry(format!("{what}: the answer broke off: {e}")),
        }
    }
}

/// An error and its causes, on one line.
fn with_causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What a connection error that no retry mends most likely means, from
/// the text of the error and its causes; `None` for the others.
pub(crate) fn connection_hint(text: &str) -> Option<&'static str> {
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        // rustls's words when the server answered in plain HTTP.
        Some(" (the registry does not speak TLS: is it plain HTTP? try --registry http://...)")
    } else if text.contains("dns error") || text.contains("failed to lookup address") {
        Some(" (the host name does not resolve)")
    } else if text.contains("Connection refused") {
        Some(" (nothing listens there: is the registry running, and the port right?)")
    } else if text.contains("certificate") || text.contains("HandshakeFailure") {
        Some(" (the TLS handshake failed)")
    } else {
        None
    }
}

impl RegistryClient {
    /// True when `url` is on the registry's own origin (scheme, host and
    /// port): the only place its credentials and tokens may go.
    pub(super) fn is_registry_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// Adds the `Authorization` of `scope` when `req` goes to the
    /// registry's origin, and removes any otherwise.
    pub(super) fn authorize(&self, req: &mut Request, scope: &str) {
        let auth = self
            .is_registry_origin(req.url())
            .then(|| self.authorization(scope))
            .flatten();
        match auth {
            Some(value) => {
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
            None => {
                req.headers_mut().remove(header::AUTHORIZATION);
            }
        }
    }

    /// Sends `req` and waits for the answer's headers, failing when
    /// nothing moved for the idle period; `activity` is touched by the
    /// request's body stream, if it has one.
    pub(super) async fn execute(
        &self,
        req: Request,
        activity: Option<&Activity>,
    ) -> Result<Response, SendError> {
        let idle = self.timeouts.read_idle;
        let fut = self.http.execute(req);
        tokio::pin!(fut);
        let mut seen = activity.map(Activity::count);
        loop {
            tokio::select! {
                result = &mut fut => return result.map_err(SendError::Http),
                () = tokio::time::sleep(idle) => {
                    let now = activity.map(Activity::count);
                    if now.is_none() || now == seen {
                        return Err(SendError::Stalled(idle));
                    }
                    seen = now;
                }
            }
        }
    }

    /// Sends a request with small bodies: credentials when it goes to the
    /// registry's origin, the total deadline, and up to
    /// [`MAX_REDIRECTS`] redirects of a GET or HEAD, followed without any
    /// `Authorization` (a blob GET may be sent on to a storage host; the
    /// registry's credentials are never sent after it).
    pub(super) async fn dispatch(
        &self,
        mut req: Request,
        scope: &str,
    ) -> Result<Response, SendError> {
        let follow = matches!(*req.method(), Method::GET | Method::HEAD);
        let template = if follow { req.try_clone() } else { None };
        self.authorize(&mut req, scope);
        *req.timeout_mut() = Some(self.timeouts.request);
        let mut resp = self.execute(req, None).await?;
        let Some(template) = template else {
            return Ok(resp);
        };
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(next) = redirect_target(&resp) else {
                break;
            };
            let Some(mut again) = template.try_clone() else {
                break;
            };
            tracing::debug!(to = %next.origin().ascii_serialization(), "following a redirect without credentials");
            *again.url_mut() = next;
            again.headers_mut().remove(header::AUTHORIZATION);
            *again.timeout_mut() = Some(self.timeouts.request);
            resp = self.execute(again, None).await?;
        }
        Ok(resp)
    }

    /// Reads an answer's body, at most `cap` bytes: `Ok((bytes, true))`
    /// when the body was longer and the rest was left unread. Each piece
    /// must arrive within the idle period.
    pub(super) async fn read_capped(
        &self,
        mut resp: Response,
        cap: usize,
    ) -> Result<(Bytes, bool), SendError> {
        let idle = self.timeouts.read_idle;
        let mut out = BytesMut::new();
        loop {
            let piece = tokio::time::timeout(idle, resp.chunk())
                .await
                .map_err(|_| SendError::Stalled(idle))?
                .map_err(SendError::Cut)?;
            let Some(piece) = piece else {
                return Ok((out.freeze(), false));
            };
            let room = cap - out.len();
            if piece.len() > room {
                out.extend_from_slice(&piece[..room]);
                // Dropping the answer closes the connection: the rest is
                // never downloaded.
                return Ok((out.freeze(), true));
            }
            out.extend_from_slice(&piece);
        }
    }

    /// One attempt at reading a document of at most `limit` bytes: a
    /// larger one fails for good, and only `limit` bytes of it are ever
    /// read; a stalled or broken-off answer may be asked for again.
    pub(super) async fn read_limited(
        &self,
        resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, Failure> {
        match self.read_capped(resp, limit).await {
            Ok((bytes, false)) => Ok(bytes),
            Ok((_, true)) => Err(Failure::fatal(PushError::Registry(format!(
                "{what} is larger than the {limit} bytes expected"
            )))),
            Err(e) => Err(Failure::send(e, &format!("reading {what}"))),
        }
    }

    /// Reads a document of at most `limit` bytes; a larger one is an
    /// error, and only `limit` bytes of it are ever read.
    pub async fn read_document(
        &self,
        resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, PushError> {
        self.read_limited(resp, limit, what)
            .await
            .map_err(Failure::into_error)
    }
}

/// Where a redirect points, resolved against the answer's URL; `None`
/// without a `Location` or for a scheme other than http(s).
fn redirect_target(resp: &Response) -> Option<Url> {
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    let next = resp.url().join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// `Authorization` values are secrets: this one is never logged, and is
/// marked sensitive so that HTTP tooling does not print it either.
pub(super) fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}
