//! The worker's sink: an observer that records every finished entry of this
//! worker in the queue (`complete_many`, with the `--json` object as the
//! result), in batches, and then drops their tickets.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, FLUSH_EVERY, FOREVER, Level};
use crate::display::{chain, line, text};
use crate::error::FetchError;
use crate::event::{EntryReport, Event, Live, Observer, Outcome, Problem, Ticket};
use crate::queue::{Completion, Queue, QueueEntry};

use super::claims::Claims;

/// Records every finished entry in the queue.
pub(super) struct QueueSink {
    queue: Queue,
    ctx: Arc<Ctx>,
    dir: PathBuf,
    recorded: u64,
    /// When a stop request was first seen: from then on, retries are bounded.
    stop_seen: Cell<Option<Instant>>,
    /// Outcomes not yet written, oldest first.
    waiting: Vec<Waiting>,
    /// When the oldest of `waiting` arrived.
    since: Option<Instant>,
}

/// A finished entry whose outcome waits to be written.
#[derive(Debug)]
struct Waiting {
    ticket: Ticket,
    entry: Arc<QueueEntry>,
    ok: bool,
    json: String,
    /// Where the entry came from, for a message if it cannot be recorded.
    origin: String,
}

/// Most outcomes the sink holds: a larger backlog is written at once rather
/// than at the end of the pool's hand-over.
const MOST_WAITING: usize = 256;

/// Whether `waiting` outcomes, the oldest since `since`, should be written
/// at `now`: at a tick (`ticked`: the end of a hand-over of events), when
/// too many wait, or when the oldest waited [`FLUSH_EVERY`].
fn flush_due(waiting: usize, ticked: bool, since: Option<Instant>, now: Instant) -> bool {
    waiting > 0
        && (ticked
            || waiting >= MOST_WAITING
            || since.is_some_and(|at| now.duration_since(at) >= FLUSH_EVERY))
}

/// What the sink does with a finished entry.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    /// Not one of ours, or its result is already recorded: nothing.
    Ignore,
    /// Interrupted, not failed: the ticket stays, and shutdown releases the
    /// entry with those that never started, in claim order.
    Keep,
    /// Record the outcome (`ok`: done, else failed), then drop the ticket.
    Complete {
        /// The claimed entry.
        entry: Arc<QueueEntry>,
        /// Whether it goes to `done`.
        ok: bool,
    },
}

/// The decision for `report`, given what is still claimed.
fn decide(report: &EntryReport, claims: &Claims) -> Record {
    let Some(entry) = report.ticket.as_ref().and_then(|ticket| claims.get(ticket)) else {
        return Record::Ignore;
    };
    if matches!(
        report.outcome,
        Outcome::Failed(Problem::Fetch(FetchError::Cancelled))
    ) {
        return Record::Keep;
    }
    Record::Complete {
        entry: entry.clone(),
        ok: !report.failed(),
    }
}

/// True once a stop request is older than `limit`: from then on, the sink
/// stops retrying results against an unreachable Redis. `seen` remembers
/// when the request was first noticed.
fn stopping_long(requested: bool, seen: &Cell<Option<Instant>>, limit: Duration, now: Instant) -> bool {
    if !requested {
        return false;
    }
    let since = seen.get().unwrap_or(now);
    seen.set(Some(since));
    now.duration_since(since) >= limit
}

impl QueueSink {
    /// A sink on its own connection, writing `--json` paths relative to `dir`.
    pub(super) fn new(queue: Queue, ctx: Arc<Ctx>, dir: PathBuf) -> QueueSink {
        QueueSink {
            queue,
            ctx,
            dir,
            recorded: 0,
            stop_seen: Cell::new(None),
            waiting: Vec::new(),
            since: None,
        }
    }

    /// Writes every waiting outcome in one call (retried across connection
    /// loss, bounded once a stop is old), then drops their tickets.
    pub(super) fn flush(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        self.since = None;
        let ctx = self.ctx.clone();
        let id = &ctx.worker_id;
        let stop_seen = &self.stop_seen;
        let limit = ctx.options.shutdown_limit;
        let stop = || stopping_long(ctx.cancel.is_requested(), stop_seen, limit, Instant::now());
        let batch: Vec<Completion<'_>> = waiting
            .iter()
            .map(|o| Completion {
                entry: &o.entry,
                ok: o.ok,
                result_json: &o.json,
            })
            .collect();
        let result = ctx.retry(&mut self.queue, "complete", &FOREVER, &stop, |q| {
            q.complete_many(id, &batch)
        });
        match result {
            Ok(_) => self.recorded += waiting.len() as u64,
            Err(e) => {
                for o in &waiting {
                    ctx.say(
                        Level::Error,
                        format!(
                            "cannot record {}: {} in the queue: {}; it returns to pending when \
                             this worker unregisters or its heartbeat expires",
                            text(&o.origin),
                            line(&o.entry.url),
                            chain(&e)
                        ),
                    );
                }
            }
        }
        let mut claims = ctx.claims();
        for o in &waiting {
            claims.remove(&o.ticket);
        }
        ctx.recorded.notify_all();
    }

