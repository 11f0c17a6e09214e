//! The run's [`Summary`], folded from events, and the [`Exit`] it implies.

use std::ops::AddAssign;
use std::time::{Duration, Instant};

use crate::error::{FetchError, RunError};
use crate::event::{EntryReport, Event, Outcome, Problem, Resume};
use crate::exit::Exit;

/// Most failures kept for the closing list; the count is always exact.
const KEPT_FAILURES: usize = 1000;

/// One failed entry as the closing report lists it.
#[derive(Debug, Clone)]
pub struct FailureLine {
    /// `FILE:LINE`.
    pub origin: String,
    /// The URL (credentials removed) or the unusable line's text, escaped.
    pub what: String,
    /// The cause in plain words.
    pub cause: String,
    /// Attempts made.
    pub attempts: u32,
}

impl FailureLine {
    /// Build the line for a failed report; `None` if it did not fail.
    pub(crate) fn from_report(report: &EntryReport) -> Option<FailureLine> {
        let Outcome::Failed(problem) = &report.outcome else {
            return None;
        };
        let what = match (problem, &report.job) {
            (Problem::Line { text, .. }, _) => crate::display::line(text),
            (_, Some(job)) => crate::display::url(&job.url),
            (_, None) => String::new(),
        };
        Some(FailureLine {
            origin: crate::display::text(&report.origin.to_string()).into_owned(),
            what,
            cause: crate::display::text(&problem.to_string()).into_owned(),
            attempts: report.attempts,
        })
    }
}

impl std::fmt::Display for FailureLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.what.is_empty() {
            write!(f, "{}: ", self.what)?;
        }
        write!(f, "{}", self.cause)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// Counts and totals of a run.
#[derive(Debug)]
pub struct Summary {
    /// Entries downloaded.
    pub downloaded: u64,
    /// Entries skipped (already present, or duplicates).
    pub skipped: u64,
    /// Entries the server reported unchanged (`--update`).
    pub unchanged: u64,
    /// Entries planned (`--dry-run`).
    pub planned: u64,
    /// Entries failed (including unusable lines).
    pub failed: u64,
    /// Entries cut short by an interruption (Ctrl-C, SIGTERM, SIGHUP): not failures,
    /// and what they had is kept as `NAME.part` for `-c`.
    pub interrupted_entries: u64,
    /// Entries queued but never started because the run was interrupted.
    pub not_started: u64,
    /// Bytes written to finished files.
    pub bytes: u64,
    /// Bytes that crossed the network in this run, over every entry
    /// (interrupted and failed ones too): what the headline and its rate count.
    pub transferred: u64,
    /// Downloads that went on from a `.part` holding bytes from before.
    pub continued: u64,
    /// Entries the input gave this run, once it said (`Event::InputDone`).
    entries: Option<u64>,
    /// Failures, in the order they happened (at most 1000; the count is always exact).
    pub failures: Vec<FailureLine>,
    /// The signal that interrupted the run, if any.
    pub interrupted: Option<i32>,
    /// An input list that broke mid-way.
    pub input_error: Option<RunError>,
    /// Worker threads that panicked (a bug; reported, and the exit code says failure).
    pub worker_panics: u32,
    started: Instant,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// An empty summary; the clock starts now.
    pub(crate) fn new() -> Summary {
        Summary {
            downloaded: 0,
            skipped: 0,
            unchanged: 0,
            planned: 0,
            failed: 0,
            interrupted_entries: 0,
            not_started: 0,
            bytes: 0,
            transferred: 0,
            continued: 0,
            entries: None,
            failures: Vec::new(),
            interrupted: None,
            input_error: None,
            worker_panics: 0,
            started: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }

    /// Fold one event in.
    pub(crate) fn record(&mut self, event: &Event) {
        let report = match event {
            Event::Finished(report) => report,
            Event::InputDone { entries } => {
                self.entries = Some(*entries);
                return;
            }
            Event::Resume { decision, .. } => {
                if !matches!(decision, Resume::StartedOver(_)) {
                    self.continued += 1;
                }
                return;
            }
            Event::Started { .. }
            | Event::Retrying { .. }
            | Event::SourceSetAside { .. }
            | Event::InputSeen { .. } => return,
        };
        self.transferred += report.transferred;
        match &report.outcome {
            Outcome::Downloaded => {
                self.downloaded += 1;
                self.bytes += report.bytes;
            }
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Planned => self.planned += 1,
            Outcome::Failed(Problem::Fetch(FetchError::Cancelled)) => self.interrupted_entries += 1,
            Outcome::Failed(_) => {
                self.failed += 1;
                if self.failures.len() < KEPT_FAILURES {
                    self.failures.extend(FailureLine::from_report(report));
                }
            }
        }
    }

    pub(crate) fn note_worker_panic(&mut self) {
        self.worker_panics += 1;
    }

    pub(crate) fn finish(
        &mut self,
        not_started: u64,
        interrupted: Option<i32>,
        input_error: Option<RunError>,
    ) {
        // Workers count the queued entries they dropped; the input's count
        // also covers those still in the channel when the run stopped.
        let unfinished = self
            .entries
            .map_or(0, |entries| entries.saturating_sub(self.finished()));
        self.not_started = not_started.max(unfinished);
        self.interrupted = interrupted;
        self.input_error = input_error;
        self.elapsed = self.started.elapsed();
    }

    /// Entries that reached an end (any outcome).
    pub fn finished(&self) -> u64 {
        self.downloaded
            + self.skipped
            + self.unchanged
            + self.planned
            + self.failed
            + self.interrupted_entries
    }

    /// The exit status this run deserves.
    pub fn exit(&self) -> Exit {
        if let Some(signal) = self.interrupted {
            return Exit::Signal(signal);
        }
        if self.input_error.is_some() {
            return Exit::Usage;
        }
        if self.failed > 0 || self.interrupted_entries > 0 || self.worker_panics > 0 {
            return Exit::Failed;
        }
        Exit::Ok
    }

    /// The one-line human summary: counts, bytes, time, rate.
    pub fn headline(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.transferred as f64 / secs
        } else {
            0.0
        };
        let mut parts = vec![format!("{} downloaded", self.downloaded)];
        if self.unchanged > 0 {
            parts.push(format!("{} unchanged", self.unchanged));
        }
        parts.push(format!("{} skipped", self.skipped));
        parts.push(format!("{} failed", self.failed));
        if self.interrupted_entries > 0 {
            parts.push(format!("{} interrupted", self.interrupted_entries));
        }
        if self.planned > 0 {
            parts.push(format!("{} planned", self.planned));
        }
        if self.not_started > 0 {
            // Only entries the input had handed over: lines not yet read
            // when the run stopped are not counted.
            parts.push(format!("{} queued but not started", self.not_started));
        }
        let continued = match self.continued {
            0 => String::new(),
            1 => "; 1 download continued a .part".to_string(),
            n => format!("; {n} downloads continued a .part"),
        };
        format!(
            "{}: {} in {:.2} s ({}/s){continued}",
            parts.join(", "),
            crate::display::bytes(self.transferred),
            secs,
            crate::display::bytes(rate as u64)
        )
    }
}

