//! The four measurements, each run against every server in turn with the
//! same client: pushes, pulls, load on the manifest endpoint, and memory
//! during concurrent pulls of a large blob.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::client::{check_blob, pull, push_file};
use crate::data::{Blob, disk_ceiling};
use crate::load::{LoadResult, WrkResult, head_load, run_wrk};
use crate::report::{mb_per_s, median, say};
use crate::servers::{Server, self_cpu_ticks, status_kib};
use crate::sync_trace::{SyncTrace, traced_push};
use crate::{GIB, HEAD_CONNECTIONS, OCI_MANIFEST, REPO, RSS_SAMPLE_EVERY, Settings};

// ---------------------------------------------------------------------------
// 1. Push

/// Monolithic pushes of a new blob per repetition, ours first in even
/// repetitions and Distribution first in odd ones, and the sync calls each
/// registry makes during one push.
pub(crate) struct Pushes {
    /// MB/s per repetition: rbee-registry, Distribution.
    pub(crate) push_mbs: [Vec<f64>; 2],
    /// MB/s of a local copy plus fsync of the same blob, per repetition.
    pub(crate) disk_mbs: Vec<f64>,
    /// Per registry; `None` when strace is missing or may not attach.
    pub(crate) syncs: Vec<Option<SyncTrace>>,
}

pub(crate) async fn pushes(
    s: &Settings,
    client: &reqwest::Client,
    registries: [&Server; 2],
    push_blobs: &[Blob],
    sync_check: &Blob,
    root: &Path,
) -> Result<Pushes> {
    say(format!(
        "\n## push {} MiB, monolithic (POST + PUT ?digest=), {} repetitions",
        s.blob_mib, s.push_reps
    ));
    let mut push_mbs = [Vec::new(), Vec::new()];
    let mut disk_mbs = Vec::new();
    for (i, blob) in push_blobs.iter().enumerate() {
        disk_mbs.push(disk_ceiling(blob, root)?);
        say(format!(
            "  rep {i} local copy     {:>7.0} MB/s (copy + fsync, context)",
            disk_mbs[i]
        ));
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let server = registries[k];
            let elapsed = push_file(client, &server.base, blob)
                .await
                .with_context(|| server.label)?;
            check_blob(client, &server.base, blob)
                .await
                .with_context(|| server.label)?;
            push_mbs[k].push(mb_per_s(blob.size, elapsed));
            say(format!(
                "  rep {i} {:<14} {:>7.0} MB/s ({:.2} s)",
                server.label,
                push_mbs[k].last().unwrap_or(&0.0),
                elapsed.as_secs_f64()
            ));
        }
    }
    let mut syncs = Vec::new();
    for server in registries {
        let trace = traced_push(client, server, sync_check, root)
            .await
            .with_context(|| server.label)?;
        let text = trace
            .as_ref()
            .map_or_else(|| "n/a (strace unavailable)".into(), SyncTrace::describe);
        say(format!(
            "  sync calls during one 16 MiB push, {}: {text}",
            server.label
        ));
        syncs.push(trace);
    }
    Ok(Pushes {
        push_mbs,
        disk_mbs,
        syncs,
    })
}

// ---------------------------------------------------------------------------
// 2. Pull

/// Pulls of the same blob from each server, in rotating order, after one
/// verified warm-up pull each.
pub(crate) struct Pulls {
    /// MB/s per repetition: rbee-registry, Distribution, nginx.
    pub(crate) pull_mbs: [Vec<f64>; 3],
    /// Server CPU seconds (user + sys) per GiB served, per server.
    pub(crate) pull_cpu: Vec<f64>,
    /// The bench's own CPU seconds per GiB pulled, per server.
    pub(crate) client_cpu: Vec<f64>,
}

