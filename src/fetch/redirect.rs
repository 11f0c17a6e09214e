//! Sending one GET and following its redirects by hand (ureq's own
//! following is off, see [`crate::client`]): each hop is checked (scheme,
//! loops, `--max-redirects`), and credential headers given with `-H` or the
//! entry's `header=` go only to the origin of the entry's URL. Cookies from the run's jar go with each
//! hop its rules allow (unless `-H Cookie` is given, which wins), and every
//! hop's `Set-Cookie` goes into the jar.

use std::time::Duration;

use ureq::http::{StatusCode, header};
use url::Url;

use super::classify::request_error;
use super::headers::header_str;
use super::{Fetcher, Progress};
use crate::error::FetchError;

/// Headers whose value is a credential: never sent to another origin after a redirect.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl Fetcher {
    /// `Authorization` from the `.netrc` entry for `url`'s host, unless the
    /// URL carries its own `user:password@` (which ureq sends, and which
    /// wins) or `-H` or the entry gives an `Authorization` of its own.
    fn netrc_authorization(&self, url: &Url, entry_headers: &[(String, String)]) -> Option<String> {
        let netrc = self.config.netrc.as_ref()?;
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let user_header = self
            .config
            .headers
            .iter()
            .chain(entry_headers)
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if user_header {
            return None;
        }
        let credentials = netrc.for_host(url.host_str()?)?;
        Some(crate::base64::basic(&credentials.login, &credentials.password))
    }

    /// The `Cookie` header from the run's jar for `url`, unless `-H` gives a
    /// `Cookie` of its own, nor the entry.
    fn jar_cookies(&self, url: &Url, entry_headers: &[(String, String)]) -> Option<String> {
        let jar = self.config.cookies.as_ref()?;
        let user_header = self
            .config
            .headers
            .iter()
            .chain(entry_headers)
            .any(|(name, _)| name.eq_ignore_ascii_case("cookie"));
        if user_header {
            return None;
        }
        jar.header(url)
    }

    /// Send a GET for the bytes from `offset` to `end` (exclusive; to the
    /// end of the file if `None`), following redirects by hand (see
    /// [`crate::client`]), with `-H` and then the entry's own `headers` on
    /// every hop, both under the same cross-origin rule.
    pub(super) fn send(
        &self,
        url: &Url,
        headers: &[(String, String)],
        offset: u64,
        end: Option<u64>,
        deadline: Option<Duration>,
        progress: &mut Progress,
    ) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        let mut current = url.clone();
        // The URLs asked for before `current`, to name a redirect loop.
        let mut earlier: Vec<Url> = Vec::new();
        loop {
            let mut request = self
                .agent
                .get(current.as_str())
                .header("Accept-Encoding", "identity");
            let same_origin = earlier.is_empty() || current.origin() == url.origin();
            for (name, value) in self.config.headers.iter().chain(headers) {
                if same_origin || !CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    request = request.header(name.as_str(), value.as_str());
                }
            }
            if same_origin && let Some(authorization) = self.netrc_authorization(url, headers) {
                request = request.header("Authorization", authorization);
            }
            if let Some(cookies) = self.jar_cookies(&current, headers) {
                request = request.header("Cookie", cookies);
            }
            if offset > 0 || end.is_some() {
                let last = end.map_or_else(String::new, |end| end.saturating_sub(1).to_string());
                request = request.header("Range", format!("bytes={offset}-{last}"));
                if let Some(validator) = &progress.validator {
                    request = request.header("If-Range", validator);
                }
            } else if let Some(conditional) = &progress.conditional {
                if let Some(etag) = &conditional.etag {
                    request = request.header("If-None-Match", etag);
                }
                if let Some(modified) = conditional.modified {
                    request = request.header("If-Modified-Since", httpdate::fmt_http_date(modified));
                }
            }
            let proxy = self.proxies.for_url(&current);
            if deadline.is_some() || proxy.is_some() {
                request = request.config().timeout_global(deadline).proxy(proxy).build();
            }
            let response = request.call().map_err(request_error)?;
            if let Some(jar) = &self.config.cookies {
                let set = response.headers().get_all(header::SET_COOKIE);
                jar.store(&current, set.iter().filter_map(|v| v.to_str().ok()));
            }
            let status = response.status();
            let location = header_str(response.headers(), header::LOCATION)
                .filter(|_| status.is_redirection() && status != StatusCode::NOT_MODIFIED);
            let Some(location) = location else {
                progress.final_url = Some(current);
                return Ok(response);
            };
            progress.final_url = Some(current.clone());
            let next = current
                .join(location)
                .map_err(|e| FetchError::Redirect(format!("redirect to an invalid URL ({e})")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Redirect(format!(
                    "redirect to unsupported scheme {:?}",
                    next.scheme()
                )));
            }
            if next == current || earlier.contains(&next) {
                return Err(FetchError::Redirect(format!(
                    "redirect loop ({} redirects, back to {})",
                    earlier.len() + 1,
                    crate::display::url(&next)
                )));
            }
            if earlier.len() >= self.config.max_redirects as usize {
                return Err(FetchError::Redirect(format!(
                    "too many redirects (more than {})",
                    self.config.max_redirects
                )));
            }
            earlier.push(std::mem::replace(&mut current, next));
        }
    }
}
