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
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cancel::Cancel;
use crate::display;
use crate::error::FetchError;
use crate::event::{EntryReport, Event, JobInfo, Live, Observer, Outcome, Problem, SkipReason};
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
    /// Bytes of this run sampled each tick over the last [`RATE_WINDOW`],
    /// oldest first: the recent rate the ETA divides by.
    samples: VecDeque<(Instant, u64)>,
    /// The input's lines counted ahead, until the exact count is known.
    expected: Option<u64>,
    /// From a pipe: the entries read so far, as last told.
    read_so_far: Option<u64>,
    /// Each worker's entry, in every mode (the status line counts their bytes).
    running: Vec<Option<Arc<JobInfo>>>,
    /// `--progress-interval` without bars: how often, and when the last
    /// status line was due.
    status: Option<(Duration, Instant)>,
}

/// How far back the ETA's rate looks: long enough to smooth a stall of a
/// second, short enough to follow a change of pace.
const RATE_WINDOW: Duration = Duration::from_secs(5);

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
            samples: VecDeque::new(),
            expected: None,
            read_so_far: None,
            running: (0..jobs).map(|_| None).collect(),
            status: None,
            color: mode == Mode::Bars && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Print a status line (files done/total, bytes, rate) every `interval`,
    /// for a run whose stderr is not a terminal (`--progress-interval`).
    pub fn status_every(&mut self, interval: Option<Duration>) {
        self.status = interval.map(|every| (every, Instant::now()));
    }

    /// The status line: `fetchq: 3/25 files, 12.0 MiB, 1.0 MiB/s`.
    fn status_line(&self, live: &Live) -> String {
        let in_flight: u64 = live
            .slots
            .iter()
            .zip(&self.running)
            .filter(|(_, job)| job.is_some())
            .map(|(slot, _)| slot.received())
            .sum();
        let bytes = self.finished_bytes + in_flight;
        let files = match self.entries.or(self.expected) {
            Some(total) => format!("{}/{total}", self.finished),
            None => self.finished.to_string(),
        };
        format!(
            "{PROGRAM}: {files} files, {}, {}/s",
            display::bytes(bytes),
            display::bytes(per_second(bytes, self.started))
        )
    }

    /// The input's lines counted ahead become the overall bar's total; from
    /// a pipe, the entries read so far show as `/12+` (more may come).
    fn input_seen(&mut self, entries: u64, lines: Option<u64>) {
        if self.entries.is_some() {
            return;
        }
        self.expected = lines;
        match (lines, &self.bars) {
            (Some(lines), Some(bars)) => {
                bars.overall.set_length(lines);
                bars.overall.set_style(overall_style(true));
            }
            (Some(_), None) => {}
            (None, _) => self.read_so_far = Some(entries),
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
        if let Some(job) = &report.job {
            for running in &mut self.running {
                if running.as_ref().is_some_and(|j| Arc::ptr_eq(j, job)) {
                    *running = None;
                }
            }
        }
        self.finished += 1;
        self.finished_bytes += report.transferred;
        if let Some(line) = FailureLine::from_report(report) {
            if self.mode == Mode::Bars {
                if self.verbose {
                    self.line(&describe(report), true);
                }
                // Entries cut short by Ctrl-C are counted as interrupted, not listed.
                if !matches!(
                    report.outcome,
                    Outcome::Failed(Problem::Fetch(FetchError::Cancelled))
                ) {
                    self.failures.add(report, line);
                }
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
                if let Some(running) = self.running.get_mut(*worker) {
                    *running = Some(job.clone());
                }
                if let Some(bars) = self.bars.as_mut() {
                    let bar = bars.multi.add(ProgressBar::no_length());
                    bar.set_style(file_style(false));
                    bar.set_message(elide(&display::text(&job.path.to_string_lossy()), NAME_WIDTH));
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
            Event::SourceSetAside { job, source, error } => {
                if self.verbose {
                    self.line(
                        &format!(
                            "{}: {}: source set aside: {}",
                            display::text(&job.origin.to_string()),
                            display::url(job.source(*source)),
                            display::text(&display::chain(error)),
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
            Event::InputSeen { entries, lines } => self.input_seen(*entries, *lines),
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
        if let Some((every, last)) = self.status
            && last.elapsed() >= every
        {
            self.status = Some((every, Instant::now()));
            self.line(&self.status_line(live), false);
        }
        let Some(bars) = &self.bars else {
            return;
        };
        let mut in_flight = 0;
        let mut left = Left::default();
        for (slot, active) in live.slots.iter().zip(&bars.active) {
            if let Some((_, bar, since)) = active {
                let (done, total) = slot.read();
                left.active += 1;
                if let Some(total) = total {
                    if bar.length().is_none() {
                        bar.set_style(file_style(true));
                    }
                    bar.set_length(total);
                    left.known_bytes = Some(left.known_bytes.unwrap_or(0) + total.saturating_sub(done));
                    left.known_files += 1;
                    left.known_total += total;
                }
                bar.set_position(done);
                // The rate of this run's bytes: a part continued with `-c`
                // was on disk already.
                let received = slot.received();
                let rate = display::bytes(per_second(received, *since));
                bar.set_prefix(match slot.connections() {
                    1 => format!("{rate}/s"),
                    n => format!("{rate}/s ×{n}"),
                });
                in_flight += received;
            }
        }
        if let Some(told) = self.read_so_far
            && self.entries.is_none()
        {
            // The feeder tells the count now and then; entries that started
            // or finished since were read too.
            let read = told.max(self.finished + left.active);
            bars.overall.set_prefix(format!("/{read}+"));
        }
        let bytes = self.finished_bytes + in_flight;
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let failed = match self.failures.count {
            0 => String::new(),
            n => format!("  {n} failed"),
        };
        let eta = self.entries.or(self.expected).and_then(|entries| {
            left.files = entries.saturating_sub(self.finished);
            left.finished_files = self.finished;
            left.finished_bytes = self.finished_bytes;
            left.byte_rate = recent_rate(&self.samples);
            left.file_rate = self.finished as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            left.eta()
        });
        let eta = eta.map_or_else(String::new, |eta| format!("  ETA {:#}", HumanDuration(eta)));
        bars.overall.set_message(format!(
            "{}  {}/s{failed}{eta}",
            display::bytes(bytes),
            display::bytes(per_second(bytes, self.started))
        ));
    }
}

/// Bytes per second between the oldest and newest sample; none over less
/// than half a second, too short to say.
fn recent_rate(samples: &VecDeque<(Instant, u64)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some((t0, b0)), Some((t1, b1))) => {
            let secs = t1.duration_since(*t0).as_secs_f64();
            if secs < 0.5 {
                0.0
            } else {
                b1.saturating_sub(*b0) as f64 / secs
            }
        }
        _ => 0.0,
    }
}

/// What is left of a run, for its ETA.
#[derive(Debug, Default)]
struct Left {
    /// Entries not finished (active or not started).
    files: u64,
    /// Entries being downloaded.
    active: u64,
    /// Bytes still to come for the active entries whose length is known;
    /// `None` when no length is known.
    known_bytes: Option<u64>,
    /// Active entries whose length is known, and their lengths' sum.
    known_files: u64,
    known_total: u64,
    /// Entries finished, and the bytes they transferred.
    finished_files: u64,
    finished_bytes: u64,
    /// Recent bytes per second, and files per second over the run.
    byte_rate: f64,
    file_rate: f64,
}

impl Left {
    /// From bytes where any length is known: the bytes left of known
    /// lengths, plus, for each entry not yet started, the mean size of the
    /// files seen, over the recent byte rate. From files only when no length
    /// is known. `None` before there is a rate to divide by.
    fn eta(&self) -> Option<Duration> {
        if self.files == 0 {
            return None;
        }
        if let Some(known) = self.known_bytes {
            if self.byte_rate <= 0.0 {
                return None;
            }
            let waiting = self.files.saturating_sub(self.active);
            let seen = self.known_files + self.finished_files;
            let mean = (self.known_total + self.finished_bytes) as f64 / seen.max(1) as f64;
            let bytes = known as f64 + waiting as f64 * mean;
            return Some(Duration::from_secs_f64(bytes / self.byte_rate));
        }
        (self.file_rate > 0.0).then(|| Duration::from_secs_f64(self.files as f64 / self.file_rate))
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
        "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} files  {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos}{prefix} files  {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Most characters of a file's name on its bar: what is left of 120
/// columns beside a bar, percentage, sizes and rate, with room to spare.
const NAME_WIDTH: usize = 40;

/// A file's bar: with a bar and percentage once its length is known.
fn file_style(known_length: bool) -> ProgressStyle {
    let template = if known_length {
        "  {wide_msg} [{bar:20}] {percent:>3}% {bytes:>10}/{total_bytes:<10} {prefix:>12}"
    } else {
        "  {wide_msg} {bytes:>10}/{total_bytes:<10} {prefix:>12}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `name` in at most `max` characters, cut in the middle so the start and
/// the end (version, extension) both show:
/// `ubuntu-24.04.1-live-…ually-long-name.iso`. The end gets half the room,
/// and at least the extension if it has at most 10 characters.
fn elide(name: &str, max: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= max || max < 3 {
        return name.to_string();
    }
    let extension = chars
        .iter()
        .rposition(|&c| c == '.')
        .map(|dot| chars.len() - dot)
        .filter(|&len| len <= 10)
        .unwrap_or(0);
    let tail = extension.max((max - 1) / 2).min(max - 2);
    let head = max - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LineError;
    use crate::event::{Origin, Slot};
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

    /// Worker 0 started an entry saved as `path`.
    fn started(path: &str) -> Event {
        let job = Arc::new(JobInfo {
            origin: Origin {
                source: "l".into(),
                line: 1,
            },
            url: url::Url::parse("http://127.0.0.1/x").expect("a URL"),
            path: path.into(),
            named_by_url: true,
            mirrors: Vec::new(),
            checksums: Default::default(),
            headers: Vec::new(),
            ticket: None,
        });
        Event::Started { worker: 0, job }
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
        let cut_short = EntryReport::without_request(
            Origin {
                source: "a.txt".into(),
                line: 7,
            },
            None,
            Outcome::Failed(Problem::Fetch(FetchError::Cancelled)),
        );
        view.event(&Event::Finished(cut_short), &live);
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
    fn eta_comes_from_bytes_where_lengths_are_known_else_from_files() {
        let mib = 1 << 20;
        // 6 of 10 tiny files done in 3 s, 4 × 30 MiB at 2 MiB/s, 5 MiB of
        // each in: 100 MiB left, 50 s, not the 2 s files would say.
        let big = Left {
            files: 4,
            active: 4,
            known_bytes: Some(4 * 25 * mib),
            known_files: 4,
            known_total: 4 * 30 * mib,
            finished_files: 6,
            finished_bytes: 600,
            byte_rate: 2.0 * mib as f64,
            file_rate: 2.0,
        };
        let secs = |left: &Left| left.eta().map(|d| d.as_secs_f64().round() as u64);
        assert_eq!(secs(&big), Some(50));
        // Two of them not started yet: each counts as the mean size seen.
        let waiting = Left {
            active: 2,
            known_bytes: Some(2 * 25 * mib),
            known_files: 2,
            known_total: 2 * 30 * mib,
            ..big
        };
        let mean = (60 * mib + 600) as f64 / 8.0;
        let want = ((50 * mib) as f64 + 2.0 * mean) / (2.0 * mib as f64);
        assert_eq!(secs(&waiting), Some(want.round() as u64));
        // No rate yet: no ETA rather than a confident 0 s.
        assert_eq!(
            secs(&Left {
                byte_rate: 0.0,
                ..waiting
            }),
            None
        );
        // No length known: files left over files per second.
        let unknown = Left {
            files: 4,
            active: 1,
            file_rate: 0.5,
            ..Left::default()
        };
        assert_eq!(secs(&unknown), Some(8));
        assert_eq!(
            secs(&Left {
                file_rate: 0.0,
                ..unknown
            }),
            None
        );
        assert_eq!(secs(&Left { files: 0, ..big }), None, "nothing left");
    }

    #[test]
    fn long_names_are_cut_in_the_middle_keeping_the_extension() {
        let name = "ubuntu-24.04.1-live-server-amd64-with-an-unusually-long-name.iso";
        let table = [
            ("short.iso", 40, "short.iso"),
            (name, 40, "ubuntu-24.04.1-live-…ually-long-name.iso"),
            (name, 12, "ubuntu…e.iso"),
            ("a.tar.gz-but-no-short-extension-here", 12, "a.tar.…-here"),
            ("x.verylongextension", 8, "x.ve…ion"),
        ];
        for (name, max, want) in table {
            let got = elide(name, max);
            assert_eq!(got, want, "{name} in {max}");
            assert!(got.chars().count() <= max);
        }
    }

    #[test]
    fn file_bars_show_a_bar_and_percentage_once_the_length_is_known() {
        let term = InMemoryTerm::new(4, 120);
        let mut view = bars_in(&term, 1);
        let live = live(1);
        view.event(
            &started("ubuntu-24.04.1-live-server-amd64-with-an-unusually-long-name.iso"),
            &live,
        );
        live.slots[0].begin(0);
        live.slots[0].begin_body(0, Some(4 << 20));
        live.slots[0].advance(1 << 20);
        view.tick(&live);
        if let Some((_, bar, _)) = view.bars.as_ref().and_then(|b| b.active[0].as_ref()) {
            bar.force_draw();
        }
        let screen = term.contents();
        assert!(
            screen.contains("ubuntu-24.04.1-live-…ually-long-name.iso"),
            "{screen}"
        );
        assert!(screen.contains("]  25%"), "{screen}");
        assert!(screen.contains("[====="), "{screen}");
    }

    #[test]
    fn a_split_download_shows_its_connection_count() {
        let term = InMemoryTerm::new(4, 120);
        let mut view = bars_in(&term, 1);
        let live = live(1);
        view.event(&started("x.iso"), &live);
        live.slots[0].begin(0);
        live.slots[0].begin_body(0, Some(64 << 20));
        live.slots[0].set_connections(1);
        view.tick(&live);
        let draw = |view: &Terminal| {
            if let Some((_, bar, _)) = view.bars.as_ref().and_then(|b| b.active[0].as_ref()) {
                bar.force_draw();
            }
            term.contents()
        };
        assert!(!draw(&view).contains('×'), "one connection: no count");
        live.slots[0].set_connections(8);
        view.tick(&live);
        let screen = draw(&view);
        assert!(screen.contains("/s ×8"), "{screen}");
    }

    #[test]
    fn overall_total_is_the_lines_counted_ahead_or_grows_from_a_pipe() {
        let draw = |lines: Option<u64>| {
            let term = InMemoryTerm::new(4, 120);
            let mut view = bars_in(&term, 1);
            let live = live(1);
            view.event(&Event::InputSeen { entries: 12, lines }, &live);
            view.tick(&live);
            if let Some(bars) = &view.bars {
                bars.overall.force_draw();
            }
            term.contents()
        };
        let counted = draw(Some(25));
        assert!(counted.contains("] 0/25 files"), "{counted}");
        let growing = draw(None);
        assert!(growing.contains("] 0/12+ files"), "{growing}");
    }

    #[test]
    fn overall_bar_shows_files_of_a_known_total() {
        let term = InMemoryTerm::new(2, 120);
        let bar =
            ProgressBar::with_draw_target(Some(6), ProgressDrawTarget::term_like(Box::new(term.clone())));
        bar.set_style(overall_style(true));
        bar.set_message("1.0 MiB  2.0 MiB/s  ETA 5s");
        bar.set_position(3);
        bar.force_draw();
        assert!(
            term.contents().contains("3/6 files  1.0 MiB  2.0 MiB/s  ETA 5s"),
            "{}",
            term.contents()
        );
    }
}
