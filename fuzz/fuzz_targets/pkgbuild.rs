//! The pure-Rust half of the PKGBUILD checks (`rbee_pusher::pkgbuild`).
//!
//! `pkgbuild::check` runs `bash -n` and then *sources* the PKGBUILD in bash
//! to read its variables; running arbitrary generated shell code is not
//! something to fuzz (it would execute it), so this target starts where
//! bash stops: from the variables bash would print, it fuzzes
//! `read_printed` (decoding bash's output), `problems` (the checks) and
//! `srcinfo` (the `.SRCINFO` writer). An input that is not a JSON object
//! is fed to `read_printed` as raw bash output.
//!
//! Invariants: what bash prints decodes to exactly the variables it
//! printed; a PKGBUILD without problems has every required variable and
//! the right `pkgver`; and its `.SRCINFO` reads back line by line to the
//! same keys and values, so no value can forge a line of it.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rbee_pusher::pkgbuild::{self, Pkgbuild, REQUIRED, SRCINFO_KEYS};

/// A PKGBUILD's variables as bash would read them, written as JSON so that
/// seeds are easy to write: `{"version": "0.1.0", "vars": {"pkgname":
/// ["x"], ...}}`. Names outside `pkgname` and the `.SRCINFO` keys are
/// ignored, as the reader script never prints them.
#[derive(Debug, serde::Deserialize)]
struct Input {
    version: String,
    #[serde(default)]
    text: String,
    vars: BTreeMap<String, Vec<String>>,
}

fuzz_target!(|data: &[u8]| {
    if data.first() != Some(&b'{') {
        // Anything at all as bash's output: decoding never fails, and what
        // it decodes to is printed and decoded again unchanged.
        let vars = pkgbuild::read_printed(data);
        assert_eq!(pkgbuild::read_printed(&print_like_bash(&vars)), vars);
        let p = Pkgbuild {
            vars,
            text: String::from_utf8_lossy(data).into_owned(),
        };
        let _ = pkgbuild::problems(&p, "PKGBUILD", "0.1.0");
        let _ = pkgbuild::srcinfo(&p);
        return;
    }
    let Ok(Input {
        version,
        text,
        mut vars,
    }) = serde_json::from_slice(data)
    else {
        return;
    };
    // Bash's order, and no NUL byte: a bash value cannot hold one.
    let vars: Vec<(String, Vec<String>)> = std::iter::once("pkgname")
        .chain(SRCINFO_KEYS)
        .filter_map(|name| {
            let values = vars.remove(name)?;
            let values = values.into_iter().map(|v| v.replace('\0', "")).collect();
            Some((name.to_owned(), values))
        })
        .collect();
    let printed = print_like_bash(&vars);
    assert_eq!(pkgbuild::read_printed(&printed), vars, "{printed:?}");

    let p = Pkgbuild { vars, text };
    if !pkgbuild::problems(&p, "PKGBUILD", &version).is_empty() {
        return;
    }
    for name in REQUIRED {
        assert!(p.get(name).is_some_and(|v| v.iter().any(|x| !x.is_empty())));
    }
    assert_eq!(p.get("pkgver").unwrap()[0], version);
    assert_eq!(
        p.get("source").unwrap().len(),
        p.get("sha256sums").unwrap().len()
    );

    let info = pkgbuild::srcinfo(&p);
    let name = &p.get("pkgname").unwrap()[0];
    let mut want = vec![("pkgbase".to_owned(), name.clone())];
    for key in SRCINFO_KEYS {
        for v in p.get(key).unwrap_or(&[]) {
            if !v.is_empty() {
                want.push((key.to_owned(), v.clone()));
            }
        }
    }
    want.push(("pkgname".to_owned(), name.clone()));
    assert_eq!(read_srcinfo(&info), want, "{info:?}");
});

/// What the reader script in `pkgbuild::check` prints: `\x01NAME\0`, then
/// `\x02VALUE\0` per element.
fn print_like_bash(vars: &[(String, Vec<String>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, values) in vars {
        out.push(1);
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        for v in values {
            out.push(2);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
    }
    out
}

/// Reads `.SRCINFO` as AUR tools do: one `key = value` per non-empty line,
/// package-level lines indented by a tab.
fn read_srcinfo(info: &str) -> Vec<(String, String)> {
    info.split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_prefix('\t').unwrap_or(l);
            let (k, v) = l
                .split_once(" = ")
                .unwrap_or_else(|| panic!("{l:?} is not `key = value`"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}
