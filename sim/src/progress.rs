//! The progress of a soak (`safekeep-sim --seeds N`): a bar on standard
//! error with the runs done, the violations so far and an estimate of the
//! time left, drawn only when standard error is a terminal (hidden when it
//! is a file or a pipe, so logs and CI output stay clean). Lines printed
//! while it runs (violations, traces) go through it so the bar never tears
//! them.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar redraws by itself, so the elapsed time and ETA move between runs.
const TICK: Duration = Duration::from_millis(500);
/// The bar's layout.
const TEMPLATE: &str = "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, {msg}, ETA {eta}";

/// Runs done and violations found so far, shown as a bar.
pub struct SoakProgress {
    bar: ProgressBar,
    violations: u64,
}

impl SoakProgress {
    /// A bar for `total` runs, on standard error if it is a terminal, else hidden.
    pub fn new(total: u64) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::with_target(total, target)
    }

    /// A bar for `total` runs drawn to `target`.
    pub fn with_target(total: u64, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        if !bar.is_hidden() {
            bar.enable_steady_tick(TICK);
        }
        let progress = Self { bar, violations: 0 };
        progress.bar.set_message(violations_text(0));
        progress
    }

    /// Counts one finished run, and whether it found a violation.
    pub fn run_done(&mut self, violation: bool) {
        if violation {
            self.violations += 1;
            self.bar.set_message(violations_text(self.violations));
        }
        self.bar.inc(1);
    }

    /// Runs done so far.
    pub fn runs(&self) -> u64 {
        self.bar.position()
    }

    /// Violations found so far.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Whether the bar is drawn anywhere.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Runs `print` with the bar cleared, then draws it again.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        self.bar.suspend(print)
    }

    /// Removes the bar before the final table.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

fn violations_text(violations: u64) -> String {
    match violations {
        1 => "1 violation".to_string(),
        n => format!("{n} violations"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_runs_and_violations() {
        let mut progress = SoakProgress::with_target(3, ProgressDrawTarget::hidden());
        progress.run_done(false);
        progress.run_done(true);
        assert_eq!((progress.runs(), progress.violations()), (2, 1));
        assert_eq!(violations_text(1), "1 violation");
        assert_eq!(violations_text(2), "2 violations");
        progress.finish();
    }
}
