//! rbee-hive's rules for a PKGBUILD it can build.
//!
//! rbee-hive (`worker install`) does not run makepkg. It reads the PKGBUILD
//! with its own line parser, without a shell (`bin/20_rbee_hive/src/pkgbuild_parser.rs`
//! in rbee-keeper/rbee), clones only `git+` sources (`source_fetcher.rs`),
//! runs the bodies of `build()` and `package()` as bash scripts under
//! `set -e -u` with only `pkgname`, `pkgver`, `pkgrel`, `srcdir` and
//! `pkgdir` exported (`pkgbuild_executor.rs`), looks for the binary at
//! `$pkgdir/usr/local/bin/$pkgname`, and registers the worker only when its
//! id contains `cpu`, `cuda` or `metal` (`worker_install.rs`). A PKGBUILD
//! that makepkg builds can still fail every one of these, so
//! `rbee-pusher validate` checks them, one message per rule.
//!
//! [`problems`] is pure Rust (it reads the text as rbee-hive does and
//! compares with what bash read); [`script_problems`] asks `bash -n`
//! whether the scripts rbee-hive would write parse.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::Pkgbuild;

/// The variables rbee-hive exports to `build()` and `package()`.
pub const EXPORTED: [&str; 5] = ["pkgname", "pkgver", "pkgrel", "srcdir", "pkgdir"];

/// The backends rbee-hive recognises in a worker id.
pub const BACKENDS_IN_ID: [&str; 3] = ["cpu", "cuda", "metal"];

/// Variables bash itself sets in every script, and the environment every
/// process has: references to them cannot be unbound.
const ALWAYS_SET: [&str; 22] = [
    "HOME",
    "PATH",
    "PWD",
    "IFS",
    "BASH",
    "BASH_VERSION",
    "BASHPID",
    "BASH_SOURCE",
    "FUNCNAME",
    "HOSTNAME",
    "HOSTTYPE",
    "OSTYPE",
    "MACHTYPE",
    "UID",
    "EUID",
    "PPID",
    "RANDOM",
    "SECONDS",
    "LINENO",
    "PIPESTATUS",
    "SHLVL",
    "OPTIND",
];

