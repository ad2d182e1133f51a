//! What a client may hold on a server, and the tools that enforce it:
//! [`ServerLimits`] (connections, header and body timeouts, memory for
//! buffered bodies), [`BodyBudget`] (one byte budget shared by every
//! request that buffers its body) and [`IdleTimeoutBody`] (a request body
//! that fails when the client stops sending). The registry and the catalog
//! both serve through [`crate::server::serve_router`], which applies them.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::Extensions;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The resources one server grants its clients. Every field has a default
/// that suits a registry on a small machine; `main.rs` maps flags onto it.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once. Past it the server stops accepting, so
    /// further connections wait in the kernel's listen queue until one
    /// closes: they are queued, not refused.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from when
    /// the server starts reading them (for a keep-alive connection, from
    /// the end of the previous response). Past it the connection is closed
    /// without an answer; this is what stops a slow-loris.
    pub header_read_timeout: Duration,
    /// Time a request body may send nothing while the server reads it.
    /// Past it the body fails: the request is answered with an error and
    /// what was received so far is treated as a failed body (an upload
    /// session keeps only the bytes it stored).
    pub body_idle_timeout: Duration,
    /// Bytes that bodies read into memory (manifests, webhook payloads)
    /// may hold in total across all requests. A request that would go past
    /// it is refused with 503 and `Retry-After`. Streamed bodies (blob
    /// uploads) do not count: they never sit in memory whole.
    pub buffered_body_bytes: usize,
    /// Time open requests get to finish once shutdown starts. Past it the
    /// server stops waiting and the remaining connections are dropped, so
    /// a stalled download (or a client that never reads) cannot keep a
    /// SIGTERM from stopping the process.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            buffered_body_bytes: 64 << 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Seconds a client refused for lack of budget is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The memory budget of buffered request bodies, in bytes: a semaphore
/// with one permit per byte. Clones share the budget. The server puts its
/// budget in every request's extensions; handlers find it with
/// [`BodyBudget::of`].
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Why a body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The body is (or declares to be) larger than the request allows.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit of this kind of body.
        limit: usize,
    },
    /// Other requests hold the whole budget at the moment.
    #[error("the server is holding as many request bodies as it may; retry shortly")]
    Busy,
    /// Reading the body failed: the client went away, broke the framing,
    /// or stopped sending ([`BodyIdleTimeout`]).
    #[error("reading the request body failed: {0}")]
    Body(#[source] axum::Error),
}

/// A body read into memory; its share of the budget is returned when it
/// is dropped.
#[derive(Debug)]
pub struct BufferedBody {
    /// The content.
    pub bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl BodyBudget {
    /// A budget of `bytes` in total.
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes: Arc::new(Semaphore::new(bytes)),
            total: bytes,
        }
    }

    /// The budget the server put in a request's extensions. A router driven
    /// without [`crate::server::serve_router`] (e.g. through `oneshot`)
    /// shares one process-wide budget of the default size, so buffering is
    /// bounded either way.
    pub fn of(extensions: &Extensions) -> BodyBudget {
        static FALLBACK: OnceLock<BodyBudget> = OnceLock::new();
        extensions.get::<BodyBudget>().cloned().unwrap_or_else(|| {
            FALLBACK
                .get_or_init(|| BodyBudget::new(ServerLimits::default().buffered_body_bytes))
                .clone()
        })
    }

    /// Bytes not held by any request at the moment.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// The size of the whole budget.
    pub fn total(&self) -> usize {
        self.total
    }

    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BufferError> {
        let bytes = u32::try_from(bytes).map_err(|_| BufferError::Busy)?;
        self.bytes
            .clone()
            .try_acquire_many_owned(bytes)
            .map_err(|_| BufferError::Busy)
    }

    /// Reads `body` into memory, at most `limit` bytes, holding budget for
    /// every byte of buffer before it is allocated. `declared` is the
    /// request's `Content-Length`: a larger one is refused before anything
    /// is read, and it sizes the buffer exactly. Each received piece is
    /// copied out at once, so the connection's read buffers are not kept
    /// alive by a slow body.
    pub async fn buffer(
        &self,
        body: Body,
        declared: Option<u64>,
        limit: usize,
    ) -> Result<BufferedBody, BufferError> {
        let too_large = || BufferError::TooLarge { limit };
        let initial = match declared {
            Some(n) if n > limit as u64 => return Err(too_large()),
            Some(n) => n as usize,
            None => 0,
        };
        let mut permit = self.take(initial)?;
        let mut buf = Vec::with_capacity(initial);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BufferError::Body)?;
            let needed = buf.len() + chunk.len();
            if needed > limit {
                return Err(too_large());
            }
            if needed > buf.capacity() {
                // Grow by doubling (bounded by the limit) so a chunked body
                // costs few reallocations; budget first, memory second.
                let capacity = needed.max(buf.capacity() * 2).min(limit);
                permit.merge(self.take(capacity - permit.num_permits())?);
                buf.reserve_exact(capacity - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
        // A body kept by a cache must not pin unused capacity.
        buf.shrink_to_fit();
        Ok(BufferedBody {
            bytes: Bytes::from(buf),
            _permit: permit,
        })
    }
}

/// The error of a request body that sent nothing for too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyIdleTimeout(pub Duration);

impl fmt::Display for BodyIdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the client sent nothing for {} s", self.0.as_secs_f64())
    }
}

impl StdError for BodyIdleTimeout {}

/// A request body that fails with [`BodyIdleTimeout`] when the client
/// sends nothing for `timeout` while the server is waiting for data. The
/// clock starts at the first read, not when the request arrives, so a
/// handler that reads late (or a client waiting for `100 Continue`) is not
/// cut off.
#[derive(Debug)]
pub struct IdleTimeoutBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> IdleTimeoutBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            timeout,
            deadline: None,
        }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl<B> http_body::Body for IdleTimeoutBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(deadline) = &mut this.deadline {
                    deadline.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `Content-Length` a request declares, if it is a number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
