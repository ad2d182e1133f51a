//! Publishing a 4-platform release of 4 x 64 MiB and a 1 GiB build
//! (issues 3 and 15): the release `rbee-pusher push` against oras-py (PyPI
//! `oras`) pushing the same files raw, both to a fresh release
//! `rbee-registry` on 127.0.0.1, in the same run. Targets (issue 15), at
//! the default compression: 4 x 64 MiB of real system binaries at least as
//! fast as oras-py, the 1 GiB incompressible build within 1.5x of it.
//! Results: docs/benchmarks.md.
//!
//! Each timed run gets a fresh registry (new data dir, free port), waits
//! for a quiet machine (1-minute load, CPU idle), then times the whole client
//! command. The pusher validates, packages (tar + zstd or gzip + sha256)
//! straight into the upload and writes manifests, index, `latest`, the PKGBUILD referrer and the
//! catalog; oras-py only hashes and uploads the raw files (plus
//! metadata.json as a 5th file) and writes one manifest. Contents: real
//! ELF files of this machine, a binary-like model, and one incompressible
//! 1 GiB build (`RBEE_BENCH_BIG_MIB`).
//! `cargo bench` rebuilds `rbee-pusher` but not `rbee-registry`.
//!
//! ```sh
//! export CARGO_TARGET_DIR=...        # the same for both commands
//! cargo build --release -p rbee-pusher -p rbee-registry
//! cargo bench -p rbee-pusher --bench vs_oras
//! ```
//!
//! Environment: `RBEE_PUSHER_BIN`, `RBEE_REGISTRY_BIN` (other binaries),
//! `RBEE_BENCH_REPS` (3), `RBEE_BENCH_FILE_MIB` (64), `RBEE_BENCH_BIG_MIB` (1024),
//! `RBEE_BENCH_MAX_LOAD` (1.5), `RBEE_BENCH_LOAD_WAIT_SECS` (180),
//! `RBEE_BENCH_PYTHON` (python3), `RBEE_BENCH_KEEP=1` (keep the temp folder).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

mod machine;

use machine::{Registry, machine_busy_s, proc_cpu_s, wait_quiet};

const PLATFORMS: [&str; 4] = [
    "linux-x86_64",
    "linux-aarch64",
    "macos-aarch64",
    "windows-x86_64",
];
/// The pusher's default `--compression`, the setting the targets are for.
const DEFAULT: &str = "zstd";
const REPO: &str = "rbee/hello-worker-rbee-cpu";

/// oras-py in one process: the whole `push` (hash, HEAD, POST + PUT per
/// file, config, manifest), timed inside the process too, so that the
/// interpreter's start and imports can be told apart.
const ORAS_PUSH: &str = r#"
import json, sys, time
t0 = time.perf_counter()
import oras.provider
t1 = time.perf_counter()
registry, target, files = sys.argv[1], sys.argv[2], sys.argv[3:]
client = oras.provider.Registry(hostname=registry, insecure=True)
resp = client.push(target=f"{registry}/{target}", files=files,
                   disable_path_validation=True, quiet=True)
t2 = time.perf_counter()
print(json.dumps({"status": resp.status_code, "import_s": t1 - t0, "push_s": t2 - t1}))
"#;

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `<target>/release/<name>`: the bench executable is in `<target>/release/deps/`.
fn release_binary(name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let release = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    release.join(name)
}

