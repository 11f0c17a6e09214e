//! Making untrusted text safe to show: credentials in anything shaped like a
//! URL are replaced by `***`, and control characters (ANSI escapes included)
//! and Unicode bidi controls are shown escaped, so a URL, a file name or a
//! list line can neither leak a password nor drive or disguise what a person
//! reads.
//!
//! [`redact`] is the one credential rule, for every output (stderr, `--log`,
//! `--json`, `--dry-run`, the queue's messages); [`text`] is redaction plus
//! the one escaping rule, for every output a person reads.

use std::borrow::Cow;
use std::fmt::Write;
use std::ops::Range;

use url::Url;

/// What stands in for removed credentials: `https://***@host/`.
const HIDDEN: &str = "***";

/// A URL for messages: credentials replaced by `***`, then escaped.
pub(crate) fn url(url: &Url) -> String {
    text(url.as_str()).into_owned()
}

/// Any untrusted text for a person (terminal, log, plan): credentials
/// removed by [`redact`], then control characters as `\xNN` / `\u{NNNN}` and
/// bidi controls as `\u{NNNN}`. Idempotent, so a line built from parts that
/// were already shown safe may pass through it again as a whole.
pub fn text(s: &str) -> Cow<'_, str> {
    match redact(s) {
        Cow::Borrowed(s) => escape(s),
        Cow::Owned(s) => Cow::Owned(escape(&s).into_owned()),
    }
}

/// A raw list line or field for a message: [`text`], owned.
pub fn line(s: &str) -> String {
    text(s).into_owned()
}

/// Whether a person should see `c` escaped rather than have it act:
/// C0, DEL and C1 controls (ANSI escapes, `\r`, backspace), the bidi
/// embedding, override and isolate controls and marks (U+202A–U+202E,
/// U+2066–U+2069, U+200E, U+200F, U+061C: Unicode TR9, "Trojan Source"
/// CVE-2021-42574), which reorder what follows so `a\u{202E}gpj.exe` reads
/// as `aexe.jpg`, and the line and paragraph separators U+2028/U+2029, which
/// some viewers break lines at.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `s` with every [`is_unsafe`] character escaped: ASCII controls as `\xNN`,
/// the others as `\u{NNNN}`. Nothing else changes (a backslash stays as it
/// is), so escaping twice gives the same text as escaping once.
fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` with the credentials of every URL-shaped part replaced by `***`.
///
/// Works on any text, not only on valid URLs: a raw list line, a quoted or
/// unbalanced field, a message that quotes several URLs. A URL starts at
/// `SCHEME://`, or at `http:`/`https:`/`ws:`/`wss:`/`ftp:`/`file:` followed by
/// anything, since the WHATWG URL parser reads `http:u:p@h` and `http:/u:p@h`
/// as `http://u:p@h`. It runs to the next visible whitespace (tab, line
/// feed and the like do not end it: the URL parser drops or encodes them,
/// so in `http://u:p<TAB>q@h` the password is `pq`), or, when it opens a
/// `"`-quoted field, to the closing quote (or the end of the text, when the
/// quote is never closed). Within it:
/// - when it parses as a URL without credentials, it is left as it is, so
///   `http://h/x?email=a@b` and `https://h/@user` stay readable;
/// - when it parses as a URL with credentials, everything up to the last `@`
///   before the query is hidden: at least the userinfo of RFC 3986 §3.2
///   (up to the authority's last `@`), and also a path up to an `@` in it,
///   since `http://u:SEC@RET/x@h/` is as likely a password `SEC@RET/x` as a
///   host `RET`. A query's `@` (`?email=a@b`) stays readable;
/// - when it does not parse, everything up to its *last* `@` is taken for
///   credentials: a password holding `@`, `/`, `:`, `%`, or quotes cannot
///   make the parser's idea of the host differ from the redaction's. This
///   may hide a host or path too; it never shows a secret.
///
/// Every `:` is examined, including those inside an earlier URL, so a second
/// URL swallowed by a quoted field or nested in a query is redacted too.
/// Past 16 URL parses in one text the rest are taken as unparseable, which
/// bounds the work on a hostile line. Idempotent.
pub fn redact(s: &str) -> Cow<'_, str> {
    if !s.contains(':') || !s.contains('@') {
        return Cow::Borrowed(s);
    }
    let mut scan = Scan {
        s,
        hidden: Vec::new(),
        parses_left: MAX_PARSES,
        field: None,
    };
    for (colon, _) in s.match_indices(':') {
        scan.candidate(colon);
    }
    if scan.hidden.is_empty() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for range in scan.hidden {
        out.push_str(&s[at..range.start]);
        out.push_str(HIDDEN);
        at = range.end;
    }
    out.push_str(&s[at..]);
    Cow::Owned(out)
}

