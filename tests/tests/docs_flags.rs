//! Every flag of every binary, as its `--help` lists it (each subcommand's,
//! with the `[env: ...]` variable), has a row in its reference's table
//! (`| `--flag ...` | `VARIABLE` | ...`), with the same variable, and every
//! row names a flag that exists: so a flag added without its documentation,
//! or documentation left behind by a removed or renamed flag, fails here.
//! The variables follow one scheme (`RBEE_<BINARY>_<FLAG>`, see
//! `rbee_config`), and the example CI workflows set only variables the
//! pusher reads. (Builds the four binaries if needed; then about a second.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rbee_config::Binary;

/// Each binary, its package, and the reference that documents its flags.
const BINARIES: [(Binary, &str, &str); 4] = [
    (Binary::Catalog, "rbee-catalog-cli", "docs/api.md"),
    (Binary::Registry, "rbee-registry", "docs/registry.md"),
    (Binary::Pusher, "rbee-pusher", "docs/pusher.md"),
    (Binary::Worker, "rbee-worker-client", "docs/client.md"),
];

/// Variables that are not `RBEE_<BINARY>_<FLAG>`, and why.
const NOT_IN_THE_SCHEME: [&str; 0] = [];

/// Variables the pusher reads that no flag carries, so `--help` cannot
/// list them: a password is never a flag (it would show in `ps`).
const PUSHER_ENV_ONLY: [&str; 1] = ["RBEE_PUSHER_SECRET_KEY_PASSWORD"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The binaries, built once (a test crate cannot see another package's
/// `CARGO_BIN_EXE_*`; see `common::publishing::binaries`).
fn executables() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(root().join("Cargo.toml"));
        for (_, package, _) in BINARIES {
            cmd.args(["-p", package]);
        }
        let out = cmd
            .args(["--bins", "--message-format=json-render-diagnostics"])
            .stdin(Stdio::null())
            .output()
            .expect("cargo runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo build failed\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let name = m["target"]["name"].as_str()?.to_owned();
                let exe = m["executable"].as_str()?;
                Some((name, PathBuf::from(exe)))
            })
            .collect()
    })
}

/// `--help` of `path` (subcommands) of `binary`, in an empty environment
/// (so no variable of the test's own changes what help shows).
fn help(binary: &Path, path: &[String]) -> String {
    let out = Command::new(binary)
        .args(path)
        .arg("--help")
        .env_clear()
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{} {path:?} --help: {out:?}",
        binary.display()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every long flag of `binary` and all its subcommands, with the variables
/// `--help` names for it (empty: none in any subcommand).
fn help_flags(binary: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut flags = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let text = help(binary, &path);
        let mut current: Option<String> = None;
        let mut in_commands = false;
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start();
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                match trimmed.split_whitespace().next() {
                    Some(name) if indent == 2 => {
                        if name != "help" {
                            let mut sub = path.clone();
                            sub.push(name.to_owned());
                            todo.push(sub);
                        }
                        continue;
                    }
                    _ => in_commands = false,
                }
            }
            if indent <= 6 && trimmed.starts_with('-') {
                current = trimmed
                    .split([' ', ','])
                    .find_map(|w| w.strip_prefix("--"))
                    .map(|f| f.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
                    .map(str::to_owned);
                if let Some(flag) = &current {
                    flags.entry(flag.clone()).or_insert_with(BTreeSet::new);
                }
                continue;
            }
            if let (Some(flag), Some(at)) = (&current, line.find("[env: ")) {
                let name: String = line[at + 6..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                flags.get_mut(flag).unwrap().insert(name);
            }
        }
    }
    flags.remove("help");
    flags.remove("version");
    flags
}

/// The rows of the tables of `doc` whose first cell starts with a flag:
/// the flag and the first variable-like word of the second cell.
fn doc_flags(doc: &str) -> BTreeMap<String, Vec<Option<String>>> {
    let mut rows: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for line in doc.lines() {
        let Some(row) = line.strip_prefix("| `--") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let flag: String = cells[0]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let env = cells.get(1).and_then(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .find(|w| {
                    !w.is_empty()
                        && w.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(str::to_owned)
        });
        rows.entry(flag).or_default().push(env);
    }
    rows
}

#[test]
fn every_flag_and_variable_is_in_its_binarys_reference() {
    let executables = executables();
    let mut problems = Vec::new();
    for (binary, _, doc_path) in BINARIES {
        let name = binary.name();
        let exe = &executables[name];
        let help = help_flags(exe);
        assert!(help.len() > 5, "{name}: too few flags parsed: {help:?}");
        let doc = std::fs::read_to_string(root().join(doc_path)).unwrap();
        let documented = doc_flags(&doc);
        for (flag, envs) in &help {
            if envs.len() > 1 {
                problems.push(format!("{name} --{flag}: several variables {envs:?}"));
            }
            let env = envs.iter().next().cloned();
            if let Some(env) = &env
                && *env != rbee_config::env_name(binary, flag)
                && !NOT_IN_THE_SCHEME.contains(&env.as_str())
            {
                problems.push(format!(
                    "{name} --{flag}: variable {env} is not {}",
                    rbee_config::env_name(binary, flag)
                ));
            }
            match documented.get(flag) {
                None => problems.push(format!(
                    "{name} --{flag} ({}) has no row in {doc_path}",
                    env.as_deref().unwrap_or("no variable")
                )),
                Some(rows) => {
                    for row in rows {
                        if *row != env {
                            problems.push(format!(
                                "{name} --{flag}: {doc_path} says {row:?}, --help says {env:?}"
                            ));
                        }
                    }
                }
            }
        }
        for flag in documented.keys() {
            if !help.contains_key(flag) {
                problems.push(format!(
                    "{doc_path} documents --{flag}, which {name} does not have"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_example_workflows_set_only_variables_the_pusher_reads() {
    let pusher = help_flags(&executables()["rbee-pusher"]);
    let mut known: BTreeSet<String> = pusher.values().flatten().cloned().collect();
    known.extend(PUSHER_ENV_ONLY.map(String::from));
    let dir = root().join("examples/ci/github-actions");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("RBEE_PUSHER_") {
                checked += 1;
                assert!(
                    known.contains(word),
                    "{}: {word} is no variable of rbee-pusher ({known:?})",
                    path.display()
                );
            }
            for old in rbee_config::old_names::OLD_NAMES {
                assert_ne!(
                    word,
                    old.name,
                    "{}: {word} is an old name; use {}",
                    path.display(),
                    rbee_config::env_name(old.binary, old.flag)
                );
            }
        }
    }
    assert!(checked > 0, "no RBEE_PUSHER_ variable in {}", dir.display());
}
