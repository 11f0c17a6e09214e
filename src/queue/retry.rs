//! Retrying queue operations across connection loss (Redis restarting, network cuts).

use std::time::{Duration, Instant};

use super::{Queue, QueueError};

/// How [`Queue::with_retry`] waits between attempts: capped exponential
/// backoff with jitter, for a bounded total time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure (doubled after each further one).
    pub initial_delay: Duration,
    /// The longest single wait.
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

    /// The nominal wait before attempt `attempt + 1` (`attempt` counts from
    /// 1), before jitter: `initial_delay * 2^(attempt-1)`, capped at
    /// `max_delay`, and never below 1 ms so a retry loop can never spin.
    pub fn delay(&self, attempt: u32) -> Duration {
        let floor = Duration::from_millis(1);
        let shift = attempt.saturating_sub(1).min(20);
        let d = self.initial_delay.max(floor).saturating_mul(1u32 << shift);
        d.min(self.max_delay.max(floor))
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
        const SLICE: Duration = Duration::from_millis(50);
        let start = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let err = match op(self) {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_connection() => return Err(e),
                Err(e) => e,
            };
            // Jitter in [nominal/2, nominal] so restarted workers don't stampede.
            let wait = policy.delay(attempt).mul_f64(0.5 + fastrand::f64() * 0.5);
            if stop() || start.elapsed().saturating_add(wait) > policy.give_up_after {
                return Err(err);
            }
            notify(&err, wait);
            let until = Instant::now() + wait;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if stop() {
                    return Err(err);
                }
                std::thread::sleep(left.min(SLICE));
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
