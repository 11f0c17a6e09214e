//! The run-wide stop request: set once by a signal handler (or a library
//! caller), read by the feeder between lines and by workers between chunks;
//! and the sleeps a stop request cuts short.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How often a sleep asks whether to stop: the longest a stop request waits
/// on a backoff or a heartbeat pause.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// What [`Cancel::stop`] records: no signal asked.
const STOPPED_BY_PROGRAM: i32 = -1;

/// A cloneable handle to one run's stop request. It records which signal asked,
/// so the binary can exit 128 + the signal's number (130 for SIGINT, 143 for
/// SIGTERM, 129 for SIGHUP) as shells do.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicI32>);

impl Cancel {
    /// A handle with no stop requested.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the run to stop because of `signal` (its number, at least 1).
    /// The first request wins.
    pub fn request(&self, signal: i32) {
        let _ = self
            .0
            .compare_exchange(0, signal.max(1), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Ask the run to stop for a reason of the program's own (a worker thread
    /// that could not start), not a signal: the exit code is then the
    /// error's, never a signal's.
    pub fn stop(&self) {
        let _ = self
            .0
            .compare_exchange(0, STOPPED_BY_PROGRAM, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Sleeps for `total`, waking every 50 ms to check for a stop request, so
    /// Ctrl-C is not held up by a backoff. False if a stop was requested
    /// (before or during the sleep).
    pub(crate) fn sleep(&self, total: Duration) -> bool {
        sleep_unless(total, || self.is_requested())
    }

    /// The signal that asked for the stop, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            s if s > 0 => Some(s),
            _ => None,
        }
    }
}

/// The conventional name of a stop signal, for messages; `None` for a number
/// that is not one of the signals fetchq stops on.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    match signal {
        libc::SIGHUP => Some("SIGHUP"),
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => None,
    }
}

/// Sleeps for `total` in 50 ms slices, asking `stop` before each; false as
/// soon as it says stop (then the sleep is cut short), true once `total` has
/// passed. For stop conditions that are not a [`Cancel`] (a shutdown
/// deadline, a thread's own stop flag).
pub(crate) fn sleep_unless(total: Duration, stop: impl Fn() -> bool) -> bool {
    let until = Instant::now() + total;
    loop {
        if stop() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(SLEEP_SLICE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_have_names() {
        assert_eq!(signal_name(1), Some("SIGHUP"));
        assert_eq!(signal_name(2), Some("SIGINT"));
        assert_eq!(signal_name(15), Some("SIGTERM"));
        assert_eq!(signal_name(9), None);
    }

    #[test]
    fn a_stop_of_the_programs_own_names_no_signal() {
        let cancel = Cancel::new();
        cancel.stop();
        assert!(cancel.is_requested());
        assert_eq!(cancel.signal(), None);
        cancel.request(libc::SIGINT);
        assert_eq!(cancel.signal(), None, "the first request wins");
        let cancel = Cancel::new();
        cancel.request(libc::SIGTERM);
        assert_eq!(cancel.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn a_sleep_lasts_its_time_unless_stopped() {
        let cancel = Cancel::new();
        let start = Instant::now();
        assert!(cancel.sleep(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(cancel.sleep(Duration::ZERO));

        cancel.request(libc::SIGINT);
        let start = Instant::now();
        assert!(!cancel.sleep(Duration::from_secs(60)));
        assert!(!cancel.sleep(Duration::ZERO));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_stop_during_the_sleep_cuts_it_short() {
        let start = Instant::now();
        // Stops on the third check: after two slices, long before a minute.
        let checks = std::cell::Cell::new(0);
        let stop = || {
            checks.set(checks.get() + 1);
            checks.get() >= 3
        };
        assert!(!sleep_unless(Duration::from_secs(60), stop));
        assert_eq!(checks.get(), 3);
        let took = start.elapsed();
        assert!(
            took >= 2 * SLEEP_SLICE && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}
