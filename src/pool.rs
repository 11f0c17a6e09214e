//! The pipeline: a feeder thread turns entries into jobs on a bounded channel,
//! a fixed pool of worker threads drains it, and the calling thread collects
//! events until every sender is gone.
//!
//! ```text
//!  Source ──▶ Feeder (naming, dedup) ──bounded(4·jobs)──▶ workers ×jobs ──▶ events ──▶ caller's Observer
//!                                                            │
//!                                                    Slot counters (sampled by the observer's tick)
//! ```
//! The channel is bounded so a ten-million-line stdin never sits in memory:
//! the feeder blocks until a worker is free. A worker downloading a big file
//! puts help tasks on the same channel for idle workers (`--split`, see
//! `fetch::split`), so every connection is one of the pool's. Shutdown is by
//! disconnection: the feeder drops its sender when input ends (or on
//! cancel), the [`Door`] drops the last one once every entry is finished,
//! workers' loops end when the channel is empty, and the event loop ends
//! when the last worker drops its event sender.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};

use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::RunError;
use crate::event::{Event, Events, Live, Observer, Slot};
use crate::feed::{Door, Feeder, Refill, Source, Task};
use crate::fetch::{Crew, Fetcher, Race, Split, WorkerCtx};
use crate::hosts::HostGate;
use crate::naming::Namer;
use crate::outdir::OutDir;
use crate::proxy::ProxyTable;
use crate::rate::RateLimiter;
use crate::report::Summary;

/// How often the observer's `tick` runs while nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// Most events waiting for the observer; a producer that finds the channel
/// full waits, so a slow terminal slows the run instead of filling memory.
/// The channel's slots are allocated and touched up front (about 250 bytes
/// each): 16k of them showed as 4 MiB of peak RSS in the benchmark.
const EVENT_CAPACITY: usize = 2048;

/// The pool as a split download sees it: idle workers it may call.
struct Idle<'a> {
    /// Workers waiting in `recv`.
    waiting: AtomicUsize,
    tasks: Receiver<Task>,
    door: &'a Door,
}

impl Crew for Idle<'_> {
    fn idle(&self) -> usize {
        self.waiting
            .load(Ordering::Relaxed)
            .saturating_sub(self.tasks.len())
    }

    fn waiting(&self) -> bool {
        self.door.entries_among(self.tasks.len()) > 0
    }

    fn call(&self, split: &Arc<Split>, n: usize) -> usize {
        self.door.send_help(split, n)
    }

    fn probe(&self, race: &Arc<Race>, source: usize, at: Instant) -> bool {
        self.door.send_probe(race, source, at)
    }
}

