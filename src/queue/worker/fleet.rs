//! `worker --global-limits`: this worker's side of the fleet's per-host
//! slots and rate bucket (see `queue/fleet.rs` for the Redis side), behind
//! the [`FleetLimits`] hook the per-host gate and the rate limiter consult.
//!
//! Slots are taken one at a time, when a download is about to start, and a
//! freed slot is kept for `KEEP` in case this worker's next entry is for
//! the same host (the common case: a list of one site), so a run of entries
//! for one host costs one script call to take a slot, not one per entry.
//! Idle slots older than that go back in one call per `KEEP`, from a thread
//! of their own ([`run`]). A host the fleet refused is not asked again for
//! `REFUSED_WAIT`. All of it travels on one connection of its own.
//!
//! When Redis cannot be reached, no new slot is given (downloads wait
//! parked) and a charge is answered as if this worker were alone at the
//! rate; both recover by themselves once Redis is back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Ctx, Level, Stop, Warnings};
use crate::display::chain;
use crate::limits::FleetLimits;
use crate::queue::{Queue, QueueError};

/// How long a freed slot stays with this worker for its next entry.
const KEEP: Duration = Duration::from_millis(100);
/// How long a host whose slots are all held elsewhere is not asked again.
const REFUSED_WAIT: Duration = Duration::from_millis(50);

/// This worker's leases and its connection for them.
pub(super) struct FleetCounter {
    ctx: Arc<Ctx>,
    queue: Mutex<(Queue, Warnings)>,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Host → slots held but unused, and when the last one was freed.
    idle: HashMap<String, (usize, Instant)>,
    /// Host → when it may be asked again.
    refused: HashMap<String, Instant>,
}

impl fmt::Debug for FleetCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetCounter")
            .field("worker", &self.ctx.worker_id)
            .finish_non_exhaustive()
    }
}

impl FleetCounter {
    /// A counter for `ctx`'s worker on its own connection `queue`; drops any
    /// slot a former worker of the same id left behind.
    pub(super) fn new(queue: Queue, ctx: Arc<Ctx>) -> FleetCounter {
        let counter = FleetCounter {
            ctx,
            queue: Mutex::new((queue, Warnings::default())),
            slots: Mutex::default(),
        };
        counter.call("release slots", |q, id| q.give_all_slots(id));
        counter
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One attempt of `op` on the counter's connection; a failure is warned
    /// about (the first quietly, then once per interval) and is `None`.
    fn call<T>(&self, what: &str, op: impl FnOnce(&mut Queue, &str) -> Result<T, QueueError>) -> Option<T> {
        let mut guard = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (queue, warnings) = &mut *guard;
        match op(queue, &self.ctx.worker_id) {
            Ok(v) => {
                if warnings.given() {
                    self.ctx
                        .say(Level::Info, format!("Redis reachable again ({what})"));
                }
                *warnings = Warnings::default();
                Some(v)
            }
            Err(e) => {
                if warnings.failed(Instant::now()) {
                    self.ctx.say(
                        Level::Warning,
                        format!("Redis unavailable ({what}): {}", chain(&e)),
                    );
                }
                None
            }
        }
    }

    /// Gives back the slots idle for at least `age` (all of them with
    /// `Duration::ZERO`), in one call; kept for the next try if it fails.
    fn return_idle(&self, age: Duration) {
        let now = Instant::now();
        let due: Vec<(String, usize)> = {
            let mut slots = self.slots();
            slots.refused.retain(|_, until| *until > now);
            let hosts: Vec<String> = slots
                .idle
                .iter()
                .filter(|(_, (_, since))| now.duration_since(*since) >= age)
                .map(|(host, _)| host.clone())
                .collect();
            hosts
                .into_iter()
                .filter_map(|host| slots.idle.remove(&host).map(|(n, _)| (host, n)))
                .collect()
        };
        if due.is_empty()
            || self
                .call("return host slots", |q, id| q.give_slots(id, &due))
                .is_some()
        {
            return;
        }
        let mut slots = self.slots();
        for (host, n) in due {
            slots.idle.entry(host).or_insert((0, now)).0 += n;
        }
    }

    /// Gives back every slot this worker holds (at shutdown).
    pub(super) fn release_all(&self) {
        self.slots().idle.clear();
        self.call("release host slots", |q, id| q.give_all_slots(id));
    }
}

impl FleetLimits for FleetCounter {
    fn take_slot(&self, host: &str, limit: usize) -> bool {
        let now = Instant::now();
        {
            let mut slots = self.slots();
            if let Some((n, _)) = slots.idle.get_mut(host) {
                *n -= 1;
                if *n == 0 {
                    slots.idle.remove(host);
                }
                return true;
            }
            if slots.refused.get(host).is_some_and(|until| *until > now) {
                return false;
            }
        }
        let taken = self.call("take a host slot", |q, id| q.take_slots(id, host, limit, 1));
        if taken.unwrap_or(0) > 0 {
            return true;
        }
        self.slots().refused.insert(host.to_string(), now + REFUSED_WAIT);
        false
    }

    fn give_slot(&self, host: &str) {
        let mut slots = self.slots();
        let (n, since) = slots.idle.entry(host.to_string()).or_insert((0, Instant::now()));
        *n += 1;
        *since = Instant::now();
    }

    fn charge(&self, bytes: u64, rate: u64, burst: u64) -> Duration {
        self.call("rate limit", |q, _| q.charge(bytes, rate, burst))
            .unwrap_or_else(|| Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64))
    }
}

/// Returns idle slots every [`KEEP`] until `stop` is set, then all of them.
pub(super) fn run(counter: Arc<FleetCounter>, stop: Arc<Stop>) {
    while stop.sleep(KEEP) {
        counter.return_idle(KEEP);
    }
    counter.return_idle(Duration::ZERO);
}
