//! What a `NAME.part` remembers about the response its bytes came from, and
//! whether `-c` may continue it.
//!
//! Continuing a part is only safe if the server still has the version the
//! part's bytes belong to; otherwise the result is an old prefix spliced to a
//! new tail. So a part carries a [`Record`] in an extended attribute
//! `user.fetchq.part` on the file itself: the entry's URL (as a SHA-256, so no
//! credential in it lands on disk), the response's ETag and Last-Modified,
//! and the full length. It is put on the file before the file gets its name
//! (or, for a part named from the start, before its first byte), so no
//! `NAME.part` of fetchq's ever exists without it where the file system keeps
//! user attributes; it survives SIGTERM and SIGKILL like the bytes do.
//!
//! `-c` continues a part only with `If-Range` (RFC 9110 §13.1.5) from its
//! record, so a server with another version answers 200 and the download
//! starts over. A part without a usable record (a file system without user
//! attributes, another tool's file, a record for another URL) starts over,
//! unless the entry's checksums will check the result.
//!
//! A part fetched over several connections (`--split`) has holes: its record
//! also lists the byte ranges on disk (`done`), and `-c` fetches only the
//! rest. Only bytes whose write had returned are listed, so the map never
//! claims more than a crash left.
//!
//! The attribute is untrusted input: at most [`MAX_RECORD`] bytes are read,
//! and anything but a well-formed record of this version counts as no record.

use std::fs::File;
use std::io;

use sha2::{Digest, Sha256};
use url::Url;

use crate::event::StartOver;

/// The attribute holding a part's record.
const ATTR: &str = "user.fetchq.part";

/// The first line of a record of this format; another first line is not read.
const MAGIC: &str = "fetchq-part 1";

/// The largest record read. Written ones are a few hundred bytes: the
/// longest values are an ETag and a date.
pub(crate) const MAX_RECORD: usize = 4096;

/// The response a part's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// SHA-256 of the entry's URL (the one in the list, not a redirect target).
    url: [u8; 32],
    /// The full length of the file, if the response said.
    length: Option<u64>,
    /// The response's `ETag`, as sent.
    etag: Option<String>,
    /// The response's `Last-Modified`, as sent.
    last_modified: Option<String>,
    /// The byte ranges on disk, sorted, when the part has holes (a split
    /// download); `None` means the part's bytes run from 0 to its length.
    done: Option<Vec<(u64, u64)>>,
}

/// Most ranges a record lists; a map with more is cut to its first range,
/// which loses bytes for `-c` but never claims any that are missing.
const MAX_RANGES: usize = 64;

impl Record {
    /// The record of a response to `url` with these headers; a value that
    /// could not be sent back in a header is left out.
    pub(crate) fn new(
        url: &Url,
        etag: Option<&str>,
        last_modified: Option<&str>,
        length: Option<u64>,
    ) -> Record {
        let keep = |v: Option<&str>| v.filter(|v| header_safe(v)).map(str::to_string);
        Record {
            url: url_hash(url),
            length,
            etag: keep(etag),
            last_modified: keep(last_modified),
            done: None,
        }
    }

    /// The ranges of the file on disk (sorted, not overlapping), for a part
    /// with holes.
    pub(crate) fn set_done(&mut self, mut done: Vec<(u64, u64)>) {
        if done.len() > MAX_RANGES {
            done.truncate(1);
        }
        self.done = Some(done);
    }

