//! Registry events: every push, pull, HEAD and delete is announced, from
//! [`Registry`](crate::Registry) alone, with the [`RequestContext`] of the
//! request that caused it, so that analytics and cache invalidation can
//! follow what happens without touching the request path.
//!
//! - `context.rs`: who asked (client address, subject, user agent, whether
//!   the read was the process's own).
//! - `bus.rs`: where events go: a broadcast channel for in-process
//!   subscribers plus [`EventSink`]s (a database writer's bounded queue);
//!   neither ever blocks a request, and every event lost to a slow one is
//!   counted ([`EventBus::dropped`]).
//! - `transfer.rs`: the body stream of a blob GET, which announces the pull
//!   as its last byte goes out, or when it fails or is dropped before,
//!   with the bytes actually sent.
//! - `media_types.rs`: the media type manifests give each blob, so that a
//!   blob pull can say it was a layer.
//!
//! An event is plain serde data, so a sink that POSTs it to a webhook is a
//! sink like any other; the client address is left out of that form (see
//! [`RequestContext`]).

mod bus;
mod context;
mod media_types;
mod transfer;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use bus::{EventBus, EventSink, Offer, QueueSink};
pub use context::{AuthenticatedSubject, RequestContext};
pub(crate) use media_types::BlobMediaTypes;
pub use transfer::Counted;
pub(crate) use transfer::announced;

use crate::reference::{Digest, RepoName};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A blob or manifest was stored, or a blob mounted.
    Push,
    /// A blob or manifest was served (GET). For a blob, the event comes
    /// when the body has ended or was abandoned, with its [`Transfer`].
    Pull,
    /// A blob or manifest was looked up with HEAD: nothing was sent.
    /// Clients do this before pushing and before pulling, so it is kept
    /// apart from [`Action::Pull`]; analytics ignores it.
    Head,
    /// A blob, manifest or tag was deleted.
    Delete,
}

/// Whether the event is about a blob or a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A layer or config blob.
    Blob,
    /// A manifest or index.
    Manifest,
}

/// One registry event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// To what kind of object.
    pub target: Target,
    /// The repository it happened in.
    pub repository: String,
    /// The object's digest (`sha256:…`). Empty for a tag-only delete.
    pub digest: String,
    /// The tag involved, if any.
    pub tag: Option<String>,
    /// The object's media type, when known. For a blob, the one the
    /// manifests this process has stored or served give it (a layer's
    /// `application/vnd.oci.image.layer.v1.tar+gzip`, say); `None` when no
    /// such manifest was seen since start.
    pub media_type: Option<String>,
    /// The object's size in bytes, when known (the whole blob, also for a
    /// ranged read).
    pub size: Option<u64>,
    /// When it happened (for a blob pull: when the body ended).
    pub timestamp: DateTime<Utc>,
    /// Who asked.
    pub context: RequestContext,
    /// For a blob pull: what was actually sent.
    pub transfer: Option<Transfer>,
}

impl Event {
    /// An event with what every event has, timed now; the optional facts
    /// are `None`.
    pub fn new(
        action: Action,
        target: Target,
        repo: &RepoName,
        digest: &Digest,
        context: &RequestContext,
    ) -> Self {
        Event {
            action,
            target,
            repository: repo.to_string(),
            digest: digest.to_string(),
            tag: None,
            media_type: None,
            size: None,
            timestamp: Utc::now(),
            context: context.clone(),
            transfer: None,
        }
    }

    /// Whether this event completes a download by a client: a blob pull,
    /// not the process's own read, that sent every byte asked for up to
    /// the blob's end. A download resumed with `Range` (or fetched in
    /// ranges) thus completes once, with its last range; a range that
    /// stops short of the end (a probe of the first bytes) completes none.
    pub fn is_completed_download(&self) -> bool {
        let reaches_end = |t: &Transfer| match (t.range, self.size) {
            (None, _) => true,
            (Some(range), Some(size)) => range.end == size,
            (Some(_), None) => false,
        };
        self.action == Action::Pull
            && self.target == Target::Blob
            && !self.context.internal
            && self
                .transfer
                .as_ref()
                .is_some_and(|t| t.completed && reaches_end(t))
    }
}

/// What a blob pull sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Bytes of the body handed to the connection.
    pub bytes_sent: u64,
    /// Whether every byte asked for (the whole blob, or the whole range)
    /// was handed to the connection. False when the client went away, or
    /// storage failed, part-way. (Bytes handed over may still sit in the
    /// kernel's send buffer when a client vanishes; no server can see that.)
    pub completed: bool,
    /// The range asked for with `Range`, when the answer was a 206 (or,
    /// for a redirect, when the request carried one).
    pub range: Option<ByteRange>,
    /// The answer was a 307 to a presigned URL of the bucket: the bytes go
    /// from the bucket, which the registry does not see. `completed` then
    /// says the whole blob (or range) was handed out, not that it arrived,
    /// and `bytes_sent` is 0.
    pub redirected: bool,
}

/// A byte range of a blob: `start` inclusive, `end` exclusive (so the
/// header `bytes=0-9` is `{start: 0, end: 10}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<std::ops::Range<u64>> for ByteRange {
    fn from(r: std::ops::Range<u64>) -> Self {
        ByteRange {
            start: r.start,
            end: r.end,
        }
    }
}
