//! Typed errors a caller can match on, and which of them are worth a retry.
//!
//! Three levels, matching the three places things go wrong:
//! - [`RunError`]: the run as a whole cannot start or continue (unusable output
//!   directory, unreadable input). The binary maps these to exit code 2.
//! - [`LineError`]: one line of an input list is not a usable entry. It is
//!   reported with its `FILE:LINE` and counted as failed; the run goes on.
//! - [`FetchError`]: one download failed. [`FetchError::is_transient`] decides
//!   whether another attempt may help (RFC 9110 §15 for the status codes).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The run as a whole cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output directory could not be created, or is not a writable directory.
    #[error("unusable output directory {}", path.display())]
    OutputDir {
        /// The directory as the user gave it.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An input list could not be opened or read.
    #[error("cannot read {name}")]
    Input {
        /// The list's name as the user gave it (`-` for stdin).
        name: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A proxy setting (`--proxy` or the environment) is unusable.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The `--cacert` file is unusable.
    #[error("cannot use CA certificates from {}: {reason}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The `--cert` or `--key` file is unusable, or the two do not match.
    #[error("cannot use the client {what} in {}: {reason}", path.display())]
    ClientCert {
        /// Which file: "certificate" (`--cert`) or "key" (`--key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Spawn(#[source] io::Error),
}

/// Why one input line is not a usable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The URL field does not parse as a URL.
    #[error("invalid URL ({0})")]
    BadUrl(String),
    /// The URL parses but its scheme is not http or https.
    #[error("unsupported scheme {0:?} (only http and https)")]
    Scheme(String),
    /// The URL has no host to connect to.
    #[error("URL has no host")]
    NoHost,
    /// The explicit output path is absolute or climbs out of the output directory.
    #[error("output path escapes the output directory")]
    OutEscapes,
    /// The explicit output path is empty or names no file.
    #[error("output path names no file")]
    OutEmpty,
    /// A field after the first is an absolute URL that is not a usable
    /// http or https source.
    #[error("source \"{field}\" is unusable: {why}")]
    BadSource {
        /// The field as written.
        field: String,
        /// Why, as [`LineError::BadUrl`], [`LineError::Scheme`] or [`LineError::NoHost`] say it.
        why: String,
    },
    /// A second field that would be OUT.
    #[error("second output path \"{second}\" (the line already has \"{first}\")")]
    SecondOut {
        /// The first OUT, as written.
        first: String,
        /// The second, as written.
        second: String,
    },
    /// An unquoted `KEY=VALUE` field whose key is none of the list format's.
    #[error(
        "unknown key in \"{0}\" (keys: sha256= sha512= sha384= sha1= md5= header=; quote a file name holding =)"
    )]
    UnknownKey(String),
    /// A `"`-quoted field without its closing quote, or with text stuck to it.
    #[error("unbalanced quote in {0} (a field with spaces is written as \"my file.pdf\")")]
    BadQuote(String),
    /// A checksum key whose value is not its algorithm's number of hex digits.
    #[error("bad checksum \"{field}\" (expected {digits} hex digits)")]
    BadChecksum {
        /// The field as written.
        field: String,
        /// How many hex digits the algorithm's digest has.
        digits: usize,
    },
    /// A second, different digest of an algorithm the line already gave.
    #[error("second checksum of the same algorithm \"{0}\"")]
    SecondChecksum(String),
    /// A `header=` field that is not a usable `Name: value` header.
    #[error("bad field {field}: {why}")]
    BadHeader {
        /// The field as written.
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The line is longer than the list format allows; it was skipped unread.
    #[error("line longer than {limit} bytes (the list format's limit)")]
    TooLong {
        /// The longest line the list format allows, in bytes.
        limit: usize,
    },
    /// Another entry of this run already writes to the same explicit path.
    #[error("output path {path} is already used by line {line}")]
    OutTaken {
        /// The contested path, relative to the output directory.
        path: String,
        /// The earlier line that claimed it.
        line: u64,
    },
    /// The explicit path is the in-progress name `NAME.part` of another
    /// entry's path.
    #[error(
        "output path {path} clashes with {} of line {line} (NAME and NAME.part are reserved together)",
        .path.strip_suffix(".part").unwrap_or(.path)
    )]
    OutPartOf {
        /// The contested path, relative to the output directory.
        path: String,
        /// The earlier line.
        line: u64,
    },
    /// The explicit path's in-progress name `NAME.part` is another entry's path.
    #[error(
        "output path {path} clashes with {path}.part of line {line} (NAME and NAME.part are reserved together)"
    )]
    OutPartTaken {
        /// The contested path, relative to the output directory.
        path: String,
        /// The earlier line.
        line: u64,
    },
    /// The explicit path needs a folder where another entry writes a file.
    #[error(
        "output path {path} needs {} as a folder, but line {line} writes it as a file",
        .path.get(..*.folder).unwrap_or(.path)
    )]
    OutFolderTaken {
        /// The contested path, relative to the output directory.
        path: String,
        /// The folder's length in bytes: `path[..folder]` is the folder that
        /// is a file (one string, to keep every `LineError` small).
        folder: usize,
        /// The earlier line.
        line: u64,
    },
    /// The explicit path is a folder of another entry's path.
    #[error("output path {path} is used as a folder by line {line}")]
    OutIsFolder {
        /// The contested path, relative to the output directory.
        path: String,
        /// The earlier line.
        line: u64,
    },
    /// A name in the explicit path is longer than file systems allow (255
    /// bytes, and 250 for a file so that its `NAME.part` fits).
    #[error("output path has a name of {bytes} bytes (at most 250 for a file, 255 for a folder)")]
    OutTooLong {
        /// The name's length.
        bytes: usize,
    },
}

