//! `fetchq worker`: the ordinary download pipeline ([`crate::run`]) fed from a
//! Redis queue instead of a list, recording every outcome back in the queue.
//!
//! ```text
//!            ┌─ source.rs (feeder thread, own connection): claim ─▶ Feeder::submit(entry, ticket)
//!  Redis ◀───┼─ sink.rs (observer, calling thread, own connection): Finished ─▶ complete / release
//!            ├─ heartbeat.rs (own thread and connection): heartbeat every TTL/3, requeue_stale every TTL
//!            └─ fleet.rs (--global-limits; own connection, called by the pool's gate and rate limiter)
//! ```
//!
//! This file runs them and the series of runs, and shuts down;
//! `claims.rs` is the table they share.
//!
//! # Claim accounting
//!
//! Every claimed entry gets a [`Ticket`](crate::event::Ticket), its claim
//! number, and sits in one shared table (`Claims`) from the moment `claim`
//! returns until its result is in Redis. The source claims a batch as large
//! as the room in the feeder's channel (`4·jobs`) plus `2·jobs` it keeps
//! and hands over as the channel drains; while the channel is full it
//! sleeps until the pool has drained it to half. So no more than `jobs`
//! downloading + `4·jobs` queued + `2·jobs` held are claimed and
//! unfinished at once (plus the per-host
//! parking lot with `--per-host`). A worker that dies strands those, and the
//! finished ones whose outcome is not written yet (at most `FLUSH_EVERY`
//! worth).
//!
//! - `Finished` with the ticket: the sink queues the outcome (the `--json`
//!   object as the result; ok = not failed). The pool hands events over once
//!   per tick (100 ms) or when a backlog builds up, and at the end of each
//!   hand-over the sink records what it queued with one `complete_many`
//!   (also whenever a run ends); only then are the tickets dropped.
//!   An unusable entry (bad URL) is a failed line, completed the same way.
//! - `Finished` as `Failed(Cancelled)` (Ctrl-C mid-download): not recorded;
//!   the ticket stays, to be released instead of marked failed.
//! - Everything still in the table when the runs are over (downloads
//!   interrupted, entries the pool skipped on cancel, the one whose `submit`
//!   returned false) is `release`d at shutdown, newest first, so the head of
//!   `pending` is again in claim order; then the worker
//!   unregisters, which also returns any orphan (a claim whose reply was
//!   lost with the connection).
//!
//! Results are retried across connection loss for as long as it takes
//! (bounded once a stop was requested); an entry whose result cannot be
//! written stays in this worker's processing list in Redis and goes back to
//! `pending` at unregister or when the heartbeat expires: never lost.
//!
//! # Runs
//!
//! The pipeline remembers names and duplicates for one run, which a worker
//! that lives for weeks must not do forever. So a worker is a series of runs
//! of the pipeline: a run ends when the queue is idle and none of this
//! worker's entries is in flight, after [`WorkerOptions::max_entries_per_run`]
//! entries, or when an entry comes back whose id this run already handled
//! (`retry-failed`, or a requeue): that entry is carried over to the next run,
//! so it is downloaded again rather than skipped as a duplicate.

mod claims;
mod fleet;
mod heartbeat;
mod sink;
mod source;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{Queue, QueueEntry, QueueError, RetryPolicy};
use crate::cancel::Cancel;
use crate::config::Config;
use crate::display::chain;
use crate::error::RunError;
use crate::event::{Event, Live, Observer, Tee};
use crate::report::Summary;
use claims::Claims;
use sink::QueueSink;
use source::{End, QueueSource};

/// How long one blocking claim waits: the longest a stop request or an idle
/// check waits on an empty queue.
pub const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// The longest a finished entry's outcome waits in the sink before it is
/// written to Redis: the sink writes at every tick of the pool.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// While this worker's own entries are downloading and the queue is empty,
/// the source looks at the queue again after this long (or as soon as the
/// last of its entries is recorded, to see the end of a drain at once); and
/// the longest a draining worker waits between looks while other workers'
/// entries are in flight.
const BUSY_CLAIM_WAIT: Duration = Duration::from_millis(100);
/// Repeat a "Redis unavailable" warning at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// Retry for as long as it takes (a stop request still ends it).
const FOREVER: RetryPolicy = RetryPolicy {
    initial_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(5),
    give_up_after: Duration::MAX,
};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's id in the queue (see [`super::default_worker_id`]).
    pub worker_id: String,
    /// Exit once the queue is drained (nothing pending, nothing processing
    /// anywhere, dead workers' entries requeued) instead of waiting for more.
    pub drain: bool,
    /// How long one blocking claim waits ([`CLAIM_WAIT`]); a worker with
    /// `drain` never blocks in a claim.
    pub claim_wait: Duration,
    /// Entries per run of the pipeline before it is restarted (see the module doc).
    pub max_entries_per_run: u64,
    /// How long shutdown keeps retrying to release entries and unregister
    /// while Redis is unreachable.
    pub shutdown_limit: Duration,
    /// Count the config's `per_host` and `limit_rate` across every worker
    /// of the queue (through Redis) instead of in this worker alone.
    pub global_limits: bool,
}

