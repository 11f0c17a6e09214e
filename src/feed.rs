//! The feeding end of the pipeline: where entries come from ([`Source`]), and
//! the [`Feeder`] that names them, drops duplicates and queues them as [`Job`]s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use url::Url;

use crate::cancel::Cancel;
use crate::checksum::{Checksums, Sums};
use crate::error::{LineError, RunError};
use crate::event::{EntryReport, Event, Events, JobInfo, Origin, Outcome, Problem, SkipReason, Ticket};
use crate::fetch::{Race, Split};
use crate::input::{Entry, ListInput};
use crate::naming::{Namer, OutPath, Placement, Turn};

/// One unit of work on the channel.
pub(crate) struct Job {
    /// Identity and destination.
    pub info: Arc<JobInfo>,
    /// With `--content-disposition`, for an entry named by its URL: its place
    /// in the list order of names claimed from responses.
    pub turn: Option<Turn>,
}

/// What a worker takes from the channel.
pub(crate) enum Task {
    /// An entry to download.
    Entry(Job),
    /// Help with a big file another worker is downloading (`--split`).
    Help(Arc<Split>),
    /// Ask one more source of an entry with mirrors (`--race-after`).
    Probe {
        /// The entry's race.
        race: Arc<Race>,
        /// Which source.
        source: usize,
        /// Not before then.
        at: Instant,
    },
}

impl Task {
    /// The URL the task connects to, for `--per-host`.
    pub(crate) fn url(&self) -> &Url {
        match self {
            Task::Entry(job) => &job.info.url,
            Task::Help(split) => &split.source,
            Task::Probe { race, source, .. } => race.job.source(*source),
        }
    }
}

/// Keeps the job channel open while any entry is unfinished, so idle
/// workers stay to help with a big file after the input has ended
/// ([`Task::Help`]); once the input is done and the last entry finished,
/// its sender goes and the workers' `recv` ends the pool.
pub(crate) struct Door {
    tx: Mutex<Option<Sender<Task>>>,
    /// Entries queued or being downloaded.
    pending: AtomicUsize,
    fed: AtomicBool,
    /// Help tasks on the channel, not yet taken.
    helps: AtomicUsize,
}

impl Door {
    pub(crate) fn new(tx: Sender<Task>) -> Door {
        Door {
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(0),
            fed: AtomicBool::new(false),
            helps: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Sender<Task>>> {
        self.tx.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A guard that counts the entry a worker just took as finished when
    /// it is dropped, on any path out of the download, unwinding included.
    pub(crate) fn entry_guard(&self) -> EntryGuard<'_> {
        EntryGuard(self)
    }

    /// A worker finished (or dropped) an entry it took from the channel.
    fn entry_done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close_if_done();
        }
    }

    /// The feeder will queue no more entries.
    fn input_done(&self) {
        self.fed.store(true, Ordering::Release);
        self.close_if_done();
    }

    fn close_if_done(&self) {
        let mut tx = self.lock();
        if self.fed.load(Ordering::Acquire) && self.pending.load(Ordering::Acquire) == 0 {
            *tx = None;
        }
    }

    /// Put up to `n` help tasks for `split` on the channel without waiting;
    /// how many went.
    pub(crate) fn send_help(&self, split: &Arc<Split>, n: usize) -> usize {
        (0..n)
            .take_while(|_| self.send_extra(Task::Help(split.clone())))
            .count()
    }

    /// Put a probe task on the channel without waiting; whether it went.
    pub(crate) fn send_probe(&self, race: &Arc<Race>, source: usize, at: Instant) -> bool {
        self.send_extra(Task::Probe {
            race: race.clone(),
            source,
            at,
        })
    }

    /// Put a task that is not an entry on the channel without waiting,
    /// counted in `helps` (first: a worker may take it the moment it is sent).
    fn send_extra(&self, task: Task) -> bool {
        let tx = self.lock();
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        self.helps.fetch_add(1, Ordering::AcqRel);
        let sent = tx.try_send(task).is_ok();
        if !sent {
            self.helps.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    /// A worker took a help task from the channel.
    pub(crate) fn help_taken(&self) {
        self.helps.fetch_sub(1, Ordering::AcqRel);
    }

    /// How many of `queued` tasks on the channel are entries (not help).
    pub(crate) fn entries_among(&self, queued: usize) -> usize {
        queued.saturating_sub(self.helps.load(Ordering::Acquire))
    }
}

/// See [`Door::entry_guard`].
pub(crate) struct EntryGuard<'a>(&'a Door);

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        self.0.entry_done();
    }
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
pub(crate) struct Refill {
    feeder: OnceLock<Thread>,
    low_water: usize,
}

