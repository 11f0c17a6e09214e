//! The worker's sink: an observer that records every finished entry of this
//! worker in the queue (`complete`, with the `--json` object as the result)
//! and then drops its ticket.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, FOREVER, Level};
use crate::display::{chain, line, text};
use crate::error::FetchError;
use crate::event::{EntryReport, Event, Outcome, Problem};
use crate::pool::{Live, Observer};
use crate::queue::{Queue, QueueEntry};

use super::claims::Claims;

/// Records every finished entry in the queue.
pub(super) struct QueueSink {
    queue: Queue,
    ctx: Arc<Ctx>,
    dir: PathBuf,
    recorded: u64,
    /// When a stop request was first seen: from then on, retries are bounded.
    stop_seen: Cell<Option<Instant>>,
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
        entry: QueueEntry,
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
        }
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
        let ctx = self.ctx.clone();
        let decision = decide(report, &ctx.claims());
        let Record::Complete { entry, ok } = decision else {
            return;
        };
        let id = &ctx.worker_id;
        let stop_seen = &self.stop_seen;
        let limit = ctx.options.shutdown_limit;
        let stop = || stopping_long(ctx.cancel.is_requested(), stop_seen, limit, Instant::now());
        let json = crate::jsonl::entry_json(report, &self.dir).to_string();
        let result = ctx.retry(&mut self.queue, "complete", &FOREVER, &stop, |q| {
            q.complete(id, &entry, ok, &json)
        });
        match result {
            Ok(_) => self.recorded += 1,
            Err(e) => ctx.say(
                Level::Error,
                format!(
                    "cannot record {}: {} in the queue: {}; it returns to pending when this worker \
                     unregisters or its heartbeat expires",
                    text(&report.origin.to_string()),
                    line(&entry.url),
                    chain(&e)
                ),
            ),
        }
        if let Some(ticket) = &report.ticket {
            ctx.claims().remove(ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LineError;
    use crate::event::Ticket;
    use crate::input::Origin;

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
            entry: entry.clone(),
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