/// Schemes the WHATWG URL parser treats as special: any number of slashes
/// (or backslashes, or none) may follow the colon.
const SPECIAL: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "file"];

/// URL parses per text. Past them a URL is treated as unparseable (hidden up
/// to its last `@`), so a hostile 64 KiB line of nested URLs costs a bounded
/// number of parses instead of one per `:`.
const MAX_PARSES: u32 = 16;

/// One pass of [`redact`] over `s`, candidates taken in increasing order.
struct Scan<'a> {
    s: &'a str,
    /// Ranges to hide, sorted and merged (each starts after the previous ends).
    hidden: Vec<Range<usize>>,
    parses_left: u32,
    /// The last unquoted field looked at: its start, its end (see
    /// [`ends_field`]) and its last `@`, reused by the candidates inside it, so
    /// a line of many candidates is scanned once, not once per candidate.
    field: Option<(usize, usize, Option<usize>)>,
}

impl Scan<'_> {
    /// Hide the credentials of a URL whose scheme ends at the `:` at byte
    /// `colon`, if that `:` starts a URL and the URL has any.
    fn candidate(&mut self, colon: usize) {
        let s = self.s;
        // Scheme characters are ASCII, and every byte of a wider character
        // is not one, so the byte after the last non-scheme byte starts a char.
        let scheme_start = s.as_bytes()[..colon]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .map_or(0, |i| i + 1);
        let scheme = &s[scheme_start..colon];
        let special = SPECIAL.iter().any(|k| k.eq_ignore_ascii_case(scheme));
        let rest = &s[colon + 1..];
        if !special && !rest.starts_with("//") {
            return;
        }
        let start = colon + 1 + (rest.len() - rest.trim_start_matches(['/', '\\']).len());
        let quoted = scheme_start > 0 && s.as_bytes()[scheme_start - 1] == b'"';
        let (end, last_at) = if quoted {
            let end = start + quoted_len(&s[start..]);
            (end, s[start..end].rfind('@').map(|i| start + i))
        } else {
            self.unquoted_field(start)
        };
        let Some(last_at) = last_at.filter(|&at| at >= start) else {
            return;
        };
        // Already hidden as far as this URL could need: no parse.
        if self
            .hidden
            .last()
            .is_some_and(|h| start < h.end && last_at <= h.end)
        {
            return;
        }
        let cut = if self.parses_left == 0 {
            last_at
        } else {
            self.parses_left -= 1;
            match Url::parse(&s[scheme_start..end]) {
                Ok(url) if url.username().is_empty() && url.password().is_none() => return,
                Ok(_) => {
                    let token = &s[start..end];
                    let query = token.find(['?', '#']).unwrap_or(token.len());
                    match token[..query].rfind('@') {
                        Some(at) => start + at,
                        None => return,
                    }
                }
                Err(_) => last_at,
            }
        };
        self.hide(start..cut);
    }

    /// The end of the unquoted field holding byte `start` and its last `@`.
    fn unquoted_field(&mut self, start: usize) -> (usize, Option<usize>) {
        if let Some((from, end, last_at)) = self.field
            && (from..=end).contains(&start)
        {
            return (end, last_at);
        }
        let end = start + self.s[start..].find(ends_field).unwrap_or(self.s.len() - start);
        let last_at = self.s[start..end].rfind('@').map(|i| start + i);
        self.field = Some((start, end, last_at));
        (end, last_at)
    }

    fn hide(&mut self, range: Range<usize>) {
        match self.hidden.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => self.hidden.push(range),
        }
    }
}

