//! The cookie jar of a run: cookies read from a Netscape `cookies.txt`
//! (`--load-cookies`), cookies the servers set, and the file written back
//! (`--save-cookies`).
//!
//! The rules of RFC 6265 (which cookie goes to which domain, path and scheme,
//! and when it expires) are `cookie_store`'s; this module adds the file format
//! and one guard `cookie_store` leaves to its public-suffix feature: a
//! `Domain` attribute without a dot (`Domain=com`) is refused unless it names
//! the responding host itself, so `evil.com` cannot set a cookie for every
//! `.com` host of the run. Multi-label suffixes (`co.uk`) are not caught.
//! The binary reads and writes the files; nothing here touches the disk.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use url::Url;

/// Why a line of a cookies file cannot be used (never quoting its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CookiesError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The cookies of a run, shared by the workers.
#[derive(Debug, Default)]
pub struct Cookies {
    store: Mutex<CookieStore>,
}

const HTTP_ONLY_PREFIX: &str = "#HttpOnly_";

impl Cookies {
    /// An empty jar.
    pub fn new() -> Cookies {
        Cookies::default()
    }

    /// Read a Netscape `cookies.txt`: per line `domain`, `include_subdomains`,
    /// `path`, `secure`, `expiry` (Unix seconds, 0 for a session cookie),
    /// `name`, `value`, separated by tabs; `#HttpOnly_` before the domain
    /// marks an HttpOnly cookie, other lines starting with `#` and blank
    /// lines are skipped, and cookies already expired are dropped.
    pub fn parse(text: &str) -> Result<Cookies, CookiesError> {
        let mut store = CookieStore::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let fail = |reason| CookiesError {
                line: line_no,
                reason,
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (line, http_only) = match line.strip_prefix(HTTP_ONLY_PREFIX) {
                Some(rest) => (rest, true),
                None => (line, false),
            };
            if line.trim().is_empty() || (!http_only && line.starts_with('#')) {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [domain, subdomains, path, secure, expiry, name, value] = fields[..] else {
                return Err(fail("expected 7 tab-separated fields"));
            };
            let host = domain.trim_start_matches('.');
            let subdomains = flag(subdomains).ok_or(fail("include_subdomains is not TRUE or FALSE"))?;
            let secure = flag(secure).ok_or(fail("secure is not TRUE or FALSE"))?;
            if !path.starts_with('/') {
                return Err(fail("path does not start with /"));
            }
            let expiry: i64 = expiry
                .parse()
                .map_err(|_| fail("expiry is not a number of seconds"))?;
            if name.is_empty() {
                return Err(fail("empty cookie name"));
            }
            let url = Url::parse(&format!("https://{host}/"))
                .ok()
                .filter(|url| url.host_str().is_some_and(|h| !h.is_empty()))
                .ok_or(fail("domain is not a host name"))?;
            let mut raw = RawCookie::new(name.to_string(), value.to_string());
            if subdomains {
                raw.set_domain(host.to_string());
            }
            raw.set_path(path.to_string());
            raw.set_secure(secure);
            raw.set_http_only(http_only);
            if expiry > 0 {
                let at = cookie::time::OffsetDateTime::from_unix_timestamp(expiry)
                    .map_err(|_| fail("expiry is out of range"))?;
                raw.set_expires(at);
            } else if expiry < 0 {
                return Err(fail("expiry is negative"));
            }
            match store.insert_raw(&raw, &url) {
                Ok(_) | Err(cookie_store::CookieError::Expired) => {}
                Err(_) => return Err(fail("not a cookie its domain could set")),
            }
        }
        Ok(Cookies {
            store: Mutex::new(store),
        })
    }

    /// The `Cookie` header for a request to `url`, if any cookie goes there.
    pub(crate) fn header(&self, url: &Url) -> Option<String> {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let mut header = String::new();
        for (name, value) in store.get_request_values(url) {
            if !header.is_empty() {
                header.push_str("; ");
            }
            let _ = write!(header, "{name}={value}");
        }
        (!header.is_empty()).then_some(header)
    }

    /// Keep the cookies of a response from `url` (its `Set-Cookie` values)
    /// that RFC 6265 and the dotless-`Domain` guard allow.
    pub(crate) fn store<'a>(&self, url: &Url, set_cookies: impl Iterator<Item = &'a str>) {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        for value in set_cookies {
            let Ok(mut raw) = RawCookie::parse(value.to_string()) else {
                continue;
            };
            let domain = raw
                .domain()
                .map(|d| d.trim_start_matches('.').to_ascii_lowercase());
            if let Some(domain) = domain
                && !domain.contains('.')
            {
                if url.host_str() != Some(domain.as_str()) {
                    continue;
                }
                raw.unset_domain();
            }
            // A refused cookie (wrong domain, ...) is ignored, as browsers do.
            let _ = store.insert_raw(&raw, url);
        }
    }

