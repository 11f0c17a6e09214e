//! What a person sees on stderr while a run goes and when it ends. The only
//! code that touches indicatif.
//!
//! Three modes, chosen by the binary:
//! - [`Mode::Bars`] (stderr is a terminal): one overall bar (files done/total,
//!   bytes, rate, failures so far, ETA) and one bar per active download, never
//!   more than workers. Each failure is printed once, after the summary, in
//!   list order: what a person scrolling back wants is one list sorted as the
//!   list file is, not the same lines twice in the order downloads ended.
//!   Log lines (`-v`) go through `MultiProgress::println` so bars never tear.
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
    /// With bars: the failures to list at the end (see [`Failures`]).
    failures: Failures,
}

/// Most failures kept for the closing list; the count is always exact.
const KEPT_FAILURES: usize = 1000;

/// Failures kept to be listed once, in list order: by list (in the order
/// the lists were first seen in events, which is the order they are read)
/// and line.
#[derive(Default)]
struct Failures {
    sources: Vec<Arc<str>>,
    kept: Vec<(usize, u64, FailureLine)>,
    count: u64,
}

impl Failures {
    fn see(&mut self, source: &Arc<str>) -> usize {
        match self.sources.iter().position(|s| s == source) {
            Some(rank) => rank,
            None => {
                self.sources.push(source.clone());
                self.sources.len() - 1
            }
        }
    }

    fn add(&mut self, report: &EntryReport, line: FailureLine) {
        self.count += 1;
        if self.kept.len() < KEPT_FAILURES {
            let rank = self.see(&report.origin.source);
            self.kept.push((rank, report.origin.line, line));
        }
    }

    /// The closing list's lines, in list order.
    fn lines(&mut self) -> Vec<String> {
        self.kept.sort_by_key(|(rank, line, _)| (*rank, *line));
        let mut lines: Vec<String> = self.kept.iter().map(|(_, _, f)| format!("  {f}")).collect();
        let more = self.count.saturating_sub(self.kept.len() as u64);
        if more > 0 {
            lines.push(format!("  ... and {more} more"));
        }
        lines
    }
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
        Terminal::drawing_to(mode, verbose, jobs, ProgressDrawTarget::stderr_with_hz(10))
    }

    /// A view whose bars draw to `target` (stderr, or a test's terminal).
    fn drawing_to(mode: Mode, verbose: bool, jobs: usize, target: ProgressDrawTarget) -> Terminal {
        let bars = (mode == Mode::Bars).then(|| {
            let multi = MultiProgress::with_draw_target(target);
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
            failures: Failures::default(),
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
        let text = if red {
            Cow::Owned(self.red(&text).into_owned())
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

    /// `text` in red where colour is on.
    fn red<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.color {
            Cow::Owned(format!("\x1b[31m{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }

    fn finished(&mut self, report: &EntryReport) {
        self.failures.see(&report.origin.source);
        self.finished += 1;
        self.finished_bytes += report.transferred;
        if let Some(line) = FailureLine::from_report(report) {
            if self.mode == Mode::Bars {
                if self.verbose {
                    self.line(&describe(report), true);
                }
                self.failures.add(report, line);
            } else {
                self.line(&line.to_string(), true);
            }
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
                let lines = self.failures.lines();
                if !lines.is_empty() {
                    let _ = writeln!(err, "failed:");
                    for line in lines {
                        let _ = writeln!(err, "{}", self.red(&line));
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
                self.failures.see(&job.origin.source);
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
        let failed = match self.failures.count {
            0 => String::new(),
            n => format!("  {n} failed"),
        };
        bars.overall.set_message(format!(
            "{}  {}/s{failed}",
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
    use crate::error::LineError;
    use crate::event::{Origin, Problem, Slot};
    use indicatif::InMemoryTerm;

    fn bars_in(term: &InMemoryTerm, jobs: usize) -> Terminal {
        let mut view = Terminal::drawing_to(
            Mode::Bars,
            false,
            jobs,
            ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        view.color = false;
        view
    }

    fn live(jobs: usize) -> Live {
        Live {
            slots: (0..jobs).map(|_| Slot::default()).collect(),
        }
    }

    fn bad_line(source: &str, line: u64) -> Event {
        Event::Finished(EntryReport::without_request(
            Origin {
                source: source.into(),
                line,
            },
            None,
            Outcome::Failed(Problem::Line {
                text: format!("bad{line}"),
                error: LineError::NoHost,
            }),
        ))
    }

    #[test]
    fn failures_show_as_a_count_while_bars_run_and_once_at_the_end_in_list_order() {
        let term = InMemoryTerm::new(10, 120);
        let mut view = bars_in(&term, 1);
        let live = live(1);
        for (source, line) in [("a.txt", 9), ("a.txt", 2), ("b.txt", 1), ("a.txt", 5)] {
            view.event(&bad_line(source, line), &live);
        }
        if let Some(bars) = &view.bars {
            bars.overall.force_draw();
        }
        let screen = term.contents();
        assert!(
            !screen.contains("bad"),
            "no failure line while bars run:\n{screen}"
        );
        assert!(screen.contains("4 failed"), "the bar counts failures:\n{screen}");
        let lines = view.failures.lines();
        let origins: Vec<&str> = lines
            .iter()
            .map(|l| l.trim().split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(origins, ["a.txt:2", "a.txt:5", "a.txt:9", "b.txt:1"]);
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("  ") && l.contains("URL has no host"))
        );
    }

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
