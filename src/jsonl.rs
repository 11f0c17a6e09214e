//! `--json`: one JSON object per finished entry on stdout, as it finishes,
//! then one summary object (newline-delimited JSON, so `jq` can read the
//! stream while it is written). Field names are stable; README lists them.
//!
//! Every object has `"type"`: `"entry"` or `"summary"`. Every string in an
//! entry passes through [`display::redact`], so no URL or raw list line
//! carries credentials, as everywhere fetchq prints. Strings are otherwise
//! exact: JSON's own escapes keep control characters out of the stream
//! (serde_json writes `\u001b`), and [`to_writer`] writes the other
//! characters [`display::is_unsafe`] names (bidi controls, C1 controls, line
//! separators) as `\uNNNN` too, which a JSON reader decodes to the same
//! string, while a person who `cat`s or `tail -f`s the stream sees them
//! escaped instead of reordering the line.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{Value, json};
use url::Url;

use crate::display;

use crate::event::{EntryReport, Event, Live, Observer, Outcome, Problem};
use crate::messages::StdoutError;
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
        let result = to_writer(&mut self.out, value)
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
pub(crate) fn entry_json(report: &EntryReport, dir: &Path) -> Value {
    let outcome = report.outcome.word();
    let reason = match &report.outcome {
        Outcome::Skipped(reason) => Some(reason.to_string()),
        _ => None,
    };
    let (error_kind, error) = match &report.outcome {
        Outcome::Failed(Problem::Line { error, .. }) => (Some("invalid_line"), Some(error.to_string())),
        Outcome::Failed(Problem::Fetch(error)) => (Some(error.kind()), Some(display::chain(error))),
        _ => (None, None),
    };
    let (url, path) = match (&report.job, &report.outcome) {
        // An overlong line's text is not kept: null rather than "".
        (_, Outcome::Failed(Problem::Line { text, .. })) => {
            (Some(text.clone()).filter(|t| !t.is_empty()), None)
        }
        (Some(job), _) => {
            let path = report.path().map(|p| dir.join(p).to_string_lossy().into_owned());
            (Some(job.url.to_string()), path)
        }
        (None, _) => (None, None),
    };
    let mut value = json!({
        "type": "entry",
        "source": &*report.origin.source,
        "line": report.origin.line,
        "url": url,
        "final_url": report.final_url.as_ref().map(Url::to_string),
        "path": path,
        "outcome": outcome,
        "reason": reason,
        "status": report.status,
        "bytes": report.bytes,
        "attempts": report.attempts,
        "elapsed_ms": report.elapsed.as_millis() as u64,
        "error_kind": error_kind,
        "error": error,
    });
    // An entry with mirrors: every source and what became of it.
    if let (Some(job), Some(report)) = (&report.job, &report.sources) {
        let sources: Vec<Value> = (0..=job.mirrors.len())
            .map(|source| {
                let aside = report.set_aside.iter().find(|(index, _)| *index == source);
                let outcome = match aside {
                    Some(_) => "set_aside",
                    None if report.delivered_by == Some(source) => "delivered",
                    None => "unused",
                };
                json!({
                    "url": job.source(source).to_string(),
                    "outcome": outcome,
                    "error": aside.map(|(_, cause)| cause.clone()),
                })
            })
            .collect();
        value["sources"] = Value::Array(sources);
    }
    redact_strings(&mut value);
    value
}

/// Every string in `value` through [`display::redact`].
fn redact_strings(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(redacted) = display::redact(s) {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(fields) => fields.values_mut().for_each(redact_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Write `value` as compact JSON with [`display::is_unsafe`] characters
/// `\u`-escaped (see the module doc). Every JSON fetchq prints goes through it.
pub fn to_writer<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(out, Escaping))
}

/// serde_json's compact format, plus `\uNNNN` for the characters it leaves raw
/// but a person must not see act (all of them in the Basic Multilingual Plane).
struct Escaping;

impl Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, out: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if display::is_unsafe(c) {
                out.write_all(&fragment.as_bytes()[start..i])?;
                write!(out, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        out.write_all(&fragment.as_bytes()[start..])
    }
}

impl<W: Write> Observer for JsonLines<W> {
    fn event(&mut self, event: &Event, _: &Live) {
        if let Event::Finished(report) = event {
            let value = entry_json(report, &self.dir);
            self.write(&value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_are_escaped_and_read_back_the_same() {
        let value = json!({ "path": "a\u{202E}gpj.exe \u{1b}[31m \u{85} \u{2028} caf\u{e9}" });
        let mut out = Vec::new();
        to_writer(&mut out, &value).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"path":"a\u202egpj.exe \u001b[31m \u0085 \u2028 caf\u00e9"}"#.replace("\\u00e9", "\u{e9}")
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn every_string_is_redacted() {
        let mut value = json!({ "url": "\"http://u:SECRET@h/x", "list": ["http://u:pa@ss@h:1/x a"], "n": 1 });
        redact_strings(&mut value);
        assert_eq!(
            value,
            json!({ "url": "\"http://***@h/x", "list": ["http://***@h:1/x a"], "n": 1 })
        );
    }
}
