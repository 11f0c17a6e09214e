//! URL lists: reading them line by line as they arrive, and parsing one line.
//!
//! Format, one entry a line: `URL [URL…] [OUT] [KEY=VALUE…]`, fields
//! separated by whitespace (spaces or TABs). The first field is the URL the
//! entry is named from; after it, in any order, every unquoted field that is
//! an absolute URL (`scheme://…`) is another source of the same file (only
//! http and https), an unquoted field holding `=` is a key (`sha256=`,
//! `sha512=`, `sha384=`, `sha1=`, `md5=`, `header=`), and the one other field
//! is OUT. A quoted field (`"my file.pdf"`) is always OUT, never a key or a
//! URL: a file name holding `=` or `://` is written quoted. A key's value may
//! be quoted too (`header="X-Token: a b"`).
//!
//! Blank lines and lines starting with `#` are skipped; CRLF line ends,
//! surrounding whitespace and a UTF-8 byte order mark are accepted.
//! Reading is streaming: each line becomes an entry as soon as it arrives, so
//! `producer | fetchq` starts downloading while the producer still runs, and a
//! list of ten million lines never sits in memory. Nor does one huge line: a
//! line may hold [`MAX_LINE`] bytes, and the rest of a longer one is read
//! past without being kept.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::Arc;

use url::Url;

use crate::checksum::{Algorithm, Checksum, Checksums};
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
    /// What to download, and what names it. Always http or https, with a host.
    pub url: Url,
    /// Further sources of the same file, in list order (see [`crate::JobInfo::mirrors`]).
    pub mirrors: Vec<Url>,
    /// The explicit output path (validated, relative), or `None` to name it from the URL.
    pub out: Option<OutPath>,
    /// The digests the whole file must match (`sha256=`, `md5=`, ...).
    pub checksums: Checksums,
    /// The entry's own request headers (`header="Name: value"`), in order.
    pub headers: Vec<(String, String)>,
}

impl Entry {
    /// The entry of a parsed `line` from `origin`.
    pub(crate) fn new(origin: Origin, line: ParsedLine) -> Entry {
        Entry {
            origin,
            url: line.url,
            mirrors: line.mirrors,
            out: line.out,
            checksums: line.checksums,
            headers: line.headers,
        }
    }
}

/// The fields of one list line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedLine {
    /// The first URL.
    pub(crate) url: Url,
    /// The other URLs.
    pub(crate) mirrors: Vec<Url>,
    /// OUT, checked.
    pub(crate) out: Option<OutPath>,
    /// Every digest given.
    pub(crate) checksums: Checksums,
    /// Every `header=`, parsed.
    pub(crate) headers: Vec<(String, String)>,
}

/// Parse one line. `Ok(None)` for blank lines and comments.
pub(crate) fn parse_line(text: &str) -> Result<Option<ParsedLine>, LineError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut fields = Fields(text);
    // The first field is the URL, quoted or not.
    let url = match fields.next().transpose()? {
        Some(Field::Quoted(first) | Field::Bare(first)) => parse_url(&first)?,
        Some(Field::Pair { raw, .. }) => parse_url(&raw)?,
        None => parse_url("")?,
    };
    let mut line = ParsedLine {
        url,
        mirrors: Vec::new(),
        out: None,
        checksums: Checksums::default(),
        headers: Vec::new(),
    };
    let mut out_text: Option<String> = None;
    for field in fields {
        let (key, value, raw) = match field? {
            Field::Bare(text) if looks_like_url(&text) => {
                let source = parse_url(&text).map_err(|why| LineError::BadSource {
                    field: text.clone(),
                    why: why.to_string(),
                })?;
                line.mirrors.push(source);
                continue;
            }
            Field::Bare(text) if text.contains('=') => {
                let (key, value) = text.split_once('=').unwrap_or_default();
                (key.to_string(), value.to_string(), text)
            }
            Field::Pair { key, value, raw } => (key, value, raw),
            Field::Quoted(text) | Field::Bare(text) => {
                if let Some(first) = out_text {
                    return Err(LineError::SecondOut { first, second: text });
                }
                line.out = Some(naming::check_out(&text)?);
                out_text = Some(text);
                continue;
            }
        };
        if key.eq_ignore_ascii_case("header") {
            let header = parse_header(&value).map_err(|why| LineError::BadHeader { field: raw, why })?;
            line.headers.push(header);
        } else if let Some(algorithm) = Algorithm::from_key(&key) {
            let checksum = Checksum::from_hex(algorithm, &value).ok_or_else(|| LineError::BadChecksum {
                field: raw.clone(),
                digits: algorithm.hex_len(),
            })?;
            if line
                .checksums
                .get(algorithm)
                .is_some_and(|given| *given != checksum)
            {
                return Err(LineError::SecondChecksum(raw));
            }
            line.checksums.add(checksum);
        } else {
            return Err(LineError::UnknownKey(raw));
        }
    }
    Ok(Some(line))
}

