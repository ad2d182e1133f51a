//! `config check`: the settings a subcommand (`serve`) would run with,
//! from the environment, the file and the defaults, printed as TOML that
//! could be a configuration file, each with where it came from. Secrets
//! are masked: a flag whose variable's value `--help` hides prints
//! `"***"`, and the password of any URL (a database URL's, a registry's)
//! prints as `***` with the rest of the URL.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory};

use crate::file::settable;
use crate::{Binary, ConfigError, env_name, prepare};

/// The effective settings of one subcommand.
#[derive(Debug)]
pub struct Effective {
    binary: Binary,
    subcommand: String,
    file: Option<PathBuf>,
    /// What the subcommand would parse, to convert into its arguments and
    /// check beyond each value's grammar.
    pub matches: ArgMatches,
    settings: Vec<Setting>,
    notes: Vec<String>,
}

#[derive(Debug)]
struct Setting {
    key: String,
    values: Vec<String>,
    source: Source,
    secret: bool,
    switch: bool,
    many: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Source {
    Default,
    File,
    Env(String),
    Unset,
}

/// The effective settings of `subcommand` of `C` for this process: its
/// arguments name the file (`--config`), the environment the rest.
pub fn effective<C: CommandFactory>(
    binary: Binary,
    subcommand: &str,
) -> Result<Effective, clap::Error> {
    let args: Vec<OsString> = std::env::args_os().collect();
    effective_from(binary, C::command(), &args, subcommand)
}

/// [`effective`] for `command` run with `args`.
pub fn effective_from(
    binary: Binary,
    command: Command,
    args: &[OsString],
    subcommand: &str,
) -> Result<Effective, clap::Error> {
    let prepared = prepare(binary, command, args).map_err(ConfigError::into_clap)?;
    let Some(sub) = prepared.command.find_subcommand(subcommand) else {
        panic!("{} has no subcommand {subcommand}", binary.name());
    };
    let matches = sub
        .clone()
        .no_binary_name(true)
        .try_get_matches_from(std::iter::empty::<OsString>())?;
    let mut settings = Vec::new();
    for arg in sub.get_arguments() {
        let Some(key) = settable(arg) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let source = match matches.value_source(id) {
            Some(ValueSource::EnvVariable) => Source::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            Some(ValueSource::DefaultValue)
                if prepared.file.as_ref().is_some_and(|f| f.sets(key)) =>
            {
                Source::File
            }
            Some(_) => Source::Default,
            None => Source::Unset,
        };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let values = if switch {
            vec![matches.get_flag(id).to_string()]
        } else {
            matches
                .get_raw(id)
                .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default()
        };
        settings.push(Setting {
            key: key.to_owned(),
            values,
            source,
            secret: arg.is_hide_env_values_set(),
            switch,
            many: matches!(arg.get_action(), ArgAction::Append),
        });
    }
    Ok(Effective {
        binary,
        subcommand: subcommand.to_owned(),
        file: prepared.file.map(|f| f.path().to_owned()),
        matches,
        settings,
        notes: Vec::new(),
    })
}

impl Effective {
    /// Adds a line for each variable of `names` the binary reads besides
    /// its flags' (credentials, the log filter): its value, or only that
    /// it is set when `secret`.
    pub fn with_environment(mut self, names: &[(&str, bool)]) -> Self {
        for (name, secret) in names {
            let line = match std::env::var_os(name) {
                None => format!("{name} is not set"),
                Some(_) if *secret => format!("{name} is set (value hidden)"),
                Some(v) => format!("{name} = {}", mask(&v.to_string_lossy(), false)),
            };
            self.notes.push(line);
        }
        self
    }
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.binary.name();
        writeln!(f, "# {name} {}: effective configuration", self.subcommand)?;
        writeln!(
            f,
            "# precedence: flag > environment > config file > default"
        )?;
        match &self.file {
            Some(path) => writeln!(f, "# config file: {}", path.display())?,
            None => writeln!(
                f,
                "# config file: none (--config FILE or {})",
                env_name(self.binary, "config")
            )?,
        }
        for setting in &self.settings {
            if setting.source == Source::Unset {
                writeln!(f, "# {} = (not set)", setting.key)?;
                continue;
            }
            let from = match &setting.source {
                Source::Default => "default".to_owned(),
                Source::File => "config file".to_owned(),
                Source::Env(name) => format!("environment: {name}"),
                Source::Unset => unreachable!("handled above"),
            };
            writeln!(f, "{} = {}  # {from}", setting.key, setting.toml())?;
        }
        for note in &self.notes {
            writeln!(f, "# {note}")?;
        }
        Ok(())
    }
}

