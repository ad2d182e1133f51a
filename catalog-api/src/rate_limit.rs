//! Per-client-address rate limits of the routes that check secrets or
//! hand out downloads: `/token`, `POST /v1/licenses/verify`, the
//! `/v1/.../download` and `/v1/.../blob` routes and `/admin`. One token
//! bucket per client address, shared by all of them (`tower_governor`);
//! past it, 429 with `Retry-After` and the catalog's JSON error body.
//!
//! The address is the TCP peer's: behind a reverse proxy every client
//! shares the proxy's address, so raise the limits there (or rate-limit
//! in the proxy). `X-Forwarded-For` is not read, because any client can
//! write it. IPv6 clients are limited per /64, the block one host
//! usually holds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse as _;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::error::ApiError;

/// The limits of one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second refilled into the bucket; 0 turns limiting off.
    pub per_second: u32,
    /// Requests a client may make at once before it is slowed down.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 20 requests per second per address, bursts of 100: far above what
    /// an installer or rbee-hive asks, far below what guessing needs.
    fn default() -> Self {
        RateLimit {
            per_second: 20,
            burst: 100,
        }
    }
}

/// The client's address from the connection, as `serve_router` records
/// it. A request without one (a router called in process, as in tests)
/// shares the bucket of the unspecified address instead of failing.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress;

impl KeyExtractor for PeerAddress {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        })
    }
}

/// One set of buckets, shared by every route it wraps.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: Option<Arc<GovernorConfig<PeerAddress, NoOpMiddleware>>>,
}

impl RateLimiter {
    /// Buckets for `limit`; none when `limit.per_second` or `limit.burst`
    /// is 0.
    pub fn new(limit: RateLimit) -> Self {
        let config = (limit.per_second > 0 && limit.burst > 0)
            .then(|| {
                GovernorConfigBuilder::default()
                    .key_extractor(PeerAddress)
                    .period(Duration::from_secs(1) / limit.per_second)
                    .burst_size(limit.burst)
                    .finish()
            })
            .flatten()
            .map(Arc::new);
        RateLimiter { config }
    }

    /// Wraps `router` (every route in it) in the shared buckets.
    pub fn wrap<S: Clone + Send + Sync + 'static>(
        &self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        match &self.config {
            Some(config) => {
                router.route_layer(GovernorLayer::new(config.clone()).error_handler(|e| {
                    match e {
                        GovernorError::TooManyRequests { wait_time, .. } => {
                            ApiError::TooManyRequests {
                                retry_after: wait_time.max(1),
                            }
                            .into_response()
                        }
                        // `PeerAddress` never fails; kept total for safety.
                        _ => ApiError::TooManyRequests { retry_after: 1 }.into_response(),
                    }
                }))
            }
            None => router,
        }
    }

    /// Forgets the buckets of addresses that are full again, every
    /// `every`, so that the table does not grow with every address ever
    /// seen. Stops when the returned handle is aborted.
    pub fn spawn_cleanup(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let limiter = self.config.as_ref()?.limiter().clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: &str) -> IpAddr {
        let mut req = Request::new(());
        if !addr.is_empty() {
            req.extensions_mut()
                .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        }
        PeerAddress.extract(&req).unwrap()
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        assert_eq!(
            key("[2001:db8:1:2:aaaa::1]:1"),
            key("[2001:db8:1:2:bbbb::2]:2")
        );
        assert_ne!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
        assert_eq!(key("[::ffff:192.0.2.1]:1"), key("192.0.2.1:9"));
        assert_ne!(key("192.0.2.1:1"), key("192.0.2.2:1"));
        assert_eq!(key(""), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn zero_turns_limiting_off() {
        assert!(
            RateLimiter::new(RateLimit {
                per_second: 0,
                burst: 10
            })
            .config
            .is_none()
        );
        assert!(RateLimiter::new(RateLimit::default()).config.is_some());
    }
}
