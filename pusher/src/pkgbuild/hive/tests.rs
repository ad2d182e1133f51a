//! One test per rbee-hive rule: a PKGBUILD that follows them all passes,
//! and breaking each rule yields exactly its message.

use super::*;
use crate::pkgbuild::check;

const ID: &str = "llm-worker-rbee-cpu";

const GOOD: &str = r#"pkgname=llm-worker-rbee-cpu
pkgver=0.1.0
pkgrel=1
arch=('x86_64')
source=("git+https://github.com/rbee/rbee.git#tag=v0.1.0")
sha256sums=('SKIP')

build() {
  local features=cpu
  cd "$srcdir/rbee"
  CARGO_TARGET_DIR=target cargo build --release --features "$features" --bin "$pkgname"
  echo "${CARGO_HOME:-$HOME/.cargo}"
}

package() {
  install -Dm755 "$srcdir/rbee/target/release/$pkgname" "${pkgdir}/usr/local/bin/${pkgname}"
}
"#;

/// The problems `check` reports for `text` (empty when it passes).
fn problems_of(text: &str, id: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("PKGBUILD");
    std::fs::write(&path, text).unwrap();
    match check(&path, "0.1.0", id) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

/// Asserts that `text` breaks exactly one rule, whose message contains
/// every one of `needles`.
fn breaks_one_rule(text: &str, id: &str, needles: &[&str]) {
    let problems = problems_of(text, id);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    for needle in needles {
        assert!(problems[0].contains(needle), "{needle:?} in {problems:#?}");
    }
}

#[test]
fn a_pkgbuild_that_follows_every_rule_passes() {
    assert_eq!(problems_of(GOOD, ID), Vec::<String>::new());
}

#[test]
fn the_worker_id_must_name_cpu_cuda_or_metal() {
    breaks_one_rule(
        GOOD,
        "llm-worker-rbee-rocm",
        &["`llm-worker-rbee-rocm`", "`cpu`, `cuda`, `metal`"],
    );
    for id in ["llm-worker-rbee-cuda", "llm-worker-rbee-metal"] {
        assert_eq!(problems_of(GOOD, id), Vec::<String>::new());
    }
}

#[test]
fn sources_must_be_git() {
    let text = GOOD.replace(
        "git+https://github.com/rbee/rbee.git#tag=v0.1.0",
        "https://github.com/rbee/rbee/archive/v0.1.0.tar.gz",
    );
    breaks_one_rule(&text, ID, &["PKGBUILD:5:", "is not a `git+` URL"]);
    let text = GOOD.replace("#tag=v0.1.0", "#tag=v0.1.0?signed");
    assert_eq!(problems_of(&text, ID), Vec::<String>::new());
    let text = GOOD.replace("#tag=v0.1.0", "#revision=abc");
    breaks_one_rule(&text, ID, &["only `#tag=`, `#branch=` and `#commit=`"]);
}

#[test]
fn source_has_no_shell_expansion() {
    // The example's old form: bash expands it, rbee-hive does not.
    let text = GOOD.replace("#tag=v0.1.0", "#tag=v${pkgver}");
    breaks_one_rule(&text, ID, &["PKGBUILD:5:", "shell expansion", "v${pkgver}"]);
    // A multi-line array: rbee-hive reads only one-line arrays.
    let text = GOOD.replace(
        "source=(\"git+https://github.com/rbee/rbee.git#tag=v0.1.0\")",
        "source=(\n  \"git+https://github.com/rbee/rbee.git#tag=v0.1.0\"\n)",
    );
    breaks_one_rule(&text, ID, &["rbee-hive reads source=() as [\"(\"]"]);
}

#[test]
fn pkgname_pkgver_pkgrel_are_literal() {
    let text = GOOD.replace("pkgrel=1", "_rel=1\npkgrel=$_rel");
    breaks_one_rule(&text, ID, &["reads pkgrel as `$_rel`, bash as `1`"]);
}

#[test]
fn build_and_package_are_on_their_own_lines() {
    let text = GOOD.replace(
        "package() {\n  install",
        "package() { true; }\npackage2() {\n  install",
    );
    let problems = problems_of(&text, ID);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("write `package() {` alone on its line")),
        "{problems:#?}"
    );
    let text = GOOD.split("package() {").next().unwrap().to_owned();
    breaks_one_rule(&text, ID, &["no `package() {` line"]);
}

#[test]
fn build_and_package_see_only_what_rbee_hive_exports() {
    let text = GOOD.replace("cd \"$srcdir/rbee\"", "cd \"$srcdir/$_srcname\"");
    breaks_one_rule(
        &text,
        ID,
        &[
            "PKGBUILD:8:",
            "build() uses `$_srcname`",
            "set -e -u",
            "unbound variable",
        ],
    );
    // Single quotes and `\$` are not expansions; defaults are safe.
    let text = GOOD.replace(
        "echo \"${CARGO_HOME:-$HOME/.cargo}\"",
        "echo '$NOT_EXPANDED' \\$ALSO_NOT \"${MAYBE-}\"",
    );
    assert_eq!(problems_of(&text, ID), Vec::<String>::new());
}

#[test]
fn the_binary_is_installed_at_usr_local_bin_pkgname() {
    // The example's old form: the binary under its own name.
    let text = GOOD.replace(
        "\"${pkgdir}/usr/local/bin/${pkgname}\"",
        "\"$pkgdir/usr/local/bin/llm-worker-rbee\"",
    );
    breaks_one_rule(
        &text,
        ID,
        &["PKGBUILD:15:", "`/usr/local/bin/llm-worker-rbee-cpu`"],
    );
    let text = GOOD.replace(
        "\"${pkgdir}/usr/local/bin/${pkgname}\"",
        "$pkgdir/usr/local/bin/llm-worker-rbee-cpu",
    );
    assert_eq!(problems_of(&text, ID), Vec::<String>::new());
}

#[test]
fn the_body_rbee_hive_runs_must_parse() {
    // makepkg parses this, but rbee-hive's brace counting takes the
    // quoted `}` for the end of build() and runs half an `if`.
    let text = GOOD.replace(
        "  local features=cpu\n",
        "  local features=cpu\n  if true; then\n    echo '}'\n  fi\n",
    );
    let problems = problems_of(&text, ID);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("the build() body rbee-hive would run does not parse")),
        "{problems:#?}"
    );
}

#[test]
fn unbound_reads_names_and_skips_specials() {
    assert_eq!(
        unbound("echo $1 $@ $# ${#a[@]} $(pwd) $((1+2)) $x ${y} ${z:-d}\nx=1"),
        ["y"]
    );
}
