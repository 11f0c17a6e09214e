//! The run-wide stop request: set once by a signal handler (or a library
//! caller), read by the feeder between lines and by workers between chunks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

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
pub fn signal_name(signal: i32) -> Option<&'static str> {
    match signal {
        libc::SIGHUP => Some("SIGHUP"),
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => None,
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
}
