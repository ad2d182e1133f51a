//! Load on the manifest endpoint: the bench's own 32-connection HEAD client
//! on raw sockets, and `wrk` running GET of the same manifest, with the
//! parser of its output.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::{HEAD_CONNECTIONS, OCI_MANIFEST};

// HEAD load: wrk 4.1 cannot do HEAD (its parser waits for the body that the
// `Content-Length` of a HEAD answer announces, so no request ever completes),
// hence this closed-loop generator on raw sockets, the same for every server:
// `HEAD_CONNECTIONS` keep-alive connections on the 2-thread client runtime
// (like `wrk -t2 -c32`), one request in flight per connection, a response
// ends at its blank line.

pub(crate) struct LoadResult {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One connection's loop until `deadline`; returns its latencies (ns) and
/// error count.
async fn head_connection(
    addr: String,
    request: Arc<Vec<u8>>,
    start: tokio::time::Instant,
    deadline: Instant,
) -> (Vec<u64>, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let mut stream: Option<tokio::net::TcpStream> = None;
    tokio::time::sleep_until(start).await;
    while Instant::now() < deadline {
        let conn = match stream.as_mut() {
            Some(conn) => conn,
            None => match tokio::net::TcpStream::connect(&addr).await {
                Ok(conn) => {
                    let _ = conn.set_nodelay(true);
                    stream.insert(conn)
                }
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        if conn.write_all(&request).await.is_err() {
            errors += 1;
            stream = None;
            continue;
        }
        let mut filled = 0;
        let complete = loop {
            match conn.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => filled += n,
            }
            if let Some(end) = find_header_end(&buf[..filled]) {
                break Some(end);
            }
            if filled == buf.len() {
                break None;
            }
        };
        match complete {
            Some(end) if end == filled && buf.starts_with(b"HTTP/1.1 200 ") => {
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            _ => {
                errors += 1;
                stream = None;
            }
        }
    }
    (latencies, errors)
}

pub(crate) async fn head_load(url: &str, secs: u64) -> Result<LoadResult> {
    let rest = url
        .strip_prefix("http://")
        .context("http:// URL expected")?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = Arc::new(
        format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {OCI_MANIFEST}\r\n\r\n")
            .into_bytes(),
    );
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let deadline = start.into_std() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..HEAD_CONNECTIONS)
        .map(|_| {
            tokio::spawn(head_connection(
                addr.to_owned(),
                request.clone(),
                start,
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    ensure!(
        !latencies.is_empty(),
        "no HEAD request to {url} succeeded ({errors} errors)"
    );
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
            as f64
            / 1e6
    };
    Ok(LoadResult {
        rps: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        requests: latencies.len() as u64,
        errors,
    })
}

// wrk

#[derive(Clone, Copy)]
pub(crate) struct WrkResult {
    pub(crate) rps: f64,
    pub(crate) p99_ms: f64,
    pub(crate) requests: u64,
    pub(crate) non_2xx: u64,
    pub(crate) socket_errors: u64,
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let factor = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(value * factor)
}

fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut result = WrkResult {
        rps: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            result.rps = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("99%") {
            result.p99_ms =
                parse_duration_ms(v.trim()).with_context(|| format!("wrk p99 `{v}`"))?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            result.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if line.contains(" requests in ") {
            result.requests = line
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
        }
    }
    ensure!(
        result.rps.is_finite() && result.p99_ms.is_finite(),
        "could not read wrk's output:\n{out}"
    );
    Ok(result)
}

pub(crate) fn run_wrk(script: &Path, url: &str, secs: u64) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{HEAD_CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = parse_wrk(&text)?;
    ensure!(
        result.non_2xx == 0 && result.socket_errors == 0 && result.requests > 0,
        "wrk saw failures against {url}:\n{text}"
    );
    Ok(result)
}
