//! Making untrusted text safe to print: URLs lose their credentials, and
//! control characters (ANSI escapes included) are shown escaped so a URL, a
//! file name or a list line can never drive the terminal.

use std::borrow::Cow;
use std::fmt::Write;

use url::Url;

/// A URL for messages: `user:password@` replaced by `***@`, then escaped.
pub fn url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return text(url.as_str()).into_owned();
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    text(shown.as_str()).into_owned()
}

/// Any text for a terminal or log: control characters become `\xNN` / `\u{NNNN}`.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Best-effort credential scrub for free text that may hold a URL (a list line
/// that did not parse as a URL still may carry `user:pass@`).
pub fn line(s: &str) -> String {
    let scrubbed = match (s.find("://"), s.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let authority_end = s[scheme_end + 3..]
                .find('/')
                .map_or(s.len(), |i| i + scheme_end + 3);
            if at < authority_end {
                format!("{}***{}", &s[..scheme_end + 3], &s[at..])
            } else {
                s.to_string()
            }
        }
        _ => s.to_string(),
    };
    text(&scrubbed).into_owned()
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

    #[test]
    fn credentials_never_show() {
        let u = Url::parse("https://alice:s3cret@example.com/a").unwrap();
        assert_eq!(url(&u), "https://***@example.com/a");
        assert_eq!(line("htp://bob:pw@host/x y"), "htp://***@host/x y");
        assert_eq!(line("no credentials here"), "no credentials here");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(text("a\x1b[31mred\x07"), "a\\x1b[31mred\\x07");
        assert_eq!(text("tab\there"), "tab\\x09here");
        assert_eq!(text("caf\u{e9}"), "caf\u{e9}");
        assert_eq!(text("\u{9b}x"), "\\u{9b}x");
    }

    #[test]
    fn byte_figures() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
