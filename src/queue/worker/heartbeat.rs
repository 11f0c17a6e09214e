//! The worker's heartbeat thread: keeps this worker alive in Redis (a
//! heartbeat every third of the TTL, so two missed beats are survived) and,
//! once per TTL, requeues the entries of workers whose heartbeat expired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, FOREVER, Level, Stop};
use crate::display::chain;
use crate::queue::Queue;

/// The shortest pause between beats, however short the TTL.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// When the heartbeat thread also looks for dead workers: once per `every`.
#[derive(Debug)]
struct RequeueClock {
    every: Duration,
    last: Instant,
}

impl RequeueClock {
    /// A clock whose first requeue is due `every` after `start`.
    fn new(every: Duration, start: Instant) -> RequeueClock {
        RequeueClock { every, last: start }
    }

    /// Whether a requeue is due at `now`; if so, the next is due `every` later.
    fn due(&mut self, now: Instant) -> bool {
        let due = now.duration_since(self.last) >= self.every;
        if due {
            self.last = now;
        }
        due
    }
}

/// Beats until `stop` is set, on its own connection `queue`.
pub(super) fn run(mut queue: Queue, ctx: Arc<Ctx>, stop: Arc<Stop>) {
    let stopped = || stop.is_set();
    let interval = queue.heartbeat_interval().max(MIN_INTERVAL);
    let id = ctx.worker_id.clone();
    let mut requeue = RequeueClock::new(ctx.ttl, Instant::now());
    loop {
        if !stop.sleep(interval) {
            return;
        }
        if let Err(e) = ctx.retry(&mut queue, "heartbeat", &FOREVER, &stopped, |q| q.heartbeat(&id)) {
            if !stopped() {
                ctx.say(Level::Error, format!("heartbeat failed: {}", chain(&e)));
            }
            continue;
        }
        if requeue.due(Instant::now()) {
            match ctx.retry(&mut queue, "requeue", &FOREVER, &stopped, |q| q.requeue_stale()) {
                Ok(0) => {}
                Ok(n) => ctx.say(Level::Info, format!("requeued {n} entries of dead workers")),
                Err(e) if !stopped() => ctx.say(Level::Warning, format!("requeue failed: {}", chain(&e))),
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeues_come_once_per_ttl_counted_from_the_last() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clock = RequeueClock::new(Duration::from_millis(150), t0);
        // Beats every 50 ms (TTL / 3), one of them late.
        let cases = [
            (50, false),
            (100, false),
            (150, true),
            (200, false),
            (250, false),
            (320, true),
            (400, false),
            (470, true),
        ];
        for (ms, want) in cases {
            assert_eq!(clock.due(at(ms)), want, "beat at {ms} ms");
        }
    }
}
