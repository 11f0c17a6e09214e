//! The contract between the stages: what the pipeline tells the outside, as
//! one [`Event`] stream sent through [`Events`] and consumed on the main
//! thread by an [`Observer`] (progress bars, plans, logs, JSON), and the
//! types those events carry ([`Origin`], [`JobInfo`], [`EntryReport`]).
//! Every stage imports this module; it imports none of them.
//!
//! Workers never print. Byte progress is not an event: workers bump shared
//! counters ([`Live`]) that the display samples a few times a
//! second, so a chunk (512 KiB, the transport's read size) costs one relaxed
//! atomic add, not a message.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use url::Url;

use crate::checksum::Checksums;
use crate::error::{FetchError, LineError};

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The list's name as the user gave it (`-` for stdin), or `argument N`
    /// for a URL given on the command line.
    pub source: Arc<str>,
    /// 1-based line number; 0 for a URL given on the command line, which has none.
    pub line: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.source),
            line => write!(f, "{}:{line}", self.source),
        }
    }
}

/// Something that happened in the run.
#[derive(Debug)]
pub enum Event {
    /// A worker began an entry (after skip checks).
    Started {
        /// Worker number, `0..jobs`: one progress bar per worker at most.
        worker: usize,
        /// The entry.
        job: Arc<JobInfo>,
    },
    /// An attempt ended without finishing the entry and another will follow
    /// (shown with `-v`).
    Retrying {
        /// The entry.
        job: Arc<JobInfo>,
        /// The attempt that just failed, 1-based.
        attempt: u32,
        /// Why it failed.
        error: FetchError,
        /// How long before the next attempt.
        wait: Duration,
        /// Bytes already on disk that the next attempt will continue from.
        resume_from: u64,
    },
    /// One source of an entry with several (mirrors) failed and is set
    /// aside for that entry; the next one is used.
    SourceSetAside {
        /// The entry.
        job: Arc<JobInfo>,
        /// Which source was set aside (see [`JobInfo::source`]).
        source: usize,
        /// Why.
        error: FetchError,
    },
    /// A download is about to go on from a part that already holds bytes
    /// (`-c`, or the server answered a resume with the whole file), and this
    /// is what became of them (shown with `-v`).
    Resume {
        /// The entry.
        job: Arc<JobInfo>,
        /// Bytes the part held.
        from: u64,
        /// Continued or thrown away, and why.
        decision: Resume,
    },
    /// An entry is finished, one way or another.
    Finished(EntryReport),
    /// How much input there is, before it is exhausted: sent once at the
    /// start, and, while a list that could not be counted (a pipe) is read,
    /// at most every 100 ms.
    InputSeen {
        /// Entries read so far.
        entries: u64,
        /// The lines of every list, counted ahead when every list is a
        /// regular file (or a URL argument): an upper bound on the entries,
        /// since blank and comment lines are lines too. `None` from a pipe.
        lines: Option<u64>,
    },
    /// The input is exhausted: `entries` is the number of entries (including
    /// rejected lines) this run will report.
    InputDone {
        /// Total entries.
        entries: u64,
    },
}

/// What became of the bytes a part held (see [`Event::Resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Continued: the server sends the rest only if it still has the version
    /// the part recorded (`If-Range`).
    Continued,
    /// Continued without a record of the version: the entry's checksums
    /// check the result.
    Checked,
    /// Thrown away: the download starts from byte 0.
    StartedOver(StartOver),
}

/// Why a part's bytes were thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOver {
    /// The part records no version (another tool's file, or a file system
    /// without user attributes).
    NoRecord,
    /// The part's record is not one fetchq wrote.
    Unreadable,
    /// The part was recorded for another URL.
    OtherUrl,
    /// The part is longer than the file it was recorded from.
    Longer,
    /// The response the part came from had neither an ETag nor a Last-Modified.
    NoValidator,
    /// The server answered the request for the rest with the whole file.
    WholeFile,
    /// A part continued without a record did not give the expected digests.
    ChecksumFailed,
}

