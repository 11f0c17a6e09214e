//! http:// requests through an HTTP proxy, in the form RFC 9112 §3.2.2 gives
//! a client talking to a proxy: the request target in absolute form
//! (`GET http://host:port/path HTTP/1.1`) on a plain connection to the proxy,
//! with `Proxy-Authorization: Basic` from the proxy URL's userinfo. No CONNECT
//! tunnel: proxies commonly allow CONNECT only to port 443 (squid's stock
//! `http_access deny CONNECT !SSL_ports`). curl and wget do the same.
//!
//! ureq writes every request line in origin form (`GET /path HTTP/1.1`).
//! [`Forward`] sits between ureq and the connection to the proxy and rewrites
//! the request line of each request it carries; the `Host` header ureq writes
//! already names the origin. Only connections to a proxy get this transport,
//! so a direct request pays nothing. ureq pools connections by target scheme,
//! host, port and proxy, so one connection to the proxy only ever carries
//! requests for one origin, and its prefix is fixed when it is made.

use std::fmt;

use ureq::unversioned::transport::{Buffers, NextTimeout, Transport};

use crate::base64::base64;

/// A connection to an HTTP proxy that sends requests in absolute form.
pub(crate) struct Forward {
    inner: Box<dyn Transport>,
    /// `http://host[:port]` of the origin, as in the request URL without userinfo.
    origin: String,
    /// The whole `Proxy-Authorization` header line, when the proxy URL has credentials.
    authorization: Option<String>,
    /// The next write starts a request: fetchq sends only body-less GETs, so
    /// every write after a read (or the first ever) begins with a request line.
    at_request: bool,
    /// The rewritten request, reused between requests.
    scratch: Vec<u8>,
}

impl Forward {
    /// Carry requests for the origin `authority` (`host[:port]`, no userinfo)
    /// over `inner`, a connection to the proxy.
    pub(crate) fn new(
        inner: Box<dyn Transport>,
        authority: &str,
        credentials: Option<(&str, &str)>,
    ) -> Forward {
        Forward {
            inner,
            origin: format!("http://{authority}"),
            authorization: credentials.map(|(user, password)| {
                let token = base64(format!("{user}:{password}").as_bytes());
                format!("Proxy-Authorization: Basic {token}\r\n")
            }),
            at_request: true,
            scratch: Vec::new(),
        }
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the authorization line.
        f.debug_struct("Forward")
            .field("origin", &self.origin)
            .field("inner", &self.inner)
            .finish()
    }
}

impl Transport for Forward {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if !std::mem::take(&mut self.at_request) {
            return self.inner.transmit_output(amount, timeout);
        }
        let request = &self.inner.buffers().output()[..amount];
        self.scratch.clear();
        if !absolute_form(
            request,
            &self.origin,
            self.authorization.as_deref(),
            &mut self.scratch,
        ) {
            return self.inner.transmit_output(amount, timeout);
        }
        // The rewritten request is a little longer; send it in buffer-sized pieces.
        let mut sent = 0;
        while sent < self.scratch.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.scratch.len() - sent);
            output[..n].copy_from_slice(&self.scratch[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.at_request = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }
}

/// Write `request` (starting with an origin-form request line) into `out`
/// with the target made absolute and the authorization line after the
/// request line. False, leaving `out` untouched, when `request` does not
/// start with `METHOD /target VERSION\r\n`.
fn absolute_form(request: &[u8], origin: &str, authorization: Option<&str>, out: &mut Vec<u8>) -> bool {
    let Some(space) = request.iter().position(|&b| b == b' ') else {
        return false;
    };
    if request.get(space + 1) != Some(&b'/') {
        return false;
    }
    let Some(line_end) = request.windows(2).position(|w| w == b"\r\n").map(|i| i + 2) else {
        return false;
    };
    if line_end < space {
        return false;
    }
    let headers = &request[line_end..];
    out.reserve(request.len() + origin.len() + authorization.map_or(0, str::len));
    out.extend_from_slice(&request[..=space]);
    out.extend_from_slice(origin.as_bytes());
    out.extend_from_slice(&request[space + 1..line_end]);
    // A Proxy-Authorization the user gave with -H wins over the URL's.
    if let Some(line) = authorization
        && !has_header(headers, b"proxy-authorization:")
    {
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(headers);
    true
}

/// Whether a header block holds a line starting with `name` (lower case, with its colon).
fn has_header(headers: &[u8], name: &[u8]) -> bool {
    headers
        .split(|&b| b == b'\n')
        .any(|line| line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(request: &str, auth: Option<&str>) -> Option<String> {
        let mut out = Vec::new();
        absolute_form(request.as_bytes(), "http://h:8080", auth, &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn request_lines_become_absolute() {
        let auth = Some("Proxy-Authorization: Basic eDp5\r\n");
        let cases = [
            (
                "GET /a?b HTTP/1.1\r\nHost: h:8080\r\n\r\n",
                None,
                Some("GET http://h:8080/a?b HTTP/1.1\r\nHost: h:8080\r\n\r\n"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: h:8080\r\n\r\n",
                auth,
                Some(
                    "GET http://h:8080/ HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\nHost: h:8080\r\n\r\n",
                ),
            ),
            (
                "GET / HTTP/1.1\r\nproxy-authorization: Basic mine\r\n\r\n",
                auth,
                Some("GET http://h:8080/ HTTP/1.1\r\nproxy-authorization: Basic mine\r\n\r\n"),
            ),
            // Not a request line: left alone.
            ("GET http://x/ HTTP/1.1\r\n\r\n", auth, None),
            ("OPTIONS * HTTP/1.1\r\n\r\n", auth, None),
            ("Host: a /b\r\n", None, None),
            ("GET /no-line-end", None, None),
        ];
        for (request, auth, want) in cases {
            assert_eq!(rewrite(request, auth).as_deref(), want, "{request:?}");
        }
    }
}