/// Why one download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status.
    #[error("HTTP {status} {reason}")]
    Status {
        /// The status code.
        status: u16,
        /// Its canonical reason phrase.
        reason: &'static str,
        /// The server's `Retry-After`, when it sent a usable one.
        retry_after: Option<Duration>,
    },
    /// The connection could not be made or broke before a response arrived.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The host name did not resolve.
    #[error("host not found")]
    HostNotFound,
    /// No byte arrived for the idle timeout, or another limit ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection broke while the body was arriving.
    #[error("connection lost after {received} bytes: {message}")]
    BodyBroken {
        /// Bytes of the body that did arrive (over all attempts so far).
        received: u64,
        /// What the transport said.
        message: String,
    },
    /// The body ended before the length the server announced.
    #[error("body ended after {received} of {expected} bytes")]
    Truncated {
        /// Bytes that arrived.
        received: u64,
        /// Bytes announced by Content-Length / Content-Range.
        expected: u64,
    },
    /// The response breaks the protocol or contradicts itself.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The server's answer to a resume contradicts what is on disk; the part
    /// was reset and the next attempt starts from byte 0.
    #[error("{0}; starting over")]
    Restart(String),
    /// A redirect could not be followed.
    #[error("{0}")]
    Redirect(String),
    /// A digest of the whole file is not the one the list or a sums file gave.
    #[error("checksum mismatch: expected {algorithm} {expected}, got {actual}")]
    Checksum {
        /// The algorithm whose digest differs (`sha256`, `md5`, ...).
        algorithm: &'static str,
        /// Hex digest from the list.
        expected: String,
        /// Hex digest of what arrived.
        actual: String,
    },
    /// The local file system refused something.
    #[error("{action} {}", path.display())]
    Disk {
        /// What fetchq was doing ("cannot create", "cannot write", ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Another process (an overlapping fetchq) holds the lock on the entry's
    /// `NAME.part`: it is downloading the same file.
    #[error("{} is being downloaded by another process{}", path.display(), stalled_for(*.stalled))]
    Busy {
        /// The part file.
        path: PathBuf,
        /// Set when this run gave up waiting: how long the part did not grow.
        stalled: Option<Duration>,
    },
    /// Something that is not a regular file (a directory, a named pipe, a
    /// symlink to a directory, ...) is at the entry's name.
    #[error("{} is {what}, not a file", path.display())]
    NotAFile {
        /// The entry's path.
        path: PathBuf,
        /// What is there.
        what: &'static str,
    },
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error).
    #[error("TLS: {0}")]
    Tls(String),
    /// A client-side failure that no retry will mend.
    #[error("{0}")]
    Client(String),
    /// The file is larger than `--max-filesize` allows, by its announced
    /// length or by what arrived.
    #[error("larger than --max-filesize ({limit} bytes)")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The run was interrupted while this download was in flight.
    #[error("interrupted")]
    Cancelled,
    /// Every source of an entry with mirrors failed; each with its cause.
    #[error("every source failed: {}", .0.iter().map(|(url, cause)| format!("{url}: {cause}")).collect::<Vec<_>>().join("; "))]
    AllSources(Vec<(String, String)>),
}

