//! Progress off a terminal, shared by `rbee-pusher` and `rbee-worker`
//! (feature `progress`): a long transfer in a CI log or a script never goes
//! silent. A thread prints a line every [`interval`] (3 s by default,
//! `RBEE_PROGRESS_INTERVAL`) with bytes, share and rate, until the
//! step's bar finishes or is dropped.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar};

/// How often a plain progress line is printed when the environment does
/// not say (`RBEE_PROGRESS_INTERVAL`, in seconds).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

/// The interval between plain progress lines: `RBEE_PROGRESS_INTERVAL`
/// seconds (decimals allowed, at least 10 ms), else [`DEFAULT_INTERVAL`].
pub fn interval() -> Duration {
    std::env::var("RBEE_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_INTERVAL, |s| {
            Duration::from_secs_f64(s.clamp(0.01, 3600.0))
        })
}

/// Prints `what`'s progress every `interval` from a thread of its own
/// (the work runs on blocking threads and the runtime alike, and a line
/// must come even while both are busy). The thread holds the bar only
/// weakly: it ends once the bar is finished or dropped.
pub fn spawn_lines(what: String, bar: &ProgressBar, interval: Duration) {
    let weak = bar.downgrade();
    let spawned = std::thread::Builder::new()
        .name("progress-lines".into())
        .spawn(move || {
            let (mut last, mut last_at) = (0, Instant::now());
            loop {
                // A clock, not a synchronisation: the line is due now.
                std::thread::sleep(interval);
                let Some(bar) = weak.upgrade() else { return };
                if bar.is_finished() {
                    return;
                }
                let done = bar.position();
                if done == last {
                    continue;
                }
                let rate = (done - last.min(done)) as f64 / last_at.elapsed().as_secs_f64();
                (last, last_at) = (done, Instant::now());
                let line = line(&what, done, bar.length(), rate);
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        });
    // No thread, no lines: the work itself goes on.
    drop(spawned);
}

/// `what: 12.00 MiB of 40.00 MiB (30%), 4.00 MiB/s`, with the rate since
/// the previous line.
pub fn line(what: &str, done: u64, total: Option<u64>, rate: f64) -> String {
    let of = match total {
        Some(total) if total > 0 => format!(
            " of {} ({}%)",
            HumanBytes(total),
            done.saturating_mul(100) / total
        ),
        _ => String::new(),
    };
    format!(
        "{what}: {}{of}, {}/s",
        HumanBytes(done),
        HumanBytes(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_names_bytes_share_and_rate() {
        let line = line("  uploading x", 3 << 20, Some(12 << 20), 1.5 * 1048576.0);
        assert_eq!(
            line,
            "  uploading x: 3.00 MiB of 12.00 MiB (25%), 1.50 MiB/s"
        );
        let line = super::line("  packaging x", 1 << 20, None, 1048576.0);
        assert_eq!(line, "  packaging x: 1.00 MiB, 1.00 MiB/s");
    }
}
