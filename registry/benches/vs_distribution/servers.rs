//! The servers under test: starting rbee-registry, CNCF Distribution and
//! nginx on free loopback ports, stopping them, and reading their CPU time
//! and memory from `/proc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A server started by the bench; stopped (TERM, then KILL, with its
/// children) when dropped, also when the bench panics.
pub(crate) struct Server {
    pub(crate) label: &'static str,
    child: Option<Child>,
    pub(crate) base: String,
    log: PathBuf,
}

impl Server {
    fn spawn(label: &'static str, mut cmd: Command, port: u16, log: PathBuf) -> Result<Server> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        Ok(Server {
            label,
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The server's process and its descendants (nginx workers).
    pub(crate) fn pids(&self) -> Vec<u32> {
        process_tree(self.pid())
    }

    pub(crate) fn cpu_ticks(&self) -> Result<u64> {
        self.pids().into_iter().map(cpu_ticks).sum()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the server answers HTTP at all.
    pub(crate) async fn wait_ready(&mut self, client: &reqwest::Client, path: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited at start ({status}); its log:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 30 s; its log:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = process_tree(child.id());
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(Some(_)) => break,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        // nginx workers outlive a master that was killed.
        for pid in tree.into_iter().skip(1) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            if let Some(ppid) = stat_fields(name).and_then(|f| f.get(1)?.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// utime + stime of a whole process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let fields =
        stat_fields(&pid.to_string()).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let tick =
        |i: usize| -> Result<u64> { Ok(fields.get(i).context("short /proc stat")?.parse()?) };
    // Fields 14 and 15 of stat(5); the remainder starts at field 3.
    Ok(tick(11)? + tick(12)?)
}

pub(crate) fn self_cpu_ticks() -> Result<u64> {
    cpu_ticks(std::process::id())
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub(crate) fn status_kib(pid: u32, key: &str) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// Starting the three servers

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn start_ours(bin: &Path, root: &Path) -> Result<Server> {
    let port = free_port()?;
    let data = root.join("ours");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        // Distribution runs without auth here; so do we (the benchmark
        // pushes anonymously over loopback).
        .arg("--dev-open-loopback")
        .env("RBEE_LOG", "warn")
        .current_dir(root);
    Server::spawn("rbee-registry", cmd, port, root.join("ours.log"))
}

pub(crate) fn start_distribution(root: &Path) -> Result<Server> {
    let port = free_port()?;
    let data = root.join("distribution");
    fs::create_dir_all(&data)?;
    // The Debian package's defaults (in-memory blob descriptor cache), with
    // warnings only and no access log: our registry logs no request either.
    let config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data = data.display()
    );
    let config_path = root.join("distribution.yml");
    fs::write(&config_path, config)?;
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config_path).current_dir(root);
    Server::spawn("Distribution", cmd, port, root.join("distribution.log"))
}

pub(crate) fn start_nginx(root: &Path, www: &Path) -> Result<Server> {
    let port = free_port()?;
    let prefix = root.join("nginx");
    fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    let config = format!(
        "user root;\n\
         worker_processes auto;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   keepalive_requests 100000;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   client_body_temp_path {p}/body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       root {www};\n\
         \x20   }}\n\
         }}\n",
        www = www.display()
    );
    let config_path = prefix.join("nginx.conf");
    fs::write(&config_path, config)?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-g")
        .arg("daemon off;")
        .current_dir(root);
    Server::spawn("nginx", cmd, port, root.join("nginx.log"))
}