/// The `-v` text after the entry's URL.
impl std::fmt::Display for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self {
            Resume::Continued => {
                return f.write_str("continuing if the server still has the version the part came from");
            }
            Resume::Checked => {
                return f.write_str(
                    "continuing a part that records no version: a checksum will check the result",
                );
            }
            Resume::StartedOver(StartOver::NoRecord) => "the part has no record of the version it came from",
            Resume::StartedOver(StartOver::Unreadable) => "the part's record of its version is unreadable",
            Resume::StartedOver(StartOver::OtherUrl) => "the part came from another URL",
            Resume::StartedOver(StartOver::Longer) => "the part is longer than the file it came from",
            Resume::StartedOver(StartOver::NoValidator) => {
                "the part's response had no ETag or Last-Modified to check the version by"
            }
            Resume::StartedOver(StartOver::WholeFile) => "the server sent the whole file instead of the rest",
            Resume::StartedOver(StartOver::ChecksumFailed) => "the continued file did not match its checksum",
        };
        write!(f, "starting over from byte 0: {why}")
    }
}

/// The identity of one entry as it travels through the pipeline.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// List and line.
    pub origin: Origin,
    /// What was asked for: the first source, which names the entry.
    pub url: Url,
    /// Further sources of the same file (mirrors), in list order: asked
    /// when [`url`](Self::url) is slow to answer (`--race-after`) or fails.
    pub mirrors: Vec<Url>,
    /// Where it goes, relative to the output dir.
    pub path: PathBuf,
    /// Whether the file name came from the URL (and so may yield to
    /// `--content-disposition`) rather than from an explicit OUT.
    pub named_by_url: bool,
    /// The digests the whole file must match: the line's own (`sha256=`,
    /// `md5=`, ...) and those `--checksums` files give for its path.
    pub checksums: Checksums,
    /// The entry's own request headers (`header="Name: value"`), sent like
    /// `-H` (after it, on the same requests, under the same cross-origin rule).
    pub headers: Vec<(String, String)>,
    /// The job source's tag for this entry, echoed back in its report.
    pub ticket: Option<Ticket>,
}

impl JobInfo {
    /// Source `index` of the entry: 0 is its URL, then its mirrors in list order.
    pub fn source(&self, index: usize) -> &Url {
        match index {
            0 => &self.url,
            n => self.mirrors.get(n - 1).unwrap_or(&self.url),
        }
    }
}

/// A job source's tag for one entry, echoed back in the entry's report so the
/// source can match outcomes to what it handed out: the Redis worker's claim
/// number. Not `Copy`: it stands for one claim, and is cloned where echoed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// How an entry ended.
#[derive(Debug)]
pub enum Outcome {
    /// The file was downloaded and is complete under its final name.
    Downloaded,
    /// Nothing was done.
    Skipped(SkipReason),
    /// `--update`: the server said the local copy is current (304).
    Unchanged,
    /// `--dry-run`: this is where it would go.
    Planned,
    /// The entry failed; nothing is under its final name that was not there before.
    Failed(Problem),
}

/// Why an entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The final file already exists (default policy).
    Exists,
    /// The same URL and OUT came earlier in the run.
    Duplicate(Origin),
}

impl Outcome {
    /// The outcome as one word, the same in every output (`--json`'s
    /// `outcome`, `--log`, the queue's records): `downloaded`, `skipped`,
    /// `unchanged`, `planned` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Downloaded => "downloaded",
            Outcome::Skipped(_) => "skipped",
            Outcome::Unchanged => "unchanged",
            Outcome::Planned => "planned",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The reason in words: `exists`, or `duplicate of LIST:LINE` (`--json`'s
/// `reason`).
impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Exists => f.write_str("exists"),
            SkipReason::Duplicate(first) => write!(f, "duplicate of {first}"),
        }
    }
}