impl WorkerOptions {
    /// Defaults: run until stopped, 1 s claims, 50 000 entries per run, 10 s shutdown retries.
    pub fn new(worker_id: impl Into<String>) -> WorkerOptions {
        WorkerOptions {
            worker_id: worker_id.into(),
            drain: false,
            claim_wait: CLAIM_WAIT,
            max_entries_per_run: 50_000,
            shutdown_limit: Duration::from_secs(10),
            global_limits: false,
        }
    }
}

/// How much a [`Notice`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something worth knowing (dead workers' entries requeued, Redis back).
    Info,
    /// Trouble the worker rides out (Redis unreachable, a malformed entry).
    Warning,
    /// Something the worker could not do (a result not recorded).
    Error,
}

/// A message for the operator; the library never prints, the binary decides.
#[derive(Debug, Clone)]
pub struct Notice {
    /// How much it matters.
    pub level: Level,
    /// The text, without a `fetchq:` prefix.
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Info => f.write_str(&self.message),
            Level::Warning => write!(f, "warning: {}", self.message),
            Level::Error => write!(f, "error: {}", self.message),
        }
    }
}

/// Where notices go; called from the worker's threads.
pub type Notify = Arc<dyn Fn(Notice) + Send + Sync>;

/// What a worker did, once it stopped.
#[derive(Debug)]
pub struct WorkerReport {
    /// The runs' summaries merged (with `interrupted` set by a stop request).
    pub summary: Summary,
    /// Results recorded in the queue (done or failed).
    pub recorded: u64,
    /// Entries given back to `pending` unfinished (stop request, orphans).
    pub released: u64,
    /// The worker stopped because the queue was drained (`--drain`).
    pub drained: bool,
}

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The queue failed in a way retrying does not cure (or not in time).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The pipeline could not start (output directory, proxy, threads).
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What the source, the sink and the heartbeat share.
struct Ctx {
    worker_id: String,
    options: WorkerOptions,
    ttl: Duration,
    cancel: Cancel,
    notify: Notify,
    claims: Mutex<Claims>,
    /// Signalled when the sink has recorded outcomes and dropped their tickets.
    recorded: Condvar,
}

impl Ctx {
    fn claims(&self) -> MutexGuard<'_, Claims> {
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a notice to the caller.
    fn say(&self, level: Level, message: String) {
        (self.notify)(Notice { level, message });
    }

    /// `op` with connection errors retried per `policy` until `stop`, with a
    /// warning when Redis goes away and a note when it is back.
    fn retry<T>(
        &self,
        queue: &mut Queue,
        what: &str,
        policy: &RetryPolicy,
        stop: &dyn Fn() -> bool,
        op: impl FnMut(&mut Queue) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut warnings = Warnings::default();
        let result = queue.with_retry_until(policy, stop, op, |error, wait| {
            if warnings.failed(Instant::now()) {
                self.say(
                    Level::Warning,
                    format!(
                        "Redis unavailable ({what}): {}; retrying in {:.1} s",
                        chain(error),
                        wait.as_secs_f64()
                    ),
                );
            }
        });
        if warnings.given() && result.is_ok() {
            self.say(Level::Info, format!("Redis reachable again ({what})"));
        }
        result
    }
}

/// Tells the heartbeat's and the fleet's threads to end, waking them from
/// their sleep at once (so shutdown does not wait out a polling interval).
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends every sleep, now and later.
    fn set(&self) {
        *self.lock() = true;
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.lock()
    }

    /// Sleeps `total` unless stopped first; true if the whole time passed.
    fn sleep(&self, total: Duration) -> bool {
        let until = Instant::now() + total;
        let mut stopped = self.lock();
        loop {
            if *stopped {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, left)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
        }
    }
}

/// When failures of one retry loop are worth a warning.
#[derive(Debug, Default)]
struct Warnings {
    failures: u32,
    last: Option<Instant>,
}

impl Warnings {
    /// One more failure at `now`; true if it deserves a warning. The first
    /// failure does not: it is often just a connection that went stale while
    /// Redis restarted, and the reconnect right after cures it. After that, a
    /// warning at most every [`WARN_EVERY`].
    fn failed(&mut self, now: Instant) -> bool {
        self.failures += 1;
        let due = self.failures >= 2 && self.last.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }

