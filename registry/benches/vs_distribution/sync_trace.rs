//! The durability check: which fsync-like calls a server makes while it takes
//! one push, counted by `strace` (untimed).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::client::push_file;
use crate::data::Blob;
use crate::servers::{Server, signal};
use crate::which;

pub(crate) struct SyncTrace {
    pub(crate) calls: usize,
    pub(crate) targets: Vec<String>,
}

impl SyncTrace {
    pub(crate) fn describe(&self) -> String {
        if self.calls == 0 {
            return "none".into();
        }
        format!("{} ({})", self.calls, self.targets.join(", "))
    }
}

/// Replaces upload ids and digests in a path by `<id>`.
fn shorten_path(path: &str) -> String {
    path.split('/')
        .map(|part| {
            let long_id =
                part.len() >= 32 && part.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if long_id { "<id>" } else { part }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Pushes `blob` while `strace` counts fsync-like calls of the server. `None`
/// when strace is missing or may not attach.
pub(crate) async fn traced_push(
    client: &reqwest::Client,
    server: &Server,
    blob: &Blob,
    root: &Path,
) -> Result<Option<SyncTrace>> {
    if which("strace").is_none() {
        return Ok(None);
    }
    let out = root.join(format!("strace-{}.txt", server.pid()));
    let err_path = root.join(format!("strace-{}.err", server.pid()));
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,syncfs,sync",
            "-o",
        ])
        .arg(&out)
        .arg("-p")
        .arg(server.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path)?)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fs::read_to_string(&err_path)
            .unwrap_or_default()
            .contains("attached")
        {
            break;
        }
        if strace.try_wait()?.is_some() || Instant::now() > deadline {
            let _ = strace.kill();
            let _ = strace.wait();
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed = push_file(client, &server.base, blob).await;
    signal(strace.id(), "INT");
    let _ = strace.wait();
    pushed?;
    let text = fs::read_to_string(&out).unwrap_or_default();
    let root_text = format!("{}/", root.display());
    let mut trace = SyncTrace {
        calls: 0,
        targets: Vec::new(),
    };
    for line in text.lines() {
        let Some(call) = [
            "fsync(",
            "fdatasync(",
            "sync_file_range(",
            "syncfs(",
            "sync(",
        ]
        .into_iter()
        .find(|c| line.contains(c)) else {
            continue;
        };
        trace.calls += 1;
        let after = &line[line.find(call).unwrap_or(0) + call.len()..];
        let target = match (after.find('<'), after.find('>')) {
            (Some(a), Some(b)) if a < b => shorten_path(&after[a + 1..b].replace(&root_text, "")),
            _ => "?".into(),
        };
        let target = format!(
            "{}{}",
            &call[..call.len() - 1],
            if target.is_empty() {
                String::new()
            } else {
                format!(" {target}")
            }
        );
        if !trace.targets.contains(&target) {
            trace.targets.push(target);
        }
    }
    Ok(Some(trace))
}
