//! The `rbee-catalog` binary's commands: thin clap wrappers around the
//! catalog library (`rbee-catalog`), one module per subcommand under
//! [`commands`]. The binary, not the library, composes the publisher
//! (for `serve --demo`), so a server that embeds the catalog does not link
//! the publisher (tar, bash, progress bars).
//!
//! To add a subcommand: a module in `commands/` with an `Args` struct
//! (clap) and an `async fn run(args) -> anyhow::Result<()>`, a variant in
//! [`Command`], and a line in [`run`].

pub mod commands;
pub mod demo;

use clap::{Parser, Subcommand};

/// The command line of `rbee-catalog`.
#[derive(Debug, Parser)]
#[command(
    name = "rbee-catalog",
    version,
    about = "The rbee worker catalog (and, by default, its OCI registry)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; serve's flags are many"
)]
pub enum Command {
    /// Serve the catalog API (and the embedded registry under /v2/).
    Serve(commands::serve::Args),
    /// Issue, list, show and revoke license keys.
    License(commands::license::Args),
    /// Issue, list and revoke publisher keys (for CI pushes).
    PublisherKey(commands::publisher_key::Args),
    /// Show the audit log of admin actions.
    Audit(commands::audit::Args),
    /// Rotate the admin key (written to <data dir>/admin.key).
    AdminKey(commands::admin_key::Args),
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => commands::serve::run(args).await,
        Command::License(args) => commands::license::run(args).await,
        Command::PublisherKey(args) => commands::publisher_key::run(args).await,
        Command::Audit(args) => commands::audit::run(args).await,
        Command::AdminKey(args) => commands::admin_key::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_to_rbee_hives_catalog_address() {
        let cli = Cli::try_parse_from(["rbee-catalog", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve parses as serve");
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8787");
        assert!(!args.demo);
    }
}
