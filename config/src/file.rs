//! The servers' configuration file: TOML, one `key = value` per setting,
//! the key a long flag that has an environment variable (`public-url`,
//! or `public_url`), the value what the flag takes (a string, a number,
//! `true`/`false`, or an array for a flag that takes several values).
//!
//! It applies to every subcommand that has the flag (`data-dir` reaches
//! `serve`, `license`, `sync`, ...), as the flag's default: clap then
//! gives a flag on the command line precedence over its variable, and
//! the variable over the file. A key no subcommand has, or a value its
//! flag would refuse, is an error naming the key, even when a flag or a
//! variable overrides it.
//!
//! One limit: clap's `requires` counts a value from the file as absent,
//! like any default, so a flag that requires another is checked by the
//! command's code instead.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Command};

use crate::scheme::env_name;
use crate::{Binary, ConfigError};

/// A configuration file read and checked for TOML.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// As written.
    key: String,
    /// The long flag it sets.
    flag: String,
    values: Vec<String>,
}

/// The file to read: `--config FILE` (or `--config=FILE`) before any
/// `--`, else the binary's `RBEE_<BINARY>_CONFIG`. Read before clap
/// parses, because its values become the flags' defaults.
pub(crate) fn path(binary: Binary, args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    std::env::var_os(env_name(binary, "config"))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The long flag of `arg` when the file may set it: it has a variable,
/// and it is not `--config` itself.
pub(crate) fn settable(arg: &Arg) -> Option<&str> {
    if arg.get_env().is_none() || arg.is_positional() {
        return None;
    }
    arg.get_long().filter(|long| *long != "config")
}

impl ConfigFile {
    /// Reads `path`: TOML whose values are scalars or arrays of them.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Reads `text` as the contents of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut entries: Vec<Entry> = Vec::new();
        for (key, value) in table {
            let flag = key.replace('_', "-");
            let values = values(&value).ok_or_else(|| ConfigError::BadValue {
                path: path.to_owned(),
                key: key.clone(),
                message: format!(
                    "a {}; a setting is a string, a number, true/false, or an array of them \
                     (the file has no sections)",
                    value.type_str()
                ),
            })?;
            if let Some(first) = entries.iter().find(|e| e.flag == flag) {
                return Err(ConfigError::Duplicate {
                    path: path.to_owned(),
                    first: first.key.clone(),
                    second: key,
                });
            }
            entries.push(Entry { key, flag, values });
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            entries,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file sets `--<flag>`.
    pub fn sets(&self, flag: &str) -> bool {
        self.entries.iter().any(|e| e.flag == flag)
    }

    /// Checks every key and value against `command`'s flags, then makes
    /// the values the flags' defaults wherever the flags are.
    pub fn apply(&self, binary: Binary, command: Command) -> Result<Command, ConfigError> {
        let mut flags = BTreeMap::new();
        collect(&command, &mut flags);
        for entry in &self.entries {
            let Some(arg) = flags.get(entry.flag.as_str()) else {
                return Err(ConfigError::UnknownKey {
                    path: self.path.clone(),
                    key: entry.key.clone(),
                    flag: entry.flag.clone(),
                    binary: binary.name(),
                });
            };
            check(binary, arg, &entry.values).map_err(|message| ConfigError::BadValue {
                path: self.path.clone(),
                key: entry.key.clone(),
                message,
            })?;
        }
        Ok(set_defaults(command, &self.entries))
    }
}

/// A TOML value as the strings a command line would give.
fn values(value: &toml::Value) -> Option<Vec<String>> {
    fn scalar(value: &toml::Value) -> Option<String> {
        Some(match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) | toml::Value::Table(_) => return None,
        })
    }
    match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// Every settable flag of `command` and its subcommands, by long name.
fn collect(command: &Command, flags: &mut BTreeMap<String, Arg>) {
    for arg in command.get_arguments() {
        if let Some(long) = settable(arg) {
            flags.entry(long.to_owned()).or_insert_with(|| arg.clone());
        }
    }
    for sub in command.get_subcommands() {
        collect(sub, flags);
    }
}

/// Whether `arg` would take `values`: the count, then each value through
/// the flag's own parser (a probe command with only that parser, since
/// clap offers no other public way to run it).
fn check(binary: Binary, arg: &Arg, values: &[String]) -> Result<(), String> {
    let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let many = matches!(arg.get_action(), ArgAction::Append);
    if !many && values.len() != 1 {
        return Err(format!("takes one value, not an array of {}", values.len()));
    }
    let parser = if switch {
        BoolishValueParser::new().into()
    } else {
        arg.get_value_parser().clone()
    };
    let mut probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Append)
        .value_parser(parser);
    if let Some(delimiter) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(delimiter);
    }
    Command::new(binary.name())
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from(values.iter().map(|v| format!("--value={v}")))
        .map(drop)
        .map_err(|e| {
            if switch {
                format!(
                    "`{}`: a switch takes true/false, 1/0, yes/no or on/off",
                    values.join(",")
                )
            } else {
                reason(&e)
            }
        })
}

