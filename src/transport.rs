//! A ureq transport layer that gives fetchq the two things ureq lacks: a real
//! idle-read timeout, and prompt cancellation of a blocked read.
//!
//! ureq's timeouts are deadlines per phase or for the whole body, so using one
//! as `--timeout` would kill a healthy 10 GiB download on a slow link. Instead,
//! [`Watched`] sits between the TCP socket and TLS and waits for input in short
//! slices: every slice checks the cancel flag, and only when *no byte at all*
//! arrived for the idle limit does the read fail. A steady trickle resets the
//! clock on every read, so it is never killed. (ureq 3.5 added a per-read
//! timeout of its own; it cannot see the cancel flag, so both live here.)

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport, time::Duration as UreqDuration,
};

use crate::cancel::Cancel;

/// How long one wait on the socket lasts before the cancel flag is checked again.
/// Bounds the reaction to Ctrl-C on a stalled connection.
const SLICE: Duration = Duration::from_millis(200);

/// The error a read reports when no byte arrived for the idle limit.
#[derive(Debug)]
pub struct IdleTimeout(pub Duration);

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no data received for {} s", self.0.as_secs_f32())
    }
}

impl std::error::Error for IdleTimeout {}

/// The error a read reports when the run was cancelled.
#[derive(Debug)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Cancelled {}

/// Connector that wraps whatever transport came before it in [`Watched`].
#[derive(Debug, Clone)]
pub struct WatchConnector {
    idle: Option<Duration>,
    cancel: Cancel,
}

impl WatchConnector {
    /// Watch every connection for `idle` silence and for `cancel`.
    pub fn new(idle: Option<Duration>, cancel: Cancel) -> WatchConnector {
        WatchConnector { idle, cancel }
    }
}

impl<In: Transport> Connector<In> for WatchConnector {
    type Out = Watched<In>;

    fn connect(&self, _: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Watched {
            inner,
            idle: self.idle,
            cancel: self.cancel.clone(),
        }))
    }
}

/// A transport whose reads wait in slices (see the module doc).
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    idle: Option<Duration>,
    cancel: Cancel,
}

impl<T: Transport> Transport for Watched<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let start = Instant::now();
        loop {
            if self.cancel.is_requested() {
                return Err(ureq::Error::Io(io::Error::other(Cancelled)));
            }
            let waited = start.elapsed();
            let mut slice = SLICE;
            if !timeout.after.is_not_happening() {
                let left = timeout.after.saturating_sub(waited);
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                slice = slice.min(left);
            }
            if let Some(idle) = self.idle {
                let left = idle.saturating_sub(waited);
                if left.is_zero() {
                    return Err(ureq::Error::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        IdleTimeout(idle),
                    )));
                }
                slice = slice.min(left);
            }
            let next = NextTimeout {
                after: UreqDuration::Exact(slice),
                ..timeout
            };
            match self.inner.await_input(next) {
                Err(ureq::Error::Timeout(_)) => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
