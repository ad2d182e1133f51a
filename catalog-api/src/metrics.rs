//! Prometheus metrics of one catalog server: requests by route template,
//! method and status class, request durations by route, how the upstream
//! cache answered, releases left out of lists, and the embedded registry's
//! lost events.
//!
//! Each server owns its own [`Registry`] instead of a process-wide recorder,
//! because several servers run in one process in the tests (and could in an
//! embedding program) and each must count only its own traffic.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

use crate::domain::observe::{CacheOutcome, CatalogObserver, SkipReason};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of requests no route matched. Raw paths are never used
/// as labels: a scanner asking for a million paths would otherwise create a
/// million time series.
const UNMATCHED: &str = "unmatched";

/// Labels of `rbee_catalog_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template, e.g. `/v1/workers/{id}`, or `unmatched`.
    pub route: String,
    /// The request method ([`method_label`]).
    pub method: &'static str,
    /// The response status class ([`status_class`]).
    pub status: &'static str,
}

/// Labels of `rbee_catalog_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template, e.g. `/v1/workers/{id}`, or `unmatched`.
    pub route: String,
}

/// A request method as a label value. Methods outside this list become
/// `OTHER`, since HTTP lets clients invent any number of them.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A response status as a label value: the class rather than the code
/// keeps the number of series small, and the class is what alerts use.
pub fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn cache_label(outcome: CacheOutcome) -> CacheLabels {
    CacheLabels {
        outcome: match outcome {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
        },
    }
}

/// Labels of `rbee_catalog_cache_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit`, `miss` or `stale` ([`CacheOutcome`]).
    pub outcome: &'static str,
}

fn skip_label(reason: SkipReason) -> SkipLabels {
    SkipLabels {
        reason: match reason {
            SkipReason::Unreadable => "unreadable",
            SkipReason::Unavailable => "unavailable",
            SkipReason::Timeout => "timeout",
            SkipReason::OverLimit => "over_limit",
        },
    }
}

/// Labels of `rbee_catalog_list_skipped_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// `unreadable`, `unavailable`, `timeout` or `over_limit` ([`SkipReason`]).
    pub reason: &'static str,
}

/// The counters the catalog reports its cache lookups and left-out
/// releases into: its [`CatalogObserver`].
#[derive(Debug, Default)]
pub struct CacheMetrics {
    lookups: Family<CacheLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
}

impl CatalogObserver for CacheMetrics {
    fn cache_lookup(&self, outcome: CacheOutcome) {
        self.lookups.get_or_create(&cache_label(outcome)).inc();
    }

    fn list_skipped(&self, reason: SkipReason, n: u64) {
        self.skipped.get_or_create(&skip_label(reason)).inc_by(n);
    }
}

/// Reads the embedded registry's count of lost events at each scrape
/// (the registry keeps the count itself: it has no metrics of its own).
#[derive(Debug)]
struct RegistryEvents(rbee_registry::EventBus);

impl Collector for RegistryEvents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = ConstCounter::new(self.0.dropped());
        let metric = encoder.encode_descriptor(
            "registry_events_dropped",
            "Events of the embedded registry lost because a subscriber or sink (cache invalidation, analytics) could not keep up; downloads are never slowed instead",
            None,
            dropped.metric_type(),
        )?;
        dropped.encode(metric)
    }
}

/// Reads the analytics counters at each scrape.
#[derive(Debug)]
struct AnalyticsEvents(Arc<crate::analytics::Analytics>);

