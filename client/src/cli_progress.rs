//! The CLI's progress (this file belongs to the `rbee-worker` binary, not
//! to the library): a bar on a terminal; off a terminal (CI logs,
//! scripts), a line when a step starts and then one every interval
//! (`RBEE_PROGRESS_INTERVAL` seconds, 3 by default) with bytes, share and
//! rate, so a long download or unpack never goes silent.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed when the environment does
/// not say.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

/// The interval between plain progress lines: `RBEE_PROGRESS_INTERVAL`
/// seconds (decimals allowed, at least 10 ms).
fn interval() -> Duration {
    std::env::var("RBEE_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_INTERVAL, |s| {
            Duration::from_secs_f64(s.clamp(0.01, 3600.0))
        })
}

/// One step's progress (downloading, unpacking): `(done, total)` in
/// bytes.
#[derive(Debug, Clone)]
pub struct Step {
    bar: ProgressBar,
    /// On a terminal: the bar is drawn from its first update on (so that
    /// a step that has not started draws nothing over the current one).
    terminal: bool,
    /// Off a terminal: the line that starts the step, printed at the
    /// first update (when the total is known).
    announce: Option<String>,
}

impl Step {
    /// A step called `what` (e.g. `downloading llm-worker-rbee-cpu`).
    pub fn new(what: &str) -> Step {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(what.to_owned());
            return Step {
                bar,
                terminal: true,
                announce: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        spawn_lines(what.to_owned(), &bar, interval());
        Step {
            bar,
            terminal: false,
            announce: Some(what.to_owned()),
        }
    }

    /// `done` of `total` bytes.
    pub fn update(&self, done: u64, total: u64) {
        if self.bar.is_finished() {
            return;
        }
        if self.bar.length() != Some(total) {
            if self.terminal && self.bar.is_hidden() {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            self.bar.set_length(total);
            if let Some(what) = &self.announce
                && self.bar.position() == 0
            {
                let _ = writeln!(std::io::stderr().lock(), "{what} ({total} bytes)");
            }
        }
        self.bar.set_position(done);
    }

    /// Prints `text` without tearing the bar.
    pub fn println(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// The step is over (again: a no-op).
    pub fn finish(&self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// Prints the bar's progress every `interval` from a thread of its own
/// (unpacking runs on a blocking thread), holding the bar only weakly so
/// the thread ends once the bar is finished or dropped.
fn spawn_lines(what: String, bar: &ProgressBar, interval: Duration) {
    let weak = bar.downgrade();
    let _ = std::thread::Builder::new()
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
                let of = match bar.length() {
                    Some(total) if total > 0 => format!(
                        " of {} ({}%)",
                        HumanBytes(total),
                        done.saturating_mul(100) / total
                    ),
                    _ => String::new(),
                };
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{what}: {}{of}, {}/s",
                    HumanBytes(done),
                    HumanBytes(rate as u64)
                );
            }
        });
}
