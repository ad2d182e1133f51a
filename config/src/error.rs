//! The errors of reading and applying a configuration file.

use std::path::PathBuf;

/// What is wrong with a configuration file. Each names the file and,
/// where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {}: not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// A key that names no setting of the binary.
    #[error(
        "config file {}: unknown key `{key}`: {binary} has no setting --{flag} \
         (the keys are the long flags that have an environment variable, \
         e.g. `listen`; see `{binary} serve --help`)",
        path.display()
    )]
    UnknownKey {
        path: PathBuf,
        key: String,
        flag: String,
        binary: &'static str,
    },
    /// A value its flag would refuse, or of a shape no flag takes.
    #[error("config file {}: `{key}`: {message}", path.display())]
    BadValue {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// Two spellings of one key (`public-url` and `public_url`).
    #[error("config file {}: `{first}` and `{second}` are the same setting", path.display())]
    Duplicate {
        path: PathBuf,
        first: String,
        second: String,
    },
}

impl ConfigError {
    /// As a clap error, so that it is printed and exits like a bad
    /// command line (exit code 2).
    pub fn into_clap(self) -> clap::Error {
        clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{self}\n"))
    }
}