pub(crate) async fn pulls(
    s: &Settings,
    client: &reqwest::Client,
    servers: [&Server; 3],
    pull_blob: &Blob,
    hz: f64,
) -> Result<Pulls> {
    let [ours, dist, nginx] = servers;
    let pulled = servers;
    say(format!(
        "\n## pull {} MiB, {} repetitions",
        s.blob_mib, s.pull_reps
    ));
    let file_name = pull_blob
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let urls = [
        format!("{}/v2/{REPO}/blobs/{}", ours.base, pull_blob.digest),
        format!("{}/v2/{REPO}/blobs/{}", dist.base, pull_blob.digest),
        format!("{}/{file_name}", nginx.base),
    ];
    for (server, url) in pulled.iter().zip(&urls) {
        let (n, digest) = pull(client.clone(), url.clone(), true)
            .await
            .with_context(|| server.label)?;
        ensure!(
            n == pull_blob.size && digest.as_deref() == Some(pull_blob.digest.as_str()),
            "{}: warm-up pull returned wrong bytes",
            server.label
        );
    }
    let mut pull_mbs = [Vec::new(), Vec::new(), Vec::new()];
    let mut server_ticks = [0u64; 3];
    let mut client_ticks = [0u64; 3];
    let mut served = [0u64; 3];
    for rep in 0..s.pull_reps {
        for j in 0..3 {
            let k = (rep + j) % 3;
            let server = pulled[k];
            let (c0, me0) = (server.cpu_ticks()?, self_cpu_ticks()?);
            let start = Instant::now();
            let (n, _) = pull(client.clone(), urls[k].clone(), false)
                .await
                .with_context(|| server.label)?;
            let elapsed = start.elapsed();
            let (c1, me1) = (server.cpu_ticks()?, self_cpu_ticks()?);
            ensure!(
                n == pull_blob.size,
                "{}: pulled {n} bytes of {}",
                server.label,
                pull_blob.size
            );
            server_ticks[k] += c1 - c0;
            client_ticks[k] += me1 - me0;
            served[k] += n;
            pull_mbs[k].push(mb_per_s(n, elapsed));
        }
        say(format!(
            "  rep {rep}: rbee-registry {:>6.0}  Distribution {:>6.0}  nginx {:>6.0} MB/s",
            pull_mbs[0][rep], pull_mbs[1][rep], pull_mbs[2][rep]
        ));
    }
    let per_gib = |ticks: u64, bytes: u64| ticks as f64 / hz / (bytes as f64 / GIB);
    let pull_cpu: Vec<f64> = (0..3)
        .map(|k| per_gib(server_ticks[k], served[k]))
        .collect();
    let client_cpu: Vec<f64> = (0..3)
        .map(|k| per_gib(client_ticks[k], served[k]))
        .collect();
    Ok(Pulls {
        pull_mbs,
        pull_cpu,
        client_cpu,
    })
}

// ---------------------------------------------------------------------------
// 3. HEAD manifest by tag

/// HEAD of the manifest by tag at `HEAD_CONNECTIONS` connections (the
/// bench's generator), with wrk measuring GET of the same manifest as a
/// cross-check; medians over the rounds, per registry.
pub(crate) struct ManifestLoad {
    pub(crate) head_rps: Vec<f64>,
    pub(crate) head_p50: Vec<f64>,
    pub(crate) head_p99: Vec<f64>,
    pub(crate) get_rps: Vec<f64>,
    pub(crate) get_p99: Vec<f64>,
}

pub(crate) async fn manifest_load(
    s: &Settings,
    registries: [&Server; 2],
    head_urls: &[String],
    root: &Path,
) -> Result<ManifestLoad> {
    say(format!(
        "\n## HEAD manifest by tag, {HEAD_CONNECTIONS} connections, {} s, {} round(s); wrk GET as a cross-check",
        s.head_secs, s.head_rounds
    ));
    let script = root.join("get-manifest.lua");
    fs::write(
        &script,
        format!("wrk.headers[\"Accept\"] = \"{OCI_MANIFEST}\"\n"),
    )?;
    for url in head_urls {
        head_load(url, 2).await?; // warm-up
    }
    let mut head: [Vec<LoadResult>; 2] = [Vec::new(), Vec::new()];
    let mut wrk_get: [Vec<WrkResult>; 2] = [Vec::new(), Vec::new()];
    for round in 0..s.head_rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let label = registries[k].label;
            let r = head_load(&head_urls[k], s.head_secs)
                .await
                .with_context(|| label)?;
            ensure!(r.errors == 0, "{label}: {} HEAD requests failed", r.errors);
            say(format!(
                "  round {round} HEAD {label:<14} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  ({} requests)",
                r.rps, r.p50_ms, r.p99_ms, r.requests
            ));
            head[k].push(r);
        }
        for k in order {
            let label = registries[k].label;
            let r = run_wrk(&script, &head_urls[k], s.head_secs).with_context(|| label)?;
            say(format!(
                "  round {round} wrk GET {label:<14} {:>9.0} req/s  p99 {:.3} ms  ({} requests)",
                r.rps, r.p99_ms, r.requests
            ));
            wrk_get[k].push(r);
        }
    }
    let med_of = |v: Vec<f64>| median(&v);
    let head_rps: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.rps).collect()))
        .collect();
    let head_p50: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p50_ms).collect()))
        .collect();
    let head_p99: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p99_ms).collect()))
        .collect();
    let get_rps: Vec<f64> = wrk_get
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.rps).collect()))
        .collect();
    let get_p99: Vec<f64> = wrk_get
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p99_ms).collect()))
        .collect();
    Ok(ManifestLoad {
        head_rps,
        head_p50,
        head_p99,
        get_rps,
        get_p99,
    })
}

