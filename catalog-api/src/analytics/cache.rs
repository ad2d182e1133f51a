//! The stats routes' answers, kept in memory for a while (1 hour by
//! default): the figures move slowly, and a page reloaded by many people
//! then costs no query. Keyed by route and parameters; bounded, since a
//! worker id in the path is the caller's choice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most answers kept; past it the cache starts over.
const MAX_ENTRIES: usize = 1024;

/// Answers by key, each with when it was made.
type Entries = HashMap<String, (Instant, Arc<Vec<u8>>)>;

/// Serialised answers by key, each with when it was made.
#[derive(Debug)]
pub struct StatsCache {
    ttl: Duration,
    // A std mutex: never held across an await.
    entries: Mutex<Entries>,
}

impl StatsCache {
    /// A cache whose answers live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        StatsCache {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// How long answers live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The answer of `key`: kept, or made by `make` (and kept). Two
    /// callers missing at once may both make it; the figures are the same.
    pub async fn get_or_make<E, F>(&self, key: String, make: F) -> Result<Arc<Vec<u8>>, E>
    where
        F: Future<Output = Result<Vec<u8>, E>>,
    {
        if let Some((at, body)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(body.clone());
        }
        let body = Arc::new(make.await?);
        if !self.ttl.is_zero() {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), body.clone()));
        }
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