    /// Whether any warning was given (so recovery deserves a note).
    fn given(&self) -> bool {
        self.last.is_some()
    }
}

/// Passes every event on except `InputDone`: a worker's input never ends,
/// and one worker is a series of runs whose totals would mislead.
struct NoInputDone<'a>(&'a mut dyn Observer);

impl Observer for NoInputDone<'_> {
    fn event(&mut self, event: &Event, live: &Live) {
        if !matches!(event, Event::InputDone { .. }) {
            self.0.event(event, live);
        }
    }

    fn tick(&mut self, live: &Live) {
        self.0.tick(live);
    }
}

/// Runs a worker on `queue` until it is stopped (`cancel`), the queue is
/// drained (`options.drain`), or the queue fails for good. Every event goes
/// to `observer` as in a local run (except `InputDone`); messages about the
/// queue go to `notify`.
///
/// `queue` should be connected (so a wrong address fails at once) and carry
/// the heartbeat TTL every worker of the queue uses. The worker opens two
/// more connections from it: one for claiming, one for the heartbeat.
pub fn work(
    mut queue: Queue,
    mut config: Config,
    options: WorkerOptions,
    cancel: &Cancel,
    observer: &mut dyn Observer,
    notify: Notify,
) -> Result<WorkerReport, WorkerError> {
    let ctx = Arc::new(Ctx {
        worker_id: options.worker_id.clone(),
        ttl: queue.heartbeat_ttl(),
        options,
        cancel: cancel.clone(),
        notify,
        claims: Mutex::default(),
        recorded: Condvar::new(),
    });
    let id = ctx.worker_id.clone();
    let cancelled = || cancel.is_requested();
    let startup = RetryPolicy::default();
    ctx.retry(&mut queue, "register", &startup, &cancelled, |q| {
        q.register_worker(&id)
    })?;
    let (hb_queue, source_queue) = match open_connections(&ctx, &mut queue, cancel) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = queue.unregister_worker(&id);
            return Err(e.into());
        }
    };
    let stop_heartbeat = Arc::new(Stop::default());
    let beat = {
        let (ctx, stop) = (ctx.clone(), stop_heartbeat.clone());
        thread::Builder::new()
            .name("fetchq-heartbeat".into())
            .spawn(move || heartbeat::run(hb_queue, ctx, stop))
    };
    let beat = match beat {
        Ok(handle) => handle,
        Err(e) => {
            let _ = queue.unregister_worker(&id);
            return Err(RunError::Spawn(e).into());
        }
    };

    let fleet = if ctx.options.global_limits {
        match start_fleet(&ctx, &mut queue, &stop_heartbeat) {
            Ok((counter, thread)) => {
                config.fleet = Some(counter.clone());
                Some((counter, thread))
            }
            Err(e) => {
                stop_heartbeat.set();
                let _ = beat.join();
                let _ = queue.unregister_worker(&id);
                return Err(e);
            }
        }
    } else {
        None
    };

    let mut sink = QueueSink::new(queue, ctx.clone(), config.dir.clone());
    let runs = run_series(&ctx, &config, source_queue, &mut sink, observer);
    sink.flush();

    // No more heartbeats or host slots, then give back what was claimed and
    // not recorded.
    stop_heartbeat.set();
    let _ = beat.join();
    if let Some((counter, thread)) = fleet {
        let _ = thread.join();
        counter.release_all();
    }
    let released = shut_down(&ctx, sink.queue());
    let Runs { mut total, drained } = runs?;
    let (not_started, input_error) = (total.not_started, total.input_error.take());
    total.finish(not_started, cancel.signal(), input_error);
    Ok(WorkerReport {
        summary: total,
        recorded: sink.recorded(),
        released,
        drained,
    })
}

/// The fleet counter of `--global-limits` on a connection of its own, and
/// the thread that returns its idle slots until `stop` is set.
fn start_fleet(
    ctx: &Arc<Ctx>,
    queue: &mut Queue,
    stop: &Arc<Stop>,
) -> Result<(Arc<fleet::FleetCounter>, thread::JoinHandle<()>), WorkerError> {
    let cancelled = || ctx.cancel.is_requested();
    let own = ctx.retry(queue, "connect", &RetryPolicy::default(), &cancelled, |q| {
        q.try_clone()
    })?;
    let counter = Arc::new(fleet::FleetCounter::new(own, ctx.clone()));
    let thread = thread::Builder::new()
        .name("fetchq-fleet".into())
        .spawn({
            let (counter, stop) = (counter.clone(), stop.clone());
            move || fleet::run(counter, stop)
        })
        .map_err(RunError::Spawn)?;
    Ok((counter, thread))
}

