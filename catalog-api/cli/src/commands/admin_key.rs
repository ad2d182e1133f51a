//! `rbee-catalog admin-key rotate`: replaces the admin key (the old one
//! stops working at once) and writes the new one to `<data dir>/admin.key`
//! (mode 0600). The key is never printed.

use rbee_catalog::admin;

use super::database::DatabaseArgs;

/// `admin-key` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

/// What to do with the admin key.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Revoke the admin key and write a new one to <data dir>/admin.key.
    Rotate,
}

/// Runs the subcommand.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.database.open().await?;
    let output = match args.command {
        Command::Rotate => admin::admin_key_rotate(&store, &args.database.data_dir).await,
    };
    store.close().await;
    print!("{}", output?);
    Ok(())
}
