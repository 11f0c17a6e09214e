//! The queue-side steps of `fetchq enqueue` and `fetchq status`: turning list
//! entries into [`QueueEntry`]s and pushing them in batches, and rendering a
//! [`QueueStatus`] as a table. Nothing here prints; the binary does.

use std::fmt::Write as _;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, bounded};

use super::{Queue, QueueEntry, QueueError, QueueStatus, RetryPolicy};
use crate::checksum::{Algorithm, Checksum};
use crate::error::{LineError, RunError};
use crate::event::Origin;
use crate::input::{Entry, ListInput, parse_line, quote_field, shown_line};
use crate::naming::OutPath;

/// Entries pushed per [`Queue::enqueue_many`] call.
const BATCH: usize = 500;
/// A partial batch is pushed once no new line arrived for this long, so a
/// slow producer's entries reach the workers without waiting for more.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Batches built ahead of the one being pushed: when Redis is the slower
/// side they pile up here and go to it together, pipelined.
const PUSH_AHEAD: usize = 4;

/// What `fetchq enqueue` did.
#[derive(Debug, Default)]
pub struct EnqueueReport {
    /// Entries pushed to `pending`.
    pub queued: u64,
    /// Entries whose id was already in the queue (or earlier in the input).
    pub duplicates: u64,
    /// Lines that are not usable entries.
    pub invalid: u64,
    /// A list that broke mid-way (entries read before the break were pushed).
    pub input_error: Option<RunError>,
}

/// The queue form of a parsed list entry. The fields are the canonical text
/// of what was parsed (the URL as the URL parser normalises it, OUT after the
/// same sanitising a local run applies, the checksum in lowercase hex), so
/// spellings of the same download share one id and a worker re-parses
/// exactly what a local run would have used.
pub(crate) fn queue_entry(entry: &Entry) -> QueueEntry {
    let out = entry.out.as_ref().map(|out| match out {
        OutPath::File(path) => path.to_string_lossy().into_owned(),
        OutPath::Dir(path) if path.as_os_str().is_empty() => "./".to_string(),
        OutPath::Dir(path) => format!("{}/", path.to_string_lossy()),
    });
    let sha256 = entry.checksums.get(Algorithm::Sha256);
    let mut queued = QueueEntry::new(
        entry.url.as_str(),
        out,
        sha256.map(Checksum::hex),
        &*entry.origin.source,
        entry.origin.line,
    );
    queued.extras = entry.mirrors.iter().map(|url| url.as_str().to_string()).collect();
    queued.extras.extend(
        entry
            .checksums
            .iter()
            .filter(|c| Some(*c) != sha256)
            .map(Checksum::to_string),
    );
    queued.extras.extend(
        entry
            .headers
            .iter()
            .map(|(name, value)| format!("header={}", quote_field(&format!("{name}: {value}")))),
    );
    queued
}

/// The list-entry form of a claimed queue entry, validated exactly like a
/// list line; `Err` carries what a local run would report for such a line.
pub(crate) fn list_entry(entry: &QueueEntry) -> Result<Entry, (Origin, LineError, String)> {
    let origin = Origin {
        source: entry.source.as_str().into(),
        line: entry.line,
    };
    let mut text = entry.url.clone();
    if let Some(out) = &entry.out {
        text.push(' ');
        text.push_str(&quote_field(out));
    }
    if let Some(sha256) = &entry.sha256 {
        text.push_str(" sha256=");
        text.push_str(sha256);
    }
    for field in &entry.extras {
        text.push(' ');
        text.push_str(field);
    }
    match parse_line(&text) {
        Ok(Some(line)) => Ok(Entry::new(origin, line)),
        Ok(None) => Err((origin, LineError::BadUrl("empty URL".into()), text)),
        Err(error) => Err((origin, error, shown_line(&text))),
    }
}

enum Item {
    Line(Result<Entry, (Origin, LineError, String)>),
    Broken(RunError),
}

