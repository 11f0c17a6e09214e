//! `--json`: one JSON object per finished entry on stdout, as it finishes,
//! then one summary object (newline-delimited JSON, so `jq` can read the
//! stream while it is written). Field names are stable; README lists them.
//!
//! Every object has `"type"`: `"entry"` or `"summary"`. URLs have their
//! credentials removed, as everywhere fetchq prints.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::event::{EntryReport, Event, Outcome, Problem, SkipReason};
use crate::messages::StdoutError;
use crate::pool::{Live, Observer};
use crate::report::Summary;

/// Writes the NDJSON stream.
pub struct JsonLines<W: Write> {
    out: W,
    dir: std::path::PathBuf,
    /// Set after a write error: stop writing, keep downloading (see
    /// [`crate::messages`] for what each error means).
    stopped: Option<StdoutError>,
}

impl<W: Write> JsonLines<W> {
    /// Write to `out`; paths are shown joined to the output dir `dir`.
    pub fn new(out: W, dir: &Path) -> JsonLines<W> {
        JsonLines {
            out,
            dir: dir.to_path_buf(),
            stopped: None,
        }
    }

    fn write(&mut self, value: &Value) {
        if self.stopped.is_some() {
            return;
        }
        let result = serde_json::to_writer(&mut self.out, value)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(e) = result {
            self.stopped = Some(StdoutError::from_io(e));
        }
    }

    /// Why the stream stopped early, if it did.
    pub fn stopped(&self) -> Option<&StdoutError> {
        self.stopped.as_ref()
    }

    /// Write the closing summary object.
    pub fn finish(&mut self, summary: &Summary) {
        let value = json!({
            "type": "summary",
            "downloaded": summary.downloaded,
            "skipped": summary.skipped,
            "unchanged": summary.unchanged,
            "planned": summary.planned,
            "failed": summary.failed,
            "interrupted_entries": summary.interrupted_entries,
            "not_started": summary.not_started,
            "bytes": summary.bytes,
            "elapsed_ms": summary.elapsed.as_millis() as u64,
            "interrupted": summary.interrupted.is_some(),
            "exit_code": summary.exit().code(),
        });
        self.write(&value);
    }
}

/// The JSON object for one finished entry.
pub fn entry_json(report: &EntryReport, dir: &Path) -> Value {
    let (outcome, reason) = match &report.outcome {
        Outcome::Downloaded => ("downloaded", None),
        Outcome::Skipped(SkipReason::Exists) => ("skipped", Some("exists".to_string())),
        Outcome::Skipped(SkipReason::Duplicate(first)) => ("skipped", Some(format!("duplicate of {first}"))),
        Outcome::Unchanged => ("unchanged", None),
        Outcome::Planned => ("planned", None),
        Outcome::Failed(_) => ("failed", None),
    };
    let (error_kind, error) = match &report.outcome {
        Outcome::Failed(Problem::Line { error, .. }) => (Some("invalid_line"), Some(error.to_string())),
        Outcome::Failed(Problem::Fetch(error)) => (Some(error.kind()), Some(crate::display::chain(error))),
        _ => (None, None),
    };
    let (url, path) = match (&report.job, &report.outcome) {
        (_, Outcome::Failed(Problem::Line { text, .. })) => (Some(crate::display::line(text)), None),
        (Some(job), _) => {
            let path = report.path().map(|p| dir.join(p).to_string_lossy().into_owned());
            (Some(crate::display::url(&job.url)), path)
        }
        (None, _) => (None, None),
    };
    json!({
        "type": "entry",
        "source": &*report.origin.source,
        "line": report.origin.line,
        "url": url,
        "final_url": report.final_url.as_ref().map(crate::display::url),
        "path": path,
        "outcome": outcome,
        "reason": reason,
        "status": report.status,
        "bytes": report.bytes,
        "attempts": report.attempts,
        "elapsed_ms": report.elapsed.as_millis() as u64,
        "error_kind": error_kind,
        "error": error,
    })
}

impl<W: Write> Observer for JsonLines<W> {
    fn event(&mut self, event: &Event, _: &Live) {
        if let Event::Finished(report) = event {
            let value = entry_json(report, &self.dir);
            self.write(&value);
        }
    }
}
