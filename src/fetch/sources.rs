//! Alternative sources (mirrors): a list line may name several URLs of one
//! file. The first is asked first; if no response headers have come after
//! `--race-after`, the next is asked as well (by an idle worker of the pool,
//! sent a probe task through the channel), and so on; the first usable
//! response wins and the others are closed before their bodies are read.
//!
//! A source that fails before its body (connect, DNS, TLS, an HTTP error, a
//! stall before headers) is set aside for the entry at once and the next one
//! is used; one that fails mid-body is retried as usual (its bytes continue
//! from the same server) and set aside once its retries are spent. The entry
//! fails only when every source has failed, with each source's cause.
//! Bytes from two servers are joined only when the entry has a checksum to
//! verify the whole result; without one a switch of source starts the file
//! over (see `Fetcher::switch_source`).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use url::Url;

use super::{Crew, Fetcher, Progress, WorkerCtx, wait_on};
use crate::error::FetchError;
use crate::event::JobInfo;
use crate::transport;

/// An HTTP response whose body is still unread.
type Response = ureq::http::Response<ureq::Body>;

/// How many sources `job` has.
pub(super) fn source_count(job: &JobInfo) -> usize {
    1 + job.mirrors.len()
}

/// A response that won a race, with where it came from.
struct Won {
    source: usize,
    response: Response,
    final_url: Option<Url>,
}

#[derive(Default)]
struct RaceState {
    winner: Option<Won>,
    /// The owner has its answer (its own, or a winner's): probes still
    /// asking give up, and late answers are closed unread.
    settled: bool,
    /// The owner stopped waiting for new probes: those not started yet never start.
    closed: bool,
    /// Probes between their request and its answer.
    running: usize,
    /// Sources whose probe failed, and why.
    failed: Vec<(usize, FetchError)>,
}

/// The first request of an entry with several sources, shared by the
/// worker that owns the entry and the probes it sent.
pub(crate) struct Race {
    /// The entry.
    pub(crate) job: Arc<JobInfo>,
    state: Mutex<RaceState>,
    changed: Condvar,
}

impl Race {
    fn lock(&self) -> MutexGuard<'_, RaceState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settled(&self) -> bool {
        self.lock().settled
    }
}

/// Whether a response is one the entry can use: the body (or a 304 to a
/// conditional request). Anything else sets the source aside.
fn usable(status: u16) -> bool {
    (200..300).contains(&status)
}

impl Fetcher {
    /// Send the attempt's first request: to the entry's current source, and
    /// when it has others left and the pool has idle workers, race them
    /// (see the module doc). Probes that fail set their source aside.
    pub(super) fn first_answer(
        &self,
        job: &Arc<JobInfo>,
        offset: u64,
        end: Option<u64>,
        deadline: Option<Duration>,
        progress: &mut Progress,
        ctx: &WorkerCtx<'_>,
    ) -> Result<Response, FetchError> {
        let here = progress.source;
        let others: Vec<usize> = (0..source_count(job))
            .filter(|&i| i != here && !progress.aside.iter().any(|(aside, _)| *aside == i))
            .collect();
        let (Some(crew), false) = (
            ctx.crew,
            others.is_empty() || offset > 0 || end.is_some() || progress.conditional.is_some(),
        ) else {
            return self.send(job.source(here), &job.headers, offset, end, deadline, progress);
        };
        let race = Arc::new(Race {
            job: job.clone(),
            state: Mutex::new(RaceState::default()),
            changed: Condvar::new(),
        });
        let now = Instant::now();
        // Taken by workers as they are free; a probe whose time comes while
        // entries wait for workers gives up (see `probe`).
        for (k, &source) in others.iter().enumerate() {
            let at = now + self.config.race_after * u32::try_from(k + 1).unwrap_or(u32::MAX);
            crew.probe(&race, source, at);
        }
        let own = {
            let watched = race.clone();
            let _watch = transport::abandon_when(Arc::new(move || watched.lock().winner.is_some()));
            self.send(job.source(here), &job.headers, 0, None, deadline, progress)
        };
        let mut state = race.lock();
        state.closed = true;
        race.changed.notify_all();
        // Our own answer stands if it is usable and first, or if nothing
        // else can still come.
        let own = match own {
            Ok(response) if state.winner.is_none() && usable(response.status().as_u16()) => Ok(response),
            other => {
                while state.winner.is_none() && state.running > 0 {
                    state = wait_on(&race.changed, state, Duration::from_millis(100));
                }
                other
            }
        };
        state.settled = true;
        race.changed.notify_all();
        let failed = std::mem::take(&mut state.failed);
        let winner = state.winner.take();
        drop(state);
        for (source, error) in failed {
            self.set_aside(job, source, error, progress, ctx);
        }
        match winner {
            Some(won) => {
                // The slower source is not at fault: it stays in the list.
                progress.source = won.source;
                progress.final_url = won.final_url;
                Ok(won.response)
            }
            None => own,
        }
    }

    /// A worker the pool sent to `race`: at `at`, unless the race is over,
    /// ask source `source` and offer its answer. A probe never holds a
    /// worker that entries wait for: it gives up while it waits if one does.
    pub(crate) fn probe(&self, race: &Arc<Race>, source: usize, at: Instant, crew: Option<&dyn Crew>) {
        {
            let mut state = race.lock();
            loop {
                if state.closed
                    || state.settled
                    || self.cancel.is_requested()
                    || crew.is_some_and(|crew| crew.waiting())
                {
                    return;
                }
                let now = Instant::now();
                if now >= at {
                    break;
                }
                state = wait_on(&race.changed, state, (at - now).min(Duration::from_millis(100)));
            }
            state.running += 1;
        }
        let mut progress = Progress::default();
        let answer = {
            let watched = race.clone();
            let _watch = transport::abandon_when(Arc::new(move || watched.settled()));
            self.send(
                race.job.source(source),
                &race.job.headers,
                0,
                None,
                None,
                &mut progress,
            )
        };
        let mut state = race.lock();
        state.running -= 1;
        match answer {
            Ok(response) if state.settled || state.winner.is_some() => drop(response),
            Ok(response) if usable(response.status().as_u16()) => {
                state.winner = Some(Won {
                    source,
                    response,
                    final_url: progress.final_url,
                });
            }
            Ok(response) => {
                let status = response.status();
                state.failed.push((
                    source,
                    FetchError::Status {
                        status: status.as_u16(),
                        reason: status.canonical_reason().unwrap_or("Unknown"),
                        retry_after: None,
                    },
                ));
            }
            Err(_) if state.settled => {}
            Err(error) => state.failed.push((source, error)),
        }
        race.changed.notify_all();
    }

    /// Set source `source` aside for this entry because of `error`, and say so.
    pub(super) fn set_aside(
        &self,
        job: &Arc<JobInfo>,
        source: usize,
        error: FetchError,
        progress: &mut Progress,
        ctx: &WorkerCtx<'_>,
    ) {
        if progress.aside.iter().any(|(aside, _)| *aside == source) {
            return;
        }
        let cause = crate::display::chain(&error);
        let _ = ctx.events.send(crate::event::Event::SourceSetAside {
            job: job.clone(),
            source,
            error,
        });
        progress.aside.push((source, cause));
    }

    /// The next source to use after the current one is set aside, if any.
    pub(super) fn next_source(&self, job: &JobInfo, progress: &Progress) -> Option<usize> {
        (0..source_count(job)).find(|&i| !progress.aside.iter().any(|(aside, _)| *aside == i))
    }
}
