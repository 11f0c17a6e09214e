//! The worker's source: claims entries from Redis in batches no larger than
//! the pipeline's room and feeds them to the pipeline, and decides when a run of the pipeline ends (see
//! "Runs" in the parent module).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::{BUSY_CLAIM_WAIT, Ctx, FOREVER, Level};
use crate::display::text;
use crate::error::RunError;
use crate::event::Ticket;
use crate::feed::{Feeder, Source};
use crate::queue::commands::list_entry;
use crate::queue::{Queue, QueueEntry, QueueError, QueueStatus};

/// How one run's source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// `--drain` and nothing is left anywhere.
    Drained,
    /// Stop requested (or the pool went away).
    Stopped,
    /// Start a new run (idle, entry cap, or an id this run already handled).
    Restart,
    /// A queue error that retrying does not cure.
    Broken,
}

/// What a source hands back when its run ends: its connection, the claimed
/// entries to start the next run with (in claim order), and why it ended.
pub(super) struct Handback {
    pub(super) queue: Queue,
    pub(super) carry: Vec<Ticket>,
    pub(super) end: End,
}

/// How soon a draining worker looks again when the queue is empty but other
/// workers' entries are in flight; each look that finds them still in
/// flight doubles it, up to [`BUSY_CLAIM_WAIT`]. The end of a drain is seen
/// within a few ms of the last entry's result, while a fleet waiting on a
/// long download asks Redis ten times a second per worker.
const DRAIN_LOOK_FIRST: Duration = Duration::from_millis(5);

/// Claims entries in batches and feeds them to the pipeline.
pub(super) struct QueueSource {
    queue: Queue,
    ctx: Arc<Ctx>,
    /// Claimed entries to submit before claiming more, oldest first.
    carry: VecDeque<Ticket>,
    /// With `--drain`, while the queue is empty but other workers' entries
    /// are in flight: how long to wait before looking again (see
    /// [`DRAIN_LOOK_FIRST`]); `None` until the status says so.
    drain_pause: Option<Duration>,
    back: mpsc::Sender<Handback>,
    /// Entries claimed beyond the channel's room, held here until it has
    /// room for them (see [`QueueSource::claiming_ahead`]).
    ahead: usize,
}

/// What one attempt at the next entry ended in.
#[derive(Debug, PartialEq)]
enum Claim {
    /// An entry to submit: carried over from the last run, or claimed now.
    Entry(Ticket, Arc<QueueEntry>),
    /// Nothing to submit yet; ask again (the claim timed out while entries
    /// of ours are in flight, a malformed entry was set aside, orphans were
    /// given back).
    Again,
    /// This run's source is over.
    End(End),
}

/// The entries one run took, to know when the run must end.
#[derive(Debug)]
struct RunTally {
    max: u64,
    submitted: u64,
    handled: HashSet<String>,
}

impl RunTally {
    /// A run of at most `max` entries (at least 1).
    fn new(max: u64) -> RunTally {
        RunTally {
            max: max.max(1),
            submitted: 0,
            handled: HashSet::new(),
        }
    }

    /// Whether the entry with `id` may join this run, counting it if so.
    /// False when the run must restart first: it is full, or it already
    /// handled `id` (a retried or requeued entry), which the pipeline would
    /// skip as a duplicate.
    fn admit(&mut self, id: &str) -> bool {
        if self.submitted >= self.max || !self.handled.insert(id.to_string()) {
            return false;
        }
        self.submitted += 1;
        true
    }

    /// The end of an idle spell with nothing else to do: a run that did
    /// something restarts (so its memory of names is dropped), an empty one
    /// keeps waiting.
    fn quiet(&self) -> Claim {
        if self.submitted > 0 {
            Claim::End(End::Restart)
        } else {
            Claim::Again
        }
    }
}

/// Whether an idle source should look at the queue's status now: always
/// with `--drain` (to see the end), else once per heartbeat TTL (to find
/// orphans).
fn status_due(drain: bool, last_check: Option<Instant>, ttl: Duration, now: Instant) -> bool {
    drain || last_check.is_none_or(|at| now.duration_since(at) >= ttl)
}

