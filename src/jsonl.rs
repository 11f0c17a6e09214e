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

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use serde_json::ser::Formatter;

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

    fn write(&mut self, value: &impl Serialize) {
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

/// One finished entry, as `--json` prints it and the queue records it in
/// `done` and `failed`. The fields are in alphabetical order, the order the
/// stream has always had; every string went through [`display::redact`].
/// Serialized straight from here: building a `serde_json::Value` map first
/// took an allocation per field, and a worker writes one for every entry.
#[derive(Serialize)]
pub(crate) struct EntryJson<'a> {
    attempts: u32,
    bytes: u64,
    elapsed_ms: u64,
    error: Option<String>,
    error_kind: Option<&'static str>,
    final_url: Option<String>,
    line: u64,
    outcome: &'static str,
    path: Option<String>,
    reason: Option<String>,
    source: Cow<'a, str>,
    /// An entry with mirrors: every source and what became of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<SourceJson>>,
    status: Option<u16>,
    #[serde(rename = "type")]
    kind: &'static str,
    url: Option<String>,
}

/// One source of an entry with mirrors.
#[derive(Serialize)]
struct SourceJson {
    error: Option<String>,
    outcome: &'static str,
    url: String,
}

/// `text` through [`display::redact`].
fn redacted(text: String) -> String {
    match display::redact(&text) {
        Cow::Owned(redacted) => redacted,
        Cow::Borrowed(_) => text,
    }
}

impl EntryJson<'_> {
    /// As one line of compact JSON (for the queue's results).
    pub(crate) fn to_line(&self) -> String {
        // Serializing a struct of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `report` as [`EntryJson`], paths joined to the output dir `dir`.
pub(crate) fn entry_json<'a>(report: &'a EntryReport, dir: &Path) -> EntryJson<'a> {
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
    let sources = match (&report.job, &report.sources) {
        (Some(job), Some(report)) => Some(
            (0..=job.mirrors.len())
                .map(|source| {
                    let aside = report.set_aside.iter().find(|(index, _)| *index == source);
                    let outcome = match aside {
                        Some(_) => "set_aside",
                        None if report.delivered_by == Some(source) => "delivered",
                        None => "unused",
                    };
                    SourceJson {
                        error: aside.map(|(_, cause)| redacted(cause.clone())),
                        outcome,
                        url: redacted(job.source(source).to_string()),
                    }
                })
                .collect(),
        ),
        _ => None,
    };
    EntryJson {
        attempts: report.attempts,
        bytes: report.bytes,
        elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        error: error.map(redacted),
        error_kind,
        final_url: report.final_url.as_ref().map(|u| redacted(u.to_string())),
        line: report.origin.line,
        outcome: report.outcome.word(),
        path: path.map(redacted),
        reason: reason.map(redacted),
        source: display::redact(&report.origin.source),
        sources,
        status: report.status,
        kind: "entry",
        url: url.map(redacted),
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
    use serde_json::Value;

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
    fn every_string_is_redacted_and_the_fields_keep_their_order() {
        use crate::error::LineError;
        use crate::event::Origin;
        let origin = Origin {
            source: "http://u:SECRET@h/list.txt".into(),
            line: 7,
        };
        let outcome = Outcome::Failed(Problem::Line {
            text: "\"http://u:SECRET@h/x".into(),
            error: LineError::Scheme("ftp://u:pa@ss@h:1/x".into()),
        });
        let mut report = EntryReport::without_request(origin, None, outcome);
        report.final_url = url::Url::parse("http://u:SECRET@h/y").ok();
        let line = entry_json(&report, Path::new("out")).to_line();
        assert!(!line.contains("SECRET") && !line.contains("pa@ss"), "{line}");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["url"], "\"http://***@h/x");
        assert_eq!(value["final_url"], "http://***@h/y");
        assert_eq!(value["source"], "http://***@h/list.txt");
        assert_eq!(
            value["path"],
            Value::Null,
            "a field without a value is null, not left out"
        );
        let keys: Vec<&str> = line
            .split("\":")
            .filter_map(|part| part.rsplit_once('"').map(|(_, key)| key))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "fields in alphabetical order: {line}");
        assert!(
            !keys.contains(&"sources"),
            "only an entry with mirrors lists its sources"
        );
    }
}
