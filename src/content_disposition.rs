//! The file name in a `Content-Disposition` header (RFC 6266), for
//! `--content-disposition`. Only the name is read; what it may become on disk
//! is [`crate::naming`]'s business.

use percent_encoding::percent_decode_str;

/// The file name a `Content-Disposition` header value offers, not yet
/// sanitised. `filename*` (RFC 8187, percent-encoded UTF-8 or ISO-8859-1)
/// wins over `filename`; any folder part is dropped, as browsers do (RFC 6266
/// §4.3), so `../../x` becomes `x`. `None` when there is no name left.
pub(crate) fn filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                // charset'language'percent-encoded
                let mut parts = raw.trim().splitn(3, '\'');
                let charset = parts.next().unwrap_or("").to_ascii_lowercase();
                let encoded = parts.nth(1)?;
                let bytes: Vec<u8> = percent_decode_str(encoded).collect();
                extended = Some(if charset == "utf-8" {
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    // ISO-8859-1: every byte is the code point of the same value.
                    bytes.iter().map(|&b| char::from(b)).collect()
                });
            }
            "filename" => plain = Some(unquote(raw.trim())),
            _ => {}
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!base.is_empty()).then(|| base.to_string())
}

/// Split a header value on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<&str> {
    let mut params = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    params.push(&value[start..]);
    params
}

/// A quoted-string's content (RFC 9110 §5.6.4), or a token as is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filename_params_are_parsed() {
        let cases = [
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=plain.txt", Some("plain.txt")),
            ("attachment; filename=\"../../evil.sh\"", Some("evil.sh")),
            ("attachment; filename=\"a\\\\b\"", Some("b")),
            ("attachment; filename=\"semi;colon.txt\"", Some("semi;colon.txt")),
            (
                "attachment; filename=\"x.bin\"; filename*=UTF-8''caf%C3%A9.bin",
                Some("café.bin"),
            ),
            ("attachment; filename*=iso-8859-1'en'%E9t%E9.txt", Some("été.txt")),
            ("inline", None),
            ("attachment; filename=\"\"", None),
            ("attachment; filename=\"..\"", Some("..")),
            ("attachment; filename=\"a\x1bb\"", Some("a\x1bb")),
        ];
        for (header, want) in cases {
            assert_eq!(filename(header).as_deref(), want, "{header}");
        }
    }
}