/// Reads `lists` in order and enqueues every usable entry in batches, in
/// three steps that overlap: a reader thread parses lines, this thread turns
/// entries into queue entries (ids, JSON), and a sender thread pushes each
/// batch while the next one is built (Redis runs the enqueue script for
/// about two thirds of the time a batch takes). `invalid` is called for each
/// unusable line, in order. Connection trouble is retried per `retry`; a
/// queue error that persists is returned (batches pushed before it stay
/// queued).
pub fn enqueue_lists(
    queue: &mut Queue,
    lists: Vec<ListInput>,
    retry: &RetryPolicy,
    mut invalid: impl FnMut(&Origin, &LineError, &str),
    mut notify: impl FnMut(&QueueError, Duration) + Send,
) -> Result<EnqueueReport, QueueError> {
    let (tx, rx) = bounded::<Item>(4 * BATCH);
    let spawned = thread::Builder::new()
        .name("fetchq-enqueue-input".into())
        .spawn(move || {
            for list in lists {
                let mut open = true;
                let result = list.for_each_line(|item| {
                    open = tx.send(Item::Line(item)).is_ok();
                    open
                });
                if let Err(e) = result {
                    let _ = tx.send(Item::Broken(e));
                    return;
                }
                if !open {
                    return;
                }
            }
        });
    let mut report = EnqueueReport::default();
    let reader = match spawned {
        Ok(reader) => reader,
        Err(e) => {
            report.input_error = Some(RunError::Spawn(e));
            return Ok(report);
        }
    };
    let pushed = thread::scope(|scope| {
        let (batches, to_push) = bounded::<Vec<QueueEntry>>(PUSH_AHEAD);
        let sender = thread::Builder::new()
            .name("fetchq-enqueue-push".into())
            .spawn_scoped(scope, move || {
                let (mut queued, mut duplicates) = (0, 0);
                for mut batch in to_push.iter() {
                    // The batches that are ready go in one call, pipelined.
                    for more in to_push.try_iter().take(PUSH_AHEAD) {
                        batch.extend(more);
                    }
                    let flags = queue.with_retry_notify(retry, |q| q.enqueue_many(&batch), &mut notify)?;
                    let new = flags.iter().filter(|f| **f).count() as u64;
                    queued += new;
                    duplicates += flags.len() as u64 - new;
                }
                Ok::<_, QueueError>((queued, duplicates))
            });
        let sender = match sender {
            Ok(sender) => sender,
            Err(e) => {
                report.input_error = Some(RunError::Spawn(e));
                return Ok((0, 0));
            }
        };
        let mut batch: Vec<QueueEntry> = Vec::with_capacity(BATCH);
        // False once the sender has stopped (its error is returned by join).
        let flush = |batch: &mut Vec<QueueEntry>| {
            batch.is_empty()
                || batches
                    .send(std::mem::replace(batch, Vec::with_capacity(BATCH)))
                    .is_ok()
        };
        loop {
            let open = match rx.recv_timeout(FLUSH_AFTER) {
                Ok(Item::Line(Ok(entry))) => {
                    batch.push(queue_entry(&entry));
                    batch.len() < BATCH || flush(&mut batch)
                }
                Ok(Item::Line(Err((origin, error, text)))) => {
                    report.invalid += 1;
                    invalid(&origin, &error, &text);
                    true
                }
                Ok(Item::Broken(error)) => {
                    report.input_error = Some(error);
                    true
                }
                Err(RecvTimeoutError::Timeout) => flush(&mut batch),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if !open {
                break;
            }
        }
        flush(&mut batch);
        drop(batches);
        // A panic there is a bug: it goes on here.
        sender
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    drop(rx);
    let _ = reader.join();
    let (queued, duplicates) = pushed?;
    report.queued = queued;
    report.duplicates = duplicates;
    Ok(report)
}

/// `status` as a human table (for stdout).
pub fn status_table(status: &QueueStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "queue {}", status.queue);
    let rows = [
        ("pending", status.pending),
        ("processing", status.processing),
        ("done", status.done),
        ("failed", status.failed),
        ("seen", status.seen),
        ("bad", status.bad),
    ];
    for (name, n) in rows {
        if name == "bad" && n == 0 {
            continue;
        }
        let _ = writeln!(out, "  {name:<11}{n:>10}");
    }
    if status.workers.is_empty() {
        let _ = writeln!(out, "workers: none");
        return out;
    }
    let width = status
        .workers
        .iter()
        .map(|w| crate::display::text(&w.id).chars().count())
        .max()
        .unwrap_or(0)
        .max("WORKER".len());
    let _ = writeln!(
        out,
        "  {:<width$}  {:<5}  {:>10}",
        "WORKER", "STATE", "PROCESSING"
    );
    for w in &status.workers {
        let state = if w.alive { "alive" } else { "dead" };
        let note = if w.registered { "" } else { "  (not registered)" };
        let _ = writeln!(
            out,
            "  {:<width$}  {state:<5}  {:>10}{note}",
            crate::display::text(&w.id),
            w.processing
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::WorkerStatus;

    fn parsed(line: &str) -> Entry {
        let origin = Origin {
            source: "l.txt".into(),
            line: 3,
        };
        Entry::new(origin, parse_line(line).unwrap().unwrap())
    }

    #[test]
    fn entries_round_trip_through_the_queue_form() {
        let hex = "AB".repeat(32);
        for line in [
            "http://h/a.txt",
            "http://h/a.txt sub/b.txt",
            "http://h/a.txt sub/",
            "http://h/a.txt ./",
            &format!("HTTP://H/a sha256={hex}"),
            &format!("http://h/a x sha256={hex}"),
            r#"http://h/a "May 2026/say \"hi\".pdf""#,
            &format!(
                r#"http://h/a http://m1/a https://m2/a "a=b" md5={} sha256={hex} header="X-A: b \"c\"" header=Y:z"#,
                "cd".repeat(16)
            ),
        ] {
            let entry = parsed(line);
            let q = queue_entry(&entry);
            assert_eq!(list_entry(&q).unwrap(), entry, "{line}");
            assert_eq!((q.source.as_str(), q.line), ("l.txt", 3));
        }
        let q = queue_entry(&parsed(&format!("HTTP://H/a sha256={hex}")));
        assert_eq!(q.url, "http://h/a");
        assert_eq!(q.sha256, Some("ab".repeat(32)));
        assert_eq!(queue_entry(&parsed("http://h/a ./x/")).out.as_deref(), Some("x/"));
    }

    #[test]
    fn bad_queue_entries_fail_like_bad_lines() {
        let e = QueueEntry::new("ftp://h/a", None, None, "l.txt", 9);
        let (origin, error, text) = list_entry(&e).unwrap_err();
        assert_eq!(origin.to_string(), "l.txt:9");
        assert_eq!(error, LineError::Scheme("ftp".into()));
        assert_eq!(text, "ftp://h/a");
        let e = QueueEntry::new("", None, None, "l.txt", 1);
        assert!(matches!(list_entry(&e), Err((_, LineError::BadUrl(_), _))));
        let e = QueueEntry::new("http://h/a", Some("../x".into()), None, "l", 1);
        assert!(matches!(list_entry(&e), Err((_, LineError::OutEscapes, _))));
    }

    #[test]
    fn table_lists_counts_and_workers() {
        let s = QueueStatus {
            queue: "q".into(),
            pending: 3,
            processing: 2,
            done: 10,
            failed: 1,
            seen: 16,
            bad: 0,
            workers: vec![
                WorkerStatus {
                    id: "h:1:ab".into(),
                    alive: true,
                    registered: true,
                    processing: 2,
                },
                WorkerStatus {
                    id: "h:2:cd".into(),
                    alive: false,
                    registered: false,
                    processing: 0,
                },
            ],
        };
        let t = status_table(&s);
        assert!(t.contains("pending             3"), "{t}");
        assert!(t.contains("h:1:ab  alive           2"), "{t}");
        assert!(t.contains("dead"), "{t}");
        assert!(t.contains("(not registered)"), "{t}");
        assert!(!t.contains("bad"), "{t}");
    }
}