/// What went wrong with a failed entry.
#[derive(Debug)]
pub enum Problem {
    /// The list line itself is unusable.
    Line {
        /// The line's text, for the message.
        text: String,
        /// Why.
        error: LineError,
    },
    /// The download failed.
    Fetch(FetchError),
}

/// The whole cause, source errors included (`cannot write x: No space left on device`).
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Line { error, .. } => error.fmt(f),
            Problem::Fetch(error) => f.write_str(&crate::display::chain(error)),
        }
    }
}

/// The record of one finished entry (the fields of `--json`).
#[derive(Debug)]
pub struct EntryReport {
    /// List and line.
    pub origin: Origin,
    /// The entry; `None` for a line that did not parse.
    pub job: Option<Arc<JobInfo>>,
    /// How it ended.
    pub outcome: Outcome,
    /// The URL the body finally came from, after redirects.
    pub final_url: Option<Url>,
    /// The last HTTP status seen.
    pub status: Option<u16>,
    /// Bytes in the final file (downloaded ones, or the existing size when skipped).
    pub bytes: u64,
    /// Bytes that crossed the network for this entry, over all attempts.
    pub transferred: u64,
    /// Attempts made (0 when no request was sent).
    pub attempts: u32,
    /// Wall time spent on the entry.
    pub elapsed: Duration,
    /// Where the file was saved when that differs from the planned path
    /// (`--content-disposition`), relative to the output dir.
    pub saved_as: Option<PathBuf>,
    /// The job source's tag for this entry (see [`JobInfo::ticket`]); also
    /// set for an unusable line, which has no `JobInfo`.
    pub ticket: Option<Ticket>,
    /// For an entry with mirrors: what became of each source (boxed: most
    /// entries have one source, and every report crosses the event channel).
    pub sources: Option<Box<SourceReport>>,
}

/// What became of the sources of an entry with mirrors.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// Sources set aside (see [`JobInfo::source`]), each with its cause.
    pub set_aside: Vec<(usize, String)>,
    /// The source the body came from, for a downloaded entry.
    pub delivered_by: Option<usize>,
}

impl EntryReport {
    /// The path the entry's file has (or would have), relative to the output dir.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.saved_as
            .as_deref()
            .or(self.job.as_ref().map(|j| j.path.as_path()))
            .filter(|p| !p.as_os_str().is_empty())
    }
}

impl EntryReport {
    /// A report for an entry that needed no request.
    pub(crate) fn without_request(
        origin: Origin,
        job: Option<Arc<JobInfo>>,
        outcome: Outcome,
    ) -> EntryReport {
        EntryReport {
            origin,
            outcome,
            final_url: None,
            status: None,
            bytes: 0,
            transferred: 0,
            attempts: 0,
            elapsed: Duration::ZERO,
            saved_as: None,
            ticket: job.as_ref().and_then(|j| j.ticket.clone()),
            sources: None,
            job,
        }
    }

    /// Whether this entry counts against the exit code.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// Live byte counters of one worker, written by the worker after each chunk
/// and read by the display. Relaxed atomics: a display may be a chunk behind.
#[derive(Debug, Default)]
pub struct Slot {
    done: AtomicU64,
    total: AtomicU64,
    /// Bytes the entry's part held when it began: not received in this run.
    from: AtomicU64,
    /// Connections the entry uses right now beyond the first (`--split`).
    extra: AtomicU64,
}

/// `total` value meaning "length unknown".
const UNKNOWN: u64 = u64::MAX;

impl Slot {
    /// A new entry starts, with `from` bytes already on disk.
    pub(crate) fn begin(&self, from: u64) {
        self.from.store(from, Ordering::Relaxed);
        self.done.store(from, Ordering::Relaxed);
        self.extra.store(0, Ordering::Relaxed);
        self.total.store(UNKNOWN, Ordering::Relaxed);
    }

