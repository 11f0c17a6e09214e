//! What fetchq reads from response headers, none of it trusted: Content-Range
//! and Content-Length (RFC 9110 §14.4, §8.6), the version validators for
//! `If-Range` (§13.1.5), and Retry-After (§10.2.3).

use std::time::{Duration, SystemTime};

use ureq::http::{HeaderMap, StatusCode, header};

use crate::error::FetchError;

/// A `Content-Range: bytes START-END/TOTAL` header (RFC 9110 §14.4).
pub(super) struct ContentRange {
    /// First byte sent.
    pub(super) start: u64,
    /// Last byte sent (inclusive).
    pub(super) end: u64,
    /// The whole representation's length, if the server gave it (not `*`).
    pub(super) total: Option<u64>,
}

/// Numbers from the server are untrusted: anything beyond 2^63 or inconsistent is refused.
const MAX_SIZE: u64 = 1 << 63;

/// Parse and check a 206's Content-Range: both ends below 2^63, in order,
/// and inside the total when one is given.
pub(super) fn content_range(headers: &HeaderMap) -> Result<ContentRange, FetchError> {
    let bad = |why: &str| FetchError::BadResponse(format!("{why} Content-Range on a 206"));
    let value = header_str(headers, header::CONTENT_RANGE).ok_or_else(|| bad("no"))?;
    let spec = value
        .trim()
        .strip_prefix("bytes ")
        .ok_or_else(|| bad("malformed"))?;
    let (range, total) = spec.split_once('/').ok_or_else(|| bad("malformed"))?;
    let (start, end) = range.split_once('-').ok_or_else(|| bad("malformed"))?;
    let number = |s: &str| s.trim().parse::<u64>().ok().filter(|n| *n < MAX_SIZE);
    let start = number(start).ok_or_else(|| bad("out-of-range"))?;
    let end = number(end).ok_or_else(|| bad("out-of-range"))?;
    let total = match total.trim() {
        "*" => None,
        t => Some(number(t).ok_or_else(|| bad("out-of-range"))?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return Err(bad("inconsistent"));
    }
    Ok(ContentRange { start, end, total })
}

/// The `*/TOTAL` of a 416's Content-Range.
pub(super) fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let value = header_str(headers, header::CONTENT_RANGE)?;
    value.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// The size the part file must reach, from Content-Length (and Content-Range on a 206).
pub(super) fn expected_length(
    headers: &HeaderMap,
    status: StatusCode,
    offset: u64,
) -> Result<Option<u64>, FetchError> {
    let length = match header_str(headers, header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n < MAX_SIZE)
                .ok_or_else(|| FetchError::BadResponse(format!("unusable Content-Length {v:?}")))?,
        ),
    };
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Chunked framing wins over Content-Length (RFC 9112 §6.3); the end is the last chunk.
        return Ok(None);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let range = content_range(headers)?;
        let span = range.end - range.start + 1;
        if length.is_some_and(|l| l != span) {
            return Err(FetchError::BadResponse(
                "Content-Length contradicts Content-Range".into(),
            ));
        }
        return Ok(Some(range.total.unwrap_or(range.end + 1)));
    }
    Ok(length.map(|l| l + offset))
}

/// The validator to send as `If-Range`: a strong ETag, else Last-Modified.
pub(super) fn validator(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
        .map(str::to_string)
}

/// Whether a 206's `ETag` or `Last-Modified` (whichever `validator`, the
/// `If-Range` sent, is) names the version asked for; a server that ignores
/// `If-Range` may send a range of another one. Absent means no evidence.
pub(super) fn same_version(validator: &str, headers: &HeaderMap) -> bool {
    if validator.starts_with('"') {
        return header_str(headers, header::ETAG).is_none_or(|etag| etag == validator);
    }
    let date = |v: &str| httpdate::parse_http_date(v).ok();
    header_str(headers, header::LAST_MODIFIED).is_none_or(|lm| date(lm) == date(validator))
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, header::RETRY_AFTER)?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A number of seconds beyond u64 still asks for a long wait: it is
        // capped by --retry-wait-max like any other, never ignored.
        return Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A header's value, if present and visible ASCII.
pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn content_range_is_parsed_and_checked() {
        let ok = content_range(&headers(&[("content-range", "bytes 10-19/20")])).unwrap();
        assert_eq!((ok.start, ok.end, ok.total), (10, 19, Some(20)));
        for bad in [
            "bytes 10-9/20",
            "bytes 10-20/20",
            "bytes 0-1/99999999999999999999",
            "bytes 0-9223372036854775808/*",
            "items 0-1/2",
            "bytes -1-2/3",
        ] {
            assert!(
                content_range(&headers(&[("content-range", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn length_must_agree_with_range() {
        let h = headers(&[("content-range", "bytes 5-9/10"), ("content-length", "4")]);
        assert!(expected_length(&h, StatusCode::PARTIAL_CONTENT, 5).is_err());
        let h = headers(&[("content-range", "bytes 5-9/10"), ("content-length", "5")]);
        assert_eq!(
            expected_length(&h, StatusCode::PARTIAL_CONTENT, 5).unwrap(),
            Some(10)
        );
        let h = headers(&[("content-length", "-5")]);
        assert!(expected_length(&h, StatusCode::OK, 0).is_err());
        let h = headers(&[("content-length", "18446744073709551615")]);
        assert!(expected_length(&h, StatusCode::OK, 0).is_err());
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        let wait = retry_after(&headers(&[("retry-after", &soon)])).unwrap();
        assert!(
            wait > Duration::from_secs(95) && wait <= Duration::from_secs(100),
            "{wait:?}"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "99999999999999999999999999")])),
            Some(Duration::MAX),
            "too large for u64 is still a long wait"
        );
    }
}
