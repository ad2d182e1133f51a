//! `rbee-catalog sync`: rebuilds the catalog's view of the registry in
//! its database (workers, versions, builds, yanks), rereading every
//! release the catalog index lists. Listings are served from that view;
//! `serve` keeps it fresh from push events and builds it on its own when
//! it starts on an empty database, so this is for repairs.

use std::time::Duration;

use anyhow::Context;
use rbee_catalog::CatalogConfig;

use super::database::DatabaseArgs;

/// Flags of `sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Read this registry instead of the embedded one in the data dir
    /// (which `serve` holds locked while it runs).
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_URL")]
    registry_url: Option<String>,
    /// User name for the external registry.
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_USERNAME")]
    registry_username: Option<String>,
    /// Password or token for the external registry.
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_PASSWORD", hide_env_values = true)]
    registry_password: Option<String>,
    /// Repository of the catalog index artifact.
    #[arg(long, env = "RBEE_CATALOG_REPOSITORY", default_value = "rbee/catalog")]
    catalog_repository: String,
    /// Seconds one read from the registry may take.
    #[arg(long, env = "RBEE_CATALOG_UPSTREAM_TIMEOUT", default_value_t = 10)]
    upstream_timeout: u64,
}

/// Rebuilds the view and prints what it read.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = CatalogConfig::new(&args.database.data_dir);
    config.database_url = args.database.database_url.clone();
    config.registry_url = args.registry_url;
    config.registry_credentials =
        super::serve::registry_credentials(args.registry_username, args.registry_password)?;
    config.catalog_repository = args.catalog_repository;
    config.upstream.deadline = Duration::from_secs(args.upstream_timeout.max(1));
    let report = rbee_catalog::sync::sync_view(&config)
        .await
        .context("rebuilding the catalog view")?;
    if args.database.json {
        println!(
            r#"{{"workers":{},"releases":{},"left_out":{}}}"#,
            report.workers, report.releases, report.left_out
        );
    } else {
        println!(
            "synced {} workers, {} releases ({} left out: unreadable or incomplete)",
            report.workers, report.releases, report.left_out
        );
    }
    Ok(())
}
