//! URL lists: reading them line by line as they arrive, and parsing one line.
//!
//! Format, one entry a line: `URL [OUT] [sha256=HEX]`, fields separated by
//! whitespace. Blank lines and lines starting with `#` are skipped; CRLF line
//! ends, surrounding whitespace and a UTF-8 byte order mark are accepted.
//! Reading is streaming: each line becomes an entry as soon as it arrives, so
//! `producer | fetchq` starts downloading while the producer still runs, and a
//! list of ten million lines never sits in memory. Nor does one huge line: a
//! line may hold [`MAX_LINE`] bytes, and the rest of a longer one is read
//! past without being kept.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::Arc;

use url::Url;

use crate::error::{LineError, RunError};
use crate::event::Origin;
use crate::naming::{self, OutPath};

/// The longest list line, in bytes without its line end: 64 KiB, far above
/// any URL a server accepts (common limits are 8–16 KiB) plus a path and a
/// checksum, and small enough that holding one line costs nothing.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// One usable line of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it came from, for messages: the list's name and 1-based line.
    pub origin: Origin,
    /// What to download. Always http or https, with a host.
    pub url: Url,
    /// The explicit output path (validated, relative), or `None` to name it from the URL.
    pub out: Option<OutPath>,
    /// The expected SHA-256 of the whole file.
    pub sha256: Option<[u8; 32]>,
}

/// The fields of one list line: URL, explicit OUT, expected SHA-256.
pub(crate) type ParsedLine = (Url, Option<OutPath>, Option<[u8; 32]>);

/// Parse one line. `Ok(None)` for blank lines and comments.
pub(crate) fn parse_line(text: &str) -> Result<Option<ParsedLine>, LineError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut fields = Fields(text);
    let url = parse_url(&fields.next().transpose()?.unwrap_or_default())?;
    let mut out = None;
    let mut sha256 = None;
    for field in fields {
        let field = field?;
        if sha256.is_some() {
            // The checksum is the trailing field: nothing may follow it.
            return Err(LineError::ExtraField(field.to_string()));
        }
        if let Some(hex) = field.strip_prefix("sha256=") {
            sha256 = Some(parse_sha256(hex).ok_or_else(|| LineError::BadChecksum(field.to_string()))?);
        } else if out.is_none() {
            out = Some(naming::check_out(&field)?);
        } else {
            return Err(LineError::ExtraField(field.to_string()));
        }
    }
    Ok(Some((url, out, sha256)))
}

/// `text` as one list field, quoted and escaped when it needs to be (the
/// inverse of how [`parse_line`] reads a field).
pub(crate) fn quote_field(text: &str) -> String {
    // A `#` that starts a field would start a comment.
    if !text.is_empty()
        && !text.starts_with('#')
        && !text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\')
    {
        return text.to_string();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The whitespace-separated fields of a line. A field that starts with `"`
/// runs to the next unescaped `"` and may hold spaces (`"my file.pdf"`);
/// inside it `\"` is a quote and `\\` a backslash.
struct Fields<'a>(&'a str);

impl Iterator for Fields<'_> {
    type Item = Result<String, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start();
        // A `#` that starts a field starts a comment: `URL  # the first file`.
        // One inside a field (a URL's `#fragment`) or quoted (`"#1.txt"`) does not.
        if rest.is_empty() || rest.starts_with('#') {
            self.0 = "";
            return None;
        }
        let Some(quoted) = rest.strip_prefix('"') else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            self.0 = &rest[end..];
            return Some(Ok(rest[..end].to_string()));
        };
        let mut field = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let after = &quoted[i + 1..];
                    if after.starts_with(|c: char| !c.is_whitespace()) {
                        break;
                    }
                    self.0 = after;
                    return Some(Ok(field));
                }
                '\\' => match chars.next() {
                    Some((_, c @ ('"' | '\\'))) => field.push(c),
                    Some((_, c)) => field.extend(['\\', c]),
                    None => break,
                },
                c => field.push(c),
            }
        }
        self.0 = "";
        Some(Err(LineError::BadQuote(rest.to_string())))
    }
}

