//! Progress output: bars on a terminal, plain lines otherwise (CI logs).
//! Everything goes to stderr, so `--json` output on stdout stays clean.
//!
//! Off a terminal a transfer does not go silent: every
//! [`progress_interval`] (3 s by default, `RBEE_PROGRESS_INTERVAL`) a line
//! says how far it is, in bytes and with its rate, until its bar finishes
//! or is dropped.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed when the environment does
/// not say (`RBEE_PROGRESS_INTERVAL`, in seconds).
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(3);

/// The interval between plain progress lines: `RBEE_PROGRESS_INTERVAL`
/// seconds (decimals allowed, at least 10 ms), else
/// [`DEFAULT_PROGRESS_INTERVAL`].
pub fn progress_interval() -> Duration {
    std::env::var("RBEE_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_PROGRESS_INTERVAL, |s| {
            Duration::from_secs_f64(s.clamp(0.01, 3600.0))
        })
}

/// Where progress goes.
#[derive(Debug, Clone)]
pub struct Reporter {
    bars: Option<MultiProgress>,
    quiet: bool,
    interval: Duration,
}

impl Reporter {
    /// Bars when stderr is a terminal, plain lines otherwise; nothing at
    /// all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            bars,
            quiet,
            interval: progress_interval(),
        }
    }

    /// A headline.
    pub fn step(&self, text: &str) {
        self.line(&format!("==> {text}"));
    }

    /// A line of detail.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// A byte progress bar for an upload of `size` bytes (off a terminal:
    /// a line at the start, then one every interval).
    pub fn bar(&self, label: &str, size: u64) -> ProgressBar {
        match &self.bars {
            Some(bars) => {
                let bar = bars.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.to_owned());
                bar
            }
            None => self.plain(&format!("uploading {label}"), Some(size)),
        }
    }

    /// A byte counter for an archive packaged while it is uploaded: its
    /// size is known only at the end.
    pub fn stream_bar(&self, label: &str) -> ProgressBar {
        self.counter(&format!("packaging and uploading {label}"), label, "sent")
    }

    /// A byte counter for an archive packaged to learn its digest (the
    /// compressed bytes made so far).
    pub fn packaging_bar(&self, label: &str) -> ProgressBar {
        self.counter(&format!("packaging {label}"), label, "packaged")
    }

    /// A byte counter: on a terminal a bar `label done-word bytes rate`,
    /// elsewhere lines about `what`.
    fn counter(&self, what: &str, label: &str, done_word: &str) -> ProgressBar {
        match &self.bars {
            Some(bars) => {
                let bar = bars.add(ProgressBar::no_length());
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>16} {msg} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(label.to_owned());
                bar.set_message(done_word.to_owned());
                bar
            }
            None => self.plain(what, None),
        }
    }

    /// A hidden bar, announced by a line, whose progress a thread prints
    /// every interval until the bar finishes or is dropped.
    fn plain(&self, what: &str, size: Option<u64>) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        match size {
            Some(size) => self.line(&format!("  {what} ({size} bytes)")),
            None => self.line(&format!("  {what}")),
        }
        let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::hidden());
        spawn_lines(format!("  {what}"), &bar, self.interval);
        bar
    }
}

/// Prints `what`'s progress every `interval` from a thread of its own
/// (the pusher's work runs on blocking threads and the runtime alike, and
/// a line must come even while both are busy). The thread holds the bar
/// only weakly: it ends once the bar is finished or dropped.
fn spawn_lines(what: String, bar: &ProgressBar, interval: Duration) {
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
                let line = progress_line(&what, done, bar.length(), rate);
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no thread for progress lines");
    }
}

/// `what: 12.00 MiB of 40.00 MiB (30%), 4.00 MiB/s`, with the rate since
/// the previous line.
pub fn progress_line(what: &str, done: u64, total: Option<u64>, rate: f64) -> String {
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
        let line = progress_line("  uploading x", 3 << 20, Some(12 << 20), 1.5 * 1048576.0);
        assert_eq!(
            line,
            "  uploading x: 3.00 MiB of 12.00 MiB (25%), 1.50 MiB/s"
        );
        let line = progress_line("  packaging x", 1 << 20, None, 1048576.0);
        assert_eq!(line, "  packaging x: 1.00 MiB, 1.00 MiB/s");
    }
}
