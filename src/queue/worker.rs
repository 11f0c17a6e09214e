//! `fetchq worker`: the ordinary download pipeline ([`crate::run`]) fed from a
//! Redis queue instead of a list, recording every outcome back in the queue.
//!
//! ```text
//!            ┌─ QueueSource (feeder thread, own connection): claim ─▶ Feeder::submit(entry, ticket)
//!  Redis ◀───┼─ QueueSink (observer, calling thread, own connection): Finished ─▶ complete / release
//!            └─ heartbeat thread (own connection): heartbeat every TTL/3, requeue_stale every TTL
//! ```
//!
//! # Claim accounting
//!
//! Every claimed entry gets a sequence number, its *ticket*, and sits in one
//! shared table (`Claims`) from the moment `claim` returns until its result is
//! in Redis. The source claims one entry at a time, right before handing it
//! to the feeder, whose bounded channel blocks while the pool is busy: at
//! most `jobs` downloading + `4·jobs` queued + 1 being handed over are
//! claimed at once (plus the per-host parking lot with `--per-host`).
//!
//! - `Finished` with the ticket: the sink records it with `complete` (the
//!   `--json` object as the result; ok = not failed), then drops the ticket.
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

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::commands::list_entry;
use super::{Queue, QueueEntry, QueueError, RetryPolicy};
use crate::cancel::{Cancel, sleep_unless};
use crate::config::Config;
use crate::display::chain;
use crate::error::{FetchError, RunError};
use crate::event::{Event, Outcome, Problem};
use crate::feed::{Feeder, Source};
use crate::pool::{Live, Observer, Tee};
use crate::report::Summary;

/// How long one blocking claim waits: the longest a stop request or an idle
/// check waits on an empty queue.
pub const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// Most failures kept in the merged summary (the count is always exact).
const KEPT_FAILURES: usize = 1000;
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
    /// How long one blocking claim waits ([`CLAIM_WAIT`]).
    pub claim_wait: Duration,
    /// Entries per run of the pipeline before it is restarted (see the module doc).
    pub max_entries_per_run: u64,
    /// How long shutdown keeps retrying to release entries and unregister
    /// while Redis is unreachable.
    pub shutdown_limit: Duration,
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

fn say(notify: &Notify, level: Level, message: String) {
    notify(Notice { level, message });
}

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

/// Claimed entries not yet recorded, by ticket (claim order).
#[derive(Default)]
struct Claims {
    next: u64,
    entries: BTreeMap<u64, QueueEntry>,
}

/// What the source, the sink and the heartbeat share.
struct Ctx {
    worker_id: String,
    options: WorkerOptions,
    ttl: Duration,
    cancel: Cancel,
    notify: Notify,
    claims: Mutex<Claims>,
}

impl Ctx {
    fn claims(&self) -> MutexGuard<'_, Claims> {
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add_claim(&self, entry: QueueEntry) -> u64 {
        let mut claims = self.claims();
        let seq = claims.next;
        claims.next += 1;
        claims.entries.insert(seq, entry);
        seq
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
        let mut warned: Option<Instant> = None;
        let mut failures = 0u32;
        let result = queue.with_retry_until(policy, stop, op, |error, wait| {
            failures += 1;
            // The first failure is often just a connection that went stale
            // while Redis restarted; the reconnect right after cures it.
            if failures >= 2 && warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                warned = Some(Instant::now());
                say(
                    &self.notify,
                    Level::Warning,
                    format!(
                        "Redis unavailable ({what}): {}; retrying in {:.1} s",
                        chain(error),
                        wait.as_secs_f64()
                    ),
                );
            }
        });
        if warned.is_some() && result.is_ok() {
            say(
                &self.notify,
                Level::Info,
                format!("Redis reachable again ({what})"),
            );
        }
        result
    }
}

/// How one run's source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `--drain` and nothing is left anywhere.
    Drained,
    /// Stop requested (or the pool went away).
    Stopped,
    /// Start a new run (idle, entry cap, or an id this run already handled).
    Restart,
    /// A queue error that retrying does not cure.
    Broken,
}

/// What a source hands back when its run ends.
struct Handback {
    queue: Queue,
    carry: Option<u64>,
    end: End,
}

/// Claims entries one at a time and feeds them to the pipeline.
struct QueueSource {
    queue: Queue,
    ctx: Arc<Ctx>,
    /// A claimed entry (ticket) to submit before claiming more.
    carry: Option<u64>,
    back: mpsc::Sender<Handback>,
}

