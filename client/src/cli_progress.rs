//! The CLI's progress (this file belongs to the `rbee-worker` binary, not
//! to the library): a bar on a terminal; off a terminal (CI logs,
//! scripts), a line when a step starts and then one every interval
//! (`RBEE_PROGRESS_INTERVAL` seconds, 3 by default) with bytes, share and
//! rate, so a long download or unpack never goes silent.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbee_config::progress::{interval, spawn_lines};

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
