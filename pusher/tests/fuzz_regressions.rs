//! Bugs the `pkgbuild` fuzz target found (`fuzz/fuzz_targets/pkgbuild.rs`),
//! each replayed through the public API: a real PKGBUILD read by bash, so
//! the test covers the path a publisher takes.

use std::path::PathBuf;

use rbee_pusher::pkgbuild::{self, Pkgbuild};

const VERSION: &str = "0.1.0";
const ID: &str = "hello-worker-rbee-cpu";

/// A PKGBUILD with every required variable, which rbee-hive can build,
/// plus `extra` lines.
fn write(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("PKGBUILD");
    let text = format!(
        "pkgname=hello-worker-rbee-cpu\npkgver={VERSION}\npkgrel=1\narch=('x86_64')\n\
         source=('git+https://example.com/a.git#tag=v1')\nsha256sums=('SKIP')\n\
         build() {{\n  true\n}}\npackage() {{\n  install -D x \"$pkgdir/usr/local/bin/$pkgname\"\n}}\n\
         {extra}\n"
    );
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Fuzz input `crash-6b06cd8a…` (now `fuzz/seeds/pkgbuild/srcinfo-line-break.json`):
/// a `sha256sums` value holding a line break came out of `.SRCINFO` as two
/// lines, the second one `sha256sumse/rbee-oci`. A value can forge whole
/// `.SRCINFO` entries that way (here an extra `source`), so the PKGBUILD
/// is refused, naming the variable.
#[test]
fn a_line_break_in_a_value_cannot_forge_a_srcinfo_line() {
    for value in [
        r"$'A worker\n\tsource = https://evil.example/x'",
        r"$'A worker\r\n\tsource = https://evil.example/x'",
        // Python's `str.splitlines`, which .SRCINFO readers use, also splits
        // on these.
        r"$'A worker\v\tsource = x'",
        r"$'A worker\x1e\tsource = x'",
        "'A worker\u{2028}\tsource = x'",
    ] {
        let (_dir, path) = write(&format!("pkgdesc={value}"));
        let err = pkgbuild::check(&path, VERSION, ID)
            .expect_err(value)
            .to_string();
        assert!(err.contains("`pkgdesc`"), "{value}: {err}");
        assert!(err.contains("line break"), "{value}: {err}");
    }
    // The same refusal from the pure checks, for values built in code.
    let (_dir, path) = write("");
    let mut p = pkgbuild::check(&path, VERSION, ID).unwrap();
    p.vars
        .push(("depends".into(), vec!["a\nsource = b".into()]));
    let problems = pkgbuild::problems(&p, "PKGBUILD", VERSION);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("`depends`"), "{problems:?}");
}

/// Found while writing the `pkgbuild` target's decoding invariant: bash's
/// output marked names with `\x01` but left values unmarked, so a value
/// starting with `\x01` was read as the name of another variable (here a
/// second `pkgver` that hid the real one).
#[test]
fn a_value_starting_with_the_name_marker_stays_a_value() {
    let (_dir, path) = write(r"pkgdesc=($'\001pkgver' '9.9.9')");
    let p: Pkgbuild = pkgbuild::check(&path, VERSION, ID).unwrap();
    assert_eq!(
        p.get("pkgdesc").unwrap(),
        ["\u{1}pkgver".to_owned(), "9.9.9".to_owned()]
    );
    assert_eq!(p.get("pkgver").unwrap(), [VERSION.to_owned()]);
    let names: Vec<&str> = p.vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "pkgname",
            "pkgdesc",
            "pkgver",
            "pkgrel",
            "arch",
            "source",
            "sha256sums"
        ]
    );
}
