//! The flags that locate the catalog's database, shared by the commands
//! that work on it directly (`license`, `publisher-key`, `audit`,
//! `admin-key`): the same defaults as `serve`, so that on the server the
//! commands need no flags at all.

use std::path::PathBuf;

use anyhow::Context;
use rbee_catalog::CatalogConfig;
use rbee_store::Store;

/// Where the database is.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// The catalog's data dir (its default database and admin key file).
    #[arg(
        long,
        env = "RBEE_CATALOG_DATA_DIR",
        default_value = "rbee-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The catalog's database: sqlite://PATH or postgres://...; default:
    /// SQLite in <data dir>/catalog.db.
    #[arg(
        long,
        env = "RBEE_CATALOG_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// Print JSON (the admin API's shapes) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl DatabaseArgs {
    /// Opens the database (running its migrations, as `serve` does).
    pub async fn open(&self) -> anyhow::Result<Store> {
        let mut config = CatalogConfig::new(&self.data_dir);
        config.database_url = self.database_url.clone();
        rbee_catalog::admin::open_store(&config)
            .await
            .context("opening the catalog's database")
    }

    /// The output format asked for.
    pub fn format(&self) -> rbee_catalog::admin::Format {
        if self.json {
            rbee_catalog::admin::Format::Json
        } else {
            rbee_catalog::admin::Format::Text
        }
    }
}
