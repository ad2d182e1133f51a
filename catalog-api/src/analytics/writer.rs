//! The batch writer: one task that drains the queue, turns each transfer
//! into a [`NewDownload`] and writes batches. While the database is slow,
//! locked or down it keeps its batch and retries with a growing pause;
//! meanwhile the queue fills and further transfers are dropped and
//! counted, so the request path never notices. Once the database answers
//! again, the held batch is written and the queue drains.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use rbee_store::analytics::NewDownload;
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{Analytics, Observed, Subject};
use crate::domain::catalog::Catalog;
use crate::state::AppState;

/// The first pause after a failed write, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often old raw events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long a layer's build (or that it is none) is remembered.
const RESOLVED_TTL: Duration = Duration::from_secs(300);
const UNRESOLVED_TTL: Duration = Duration::from_secs(5);
const RESOLVED_MAX: usize = 10_000;

/// A build, as stored: worker id, version, platform name.
type Build = (String, String, String);

/// Starts the writer of `state`'s analytics (once; later calls do
/// nothing).
pub fn spawn_writer(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let receiver = state
        .analytics
        .receiver
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()?;
    Some(tokio::spawn(async move {
        Writer {
            state: state.clone(),
            secret: None,
            resolved: HashMap::new(),
        }
        .run(receiver)
        .await
    }))
}

struct Writer {
    state: Arc<AppState>,
    /// The day's HMAC secret, read from the store once a day.
    secret: Option<(NaiveDate, Vec<u8>)>,
    /// `(repository, digest)` → its build, if it is one.
    resolved: HashMap<(String, String), (Instant, Option<Build>)>,
}