// ---------------------------------------------------------------------------
// 4. Peak RSS during concurrent pulls of a large blob

/// Peak RSS of `server` (its process tree) while `pullers` clients GET `url`.
pub(crate) struct ConcurrentPull {
    pub(crate) peak_mib: f64,
    pub(crate) mb_s: f64,
    pub(crate) cpu_s_per_gib: f64,
}

async fn concurrent_pull(
    client: &reqwest::Client,
    server: &Server,
    url: &str,
    blob: &Blob,
    pullers: usize,
    hz: f64,
) -> Result<ConcurrentPull> {
    let pids = server.pids();
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    for pid in &pids {
        let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pids) = (stop.clone(), pids.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(pids.iter().map(|&p| status_kib(p, "VmRSS")).sum::<u64>());
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
            peak
        })
    };
    let cpu0 = server.cpu_ticks()?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..pullers)
        .map(|_| tokio::spawn(pull(client.clone(), url.to_owned(), false)))
        .collect();
    let mut result = Ok(());
    for task in tasks {
        match task.await? {
            Ok((n, _)) if n == blob.size => {}
            Ok((n, _)) => result = Err(anyhow::anyhow!("pulled {n} bytes of {}", blob.size)),
            Err(e) => result = Err(e),
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = server.cpu_ticks()?;
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().unwrap_or(0);
    result?;
    let hwm: u64 = pids.iter().map(|&p| status_kib(p, "VmHWM")).sum();
    let served = (blob.size * pullers as u64) as f64;
    Ok(ConcurrentPull {
        peak_mib: sampled.max(hwm) as f64 / 1024.0,
        mb_s: served / 1e6 / elapsed.as_secs_f64(),
        cpu_s_per_gib: (cpu1 - cpu0) as f64 / hz / (served / GIB),
    })
}

/// The large blob pushed once to each registry (for context), then pulled
/// by `Settings::pullers` clients at once from each server.
pub(crate) struct ConcurrentPulls {
    /// MB/s of the one push: rbee-registry, Distribution.
    pub(crate) big_push: Vec<f64>,
    /// RSS in MiB of each server before the pulls.
    pub(crate) idle_rss: Vec<f64>,
    /// Per server: rbee-registry, Distribution, nginx.
    pub(crate) conc: Vec<ConcurrentPull>,
}

pub(crate) async fn concurrent_pulls(
    s: &Settings,
    client: &reqwest::Client,
    servers: [&Server; 3],
    big: &Blob,
    hz: f64,
) -> Result<ConcurrentPulls> {
    let [ours, dist, nginx] = servers;
    let registries = [ours, dist];
    let pulled = servers;
    say(format!(
        "\n## {} concurrent pulls of {} MiB",
        s.pullers, s.big_mib
    ));
    let mut big_push = Vec::new();
    for server in registries {
        let elapsed = push_file(client, &server.base, big)
            .await
            .with_context(|| server.label)?;
        check_blob(client, &server.base, big)
            .await
            .with_context(|| server.label)?;
        big_push.push(mb_per_s(big.size, elapsed));
        say(format!(
            "  push {:<14} {:>7.0} MB/s (context, not a target)",
            server.label,
            mb_per_s(big.size, elapsed)
        ));
    }
    let big_urls = [
        format!("{}/v2/{REPO}/blobs/{}", ours.base, big.digest),
        format!("{}/v2/{REPO}/blobs/{}", dist.base, big.digest),
        format!("{}/big.bin", nginx.base),
    ];
    let idle_rss: Vec<f64> = pulled
        .iter()
        .map(|srv| {
            srv.pids()
                .iter()
                .map(|&p| status_kib(p, "VmRSS"))
                .sum::<u64>() as f64
                / 1024.0
        })
        .collect();
    let mut conc = Vec::new();
    for (server, url) in pulled.iter().zip(&big_urls) {
        let r = concurrent_pull(client, server, url, big, s.pullers, hz)
            .await
            .with_context(|| server.label)?;
        say(format!(
            "  {:<14} peak RSS {:>6.1} MiB  (before: {:.1} MiB)  {:>6.0} MB/s aggregate  {:.3} CPU s/GiB",
            server.label,
            r.peak_mib,
            idle_rss[conc.len()],
            r.mb_s,
            r.cpu_s_per_gib
        ));
        conc.push(r);
    }
    Ok(ConcurrentPulls {
        big_push,
        idle_rss,
        conc,
    })
}
