//! The run-wide stop request: set once by a signal handler (or a library
//! caller), read by the feeder between lines and by workers between chunks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// A cloneable handle to one run's stop request. It records which signal asked,
/// so the binary can exit 130 for SIGINT and 143 for SIGTERM.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicI32>);

impl Cancel {
    /// A handle with no stop requested.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the run to stop; `signal` is the signal number (or any non-zero code).
    /// The first request wins.
    pub fn request(&self, signal: i32) {
        let _ = self
            .0
            .compare_exchange(0, signal.max(1), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// The signal that asked for the stop, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}