impl Writer {
    fn analytics(&self) -> &Analytics {
        &self.state.analytics
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<Observed>) {
        let stop = self.analytics().stop.clone();
        let batch_size = self.analytics().config.batch_size.max(1);
        let mut next_prune = Instant::now();
        let mut batch = Vec::with_capacity(batch_size);
        loop {
            if Instant::now() >= next_prune {
                self.prune().await;
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            let first = tokio::select! {
                first = receiver.recv() => first,
                () = stop.cancelled() => None,
                () = tokio::time::sleep_until(next_prune.into()) => continue,
            };
            let Some(first) = first else {
                // Stopping: what is queued gets one attempt.
                while let Ok(o) = receiver.try_recv() {
                    batch.push(o);
                }
                let rows = self.rows(std::mem::take(&mut batch)).await;
                if !rows.is_empty() {
                    match self.state.store.record_downloads(&rows).await {
                        Ok(()) => self.recorded(rows.len()),
                        Err(_) => self.lost(rows.len()),
                    }
                }
                return;
            };
            batch.push(first);
            while batch.len() < batch_size {
                match receiver.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let rows = self.rows(std::mem::take(&mut batch)).await;
            if !self.write(rows).await {
                return;
            }
        }
    }

    /// Writes `rows`, retrying until the database takes them; false when
    /// told to stop first (the rows are then counted as dropped).
    async fn write(&mut self, rows: Vec<NewDownload>) -> bool {
        if rows.is_empty() {
            return true;
        }
        let counters = self.analytics().counters.clone();
        let stop = self.analytics().stop.clone();
        let mut pause = RETRY_FIRST;
        let mut failed = false;
        // Held in memory until written (the `buffered` gauge).
        counters
            .retrying
            .store(rows.len() as u64, Ordering::Relaxed);
        loop {
            match self.state.store.record_downloads(&rows).await {
                Ok(()) => {
                    counters.retrying.store(0, Ordering::Relaxed);
                    if failed {
                        tracing::info!(events = rows.len(), "analytics: the database is back");
                    }
                    self.recorded(rows.len());
                    return true;
                }
                Err(e) => {
                    counters.write_failures.fetch_add(1, Ordering::Relaxed);
                    if !failed {
                        tracing::warn!(error = %crate::server::error_chain(&e), events = rows.len(),
                            "analytics: cannot write download events; holding them and retrying");
                        failed = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => {
                            counters.retrying.store(0, Ordering::Relaxed);
                            self.lost(rows.len());
                            return false;
                        }
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn recorded(&self, n: usize) {
        let counters = &self.analytics().counters;
        let total = counters.recorded.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.analytics().recorded.send_replace(total);
    }

    fn lost(&self, n: usize) {
        self.analytics()
            .counters
            .dropped
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The rows of a batch: layers mapped to builds (what is no worker
    /// build is left out), addresses hashed.
    async fn rows(&mut self, batch: Vec<Observed>) -> Vec<NewDownload> {
        let mut rows = Vec::with_capacity(batch.len());
        for o in batch {
            let build = match o.subject {
                Subject::Build {
                    worker,
                    version,
                    platform,
                } => (worker, version, platform),
                Subject::Layer { repository, digest } => {
                    match self.resolve(&repository, &digest).await {
                        Some(build) => build,
                        None => continue,
                    }
                }
            };
            let client_hash = match o.client_addr {
                Some(addr) => self.hash(addr, o.at.date_naive()).await,
                None => None,
            };
            rows.push(NewDownload {
                at: o.at,
                worker: build.0,
                version: build.1,
                platform: build.2,
                source: o.source.as_str().to_owned(),
                client_family: o.family.as_str().to_owned(),
                client_hash,
                license_id: o.license_id,
                complete: o.complete,
                resumed: o.resumed,
            });
        }
        rows
    }

    /// HMAC-SHA256 of the address under `day`'s secret (hex, 128 bits).
    /// `None` when the secret cannot be read (the download is still
    /// counted, not as a unique client).
    async fn hash(&mut self, addr: IpAddr, day: NaiveDate) -> Option<String> {
        if self.secret.as_ref().is_none_or(|(d, _)| *d != day) {
            match self.state.store.analytics_secret(day).await {
                Ok(secret) => self.secret = Some((day, secret)),
                Err(e) => {
                    tracing::debug!(error = %e, "analytics: no secret for the day");
                    return None;
                }
            }
        }
        let (_, secret) = self.secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(addr.to_string().as_bytes());
        Some(hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    /// The build whose layer `digest` is in `repository`, through the
    /// catalog (remembered for a few minutes).
    async fn resolve(&mut self, repository: &str, digest: &str) -> Option<Build> {
        let key = (repository.to_owned(), digest.to_owned());
        if let Some((at, build)) = self.resolved.get(&key) {
            let ttl = if build.is_some() {
                RESOLVED_TTL
            } else {
                UNRESOLVED_TTL
            };
            if at.elapsed() < ttl {
                return build.clone();
            }
        }
        let Ok(build) = find_build(&self.state.catalog, repository, digest).await else {
            // The catalog could not say (registry or view not ready): not
            // remembered, the next pull asks again.
            return None;
        };
        if self.resolved.len() >= RESOLVED_MAX {
            self.resolved.clear();
        }
        self.resolved.insert(key, (Instant::now(), build.clone()));
        build
    }

    /// Deletes raw events past the retention and client hashes past a
    /// day (only needed to count each client once on its day).
    async fn prune(&self) {
        let today = Utc::now().date_naive();
        let retention = u64::from(self.analytics().config.retention_days.max(1));
        let events_before = today
            .checked_sub_days(Days::new(retention))
            .unwrap_or(today);
        let clients_before = today.checked_sub_days(Days::new(1)).unwrap_or(today);
        match self
            .state
            .store
            .prune_downloads(events_before, clients_before)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "analytics: pruned old download events"),
            Err(e) => tracing::debug!(error = %e, "analytics: pruning failed; next hour again"),
        }
    }
}

/// The build of worker `<namespace>/<id>` whose layer is `digest`;
/// `Err` when the catalog could not read the worker.
async fn find_build(
    catalog: &Catalog,
    repository: &str,
    digest: &str,
) -> Result<Option<Build>, ()> {
    let Some((_, id)) = repository.rsplit_once('/') else {
        return Ok(None);
    };
    let ((entry, releases), _) = catalog.releases(id).await.map_err(|_| ())?;
    if entry.repository != repository {
        return Ok(None);
    }
    Ok(releases.iter().find_map(|release| {
        release
            .builds
            .iter()
            .find(|b| b.layer_digest == digest)
            .map(|b| {
                (
                    id.to_owned(),
                    release.version.to_string(),
                    b.platform.name().to_owned(),
                )
            })
    }))
}