/// Folds another run's summary in (a queue worker's runs, one after
/// another): counts, bytes and panics add up, failures are kept up to the
/// same limit, and the first input error and signal win. The worker count,
/// clock and elapsed time stay this summary's.
impl AddAssign for Summary {
    fn add_assign(&mut self, run: Summary) {
        self.downloaded += run.downloaded;
        self.skipped += run.skipped;
        self.unchanged += run.unchanged;
        self.planned += run.planned;
        self.failed += run.failed;
        self.interrupted_entries += run.interrupted_entries;
        self.not_started += run.not_started;
        self.bytes += run.bytes;
        self.transferred += run.transferred;
        self.continued += run.continued;
        self.worker_panics += run.worker_panics;
        let room = KEPT_FAILURES.saturating_sub(self.failures.len());
        self.failures.extend(run.failures.into_iter().take(room));
        if self.input_error.is_none() {
            self.input_error = run.input_error;
        }
        if self.interrupted.is_none() {
            self.interrupted = run.interrupted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let mut s = Summary::new();
        assert_eq!(s.exit().code(), 0);
        s.interrupted_entries = 1;
        assert_eq!(s.exit().code(), 1, "cut short without a signal is a failure");
        s.interrupted_entries = 0;
        s.failed = 1;
        assert_eq!(s.exit().code(), 1);
        s.interrupted = Some(2);
        assert_eq!(s.exit().code(), 130);
        s.interrupted = Some(15);
        assert_eq!(s.exit().code(), 143);
        s.interrupted = Some(1);
        assert_eq!(s.exit().code(), 129);
    }

    #[test]
    fn summaries_add_up() {
        let failure = |n: u32| FailureLine {
            origin: format!("l:{n}"),
            what: String::new(),
            cause: "x".into(),
            attempts: n,
        };
        let mut total = Summary::new();
        total.downloaded = 1;
        total.failed = 1;
        total.failures = (0..KEPT_FAILURES as u32 - 1).map(failure).collect();
        let mut run = Summary::new();
        run.downloaded = 2;
        run.skipped = 3;
        run.unchanged = 4;
        run.planned = 5;
        run.failed = 2;
        run.interrupted_entries = 6;
        run.not_started = 7;
        run.bytes = 8;
        run.worker_panics = 1;
        run.failures = vec![failure(1000), failure(1001)];
        run.input_error = Some(RunError::Spawn(std::io::Error::other("first")));
        run.interrupted = Some(15);
        total += run;
        let mut later = Summary::new();
        later.input_error = Some(RunError::Spawn(std::io::Error::other("second")));
        later.interrupted = Some(2);
        total += later;
        let counts = (
            total.downloaded,
            total.skipped,
            total.unchanged,
            total.planned,
            total.failed,
            total.interrupted_entries,
            total.not_started,
            total.bytes,
            total.worker_panics,
        );
        assert_eq!(counts, (3, 3, 4, 5, 3, 6, 7, 8, 1));
        assert_eq!(total.failures.len(), KEPT_FAILURES, "kept up to the limit");
        assert_eq!(total.failures.last().map(|f| f.attempts), Some(1000));
        assert!(matches!(&total.input_error, Some(RunError::Spawn(e)) if e.to_string() == "first"));
        assert_eq!(total.interrupted, Some(15));
    }
}
