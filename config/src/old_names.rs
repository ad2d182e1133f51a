//! Variables renamed by the naming scheme (issue 18), read under their old
//! names for one release, with a warning on stderr, so that a CI setup
//! keeps working while it is updated. Delete an entry a release after its
//! rename.

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Command;

use crate::Binary;
use crate::scheme::env_name;

/// How long an old name is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Until the next release; a warning each time it is used.
    OneRelease,
    /// For good, without a warning: a name another program sets
    /// (rbee-hive's `WORKER_CATALOG_URL`).
    Always,
}

/// A variable's old name.
#[derive(Debug, Clone, Copy)]
pub struct OldName {
    /// The binary that read it.
    pub binary: Binary,
    /// The old name.
    pub name: &'static str,
    /// The long flag it sets (its new variable is [`env_name`] of it).
    pub flag: &'static str,
    /// How long it is read.
    pub kept: Kept,
}

const fn old(binary: Binary, name: &'static str, flag: &'static str) -> OldName {
    OldName {
        binary,
        name,
        flag,
        kept: Kept::OneRelease,
    }
}

/// Every renamed variable. `rbee-catalog` and `rbee-registry` already
/// followed the scheme.
pub const OLD_NAMES: &[OldName] = &[
    old(Binary::Pusher, "RBEE_REGISTRY", "registry"),
    old(Binary::Pusher, "RBEE_NAMESPACE", "namespace"),
    old(
        Binary::Pusher,
        "RBEE_CATALOG_REPOSITORY",
        "catalog-repository",
    ),
    old(Binary::Pusher, "RBEE_REGISTRY_USERNAME", "username"),
    old(Binary::Pusher, "RBEE_REGISTRY_PASSWORD", "password"),
    old(
        Binary::Pusher,
        "RBEE_TRUST_TOKEN_REALM",
        "trust-token-realm",
    ),
    old(Binary::Pusher, "RBEE_CONNECT_TIMEOUT", "connect-timeout"),
    old(Binary::Pusher, "RBEE_READ_TIMEOUT", "read-timeout"),
    old(Binary::Pusher, "RBEE_REQUEST_TIMEOUT", "request-timeout"),
    old(Binary::Pusher, "RBEE_COMPRESSION", "compression"),
    OldName {
        binary: Binary::Worker,
        name: "WORKER_CATALOG_URL",
        flag: "catalog",
        kept: Kept::Always,
    },
    old(Binary::Worker, "RBEE_WORKERS_DIR", "dest"),
    old(Binary::Worker, "RBEE_LICENSE_KEY", "license"),
    old(Binary::Worker, "RBEE_REGISTRY_URL", "registry"),
    old(Binary::Worker, "RBEE_MAX_DOWNLOAD", "max-download"),
    old(Binary::Worker, "RBEE_CONNECT_TIMEOUT", "connect-timeout"),
    old(Binary::Worker, "RBEE_READ_TIMEOUT", "read-timeout"),
    old(Binary::Worker, "RBEE_TOTAL_TIMEOUT", "total-timeout"),
];

/// Where an old name is set and the new one is not, makes the flag read
/// the old one (the flag still wins over it); returns the warnings to
/// print. `lookup` reads the environment.
pub(crate) fn apply(
    mut command: Command,
    binary: Binary,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> (Command, Vec<String>) {
    let mut warnings = Vec::new();
    for old in OLD_NAMES.iter().filter(|o| o.binary == binary) {
        if lookup(old.name).is_none() {
            continue;
        }
        let new = env_name(binary, old.flag);
        if lookup(&new).is_some() {
            if old.kept == Kept::OneRelease {
                warnings.push(format!(
                    "warning: {} is ignored: {new} is set (the old name is read until the next release)",
                    old.name
                ));
            }
            continue;
        }
        if old.kept == Kept::OneRelease {
            warnings.push(format!(
                "warning: {} is deprecated: use {new} (the old name is read until the next release)",
                old.name
            ));
        }
        command = read_from(command, old.flag, old.name);
    }
    (command, warnings)
}

/// Points every flag `--<flag>` that has a variable at `name` instead.
fn read_from(command: Command, flag: &'static str, name: &'static str) -> Command {
    command
        .mut_args(|arg| {
            if arg.get_long() == Some(flag) && arg.get_env().is_some() {
                arg.env(name)
            } else {
                arg
            }
        })
        .mut_subcommands(|sub| read_from(sub, flag, name))
}

/// Prints `warnings` on stderr, once per process (`config check` prepares
/// the command line a second time).
pub(crate) fn warn_once(warnings: &[String]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if warnings.is_empty() || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    for warning in warnings {
        eprintln!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    use super::*;

    fn pusher() -> Command {
        Command::new("rbee-pusher").subcommand(
            Command::new("push")
                .arg(
                    Arg::new("registry")
                        .long("registry")
                        .env("RBEE_PUSHER_REGISTRY"),
                )
                .arg(
                    Arg::new("password")
                        .long("password")
                        .env("RBEE_PUSHER_PASSWORD"),
                ),
        )
    }

    fn env_of(command: &Command, id: &str) -> String {
        let push = command.find_subcommand("push").unwrap();
        let arg = push.get_arguments().find(|a| a.get_id() == id).unwrap();
        arg.get_env().unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn an_old_name_is_read_with_a_warning_when_the_new_one_is_unset() {
        let (command, warnings) = apply(pusher(), Binary::Pusher, |name| {
            (name == "RBEE_REGISTRY").then(|| "http://r".into())
        });
        assert_eq!(env_of(&command, "registry"), "RBEE_REGISTRY");
        assert_eq!(env_of(&command, "password"), "RBEE_PUSHER_PASSWORD");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("RBEE_REGISTRY is deprecated: use RBEE_PUSHER_REGISTRY"),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_new_name_wins_and_the_old_one_is_said_to_be_ignored() {
        let (command, warnings) = apply(pusher(), Binary::Pusher, |name| {
            matches!(name, "RBEE_REGISTRY_PASSWORD" | "RBEE_PUSHER_PASSWORD").then(|| "x".into())
        });
        assert_eq!(env_of(&command, "password"), "RBEE_PUSHER_PASSWORD");
        assert!(
            warnings[0].contains("RBEE_REGISTRY_PASSWORD is ignored"),
            "{warnings:?}"
        );
    }

    #[test]
    fn rbee_hives_catalog_variable_is_read_without_a_warning() {
        let worker = Command::new("rbee-worker").arg(
            Arg::new("catalog")
                .long("catalog")
                .env("RBEE_WORKER_CATALOG"),
        );
        let (command, warnings) = apply(worker, Binary::Worker, |name| {
            (name == "WORKER_CATALOG_URL").then(|| "http://c".into())
        });
        let arg = command.get_arguments().next().unwrap();
        assert_eq!(arg.get_env().unwrap(), "WORKER_CATALOG_URL");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn no_old_name_looks_like_a_new_one_of_its_binary() {
        for old in OLD_NAMES {
            let prefix = format!("RBEE_{}_", old.binary.word().to_ascii_uppercase());
            assert!(!old.name.starts_with(&prefix), "{old:?}");
        }
    }
}