    /// A response body starts: `done` bytes on disk, `total` expected if known.
    pub(crate) fn begin_body(&self, done: u64, total: Option<u64>) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// `n` more bytes arrived.
    pub(crate) fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes on disk and expected total for the current entry.
    pub fn read(&self) -> (u64, Option<u64>) {
        let total = self.total.load(Ordering::Relaxed);
        (
            self.done.load(Ordering::Relaxed),
            (total != UNKNOWN).then_some(total),
        )
    }

    /// Bytes of the current entry received in this run: what was on disk
    /// when it began (`-c`) is not counted.
    pub fn received(&self) -> u64 {
        self.done
            .load(Ordering::Relaxed)
            .saturating_sub(self.from.load(Ordering::Relaxed))
    }

    /// How many connections the current entry uses (more than one when it
    /// is split, see `--split`).
    pub fn connections(&self) -> u64 {
        1 + self.extra.load(Ordering::Relaxed)
    }

    /// The entry now uses `n` connections.
    pub(crate) fn set_connections(&self, n: u64) {
        self.extra.store(n.saturating_sub(1), Ordering::Relaxed);
    }
}

/// The live byte counters of the run: one slot per worker.
#[derive(Debug)]
pub struct Live {
    /// One slot per worker.
    pub slots: Box<[Slot]>,
}

/// Receives the run's events on the calling thread (the one that owns the terminal).
pub trait Observer {
    /// Something happened.
    fn event(&mut self, event: &Event, live: &Live);
    /// Time passed (about every 100 ms); redraw if needed.
    fn tick(&mut self, _live: &Live) {}
}

/// Several observers fed the same events, in order (plans, terminal, JSON, log).
pub struct Tee<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Tee<'_> {
    fn event(&mut self, event: &Event, live: &Live) {
        for observer in self.0.iter_mut() {
            observer.event(event, live);
        }
    }

    fn tick(&mut self, live: &Live) {
        for observer in self.0.iter_mut() {
            observer.tick(live);
        }
    }
}

/// Backlog at which producers ring the observer's doorbell rather than let
/// events wait for the next tick.
const RING_AT: usize = 256;

/// The sending side of the event stream, shared by the feeder and workers.
///
/// The observer thread is not woken per event (with thousands of small files
/// a second, a wake-up per event cost more CPU than the downloads): it drains
/// events once per tick, or when a producer rings the doorbell because a
/// backlog built up. The doorbell also ends the run: it disconnects when the
/// last producer drops its `Events`.
#[derive(Clone)]
pub(crate) struct Events {
    tx: Sender<Event>,
    bell: Sender<()>,
}

impl Events {
    /// The producers' end of a run's event channel `tx`; `bell` is the
    /// observer's doorbell (capacity 1), rung when a backlog builds up.
    pub(crate) fn new(tx: Sender<Event>, bell: Sender<()>) -> Events {
        Events { tx, bell }
    }

    /// Send an event; false if the observer is gone.
    pub(crate) fn send(&self, event: Event) -> bool {
        let sent = self.tx.send(event).is_ok();
        if self.tx.len() >= RING_AT {
            let _ = self.bell.try_send(());
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_reasons_in_words() {
        let first = Origin {
            source: "list.txt".into(),
            line: 3,
        };
        let cases = [
            (Outcome::Downloaded, "downloaded", None),
            (Outcome::Skipped(SkipReason::Exists), "skipped", Some("exists")),
            (
                Outcome::Skipped(SkipReason::Duplicate(first)),
                "skipped",
                Some("duplicate of list.txt:3"),
            ),
            (Outcome::Unchanged, "unchanged", None),
            (Outcome::Planned, "planned", None),
            (
                Outcome::Failed(Problem::Fetch(FetchError::Cancelled)),
                "failed",
                None,
            ),
        ];
        for (outcome, word, reason) in cases {
            assert_eq!(outcome.word(), word);
            let shown = match &outcome {
                Outcome::Skipped(reason) => Some(reason.to_string()),
                _ => None,
            };
            assert_eq!(shown.as_deref(), reason, "{word}");
        }
    }
}