/// Opens the heartbeat's and the source's connections, retrying connection
/// errors for a bounded time.
fn open_connections(ctx: &Ctx, queue: &mut Queue, cancel: &Cancel) -> Result<(Queue, Queue), QueueError> {
    let startup = RetryPolicy::default();
    let cancelled = || cancel.is_requested();
    let heartbeat = ctx.retry(queue, "connect", &startup, &cancelled, |q| q.try_clone())?;
    let source = ctx.retry(queue, "connect", &startup, &cancelled, |q| q.try_clone())?;
    Ok((heartbeat, source))
}

/// What a worker's series of runs came to.
struct Runs {
    total: Summary,
    drained: bool,
}

/// Runs the pipeline again and again, each run fed by a [`QueueSource`] on
/// `source_queue` (handed from run to run, with the carried-over entry),
/// until a run's source ends for good.
fn run_series(
    ctx: &Arc<Ctx>,
    config: &Config,
    source_queue: Queue,
    sink: &mut QueueSink,
    observer: &mut dyn Observer,
) -> Result<Runs, WorkerError> {
    let cancel = &ctx.cancel;
    let cancelled = || cancel.is_requested();
    let mut filtered = NoInputDone(observer);
    let mut runs = Runs {
        total: Summary::new(),
        drained: false,
    };
    let mut source_queue = Some(source_queue);
    let mut carry = Vec::new();
    loop {
        let queue = match source_queue.take() {
            Some(q) => q,
            None => ctx.retry(sink.queue(), "connect", &FOREVER, &cancelled, |q| q.try_clone())?,
        };
        let (back, handed_back) = mpsc::channel();
        let source = QueueSource::new(queue, ctx.clone(), std::mem::take(&mut carry), back)
            .claiming_ahead(2 * config.jobs.clamp(1, 1024));
        let summary = crate::pool::run(
            config.clone(),
            Box::new(source),
            cancel,
            &mut Tee(vec![&mut *sink, &mut filtered]),
        );
        sink.flush();
        runs.total += summary?;
        let Ok(back) = handed_back.try_recv() else {
            return Ok(runs);
        };
        source_queue = Some(back.queue);
        carry = back.carry;
        match back.end {
            End::Restart if !cancel.is_requested() => {}
            End::Drained => {
                runs.drained = true;
                return Ok(runs);
            }
            End::Restart | End::Stopped | End::Broken => return Ok(runs),
        }
    }
}

/// Releases every entry still claimed (newest first) and leaves the worker
/// set, all within one time limit however many entries are held. Returns
/// how many entries went back to `pending`.
fn shut_down(ctx: &Ctx, queue: &mut Queue) -> u64 {
    let id = &ctx.worker_id;
    let leftovers: Vec<Arc<QueueEntry>> = ctx.claims().take_newest_first();
    let deadline = Instant::now() + ctx.options.shutdown_limit;
    let late = || Instant::now() >= deadline;
    let mut released = 0u64;
    for entry in &leftovers {
        match ctx.retry(queue, "release", &FOREVER, &late, |q| q.release(id, entry)) {
            Ok(true) => released += 1,
            // Requeued meanwhile as a dead worker's (a long Redis outage).
            Ok(false) => {}
            Err(e) => {
                ctx.say(
                    Level::Error,
                    format!(
                        "cannot release claimed entries: {}; they return to pending when this \
                         worker's heartbeat expires",
                        chain(&e)
                    ),
                );
                break;
            }
        }
    }
    match ctx.retry(queue, "unregister", &FOREVER, &late, |q| q.unregister_worker(id)) {
        Ok(n) => released += n as u64,
        Err(e) => ctx.say(
            Level::Error,
            format!(
                "cannot unregister worker {id}: {}; its entries return when its heartbeat expires",
                chain(&e)
            ),
        ),
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_ends_a_sleep_at_once_and_stays_set() {
        let stop = Arc::new(Stop::default());
        assert!(stop.sleep(Duration::from_millis(1)), "a short sleep runs out");
        let sleeper = {
            let stop = stop.clone();
            thread::spawn(move || stop.sleep(Duration::from_secs(30)))
        };
        let start = Instant::now();
        stop.set();
        assert!(!sleeper.join().expect("sleeper thread"));
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert!(!stop.sleep(Duration::from_secs(30)), "a later sleep ends at once");
    }

    #[test]
    fn the_first_failure_is_quiet_then_one_warning_per_interval() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        // (time of the failure in s, warned?)
        let cases = [
            (0, false),
            (1, true),
            (2, false),
            (30, false),
            (31, true),
            (32, false),
            (61, true),
        ];
        let mut w = Warnings::default();
        assert!(!w.given());
        for (at, want) in cases {
            assert_eq!(w.failed(secs(at)), want, "failure at {at} s");
        }
        assert!(w.given());
    }
}