/// Run the whole pipeline on `source` and return the summary once every
/// entry is finished (or the run was cancelled and in-flight entries stopped).
///
/// An `Err` means the run could not start (unusable output directory). An
/// input that fails mid-way stops the feeding; entries already queued still
/// finish, and the error is in [`Summary::input_error`].
pub fn run(
    config: Config,
    source: Box<dyn Source>,
    cancel: &Cancel,
    observer: &mut dyn Observer,
) -> Result<Summary, RunError> {
    let jobs = config.jobs.clamp(1, 1024);
    // Settings that can fail (--cacert, proxies) are checked before the
    // output directory is created, so a usage error leaves nothing behind.
    let agent = crate::client::agent(&config, cancel)?;
    let proxies = ProxyTable::new(&config.proxy, |name| std::env::var(name).ok()).map_err(RunError::Proxy)?;
    let out = Arc::new(if config.dry_run {
        OutDir::planned(&config.dir)
    } else {
        OutDir::prepare(&config.dir)?
    });
    let config = Arc::new(config);
    let namer = Arc::new(Mutex::new(Namer::new(config.content_disposition)));
    let fetcher = Fetcher {
        agent,
        config: config.clone(),
        out,
        cancel: cancel.clone(),
        rate: RateLimiter::of(&config),
        namer: namer.clone(),
        proxies,
    };
    let gate = HostGate::of(&config, jobs, Task::url);
    let live = Live {
        slots: (0..jobs).map(|_| Slot::default()).collect(),
    };
    let (job_tx, job_rx) = bounded::<Task>(4 * jobs);
    let door = Arc::new(Door::new(job_tx.clone()));
    let idle = Idle {
        waiting: AtomicUsize::new(0),
        tasks: job_rx.clone(),
        door: &door,
    };
    let refill = Arc::new(Refill::new(2 * jobs));
    let (event_tx, event_rx) = bounded::<Event>(EVENT_CAPACITY);
    let (bell_tx, bell_rx) = bounded::<()>(1);
    let events = Events::new(event_tx, bell_tx);
    let not_started = AtomicU64::new(0);
    let mut summary = Summary::new();

    let feed_result = thread::scope(|scope| -> Result<Result<(), RunError>, RunError> {
        let mut feeder = Feeder::new(
            namer.clone(),
            job_tx,
            door.clone(),
            events.clone(),
            cancel.clone(),
            refill.clone(),
            config.checksums.clone(),
        );
        let feeder_thread = thread::Builder::new()
            .name("fetchq-input".into())
            .spawn_scoped(scope, {
                move || {
                    let result = source.feed(&mut feeder);
                    feeder.finish();
                    result
                }
            })
            .map_err(RunError::Spawn)?;

        let mut workers = Vec::with_capacity(jobs);
        for worker in 0..jobs {
            let job_rx = job_rx.clone();
            let events = events.clone();
            let (fetcher, slot, cancel, not_started) = (&fetcher, &live.slots[worker], cancel, &not_started);
            let gate = gate.as_ref();
            let refill = &*refill;
            let (idle, door) = (&idle, &*door);
            let handle = thread::Builder::new()
                .name(format!("fetchq-worker-{worker}"))
                .spawn_scoped(scope, move || {
                    let mut buf = vec![0u8; crate::transport::CHUNK];
                    loop {
                        idle.waiting.fetch_add(1, Ordering::Relaxed);
                        // Dropped after the report is sent: frees the host slot.
                        let next = match gate {
                            Some(gate) => gate.next(&job_rx).map(|(task, permit)| (task, Some(permit))),
                            None => job_rx.recv().ok().map(|task| (task, None)),
                        };
                        idle.waiting.fetch_sub(1, Ordering::Relaxed);
                        let Some((task, _permit)) = next else {
                            break;
                        };
                        refill.taken(&job_rx);
                        let job = match task {
                            Task::Entry(job) => job,
                            Task::Help(split) => {
                                door.help_taken();
                                let mut ctx = WorkerCtx {
                                    worker,
                                    slot,
                                    events: &events,
                                    buf: &mut buf,
                                    turn: None,
                                    crew: Some(idle),
                                };
                                fetcher.help(&split, &mut ctx);
                                continue;
                            }
                            Task::Probe { race, source, at } => {
                                door.help_taken();
                                fetcher.probe(&race, source, at, Some(idle));
                                continue;
                            }
                        };
                        // Counted done when this iteration ends, however it
                        // ends: a panicking download must not keep the
                        // channel open for the others forever.
                        let _done = door.entry_guard();
                        if cancel.is_requested() {
                            // Stop handing out entries; the feeder is dropping its end too.
                            not_started.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let mut ctx = WorkerCtx {
                            worker,
                            slot,
                            events: &events,
                            buf: &mut buf,
                            turn: job.turn.as_ref(),
                            crew: Some(idle),
                        };
                        let report = fetcher.fetch(&job.info, &mut ctx);
                        if !events.send(Event::Finished(report)) {
                            break;
                        }
                    }
                });
            match handle {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    // Stop the workers already started; the error says why.
                    cancel.stop();
                    return Err(RunError::Spawn(e));
                }
            }
        }
        drop(job_rx);
        drop(events);

        // Drain events per tick or doorbell (see `Events`); the loop ends the
        // moment the last worker and the feeder drop their `Events`.
        loop {
            let all_done = matches!(bell_rx.recv_timeout(TICK), Err(RecvTimeoutError::Disconnected));
            for event in event_rx.try_iter() {
                summary.record(&event);
                observer.event(&event, &live);
            }
            observer.tick(&live);
            if all_done {
                break;
            }
        }
        for worker in workers {
            if worker.join().is_err() {
                summary.note_worker_panic();
            }
        }
        feeder_thread
            .join()
            .map_err(|_| RunError::Spawn(std::io::Error::other("input thread panicked")))
    })?;
    summary.finish(not_started.into_inner(), cancel.signal(), feed_result.err());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small_enough_for_the_channel_budget() {
        // EVENT_CAPACITY slots are allocated up front; keep the budget honest.
        assert!(
            std::mem::size_of::<Event>() * EVENT_CAPACITY <= 1024 * 1024,
            "{}",
            std::mem::size_of::<Event>()
        );
    }
}