fn parse_url(text: &str) -> Result<Url, LineError> {
    let url = Url::parse(text).map_err(|e| LineError::BadUrl(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(LineError::Scheme(other.to_string())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(LineError::NoHost);
    }
    Ok(url)
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

/// One input list, opened but not yet read.
pub struct ListInput {
    name: Arc<str>,
    /// Its lines, counted ahead (see [`ListInput::lines`]): a second handle
    /// on a regular file, read with positional reads that leave the list's
    /// own position alone; `Some(1)` for a URL argument; `None` otherwise.
    counter: Counter,
    reader: Box<dyn BufRead + Send>,
    /// Whether its entries are named by line (`FILE:LINE`); a URL given on
    /// the command line is a one-line list named by the argument alone.
    numbered: bool,
}

/// How a list's lines can be counted ahead.
enum Counter {
    File(File),
    Known(u64),
    Unknown,
}

/// Newline bytes in `file` (plus one for a last line without one), read in
/// 64 KiB pieces at their offsets: bounded memory, and the shared file
/// position the list is read from does not move.
fn count_lines(file: &File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut offset, mut lines, mut last) = (0u64, 0u64, b'\n');
    loop {
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let piece = &buf[..n];
        lines += piece.iter().filter(|&&b| b == b'\n').count() as u64;
        last = piece[n - 1];
        offset += n as u64;
    }
    Ok(lines + u64::from(last != b'\n'))
}

impl ListInput {
    /// Its lines, counted ahead without reading the list itself: `None` for
    /// a list that is not a regular file (a pipe, standard input) or that
    /// cannot be read twice.
    pub(crate) fn lines(&self) -> Option<u64> {
        match &self.counter {
            Counter::File(file) => count_lines(file).ok(),
            Counter::Known(n) => Some(*n),
            Counter::Unknown => None,
        }
    }

    /// Open a list: `-` is standard input, anything else a file path.
    /// Opening happens up front so an unreadable list stops the run before any download.
    pub fn open(name: &str) -> Result<ListInput, RunError> {
        let mut counter = Counter::Unknown;
        let reader: Box<dyn BufRead + Send> = if name == "-" {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(name).map_err(|source| RunError::Input {
                name: name.to_string(),
                source,
            })?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(RunError::Input {
                    name: name.to_string(),
                    source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
                });
            }
            if file.metadata().is_ok_and(|m| m.is_file())
                && let Ok(second) = file.try_clone()
            {
                counter = Counter::File(second);
            }
            Box::new(BufReader::with_capacity(64 * 1024, file))
        };
        Ok(ListInput {
            name: name.into(),
            counter,
            reader,
            numbered: true,
        })
    }

    /// A list read from any reader (for tests and library users).
    pub fn from_reader(name: &str, reader: impl BufRead + Send + 'static) -> ListInput {
        ListInput {
            name: name.into(),
            counter: Counter::Unknown,
            reader: Box::new(reader),
            numbered: true,
        }
    }

    /// The one-entry list of a URL given on the command line (`fetchq URL`),
    /// the `position`-th such argument, saved as `out` if given (`-o`).
    /// Its messages name `argument N`, not a line.
    pub fn from_argument(position: usize, url: &Url, out: Option<&str>) -> ListInput {
        let mut line = url.as_str().to_string();
        if let Some(out) = out {
            line.push_str(" \"");
            for c in out.chars() {
                if matches!(c, '"' | '\\') {
                    line.push('\\');
                }
                line.push(c);
            }
            line.push('"');
        }
        line.push('\n');
        ListInput {
            name: format!("argument {position}").into(),
            counter: Counter::Known(1),
            reader: Box::new(io::Cursor::new(line.into_bytes())),
            numbered: false,
        }
    }

    /// The URL a command-line argument names, if it is one: an absolute
    /// `http://` or `https://` URL. Anything else is a list file's name.
    pub fn url_argument(arg: &str) -> Option<Url> {
        let scheme = arg.split_once("://")?.0;
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return None;
        }
        Url::parse(arg).ok()
    }

    /// Call `each` for every non-blank, non-comment line as it is read, with
    /// either the parsed entry or why the line is unusable.
    /// Stops early when `each` returns `false`.
    pub(crate) fn for_each_line(
        mut self,
        mut each: impl FnMut(Result<Entry, (Origin, LineError, String)>) -> bool,
    ) -> Result<(), RunError> {
        let mut buf = Vec::with_capacity(256);
        let mut line = 0u64;
        loop {
            let read = read_line(&mut self.reader, &mut buf).map_err(|source| RunError::Input {
                name: self.name.to_string(),
                source,
            })?;
            let Some(complete) = read else {
                return Ok(());
            };
            line += 1;
            if !complete {
                let origin = Origin {
                    source: self.name.clone(),
                    line: if self.numbered { line } else { 0 },
                };
                // The text is not shown: a cut-off prefix could end inside a password.
                if !each(Err((
                    origin,
                    LineError::TooLong { limit: MAX_LINE },
                    String::new(),
                ))) {
                    return Ok(());
                }
                continue;
            }
            let mut bytes = buf.as_slice();
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            let origin = Origin {
                source: self.name.clone(),
                line: if self.numbered { line } else { 0 },
            };
            let item = match std::str::from_utf8(bytes) {
                Err(_) => Err((
                    origin,
                    LineError::NotUtf8,
                    String::from_utf8_lossy(bytes).trim().to_string(),
                )),
                Ok(text) => match parse_line(text) {
                    Ok(None) => continue,
                    Ok(Some((url, out, sha256))) => Ok(Entry {
                        origin,
                        url,
                        out,
                        sha256,
                    }),
                    Err(e) => Err((origin, e, text.trim().to_string())),
                },
            };
            if !each(item) {
                return Ok(());
            }
        }
    }
}

