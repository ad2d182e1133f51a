//! Progress output: bars on a terminal, plain lines otherwise (CI logs).
//! Everything goes to stderr, so `--json` output on stdout stays clean.
//!
//! Off a terminal a transfer does not go silent: every
//! [`rbee_config::progress::interval`] (3 s by default, `RBEE_PROGRESS_INTERVAL`) a line
//! says how far it is, in bytes and with its rate, until its bar finishes
//! or is dropped.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbee_config::progress::spawn_lines;

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
            interval: rbee_config::progress::interval(),
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
