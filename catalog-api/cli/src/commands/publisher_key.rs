//! `rbee-catalog publisher-key create|list|revoke`: keys for CI pushes,
//! straight in the catalog's database (the same as
//! `/admin/publisher-keys`; audited as `cli`).

use rbee_catalog::admin;
use rbee_store::{Grant, NewPublisherKey};

use super::database::DatabaseArgs;

/// `publisher-key` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

/// What to do with publisher keys.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a publisher key and print it (shown only this once).
    Create {
        /// Who publishes with it (a team, a CI pipeline).
        #[arg(long)]
        owner: String,
        /// Where it may push: worker:ID or namespace:NAME (repeatable).
        #[arg(long = "grant", required = true)]
        grants: Vec<Grant>,
    },
    /// List every publisher key.
    List,
    /// Revoke a publisher key: it stops working at once.
    Revoke {
        /// The key's id (pub_...), not the key.
        id: String,
    },
}

/// Runs the subcommand and prints its result.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.database.open().await?;
    let format = args.database.format();
    let output = match args.command {
        Command::Create { owner, grants } => {
            admin::publisher_key_create(&store, NewPublisherKey { owner, grants }, format).await
        }
        Command::List => admin::publisher_key_list(&store, format).await,
        Command::Revoke { id } => admin::publisher_key_revoke(&store, &id, format).await,
    };
    store.close().await;
    print!("{}", output?);
    Ok(())
}