/// What the queue's status says to an idle source with nothing in flight.
#[derive(Debug, PartialEq, Eq)]
enum Idle {
    /// Redis holds entries in our processing list that we do not: claims
    /// whose reply was lost with a connection. Give them back.
    Orphans,
    /// `--drain` and nothing is pending or processing anywhere.
    Drained,
    /// Nothing to act on.
    Quiet,
}

fn idle_verdict(status: &QueueStatus, worker_id: &str, drain: bool) -> Idle {
    let mine = status
        .workers
        .iter()
        .find(|w| w.id == worker_id)
        .map_or(0, |w| w.processing);
    if mine > 0 {
        Idle::Orphans
    } else if drain && status.pending == 0 && status.processing == 0 {
        Idle::Drained
    } else {
        Idle::Quiet
    }
}

/// The room in the pipeline's channel, waiting while it is full. This runs
/// on the feeder's thread, which the pool's workers unpark when they have
/// drained the channel to half ([`crate::feed::Refill`]); the timeout is a
/// safety net. 0 only when the run is stopping.
///
/// Waiting for more room than one entry's (to claim bigger batches) was
/// measured and not kept: with half the channel as the threshold, one worker
/// took 1.6 s instead of 0.6 s on 2,000 small files (median of 6); not
/// pinned down, most likely the pool running dry while the source slept.
fn wait_for_room(feeder: &Feeder) -> usize {
    loop {
        let room = feeder.room();
        if room > 0 || feeder.is_cancelled() {
            return room;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

impl Source for QueueSource {
    fn feed(mut self: Box<Self>, feeder: &mut Feeder) -> Result<(), RunError> {
        let result = self.pump(feeder);
        let end = result.as_ref().map_or(End::Broken, |end| *end);
        let QueueSource {
            queue, carry, back, ..
        } = *self;
        let carry = carry.into();
        let _ = back.send(Handback { queue, carry, end });
        result.map(drop).map_err(|e| RunError::Input {
            name: "the Redis queue".into(),
            source: std::io::Error::other(e),
        })
    }
}

impl QueueSource {
    /// A source on its own connection, starting with the entries `carry`
    /// the last run handed over; it reports how it ended on `back`.
    pub(super) fn new(
        queue: Queue,
        ctx: Arc<Ctx>,
        carry: Vec<Ticket>,
        back: mpsc::Sender<Handback>,
    ) -> QueueSource {
        QueueSource {
            queue,
            ctx,
            carry: carry.into(),
            drain_pause: None,
            back,
            ahead: 0,
        }
    }

    /// Claims `ahead` entries more than the channel has room for, held
    /// here and handed over as the pool takes entries. Claims come about
    /// three times less often (each script call has a fixed cost in
    /// Redis), and a dead worker strands that many more entries until its
    /// heartbeat expires.
    pub(super) fn claiming_ahead(mut self, ahead: usize) -> QueueSource {
        self.ahead = ahead;
        self
    }

    fn pump(&mut self, feeder: &mut Feeder) -> Result<End, QueueError> {
        let mut tally = RunTally::new(self.ctx.options.max_entries_per_run);
        let mut last_check: Option<Instant> = None;
        loop {
            if feeder.is_cancelled() {
                return Ok(End::Stopped);
            }
            let room = if self.carry.is_empty() {
                wait_for_room(feeder)
            } else {
                0
            };
            let (ticket, entry) = match self.next(&tally, &mut last_check, room) {
                Ok(Claim::Entry(ticket, entry)) => (ticket, entry),
                Ok(Claim::Again) => continue,
                Ok(Claim::End(end)) => return Ok(end),
                // A stop ends every retry against an unreachable Redis (a
                // claim's, a status', a re-registration's): that is a stop,
                // not a broken queue.
                Err(e) if e.is_connection() && self.ctx.cancel.is_requested() => return Ok(End::Stopped),
                Err(e) => return Err(e),
            };
            if !tally.admit(&entry.id) {
                self.carry.push_front(ticket);
                return Ok(End::Restart);
            }
            let more = match list_entry(&entry) {
                Ok(entry) => feeder.submit(entry, Some(ticket)),
                Err((origin, error, text)) => feeder.reject(origin, error, text, Some(ticket)),
            };
            if !more {
                return Ok(End::Stopped);
            }
        }
    }

    /// The oldest claimed entry not yet submitted if there is one, else a
    /// new batch of as many as the pipeline's channel has `room` for (at
    /// least one).
    fn next(
        &mut self,
        tally: &RunTally,
        last_check: &mut Option<Instant>,
        room: usize,
    ) -> Result<Claim, QueueError> {
        let ctx = self.ctx.clone();
        while let Some(ticket) = self.carry.pop_front() {
            if let Some(entry) = ctx.claims().get(&ticket).cloned() {
                return Ok(Claim::Entry(ticket, entry));
            }
        }
        let stop = || ctx.cancel.is_requested();
        let max = room.max(1) + self.ahead;
        // Blocking in Redis only when nothing of ours is in flight (else the
        // source waits for the sink instead, see `idle`), and never with
        // `--drain`, which waits for the other workers in `idle`.
        let wait = if ctx.claims().is_empty() && !ctx.options.drain {
            ctx.options.claim_wait
        } else {
            Duration::ZERO
        };
        let claimed = ctx.retry(&mut self.queue, "claim", &FOREVER, &stop, |q| {
            q.claim_many(&ctx.worker_id, max, wait)
        });
        match claimed {
            Ok(batch) => {
                for (raw, source) in &batch.bad {
                    ctx.say(
                        Level::Warning,
                        format!(
                            "malformed queue entry moved to the `bad` list ({source}): {}",
                            text(raw)
                        ),
                    );
                }
                if batch.entries.is_empty() {
                    return if batch.bad.is_empty() {
                        self.idle(tally, last_check, &stop)
                    } else {
                        Ok(Claim::Again)
                    };
                }
                self.drain_pause = None;
                let mut claims = ctx.claims();
                self.carry
                    .extend(batch.entries.into_iter().map(|entry| claims.add(entry)));
                Ok(Claim::Again)
            }
            Err(e) => Err(e),
        }
    }

    /// The queue had nothing for us.
    fn idle(
        &mut self,
        tally: &RunTally,
        last_check: &mut Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Claim, QueueError> {
        let ctx = self.ctx.clone();
        let claims = ctx.claims();
        if !claims.is_empty() {
            if ctx.options.drain {
                // Draining and nothing pending: end the run, so the pool
                // finishes what it holds and returns the moment the last
                // download ends, and the series writes the outcomes at once
                // instead of at the pool's next tick (up to 0.1 s later).
                // The next run sees whether the queue is drained.
                return Ok(Claim::End(End::Restart));
            }
            // Our own entries are still downloading: the queue is not drained
            // and this run is not idle. Look again once the sink recorded
            // some, or after a while (new entries may come).
            let _ = ctx.recorded.wait_timeout(claims, BUSY_CLAIM_WAIT);
            return Ok(Claim::Again);
        }
        drop(claims);
        let drain = ctx.options.drain;
        let now = Instant::now();
        if !status_due(drain, *last_check, ctx.ttl, now) {
            return Ok(tally.quiet());
        }
        *last_check = Some(now);
        if drain {
            let n = ctx.retry(&mut self.queue, "requeue", &FOREVER, stop, |q| q.requeue_stale())?;
            if n > 0 {
                ctx.say(Level::Info, format!("requeued {n} entries of dead workers"));
            }
        }
        let status = ctx.retry(&mut self.queue, "status", &FOREVER, stop, |q| q.status())?;
        match idle_verdict(&status, &ctx.worker_id, drain) {
            Idle::Orphans => {
                // Nothing of ours is in flight (the sink drops a ticket only
                // after its result is in Redis), so these are orphans.
                let id = &ctx.worker_id;
                let n = ctx.retry(&mut self.queue, "unregister", &FOREVER, stop, |q| {
                    q.unregister_worker(id)
                })?;
                ctx.retry(&mut self.queue, "register", &FOREVER, stop, |q| {
                    q.register_worker(id)
                })?;
                ctx.say(Level::Info, format!("returned {n} orphaned entries to the queue"));
                Ok(Claim::Again)
            }
            Idle::Drained => Ok(Claim::End(End::Drained)),
            Idle::Quiet => {
                if drain {
                    // Other workers' last entries are finishing: look again
                    // soon, then less often (a blocking claim would not do:
                    // Redis ends a block shorter than its 100 ms tick only
                    // at the tick).
                    let pause = self.drain_pause.unwrap_or(DRAIN_LOOK_FIRST);
                    self.drain_pause = Some((pause * 2).min(BUSY_CLAIM_WAIT));
                    if !ctx.cancel.sleep(pause) {
                        return Ok(Claim::End(End::Stopped));
                    }
                }
                Ok(tally.quiet())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::WorkerStatus;

    #[test]
    fn a_run_restarts_when_full_or_when_an_id_comes_back() {
        // (max entries per run, ids offered in turn, admitted?)
        let cases: &[(u64, &[(&str, bool)])] = &[
            (3, &[("a", true), ("b", true), ("c", true), ("d", false)]),
            (5, &[("a", true), ("b", true), ("a", false)]),
            // A cap of 0 still lets one entry through, so a run makes progress.
            (0, &[("a", true), ("b", false)]),
            // Refused for being full: not remembered as handled.
            (1, &[("a", true), ("b", false), ("b", false)]),
        ];
        for &(max, offers) in cases {
            let mut tally = RunTally::new(max);
            for &(id, want) in offers {
                assert_eq!(tally.admit(id), want, "max {max}, id {id}");
            }
        }
    }

    #[test]
    fn an_idle_run_restarts_only_if_it_did_something() {
        let mut tally = RunTally::new(10);
        assert_eq!(tally.quiet(), Claim::Again);
        assert!(tally.admit("a"));
        assert_eq!(tally.quiet(), Claim::End(End::Restart));
    }

    #[test]
    fn status_is_checked_when_draining_or_once_per_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(15);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (drain, last check, now, due?)
        let cases = [
            (false, None, 0, true),
            (false, Some(0), 14, false),
            (false, Some(0), 15, true),
            (true, Some(0), 0, true),
            (true, None, 0, true),
        ];
        for (drain, last, now, want) in cases {
            let last = last.map(at);
            assert_eq!(
                status_due(drain, last, ttl, at(now)),
                want,
                "drain {drain} last {last:?} now {now}"
            );
        }
    }

    fn status(pending: u64, processing: u64, workers: &[(&str, u64)]) -> QueueStatus {
        QueueStatus {
            queue: "q".into(),
            pending,
            processing,
            done: 0,
            failed: 0,
            seen: 0,
            bad: 0,
            workers: workers
                .iter()
                .map(|&(id, processing)| WorkerStatus {
                    id: id.into(),
                    alive: true,
                    registered: true,
                    processing,
                })
                .collect(),
        }
    }

    #[test]
    fn the_status_tells_orphans_from_a_drained_queue() {
        // (status, drain, verdict) for worker "me", which holds nothing itself.
        let cases = [
            (status(0, 0, &[("me", 0)]), true, Idle::Drained),
            (status(0, 0, &[("me", 0)]), false, Idle::Quiet),
            (status(0, 2, &[("me", 2)]), true, Idle::Orphans),
            (status(0, 2, &[("me", 2)]), false, Idle::Orphans),
            (status(0, 1, &[("me", 0), ("other", 1)]), true, Idle::Quiet),
            (status(3, 0, &[]), true, Idle::Quiet),
            (status(0, 0, &[]), true, Idle::Drained),
        ];
        for (i, (status, drain, want)) in cases.into_iter().enumerate() {
            assert_eq!(idle_verdict(&status, "me", drain), want, "case {i}");
        }
    }
}