impl Setting {
    /// The value as TOML: a boolean for a switch, an integer for digits,
    /// a string otherwise, an array for a flag of several values.
    fn toml(&self) -> String {
        let one = |value: &String| -> String {
            let value = mask(value, self.secret);
            let integer = !value.is_empty()
                && value.bytes().all(|b| b.is_ascii_digit())
                && (value == "0" || !value.starts_with('0'))
                && value.parse::<i64>().is_ok();
            if self.switch || integer {
                value
            } else {
                toml::Value::String(value).to_string()
            }
        };
        if self.many {
            let items: Vec<String> = self.values.iter().map(one).collect();
            format!("[{}]", items.join(", "))
        } else {
            self.values.first().map(one).unwrap_or_default()
        }
    }
}

/// `value` fit to print: a URL's password (and a `password` query
/// parameter) as `***`; a secret that is no URL with a path (`a:b`) as
/// `***`.
fn mask(value: &str, secret: bool) -> String {
    if let Ok(mut url) = url::Url::parse(value)
        && !url.cannot_be_a_base()
    {
        let mut masked = false;
        if url.password().is_some() {
            // Only fails for URLs that cannot have a password.
            masked = url.set_password(Some("***")).is_ok();
        }
        if url.query_pairs().any(|(k, _)| k.contains("password")) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.contains("password") {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            masked = true;
        }
        // Unchanged otherwise: the URL parser would normalise it (a `/`
        // after the host), and an origin must print as given.
        return if masked {
            url.to_string()
        } else {
            value.to_owned()
        };
    }
    if secret {
        "***".to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    #[test]
    fn secrets_and_passwords_in_urls_are_masked() {
        assert_eq!(
            mask("postgres://rbee:s3cret@db.internal/rbee", true),
            "postgres://rbee:***@db.internal/rbee"
        );
        assert_eq!(
            mask("postgres://db/rbee?user=a&password=s3cret", true),
            "postgres://db/rbee?user=a&password=***"
        );
        assert_eq!(
            mask("sqlite:///var/lib/rbee/catalog.db", true),
            "sqlite:///var/lib/rbee/catalog.db"
        );
        assert_eq!(mask("hunter2", true), "***");
        assert_eq!(mask("a:b", true), "***", "no path: not shown as a URL");
        assert_eq!(
            mask("https://bot:tok@ghcr.io", false),
            "https://bot:***@ghcr.io/"
        );
        assert_eq!(
            mask("http://localhost:7845", false),
            "http://localhost:7845"
        );
        assert_eq!(mask("rbee/catalog", false), "rbee/catalog");
    }

    #[test]
    fn the_report_is_toml_with_sources() {
        let command = Command::new("rbee-registry").subcommand(
            Command::new("serve")
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .env("RBEE_REGISTRY_LISTEN")
                        .default_value("127.0.0.1:5000"),
                )
                .arg(
                    Arg::new("max_connections")
                        .long("max-connections")
                        .env("RBEE_REGISTRY_MAX_CONNECTIONS")
                        .default_value("512"),
                )
                .arg(
                    Arg::new("names")
                        .long("public-namespaces")
                        .env("RBEE_REGISTRY_PUBLIC_NAMESPACES")
                        .value_delimiter(',')
                        .action(ArgAction::Append)
                        .default_value("rbee"),
                )
                .arg(
                    Arg::new("delete")
                        .long("disable-delete")
                        .env("RBEE_REGISTRY_DISABLE_DELETE")
                        .action(ArgAction::SetTrue),
                )
                .arg(
                    Arg::new("secret")
                        .long("token-jwks")
                        .env("RBEE_REGISTRY_TOKEN_JWKS"),
                ),
        );
        let args = [OsString::from("rbee-registry")];
        let report = effective_from(Binary::Registry, command, &args, "serve")
            .unwrap()
            .to_string();
        assert!(
            report.contains("listen = \"127.0.0.1:5000\"  # default"),
            "{report}"
        );
        assert!(
            report.contains("max-connections = 512  # default"),
            "{report}"
        );
        assert!(
            report.contains("public-namespaces = [\"rbee\"]  # default"),
            "{report}"
        );
        assert!(
            report.contains("disable-delete = false  # default"),
            "{report}"
        );
        assert!(report.contains("# token-jwks = (not set)"), "{report}");
        assert!(
            report.contains("# config file: none (--config FILE or RBEE_REGISTRY_CONFIG)"),
            "{report}"
        );
        let body: String = report
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{}\n", l.split("  #").next().unwrap()))
            .collect();
        let parsed: toml::Table = toml::from_str(&body).unwrap();
        assert_eq!(parsed["max-connections"].as_integer(), Some(512));
    }
}
