//! The environment variable of each flag, `RBEE_<BINARY>_<FLAG>`, and
//! switches that accept `1/0/true/false/yes/no`.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Command};

use crate::Binary;

/// The variable of `--<long>` in `binary`: `RBEE_`, the binary's word,
/// `_`, the flag upper-cased with `_` for `-`; a flag that starts with
/// the binary's word does not repeat it (`--catalog-repository` of
/// `rbee-catalog` is `RBEE_CATALOG_REPOSITORY`).
pub fn env_name(binary: Binary, long: &str) -> String {
    let word = binary.word();
    let flag = long
        .strip_prefix(word)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(long);
    format!(
        "RBEE_{}_{}",
        word.to_ascii_uppercase(),
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// Names the variable of every flag declared with a bare `env` (clap
/// then makes one from the field's name, e.g. `MAX_CONNECTIONS`) by
/// [`env_name`], in `command` and all its subcommands, and makes every
/// switch read its value (from the environment or the file) as a boolish
/// word. A name written out (`env = "RBEE_..."`) is kept as written, so
/// that it can be found with grep; `tests/tests/docs_flags.rs` checks that
/// it follows the scheme.
pub(crate) fn apply(command: Command, binary: Binary) -> Command {
    command
        .mut_args(|arg| {
            let name = arg
                .get_env()
                .filter(|declared| !declared.to_string_lossy().starts_with("RBEE_"))
                .and(arg.get_long())
                .map(|long| env_name(binary, long));
            let arg = match name {
                Some(name) => arg.env(name),
                None => arg,
            };
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                arg.value_parser(BoolishValueParser::new())
            } else {
                arg
            }
        })
        .mut_subcommands(|sub| apply(sub, binary))
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    #[test]
    fn names_follow_the_binary_and_the_long_flag() {
        assert_eq!(
            env_name(Binary::Catalog, "public-url"),
            "RBEE_CATALOG_PUBLIC_URL"
        );
        assert_eq!(
            env_name(Binary::Catalog, "catalog-view"),
            "RBEE_CATALOG_VIEW"
        );
        assert_eq!(
            env_name(Binary::Pusher, "catalog-repository"),
            "RBEE_PUSHER_CATALOG_REPOSITORY"
        );
        assert_eq!(env_name(Binary::Pusher, "registry"), "RBEE_PUSHER_REGISTRY");
        assert_eq!(env_name(Binary::Worker, "dest"), "RBEE_WORKER_DEST");
        assert_eq!(
            env_name(Binary::Registry, "registry-like"),
            "RBEE_REGISTRY_LIKE"
        );
        // A flag that only starts with the word's letters keeps them.
        assert_eq!(env_name(Binary::Worker, "workers"), "RBEE_WORKER_WORKERS");
    }

    #[test]
    fn bare_variables_are_named_by_the_scheme_and_switches_are_boolish() {
        let command = Command::new("x")
            .arg(
                Arg::new("limit")
                    .long("max-connections")
                    .env("MAX_CONNECTIONS"),
            )
            .arg(Arg::new("quiet").long("quiet"))
            .arg(
                Arg::new("kept")
                    .long("kept")
                    .env("RBEE_REGISTRY_KEPT_AS_WRITTEN"),
            )
            .subcommand(
                Command::new("serve").arg(
                    Arg::new("open")
                        .long("dev-open-loopback")
                        .action(ArgAction::SetTrue)
                        .env("DEV_OPEN_LOOPBACK"),
                ),
            );
        let command = apply(command, Binary::Registry);
        let env = |c: &Command, id: &str| {
            c.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(
            env(&command, "limit").as_deref(),
            Some("RBEE_REGISTRY_MAX_CONNECTIONS")
        );
        assert_eq!(env(&command, "quiet"), None, "no variable unless declared");
        assert_eq!(
            env(&command, "kept").as_deref(),
            Some("RBEE_REGISTRY_KEPT_AS_WRITTEN")
        );
        let serve = command.find_subcommand("serve").unwrap();
        assert_eq!(
            env(serve, "open").as_deref(),
            Some("RBEE_REGISTRY_DEV_OPEN_LOOPBACK")
        );
        for (word, value) in [
            ("1", true),
            ("yes", true),
            ("true", true),
            ("0", false),
            ("no", false),
            ("false", false),
        ] {
            // As the file layer gives it: a default value, read by the
            // switch's parser (clap's own would refuse `1` and `yes`).
            let matches = serve
                .clone()
                .mut_arg("open", |a| a.default_value(word))
                .try_get_matches_from(["serve"])
                .unwrap();
            assert_eq!(matches.get_flag("open"), value, "{word}");
        }
    }
}
