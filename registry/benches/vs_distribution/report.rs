//! The report: medians and ratios, the targets of issue 2 with their
//! verdicts, the description of the machine, and the output (the terminal,
//! and the Markdown file `RBEE_BENCH_REPORT` names).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::measure::{ConcurrentPulls, ManifestLoad, Pulls, Pushes};
use crate::sync_trace::SyncTrace;
use crate::{HEAD_CONNECTIONS, Settings};

// ---------------------------------------------------------------------------
// Small statistics and formatting

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

pub(crate) fn machine(root: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let mem_kib = status_like("/proc/meminfo", "MemTotal");
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let df = Command::new("df")
        .arg("-T")
        .arg(root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let fs_type = df
        .lines()
        .nth(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} on {}",
                f.get(1).unwrap_or(&"?"),
                f.first().unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "?".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "nproc {nproc}, CPU {cpu}, RAM {:.1} GiB, kernel {}, storage {fs_type} (`df -T` of the temp folder)",
        mem_kib as f64 / (1u64 << 20) as f64,
        kernel.trim()
    )
}

fn status_like(path: &str, key: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------
// Figures, ratios and targets

/// What the report says about the run besides the measurements.
pub(crate) struct Run {
    pub(crate) started: chrono::DateTime<chrono::Local>,
    pub(crate) machine: String,
    pub(crate) load_start: String,
    pub(crate) load_end: String,
    /// When the registry binary under test was built.
    pub(crate) bin_age: String,
}

/// Prints the figures, ratios and targets as Markdown, with how many
/// targets were met, and writes them to `RBEE_BENCH_REPORT` when it is set.
pub(crate) fn publish(
    s: &Settings,
    run: &Run,
    pushes: &Pushes,
    pulls: &Pulls,
    manifest_load: &ManifestLoad,
    concurrent: &ConcurrentPulls,
) -> Result<()> {
    let Run {
        started,
        machine,
        load_start,
        load_end,
        bin_age,
    } = run;
    let Pushes {
        push_mbs,
        disk_mbs,
        syncs,
    } = pushes;
    let Pulls {
        pull_mbs,
        pull_cpu,
        client_cpu,
    } = pulls;
    let ManifestLoad {
        head_rps,
        head_p50,
        head_p99,
        get_rps,
        get_p99,
    } = manifest_load;
    let ConcurrentPulls {
        big_push,
        idle_rss,
        conc,
    } = concurrent;
    let push_med = [median(&push_mbs[0]), median(&push_mbs[1])];
    let pull_med = [
        median(&pull_mbs[0]),
        median(&pull_mbs[1]),
        median(&pull_mbs[2]),
    ];
    let push_ratio = push_med[0] / push_med[1];
    let pull_vs_dist = pull_med[0] / pull_med[1];
    let pull_vs_nginx = pull_med[0] / pull_med[2];
    let head_ratio = head_rps[0] / head_rps[1];
    let p99_ratio = head_p99[0] / head_p99[1];
    let sync_text = |t: &Option<SyncTrace>| {
        t.as_ref().map_or_else(
            || "n/a".into(),
            |t| {
                if t.calls > 0 {
                    format!("yes, {}", t.calls)
                } else {
                    "no".into()
                }
            },
        )
    };

    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "### Run of {}", started.format("%Y-%m-%d %H:%M %Z"))?;
    writeln!(w)?;
    writeln!(
        w,
        "- Command: `{}CARGO_TARGET_DIR=... cargo bench -p rbee-registry --bench vs_distribution`",
        std::env::var("TMPDIR")
            .map(|t| format!("TMPDIR={t} "))
            .unwrap_or_default()
    )?;
    writeln!(w, "- Machine: {machine}")?;
    writeln!(
        w,
        "- Load average (1/5/15 min) at start: {load_start}; at end: {load_end}"
    )?;
    writeln!(
        w,
        "- Servers: rbee-registry {} (release build of {bin_age}), {}, {}; GET cross-check with {}",
        env!("CARGO_PKG_VERSION"),
        first_line("docker-registry", &["--version"]),
        first_line("nginx", &["-v"]),
        first_line("wrk", &["-v"])
            .split(" [")
            .next()
            .unwrap_or_default(),
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| measure | rbee-registry | Distribution | nginx | ours/Distribution | ours/nginx |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|")?;
    writeln!(
        w,
        "| push {} MiB, median MB/s ({} reps) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.blob_mib, s.push_reps, push_med[0], push_med[1], push_ratio
    )?;
    writeln!(
        w,
        "| fsyncs before answering a push (strace, calls) | {} | {} | – | | |",
        sync_text(&syncs[0]),
        sync_text(&syncs[1])
    )?;
    writeln!(
        w,
        "| pull {} MiB, median MB/s ({} reps) | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
        s.blob_mib, s.pull_reps, pull_med[0], pull_med[1], pull_med[2], pull_vs_dist, pull_vs_nginx
    )?;
    writeln!(
        w,
        "| pull, server CPU s per GiB (user+sys) | {:.3} | {:.3} | {:.3} | {:.2}x | {:.2}x |",
        pull_cpu[0],
        pull_cpu[1],
        pull_cpu[2],
        pull_cpu[0] / pull_cpu[1],
        pull_cpu[0] / pull_cpu[2]
    )?;
    writeln!(
        w,
        "| pull, client CPU s per GiB (same client) | {:.3} | {:.3} | {:.3} | | |",
        client_cpu[0], client_cpu[1], client_cpu[2]
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, req/s ({HEAD_CONNECTIONS} conn, {} s, bench's HEAD client) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.head_secs, head_rps[0], head_rps[1], head_ratio
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, p50 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        head_p50[0],
        head_p50[1],
        head_p50[0] / head_p50[1]
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, p99 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        head_p99[0], head_p99[1], p99_ratio
    )?;
    writeln!(
        w,
        "| GET manifest by tag (wrk -t2 -c{HEAD_CONNECTIONS}), req/s | {:.0} | {:.0} | – | {:.2}x | – |",
        get_rps[0],
        get_rps[1],
        get_rps[0] / get_rps[1]
    )?;
    writeln!(
        w,
        "| GET manifest by tag (wrk), p99 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        get_p99[0],
        get_p99[1],
        get_p99[0] / get_p99[1]
    )?;
    writeln!(
        w,
        "| peak RSS during {} x {} MiB pulls, MiB | {:.1} | {:.1} | {:.1} | {:.2}x | |",
        s.pullers,
        s.big_mib,
        conc[0].peak_mib,
        conc[1].peak_mib,
        conc[2].peak_mib,
        conc[0].peak_mib / conc[1].peak_mib
    )?;
    writeln!(
        w,
        "| RSS before those pulls, MiB | {:.1} | {:.1} | {:.1} | | |",
        idle_rss[0], idle_rss[1], idle_rss[2]
    )?;
    writeln!(
        w,
        "| {} x {} MiB pulls, aggregate MB/s | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
        s.pullers,
        s.big_mib,
        conc[0].mb_s,
        conc[1].mb_s,
        conc[2].mb_s,
        conc[0].mb_s / conc[1].mb_s,
        conc[0].mb_s / conc[2].mb_s
    )?;
    writeln!(
        w,
        "| {} x {} MiB pulls, server CPU s per GiB | {:.3} | {:.3} | {:.3} | {:.2}x | {:.2}x |",
        s.pullers,
        s.big_mib,
        conc[0].cpu_s_per_gib,
        conc[1].cpu_s_per_gib,
        conc[2].cpu_s_per_gib,
        conc[0].cpu_s_per_gib / conc[1].cpu_s_per_gib,
        conc[0].cpu_s_per_gib / conc[2].cpu_s_per_gib
    )?;
    writeln!(
        w,
        "| push {} MiB once, MB/s (context) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.big_mib,
        big_push[0],
        big_push[1],
        big_push[0] / big_push[1]
    )?;
    writeln!(w)?;
    writeln!(w, "| target (issue 2) | figure | result |")?;
    writeln!(w, "|---|---|---|")?;
    let targets = [
        (
            "push >= 1.5x Distribution",
            format!("{push_ratio:.2}x"),
            push_ratio >= 1.5,
        ),
        (
            "pull >= 0.9x nginx",
            format!("{pull_vs_nginx:.2}x"),
            pull_vs_nginx >= 0.9,
        ),
        (
            "pull >= 1.0x Distribution",
            format!("{pull_vs_dist:.2}x"),
            pull_vs_dist >= 1.0,
        ),
        (
            "pull CPU per GiB <= Distribution's",
            format!("{:.3} vs {:.3} s/GiB", pull_cpu[0], pull_cpu[1]),
            pull_cpu[0] <= pull_cpu[1],
        ),
        (
            "HEAD req/s >= 5x Distribution",
            format!("{head_ratio:.2}x"),
            head_ratio >= 5.0,
        ),
        (
            "HEAD p99 <= 1/3 of Distribution's",
            format!(
                "{:.3} ms vs {:.3} ms ({p99_ratio:.2}x)",
                head_p99[0], head_p99[1]
            ),
            p99_ratio <= 1.0 / 3.0,
        ),
        (
            "our peak RSS <= 64 MiB",
            format!("{:.1} MiB", conc[0].peak_mib),
            conc[0].peak_mib <= 64.0,
        ),
    ];
    for (name, figure, ok) in &targets {
        writeln!(w, "| {name} | {figure} | {} |", verdict(*ok))?;
    }
    writeln!(w)?;
    writeln!(w, "Per repetition (MB/s):")?;
    writeln!(w)?;
    writeln!(
        w,
        "- local copy of the same {} MiB through a 1 MiB buffer, then fsync (disk context): {} (median {:.0})",
        s.blob_mib,
        list(disk_mbs),
        median(disk_mbs)
    )?;
    writeln!(w, "- push, rbee-registry: {}", list(&push_mbs[0]))?;
    writeln!(w, "- push, Distribution: {}", list(&push_mbs[1]))?;
    writeln!(w, "- pull, rbee-registry: {}", list(&pull_mbs[0]))?;
    writeln!(w, "- pull, Distribution: {}", list(&pull_mbs[1]))?;
    writeln!(w, "- pull, nginx: {}", list(&pull_mbs[2]))?;
    for (k, server) in ["rbee-registry", "Distribution"].iter().enumerate() {
        if let Some(t) = &syncs[k] {
            writeln!(
                w,
                "- sync calls during one push, {server}: {}",
                t.describe()
            )?;
        }
    }

    say("\n## Results (Markdown)\n");
    say(&md);
    let passed = targets.iter().filter(|t| t.2).count();
    say(format!("{passed}/{} targets met", targets.len()));
    if let Ok(path) = std::env::var("RBEE_BENCH_REPORT") {
        fs::write(&path, &md).with_context(|| format!("writing {path}"))?;
        say(format!("report written to {path}"));
    }
    Ok(())
}
