//! `rbee-catalog audit`: the latest admin actions, newest first.

use rbee_catalog::admin;

use super::database::DatabaseArgs;

/// Flags of `audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    /// How many entries (at most 1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Prints the audit log.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.database.open().await?;
    let output = admin::audit(&store, args.limit, args.database.format()).await;
    store.close().await;
    print!("{}", output?);
    Ok(())
}