    /// Every unexpired cookie, session cookies included (with expiry 0), in
    /// the format [`Cookies::parse`] reads.
    pub fn to_netscape(&self) -> String {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::from("# Netscape HTTP Cookie File\n# Written by fetchq.\n\n");
        for cookie in store.iter_unexpired() {
            let (domain, subdomains) = match &cookie.domain {
                CookieDomain::HostOnly(host) => (host.clone(), "FALSE"),
                CookieDomain::Suffix(suffix) => (format!(".{suffix}"), "TRUE"),
                CookieDomain::NotPresent | CookieDomain::Empty => continue,
            };
            let expiry = match cookie.expires {
                CookieExpiration::AtUtc(at) => at.unix_timestamp().max(1),
                CookieExpiration::SessionEnd => 0,
            };
            let _ = writeln!(
                text,
                "{}{domain}\t{subdomains}\t{}\t{}\t{expiry}\t{}\t{}",
                if cookie.http_only().unwrap_or(false) {
                    HTTP_ONLY_PREFIX
                } else {
                    ""
                },
                &*cookie.path,
                if cookie.secure().unwrap_or(false) {
                    "TRUE"
                } else {
                    "FALSE"
                },
                cookie.name(),
                cookie.value(),
            );
        }
        text
    }
}

/// `TRUE` or `FALSE`, in any case.
fn flag(field: &str) -> Option<bool> {
    if field.eq_ignore_ascii_case("TRUE") {
        Some(true)
    } else if field.eq_ignore_ascii_case("FALSE") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn file_lines() {
        let cases: [(&str, Result<usize, usize>); 8] = [
            ("# comment\n\nexample.com\tFALSE\t/\tFALSE\t0\ta\tb\n", Ok(1)),
            ("#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\ta\tb\n", Ok(1)),
            ("example.com\tFALSE\t/\tFALSE\t1\ta\tb\n", Ok(0)),
            ("example.com\tFALSE\t/\tFALSE\t0\ta\n", Err(1)),
            ("\nexample.com\tMAYBE\t/\tFALSE\t0\ta\tb\n", Err(2)),
            ("example.com\tFALSE\tx\tFALSE\t0\ta\tb\n", Err(1)),
            ("example.com\tFALSE\t/\tFALSE\tsoon\ta\tb\n", Err(1)),
            ("\tFALSE\t/\tFALSE\t0\ta\tb\n", Err(1)),
        ];
        for (text, want) in cases {
            let got = Cookies::parse(text).map(|c| c.store.lock().map_or(0, |s| s.iter_unexpired().count()));
            assert_eq!(got.map_err(|e| e.line), want, "{text:?}");
        }
    }

    #[test]
    fn dotless_domain_is_refused_unless_it_is_the_host() {
        let cookies = Cookies::new();
        cookies.store(&url("http://www.evil.test/"), ["a=1; Domain=test"].into_iter());
        cookies.store(&url("http://localhost/"), ["b=2; Domain=localhost"].into_iter());
        cookies.store(
            &url("http://www.good.test/"),
            ["c=3; Domain=good.test"].into_iter(),
        );
        assert_eq!(cookies.header(&url("http://other.test/")), None);
        assert_eq!(cookies.header(&url("http://localhost/")).as_deref(), Some("b=2"));
        assert_eq!(cookies.header(&url("http://sub.localhost/")), None);
        assert_eq!(
            cookies.header(&url("http://x.good.test/")).as_deref(),
            Some("c=3")
        );
    }

    #[test]
    fn save_then_load_keeps_the_rules() {
        let cookies = Cookies::new();
        let set = [
            "s=1; Secure; HttpOnly; Path=/p; Max-Age=3600",
            "d=2; Domain=example.com",
        ];
        cookies.store(&url("https://www.example.com/p/x"), set.into_iter());
        let again = Cookies::parse(&cookies.to_netscape()).expect("own output parses");
        let both = again
            .header(&url("https://www.example.com/p/y"))
            .unwrap_or_default();
        assert!(both == "s=1; d=2" || both == "d=2; s=1", "{both}");
        assert_eq!(
            again.header(&url("http://www.example.com/p/y")).as_deref(),
            Some("d=2")
        );
        assert_eq!(
            again.header(&url("https://a.example.com/p/z")).as_deref(),
            Some("d=2")
        );
    }
}