impl Refill {
    /// Wake the feeder when no more than `low_water` jobs are left queued.
    pub(crate) fn new(low_water: usize) -> Refill {
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
    pub(crate) fn taken<T>(&self, jobs: &Receiver<T>) {
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
    jobs: Sender<Task>,
    door: Arc<Door>,
    events: Events,
    cancel: Cancel,
    entries: u64,
    /// While reading a list whose lines were not counted: when the entries
    /// read so far were last told (`Event::InputSeen`).
    growing: Option<Instant>,
    /// `--checksums`: the published digests, looked up by each entry's path.
    sums: Option<Arc<Sums>>,
}

/// How often a growing count of entries read is told.
const SEEN_EVERY: Duration = Duration::from_millis(100);

impl Feeder {
    pub(crate) fn new(
        namer: Arc<Mutex<Namer>>,
        jobs: Sender<Task>,
        door: Arc<Door>,
        events: Events,
        cancel: Cancel,
        refill: Arc<Refill>,
        sums: Option<Arc<Sums>>,
    ) -> Feeder {
        Feeder {
            sums,
            refill,
            namer,
            jobs,
            door,
            events,
            cancel,
            entries: 0,
            growing: None,
        }
    }

    /// Say how much input there is, before reading it: `lines` counted
    /// ahead, or `None` (a pipe), and then the entries read are told as they
    /// grow.
    pub(crate) fn lines_ahead(&mut self, lines: Option<u64>) {
        let _ = self.events.send(Event::InputSeen {
            entries: self.entries,
            lines,
        });
        if lines.is_none() {
            self.growing = Some(Instant::now());
        }
    }

    /// One more entry read; tells the count now and then if it grows.
    fn count_entry(&mut self) {
        self.entries += 1;
        if let Some(last) = self.growing
            && last.elapsed() >= SEEN_EVERY
        {
            self.growing = Some(Instant::now());
            let _ = self.events.send(Event::InputSeen {
                entries: self.entries,
                lines: None,
            });
        }
    }

    /// Say that input is over, with the number of entries seen.
    pub(crate) fn finish(self) {
        let _ = self.events.send(Event::InputDone {
            entries: self.entries,
        });
        self.door.input_done();
    }

    /// Queue an entry (blocking while the channel is full). `ticket` is echoed
    /// back in its report. Returns false when the run is stopping.
    pub fn submit(&mut self, entry: Entry, ticket: Option<Ticket>) -> bool {
        if self.cancel.is_requested() {
            return false;
        }
        self.count_entry();
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
                    mirrors: entry.mirrors,
                    path: Default::default(),
                    named_by_url: false,
                    checksums: entry.checksums,
                    headers: entry.headers,
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
        let checksums = self.checksums_for(entry.checksums, &path);
        let info = Arc::new(JobInfo {
            named_by_url,
            checksums,
            headers: entry.headers,
            origin: entry.origin,
            url: entry.url,
            mirrors: entry.mirrors,
            path,
            ticket,
        });
        self.queue(Job { info, turn })
    }

    /// The line's own digests and those the `--checksums` files give for
    /// `path` (relative to the output directory), all to be checked. The
    /// path is the one placed before any request: a name chosen later from
    /// `Content-Disposition` is not looked up.
    fn checksums_for(&self, mut checksums: Checksums, path: &std::path::Path) -> Checksums {
        if let Some(published) = self
            .sums
            .as_deref()
            .zip(path.to_str())
            .and_then(|(sums, path)| sums.get(path))
        {
            for checksum in published.iter() {
                checksums.add(checksum.clone());
            }
        }
        checksums
    }

    /// Put a job on the channel. When it is full, sleep until the workers have
    /// drained it to half ([`Refill`]) instead of blocking in `send`, which
    /// would wake this thread once per finished entry: with small files that
    /// wake-up was a measurable share of the run's CPU.
    fn queue(&mut self, job: Job) -> bool {
        self.refill.register();
        // Counted before it can be taken, so the count never dips to zero
        // while an entry is on its way to a worker.
        self.door.pending.fetch_add(1, Ordering::AcqRel);
        let mut job = Task::Entry(job);
        loop {
            match self.jobs.try_send(job) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => {
                    self.door.entry_done();
                    return false;
                }
                Err(TrySendError::Full(back)) => {
                    if self.cancel.is_requested() {
                        self.door.entry_done();
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
        self.count_entry();
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
        // One bounded pass per list that only counts newlines, so a view
        // knows the total from the start; any list that cannot be counted
        // makes the total one that grows as lines arrive.
        let lines = self
            .0
            .iter()
            .try_fold(0u64, |sum, list| Some(sum + list.lines()?));
        feeder.lines_ahead(lines);
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::time::Instant;

    use super::*;
    use crate::{Config, Live, Observer, run};

    /// What one finished entry looked like to the observer: its line, how it
    /// ended, and where it was to go.
    #[derive(Debug, PartialEq)]
    struct Seen {
        line: u64,
        outcome: String,
        path: String,
    }

    /// Collects finished entries and the count `InputDone` gave.
    #[derive(Default)]
    struct Collect {
        seen: Vec<Seen>,
        entries: Option<u64>,
    }

    impl Observer for Collect {
        fn event(&mut self, event: &Event, _live: &Live) {
            match event {
                Event::Finished(report) => self.seen.push(Seen {
                    line: report.origin.line,
                    outcome: match &report.outcome {
                        Outcome::Planned => "planned".to_string(),
                        Outcome::Skipped(SkipReason::Duplicate(first)) => {
                            format!("duplicate of line {}", first.line)
                        }
                        Outcome::Failed(Problem::Line { .. }) => "bad line".to_string(),
                        other => format!("{other:?}"),
                    },
                    path: report
                        .job
                        .as_ref()
                        .map(|job| job.path.display().to_string())
                        .unwrap_or_default(),
                }),
                Event::InputDone { entries } => self.entries = Some(*entries),
                _ => {}
            }
        }
    }

    /// Feeds `list` through [`Lists`] in a `--dry-run` (no network, nothing
    /// written) and returns what the observer saw, in line order.
    fn feed_list(list: &str, cancel: &Cancel) -> Collect {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(dir.path().join("out"));
        config.dry_run = true;
        config.jobs = 2;
        let input = ListInput::from_reader("list.txt", Cursor::new(list.to_string()));
        let mut seen = Collect::default();
        run(config, Box::new(Lists(vec![input])), cancel, &mut seen).expect("run starts");
        seen.seen.sort_by_key(|s| s.line);
        seen
    }

    fn seen(line: u64, outcome: &str, path: &str) -> Seen {
        Seen {
            line,
            outcome: outcome.to_string(),
            path: path.to_string(),
        }
    }

    #[test]
    fn every_line_becomes_one_report() {
        let list = "\
http://h.test/a.bin
http://h.test/a.bin
# a comment

ftp://h.test/b.bin
http://h.test/c/ \"sub dir/c.bin\"
http://h.test/d.bin  d/
";
        let got = feed_list(list, &Cancel::new());
        let want = [
            seen(1, "planned", "a.bin"),
            seen(2, "duplicate of line 1", ""),
            seen(5, "bad line", ""),
            seen(6, "planned", "sub dir/c.bin"),
            seen(7, "planned", "d/d.bin"),
        ];
        assert_eq!(got.seen, want);
        assert_eq!(got.entries, Some(5), "comments and blank lines are not entries");
    }

    #[test]
    fn a_cancelled_run_queues_nothing() {
        let cancel = Cancel::new();
        cancel.request(2);
        let got = feed_list("http://h.test/a.bin\nhttp://h.test/b.bin\n", &cancel);
        assert_eq!(got.seen, []);
        assert_eq!(got.entries, Some(0));
    }

    #[test]
    fn refill_wakes_the_feeder_only_at_low_water() {
        let (tx, rx) = crossbeam_channel::unbounded::<u8>();
        let wait = Duration::from_millis(300);
        // (jobs left queued, whether `taken` wakes the feeder) at low water 1.
        for (queued, wakes) in [(0, true), (1, true), (2, false), (5, false)] {
            while rx.try_recv().is_ok() {}
            for _ in 0..queued {
                tx.send(0).expect("queue");
            }
            // Room for the hand-over, so the feeder never blocks in `send`: a
            // blocked send parks the thread, and that park could use up the
            // unpark the test is looking for.
            let (registered_tx, registered) = crossbeam_channel::bounded(1);
            let feeder = std::thread::spawn(move || {
                let refill = Refill::new(1);
                refill.register();
                registered_tx.send(refill).expect("hand over");
                // An unpark that came before this park ends it at once.
                let start = Instant::now();
                std::thread::park_timeout(wait);
                start.elapsed()
            });
            let refill = registered.recv().expect("feeder registered");
            refill.taken(&rx);
            let slept = feeder.join().expect("feeder thread");
            if wakes {
                assert!(slept < wait, "{queued} queued: slept {slept:?}, should be woken");
            } else {
                // On Linux a park ends before its timeout only when unparked.
                assert!(slept >= wait, "{queued} queued: woken after {slept:?}");
            }
        }
    }
}