impl Collector for AnalyticsEvents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.counters();
        for (name, help, value) in [
            (
                "analytics_events_recorded",
                "Downloads and incomplete transfers written to the database",
                c.recorded(),
            ),
            (
                "analytics_events_dropped",
                "Transfers not recorded: the analytics queue was full (the database slow, locked or down) or the process stopped before they could be written; downloads are never slowed instead",
                c.dropped(),
            ),
            (
                "analytics_write_failures",
                "Failed batch writes of download events (each batch is retried)",
                c.write_failures(),
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let buffered =
            ConstGauge::new(i64::try_from(self.0.queued() + c.retrying()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "analytics_events_buffered",
            "Transfers held in memory, queued or waiting for the database to take them",
            None,
            buffered.metric_type(),
        )?;
        buffered.encode(metric)
    }
}

/// Request durations are recorded in buckets from 0.5 ms to about 4 s:
/// cached answers take well under a millisecond, upstream fetches tens to
/// hundreds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The metrics of one catalog server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    cache: Arc<CacheMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `rbee_catalog` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rbee_catalog");
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status class",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response headers, by route template",
            Unit::Seconds,
            durations.clone(),
        );
        let cache = Arc::new(CacheMetrics::default());
        // Every outcome is present from the start, so that dashboards and
        // rate() see a zero rather than a missing series.
        for outcome in CacheOutcome::ALL {
            let _ = cache.lookups.get_or_create(&cache_label(outcome));
        }
        registry.register(
            "cache_lookups",
            "Upstream cache lookups by outcome: hit (fresh), miss (asked the registry), stale (served old data because the registry failed)",
            cache.lookups.clone(),
        );
        for reason in SkipReason::ALL {
            let _ = cache.skipped.get_or_create(&skip_label(reason));
        }
        registry.register(
            "list_skipped",
            "Releases left out of a worker or version list while the rest was served, by reason: unreadable (gone or invalid upstream), unavailable (registry failed, nothing cached), timeout (list deadline), over_limit (list cap)",
            cache.skipped.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            cache,
        }
    }

    /// Exports the count of `events`' lost events, as
    /// `rbee_catalog_registry_events_dropped_total`.
    pub fn export_registry_events(&mut self, events: rbee_registry::EventBus) {
        self.registry
            .register_collector(Box::new(RegistryEvents(events)));
    }

    /// Exports the download analytics' counters
    /// (`rbee_catalog_analytics_events_recorded_total`, `..._dropped_total`,
    /// `rbee_catalog_analytics_write_failures_total`,
    /// `rbee_catalog_analytics_events_buffered`).
    pub fn export_analytics(&mut self, analytics: Arc<crate::analytics::Analytics>) {
        self.registry
            .register_collector(Box::new(AnalyticsEvents(analytics)));
    }

    /// Counts one answered request.
    pub fn record_request(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        self.requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method_label(method),
                status: status_class(status),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The counters the catalog reports into (its observer).
    pub fn cache(&self) -> &Arc<CacheMetrics> {
        &self.cache
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware recording every request under its route template. It must be
/// added with `Router::layer`, which runs it after routing, so that
/// [`MatchedPath`] is known.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    metrics.record_request(
        &route,
        &method,
        resp.status(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_template_and_status_class() {
        let m = Metrics::new();
        m.record_request("/workers/{id}", &Method::GET, StatusCode::NOT_FOUND, 0.001);
        m.record_request("/workers/{id}", &Method::GET, StatusCode::OK, 0.001);
        m.record_request("/workers/{id}", &Method::GET, StatusCode::OK, 0.001);
        m.record_request(
            UNMATCHED,
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::NOT_FOUND,
            0.001,
        );
        let text = m.encode();
        assert!(text.contains(
            r#"rbee_catalog_http_requests_total{route="/workers/{id}",method="GET",status="2xx"} 2"#
        ));
        assert!(text.contains(
            r#"rbee_catalog_http_requests_total{route="/workers/{id}",method="GET",status="4xx"} 1"#
        ));
        assert!(text.contains(
            r#"rbee_catalog_http_requests_total{route="unmatched",method="OTHER",status="4xx"} 1"#
        ));
        assert!(text.contains(
            r#"rbee_catalog_http_request_duration_seconds_count{route="/workers/{id}"} 3"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn cache_lookups_and_skipped_releases_are_counted() {
        let m = Metrics::new();
        m.cache().cache_lookup(CacheOutcome::Miss);
        m.cache().cache_lookup(CacheOutcome::Hit);
        m.cache().cache_lookup(CacheOutcome::Hit);
        let text = m.encode();
        assert!(text.contains(r#"rbee_catalog_cache_lookups_total{outcome="hit"} 2"#));
        assert!(text.contains(r#"rbee_catalog_cache_lookups_total{outcome="miss"} 1"#));
        assert!(text.contains(r#"rbee_catalog_cache_lookups_total{outcome="stale"} 0"#));
        m.cache().list_skipped(SkipReason::Unreadable, 2);
        let text = m.encode();
        assert!(text.contains(r#"rbee_catalog_list_skipped_total{reason="unreadable"} 2"#));
        assert!(text.contains(r#"rbee_catalog_list_skipped_total{reason="timeout"} 0"#));
    }

    #[test]
    fn lost_registry_events_are_exported() {
        let events = rbee_registry::EventBus::new(1);
        let (sink, _queue) = rbee_registry::QueueSink::new(1);
        events.add_sink(Arc::new(sink));
        let mut m = Metrics::new();
        m.export_registry_events(events.clone());
        assert!(
            m.encode()
                .contains("rbee_catalog_registry_events_dropped_total 0\n")
        );
        let event = rbee_registry::Event::new(
            rbee_registry::Action::Push,
            rbee_registry::Target::Blob,
            &rbee_registry::reference::RepoName::parse("rbee/w").unwrap(),
            &rbee_registry::reference::Digest::parse(&format!("sha256:{}", "0".repeat(64)))
                .unwrap(),
            &rbee_registry::RequestContext::default(),
        );
        for _ in 0..3 {
            events.publish(event.clone());
        }
        assert!(
            m.encode()
                .contains("rbee_catalog_registry_events_dropped_total 2\n"),
            "{}",
            m.encode()
        );
    }
}