/// Read one line into `buf` (cleared first; the `\n` is not kept) with
/// [`BufRead::fill_buf`], so a line is taken as soon as its end arrives and
/// no more than [`MAX_LINE`] bytes of it are ever held. `None` at the end of
/// input; `Some(false)` for a line over the limit, whose rest was consumed
/// and dropped chunk by chunk.
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    // One byte over for a `\r` before the `\n`.
    let keep = MAX_LINE + 1;
    let (mut seen, mut too_long) = (false, false);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        seen = true;
        let (part, used, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long {
            if buf.len() + part.len() > keep {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        reader.consume(used);
        if ended {
            break;
        }
    }
    if !seen {
        return Ok(None);
    }
    if buf.len() > MAX_LINE && buf.last() != Some(&b'\r') {
        too_long = true;
        buf.clear();
    }
    Ok(Some(!too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_ahead_without_moving_the_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (text, want) in [("", 0), ("a\n", 1), ("a\nb", 2), ("# c\n\nhttp://h/x\n", 3)] {
            let path = dir.path().join("list.txt");
            std::fs::write(&path, text).expect("write");
            let name = path.to_str().expect("utf-8 path");
            let list = ListInput::open(name).expect("open");
            assert_eq!(list.lines(), Some(want), "{text:?}");
            let mut read = String::new();
            let mut reader = list.reader;
            io::Read::read_to_string(&mut reader, &mut read).expect("read");
            assert_eq!(read, text, "the list still reads from its start");
        }
        let big = dir.path().join("big.txt");
        std::fs::write(&big, "x\n".repeat(100_000)).expect("write");
        let list = ListInput::open(big.to_str().expect("utf-8")).expect("open");
        assert_eq!(list.lines(), Some(100_000), "more than one 64 KiB piece");
        let url = Url::parse("http://h/x").expect("url");
        assert_eq!(ListInput::from_argument(1, &url, None).lines(), Some(1));
        let piped = ListInput::from_reader("-", "a\n".as_bytes());
        assert_eq!(piped.lines(), None);
    }

    fn parse(text: &str) -> Result<Option<(String, Option<OutPath>, bool)>, LineError> {
        parse_line(text).map(|o| o.map(|(u, out, sum)| (u.to_string(), out, sum.is_some())))
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        for text in ["", "   ", "\r", "# comment", "  # indented comment"] {
            assert_eq!(parse(text), Ok(None), "{text:?}");
        }
    }

    #[test]
    fn url_alone_and_with_out_and_checksum() {
        assert_eq!(
            parse("  http://h/a.txt\r"),
            Ok(Some(("http://h/a.txt".into(), None, false)))
        );
        assert_eq!(
            parse("http://h/a.txt sub/b.txt"),
            Ok(Some((
                "http://h/a.txt".into(),
                Some(OutPath::File("sub/b.txt".into())),
                false
            )))
        );
        let hex = "ab".repeat(32);
        assert_eq!(
            parse(&format!("http://h/a x sha256={hex}")),
            Ok(Some(("http://h/a".into(), Some(OutPath::File("x".into())), true)))
        );
        assert_eq!(
            parse(&format!("http://h/a\tsha256={hex}")),
            Ok(Some(("http://h/a".into(), None, true)))
        );
    }

    #[test]
    fn quoted_out_may_hold_spaces_and_escapes() {
        let out = |path: &str| {
            Ok(Some((
                "http://h/a".into(),
                Some(OutPath::File(path.into())),
                false,
            )))
        };
        assert_eq!(parse(r#"http://h/a "my file.pdf""#), out("my file.pdf"));
        assert_eq!(
            parse(r#"http://h/a  "sub dir/a  b.txt"  "#),
            out("sub dir/a  b.txt")
        );
        assert_eq!(parse(r#"http://h/a "say \"hi\".txt""#), out(r#"say "hi".txt"#));
        // A quoted `#` is a name, an unquoted one after a blank a comment.
        assert_eq!(parse(r##"http://h/a "#1.txt" # first"##), out("#1.txt"));
        assert_eq!(
            parse("http://h/a #mirror-of-upstream"),
            Ok(Some(("http://h/a".into(), None, false)))
        );
        assert_eq!(
            parse("http://h/a#frag  # note"),
            Ok(Some(("http://h/a#frag".into(), None, false)))
        );
        // The unescaped backslash is then sanitised like any other in OUT.
        assert_eq!(parse(r#"http://h/a "back\\slash""#), out("back_slash"));
        assert_eq!(parse(r#"http://h/a "keep\n""#), out("keep_n"));
        let hex = "ab".repeat(32);
        assert_eq!(
            parse(&format!(r#""http://h/a" "a b" sha256={hex}"#)),
            Ok(Some((
                "http://h/a".into(),
                Some(OutPath::File("a b".into())),
                true
            )))
        );
        assert_eq!(parse(r#"http://h/a "../x y""#), Err(LineError::OutEscapes));
    }

    #[test]
    fn quote_field_is_read_back_as_one_field() {
        for text in [
            "plain",
            "a b",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "",
            "\"",
            "end\\",
            "#1.txt",
        ] {
            let quoted = quote_field(text);
            let fields: Vec<_> = Fields(&format!("  {quoted} next")).collect();
            assert_eq!(
                fields,
                [Ok(text.to_string()), Ok("next".into())],
                "{text:?} as {quoted}"
            );
        }
        assert_eq!(quote_field("plain"), "plain");
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(
            parse(r#"http://h/a "my file.pdf"#),
            Err(LineError::BadQuote(r#""my file.pdf"#.into()))
        );
        assert_eq!(
            parse(r#"http://h/a "a"b"#),
            Err(LineError::BadQuote(r#""a"b"#.into()))
        );
        assert_eq!(
            parse(r#"http://h/a "ends in \""#),
            Err(LineError::BadQuote(r#""ends in \""#.into()))
        );
        assert!(matches!(parse("not a url"), Err(LineError::BadUrl(_))));
        assert_eq!(parse("ftp://h/a"), Err(LineError::Scheme("ftp".into())));
        assert_eq!(parse("file:///etc/passwd"), Err(LineError::Scheme("file".into())));
        assert_eq!(parse("http://h/a /etc/x"), Err(LineError::OutEscapes));
        assert_eq!(parse("http://h/a ../x"), Err(LineError::OutEscapes));
        assert_eq!(parse("http://h/a x y"), Err(LineError::ExtraField("y".into())));
        assert_eq!(
            parse("http://h/a sha256=12"),
            Err(LineError::BadChecksum("sha256=12".into()))
        );
        let hex = "ab".repeat(32);
        assert_eq!(
            parse(&format!("http://h/a sha256={hex} x")),
            Err(LineError::ExtraField("x".into()))
        );
    }

    #[test]
    fn lines_stream_with_numbers_bom_and_crlf() {
        let data = b"\xEF\xBB\xBFhttp://h/1\r\n\r\n# c\r\nbogus\r\nhttp://h/2\n\xFF\n".to_vec();
        let input = ListInput::from_reader("list", io::Cursor::new(data));
        let mut seen = Vec::new();
        input
            .for_each_line(|item| {
                seen.push(match item {
                    Ok(e) => format!("{}:{}", e.origin.line, e.url),
                    Err((o, e, text)) => format!("{}: {e}: {text}", o.line),
                });
                true
            })
            .unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], "1:http://h/1");
        assert!(seen[1].starts_with("4: invalid URL"), "{}", seen[1]);
        assert_eq!(seen[2], "5:http://h/2");
        assert_eq!(seen[3], "6: line is not valid UTF-8: \u{FFFD}");
    }

    #[test]
    fn lines_over_the_limit_fail_alone_and_are_not_kept() {
        let at_limit = "x".repeat(MAX_LINE);
        let over = "y".repeat(MAX_LINE + 1);
        let huge = "z".repeat(5 * MAX_LINE);
        let data = format!("{at_limit}\n{over}\n{at_limit}\r\n{huge}\r\nshort\n{over}");
        // A tiny buffer: lines arrive in many pieces, as from a slow pipe.
        let mut reader = io::BufReader::with_capacity(7, io::Cursor::new(data.into_bytes()));
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        while let Some(complete) = read_line(&mut reader, &mut buf).unwrap() {
            assert!(
                buf.capacity() <= 2 * MAX_LINE + 16,
                "held {} bytes",
                buf.capacity()
            );
            seen.push((complete, buf.len()));
        }
        assert_eq!(
            seen,
            [
                (true, MAX_LINE),
                (false, 0),
                (true, MAX_LINE + 1),
                (false, 0),
                (true, 5),
                (false, 0)
            ]
        );
    }
}
