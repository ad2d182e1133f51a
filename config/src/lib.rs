//! The command line surface rbee's four binaries share (`rbee-catalog`,
//! `rbee-registry`, `rbee-pusher`, `rbee-worker`), so that one set of
//! rules holds for all of them:
//!
//! - **Environment variables** are named `RBEE_<BINARY>_<FLAG>`: the
//!   binary's word (`CATALOG`, `REGISTRY`, `PUSHER`, `WORKER`), then the
//!   long flag upper-cased with `_` for `-`, the binary's word not repeated
//!   (`--catalog-view` of `rbee-catalog` is `RBEE_CATALOG_VIEW`). A flag
//!   declared with a bare `env` gets its name here ([`scheme`]), so a flag
//!   struct shared by two binaries (the server limits) gets one name in
//!   each; names written out are kept, and a test holds them to the
//!   scheme (`tests/tests/docs_flags.rs`).
//! - **Switches** accept `1/0`, `true/false`, `yes/no` (and `on/off`,
//!   `y/n`, `t/f`) from the environment and the file.
//! - **Old names** of variables ([`old_names::OLD_NAMES`]) are read for one
//!   release, with a warning on stderr.
//! - **A configuration file** (TOML, the two servers only): `--config FILE`
//!   or `RBEE_<BINARY>_CONFIG` (no default location: what a server reads
//!   is on its command line). Its keys are the long flags (`public-url =
//!   "https://..."`, or `public_url`); every flag that has an environment
//!   variable is a key, with no code per flag ([`file`]). It is a layer
//!   under the others: flag > environment > file > default. `config
//!   check` prints the result ([`check`]).
//!
//! - **Progress lines** off a terminal ([`progress`], feature `progress`:
//!   the installer and the pusher), every `RBEE_PROGRESS_INTERVAL` seconds.
//!
//! A binary parses its command line with [`parse`] instead of
//! `clap::Parser::parse`.

pub mod check;
mod error;
pub mod file;
pub mod old_names;
#[cfg(feature = "progress")]
pub mod progress;
pub mod scheme;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Command, CommandFactory, FromArgMatches};

pub use check::Effective;
pub use error::ConfigError;
pub use file::ConfigFile;
pub use scheme::env_name;

/// The four binaries, each with its own variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `rbee-catalog`.
    Catalog,
    /// `rbee-registry`.
    Registry,
    /// `rbee-pusher`.
    Pusher,
    /// `rbee-worker`.
    Worker,
}

impl Binary {
    /// The executable's name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Catalog => "rbee-catalog",
            Binary::Registry => "rbee-registry",
            Binary::Pusher => "rbee-pusher",
            Binary::Worker => "rbee-worker",
        }
    }

    /// The word in its variables' names, lower case (`catalog`).
    pub fn word(self) -> &'static str {
        match self {
            Binary::Catalog => "catalog",
            Binary::Registry => "registry",
            Binary::Pusher => "pusher",
            Binary::Worker => "worker",
        }
    }

    /// Whether it reads a configuration file: the servers do; the
    /// publisher and the installer are configured per run.
    pub fn has_config_file(self) -> bool {
        matches!(self, Binary::Catalog | Binary::Registry)
    }
}

/// `--config FILE`, for a server's top-level command line (global, so it
/// may follow the subcommand too).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFileArg {
    /// A TOML file of settings, under flags and environment variables:
    /// keys are long flags (`public-url = "https://..."`); see
    /// docs/operations.md. `config check` prints the result.
    #[arg(long = "config", value_name = "FILE", global = true, env)]
    pub config: Option<PathBuf>,
}

/// `config ...`: the servers' configuration commands.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The subcommands of `config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings of `serve` (flags > environment >
    /// file > defaults) as TOML, secrets masked, with where each came
    /// from; exit 2 naming the key or variable that is wrong.
    Check,
}

/// The command line of `binary`, with the scheme, the old names and (for
/// a server) the configuration file applied: what it parses.
#[derive(Debug)]
pub struct Prepared {
    /// The clap command to parse with.
    pub command: Command,
    /// The configuration file read, if any.
    pub file: Option<ConfigFile>,
}

/// Applies the rules above to `command` for a run with `args`.
pub fn prepare(
    binary: Binary,
    command: Command,
    args: &[OsString],
) -> Result<Prepared, ConfigError> {
    let command = scheme::apply(command, binary);
    let (command, warnings) = old_names::apply(command, binary, |name| std::env::var_os(name));
    old_names::warn_once(&warnings);
    if !binary.has_config_file() {
        return Ok(Prepared {
            command,
            file: None,
        });
    }
    let Some(path) = file::path(binary, args) else {
        return Ok(Prepared {
            command,
            file: None,
        });
    };
    let file = ConfigFile::load(&path)?;
    let command = file.apply(binary, command)?;
    Ok(Prepared {
        command,
        file: Some(file),
    })
}

/// Parses the process's command line for `binary`; on an error prints it
/// and exits (2, as clap does; 0 for `--help`).
pub fn parse<C: CommandFactory + FromArgMatches>(binary: Binary) -> C {
    try_parse_from(binary, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] with the arguments given (the first is the binary's name).
pub fn try_parse_from<C, I, T>(binary: Binary, args: I) -> Result<C, clap::Error>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let prepared = prepare(binary, C::command(), &args).map_err(ConfigError::into_clap)?;
    let matches = prepared.command.try_get_matches_from(args)?;
    C::from_arg_matches(&matches)
}

/// Prints `error: {message}` and exits with 2, the code of a bad command
/// line or configuration: for what `config check` finds beyond the
/// values' grammar.
pub fn exit_invalid(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
