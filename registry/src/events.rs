//! Registry events: every push, pull and delete is announced on an
//! in-process channel so that analytics and cache invalidation can
//! subscribe. The event is plain serde data, so a sink that POSTs it to a
//! webhook is a subscriber like any other.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A blob or manifest was stored, or a blob mounted.
    Push,
    /// A blob or manifest was served (GET, not HEAD).
    Pull,
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
    /// The object's media type, when known.
    pub media_type: Option<String>,
    /// The object's size in bytes, when known.
    pub size: Option<u64>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

/// The channel events are published on. Slow subscribers lose the oldest
/// events (and are told so by `RecvError::Lagged`) rather than slowing
/// down the registry.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        EventBus {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// A new subscriber, which sees every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Publishes an event; with no subscriber it is dropped.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}