impl Source for QueueSource {
    fn feed(mut self: Box<Self>, feeder: &mut Feeder) -> Result<(), RunError> {
        let result = self.pump(feeder);
        let end = match &result {
            Ok(end) => *end,
            Err(_) => End::Broken,
        };
        let QueueSource {
            queue, carry, back, ..
        } = *self;
        let _ = back.send(Handback { queue, carry, end });
        result.map(drop).map_err(|e| RunError::Input {
            name: "the Redis queue".into(),
            source: std::io::Error::other(e),
        })
    }
}

impl QueueSource {
    fn pump(&mut self, feeder: &mut Feeder) -> Result<End, QueueError> {
        let ctx = self.ctx.clone();
        let stop = || ctx.cancel.is_requested();
        let mut handled: HashSet<String> = HashSet::new();
        let mut submitted = 0u64;
        let mut last_check: Option<Instant> = None;
        loop {
            if feeder.is_cancelled() {
                return Ok(End::Stopped);
            }
            let carried = self
                .carry
                .take()
                .and_then(|seq| ctx.claims().entries.get(&seq).map(|e| (seq, e.clone())));
            let (seq, entry) = match carried {
                Some(claimed) => claimed,
                None => {
                    let wait = ctx.options.claim_wait;
                    let claimed = ctx.retry(&mut self.queue, "claim", &FOREVER, &stop, |q| {
                        q.claim(&ctx.worker_id, wait)
                    });
                    let outcome = match claimed {
                        Ok(Some(entry)) => Ok((ctx.add_claim(entry.clone()), entry)),
                        Ok(None) => Err(self.idle(submitted, &mut last_check, &stop)),
                        Err(e) => Err(Err(e)),
                    };
                    match outcome {
                        Ok(claimed) => claimed,
                        Err(Ok(None)) => continue,
                        Err(Ok(Some(end))) => return Ok(end),
                        Err(Err(QueueError::BadEntry { raw, source, .. })) => {
                            let raw = crate::display::text(&raw).into_owned();
                            say(
                                &ctx.notify,
                                Level::Warning,
                                format!("malformed queue entry moved to the `bad` list ({source}): {raw}"),
                            );
                            continue;
                        }
                        Err(Err(e)) if e.is_connection() && stop() => return Ok(End::Stopped),
                        Err(Err(e)) => return Err(e),
                    }
                }
            };
            if submitted >= ctx.options.max_entries_per_run.max(1) || !handled.insert(entry.id.clone()) {
                self.carry = Some(seq);
                return Ok(End::Restart);
            }
            submitted += 1;
            let ticket = Some(seq.to_string());
            let more = match list_entry(&entry) {
                Ok(entry) => feeder.submit(entry, ticket),
                Err((origin, error, text)) => feeder.reject(origin, error, text, ticket),
            };
            if !more {
                return Ok(End::Stopped);
            }
        }
    }

