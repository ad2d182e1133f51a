//! `rbee-catalog config check`: the settings `serve` would run with, from
//! the environment, the configuration file and the defaults, secrets
//! masked; exit 2 naming what is wrong.

use clap::FromArgMatches;
use rbee_config::Binary;

use crate::Cli;

/// Prints the effective configuration of `serve`, or exits 2.
pub fn check() {
    let effective =
        rbee_config::check::effective::<Cli>(Binary::Catalog, "serve").unwrap_or_else(|e| e.exit());
    let args =
        super::serve::Args::from_arg_matches(&effective.matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = args.check() {
        rbee_config::exit_invalid(format!("{e:#}"));
    }
    let effective = effective.with_environment(&rbee_registry::cli::CHECKED_ENVIRONMENT);
    print!("{effective}");
}
