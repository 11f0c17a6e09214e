//! Retrying queue operations across connection loss (Redis restarting, network cuts).

use std::time::{Duration, Instant};

use super::{Queue, QueueError};
use crate::backoff::{self, Backoff};
use crate::cancel::sleep_unless;

/// The lowest wait ceiling: a policy of zeros still backs off, from 1 ms up.
const FLOOR: Duration = Duration::from_millis(1);

/// How [`Queue::with_retry`] waits between attempts: capped exponential
/// backoff with full jitter, for a bounded total time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the wait after the first failure (doubled after each further one).
    pub initial_delay: Duration,
    /// The highest ceiling of a single wait.
    pub max_delay: Duration,
    /// Give up (returning the last error) once this much time has passed
    /// since the first attempt, or would have passed after the next wait.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 100 ms, doubling up to 5 s, for at most 60 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            give_up_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The default policy with another total time limit.
    pub fn give_up_after(limit: Duration) -> RetryPolicy {
        RetryPolicy {
            give_up_after: limit,
            ..RetryPolicy::default()
        }
    }

    /// The ceiling of the wait before attempt `attempt + 1` (`attempt`
    /// counts from 1): `initial_delay * 2^(attempt-1)`, capped at
    /// `max_delay`, and never below 1 ms. The wait itself is drawn uniformly
    /// below it (full jitter), so workers restarted together do not retry
    /// in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let (base, cap) = self.bounds();
        backoff::ceiling(base, cap, attempt.saturating_sub(1))
    }

    /// The backoff's base and cap, floored at 1 ms.
    fn bounds(&self) -> (Duration, Duration) {
        (self.initial_delay.max(FLOOR), self.max_delay.max(FLOOR))
    }
}

impl Queue {
    /// Runs `op`, retrying it while it fails with a connection-level error
    /// ([`QueueError::is_connection`]), waiting per `policy` in between.
    /// Other errors, and the last connection error once the time limit is
    /// reached, are returned as they are. Each retry reconnects (the queue
    /// drops a broken connection and opens a new one on its next use).
    ///
    /// Operations are safe to repeat, but a reply lost with the connection can
    /// make the repeat see its own effect: see the module doc,
    /// "Delivery guarantees".
    pub fn with_retry<T>(
        &mut self,
        policy: &RetryPolicy,
        op: impl FnMut(&mut Queue) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.with_retry_notify(policy, op, |_, _| {})
    }

    /// [`with_retry`](Self::with_retry), calling `notify(error, wait)` before
    /// each wait, e.g. to print "Redis unavailable, retrying in 2s".
    pub fn with_retry_notify<T>(
        &mut self,
        policy: &RetryPolicy,
        op: impl FnMut(&mut Queue) -> Result<T, QueueError>,
        notify: impl FnMut(&QueueError, Duration),
    ) -> Result<T, QueueError> {
        self.with_retry_until(policy, &|| false, op, notify)
    }
}

impl Queue {
    /// Like [`with_retry_notify`](Self::with_retry_notify), but the waits are
    /// cut into short slices and `stop` is asked between them: once it returns
    /// true, the last connection error is returned instead of waiting on. For
    /// loops that must retry for as long as it takes (a worker riding out a
    /// Redis restart) yet notice Ctrl-C within about 50 ms.
    /// `policy.give_up_after` still bounds the total time
    /// (`Duration::MAX`: no bound).
    pub fn with_retry_until<T>(
        &mut self,
        policy: &RetryPolicy,
        stop: &dyn Fn() -> bool,
        mut op: impl FnMut(&mut Queue) -> Result<T, QueueError>,
        mut notify: impl FnMut(&QueueError, Duration),
    ) -> Result<T, QueueError> {
        let start = Instant::now();
        let (base, cap) = policy.bounds();
        let mut backoff = Backoff::new(base, cap);
        loop {
            let err = match op(self) {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_connection() => return Err(e),
                Err(e) => e,
            };
            let wait = backoff.next(None);
            if stop() || start.elapsed().saturating_add(wait) > policy.give_up_after {
                return Err(err);
            }
            notify(&err, wait);
            if !sleep_unless(wait, stop) {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(4), Duration::from_millis(800));
        assert_eq!(p.delay(7), Duration::from_secs(5));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(5));
        let zero = RetryPolicy {
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            give_up_after: Duration::from_secs(1),
        };
        assert_eq!(zero.delay(1), Duration::from_millis(1));
    }
}