/// Parse a request header `Name: value`, for `-H` and `header=`: the name
/// an RFC 9110 §5.6.2 token, the value without line breaks or NUL (which
/// would end the header early or smuggle another), both trimmed.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("header {text:?} has no ':' (expected 'Name: value')"))?;
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name {
        return Err(format!("header name {name:?} is not a valid token"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("header {name} has a line break in its value"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A line as messages show it when it is unusable: trimmed, and with the
/// value of every well-formed `header=` replaced by `***`, since a header
/// may carry a token (`header="Authorization: Bearer …"`) and the line is
/// printed, logged and put in `--json`. The header's name stays, to say
/// which field is meant; a malformed `header=` is the error and is shown.
pub(crate) fn shown_line(text: &str) -> String {
    let mut shown = text.trim().to_string();
    for field in Fields(text.trim()).map_while(Result::ok) {
        let (raw, value) = match field {
            Field::Pair { key, value, raw } if key.eq_ignore_ascii_case("header") => (raw, value),
            Field::Bare(raw) if !looks_like_url(&raw) => match raw.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("header") => {
                    let value = value.to_string();
                    (raw, value)
                }
                _ => continue,
            },
            _ => continue,
        };
        if let Ok((name, _)) = parse_header(&value) {
            shown = shown.replacen(&raw, &format!("header=\"{name}: ***\""), 1);
        }
    }
    shown
}

/// Whether an unquoted field is meant as a URL: `scheme://…`.
fn looks_like_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    })
}

/// The list line that asks for exactly this entry: the inverse of
/// [`parse_line`], for `--save-failed` and the queue. `out` is written
/// quoted where it must be.
pub(crate) fn write_line(
    url: &Url,
    mirrors: &[Url],
    out: Option<&str>,
    checksums: &Checksums,
    headers: &[(String, String)],
) -> String {
    let mut line = url.as_str().to_string();
    for source in mirrors {
        line.push(' ');
        line.push_str(source.as_str());
    }
    if let Some(out) = out {
        line.push(' ');
        line.push_str(&quote_field(out));
    }
    for checksum in checksums.iter() {
        line.push(' ');
        line.push_str(&checksum.to_string());
    }
    for (name, value) in headers {
        line.push_str(" header=");
        line.push_str(&quote_field(&format!("{name}: {value}")));
    }
    line
}

/// `text` as one list field, quoted and escaped when it needs to be (the
/// inverse of how [`parse_line`] reads a field): a field with a blank, a
/// quote or a backslash, one that would start a comment (`#`), and one that
/// unquoted would be read as a key (`=`) or a URL (`://`).
pub(crate) fn quote_field(text: &str) -> String {
    if !text.is_empty()
        && !text.starts_with('#')
        && !text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '=')
        && !looks_like_url(text)
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

/// One field of a line, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// `"…"`: always OUT (or the first field's URL).
    Quoted(String),
    /// Unquoted: a URL, a `key=value`, or OUT.
    Bare(String),
    /// `key="…"`: a key whose value is quoted.
    Pair {
        /// Before the `=`.
        key: String,
        /// The quoted value, unescaped.
        value: String,
        /// The field as written, for messages.
        raw: String,
    },
}

/// The whitespace-separated fields of a line. A field that starts with `"`
/// runs to the next unescaped `"` and may hold spaces (`"my file.pdf"`);
/// inside it `\"` is a quote and `\\` a backslash. So does the value of a
/// `key="…"` field whose key is a plain word.
struct Fields<'a>(&'a str);

