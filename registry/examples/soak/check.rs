//! The reads that compare the registry with the clients' models.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::model::{Expect, sha256};
use crate::{Answer, Soak};

/// One read and what it must show.
#[derive(Debug)]
pub enum Check {
    Blob {
        repo: String,
        digest: String,
        expect: Expect,
    },
    Manifest {
        repo: String,
        digest: String,
        expect: Expect,
    },
    Tag {
        repo: String,
        tag: String,
        allowed: BTreeSet<Option<String>>,
    },
    Referrers {
        repo: String,
        subject: String,
        listed: Vec<String>,
        unlisted: Vec<String>,
    },
}

pub fn blob_checks(soak: &Soak, client: usize, r: usize) -> Vec<Check> {
    let repo = Soak::repo_name(client, r);
    let m = soak.models[client][r].lock().unwrap();
    m.blobs
        .iter()
        .filter(|(_, e)| **e != Expect::Either)
        .map(|(d, e)| Check::Blob {
            repo: repo.clone(),
            digest: d.clone(),
            expect: *e,
        })
        .collect()
}

pub fn manifest_checks(soak: &Soak, client: usize, r: usize) -> Vec<Check> {
    let repo = Soak::repo_name(client, r);
    let m = soak.models[client][r].lock().unwrap();
    let mut checks: Vec<Check> = m
        .manifests
        .iter()
        .filter(|(_, mm)| mm.expect != Expect::Either)
        .map(|(d, mm)| Check::Manifest {
            repo: repo.clone(),
            digest: d.clone(),
            expect: mm.expect,
        })
        .collect();
    for (tag, allowed) in &m.tags {
        checks.push(Check::Tag {
            repo: repo.clone(),
            tag: tag.clone(),
            allowed: allowed.clone(),
        });
    }
    let mut by_subject: BTreeMap<&String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (d, mm) in &m.manifests {
        if let Some(subject) = &mm.subject {
            let entry = by_subject.entry(subject).or_default();
            match mm.expect {
                Expect::Present => entry.0.push(d.clone()),
                Expect::Absent => entry.1.push(d.clone()),
                Expect::Either => {}
            }
        }
    }
    for (subject, (listed, unlisted)) in by_subject {
        checks.push(Check::Referrers {
            repo: repo.clone(),
            subject: subject.clone(),
            listed,
            unlisted,
        });
    }
    checks
}

/// A GET that is retried a few times when the connection fails (a pooled
/// connection to the killed process, say). `None` after that.
pub async fn get(soak: &Soak, path: &str) -> Answer {
    for _ in 0..3 {
        if let Some(answer) = soak.send(soak.http.get(soak.url(path))).await {
            return Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Runs `check`: `Some(true)` when it holds, `Some(false)` when it found a
/// violation (recorded).
///
/// `during_run`: the registry may be down right now (a pull between two
/// restarts), so no answer is unknown rather than a violation; it is
/// returned as `None`.
pub async fn run_check(soak: &Soak, check: &Check, during_run: bool) -> Option<bool> {
    soak.counters.checks.fetch_add(1, Ordering::Relaxed);
    let fail = |what: String| {
        soak.violation(what);
        Some(false)
    };
    let no_answer = |what: String| {
        if during_run {
            None
        } else {
            fail(format!("{what}: no answer"))
        }
    };
    match check {
        Check::Blob {
            repo,
            digest,
            expect,
        }
        | Check::Manifest {
            repo,
            digest,
            expect,
        } => {
            let kind = if matches!(check, Check::Blob { .. }) {
                "blobs"
            } else {
                "manifests"
            };
            let Some((status, _, body)) = get(soak, &format!("/v2/{repo}/{kind}/{digest}")).await
            else {
                return no_answer(format!("GET {repo} {kind} {digest}"));
            };
            match (status, expect) {
                (StatusCode::OK, _) if sha256(&body) != *digest => fail(format!(
                    "{repo} {kind} {digest} read back as {}",
                    sha256(&body)
                )),
                (StatusCode::OK, Expect::Absent) => fail(format!(
                    "{repo} {kind} {digest} is back after an acknowledged delete"
                )),
                (StatusCode::NOT_FOUND, Expect::Present) => fail(format!(
                    "{repo} {kind} {digest} was acknowledged but is gone"
                )),
                (StatusCode::OK | StatusCode::NOT_FOUND, _) => Some(true),
                (status, _) => fail(format!("GET {repo} {kind} {digest}: {status}")),
            }
        }
        Check::Tag { repo, tag, allowed } => {
            let Some((status, headers, body)) =
                get(soak, &format!("/v2/{repo}/manifests/{tag}")).await
            else {
                return no_answer(format!("GET {repo}:{tag}"));
            };
            let actual = match status {
                StatusCode::OK => Some(sha256(&body)),
                StatusCode::NOT_FOUND => None,
                other => return fail(format!("GET {repo}:{tag}: {other}")),
            };
            let header = headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok());
            if actual.is_some() && header != actual.as_deref() {
                return fail(format!(
                    "{repo}:{tag} body {actual:?} but digest header {header:?}"
                ));
            }
            if allowed.contains(&actual) {
                Some(true)
            } else {
                fail(format!(
                    "{repo}:{tag} names {actual:?}; acknowledged: {allowed:?}"
                ))
            }
        }
        Check::Referrers {
            repo,
            subject,
            listed,
            unlisted,
        } => {
            let Some((status, _, body)) =
                get(soak, &format!("/v2/{repo}/referrers/{subject}")).await
            else {
                return no_answer(format!("GET referrers of {subject} in {repo}"));
            };
            if status != StatusCode::OK {
                return fail(format!("GET referrers of {subject} in {repo}: {status}"));
            }
            let index: Value = serde_json::from_slice(&body).unwrap_or_default();
            let found: BTreeSet<&str> = index["manifests"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d["digest"].as_str()).collect())
                .unwrap_or_default();
            let missing: Vec<&String> = listed
                .iter()
                .filter(|d| !found.contains(d.as_str()))
                .collect();
            let ghosts: Vec<&String> = unlisted
                .iter()
                .filter(|d| found.contains(d.as_str()))
                .collect();
            if missing.is_empty() && ghosts.is_empty() {
                Some(true)
            } else {
                fail(format!(
                    "referrers of {subject} in {repo}: acknowledged but missing {missing:?}, deleted but listed {ghosts:?}"
                ))
            }
        }
    }
}

/// Reads back everything every client was told, 16 reads at a time.
pub async fn check_all(soak: &Soak) -> usize {
    let before = soak.violations.lock().unwrap().len();
    let mut checks = Vec::new();
    for client in 0..soak.models.len() {
        for r in 0..2 {
            checks.extend(blob_checks(soak, client, r));
            checks.extend(manifest_checks(soak, client, r));
        }
    }
    futures_util::stream::iter(checks.iter().map(|c| run_check(soak, c, false)))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    soak.violations.lock().unwrap().len() - before
}