    /// The validator for `If-Range`: a strong ETag, else Last-Modified (a
    /// weak ETag may not be used there, RFC 9110 §13.1.5).
    pub(crate) fn if_range(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|e| e.starts_with('"'))
            .or(self.last_modified.as_deref())
    }

    /// The attribute's value: `fetchq-part 1`, then one `key value` line each.
    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{MAGIC}\nurl-sha256 {}\n", hex(&self.url));
        if let Some(length) = self.length {
            text.push_str(&format!("length {length}\n"));
        }
        if let Some(etag) = &self.etag {
            text.push_str(&format!("etag {etag}\n"));
        }
        if let Some(date) = &self.last_modified {
            text.push_str(&format!("last-modified {date}\n"));
        }
        if let Some(done) = &self.done {
            let ranges: Vec<String> = done.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            text.push_str(&format!("done {}\n", ranges.join(",")));
        }
        text.into_bytes()
    }

    /// Read an attribute's value; `None` for anything but a well-formed
    /// record of this format (unknown keys are ignored, a repeated one is not).
    fn decode(raw: &[u8]) -> Option<Record> {
        if raw.len() > MAX_RECORD {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.strip_suffix('\n')?.split('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let (mut url, mut length, mut etag, mut last_modified, mut done) = (None, None, None, None, None);
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            if !header_safe(value) {
                return None;
            }
            let slot = match key {
                "url-sha256" => {
                    let hash = unhex(value)?;
                    url.replace(hash).is_some()
                }
                "length" => length.replace(value.parse::<u64>().ok()?).is_some(),
                "etag" => etag.replace(value.to_string()).is_some(),
                "last-modified" => last_modified.replace(value.to_string()).is_some(),
                "done" => done.replace(parse_ranges(value)?).is_some(),
                _ => false,
            };
            if slot {
                return None;
            }
        }
        Some(Record {
            url: url?,
            length,
            etag,
            last_modified,
            done,
        })
    }
}

/// `a-b,c-d`: sorted, non-empty, non-overlapping ranges, at most [`MAX_RANGES`].
fn parse_ranges(text: &str) -> Option<Vec<(u64, u64)>> {
    let mut ranges = Vec::new();
    let mut end = 0;
    for range in text.split(',') {
        let (a, b) = range.split_once('-')?;
        let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
        if b <= a || a < end || ranges.len() >= MAX_RANGES {
            return None;
        }
        end = b;
        ranges.push((a, b));
    }
    Some(ranges)
}

/// What a part holds besides its bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// No record: none was written, or the file system keeps no user attributes.
    Missing,
    /// Something that is not a record of this format.
    Unreadable,
    /// A record.
    Found(Record),
}

/// Read the record on `file` (an open part), reading at most [`MAX_RECORD`] bytes.
pub(crate) fn load(file: &File) -> Stored {
    let mut buf = [0u8; MAX_RECORD];
    match rustix::fs::fgetxattr(file, ATTR, &mut buf[..]) {
        Ok(n) => buf
            .get(..n)
            .and_then(Record::decode)
            .map_or(Stored::Unreadable, Stored::Found),
        // Larger than any record fetchq writes.
        Err(rustix::io::Errno::RANGE) => Stored::Unreadable,
        Err(_) => Stored::Missing,
    }
}

/// Put `record` on `file`.
pub(crate) fn store(file: &File, record: &Record) -> io::Result<()> {
    rustix::fs::fsetxattr(file, ATTR, &record.encode(), rustix::fs::XattrFlags::empty())
        .map_err(io::Error::from)
}

/// Take the record off `file`, if it has one: its bytes are about to change
/// version, or it becomes a finished file.
pub(crate) fn clear(file: &File) {
    // Nothing to remove (ENODATA) or no attributes at all: both fine.
    let _ = rustix::fs::fremovexattr(file, ATTR);
}

/// What to do with a part an earlier run left.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Continue, sending this `If-Range`; a response of another full length
    /// than `length` (if known) means another version.
    Continue {
        /// The validator to send.
        if_range: String,
        /// The recorded full length.
        length: Option<u64>,
        /// The ranges on disk, when the part has holes (a split download).
        done: Option<Vec<(u64, u64)>>,
    },
    /// Continue without a record: the entry's checksum will check the result.
    Checked,
    /// Discard the part and download from byte 0.
    StartOver(StartOver),
}