impl Iterator for Fields<'_> {
    type Item = Result<Field, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start();
        // A `#` that starts a field starts a comment: `URL  # the first file`.
        // One inside a field (a URL's `#fragment`) or quoted (`"#1.txt"`) does not.
        if rest.is_empty() || rest.starts_with('#') {
            self.0 = "";
            return None;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            return Some(match read_quoted(quoted) {
                Some((field, after)) => {
                    self.0 = after;
                    Ok(Field::Quoted(field))
                }
                None => {
                    self.0 = "";
                    Err(LineError::BadQuote(rest.to_string()))
                }
            });
        }
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        if key_end > 0
            && let Some(quoted) = rest[key_end..].strip_prefix("=\"")
        {
            return Some(match read_quoted(quoted) {
                Some((value, after)) => {
                    self.0 = after;
                    Ok(Field::Pair {
                        key: rest[..key_end].to_string(),
                        value,
                        raw: rest[..rest.len() - after.len()].to_string(),
                    })
                }
                None => {
                    self.0 = "";
                    Err(LineError::BadQuote(rest.to_string()))
                }
            });
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.0 = &rest[end..];
        Some(Ok(Field::Bare(rest[..end].to_string())))
    }
}

/// The text of a quoted field whose opening `"` is just before `quoted`,
/// unescaped, and what follows its closing `"`; `None` if it does not close,
/// or if text is stuck to the closing quote.
fn read_quoted(quoted: &str) -> Option<(String, &str)> {
    let mut field = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let after = &quoted[i + 1..];
                if after.starts_with(|c: char| !c.is_whitespace()) {
                    return None;
                }
                return Some((field, after));
            }
            '\\' => match chars.next() {
                Some((_, c @ ('"' | '\\'))) => field.push(c),
                Some((_, c)) => field.extend(['\\', c]),
                None => return None,
            },
            c => field.push(c),
        }
    }
    None
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
                    Ok(Some(line)) => Ok(Entry::new(origin, line)),
                    Err(e) => Err((origin, e, shown_line(text))),
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
        parse_line(text).map(|o| o.map(|l| (l.url.to_string(), l.out, !l.checksums.is_empty())))
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
            "a=b",
            "http://h/x",
        ] {
            let quoted = quote_field(text);
            let fields: Vec<_> = Fields(&format!("  {quoted} next")).collect();
            let first = if quoted.starts_with('"') {
                Field::Quoted(text.to_string())
            } else {
                Field::Bare(text.to_string())
            };
            assert_eq!(
                fields,
                [Ok(first), Ok(Field::Bare("next".into()))],
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
        assert_eq!(
            parse("http://h/a x y"),
            Err(LineError::SecondOut {
                first: "x".into(),
                second: "y".into()
            })
        );
    }

    #[test]
    fn version_2_lines_give_sources_checksums_and_headers() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha512 = "cf".repeat(64);
        let line = parse_line(&format!(
            "http://h/a.iso\thttps://m1/a.iso http://m2/x?a=b\tout.iso md5={md5} SHA512={} \
             header=\"X-Token: a b\" header=X-B:c",
            sha512.to_uppercase()
        ))
        .unwrap()
        .unwrap();
        assert_eq!(line.url.as_str(), "http://h/a.iso");
        let mirrors: Vec<&str> = line.mirrors.iter().map(Url::as_str).collect();
        assert_eq!(mirrors, ["https://m1/a.iso", "http://m2/x?a=b"]);
        assert_eq!(line.out, Some(OutPath::File("out.iso".into())));
        let sums: Vec<String> = line.checksums.iter().map(ToString::to_string).collect();
        assert_eq!(sums, [format!("md5={md5}"), format!("sha512={sha512}")]);
        assert_eq!(
            line.headers,
            [("X-Token".into(), "a b".into()), ("X-B".into(), "c".into())]
        );
        // Any order after the first URL; the same digest twice is one.
        let reordered = parse_line(&format!(
            "http://h/a.iso md5={md5} header=\"X-Token: a b\" out.iso sha512={sha512} md5={md5} \
             https://m1/a.iso header=X-B:c http://m2/x?a=b"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(reordered, line);
        // Quoted fields are OUT, never a URL or a key.
        for (quoted, out) in [
            (r#""http://m/b.txt""#, "http:/m/b.txt"),
            (r#""sha256=ab""#, "sha256=ab"),
            (r#""a=b.txt""#, "a=b.txt"),
        ] {
            let line = parse_line(&format!("http://h/a {quoted}")).unwrap().unwrap();
            assert_eq!(line.out, Some(OutPath::File(out.into())), "{quoted}");
            assert!(line.mirrors.is_empty() && line.checksums.is_empty(), "{quoted}");
        }
        // Written back, read again: the same entry.
        let written = write_line(
            &line.url,
            &line.mirrors,
            Some("my file=1.iso"),
            &line.checksums,
            &line.headers,
        );
        let again = parse_line(&written).unwrap().unwrap();
        assert_eq!(again.out, Some(OutPath::File("my file=1.iso".into())));
        assert_eq!(
            (again.url, again.mirrors, again.checksums, again.headers),
            (line.url, line.mirrors, line.checksums, line.headers),
            "{written}"
        );
    }

    #[test]
    fn shown_lines_hide_header_values() {
        for (text, want) in [
            (
                r#" http://h/a x y header="Authorization: Bearer s3cret" "#,
                r#"http://h/a x y header="Authorization: ***""#,
            ),
            (
                "http://h/a header=X-Key:s3cret foo=bar",
                r#"http://h/a header="X-Key: ***" foo=bar"#,
            ),
            // A malformed header is the error: it is shown as written.
            ("http://h/a header=NoColon", "http://h/a header=NoColon"),
            ("http://h/a?header=x:y z", "http://h/a?header=x:y z"),
        ] {
            assert_eq!(shown_line(text), want, "{text}");
        }
    }

    #[test]
    fn version_2_errors_name_the_field() {
        let sha256 = "ab".repeat(32);
        let table: Vec<(String, LineError)> = vec![
            (
                "http://h/a foo=bar".into(),
                LineError::UnknownKey("foo=bar".into()),
            ),
            (
                "http://h/a a=b.txt".into(),
                LineError::UnknownKey("a=b.txt".into()),
            ),
            (
                r#"http://h/a foo="x y""#.into(),
                LineError::UnknownKey(r#"foo="x y""#.into()),
            ),
            (
                "http://h/a sha256=12".into(),
                LineError::BadChecksum {
                    field: "sha256=12".into(),
                    digits: 64,
                },
            ),
            (
                format!("http://h/a md5={sha256}"),
                LineError::BadChecksum {
                    field: format!("md5={sha256}"),
                    digits: 32,
                },
            ),
            (
                format!("http://h/a sha1={}", "zz".repeat(20)),
                LineError::BadChecksum {
                    field: format!("sha1={}", "zz".repeat(20)),
                    digits: 40,
                },
            ),
            (
                format!("http://h/a sha384={sha256}"),
                LineError::BadChecksum {
                    field: format!("sha384={sha256}"),
                    digits: 96,
                },
            ),
            (
                format!("http://h/a sha256={sha256} sha256={}", "cd".repeat(32)),
                LineError::SecondChecksum(format!("sha256={}", "cd".repeat(32))),
            ),
            (
                r#"http://h/a x "y z""#.into(),
                LineError::SecondOut {
                    first: "x".into(),
                    second: "y z".into(),
                },
            ),
            (
                "http://h/a ftp://h/b.txt".into(),
                LineError::BadSource {
                    field: "ftp://h/b.txt".into(),
                    why: LineError::Scheme("ftp".into()).to_string(),
                },
            ),
            (
                "http://h/a header=NoColon".into(),
                LineError::BadHeader {
                    field: "header=NoColon".into(),
                    why: r#"header "NoColon" has no ':' (expected 'Name: value')"#.into(),
                },
            ),
            (
                r#"http://h/a header="Bad Name: x""#.into(),
                LineError::BadHeader {
                    field: r#"header="Bad Name: x""#.into(),
                    why: r#"header name "Bad Name" is not a valid token"#.into(),
                },
            ),
            (
                r#"http://h/a header=": x""#.into(),
                LineError::BadHeader {
                    field: r#"header=": x""#.into(),
                    why: r#"header name "" is not a valid token"#.into(),
                },
            ),
            (
                r#"http://h/a header="X-A: b"c"#.into(),
                LineError::BadQuote(r#"header="X-A: b"c"#.into()),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_line(&text), Err(want), "{text}");
        }
        assert!(
            matches!(
                parse_line("http://h/a http://[::1/b"),
                Err(LineError::BadSource { field, why }) if field == "http://[::1/b" && why.starts_with("invalid URL")
            ),
            "a source that does not parse"
        );
        // The first field must be the URL, whatever follows.
        assert!(matches!(
            parse_line("a.txt http://h/a"),
            Err(LineError::BadUrl(_))
        ));
        assert_eq!(
            parse_line("ftp://h/a http://h/a"),
            Err(LineError::Scheme("ftp".into()))
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