/// Whether `c` ends an unquoted URL: whitespace, but not the control
/// characters among it (tab, line feed, CR, VT, FF, NEL), which the URL parser
/// drops or percent-encodes: in `http://u:p<TAB>@h` the password is `p`.
fn ends_field(c: char) -> bool {
    c.is_whitespace() && !c.is_control()
}

/// How far a URL in a `"`-quoted field runs: to the closing `"` (not one
/// escaped as `\"`), or to the end.
fn quoted_len(s: &str) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i,
            _ => {}
        }
    }
    s.len()
}

/// An error with its causes, `outer: inner: innermost`, as one line. Library
/// errors keep their source out of their own message (so `{:#}` at the edge
/// never repeats it); this joins them for per-entry messages.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Bytes as a short human figure (binary units, as `ls -h` and curl do).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile and ordinary inputs: (text, what must be shown).
    const REDACTION: &[(&str, &str)] = &[
        // Valid URLs: the parser's credentials, nothing else.
        ("https://alice:s3cret@example.com/a", "https://***@example.com/a"),
        ("https://alice@example.com/a", "https://***@example.com/a"),
        ("https://:pw@example.com/a", "https://***@example.com/a"),
        ("http://u:pa@ss@h:1/x a b c", "http://***@h:1/x a b c"),
        ("http://u:SEC%40RET@h/x", "http://***@h/x"),
        ("http://u:SEC%2FRET@h/x", "http://***@h/x"),
        ("http://u:p@[::1]:8080/x", "http://***@[::1]:8080/x"),
        ("http://u:p@h/x?email=a@b", "http://***@h/x?email=a@b"),
        ("http://u:SEC@RET/x@h/y z", "http://***@h/y z"),
        ("http://u:p@h/@user", "http://***@user"),
        ("redis://:s3cret@h:6380/2", "redis://***@h:6380/2"),
        ("socks5h://u:p@proxy:1080", "socks5h://***@proxy:1080"),
        // The WHATWG parser's spellings of `http://` for special schemes.
        ("http:/u:SECRET@h/x a b", "http:/***@h/x a b"),
        ("http:u:SECRET@h/x a b", "http:***@h/x a b"),
        ("HTTP:\\\\u:SECRET@h/x a b", "HTTP:\\\\***@h/x a b"),
        // Invalid URLs: everything up to the last `@` of the field.
        ("http://u:SEC/RET@h:1/x a b", "http://***@h:1/x a b"),
        ("http://u:SEC?RET@h:1/x a", "http://***@h:1/x a"),
        ("http://u:SEC#RET@h:1/x a", "http://***@h:1/x a"),
        ("http://u:SEC\\RET@h:1/x a", "http://***@h:1/x a"),
        ("http://u:SEC%ZZ:RET@[::1/x", "http://***@[::1/x"),
        ("http://u:SEC\"RET@h/x", "http://***@h/x"),
        ("http://u:SEC/RET@h:1/x?e=a@b", "http://***@b"),
        // Quoted fields: the field runs to its closing quote, or to the end.
        ("\"http://u:SECRET@h/x", "\"http://***@h/x"),
        ("\"http://u:SEC RET@h/x\" a b", "\"http://***@h/x\" a b"),
        ("\"http://u:SEC\\\" RET@h/x\" a", "\"http://***@h/x\" a"),
        (
            "unbalanced quote in \"http://u:SEC/RET@h:1/x (a field with spaces is written as \"my file.pdf\")",
            "unbalanced quote in \"http://***@h:1/x (a field with spaces is written as \"my file.pdf\")",
        ),
        // Several URLs, including one inside another's quoted field.
        (
            "http://a:SEC1@h1/x http://b:SEC2@h2/y",
            "http://***@h1/x http://***@h2/y",
        ),
        (
            "\"http://h/a http://u:SECRET@h2/b",
            "\"http://h/a http://***@h2/b",
        ),
        (
            "l.txt:3: http://u:SECRET@h/x: HTTP 404",
            "l.txt:3: http://***@h/x: HTTP 404",
        ),
        // Nothing to hide: left exactly as it was.
        ("http://h/x?email=a@b", "http://h/x?email=a@b"),
        ("https://medium.com/@user/post", "https://medium.com/@user/post"),
        ("http://[::1]:8080/x@y", "http://[::1]:8080/x@y"),
        ("http://h:1/x a b", "http://h:1/x a b"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        (
            "l.txt:3: bad checksum \"sha256=12\"",
            "l.txt:3: bad checksum \"sha256=12\"",
        ),
        ("12:30:01 a@b", "12:30:01 a@b"),
        ("no credentials here", "no credentials here"),
        // Control characters the URL parser drops or encodes do not end a URL.
        ("http://u:SEC\tRET@h/x", "http://***@h/x"),
        ("http://u:SEC\x0bRET@h/x a", "http://***@h/x a"),
        ("http://u:SEC\nRET@h/x a", "http://***@h/x a"),
        // Wide characters around a URL.
        ("caf\u{e9}:http://u:SECRET@h/x", "caf\u{e9}:http://***@h/x"),
        ("\u{202E}http://u:SECRET@h/\u{e9}@x", "\u{202E}http://***@x"),
        (
            "\u{e9}\"http://u:SECRET@h/x\u{e9}",
            "\u{e9}\"http://***@h/x\u{e9}",
        ),
        // Already redacted: unchanged.
        ("http://***@h:1/x a b", "http://***@h:1/x a b"),
    ];

    #[test]
    fn credentials_never_show() {
        for (input, want) in REDACTION {
            let got = redact(input);
            assert_eq!(got, *want, "redact({input:?})");
            assert_eq!(redact(&got), *want, "redact twice ({input:?})");
            for secret in ["SECRET", "SEC", "RET", "s3cret", "pa@ss", "SEC1", "SEC2"] {
                if !want.contains(secret) {
                    assert!(!got.contains(secret), "{secret} in {got:?}");
                }
            }
        }
        let u = Url::parse("https://alice:s3cret@example.com/a").unwrap();
        assert_eq!(url(&u), "https://***@example.com/a");
    }

    #[test]
    fn hostile_long_lines_are_redacted_in_bounded_work() {
        // Thousands of candidate URLs in one 64 KiB line: few parses, no leak.
        for unit in [
            "http://u:SECRET@h/?n=",
            "\"http:u:SECRET@h",
            "http:u:SECRET@",
            "x://u:SECRET@h ",
        ] {
            let line = unit.repeat(64 * 1024 / unit.len());
            let shown = redact(&line);
            assert!(
                !shown.contains("SECRET"),
                "{unit:?}: {}",
                &shown[..200.min(shown.len())]
            );
        }
    }

    #[test]
    fn any_text_is_handled_and_redaction_is_idempotent() {
        // Strings over an alphabet of URL syntax, spaces, quotes and wide
        // characters, from a fixed-seed xorshift: no panic, a fixed point.
        const ALPHABET: [&str; 18] = [
            "http", "x", ":", "/", "//", "@", "\"", "\\", " ", "?", "#", "[", "]", "%4", "\u{e9}", "\t",
            "\u{202E}", "\x01",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let once = redact(&text).into_owned();
            assert_eq!(redact(&once), once, "redact twice ({text:?})");
            let shown = super::text(&text).into_owned();
            assert_eq!(super::text(&shown), shown, "text twice ({text:?})");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        for (input, want) in [
            ("a\x1b[31mred\x07", "a\\x1b[31mred\\x07"),
            ("tab\there", "tab\\x09here"),
            ("caf\u{e9}", "caf\u{e9}"),
            ("\u{9b}x", "\\u{9b}x"),
            ("a\u{202E}gpj.exe", "a\\u{202e}gpj.exe"),
            (
                "\u{202A}\u{202B}\u{202C}\u{202D}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200E}\u{200F}\u{061C}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("a\u{2028}b\u{2029}", "a\\u{2028}b\\u{2029}"),
            ("\u{200D}\u{05D0}", "\u{200D}\u{05D0}"),
            ("back\\slash", "back\\slash"),
        ] {
            assert_eq!(text(input), want, "text({input:?})");
            assert_eq!(text(&text(input)), want, "text twice ({input:?})");
        }
        assert_eq!(
            text("\"http://u:SE\x1bC@h/x\u{202E}"),
            "\"http://***@h/x\\u{202e}"
        );
    }

    #[test]
    fn byte_figures() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
