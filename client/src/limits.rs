//! The installer's budgets: how long it waits on the network and how much
//! it accepts from it. A hostile or broken catalog or registry can slow an
//! install down to these limits, never past them.

use std::time::Duration;

/// Network timeouts, for the catalog and the registry alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// The longest silence while reading an answer: a server that stops
    /// sending after the headers fails after this long.
    pub read_idle: Duration,
    /// One whole download, from the request to its last byte. A catalog
    /// answer (JSON) gets at most [`MAX_ANSWER_TIME`] of it.
    pub total: Duration,
}

impl Timeouts {
    /// The defaults: 10 s to connect, 30 s of silence, 1 hour in all.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        read_idle: Duration::from_secs(30),
        total: Duration::from_secs(3600),
    };

    /// The time allowed for one small answer (JSON, a manifest).
    pub(crate) fn answer(&self) -> Duration {
        self.total.min(MAX_ANSWER_TIME)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// The longest a catalog answer or a registry manifest may take.
pub const MAX_ANSWER_TIME: Duration = Duration::from_secs(60);

/// The largest catalog answer (JSON) or registry manifest read. The
/// biggest real one, a version list, is a few KiB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The largest build the installer downloads: the size the catalog or
/// the registry announces is refused above this before any byte is
/// fetched. Workers are single binaries; large GPU builds fit.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 8 << 30;

/// The largest worker metadata document read from the registry.
pub(crate) const MAX_METADATA_BYTES: u64 = 1 << 20;
