//! How long to wait before the next attempt: exponential backoff with full
//! jitter, capped, where a wait the server asked for wins (capped too).
//!
//! Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the
//! n-th wait is uniform in `[0, min(cap, base·2^n)]`, which spreads the
//! retries of many clients that failed together (workers after a Redis
//! restart, downloads after a server hiccup) instead of sending them back in
//! waves.

use std::time::Duration;

/// The doubling stops growing after this many steps (`base·2^20` is past any
/// useful cap, and the shift cannot overflow).
const MAX_SHIFT: u32 = 20;

/// The waits of one retry loop: create it before the first attempt, ask
/// [`next`](Self::next) after each failure.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    step: u32,
}

impl Backoff {
    /// Waits that start below `base`, double each time, and never exceed `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap, step: 0 }
    }

    /// The wait before the next attempt. A server's `retry_after` (HTTP
    /// `Retry-After`) wins over the backoff, capped at the same ceiling so a
    /// hostile value cannot park a client for days; otherwise a uniform draw
    /// below [`ceiling`](Self::ceiling).
    pub(crate) fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        self.next_with(retry_after, fastrand::f64())
    }

    /// The upper bound of the next jittered wait: `min(cap, base·2^step)`,
    /// `step` counting the waits already handed out.
    pub(crate) fn ceiling(&self) -> Duration {
        ceiling(self.base, self.cap, self.step)
    }

    /// [`next`](Self::next) with the random draw `unit` in `[0, 1)` given.
    fn next_with(&mut self, retry_after: Option<Duration>, unit: f64) -> Duration {
        let ceiling = self.ceiling();
        self.step = self.step.saturating_add(1);
        match retry_after {
            Some(wait) => wait.min(self.cap),
            // `try_from` rather than `mul_f64`, which panics when the
            // product rounds past `Duration::MAX`.
            None => Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit.clamp(0.0, 1.0))
                .map_or(ceiling, |wait| wait.min(ceiling)),
        }
    }
}

/// The ceiling of the wait after `step` earlier waits: `min(cap, base·2^step)`.
pub(crate) fn ceiling(base: Duration, cap: Duration, step: u32) -> Duration {
    base.saturating_mul(1 << step.min(MAX_SHIFT)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        // (base, cap, the ceilings of the first waits)
        let cases: &[(u64, u64, &[u64])] = &[
            (100, 1000, &[100, 200, 400, 800, 1000, 1000]),
            (100, 5000, &[100, 200, 400, 800, 1600, 3200, 5000]),
            (250, 250, &[250, 250]),
            (0, 1000, &[0, 0, 0]),
            (100, 0, &[0, 0]),
        ];
        for &(base, cap, ceilings) in cases {
            let mut b = Backoff::new(MS(base), MS(cap));
            for (n, &want) in ceilings.iter().enumerate() {
                assert_eq!(b.ceiling(), MS(want), "base {base} cap {cap} step {n}");
                b.next(None);
            }
        }
    }

    #[test]
    fn the_draw_scales_the_ceiling() {
        // (draw, wait on the third step of 100 ms doubling: ceiling 400 ms)
        let cases: &[(f64, u64)] = &[
            (0.0, 0),
            (0.25, 100),
            (0.5, 200),
            (0.75, 300),
            (7.0, 400),
            (-1.0, 0),
        ];
        for &(unit, want) in cases {
            let mut b = Backoff::new(MS(100), MS(1000));
            b.next(None);
            b.next(None);
            assert_eq!(b.next_with(None, unit), MS(want), "draw {unit}");
        }
    }

    #[test]
    fn a_server_wait_wins_but_is_capped() {
        // (retry_after, wait)
        let cases: &[(u64, u64)] = &[(0, 0), (300, 300), (1000, 1000), (3_600_000, 1000)];
        for &(asked, want) in cases {
            let mut b = Backoff::new(MS(100), MS(1000));
            assert_eq!(b.next_with(Some(MS(asked)), 0.5), MS(want), "asked {asked}");
            // It still counts as a step.
            assert_eq!(b.ceiling(), MS(200));
        }
    }

    #[test]
    fn random_waits_stay_under_the_ceiling() {
        let mut b = Backoff::new(MS(100), Duration::from_secs(1));
        for _ in 0..40 {
            let ceiling = b.ceiling();
            assert!(b.next(None) <= ceiling);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn huge_values_saturate() {
        let mut b = Backoff::new(Duration::MAX, Duration::MAX);
        for _ in 0..30 {
            assert_eq!(b.next(Some(Duration::MAX)), Duration::MAX);
        }
        assert_eq!(b.ceiling(), Duration::MAX);
        assert_eq!(b.next_with(None, 1.0), Duration::MAX);
        assert!(b.next(None) <= Duration::MAX);
    }
}
