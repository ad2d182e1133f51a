//! Command-line flags shared by `rbee-registry serve` and `rbee-catalog
//! serve`, declared once and flattened into both. Their environment
//! variables are named per binary by `rbee_config`
//! (`RBEE_REGISTRY_MAX_CONNECTIONS`, `RBEE_CATALOG_MAX_CONNECTIONS`).

use std::time::Duration;

use crate::limits::ServerLimits;

/// The flags of [`ServerLimits`].
#[derive(Debug, Clone, clap::Args)]
pub struct ServerLimitArgs {
    /// Connections served at once; more wait in the listen queue.
    #[arg(long, env, default_value_t = ServerLimits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers before the
    /// connection is closed (also the keep-alive idle time).
    #[arg(long, env, default_value_t = ServerLimits::default().header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a request body may send nothing before it is aborted.
    #[arg(long, env, default_value_t = ServerLimits::default().body_idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout: u64,
    /// MiB that request bodies read into memory (manifests, webhook
    /// payloads) may hold in total; past it such requests get 503 with
    /// Retry-After. At least 4 (one manifest).
    #[arg(long, env, default_value_t = (ServerLimits::default().buffered_body_bytes >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(4..))]
    pub body_memory_mib: u32,
    /// Seconds open requests get to finish after SIGTERM or Ctrl-C before
    /// they are dropped.
    #[arg(long, env, default_value_t = ServerLimits::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
}

impl ServerLimitArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections as usize,
            header_read_timeout: Duration::from_secs(self.header_timeout),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout),
            buffered_body_bytes: (self.body_memory_mib as usize) << 20,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        }
    }
}
