//! `--save-failed FILE`: the entries of a run that failed or were
//! interrupted, written back in the list format after the run, so the next
//! run (`fetchq -c --save-failed FILE FILE`) retries exactly those.
//!
//! Each line is the entry's URLs, the path it had (relative to the output
//! directory, quoted as the list parser reads it), its checksums (the line's
//! and those `--checksums` gave for its path) and its `header=`s. The path
//! is pinned so that a retry gets the name the entry had, not the first free
//! one in a smaller list; an entry named by `--content-disposition` from the
//! server's answer gets no path, so the server names it again. Invalid lines
//! are left out: no retry can mend them. The file is replaced atomically, and
//! written even when empty, so a retry loop ends.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::FetchError;
use crate::event::{Event, JobInfo, Live, Observer, Outcome, Problem};
use crate::input::write_line;

/// Collects the failed and interrupted entries of a run as list lines.
pub(crate) struct FailedList {
    path: PathBuf,
    /// `--content-disposition`: names chosen from the URL may have yielded to
    /// the server's, so they are not pinned.
    server_names: bool,
    /// Each entry's list, line number and list line, in completion order.
    lines: Vec<(Arc<str>, u64, String)>,
}

impl FailedList {
    /// A list to write to `path`; `server_names` is `--content-disposition`.
    pub(crate) fn new(path: PathBuf, server_names: bool) -> FailedList {
        FailedList {
            path,
            server_names,
            lines: Vec::new(),
        }
    }

    /// The list line that asks for `job` again.
    fn line(&self, job: &JobInfo) -> String {
        let pinned = !(self.server_names && job.named_by_url);
        let out = job.path.to_str().filter(|out| pinned && !out.is_empty());
        write_line(&job.url, &job.mirrors, out, &job.checksums, &job.headers)
    }

    /// The lines in list order: lists in the order their first entry
    /// finished (the order they were read, but for stragglers), lines by
    /// number within a list.
    fn in_list_order(&self) -> Vec<&str> {
        let mut sources: Vec<&Arc<str>> = Vec::new();
        let mut keyed: Vec<(usize, u64, &str)> = Vec::with_capacity(self.lines.len());
        for (source, line, text) in &self.lines {
            let rank = match sources.iter().position(|s| *s == source) {
                Some(rank) => rank,
                None => {
                    sources.push(source);
                    sources.len() - 1
                }
            };
            keyed.push((rank, *line, text));
        }
        keyed.sort_by_key(|&(rank, line, _)| (rank, line));
        keyed.into_iter().map(|(_, _, text)| text).collect()
    }

    /// Write the lines to the file: to a temporary file beside it, then
    /// renamed over it.
    pub(crate) fn write(&self) -> Result<(), FetchError> {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let temp = self
            .path
            .with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let written = write_lines(&temp, &self.in_list_order()).and_then(|()| fs::rename(&temp, &self.path));
        written.map_err(|e| {
            let _ = fs::remove_file(&temp);
            FetchError::disk("cannot write", self.path.clone(), e)
        })
    }

    /// The file it writes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn write_lines(path: &Path, lines: &[&str]) -> io::Result<()> {
    let mut file = io::BufWriter::new(File::create(path)?);
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

impl Observer for FailedList {
    fn event(&mut self, event: &Event, _: &Live) {
        if let Event::Finished(report) = event
            && let Outcome::Failed(Problem::Fetch(_)) = report.outcome
            && let Some(job) = &report.job
        {
            let line = self.line(job);
            self.lines
                .push((job.origin.source.clone(), job.origin.line, line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{Algorithm, Checksum, Checksums};
    use crate::event::Origin;

    fn job(url: &str, path: &str, named_by_url: bool, sha256: Option<[u8; 32]>) -> JobInfo {
        let mut checksums = Checksums::default();
        if let Some(digest) = sha256 {
            let hex = crate::hex::encode(&digest);
            checksums.add(Checksum::from_hex(Algorithm::Sha256, &hex).unwrap());
        }
        JobInfo {
            origin: Origin {
                source: "list".into(),
                line: 1,
            },
            url: url.parse().unwrap(),
            mirrors: Vec::new(),
            path: path.into(),
            named_by_url,
            checksums,
            headers: Vec::new(),
            ticket: None,
        }
    }

    #[test]
    fn a_line_keeps_every_source_checksum_and_header() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let text = format!(
            "http://h/a.iso http://m/a.iso \"my=file.iso\" md5={md5} header=\"X-Token: a b\" header=X-B:c"
        );
        let line = crate::input::parse_line(&text).unwrap().unwrap();
        let mut job = job("http://h/a.iso", "my=file.iso", false, None);
        job.mirrors = line.mirrors.clone();
        job.checksums = line.checksums.clone();
        job.headers = line.headers.clone();
        let written = FailedList::new("x".into(), false).line(&job);
        assert_eq!(
            written,
            format!(
                "http://h/a.iso http://m/a.iso \"my=file.iso\" md5={md5} header=\"X-Token: a b\" header=\"X-B: c\""
            )
        );
        assert_eq!(crate::input::parse_line(&written).unwrap().unwrap(), line);
    }

    #[test]
    fn lines_pin_the_path_unless_the_server_names_it() {
        let sum = Some([0xab; 32]);
        let hex = "ab".repeat(32);
        let table = [
            (
                false,
                job("http://h/a.bin", "a.bin", true, None),
                "http://h/a.bin a.bin".to_string(),
            ),
            (
                false,
                job("http://h/a.bin", "a-1.bin", true, None),
                "http://h/a.bin a-1.bin".into(),
            ),
            (
                false,
                job("http://h/x", "sub/my file.pdf", false, sum),
                format!("http://h/x \"sub/my file.pdf\" sha256={hex}"),
            ),
            (
                true,
                job("http://h/a.bin", "a.bin", true, None),
                "http://h/a.bin".into(),
            ),
            (
                true,
                job("http://h/a.bin", "b.bin", false, None),
                "http://h/a.bin b.bin".into(),
            ),
            (
                true,
                job("http://h/a.bin", "a.bin", true, sum),
                format!("http://h/a.bin sha256={hex}"),
            ),
        ];
        for (server_names, job, want) in table {
            let list = FailedList::new("x".into(), server_names);
            assert_eq!(list.line(&job), want, "{job:?}");
        }
    }

    #[test]
    fn lines_are_written_in_list_order() {
        let mut list = FailedList::new("x".into(), false);
        for (source, line) in [("b", 3), ("a", 2), ("b", 1), ("a", 1), ("c", 0)] {
            list.lines.push((source.into(), line, format!("{source}{line}")));
        }
        assert_eq!(list.in_list_order(), ["b1", "b3", "a1", "a2", "c0"]);
    }
}
