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
    #[command(flatten)]
    pub config: rbee_config::ConfigFileArg,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The process's command line, with the variable scheme, the old
    /// names and the configuration file applied (see `rbee_config`).
    pub fn from_process() -> Cli {
        rbee_config::parse(rbee_config::Binary::Catalog)
    }
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
    /// Print download stats (overview, or one worker with --worker).
    Stats(commands::stats::Args),
    /// Rebuild the catalog's view in the database from the registry.
    Sync(commands::sync::Args),
    /// Check the configuration: `config check` prints the settings `serve`
    /// would run with.
    Config(rbee_config::ConfigArgs),
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => commands::serve::run(args).await,
        Command::License(args) => commands::license::run(args).await,
        Command::PublisherKey(args) => commands::publisher_key::run(args).await,
        Command::Audit(args) => commands::audit::run(args).await,
        Command::AdminKey(args) => commands::admin_key::run(args).await,
        Command::Stats(args) => commands::stats::run(args).await,
        Command::Sync(args) => commands::sync::run(args).await,
        Command::Config(_) => {
            commands::config::check();
            Ok(())
        }
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
    fn the_command_line_with_its_variables_is_well_formed() {
        let args = [std::ffi::OsString::from("rbee-catalog")];
        let prepared = rbee_config::prepare(rbee_config::Binary::Catalog, Cli::command(), &args)
            .expect("no configuration file");
        prepared.command.debug_assert();
    }

    #[test]
    fn serve_defaults_to_rbee_hives_catalog_address() {
        let cli: Cli =
            rbee_config::try_parse_from(rbee_config::Binary::Catalog, ["rbee-catalog", "serve"])
                .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve parses as serve");
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8787");
        assert!(!args.demo);
    }
}
