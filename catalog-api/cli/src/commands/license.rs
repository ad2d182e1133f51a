//! `rbee-catalog license create|list|show|revoke`: licenses, straight in
//! the catalog's database (the same as `/admin/licenses`; audited as `cli`).

use chrono::{DateTime, Utc};
use rbee_catalog::admin;
use rbee_store::{Grant, NewLicense};

use super::database::DatabaseArgs;

/// `license` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

/// What to do with licenses.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a license and print its key (shown only this once).
    Create {
        /// Who it is for (customer name or account id).
        #[arg(long)]
        owner: String,
        /// What it unlocks: worker:ID or namespace:NAME (repeatable).
        #[arg(long = "grant", required = true)]
        grants: Vec<Grant>,
        /// When it ends (RFC 3339, e.g. 2027-01-31T00:00:00Z); default: never.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// After expiry, keep unlocking versions published before it.
        #[arg(long)]
        perpetual_fallback: bool,
    },
    /// List every license.
    List,
    /// Show one license.
    Show {
        /// The license id (lic_...).
        id: String,
    },
    /// Revoke a license: its key stops working at once.
    Revoke {
        /// The license id (lic_...).
        id: String,
    },
}

/// Runs the subcommand and prints its result.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.database.open().await?;
    let format = args.database.format();
    let output = match args.command {
        Command::Create {
            owner,
            grants,
            expires_at,
            perpetual_fallback,
        } => {
            let new = NewLicense {
                owner,
                grants,
                expires_at,
                perpetual_fallback,
            };
            admin::license_create(&store, new, format).await
        }
        Command::List => admin::license_list(&store, format).await,
        Command::Show { id } => admin::license_show(&store, &id, format).await,
        Command::Revoke { id } => admin::license_revoke(&store, &id, format).await,
    };
    store.close().await;
    print!("{}", output?);
    Ok(())
}
