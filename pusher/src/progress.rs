//! Progress output: bars on a terminal, plain lines otherwise (CI logs).
//! Everything goes to stderr, so `--json` output on stdout stays clean.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone)]
pub struct Reporter {
    bars: Option<MultiProgress>,
    quiet: bool,
}

impl Reporter {
    /// Bars when stderr is a terminal, plain lines otherwise; nothing at
    /// all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter { bars, quiet }
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

    /// A byte progress bar for an upload of `size` bytes (hidden off a
    /// terminal, where the start and end are printed as lines instead).
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
            None => {
                self.line(&format!("  uploading {label} ({size} bytes)"));
                ProgressBar::hidden()
            }
        }
    }
}
