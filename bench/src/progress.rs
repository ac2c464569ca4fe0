//! Progress bars and status lines on stderr, silenced by `--quiet` or when stderr is not a
//! terminal (CI logs would otherwise fill with redraws).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    bars: bool,
    lines: bool,
}

impl Progress {
    /// Bars only on a terminal; status lines unless quiet.
    pub fn new(quiet: bool) -> Self {
        Self {
            bars: !quiet && std::io::stderr().is_terminal(),
            lines: !quiet,
        }
    }

    /// A bar counting to `len`; hidden when bars are off.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {msg:<28} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A bar for a timed phase: position is elapsed seconds.
    pub fn timed(&self, secs: u64, message: &str) -> ProgressBar {
        self.bar(secs.max(1), message)
    }

    /// A status line (setup steps, warnings).
    pub fn log(&self, line: &str) {
        if self.lines {
            eprintln!("{line}");
        }
    }
}