    /// Results recorded in the queue so far.
    pub(super) fn recorded(&self) -> u64 {
        self.recorded
    }

    /// The sink's connection, for the orchestrator between runs and at shutdown.
    pub(super) fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }
}

impl Observer for QueueSink {
    fn event(&mut self, event: &Event, _: &Live) {
        let Event::Finished(report) = event else {
            return;
        };
        let decision = decide(report, &self.ctx.claims());
        if let (Record::Complete { entry, ok }, Some(ticket)) = (decision, &report.ticket) {
            self.waiting.push(Waiting {
                ticket: ticket.clone(),
                entry,
                ok,
                json: crate::jsonl::entry_json(report, &self.dir).to_line(),
                origin: report.origin.to_string(),
            });
            self.since.get_or_insert_with(Instant::now);
        }
        if flush_due(self.waiting.len(), false, self.since, Instant::now()) {
            self.flush();
        }
    }

    fn tick(&mut self, _: &Live) {
        if flush_due(self.waiting.len(), true, self.since, Instant::now()) {
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LineError;
    use crate::event::Origin;
    use crate::event::Ticket;

    fn report(ticket: Option<u64>, outcome: Outcome) -> EntryReport {
        let origin = Origin {
            source: "urls.txt".into(),
            line: 1,
        };
        let mut report = EntryReport::without_request(origin, None, outcome);
        report.ticket = ticket.map(Ticket);
        report
    }

    fn failed(error: FetchError) -> Outcome {
        Outcome::Failed(Problem::Fetch(error))
    }

    #[test]
    fn only_held_entries_are_recorded_and_interrupted_ones_are_kept() {
        let mut claims = Claims::default();
        let entry = QueueEntry::new("https://e.test/a", None, None, "urls.txt", 1);
        let held = claims.add(entry.clone()).0;
        let complete = |ok| Record::Complete {
            entry: Arc::new(entry.clone()),
            ok,
        };
        let line_error = Outcome::Failed(Problem::Line {
            text: "ftp://x".into(),
            error: LineError::Scheme("ftp".into()),
        });
        // (ticket, outcome, decision)
        let cases = [
            (Some(held), Outcome::Downloaded, complete(true)),
            (Some(held), Outcome::Unchanged, complete(true)),
            (Some(held), failed(FetchError::HostNotFound), complete(false)),
            (Some(held), line_error, complete(false)),
            (Some(held), failed(FetchError::Cancelled), Record::Keep),
            // Not from the queue, or already recorded.
            (None, Outcome::Downloaded, Record::Ignore),
            (Some(held + 1), Outcome::Downloaded, Record::Ignore),
        ];
        for (i, (ticket, outcome, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(&report(ticket, outcome), &claims), want, "case {i}");
        }
        claims.remove(&Ticket(held));
        assert_eq!(
            decide(&report(Some(held), Outcome::Downloaded), &claims),
            Record::Ignore
        );
    }

    #[test]
    fn outcomes_are_written_at_each_tick_or_when_many_or_old() {
        let t0 = Instant::now();
        let ms = |n: u64| Some(t0 + Duration::from_millis(n));
        // (waiting, at a tick, oldest at ms, now at ms, due?)
        let cases = [
            (0, true, None, 500, false),
            (1, true, ms(0), 0, true),
            (1, false, ms(0), 99, false),
            (1, false, ms(0), 100, true),
            (255, false, ms(0), 50, false),
            (256, false, ms(0), 0, true),
        ];
        for (waiting, ticked, since, now, want) in cases {
            let now = t0 + Duration::from_millis(now);
            assert_eq!(
                flush_due(waiting, ticked, since, now),
                want,
                "{waiting}, tick {ticked}"
            );
        }
    }

    #[test]
    fn retries_are_bounded_once_a_stop_is_older_than_the_limit() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(10);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let seen = Cell::new(None);
        // (stop requested, now, bounded?)
        let cases = [
            (false, 0, false),
            (true, 1, false),
            (true, 10, false),
            (true, 11, true),
            (true, 30, true),
        ];
        for (requested, now, want) in cases {
            assert_eq!(
                stopping_long(requested, &seen, limit, at(now)),
                want,
                "requested {requested} at {now} s"
            );
        }
        assert_eq!(seen.get(), Some(at(1)));
    }
}
