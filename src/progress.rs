//! What a person sees on stderr while a run goes and when it ends. The only
//! code that touches indicatif.
//!
//! Three modes, chosen by the binary:
//! - [`Mode::Bars`] (stderr is a terminal): one overall bar (files done/total,
//!   bytes, rate, ETA) and one bar per active download, never more than workers.
//!   Log lines go through `MultiProgress::println` so bars never tear.
//! - [`Mode::Plain`] (stderr is a pipe or file, e.g. cron): no bars, no `\r`;
//!   one line per failure as it happens, then the summary.
//! - [`Mode::Quiet`] (`-q`): nothing on success; failures and a one-line count
//!   of them.
//!
//! With `verbose`, every finished entry and every retry gets a line too.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{
    HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};

use crate::cancel::Cancel;
use crate::display;
use crate::event::{EntryReport, Event, JobInfo, Live, Observer, Outcome, SkipReason};
use crate::messages::PROGRAM;
use crate::report::{FailureLine, Summary};

/// How much to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live progress bars (stderr is a terminal).
    Bars,
    /// Line-oriented output for pipes and logs.
    Plain,
    /// Failures only.
    Quiet,
}

/// The stderr observer.
pub struct Terminal {
    mode: Mode,
    verbose: bool,
    bars: Option<Bars>,
    entries: Option<u64>,
    finished: u64,
    finished_bytes: u64,
    started: Instant,
    /// Failures in red: only with bars (a terminal) and without `NO_COLOR`.
    color: bool,
    /// The run's stop request, to freeze the bars on Ctrl-C.
    cancel: Option<Cancel>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    /// One per worker: the entry it works on, its bar and when it began.
    active: Vec<Option<(Arc<JobInfo>, ProgressBar, Instant)>>,
}

