//! Logging to stderr, quiet unless asked.
//!
//! Four levels, each line tagged with its own: `error!` (always printed: the role failed),
//! `warn!` (something is off but the role goes on), `info!` (one line per step) and `debug!`
//! (every request and file). The library prints errors only by default, so that crates embedding
//! it (and the tests) stay quiet; the binary raises the level to [`Level::Info`], or
//! [`Level::Debug`] with `--debug` or `ORAS_AGENT_DEBUG=1`. Long transfers report bytes and rate
//! through [`Progress`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How much the agent prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing but errors (the library default, and `ORAS_AGENT_QUIET=1`).
    Quiet = 0,
    /// Errors and warnings.
    Warn = 1,
    /// Warnings, one line per step and progress on long transfers (the binary's default).
    Info = 2,
    /// Every request and file.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Quiet as u8);

/// Sets the process-wide level.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages of `level` are printed.
pub fn enabled(level: Level) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// Prints an error line to stderr, whatever the level: the role failed, and says why.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        eprintln!("oras-agent: error: {}", format_args!($($arg)*))
    };
}

/// Prints a warning line to stderr when the level allows it: something is off (a marker file
/// not written, a log that stopped taking output) but the role goes on.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            eprintln!("oras-agent: warning: {}", format_args!($($arg)*));
        }
    };
}

/// Prints an info line to stderr when the level allows it.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            eprintln!("oras-agent: {}", format_args!($($arg)*));
        }
    };
}

/// Prints a debug line to stderr when the level allows it.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            eprintln!("oras-agent: debug: {}", format_args!($($arg)*));
        }
    };
}

/// How often a long transfer reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Reports the progress of one transfer every few seconds, and a summary at the end.
pub struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_report: Instant,
}

impl Progress {
    /// Starts tracking a transfer described by `what` (e.g. "push sha256:ab12… (big.bin)").
    pub fn new(what: impl Into<String>, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            what: what.into(),
            total,
            done: 0,
            started: now,
            last_report: now,
        }
    }

    /// Counts `n` more bytes, printing a line when the last one is old enough.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if enabled(Level::Info) && self.last_report.elapsed() >= PROGRESS_EVERY {
            self.last_report = Instant::now();
            let total = self
                .total
                .map(|t| format!(" of {}", human_bytes(t)))
                .unwrap_or_default();
            info!(
                "{}: {}{} ({}/s)",
                self.what,
                human_bytes(self.done),
                total,
                human_bytes(self.rate())
            );
        }
    }

    /// Prints the summary line of a finished transfer (only for transfers that took a while).
    pub fn finish(&self) {
        if self.started.elapsed() >= PROGRESS_EVERY {
            info!(
                "{}: done, {} at {}/s",
                self.what,
                human_bytes(self.done),
                human_bytes(self.rate())
            );
        } else {
            debug!("{}: done, {}", self.what, human_bytes(self.done));
        }
    }

    fn rate(&self) -> u64 {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        (self.done as f64 / secs) as u64
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_prints_itself_and_the_levels_above() {
        set_level(Level::Warn);
        assert!(enabled(Level::Quiet) && enabled(Level::Warn));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        set_level(Level::Debug);
        assert!(enabled(Level::Info) && enabled(Level::Debug));
        set_level(Level::Quiet);
        assert!(!enabled(Level::Warn));
    }

    #[test]
    fn human_bytes_picks_the_largest_unit_below_1024() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(300 * 1024 * 1024), "300.0 MiB");
    }
}