/// The PKGBUILD as rbee-hive's parser sees it.
#[derive(Debug, Default)]
struct HiveView {
    /// `name=value` lines outside functions, value unquoted, last one wins.
    vars: Vec<(String, String, usize)>,
    /// `build()` and `package()`: declaration line (1-based), the trimmed
    /// declaration, and the body (or `None` when the braces never close).
    functions: Vec<(&'static str, usize, String, Option<String>)>,
}

impl HiveView {
    /// rbee-hive's `Parser::parse`: trimmed lines; comments and blank lines
    /// skipped; a line with `=` is an assignment; a line starting with
    /// `build()` or `package()` opens a function whose body runs from the
    /// next line to the line where `{`/`}` counting reaches zero.
    fn read(text: &str) -> HiveView {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let mut view = HiveView::default();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if line.starts_with('#') || line.is_empty() {
                i += 1;
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                view.vars
                    .push((key.trim().to_owned(), value.trim().to_owned(), i + 1));
                i += 1;
                continue;
            }
            let name = ["build", "package"]
                .into_iter()
                .find(|f| line.starts_with(&format!("{f}()")));
            let Some(name) = name else {
                i += 1;
                continue;
            };
            let start = i;
            i += 1;
            let mut depth = 1i64;
            let mut body = String::new();
            let mut closed = false;
            while i < lines.len() {
                let l = lines[i];
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                i += 1;
                if depth == 0 {
                    closed = true;
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            view.functions.push((
                name,
                start + 1,
                line.to_owned(),
                closed.then(|| body.trim().to_owned()),
            ));
        }
        view
    }

    /// The last assignment of `name`, with its line.
    fn var(&self, name: &str) -> Option<(&str, usize)> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    /// The body of `name`, when rbee-hive finds it (the last one wins).
    fn body(&self, name: &str) -> Option<&str> {
        self.functions
            .iter()
            .rev()
            .find(|f| f.0 == name)
            .and_then(|f| f.3.as_deref())
    }
}

/// rbee-hive's `unquote`: one pair of surrounding quotes removed.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// rbee-hive's `parse_array`: a one-line `( ... )` split on whitespace,
/// each element unquoted; anything else is one element.
fn hive_array(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.len() >= 2 && value.starts_with('(') && value.ends_with(')') {
        value[1..value.len() - 1]
            .split_whitespace()
            .map(|s| unquote(s).to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        vec![unquote(value).to_owned()]
    }
}

/// What breaks rbee-hive's install of this PKGBUILD for `worker_id`;
/// empty when nothing does. `pkgbuild` holds what bash read.
pub fn problems(pkgbuild: &Pkgbuild, shown: &str, worker_id: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let view = HiveView::read(&pkgbuild.text);
    let at = |line: usize| format!("{shown}:{line}");

    // The worker id names a backend rbee-hive knows.
    if !BACKENDS_IN_ID.iter().any(|b| worker_id.contains(b)) {
        problems.push(format!(
            "{shown}: worker id `{worker_id}` contains none of `cpu`, `cuda`, `metal`: \
             rbee-hive derives the worker type from the id and refuses to install any other"
        ));
    }

    // Sources: literal, one line, `git+` only.
    if let Some((raw, line)) = view.var("source") {
        if raw.contains('$') || raw.contains('`') {
            problems.push(format!(
                "{}: source=() uses shell expansion (`{raw}`): rbee-hive reads it without a \
                 shell and hands the text to git as it is; write the URL out literally",
                at(line)
            ));
        } else {
            let hive = hive_array(raw);
            let bash = pkgbuild.get("source").unwrap_or(&[]);
            if hive != bash {
                problems.push(format!(
                    "{}: rbee-hive reads source=() as {hive:?}, bash as {bash:?}: rbee-hive \
                     reads only a one-line array of plain words; write it as \
                     source=('git+https://…#tag=…') on one line",
                    at(line)
                ));
            }
        }
    }
    let source_line = view.var("source").map_or(0, |(_, l)| l);
    for url in pkgbuild.get("source").unwrap_or(&[]) {
        if !url.starts_with("git+") {
            problems.push(format!(
                "{}: source `{url}` is not a `git+` URL: rbee-hive fetches only git sources \
                 (`git+https://…#tag=…`) and aborts on any other",
                at(source_line)
            ));
        } else if let Some((_, fragment)) = url.split_once('#')
            && !["tag=", "branch=", "commit="]
                .iter()
                .any(|p| fragment.starts_with(p))
        {
            problems.push(format!(
                "{}: source `{url}`: rbee-hive understands only `#tag=`, `#branch=` and \
                 `#commit=` and would clone the default branch instead",
                at(source_line)
            ));
        }
    }

    // pkgname, pkgver, pkgrel: rbee-hive exports its own reading of them.
    for name in ["pkgname", "pkgver", "pkgrel"] {
        let bash = pkgbuild.get(name).and_then(|v| v.first());
        if let (Some((raw, line)), Some(bash)) = (view.var(name), bash)
            && unquote(raw) != bash
        {
            problems.push(format!(
                "{}: rbee-hive reads {name} as `{}`, bash as `{bash}`: rbee-hive reads it \
                 without a shell; write the value literally",
                at(line),
                unquote(raw)
            ));
        }
    }

    // build() and package(), as rbee-hive finds and runs them.
    for name in ["build", "package"] {
        let found: Vec<_> = view.functions.iter().filter(|f| f.0 == name).collect();
        let Some(&&(_, line, ref decl, ref body)) = found.last() else {
            problems.push(format!(
                "{shown}: no `{name}() {{` line: rbee-hive runs build() and then package(), \
                 each declared as `{name}() {{` at the start of a line, body on the lines below"
            ));
            continue;
        };
        if decl != &format!("{name}() {{") {
            problems.push(format!(
                "{}: write `{name}() {{` alone on its line, the body below: rbee-hive skips the \
                 rest of the declaration line (`{decl}`)",
                at(line)
            ));
        }
        let Some(body) = body else {
            problems.push(format!(
                "{}: the braces of {name}() do not balance line by line: rbee-hive counts `{{` \
                 and `}}` (quoted ones too) to find where the body ends",
                at(line)
            ));
            continue;
        };
        for var in unbound(body) {
            problems.push(format!(
                "{}: {name}() uses `${var}`, which rbee-hive does not define: it runs the body \
                 under `set -e -u` with only pkgname, pkgver, pkgrel, srcdir and pkgdir \
                 exported, so the install stops at `{var}: unbound variable`",
                at(line)
            ));
        }
    }

    // The binary where rbee-hive looks for it.
    if let (Some(body), Some(pkgname)) = (
        view.body("package"),
        pkgbuild.get("pkgname").and_then(|v| v.first()),
    ) && !installs_binary(body, pkgname)
    {
        let line = view
            .functions
            .iter()
            .rev()
            .find(|f| f.0 == "package")
            .map_or(0, |f| f.1);
        problems.push(format!(
            "{}: package() does not install to `$pkgdir/usr/local/bin/$pkgname` \
             (`/usr/local/bin/{pkgname}`): rbee-hive looks for the worker binary there and \
             nowhere else",
            at(line)
        ));
    }
    problems
}

/// Whether `body` installs a file at `$pkgdir/usr/local/bin/$pkgname`
/// (quotes and `${}` braces aside, or with the name written out).
fn installs_binary(body: &str, pkgname: &str) -> bool {
    let plain: String = body
        .replace("${pkgdir}", "$pkgdir")
        .replace("${pkgname}", "$pkgname")
        .chars()
        .filter(|c| !matches!(c, '"' | '\''))
        .collect();
    [
        "$pkgdir/usr/local/bin/$pkgname",
        &format!("$pkgdir/usr/local/bin/{pkgname}"),
    ]
    .iter()
    .any(|target| {
        plain.match_indices(target).any(|(i, m)| {
            plain[i + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == ';')
        })
    })
}

/// The variables `body` reads that would be unbound under `set -u` in
/// rbee-hive's script: not exported by rbee-hive, not set by bash, not
/// assigned in the body, and read without a default (`${x:-…}`). Single
/// quoted text and `\$` are skipped, as bash does not expand them.
fn unbound(body: &str) -> Vec<String> {
    let assigned = assigned_names(body);
    let mut found: Vec<String> = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let (mut i, mut single, mut double) = (0, false, false);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if !single => {
                i += 2;
                continue;
            }
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '$' if !single => {
                let (name, defaulted, next) = reference(&chars, i + 1);
                if let Some(name) = name
                    && !defaulted
                    && !EXPORTED.contains(&name.as_str())
                    && !ALWAYS_SET.contains(&name.as_str())
                    && !assigned.contains(&name)
                    && !found.contains(&name)
                {
                    found.push(name);
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The variable named after a `$` at `start`: its name (none for special
/// and positional parameters, `$(…)` and `$((…))`), whether it has a
/// default operator, and where scanning continues.
fn reference(chars: &[char], start: usize) -> (Option<String>, bool, usize) {
    let Some(&first) = chars.get(start) else {
        return (None, false, start);
    };
    if first == '{' {
        let name: String = chars[start + 1..]
            .iter()
            .take_while(|c| is_name_char(**c))
            .collect();
        let after = start + 1 + name.len();
        let op: String = chars[after..].iter().take(2).collect();
        let defaulted =
            [":-", ":=", ":+"].iter().any(|o| op.starts_with(o)) || op.starts_with(['-', '=', '+']);
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        return (valid.then_some(name), defaulted, after);
    }
    if first.is_ascii_alphabetic() || first == '_' {
        let name: String = chars[start..]
            .iter()
            .take_while(|c| is_name_char(**c))
            .collect();
        let next = start + name.len();
        return (Some(name), false, next);
    }
    (None, false, start)
}

/// Names the body assigns: `x=`, `local x`, `declare x`, `export x=`,
/// `readonly x`, `for x in`, `read x`.
fn assigned_names(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    for statement in body.split(['\n', ';', '&', '|']) {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let mut rest = words.as_slice();
        if let Some((first, tail)) = rest.split_first()
            && matches!(
                *first,
                "local" | "declare" | "export" | "readonly" | "typeset" | "read" | "for"
            )
        {
            rest = tail;
            if *first == "for" {
                rest = &rest[..rest.len().min(1)];
            }
            for word in rest.iter().filter(|w| !w.starts_with('-')) {
                let name = word.split('=').next().unwrap_or("");
                if !name.is_empty() && name.chars().all(is_name_char) {
                    names.push(name.to_owned());
                }
            }
            continue;
        }
        // Leading `x=value` words (assignments, or a command's environment).
        for word in rest {
            match word.split_once('=') {
                Some((name, _)) if !name.is_empty() && name.chars().all(is_name_char) => {
                    names.push(name.to_owned());
                }
                _ => break,
            }
        }
    }
    names
}

/// Asks `bash -n` whether the scripts rbee-hive would write for `build()`
/// and `package()` parse; one problem per script that does not.
pub fn script_problems(pkgbuild: &Pkgbuild, shown: &str) -> Vec<String> {
    let view = HiveView::read(&pkgbuild.text);
    let mut problems = Vec::new();
    for name in ["build", "package"] {
        let Some(body) = view.body(name) else {
            continue;
        };
        // The layout of rbee-hive's `create_build_script`.
        let script = format!(
            "#!/bin/bash\nset -e\nset -u\nexport pkgname=x\nexport pkgver=x\n\
             export pkgrel=x\nexport srcdir=x\nexport pkgdir=x\n\n{body}\n"
        );
        let outcome = Command::new("bash")
            .arg("-n")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(script.as_bytes())?;
                }
                child.wait_with_output()
            });
        match outcome {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "{shown}: the {name}() body rbee-hive would run does not parse: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => problems.push(format!(
                "{shown}: cannot run bash to check the {name}() body: {e}"
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests;
