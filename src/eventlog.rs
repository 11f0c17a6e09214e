//! `--log FILE`: one line per event, appended, each with an RFC 3339 UTC
//! timestamp, for cron jobs that keep a history. Lines are written as events
//! arrive, so a log of a run that is killed is still complete up to the kill.
//! Every line passes through [`display::text`] as a whole, so no part of it
//! (a list's name, a URL, a path, a server's message) can carry credentials,
//! a control character or a bidi control into the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::display;
use crate::event::{Event, Live, Observer};
use crate::report::{FailureLine, Summary};

/// Appends event lines to a file.
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Open `path` for appending, creating it and its folder if missing, as
    /// `--dir` is created: a cron line such as `--log /srv/mirror/fetchq.log
    /// -d /srv/mirror` must work on its first night.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog { file })
    }

    fn line(&mut self, text: &str) {
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let text = display::text(text);
        // One write per line: with O_APPEND, lines of concurrent runs do not interleave.
        let _ = self.file.write_all(format!("{stamp} {text}\n").as_bytes());
    }

    /// Log the run's start.
    pub fn start(&mut self, what: &str) {
        self.line(&format!("start {what}"));
    }

    /// Log the closing summary.
    pub fn finish(&mut self, summary: &Summary) {
        self.line(&format!(
            "end exit={} {}",
            summary.exit().code(),
            summary.headline()
        ));
    }
}

impl Observer for EventLog {
    fn event(&mut self, event: &Event, _: &Live) {
        let text = match event {
            Event::Started { job, .. } => format!(
                "started {}: {} -> {}",
                job.origin,
                display::url(&job.url),
                display::text(&job.path.to_string_lossy())
            ),
            Event::Retrying {
                job,
                attempt,
                error,
                wait,
                ..
            } => format!(
                "retry {}: {}: attempt {attempt} failed: {}; next in {:.1} s",
                job.origin,
                display::url(&job.url),
                display::text(&display::chain(error)),
                wait.as_secs_f32()
            ),
            Event::SourceSetAside { job, source, error } => format!(
                "source set aside {}: {}: {}",
                job.origin,
                display::url(job.source(*source)),
                display::text(&display::chain(error))
            ),
            Event::Resume { job, from, decision } => format!(
                "resume {}: {}: {from} bytes in {}.part: {decision}",
                job.origin,
                display::url(&job.url),
                display::text(&job.path.to_string_lossy())
            ),
            Event::Finished(report) => match (&report.outcome, FailureLine::from_report(report)) {
                (_, Some(failure)) => format!("failed {failure}"),
                (outcome, None) => {
                    let word = outcome.word();
                    let (url, path) = report.job.as_ref().map_or((String::new(), String::new()), |j| {
                        (
                            display::url(&j.url),
                            display::text(&j.path.to_string_lossy()).into_owned(),
                        )
                    });
                    format!(
                        "{word} {}: {url} -> {path} ({} bytes, {} attempt{}, {} ms)",
                        report.origin,
                        report.bytes,
                        report.attempts,
                        if report.attempts == 1 { "" } else { "s" },
                        report.elapsed.as_millis()
                    )
                }
            },
            Event::InputDone { entries } => format!("input done: {entries} entries"),
            Event::InputSeen {
                lines: Some(lines), ..
            } => format!("input counted: {lines} lines"),
            Event::InputSeen { lines: None, .. } => return,
        };
        self.line(&text);
    }
}
