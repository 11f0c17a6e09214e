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
pub fn url(url: &Url) -> String {
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
/// as `http://u:p@h`. It runs to the next whitespace, or, when it opens a
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
/// URL swallowed by a quoted field is redacted too. Idempotent.
pub fn redact(s: &str) -> Cow<'_, str> {
    if !s.contains(':') || !s.contains('@') {
        return Cow::Borrowed(s);
    }
    let mut hidden: Vec<Range<usize>> = Vec::new();
    for (colon, _) in s.match_indices(':') {
        if let Some(range) = credentials_after(s, colon) {
            hidden.push(range);
        }
    }
    if hidden.is_empty() {
        return Cow::Borrowed(s);
    }
    hidden.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for range in hidden {
        if range.end <= at {
            continue;
        }
        let start = range.start.max(at);
        out.push_str(&s[at..start]);
        if range.start >= at {
            out.push_str(HIDDEN);
        }
        at = range.end;
    }
    out.push_str(&s[at..]);
    Cow::Owned(out)
}

/// Schemes the WHATWG URL parser treats as special: any number of slashes
/// (or backslashes, or none) may follow the colon.
const SPECIAL: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "file"];

/// The byte range of the credentials of a URL whose scheme ends at the `:`
/// at byte `colon` of `s`, if that `:` starts a URL and the URL has any.
fn credentials_after(s: &str, colon: usize) -> Option<Range<usize>> {
    let bytes = s.as_bytes();
    let scheme_start = s[..colon]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |i| i + 1);
    let scheme = &s[scheme_start..colon];
    let special = SPECIAL.iter().any(|k| k.eq_ignore_ascii_case(scheme));
    let rest = &s[colon + 1..];
    if !special && !rest.starts_with("//") {
        return None;
    }
    let slashes = rest.len() - rest.trim_start_matches(['/', '\\']).len();
    let start = colon + 1 + slashes;
    let quoted = scheme_start > 0 && bytes[scheme_start - 1] == b'"';
    let end = start + token_len(&s[start..], quoted);
    let token = &s[start..end];
    let last_at = token.rfind('@')?;
    let cut = match Url::parse(&s[scheme_start..end]) {
        Ok(parsed) if parsed.username().is_empty() && parsed.password().is_none() => return None,
        Ok(_) => {
            let query = token.find(['?', '#']).unwrap_or(token.len());
            token[..query].rfind('@')?
        }
        Err(_) => last_at,
    };
    Some(start..start + cut)
}

/// How far a URL starting `s` runs: to the first whitespace, or for a
/// `"`-quoted field to its closing `"` (not one escaped as `\"`), or to the end.
fn token_len(s: &str, quoted: bool) -> usize {
    if !quoted {
        return s.find(char::is_whitespace).unwrap_or(s.len());
    }
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
pub fn bytes(n: u64) -> String {
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
