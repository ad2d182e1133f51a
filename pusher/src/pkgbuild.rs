//! PKGBUILD checks and `.SRCINFO` generation.
//!
//! The PKGBUILD is checked with `bash -n` (syntax), then sourced by bash in a
//! child process to read its variables, exactly as makepkg reads them; its
//! `.SRCINFO` is written in the layout of `makepkg --printsrcinfo`. The
//! rules of rbee-hive, which builds workers from the PKGBUILD without
//! makepkg, are in [`hive`].

pub mod hive;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::error::PushError;

/// Variables a PKGBUILD must define.
pub const REQUIRED: [&str; 6] = [
    "pkgname",
    "pkgver",
    "pkgrel",
    "arch",
    "source",
    "sha256sums",
];

/// Variables copied into `.SRCINFO`, in makepkg's order. Arrays and
/// scalars alike; absent ones are skipped.
pub const SRCINFO_KEYS: [&str; 20] = [
    "pkgdesc",
    "pkgver",
    "pkgrel",
    "epoch",
    "url",
    "install",
    "changelog",
    "arch",
    "groups",
    "license",
    "checkdepends",
    "makedepends",
    "depends",
    "optdepends",
    "provides",
    "conflicts",
    "replaces",
    "options",
    "source",
    "sha256sums",
];

/// What a PKGBUILD defines, variable by variable (each a list; scalars
/// are one-element lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkgbuild {
    /// `(name, values)` in SRCINFO order, plus `pkgname` first.
    pub vars: Vec<(String, Vec<String>)>,
    /// The PKGBUILD text.
    pub text: String,
}

impl Pkgbuild {
    /// The values of `name`, if defined.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The line (1-based) where `name=` is assigned, for error messages.
fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{name}=")))
        .map(|i| i + 1)
}

/// Checks the PKGBUILD at `path` and reads its variables. `version` is the
/// metadata version that `pkgver` must equal; `worker_id` is the id
/// rbee-hive installs it as (see [`hive`]).
pub fn check(path: &Path, version: &str, worker_id: &str) -> Result<Pkgbuild, PushError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| PushError::Invalid(format!("{shown}: cannot read: {e}")))?;
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(path)
        .output()
        .map_err(|e| PushError::Invalid(format!("{shown}: cannot run bash to check it: {e}")))?;
    if !syntax.status.success() {
        // bash says "<file>: line N: syntax error ..."; pass it on as is.
        return Err(PushError::Invalid(format!(
            "{shown}: syntax error:\n{}",
            String::from_utf8_lossy(&syntax.stderr).trim()
        )));
    }
    // Print each variable as \x01NAME\0, then \x02VALUE\0 per element.
    let mut names: Vec<&str> = vec!["pkgname"];
    names.extend(SRCINFO_KEYS);
    let script = r#"
set -e
source "$1" >/dev/null
shift
for v in "$@"; do
  if declare -p "$v" >/dev/null 2>&1; then
    printf '\001%s\0' "$v"
    eval 'for x in "${'"$v"'[@]}"; do printf "\002%s\0" "$x"; done'
  fi