/// Judge a part of `len` bytes with `stored` for an entry of `url`; `checksum`
/// says whether the entry's SHA-256 will be verified.
pub(crate) fn judge(stored: Stored, url: &Url, len: u64, checksum: bool) -> Verdict {
    let unchecked = |why| {
        if checksum {
            Verdict::Checked
        } else {
            Verdict::StartOver(why)
        }
    };
    let record = match stored {
        Stored::Missing => return unchecked(StartOver::NoRecord),
        Stored::Unreadable => return unchecked(StartOver::Unreadable),
        Stored::Found(record) => record,
    };
    if record.url != url_hash(url) {
        // Another entry's bytes: its checksum would only fail.
        return Verdict::StartOver(StartOver::OtherUrl);
    }
    if record.length.is_some_and(|total| len > total)
        || record
            .done
            .as_ref()
            .is_some_and(|done| record.length.is_none() || done.last().is_some_and(|&(_, end)| end > len))
    {
        // A map needs the length it maps, and cannot list bytes the file lacks.
        return Verdict::StartOver(StartOver::Longer);
    }
    match record.if_range() {
        Some(validator) => Verdict::Continue {
            if_range: validator.to_string(),
            length: record.length,
            done: record.done,
        },
        None => unchecked(StartOver::NoValidator),
    }
}

/// Visible ASCII and spaces, as a header value may hold (RFC 9110 §5.5) and a
/// record line can carry.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 1024 && value.bytes().all(|b| (b' '..=b'~').contains(&b))
}

