//! The validated settings of one run: what to download where, and how.
//!
//! Nothing here knows about clap or does I/O. The binary turns what the user
//! typed into a [`Config`] in one step; the library trusts it from then on.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to do when the final file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Leave it alone and count the entry as skipped (the default: re-runs are cheap).
    #[default]
    Skip,
    /// Download again and replace it.
    Overwrite,
    /// Ask the server whether it changed (`If-None-Match` / `If-Modified-Since`)
    /// and replace it only if it did.
    Update,
}

/// Where requests go through a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProxyChoice {
    /// Use `http_proxy` / `https_proxy` / `no_proxy` from the environment.
    #[default]
    FromEnv,
    /// Use this proxy for every request.
    Url(String),
    /// Connect directly, whatever the environment says.
    Off,
}

/// Which addresses a host name may connect to (`-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    /// IPv4 and IPv6, in the order the resolver gives them.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// One `--resolve HOST:PORT:ADDR`: connections to HOST on PORT go to ADDR
/// without asking DNS; the URL keeps HOST (for TLS and `Host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The host name as in URLs, lowercase.
    pub host: String,
    /// The port the pin applies to.
    pub port: u16,
    /// Where to connect instead.
    pub addr: IpAddr,
}

impl Pin {
    /// Parse curl's `HOST:PORT:ADDR`, where ADDR may be `[v6]` or a bare IPv6
    /// address.
    pub fn parse(text: &str) -> Result<Pin, String> {
        let bad = |why: &str| format!("{why}; expected HOST:PORT:ADDR");
        let mut parts = text.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("missing field"));
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr = bare
            .parse::<IpAddr>()
            .map_err(|_| bad("ADDR is not an IP address"))?;
        Ok(Pin {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

/// Everything one run needs to know. Build it with [`Config::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of worker threads, hence of simultaneous downloads (1..=1024).
    pub jobs: usize,
    /// Where files go; created if missing.
    pub dir: PathBuf,
    /// Policy for files that already exist.
    pub existing: Existing,
    /// Continue an existing `NAME.part` instead of starting over (`-c`).
    pub resume: bool,
    /// Extra request headers (`-H`), sent on every request and retry.
    pub headers: Vec<(String, String)>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Limit for establishing a connection.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the next byte of a response; a steady trickle never trips it.
    pub idle_timeout: Option<Duration>,
    /// Longest time one entry may take in all, retries included (`--max-time`).
    pub max_time: Option<Duration>,
    /// Attempts after the first for transient failures.
    pub retries: u32,
    /// Base of the exponential backoff between attempts.
    pub retry_wait: Duration,
    /// Ceiling of the backoff and of a server's `Retry-After`.
    pub retry_wait_max: Duration,
    /// Redirects followed per entry before it fails.
    pub max_redirects: u32,
    /// fsync the file before it gets its final name, and its directory after.
    pub sync: bool,
    /// Take the file name from the server's `Content-Disposition` when there is no OUT.
    pub content_disposition: bool,
    /// Most simultaneous connections to one host across all workers.
    pub per_host: usize,
    /// Total download rate across all workers, bytes per second.
    pub limit_rate: Option<u64>,
    /// Proxy selection.
    pub proxy: ProxyChoice,
    /// Skip TLS certificate verification (explicit opt-in only).
    pub insecure: bool,
    /// Extra PEM CA certificates to trust.
    pub cacert: Option<PathBuf>,
    /// A PEM certificate chain to present when a server asks for one; it may
    /// hold the private key too.
    pub cert: Option<PathBuf>,
    /// The PEM private key for [`Config::cert`], when it is not in that file.
    pub key: Option<PathBuf>,
    /// Logins from a `.netrc`, used for the host each names while a download
    /// is at its URL's origin, unless the URL has its own `user:password@`.
    pub netrc: Option<std::sync::Arc<crate::netrc::Netrc>>,
    /// The cookie jar (`--load-cookies`, `--save-cookies`): sent where
    /// RFC 6265 allows, and filled from every response's `Set-Cookie`.
    pub cookies: Option<std::sync::Arc<crate::cookies::Cookies>>,
    /// Published digests (`--checksums`), checked for every entry whose path
    /// relative to [`Config::dir`] they name.
    pub checksums: Option<std::sync::Arc<crate::checksum::Sums>>,
    /// Resolve names and print destinations without touching the network.
    pub dry_run: bool,
    /// Largest file accepted, in bytes: a larger announced or streamed body
    /// fails the entry and leaves nothing behind.
    pub max_filesize: Option<u64>,
    /// Error statuses retried like 408, 429 and 5xx (`--retry-on-http-error`).
    pub retry_statuses: Vec<u16>,
    /// Address families to connect over (`-4`, `-6`).
    pub ip_family: IpFamily,
    /// Addresses given for host and port instead of DNS (`--resolve`).
    pub resolve: Vec<Pin>,
    /// Most connections one file may use (`--split`); 1 never splits.
    pub split: usize,
    /// Smallest file split over several connections (`--split-min`).
    pub split_min: u64,
    /// How long an entry with several sources waits for response headers
    /// before it asks the next source as well (`--race-after`).
    pub race_after: Duration,
}

impl Config {
    /// The defaults documented in `--help`: 8 jobs into the current directory.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            jobs: 8,
            dir: dir.into(),
            existing: Existing::Skip,
            resume: false,
            headers: Vec::new(),
            user_agent: concat!("fetchq/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_time: None,
            retries: 3,
            retry_wait: Duration::from_millis(500),
            retry_wait_max: Duration::from_secs(60),
            max_redirects: 10,
            sync: false,
            content_disposition: false,
            per_host: 8,
            limit_rate: None,
            proxy: ProxyChoice::FromEnv,
            insecure: false,
            cacert: None,
            cert: None,
            key: None,
            netrc: None,
            cookies: None,
            checksums: None,
            dry_run: false,
            max_filesize: None,
            retry_statuses: Vec::new(),
            ip_family: IpFamily::Any,
            resolve: Vec::new(),
            split: 4,
            split_min: 16 * 1024 * 1024,
            race_after: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_takes_curls_syntax() {
        let ok = [
            (
                "files.example.test:8080:127.0.0.1",
                "files.example.test",
                8080,
                "127.0.0.1",
            ),
            ("Files.Example.TEST:443:[::1]", "files.example.test", 443, "::1"),
            ("h:80:::1", "h", 80, "::1"),
            ("h:80:2001:db8::7", "h", 80, "2001:db8::7"),
        ];
        for (text, host, port, addr) in ok {
            let want = Pin {
                host: host.into(),
                port,
                addr: addr.parse().unwrap(),
            };
            assert_eq!(Pin::parse(text), Ok(want), "{text:?}");
        }
        for bad in [
            "",
            "h",
            "h:80",
            ":80:127.0.0.1",
            "h:x:127.0.0.1",
            "h:70000:127.0.0.1",
            "h:80:",
            "h:80:example.com",
            "h:80:[127.0.0.1",
        ] {
            assert!(Pin::parse(bad).is_err(), "{bad:?}");
        }
    }
}
