//! The servers and machine readings of the publishing bench: a fresh
//! release `rbee-registry` per timed run, process CPU times, and waiting
//! for a quiet machine.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Result, say};

/// A fresh `rbee-registry` with its own data dir, open to loopback callers
/// without a token (both clients push anonymously); killed and its data
/// removed when dropped (also on error or panic).
pub(crate) struct Registry {
    child: Child,
    pub(crate) addr: String,
    data: PathBuf,
}

impl Registry {
    pub(crate) fn start(bin: &Path, root: &Path, label: &str) -> Result<Registry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let data = root.join(format!("registry-{label}"));
        let log = fs::File::create(root.join(format!("registry-{label}.log")))?;
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &addr,
                "--dev-open-loopback",
                "--data-dir",
            ])
            .arg(&data)
            .env("RBEE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut registry = Registry { child, addr, data };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !registry.answers() {
            if let Some(status) = registry.child.try_wait()? {
                return Err(format!("rbee-registry exited at start: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("rbee-registry did not answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    pub(crate) fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut head = [0u8; 12];
        s.write_all(req.as_bytes()).is_ok()
            && s.read_exact(&mut head).is_ok()
            && head.starts_with(b"HTTP/1.1 ")
    }

    pub(crate) fn cpu_s(&self) -> f64 {
        proc_cpu_s(&format!("/proc/{}/stat", self.child.id()), false)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.data);
    }
}

/// user + system seconds from a `/proc/.../stat`: fields 14 and 15 (the
/// process itself, `children: false`) or 16 and 17 (its waited-for
/// children, `children: true`).
pub(crate) fn proc_cpu_s(path: &str, children: bool) -> f64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    // After the command name, which may hold spaces, comes field 3.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let first = if children { 16 - 3 } else { 14 - 3 };
    let ticks = f.get(first).unwrap_or(&0) + f.get(first + 1).unwrap_or(&0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// CPU seconds all processes of the machine have used (not idle, not iowait).
pub(crate) fn machine_busy_s() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).unwrap_or(&0))
        .sum();
    busy as f64 / 100.0
}

pub(crate) fn load1() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits (at most `wait`) until the 1-minute load is under `max` AND the
/// CPUs were at least 85% idle over the last second: the load average lags
/// by a minute, so a neighbour's compile that just started is only seen by
/// the idle check. Returns the load.
pub(crate) fn wait_quiet(max: f64, wait: Duration) -> f64 {
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let start = Instant::now();
    let mut said = false;
    loop {
        let busy = machine_busy_s();
        std::thread::sleep(Duration::from_secs(1));
        let busy_pct = 100.0 * (machine_busy_s() - busy) / nproc;
        let load = load1();
        if (load < max && busy_pct <= 15.0) || start.elapsed() >= wait {
            if said {
                say(format!(
                    "    (waited {:.0} s for a quiet machine)",
                    start.elapsed().as_secs_f64()
                ));
            }
            return load;
        }
        if !said {
            say(format!(
                "    load {load:.2} (max {max}), CPUs {busy_pct:.0}% busy (max 15%): waiting up to {} s",
                wait.as_secs()
            ));
            said = true;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