impl FetchError {
    /// Whether another attempt could succeed: network trouble, timeouts, short
    /// bodies, and the statuses RFC 9110 marks as temporary (408, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            FetchError::Connect(_)
            | FetchError::Timeout(_)
            | FetchError::BodyBroken { .. }
            | FetchError::Truncated { .. }
            | FetchError::Restart(_) => true,
            FetchError::HostNotFound
            | FetchError::BadResponse(_)
            | FetchError::Redirect(_)
            | FetchError::Checksum { .. }
            | FetchError::Disk { .. }
            | FetchError::Busy { .. }
            | FetchError::NotAFile { .. }
            | FetchError::Client(_)
            | FetchError::Tls(_)
            | FetchError::TooLarge { .. }
            | FetchError::AllSources(_)
            | FetchError::Cancelled => false,
        }
    }

    /// A short stable name for the kind of failure, used in `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Status { .. } => "http_status",
            FetchError::Connect(_) => "connect",
            FetchError::HostNotFound => "dns",
            FetchError::Timeout(_) => "timeout",
            FetchError::BodyBroken { .. } => "connection_lost",
            FetchError::Truncated { .. } => "truncated",
            FetchError::BadResponse(_) => "bad_response",
            FetchError::Restart(_) => "resume_mismatch",
            FetchError::Redirect(_) => "redirect",
            FetchError::Checksum { .. } => "checksum",
            FetchError::Disk { .. } => "disk",
            FetchError::Busy { .. } => "busy",
            FetchError::NotAFile { .. } => "not_a_file",
            FetchError::Client(_) => "client",
            FetchError::Tls(_) => "tls",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Cancelled => "interrupted",
            FetchError::AllSources(_) => "all_sources_failed",
        }
    }

    /// Another process holds the part at `path`.
    pub(crate) fn busy(path: PathBuf) -> Self {
        FetchError::Busy { path, stalled: None }
    }

    /// Wrap a disk error with the action and path.
    pub(crate) fn disk(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FetchError::Disk {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The end of [`FetchError::Busy`]'s message for a holder that stopped writing.
fn stalled_for(stalled: Option<Duration>) -> String {
    stalled.map_or_else(String::new, |idle| {
        format!(" that wrote nothing for {}", humantime::format_duration(idle))
    })
}

/// A proxy setting that cannot be used. Names where the setting came from
/// (`--proxy` or the variable), never the URL: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The URL's scheme is not one fetchq speaks.
    #[error(
        "{from}: unsupported proxy scheme {scheme:?} (fetchq speaks http, https, socks4, socks4a, socks5 and socks5h)"
    )]
    Scheme {
        /// `--proxy` or the variable's name as set (`all_proxy`, `HTTPS_PROXY`, ...).
        from: String,
        /// The scheme as written.
        scheme: String,
    },
    /// The URL does not parse.
    #[error("{from}: unusable proxy URL")]
    Url {
        /// `--proxy` or the variable's name as set.
        from: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_follow_rfc_9110() {
        let status = |status| FetchError::Status {
            status,
            reason: "",
            retry_after: None,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 416] {
            assert!(!status(code).is_transient(), "{code}");
        }
    }
}