fn url_hash(url: &Url) -> [u8; 32] {
    Sha256::digest(url.as_str().as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn record(etag: Option<&str>, date: Option<&str>, length: Option<u64>) -> Record {
        Record::new(&url("http://h/f"), etag, date, length)
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn a_record_survives_encoding() {
        for r in [
            record(Some("\"v1\""), Some(DATE), Some(5)),
            record(None, None, None),
            record(Some("W/\"w\""), None, Some(0)),
        ] {
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
    }

    #[test]
    fn hostile_values_are_not_records() {
        let good = String::from_utf8(record(Some("\"v1\""), None, Some(5)).encode()).unwrap();
        let hash_line = good.lines().nth(1).unwrap().to_string();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"fetchq-part 1\n".to_vec(),                  // no URL
            b"fetchq-part 2\nurl-sha256 00\n".to_vec(),   // another version
            format!("{MAGIC}\n{hash_line}").into_bytes(), // no final newline
            format!("{MAGIC}\n{hash_line}\n{hash_line}\n").into_bytes(),
            format!("{MAGIC}\nurl-sha256 {}\n", "g".repeat(64)).into_bytes(),
            format!("{MAGIC}\nurl-sha256 {}\n", "é".repeat(32)).into_bytes(),
            format!("{MAGIC}\n{hash_line}\nlength -1\n").into_bytes(),
            format!("{MAGIC}\n{hash_line}\nlength 99999999999999999999999\n").into_bytes(),
            format!("{MAGIC}\n{hash_line}\netag \"a\u{1b}[2J\"\n").into_bytes(),
            format!("{MAGIC}\n{hash_line}\netag \"a\r\"\n").into_bytes(),
            format!("{MAGIC}\n{hash_line}\netag\n").into_bytes(),
            format!("{MAGIC}\n{hash_line}\netag {}\n", "x".repeat(MAX_RECORD)).into_bytes(),
            vec![0xff; 64],
        ];
        for raw in cases {
            assert_eq!(Record::decode(&raw), None, "{:?}", String::from_utf8_lossy(&raw));
        }
        let unknown = format!("{good}future-key whatever\n");
        assert!(Record::decode(unknown.as_bytes()).is_some());
    }

    #[test]
    fn a_map_of_done_ranges_survives_encoding_and_is_judged() {
        let mut r = record(Some("\"v\""), None, Some(1000));
        r.set_done(vec![(0, 100), (500, 900)]);
        let back = Record::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        let here = url("http://h/f");
        assert_eq!(
            judge(Stored::Found(r.clone()), &here, 900, false),
            Verdict::Continue {
                if_range: "\"v\"".into(),
                length: Some(1000),
                done: Some(vec![(0, 100), (500, 900)]),
            }
        );
        // A map listing bytes past the file's end is not believed.
        assert_eq!(
            judge(Stored::Found(r), &here, 800, false),
            Verdict::StartOver(StartOver::Longer)
        );
        // Too many ranges: only the first is kept, never more than was there.
        let mut many = record(Some("\"v\""), None, Some(10_000));
        many.set_done((0..100).map(|i| (i * 10, i * 10 + 5)).collect());
        assert_eq!(Record::decode(&many.encode()).unwrap().done, Some(vec![(0, 5)]));
        let hash_line = record(None, None, None).encode();
        let hash_line = String::from_utf8(hash_line).unwrap();
        for bad in [
            "done 5-5",
            "done 9-3",
            "done 0-10,5-20",
            "done 0-",
            "done x-1",
            "done ",
        ] {
            let raw = format!("{hash_line}length 100\n{bad}\n");
            assert_eq!(Record::decode(raw.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn unsendable_validators_are_not_recorded() {
        let r = Record::new(&url("http://h/f"), Some("\"a\nb\""), Some(""), None);
        assert_eq!(r.if_range(), None);
    }

    #[test]
    fn if_range_prefers_a_strong_etag_then_the_date() {
        assert_eq!(
            record(Some("\"v1\""), Some(DATE), None).if_range(),
            Some("\"v1\"")
        );
        assert_eq!(record(Some("W/\"v1\""), Some(DATE), None).if_range(), Some(DATE));
        assert_eq!(record(Some("W/\"v1\""), None, None).if_range(), None);
    }

    #[test]
    fn judging_a_leftover_part() {
        let here = url("http://h/f");
        let recorded = |r: Record| Stored::Found(r);
        let cont = |v: &str, length| Verdict::Continue {
            if_range: v.to_string(),
            length,
            done: None,
        };
        let table: Vec<(Stored, u64, bool, Verdict)> = vec![
            (Stored::Missing, 9, false, Verdict::StartOver(StartOver::NoRecord)),
            (Stored::Missing, 9, true, Verdict::Checked),
            (
                Stored::Unreadable,
                9,
                false,
                Verdict::StartOver(StartOver::Unreadable),
            ),
            (Stored::Unreadable, 9, true, Verdict::Checked),
            (
                recorded(Record::new(&url("http://h/g"), Some("\"v\""), None, None)),
                9,
                true,
                Verdict::StartOver(StartOver::OtherUrl),
            ),
            (
                recorded(record(Some("\"v\""), None, Some(5))),
                9,
                true,
                Verdict::StartOver(StartOver::Longer),
            ),
            (
                recorded(record(None, None, Some(50))),
                9,
                false,
                Verdict::StartOver(StartOver::NoValidator),
            ),
            (recorded(record(None, None, Some(50))), 9, true, Verdict::Checked),
            (
                recorded(record(Some("\"v\""), Some(DATE), Some(9))),
                9,
                false,
                cont("\"v\"", Some(9)),
            ),
            (
                recorded(record(None, Some(DATE), None)),
                9,
                false,
                cont(DATE, None),
            ),
        ];
        for (i, (stored, len, checksum, want)) in table.into_iter().enumerate() {
            assert_eq!(judge(stored, &here, len, checksum), want, "case {i}");
        }
    }

    /// Where the file system keeps user attributes: a record round-trips
    /// through the file, an oversized or foreign value reads as unreadable.
    #[test]
    fn records_live_on_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.part");
        let file = File::options().create_new(true).write(true).open(&path).unwrap();
        let r = record(Some("\"v1\""), Some(DATE), Some(12));
        if store(&file, &r).is_err() {
            assert_eq!(load(&file), Stored::Missing);
            return; // No user attributes here: parts then start over (integration tests).
        }
        assert_eq!(load(&file), Stored::Found(r));
        // ext4 refuses values this large itself (ENOSPC); others may keep them.
        if rustix::fs::fsetxattr(
            &file,
            ATTR,
            &[b'x'; MAX_RECORD + 1],
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok()
        {
            assert_eq!(load(&file), Stored::Unreadable);
        }
        rustix::fs::fsetxattr(&file, ATTR, b"garbage", rustix::fs::XattrFlags::empty()).unwrap();
        assert_eq!(load(&file), Stored::Unreadable);
        clear(&file);
        assert_eq!(load(&file), Stored::Missing);
    }
}