impl Terminal {
    /// A view for a run with `jobs` workers.
    pub fn new(mode: Mode, verbose: bool, jobs: usize) -> Terminal {
        let bars = (mode == Mode::Bars).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let overall = multi.add(ProgressBar::no_length());
            overall.set_style(overall_style(false));
            // No steady-tick thread: the event loop ticks every 100 ms, and a
            // second drawing thread racing the ^C echo left a stale bar on screen.
            Bars {
                multi,
                overall,
                active: (0..jobs).map(|_| None).collect(),
            }
        });
        Terminal {
            mode,
            verbose,
            bars,
            entries: None,
            finished: 0,
            finished_bytes: 0,
            started: Instant::now(),
            cancel: None,
            color: mode == Mode::Bars && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Watch `cancel`: on Ctrl-C the bars freeze where they are (see
    /// `freeze_on_cancel`).
    pub fn watch(&mut self, cancel: &Cancel) {
        self.cancel = Some(cancel.clone());
    }

    /// indicatif pads every line to the terminal's full width and relies on
    /// auto-wrap, so the cursor rests in the last column. The `^C` a terminal
    /// echoes there wraps onto a new line, and every later redraw's relative
    /// cursor moves land one line short, leaving a stale bar on screen. So at
    /// the first sign of a stop request, stop drawing without clearing: the
    /// bars stay as they were at Ctrl-C, and the report starts on a fresh line
    /// below them.
    fn freeze_on_cancel(&mut self) {
        if self.bars.is_none() || !self.cancel.as_ref().is_some_and(Cancel::is_requested) {
            return;
        }
        if let Some(bars) = self.bars.take() {
            bars.multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let _ = writeln!(io::stderr().lock());
    }

    /// Print a line without tearing the bars: the whole line goes through
    /// [`display::text`], whatever its parts were built from; `red` colours it.
    fn line(&self, text: &str, red: bool) {
        let text = display::text(text);
        let text = if red && self.color {
            Cow::Owned(format!("\x1b[31m{text}\x1b[0m"))
        } else {
            text
        };
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => {
                let _ = writeln!(io::stderr().lock(), "{text}");
            }
        }
    }

    fn finished(&mut self, report: &EntryReport) {
        self.finished += 1;
        self.finished_bytes += report.transferred;
        if let Some(line) = FailureLine::from_report(report) {
            self.line(&line.to_string(), true);
        } else if self.verbose {
            self.line(&describe(report), false);
        }
        if let (Some(bars), Some(job)) = (self.bars.as_mut(), &report.job) {
            for slot in bars.active.iter_mut() {
                if slot.as_ref().is_some_and(|(j, _, _)| Arc::ptr_eq(j, job))
                    && let Some((_, bar, _)) = slot.take()
                {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
            }
            bars.overall.set_position(self.finished);
        }
    }

    /// Clear the bars and print the closing report.
    pub fn finish(&mut self, summary: &Summary) {
        if let Some(bars) = self.bars.take() {
            for (_, bar, _) in bars.active.into_iter().flatten() {
                bar.finish_and_clear();
            }
            bars.overall.finish_and_clear();
            let _ = bars.multi.clear();
        }
        let mut err = io::stderr().lock();
        if let Some(signal) = summary.interrupted {
            let name =
                crate::cancel::signal_name(signal).map_or_else(|| format!("signal {signal}"), str::to_string);
            let _ = writeln!(
                err,
                "{PROGRAM}: interrupted by {name}; partial files kept as NAME.part (continue with -c)"
            );
        }
        match self.mode {
            Mode::Quiet => {
                if summary.failed > 0 {
                    let _ = writeln!(
                        err,
                        "{PROGRAM}: {} of {} entries failed",
                        summary.failed,
                        summary.finished()
                    );
                }
            }
            Mode::Plain => {
                let _ = writeln!(err, "{}", summary.headline());
            }
            Mode::Bars => {
                let _ = writeln!(err, "{}", summary.headline());
                if !summary.failures.is_empty() {
                    let _ = writeln!(err, "failed:");
                    for failure in &summary.failures {
                        let _ = writeln!(err, "  {failure}");
                    }
                    let more = summary.failed.saturating_sub(summary.failures.len() as u64);
                    if more > 0 {
                        let _ = writeln!(err, "  ... and {more} more");
                    }
                }
            }
        }
    }
}

impl Observer for Terminal {
    fn event(&mut self, event: &Event, live: &Live) {
        self.freeze_on_cancel();
        match event {
            Event::Started { worker, job } => {
                if let Some(bars) = self.bars.as_mut() {
                    let bar = bars.multi.add(ProgressBar::no_length());
                    bar.set_style(file_style());
                    bar.set_message(display::text(&job.path.to_string_lossy()).into_owned());
                    if let Some(slot) = bars.active.get_mut(*worker)
                        && let Some((_, old, _)) = slot.replace((job.clone(), bar, Instant::now()))
                    {
                        old.finish_and_clear();
                        bars.multi.remove(&old);
                    }
                }
            }
            Event::Retrying {
                job,
                attempt,
                error,
                wait,
                resume_from,
            } => {
                if self.verbose {
                    let resume = if *resume_from > 0 {
                        format!(", continuing from byte {resume_from}")
                    } else {
                        String::new()
                    };
                    self.line(
                        &format!(
                            "{}: {}: attempt {attempt} failed: {}; retrying in {:.1} s{resume}",
                            display::text(&job.origin.to_string()),
                            display::url(&job.url),
                            display::text(&display::chain(error)),
                            wait.as_secs_f32()
                        ),
                        false,
                    );
                }
            }
            Event::Resume { job, from, decision } => {
                if self.verbose {
                    self.line(
                        &format!(
                            "{}: {}: {} bytes in {}.part: {decision}",
                            job.origin,
                            job.url,
                            from,
                            job.path.to_string_lossy(),
                        ),
                        false,
                    );
                }
            }
            Event::Finished(report) => self.finished(report),
            Event::InputDone { entries } => {
                self.entries = Some(*entries);
                if let Some(bars) = &self.bars {
                    bars.overall.set_length(*entries);
                    bars.overall.set_style(overall_style(true));
                }
            }
        }
        self.tick(live);
    }

    fn tick(&mut self, live: &Live) {
        self.freeze_on_cancel();
        let Some(bars) = &self.bars else {
            return;
        };
        let mut in_flight = 0;
        for (slot, active) in live.slots.iter().zip(&bars.active) {
            if let Some((_, bar, since)) = active {
                let (done, total) = slot.read();
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
                // The rate of this run's bytes: a part continued with `-c`
                // was on disk already.
                let received = slot.received();
                bar.set_prefix(format!("{}/s", display::bytes(per_second(received, *since))));
                in_flight += received;
            }
        }
        let bytes = self.finished_bytes + in_flight;
        bars.overall.set_message(format!(
            "{}  {}/s",
            display::bytes(bytes),
            display::bytes(per_second(bytes, self.started))
        ));
    }
}

/// The average rate of `bytes` since `since`.
fn per_second(bytes: u64, since: Instant) -> u64 {
    (bytes as f64 / since.elapsed().as_secs_f64().max(0.001)) as u64
}

/// One line for a finished entry in verbose mode.
fn describe(report: &EntryReport) -> String {
    let origin = display::text(&report.origin.to_string()).into_owned();
    let url = report
        .job
        .as_ref()
        .map(|job| display::url(&job.url))
        .unwrap_or_default();
    let path = report
        .path()
        .map(|p| display::text(&p.to_string_lossy()).into_owned())
        .unwrap_or_default();
    let what = match &report.outcome {
        Outcome::Downloaded => format!(
            "downloaded {path} ({}, {:.2} s)",
            display::bytes(report.bytes),
            report.elapsed.as_secs_f32()
        ),
        Outcome::Skipped(SkipReason::Exists) => format!("skipped: {path} already exists"),
        Outcome::Skipped(SkipReason::Duplicate(first)) => {
            format!("skipped: duplicate of {}", display::text(&first.to_string()))
        }
        Outcome::Unchanged => format!("unchanged: {path}"),
        Outcome::Planned => format!("would write {path}"),
        Outcome::Failed(problem) => format!("failed: {problem}"),
    };
    format!("{origin}: {url}: {what}")
}

fn overall_style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} files  {msg}{eta_once_known}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} files  {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("eta_once_known", eta_once_known)
        .progress_chars("=> ")
}

/// `  ETA 16s`, once a file has finished: before that there is no rate to
/// estimate from, and indicatif would show a confident `ETA 0s`.
fn eta_once_known(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    if state.pos() > 0 {
        let _ = write!(out, "  ETA {:#}", HumanDuration(state.eta()));
    }
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template("  {wide_msg} {bytes:>10}/{total_bytes:<10} {prefix:>12}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    #[test]
    fn overall_bar_shows_an_eta_only_once_a_file_finished() {
        let term = InMemoryTerm::new(2, 120);
        let bar =
            ProgressBar::with_draw_target(Some(6), ProgressDrawTarget::term_like(Box::new(term.clone())));
        bar.set_style(overall_style(true));
        bar.set_message("1.0 MiB");
        bar.force_draw();
        assert!(!term.contents().contains("ETA"), "{}", term.contents());
        assert!(
            term.contents().contains("0/6 files  1.0 MiB"),
            "{}",
            term.contents()
        );
        bar.set_position(3);
        bar.force_draw();
        assert!(
            term.contents().contains("3/6 files  1.0 MiB  ETA "),
            "{}",
            term.contents()
        );
    }
}
