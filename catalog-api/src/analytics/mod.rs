//! Recording downloads (see `docs/analytics.md`): what counts as one, the
//! bounded queue between the request path and the database, and the batch
//! writer.
//!
//! - `observed.rs`: a finished transfer as seen on the request path (a
//!   registry blob pull, or the `/v1/.../blob` route), whether it counts,
//!   complete or not, and the client family of a user agent.
//! - `sink.rs`: the registry [`EventSink`](rbee_registry::EventSink) and
//!   the `/v1` blob body stream that hand transfers to the queue, never
//!   waiting: a full queue drops and counts.
//! - `writer.rs`: the task that drains the queue in batches, maps layer
//!   digests to worker builds through the catalog, hashes client addresses
//!   under the day's secret, writes, retries while the database is down,
//!   and prunes old events.
//! - `cache.rs`: the stats routes' answer cache (1 hour by default).
//! - `text.rs`: the stats as text (`rbee-catalog stats`).
//!
//! **Invariants:** nothing here waits on the request path; a raw client
//! address lives only in the queue's memory until it is hashed, and is
//! never logged or stored; every event lost is counted on `/metrics`.

mod cache;
mod observed;
mod sink;
pub mod text;
mod writer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rbee_registry::RequestContext;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use cache::StatsCache;
pub use observed::{ClientFamily, Observed, Source, Subject};
pub use sink::{ClientContext, RegistrySink, handed_out, recorded};
pub use writer::spawn_writer;

/// How downloads are recorded and stats served.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// Whether downloads are recorded at all (the stats routes still
    /// answer, from what was recorded before).
    pub enabled: bool,
    /// Transfers the queue holds before it drops (and counts) new ones.
    pub queue_capacity: usize,
    /// The most events written in one transaction.
    pub batch_size: usize,
    /// Days raw events are kept before they are pruned (the daily rollups
    /// are kept).
    pub retention_days: u32,
    /// How long a stats answer is served from memory.
    pub stats_ttl: Duration,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            queue_capacity: 10_000,
            batch_size: 1000,
            retention_days: 90,
            stats_ttl: Duration::from_secs(3600),
        }
    }
}

/// How long a `/v1/.../download` answer marks the registry pull of its
/// layer by the same client as a `/v1` download.
const V1_ANSWER_WINDOW: Duration = Duration::from_secs(600);
/// The most remembered `/v1` answers (a few hundred KiB at most).
const V1_ANSWERS_MAX: usize = 10_000;

/// `(client, family, layer digest)` → when `/v1` answered, and the
/// license it was made under.
type V1Answers = HashMap<(IpAddr, ClientFamily, String), (Instant, Option<String>)>;

/// The counters exported on `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
    write_failures: AtomicU64,
    retrying: AtomicU64,
}

impl Counters {
    /// Downloads and incomplete transfers written to the database.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }
    /// Transfers lost: the queue was full, or the process stopped while
    /// the database could not take them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Failed batch writes (each is retried).
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }
    /// Events taken from the queue and not yet written (a batch being
    /// written, or held while the database is away).
    pub fn retrying(&self) -> u64 {
        self.retrying.load(Ordering::Relaxed)
    }
}

/// The handle the routes and the server share: the queue's sending end,
/// the counters, the stats cache.
#[derive(Debug)]
pub struct Analytics {
    config: AnalyticsConfig,
    queue: mpsc::Sender<Observed>,
    /// Taken by [`spawn_writer`].
    receiver: Mutex<Option<mpsc::Receiver<Observed>>>,
    counters: Arc<Counters>,
    recorded: watch::Sender<u64>,
    stop: CancellationToken,
    /// `(client, layer digest)` of recent `/v1/.../download` answers.
    v1_answers: Mutex<V1Answers>,
    /// The stats routes' answers.
    pub cache: StatsCache,
}

impl Analytics {
    /// A queue of `config.queue_capacity` transfers, not yet drained.
    pub fn new(config: AnalyticsConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        Analytics {
            cache: StatsCache::new(config.stats_ttl),
            config,
            queue,
            receiver: Mutex::new(Some(receiver)),
            counters: Arc::default(),
            recorded: watch::channel(0).0,
            stop: CancellationToken::new(),
            v1_answers: Mutex::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// The counters (`/metrics`).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Transfers waiting in the queue.
    pub fn queued(&self) -> u64 {
        (self.queue.max_capacity() - self.queue.capacity()) as u64
    }

    /// Hands a finished transfer to the writer, without waiting: when the
    /// queue is full it is dropped and counted. Returns whether it was
    /// queued.
    pub fn offer(&self, observed: Observed) -> bool {
        if !self.config.enabled {
            return true;
        }
        match self.queue.try_send(observed) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Notes that `client` (of `family`) was just told where layer
    /// `digest` is by `/v1/.../download`, made under `license` if any, so
    /// that its pull from the registry counts as a `/v1` download.
    pub fn note_v1_answer(&self, client: &RequestContext, digest: &str, license: Option<String>) {
        let Some(addr) = client.client_addr else {
            return;
        };
        if !self.config.enabled {
            return;
        }
        let family = ClientFamily::of(client.user_agent.as_deref());
        let mut answers = self.v1_answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= V1_ANSWERS_MAX {
            answers.retain(|_, (at, _)| at.elapsed() < V1_ANSWER_WINDOW);
            if answers.len() >= V1_ANSWERS_MAX {
                answers.clear();
            }
        }
        answers.insert((addr, family, digest.to_owned()), (Instant::now(), license));
    }

    /// The `/v1` answer the client of `observed` got for `digest` lately,
    /// if any: the license it was made under. A complete download uses
    /// the answer up.
    fn v1_answer(&self, observed: &Observed, digest: &str) -> Option<Option<String>> {
        let key = (observed.client_addr?, observed.family, digest.to_owned());
        let mut answers = self.v1_answers.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = answers
            .get(&key)
            .filter(|(at, _)| at.elapsed() < V1_ANSWER_WINDOW)
            .map(|(_, license)| license.clone());
        if observed.complete {
            answers.remove(&key);
        }
        fresh
    }

    /// The license of the `/v1` answer `client` got for `digest` lately
    /// (the `/v1/.../blob` route's signed URLs name none).
    pub fn v1_answer_license(&self, client: &RequestContext, digest: &str) -> Option<String> {
        let addr = client.client_addr?;
        let family = ClientFamily::of(client.user_agent.as_deref());
        let answers = self.v1_answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(&(addr, family, digest.to_owned()))
            .filter(|(at, _)| at.elapsed() < V1_ANSWER_WINDOW)
            .and_then(|(_, license)| license.clone())
    }

    /// Waits until at least `n` events were written since start, or
    /// `timeout` passed; returns how many were. For tests and benches.
    pub async fn wait_recorded(&self, n: u64, timeout: Duration) -> u64 {
        let mut rx = self.recorded.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|&v| v >= n)).await;
        *rx.borrow()
    }

    /// Stops the writer: it writes what it holds once more, then ends.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}