    /// The queue had nothing for us. `Some(end)` ends this run.
    fn idle(
        &mut self,
        submitted: u64,
        last_check: &mut Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<End>, QueueError> {
        let ctx = self.ctx.clone();
        if !ctx.claims().entries.is_empty() {
            // Our own entries are still downloading: the queue is not drained
            // and this run is not idle.
            return Ok(None);
        }
        let due = ctx.options.drain || last_check.is_none_or(|at| at.elapsed() >= ctx.ttl);
        if due {
            *last_check = Some(Instant::now());
            if ctx.options.drain {
                let n = ctx.retry(&mut self.queue, "requeue", &FOREVER, stop, |q| q.requeue_stale())?;
                if n > 0 {
                    say(
                        &ctx.notify,
                        Level::Info,
                        format!("requeued {n} entries of dead workers"),
                    );
                }
            }
            let status = ctx.retry(&mut self.queue, "status", &FOREVER, stop, |q| q.status())?;
            let mine = status
                .workers
                .iter()
                .find(|w| w.id == ctx.worker_id)
                .map_or(0, |w| w.processing);
            if mine > 0 {
                // Nothing of ours is in flight (the sink drops a ticket only
                // after its result is in Redis), so these are orphans: claims
                // whose reply was lost with a connection. Give them back.
                let id = &ctx.worker_id;
                let n = ctx.retry(&mut self.queue, "unregister", &FOREVER, stop, |q| {
                    q.unregister_worker(id)
                })?;
                ctx.retry(&mut self.queue, "register", &FOREVER, stop, |q| {
                    q.register_worker(id)
                })?;
                say(
                    &ctx.notify,
                    Level::Info,
                    format!("returned {n} orphaned entries to the queue"),
                );
                return Ok(None);
            }
            if ctx.options.drain && status.pending == 0 && status.processing == 0 {
                return Ok(Some(End::Drained));
            }
        }
        Ok((submitted > 0).then_some(End::Restart))
    }
}

/// Records every finished entry in the queue.
struct QueueSink {
    queue: Queue,
    ctx: Arc<Ctx>,
    dir: PathBuf,
    recorded: u64,
    /// When a stop request was first seen: from then on, retries are bounded.
    stop_seen: Cell<Option<Instant>>,
}

/// True once a stop request is older than the shutdown limit: from then on,
/// the sink stops retrying results against an unreachable Redis.
fn stopping_long(ctx: &Ctx, stop_seen: &Cell<Option<Instant>>) -> bool {
    if !ctx.cancel.is_requested() {
        return false;
    }
    let since = stop_seen.get().unwrap_or_else(Instant::now);
    stop_seen.set(Some(since));
    since.elapsed() >= ctx.options.shutdown_limit
}

impl Observer for QueueSink {
    fn event(&mut self, event: &Event, _: &Live) {
        let Event::Finished(report) = event else {
            return;
        };
        let Some(seq) = report
            .ticket
            .as_deref()
            .and_then(|ticket| ticket.parse::<u64>().ok())
        else {
            return;
        };
        let ctx = self.ctx.clone();
        let Some(entry) = ctx.claims().entries.get(&seq).cloned() else {
            return;
        };
        if matches!(
            report.outcome,
            Outcome::Failed(Problem::Fetch(FetchError::Cancelled))
        ) {
            // Interrupted, not failed: the ticket stays, and shutdown releases
            // it with the entries that never started, in claim order.
            return;
        }
        let id = &ctx.worker_id;
        let stop_seen = &self.stop_seen;
        let stop = || stopping_long(&ctx, stop_seen);
        let json = crate::jsonl::entry_json(report, &self.dir).to_string();
        let ok = !report.failed();
        let result = ctx.retry(&mut self.queue, "complete", &FOREVER, &stop, |q| {
            q.complete(id, &entry, ok, &json)
        });
        match result {
            Ok(_) => self.recorded += 1,
            Err(e) => say(
                &ctx.notify,
                Level::Error,
                format!(
                    "cannot record {}: {} in the queue: {}; it returns to pending when this worker \
                     unregisters or its heartbeat expires",
                    crate::display::text(&report.origin.to_string()),
                    crate::display::line(&entry.url),
                    chain(&e)
                ),
            ),
        }
        ctx.claims().entries.remove(&seq);
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

/// Keeps the worker alive in Redis and requeues dead workers' entries.
fn heartbeat(mut queue: Queue, ctx: Arc<Ctx>, stop: Arc<AtomicBool>) {
    let stopped = || stop.load(Ordering::SeqCst);
    let interval = queue.heartbeat_interval().max(Duration::from_millis(10));
    let id = ctx.worker_id.clone();
    let mut last_requeue = Instant::now();
    loop {
        if !sleep_unless(interval, stopped) {
            return;
        }
        if let Err(e) = ctx.retry(&mut queue, "heartbeat", &FOREVER, &stopped, |q| q.heartbeat(&id)) {
            if !stopped() {
                say(
                    &ctx.notify,
                    Level::Error,
                    format!("heartbeat failed: {}", chain(&e)),
                );
            }
            continue;
        }
        if last_requeue.elapsed() >= ctx.ttl {
            last_requeue = Instant::now();
            match ctx.retry(&mut queue, "requeue", &FOREVER, &stopped, |q| q.requeue_stale()) {
                Ok(0) => {}
                Ok(n) => say(
                    &ctx.notify,
                    Level::Info,
                    format!("requeued {n} entries of dead workers"),
                ),
                Err(e) if !stopped() => say(
                    &ctx.notify,
                    Level::Warning,
                    format!("requeue failed: {}", chain(&e)),
                ),
                Err(_) => {}
            }
        }
    }
}

/// Folds one run's summary into the worker's.
fn absorb(total: &mut Summary, run: Summary, not_started: &mut u64, input_error: &mut Option<RunError>) {
    total.downloaded += run.downloaded;
    total.skipped += run.skipped;
    total.unchanged += run.unchanged;
    total.planned += run.planned;
    total.failed += run.failed;
    total.interrupted_entries += run.interrupted_entries;
    total.bytes += run.bytes;
    total.worker_panics += run.worker_panics;
    let room = KEPT_FAILURES.saturating_sub(total.failures.len());
    total.failures.extend(run.failures.into_iter().take(room));
    *not_started += run.not_started;
    if input_error.is_none() {
        *input_error = run.input_error;
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
    config: Config,
    options: WorkerOptions,
    cancel: &Cancel,
    observer: &mut dyn Observer,
    notify: Notify,
) -> Result<WorkerReport, WorkerError> {
    let jobs = config.jobs.clamp(1, 1024);
    let ctx = Arc::new(Ctx {
        worker_id: options.worker_id.clone(),
        ttl: queue.heartbeat_ttl(),
        options,
        cancel: cancel.clone(),
        notify,
        claims: Mutex::default(),
    });
    let id = ctx.worker_id.clone();
    let startup = RetryPolicy::default();
    let cancelled = || cancel.is_requested();
    ctx.retry(&mut queue, "register", &startup, &cancelled, |q| {
        q.register_worker(&id)
    })?;
    let clones = ctx
        .retry(&mut queue, "connect", &startup, &cancelled, |q| q.try_clone())
        .and_then(|hb| {
            let source = ctx.retry(&mut queue, "connect", &startup, &cancelled, |q| q.try_clone())?;
            Ok((hb, source))
        });
    let (hb_queue, source_queue) = match clones {
        Ok(pair) => pair,
        Err(e) => {
            let _ = queue.unregister_worker(&id);
            return Err(e.into());
        }
    };
    let stop_heartbeat = Arc::new(AtomicBool::new(false));
    let beat = {
        let (ctx, stop) = (ctx.clone(), stop_heartbeat.clone());
        thread::Builder::new()
            .name("fetchq-heartbeat".into())
            .spawn(move || heartbeat(hb_queue, ctx, stop))
    };
    let beat = match beat {
        Ok(handle) => handle,
        Err(e) => {
            let _ = queue.unregister_worker(&id);
            return Err(RunError::Spawn(e).into());
        }
    };

    let mut sink = QueueSink {
        queue,
        ctx: ctx.clone(),
        dir: config.dir.clone(),
        recorded: 0,
        stop_seen: Cell::new(None),
    };
    let mut filtered = NoInputDone(observer);
    let mut total = Summary::new(jobs);
    let (mut not_started, mut input_error) = (0u64, None);
    let mut source_queue = Some(source_queue);
    let mut carry = None;
    let mut drained = false;
    let mut failure: Option<WorkerError> = None;
    loop {
        let queue = match source_queue.take() {
            Some(q) => q,
            None => match ctx.retry(&mut sink.queue, "connect", &FOREVER, &cancelled, |q| {
                q.try_clone()
            }) {
                Ok(q) => q,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            },
        };
        let (back, handed_back) = mpsc::channel();
        let source = QueueSource {
            queue,
            ctx: ctx.clone(),
            carry: carry.take(),
            back,
        };
        let result = crate::pool::run(
            config.clone(),
            Box::new(source),
            cancel,
            &mut Tee(vec![&mut sink, &mut filtered]),
        );
        match result {
            Ok(summary) => absorb(&mut total, summary, &mut not_started, &mut input_error),
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
        let Ok(back) = handed_back.try_recv() else {
            break;
        };
        source_queue = Some(back.queue);
        carry = back.carry;
        match back.end {
            End::Restart if !cancel.is_requested() => {}
            End::Drained => {
                drained = true;
                break;
            }
            End::Restart | End::Stopped | End::Broken => break,
        }
    }

    // Shutdown: no more heartbeats, give back what was claimed and not
    // recorded, leave the worker set.
    stop_heartbeat.store(true, Ordering::SeqCst);
    let _ = beat.join();
    let leftovers: Vec<QueueEntry> = std::mem::take(&mut ctx.claims().entries).into_values().collect();
    // One time limit for all of shutdown, however many entries are held.
    let deadline = Instant::now() + ctx.options.shutdown_limit;
    let late = || Instant::now() >= deadline;
    let mut released = 0u64;
    for entry in leftovers.iter().rev() {
        match ctx.retry(&mut sink.queue, "release", &FOREVER, &late, |q| {
            q.release(&id, entry)
        }) {
            Ok(true) => released += 1,
            // Requeued meanwhile as a dead worker's (a long Redis outage).
            Ok(false) => {}
            Err(e) => {
                say(
                    &ctx.notify,
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
    match ctx.retry(&mut sink.queue, "unregister", &FOREVER, &late, |q| {
        q.unregister_worker(&id)
    }) {
        Ok(n) => released += n as u64,
        Err(e) => say(
            &ctx.notify,
            Level::Error,
            format!(
                "cannot unregister worker {id}: {}; its entries return when its heartbeat expires",
                chain(&e)
            ),
        ),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    total.finish(not_started, cancel.signal(), input_error);
    Ok(WorkerReport {
        summary: total,
        recorded: sink.recorded,
        released,
        drained,
    })
}