done
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("rbee-pusher")
        .arg(path)
        .args(&names)
        .output()
        .map_err(|e| PushError::Invalid(format!("{shown}: cannot run bash to read it: {e}")))?;
    if !out.status.success() {
        return Err(PushError::Invalid(format!(
            "{shown}: sourcing it failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let pkgbuild = Pkgbuild {
        vars: read_printed(&out.stdout),
        text,
    };
    let shown = shown.to_string();
    let mut problems = problems(&pkgbuild, &shown, version);
    problems.extend(hive::problems(&pkgbuild, &shown, worker_id));
    problems.extend(hive::script_problems(&pkgbuild, &shown));
    if problems.is_empty() {
        Ok(pkgbuild)
    } else {
        Err(PushError::Invalid(problems.join("\n")))
    }
}

/// Reads what the bash reader in [`check`] prints: each variable name as
/// `\x01NAME\0`, then `\x02VALUE\0` per element. Both are marked because a
/// bash value may itself start with `\x01`: unmarked, it would pass for the
/// name of another variable. Bash values hold no NUL, so the encoding is
/// unambiguous. Pure Rust and total (any bytes give some list), so it is
/// fuzzed on its own; bytes that are not UTF-8 are replaced, as a `String`
/// must hold them.
pub fn read_printed(stdout: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut vars: Vec<(String, Vec<String>)> = Vec::new();
    let stdout = stdout.strip_suffix(b"\0").unwrap_or(stdout);
    for field in stdout.split(|&b| b == 0) {
        match field.split_first() {
            Some((1, name)) => vars.push((String::from_utf8_lossy(name).into_owned(), Vec::new())),
            Some((2, value)) => {
                if let Some((_, values)) = vars.last_mut() {
                    values.push(String::from_utf8_lossy(value).into_owned());
                }
            }
            // The reader script prints nothing else.
            _ => {}
        }
    }
    vars
}

/// Whether `c` ends a line for a `.SRCINFO` reader: `\n`, and everything
/// else Python's `str.splitlines` splits on, which AUR tools use.
fn breaks_line(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}'
            ..='\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// What is wrong with the variables of `pkgbuild` (read from the file
/// shown as `shown`) for a release of `version`; empty when nothing is.
/// The checks after bash has run: pure Rust, fuzzed on their own.
pub fn problems(pkgbuild: &Pkgbuild, shown: &str, version: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for name in REQUIRED {
        if pkgbuild
            .get(name)
            .is_none_or(|v| v.iter().all(|x| x.is_empty()))
        {
            problems.push(format!(
                "{shown}: required variable `{name}` is missing or empty"
            ));
        }
    }
    if let Some(pkgver) = pkgbuild.get("pkgver").and_then(|v| v.first())
        && pkgver != version
    {
        let line = line_of(&pkgbuild.text, "pkgver")
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        problems.push(format!(
            "{shown}{line}: pkgver is `{pkgver}` but the metadata version is `{version}`"
        ));
    }
    if let (Some(source), Some(sums)) = (pkgbuild.get("source"), pkgbuild.get("sha256sums"))
        && source.len() != sums.len()
    {
        let line = line_of(&pkgbuild.text, "sha256sums")
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        problems.push(format!(
            "{shown}{line}: {} sources but {} sha256sums",
            source.len(),
            sums.len()
        ));
    }
    // `.SRCINFO` holds one `key = value` per line: a line break in a value
    // would let it forge entries (another `source`, say).
    for (name, values) in &pkgbuild.vars {
        if let Some(i) = values.iter().position(|v| v.contains(breaks_line)) {
            let line = line_of(&pkgbuild.text, name)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            problems.push(format!(
                "{shown}{line}: value {} of `{name}` has a line break, which .SRCINFO cannot hold",
                i + 1
            ));
        }
    }
    problems
}

/// The `.SRCINFO` of a checked PKGBUILD, in `makepkg --printsrcinfo` layout.
pub fn srcinfo(p: &Pkgbuild) -> String {
    let name = p
        .get("pkgname")
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("");
    let mut out = format!("pkgbase = {name}\n");
    for key in SRCINFO_KEYS {
        for value in p.get(key).unwrap_or(&[]) {
            if !value.is_empty() {
                let _ = writeln!(out, "\t{key} = {value}");
            }
        }
    }
    let _ = write!(out, "\npkgname = {name}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# Maintainer: rbee
pkgname=llm-worker-rbee-cpu
pkgver=0.1.0
pkgrel=1
pkgdesc="LLM worker (CPU)"
arch=('x86_64' 'aarch64')
url="https://github.com/rbee/rbee"
license=('GPL-3.0-or-later')
depends=('gcc-libs')
makedepends=('cargo')
source=("git+https://github.com/rbee/rbee.git#tag=v0.1.0")
sha256sums=('SKIP')

build() {
  cd "$srcdir/rbee"
  cargo build --release
}

package() {
  install -Dm755 "$srcdir/rbee/target/release/llm-worker-rbee-cpu" "$pkgdir/usr/local/bin/$pkgname"
}
"#;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("PKGBUILD");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_variables_and_writes_srcinfo() {
        let (_d, path) = write(GOOD);
        let p = check(&path, "0.1.0", "llm-worker-rbee-cpu").unwrap();
        assert_eq!(p.get("arch").unwrap(), ["x86_64", "aarch64"]);
        let info = srcinfo(&p);
        assert!(
            info.starts_with(
                "pkgbase = llm-worker-rbee-cpu\n\tpkgdesc = LLM worker (CPU)\n\tpkgver = 0.1.0\n"
            ),
            "{info}"
        );
        assert!(info.contains("\tarch = x86_64\n\tarch = aarch64\n"));
        assert!(info.contains("\tsource = git+https://github.com/rbee/rbee.git#tag=v0.1.0\n"));
        assert!(info.ends_with("\npkgname = llm-worker-rbee-cpu\n"));
    }

    #[test]
    fn version_mismatch_names_file_and_line() {
        let (_d, path) = write(GOOD);
        let err = check(&path, "0.2.0", "llm-worker-rbee-cpu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("PKGBUILD:3: pkgver is `0.1.0`"), "{err}");
    }

    #[test]
    fn syntax_errors_and_missing_fields_are_reported() {
        let (_d, path) = write("pkgname=x\nif then fi (\n");
        let err = check(&path, "0.1.0", "llm-worker-rbee-cpu")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("syntax error") && err.contains("line"),
            "{err}"
        );
        let (_d, path) = write("pkgname=x\npkgver=0.1.0\n");
        let err = check(&path, "0.1.0", "llm-worker-rbee-cpu")
            .unwrap_err()
            .to_string();
        for field in ["pkgrel", "arch", "source", "sha256sums"] {
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
    }
}
