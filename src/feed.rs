//! The feeding end of the pipeline: where entries come from ([`Source`]), and
//! the [`Feeder`] that names them, drops duplicates and queues them as [`Job`]s.

use std::sync::{Arc, Mutex};

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::cancel::Cancel;
use crate::error::{LineError, RunError};
use crate::event::{EntryReport, Event, JobInfo, Outcome, Problem, SkipReason, Ticket};
use crate::input::{Entry, ListInput, Origin, OutPath};
use crate::naming::{Namer, Placement, Turn};
use crate::pool::Events;

/// One unit of work on the channel.
pub struct Job {
    /// Identity and destination.
    pub info: Arc<JobInfo>,
    /// Expected SHA-256, if the list gave one.
    pub sha256: Option<[u8; 32]>,
    /// With `--content-disposition`, for an entry named by its URL: its place
    /// in the list order of names claimed from responses.
    pub turn: Option<Turn>,
}

/// Where entries come from: URL lists, or a shared queue.
pub trait Source: Send {
    /// Hand every entry to `feeder` as it becomes available; return when there
    /// are no more, when `feeder.submit` returns false, or on a fatal input error.
    fn feed(self: Box<Self>, feeder: &mut Feeder) -> Result<(), RunError>;
}

/// Wakes the feeder when the job channel runs low: workers call
/// [`Refill::taken`] after each job they take.
#[derive(Debug)]
pub struct Refill {
    feeder: OnceLock<Thread>,
    low_water: usize,
}

impl Refill {
    /// Wake the feeder when no more than `low_water` jobs are left queued.
    pub fn new(low_water: usize) -> Refill {
        Refill {
            feeder: OnceLock::new(),
            low_water,
        }
    }

    fn register(&self) {
        if self.feeder.get().is_none() {
            let _ = self.feeder.set(std::thread::current());
        }
    }

    /// A worker took a job from `jobs`. Unparking a thread that is not parked
    /// is one atomic operation, so this is cheap when the feeder is busy.
    pub fn taken<T>(&self, jobs: &Receiver<T>) {
        if jobs.len() <= self.low_water
            && let Some(feeder) = self.feeder.get()
        {
            feeder.unpark();
        }
    }
}

/// Applies the naming and duplicate rules and queues jobs. Lives on the
/// source's thread; the namer's lock is only contended by workers that take a
/// name from `Content-Disposition`.
pub struct Feeder {
    namer: Arc<Mutex<Namer>>,
    refill: Arc<Refill>,
    jobs: Sender<Job>,
    events: Events,
    cancel: Cancel,
    entries: u64,
}

impl Feeder {
    pub(crate) fn new(
        namer: Arc<Mutex<Namer>>,
        jobs: Sender<Job>,
        events: Events,
        cancel: Cancel,
        refill: Arc<Refill>,
    ) -> Feeder {
        Feeder {
            refill,
            namer,
            jobs,
            events,
            cancel,
            entries: 0,
        }
    }

    /// Say that input is over, with the number of entries seen.
    pub(crate) fn finish(self) {
        let _ = self.events.send(Event::InputDone {
            entries: self.entries,
        });
    }

    /// Queue an entry (blocking while the channel is full). `ticket` is echoed
    /// back in its report. Returns false when the run is stopping.
    pub fn submit(&mut self, entry: Entry, ticket: Option<Ticket>) -> bool {
        if self.cancel.is_requested() {
            return false;
        }
        self.entries += 1;
        let named_by_url = !matches!(entry.out, Some(OutPath::File(_)));
        let (placement, turn) = {
            let mut namer = self.namer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let placement = namer.place(&entry.origin, &entry.url, entry.out.as_ref());
            // Turns are handed out in queue order: this thread queues right after.
            let turn = match placement {
                Ok(Placement::At(_)) if named_by_url => namer.turn(),
                _ => None,
            };
            (placement, turn)
        };
        let path = match placement {
            Ok(Placement::At(path)) => path,
            Ok(Placement::Duplicate(first)) => {
                let info = JobInfo {
                    origin: entry.origin.clone(),
                    url: entry.url,
                    path: Default::default(),
                    named_by_url: false,
                    ticket,
                };
                let report = EntryReport::without_request(
                    entry.origin,
                    Some(Arc::new(info)),
                    Outcome::Skipped(SkipReason::Duplicate(first)),
                );
                return self.events.send(Event::Finished(report));
            }
            Err(error) => {
                let text = entry.url.to_string();
                return self.report_line(entry.origin, error, text, ticket);
            }
        };
        let info = Arc::new(JobInfo {
            named_by_url,
            origin: entry.origin,
            url: entry.url,
            path,
            ticket,
        });
        self.queue(Job {
            info,
            sha256: entry.sha256,
            turn,
        })
    }

    /// Put a job on the channel. When it is full, sleep until the workers have
    /// drained it to half ([`Refill`]) instead of blocking in `send`, which
    /// would wake this thread once per finished entry: with small files that
    /// wake-up was a measurable share of the run's CPU.
    fn queue(&mut self, mut job: Job) -> bool {
        self.refill.register();
        loop {
            match self.jobs.try_send(job) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.cancel.is_requested() {
                        return false;
                    }
                    job = back;
                    // The timeout is a safety net; workers unpark us at low water.
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            }
        }
    }

    /// Report an unusable line as a failed entry. Returns false when the run is stopping.
    pub fn reject(&mut self, origin: Origin, error: LineError, text: String, ticket: Option<Ticket>) -> bool {
        self.entries += 1;
        self.report_line(origin, error, text, ticket)
    }

    fn report_line(
        &mut self,
        origin: Origin,
        error: LineError,
        text: String,
        ticket: Option<Ticket>,
    ) -> bool {
        let mut report =
            EntryReport::without_request(origin, None, Outcome::Failed(Problem::Line { text, error }));
        report.ticket = ticket;
        self.events.send(Event::Finished(report)) && !self.cancel.is_requested()
    }

    /// Whether the run is stopping.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_requested()
    }

    /// How many more jobs the channel takes now without blocking: what a
    /// source that claims entries in batches may claim at once.
    pub fn room(&self) -> usize {
        self.jobs
            .capacity()
            .map_or(0, |cap| cap.saturating_sub(self.jobs.len()))
    }
}

/// URL lists read one after another, as they arrive.
pub struct Lists(pub Vec<ListInput>);

impl Source for Lists {
    fn feed(self: Box<Self>, feeder: &mut Feeder) -> Result<(), RunError> {
        for list in self.0 {
            list.for_each_line(|item| match item {
                Ok(entry) => feeder.submit(entry, None),
                Err((origin, error, text)) => feeder.reject(origin, error, text, None),
            })?;
            if feeder.is_cancelled() {
                break;
            }
        }
        Ok(())
    }
}