/// Why clap refused a value, without the probe's flag name.
fn reason(error: &clap::Error) -> String {
    use std::error::Error as _;
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!("`{v}`: "),
        _ => String::new(),
    };
    if let Some(source) = error.source() {
        return format!("{value}{source}");
    }
    if let Some(ContextValue::Strings(valid)) = error.get(ContextKind::ValidValue) {
        return format!("{value}expected one of {}", valid.join(", "));
    }
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// Gives every settable flag the file sets, in `command` and its
/// subcommands, the file's values as its default.
fn set_defaults(command: Command, entries: &[Entry]) -> Command {
    command
        .mut_args(|arg| {
            let entry = settable(&arg).and_then(|long| entries.iter().find(|e| e.flag == long));
            match entry {
                Some(entry) => arg.default_values(entry.values.clone()),
                None => arg,
            }
        })
        .mut_subcommands(|sub| set_defaults(sub, entries))
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command, value_parser};

    use super::*;

    fn command() -> Command {
        let serve = Command::new("serve")
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .env("RBEE_CATALOG_LISTEN")
                    .default_value("127.0.0.1:8787")
                    .value_parser(value_parser!(std::net::SocketAddr)),
            )
            .arg(
                Arg::new("max_connections")
                    .long("max-connections")
                    .env("RBEE_CATALOG_MAX_CONNECTIONS")
                    .default_value("512")
                    .value_parser(value_parser!(u32).range(1..)),
            )
            .arg(
                Arg::new("no_analytics")
                    .long("no-analytics")
                    .env("RBEE_CATALOG_NO_ANALYTICS")
                    .action(ArgAction::SetTrue)
                    .value_parser(BoolishValueParser::new()),
            )
            .arg(
                Arg::new("origins")
                    .long("cors-origins")
                    .env("RBEE_CATALOG_CORS_ORIGINS")
                    .value_delimiter(',')
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("demo").long("demo").action(ArgAction::SetTrue));
        let license = Command::new("license").arg(
            Arg::new("data_dir")
                .long("data-dir")
                .env("RBEE_CATALOG_DATA_DIR")
                .default_value("rbee-data"),
        );
        Command::new("rbee-catalog")
            .subcommand(
                serve.clone().arg(
                    Arg::new("data_dir")
                        .long("data-dir")
                        .env("RBEE_CATALOG_DATA_DIR")
                        .default_value("rbee-data"),
                ),
            )
            .subcommand(license)
    }

    fn file(text: &str) -> Result<Command, ConfigError> {
        ConfigFile::parse(Path::new("rbee.toml"), text)?.apply(Binary::Catalog, command())
    }

    #[test]
    fn the_file_sets_defaults_in_every_subcommand_that_has_the_flag() {
        let command = file(
            "listen = \"0.0.0.0:80\"\nmax_connections = 7\nno-analytics = \"yes\"\n\
             cors-origins = [\"https://a\", \"https://b\"]\ndata-dir = \"/var/lib/rbee\"\n",
        )
        .unwrap();
        let m = command
            .clone()
            .try_get_matches_from(["rbee-catalog", "serve"])
            .unwrap();
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(
            serve
                .get_one::<std::net::SocketAddr>("listen")
                .unwrap()
                .to_string(),
            "0.0.0.0:80"
        );
        assert_eq!(serve.get_one::<u32>("max_connections"), Some(&7));
        assert!(serve.get_flag("no_analytics"));
        let origins: Vec<&String> = serve.get_many("origins").unwrap().collect();
        assert_eq!(origins, ["https://a", "https://b"]);
        let m = command
            .clone()
            .try_get_matches_from(["rbee-catalog", "license"])
            .unwrap();
        let license = m.subcommand_matches("license").unwrap();
        assert_eq!(
            license.get_one::<String>("data_dir").unwrap(),
            "/var/lib/rbee"
        );
        // A flag on the command line wins over the file.
        let m = command
            .try_get_matches_from(["rbee-catalog", "serve", "--max-connections", "9"])
            .unwrap();
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<u32>("max_connections"), Some(&9));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = file("listn = \"127.0.0.1:1\"\n").unwrap_err().to_string();
        assert!(err.contains("rbee.toml"), "{err}");
        assert!(err.contains("unknown key `listn`"), "{err}");
        // Per-run switches without a variable are not settings.
        let err = file("demo = true\n").unwrap_err().to_string();
        assert!(err.contains("unknown key `demo`"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_key_and_the_reason() {
        for (text, key, says) in [
            (
                "max-connections = \"many\"\n",
                "max-connections",
                "invalid digit",
            ),
            ("max-connections = 0\n", "max-connections", "not in 1.."),
            ("listen = \"localhost\"\n", "listen", "`localhost`"),
            (
                "no-analytics = \"maybe\"\n",
                "no-analytics",
                "`maybe`: a switch takes",
            ),
            ("listen = [\"a\", \"b\"]\n", "listen", "takes one value"),
            ("[serve]\nlisten = \"x\"\n", "serve", "a table"),
        ] {
            let err = file(text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn two_spellings_of_one_key_and_broken_toml_are_refused() {
        let err = file("public-url = \"a\"\npublic_url = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("same setting"), "{err}");
        let err = file("listen = \n").unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn the_path_comes_from_the_flag_before_any_double_dash() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path(
                Binary::Catalog,
                &args(&["rbee-catalog", "serve", "--config", "a.toml"])
            ),
            Some("a.toml".into())
        );
        assert_eq!(
            path(
                Binary::Catalog,
                &args(&["rbee-catalog", "--config=b.toml", "serve"])
            ),
            Some("b.toml".into())
        );
    }
}