fn main() -> ExitCode {
    let pusher = release_binary("rbee-pusher", "RBEE_PUSHER_BIN");
    let registry = release_binary("rbee-registry", "RBEE_REGISTRY_BIN");
    for bin in [&pusher, &registry] {
        if !bin.is_file() {
            eprintln!(
                "vs_oras: {} is missing. Build both with the same target dir first:\n    \
                 cargo build --release -p rbee-pusher -p rbee-registry\n\
                 (or set RBEE_PUSHER_BIN / RBEE_REGISTRY_BIN).",
                bin.display()
            );
            return ExitCode::from(2);
        }
    }
    let python = std::env::var("RBEE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_oras = Command::new(&python)
        .args(["-c", "import oras.provider"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_oras {
        eprintln!(
            "vs_oras: `{python} -c 'import oras'` failed; install it with `pip install oras`"
        );
        return ExitCode::from(2);
    }
    match bench(&pusher, &registry, &python) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vs_oras: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Content

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, PartialEq)]
enum Content {
    /// Real machine code: the largest ELF files of this machine (under
    /// /usr), cut into one file per platform. What worker binaries are.
    System,
    /// Models a worker binary: 4 KiB pages, 30% pseudo-random (code, packed
    /// data), 40% text (symbol names, strings: NUL-separated words from a
    /// 512-word vocabulary), 30% zeros (padding, .bss-like). gzip -6: ~2.2x.
    BinaryLike,
    /// One large build of pure pseudo-random bytes (1 GiB): nothing
    /// compresses it, so the time is packaging, hashing and uploading.
    Incompressible,
}

impl Content {
    fn name(self) -> &'static str {
        match self {
            Content::System => "system binaries",
            Content::BinaryLike => "binary-like",
            Content::Incompressible => "incompressible",
        }
    }

    /// oras's time over the pusher's that the pusher must reach (issue 15):
    /// at least as fast on 4 x 64 MiB, within 1.5x on the large build.
    fn target_ratio(self) -> f64 {
        match self {
            Content::Incompressible => 1.0 / 1.5,
            _ => 1.0,
        }
    }

    /// How many files of how many MiB.
    fn files(self, mib: u64, big_mib: u64) -> (usize, u64) {
        match self {
            Content::Incompressible => (1, big_mib),
            _ => (4, mib),
        }
    }
}

/// The ELF files of at least 4 MiB under /usr, largest first.
fn system_binaries() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/bin")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file()
                && let Ok(meta) = entry.metadata()
                && meta.len() >= 4 << 20
            {
                let mut magic = [0u8; 4];
                let elf = fs::File::open(&path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                    .is_ok()
                    && magic == *b"\x7fELF";
                if elf {
                    found.push((meta.len(), path));
                }
            }
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Fills `paths` with `size` bytes each of real binaries, taken in turn
/// (each file gets whole binaries until full, the last one cut).
fn write_system_builds(paths: &[PathBuf], size: u64) -> Result<()> {
    let sources = system_binaries();
    if sources.is_empty() {
        return Err("no ELF file of 4 MiB or more under /usr".into());
    }
    let mut next = sources.iter().cycle();
    for path in paths {
        let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
        let mut left = size;
        while left > 0 {
            let source = next.next().ok_or("no source")?;
            let mut f = std::io::Read::take(fs::File::open(source)?, left);
            left -= std::io::copy(&mut f, &mut out)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    Ok(())
}

fn write_build(path: &Path, size: u64, seed: u64, content: Content) -> Result<()> {
    let mut vocab_state = 42;
    let vocab: Vec<Vec<u8>> = (0..512)
        .map(|_| {
            let len = 4 + splitmix64(&mut vocab_state) % 17;
            (0..len)
                .map(|_| {
                    b"abcdefghijklmnopqrstuvwxyz_0123456789"
                        [(splitmix64(&mut vocab_state) % 37) as usize]
                })
                .collect()
        })
        .collect();
    let mut state = seed;
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut page = Vec::with_capacity(4096 + 32);
    for _ in 0..size / 4096 {
        page.clear();
        let kind = match content {
            Content::BinaryLike => splitmix64(&mut state) % 100,
            _ => 0,
        };
        if kind < 30 {
            while page.len() < 4096 {
                page.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
            }
        } else if kind < 70 {
            while page.len() < 4096 {
                page.extend_from_slice(&vocab[(splitmix64(&mut state) % 512) as usize]);
                page.push(0);
            }
        } else {
            page.resize(4096, 0);
        }
        out.write_all(&page[..4096])?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The runs

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    /// `rbee-pusher --compression <this>`.
    Pusher(&'static str),
    Oras,
    /// What an oras user must do to publish the same artifacts: `tar -czf`
    /// each build with LICENSE, README and metadata.json (GNU tar + gzip
    /// -6, the 4 in parallel), then oras-py pushes the 4 tar.gz files.
    TarOras,
}

impl Side {
    fn name(self) -> String {
        match self {
            Side::Pusher(c) => format!("rbee-pusher --compression {c}"),
            Side::Oras => "oras-py push".into(),
            Side::TarOras => "tar -czf x4, then oras-py push".into(),
        }
    }
}

struct Run {
    secs: f64,
    load: f64,
    client_cpu_s: f64,
    registry_cpu_s: f64,
    /// CPU seconds the rest of the machine used during the run.
    others_cpu_s: f64,
    /// Bytes the client uploaded (the pusher: its tar.gz files).
    uploaded: u64,
    /// oras-py: seconds inside `push()` (no interpreter start, no imports).
    inner_secs: Option<f64>,
}

impl Run {
    /// How much of the machine the other processes took during the run.
    fn others_pct(&self) -> f64 {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        100.0 * self.others_cpu_s / (self.secs * nproc as f64)
    }
}

struct Bench<'a> {
    pusher: &'a Path,
    registry: &'a Path,
    python: &'a str,
    root: PathBuf,
    example: PathBuf,
    max_load: f64,
    load_wait: Duration,
}

impl Bench<'_> {
    fn run(&self, side: Side, builds: &[PathBuf], label: &str) -> Result<Run> {
        let registry = Registry::start(self.registry, &self.root, label)?;
        let mut cmd;
        let mut tars = Vec::new();
        let mut files = builds.to_vec();
        match side {
            Side::Pusher(compression) => {
                cmd = Command::new(self.pusher);
                cmd.args(["push", "--json", "--registry"])
                    .arg(format!("http://{}", registry.addr))
                    .arg("--metadata")
                    .arg(self.example.join("metadata.json"))
                    .arg("--pkgbuild")
                    .arg(self.example.join("PKGBUILD"))
                    .arg("--license")
                    .arg(self.example.join("LICENSE"))
                    .arg("--readme")
                    .arg(self.example.join("README.md"))
                    .arg("--compression")
                    .arg(compression);
                for (platform, path) in PLATFORMS.iter().zip(builds) {
                    cmd.arg("--platform")
                        .arg(format!("{platform}={}", path.display()));
                }
                // Its packaging folder on the same disk as everything else.
                cmd.env("TMPDIR", &self.root);
            }
            Side::Oras | Side::TarOras => {
                if side == Side::TarOras {
                    let dir = self.root.join(format!("tgz-{label}"));
                    fs::create_dir(&dir)?;
                    files.clear();
                    for build in builds {
                        let name = build.file_name().unwrap_or_default().to_string_lossy();
                        let tgz = dir.join(format!("{name}.tar.gz"));
                        let mut tar = Command::new("tar");
                        tar.arg("-czf")
                            .arg(&tgz)
                            .arg("-C")
                            .arg(build.parent().unwrap_or(Path::new(".")))
                            .arg(&*name)
                            .arg("-C")
                            .arg(&self.example)
                            .args(["LICENSE", "README.md", "metadata.json"]);
                        tars.push(tar);
                        files.push(tgz);
                    }
                }
                cmd = Command::new(self.python);
                cmd.args(["-c", ORAS_PUSH, &registry.addr, &format!("{REPO}:0.1.0")])
                    .args(&files)
                    .arg(self.example.join("metadata.json"));
            }
        }
        let load = wait_quiet(self.max_load, self.load_wait);
        let children_before = proc_cpu_s("/proc/self/stat", true);
        let registry_before = registry.cpu_s();
        let busy_before = machine_busy_s();
        let start = Instant::now();
        let children: Vec<Child> = tars
            .iter_mut()
            .map(Command::spawn)
            .collect::<std::io::Result<_>>()?;
        for mut child in children {
            if !child.wait()?.success() {
                return Err("tar -czf failed".into());
            }
        }
        let out = cmd.stdin(Stdio::null()).output()?;
        let secs = start.elapsed().as_secs_f64();
        let client_cpu_s = proc_cpu_s("/proc/self/stat", true) - children_before;
        let registry_cpu_s = registry.cpu_s() - registry_before;
        let others_cpu_s =
            (machine_busy_s() - busy_before - client_cpu_s - registry_cpu_s).max(0.0);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{stdout}\n{}",
                side.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let json: serde_json::Value = serde_json::from_str(&stdout)
            .or_else(|_| serde_json::from_str(stdout.lines().last().unwrap_or("")))
            .map_err(|e| format!("{}: no JSON summary ({e}): {stdout}", side.name()))?;
        let (uploaded, inner_secs) = match side {
            Side::Pusher(_) => {
                if json["status"] != "published" {
                    return Err(format!("the pusher did not publish: {json}").into());
                }
                (json["uploaded_bytes"].as_u64().unwrap_or(0), None)
            }
            Side::Oras | Side::TarOras => {
                if json["status"] != 201 {
                    return Err(format!("oras-py: manifest PUT answered {json}").into());
                }
                let total = files
                    .iter()
                    .map(|b| fs::metadata(b).map_or(0, |m| m.len()))
                    .sum();
                (total, json["push_s"].as_f64())
            }
        };
        let _ = fs::remove_dir_all(self.root.join(format!("tgz-{label}")));
        Ok(Run {
            secs,
            load,
            client_cpu_s,
            registry_cpu_s,
            others_cpu_s,
            uploaded,
            inner_secs,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
    let _ = std::io::stdout().flush();
}

fn machine(root: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("model name")?
                    .split_once(':')?
                    .1
                    .trim()
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "?".into());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let df = Command::new("df")
        .arg("-T")
        .arg(root)
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let df = String::from_utf8_lossy(&df);
    let fs_line: Vec<&str> = df.lines().nth(1).unwrap_or("").split_whitespace().collect();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "nproc {nproc}, CPU {cpu}, RAM {:.1} GiB, temp folder on {} ({})",
        mem_kib / (1u64 << 20) as f64,
        fs_line.get(1).unwrap_or(&"?"),
        fs_line.first().unwrap_or(&"?"),
    )
}

fn bench(pusher: &Path, registry: &Path, python: &str) -> Result<()> {
    let reps: usize = env_or("RBEE_BENCH_REPS", 3).max(1);
    let mib: u64 = env_or("RBEE_BENCH_FILE_MIB", 64).max(1);
    let tmp = tempfile::Builder::new().prefix("vs_oras.").tempdir()?;
    let bench = Bench {
        pusher,
        registry,
        python,
        root: tmp.path().to_owned(),
        example: Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-worker"),
        max_load: env_or("RBEE_BENCH_MAX_LOAD", 1.5),
        load_wait: Duration::from_secs(env_or("RBEE_BENCH_LOAD_WAIT_SECS", 180)),
    };
    let big_mib: u64 = env_or("RBEE_BENCH_BIG_MIB", 1024).max(1);
    let bytes_of = |c: Content| {
        let (n, mib) = c.files(mib, big_mib);
        n as u64 * (mib << 20)
    };
    say(format!("vs_oras: {}", machine(&bench.root)));
    say(format!(
        "  pusher {}, registry {}, {python} with oras-py",
        pusher.display(),
        registry.display()
    ));
    say(format!(
        "  {reps} repetitions; each run on a fresh registry; load1 < {} and CPUs >= 85% idle wanted",
        bench.max_load
    ));

    let contents = [
        Content::System,
        Content::BinaryLike,
        Content::Incompressible,
    ];
    let mut builds: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for (c, content) in contents.into_iter().enumerate() {
        let dir = bench.root.join(content.name().replace(' ', "-"));
        fs::create_dir(&dir)?;
        let (count, size_mib) = content.files(mib, big_mib);
        let paths: Vec<PathBuf> = PLATFORMS[..count]
            .iter()
            .map(|platform| dir.join(format!("hello-worker-rbee-{platform}")))
            .collect();
        if content == Content::System {
            write_system_builds(&paths, size_mib << 20)?;
        } else {
            for (i, path) in paths.iter().enumerate() {
                write_build(path, size_mib << 20, 1 + i as u64 + 100 * c as u64, content)?;
            }
        }
        say(format!(
            "  wrote {count} x {size_mib} MiB of {}",
            content.name()
        ));
        builds.insert(content.name(), paths);
    }

    let plan = [
        (Content::System, Side::Pusher(DEFAULT)),
        (Content::System, Side::Oras),
        (Content::System, Side::Pusher("gzip:6")),
        (Content::System, Side::Pusher("gzip:1")),
        (Content::System, Side::Pusher("zstd:9")),
        (Content::System, Side::TarOras),
        (Content::BinaryLike, Side::Pusher(DEFAULT)),
        (Content::BinaryLike, Side::Oras),
        (Content::BinaryLike, Side::Pusher("gzip:6")),
        (Content::Incompressible, Side::Pusher(DEFAULT)),
        (Content::Incompressible, Side::Oras),
        (Content::Incompressible, Side::Pusher("gzip:6")),
    ];
    let mut runs: BTreeMap<(&str, Side), Vec<Run>> = BTreeMap::new();
    for rep in 1..=reps {
        for (content, side) in plan {
            let label = format!("{rep}-{}-{}", content.name(), runs.len());
            let run = bench.run(side, &builds[content.name()], &label)?;
            say(format!(
                "  rep {rep} {:<15} {:<32} {:6.2} s {:6.0} MB/s  load1 {:.2}  others {:3.0}%  client CPU {:.2} s  registry CPU {:.2} s  uploaded {:.1} MiB{}",
                content.name(),
                side.name(),
                run.secs,
                bytes_of(content) as f64 / run.secs / 1e6,
                run.load,
                run.others_pct(),
                run.client_cpu_s,
                run.registry_cpu_s,
                run.uploaded as f64 / (1u64 << 20) as f64,
                run.inner_secs
                    .map_or(String::new(), |s| format!("  (push() alone {s:.2} s)")),
            ));
            runs.entry((content.name(), side)).or_default().push(run);
        }
    }

    let med = |c: Content, s: Side, f: &dyn Fn(&Run) -> f64| {
        median(runs[&(c.name(), s)].iter().map(f).collect())
    };
    let mut md = String::new();
    md.push_str(&format!(
        "\n### Results: {reps} repetitions; 4 x {mib} MiB of system binaries and of binary-like data, 1 x {big_mib} MiB incompressible\n\n"
    ));
    md.push_str("| content | client | median s | MB/s | oras s / this s | each run, s | client CPU s | registry CPU s | uploaded MiB | load1 at start | others' CPU % |\n");
    md.push_str("|---|---|---:|---:|---:|---|---:|---:|---:|---|---|\n");
    let mut verdicts = Vec::new();
    for content in contents {
        let oras = med(content, Side::Oras, &|r| r.secs);
        for (_, side) in plan.iter().filter(|(c, _)| *c == content) {
            let secs = med(content, *side, &|r| r.secs);
            let each = |f: &dyn Fn(&Run) -> String| {
                let v: Vec<String> = runs[&(content.name(), *side)].iter().map(f).collect();
                v.join(", ")
            };
            md.push_str(&format!(
                "| {} | {} | {secs:.2} | {:.0} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} |\n",
                content.name(),
                side.name(),
                bytes_of(content) as f64 / secs / 1e6,
                if *side == Side::Oras {
                    "1.00x".into()
                } else {
                    format!("{:.2}x", oras / secs)
                },
                each(&|r| format!("{:.2}", r.secs)),
                med(content, *side, &|r| r.client_cpu_s),
                med(content, *side, &|r| r.registry_cpu_s),
                med(content, *side, &|r| r.uploaded as f64) / (1u64 << 20) as f64,
                each(&|r| format!("{:.2}", r.load)),
                each(&|r| format!("{:.0}", r.others_pct())),
            ));
        }
        let inner = med(content, Side::Oras, &|r| r.inner_secs.unwrap_or(f64::NAN));
        let pusher = med(content, Side::Pusher(DEFAULT), &|r| r.secs);
        let ratio = oras / pusher;
        let target = content.target_ratio();
        verdicts.push(format!(
            "- {}: oras {oras:.2} s (of which `push()` {inner:.2} s) / pusher (default, {DEFAULT}) {pusher:.2} s = **{ratio:.2}x** -> **{}** (target >= {target:.2}x{})",
            content.name(),
            if ratio >= target { "PASS" } else { "MISS" },
            if content == Content::Incompressible {
                ", i.e. within 1.5x of oras's time"
            } else {
                ""
            },
        ));
        if let Some(tar_runs) = runs.get(&(content.name(), Side::TarOras)) {
            let tar_oras = median(tar_runs.iter().map(|r| r.secs).collect());
            verdicts.push(format!(
                "- {} (context, not the target): tar -czf + oras {tar_oras:.2} s / pusher {pusher:.2} s = {:.2}x",
                content.name(),
                tar_oras / pusher,
            ));
        }
    }
    md.push('\n');
    md.push_str(&verdicts.join("\n"));
    md.push('\n');
    let quiet = runs.values().flatten().all(|r| r.load < bench.max_load);
    if !quiet {
        md.push_str(&format!(
            "\nSome runs started with load1 >= {} (the wait timed out): the machine was not quiet.\n",
            bench.max_load
        ));
    }
    say(md);
    if std::env::var_os("RBEE_BENCH_KEEP").is_some() {
        say(format!("kept {}", tmp.keep().display()));
    }
    Ok(())
}
