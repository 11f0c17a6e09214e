//! Errors from ureq and the transport, named as [`FetchError`]s: what failed
//! (connecting, TLS, a timeout, the body breaking off) decides whether a retry
//! can help.

use std::io;

use crate::error::FetchError;
use crate::transport::{Cancelled, IdleTimeout};

/// Classify a ureq error from sending a request or reading response headers.
pub(super) fn request_error(error: ureq::Error) -> FetchError {
    match error {
        ureq::Error::Io(e) => io_error(e),
        ureq::Error::Timeout(t) => timeout_error(t),
        ureq::Error::HostNotFound => FetchError::HostNotFound,
        ureq::Error::ConnectionFailed => FetchError::Connect("could not connect".into()),
        ureq::Error::Protocol(e) => FetchError::BadResponse(e.to_string()),
        ureq::Error::LargeResponseHeader(..) => FetchError::BadResponse("response headers too large".into()),
        ureq::Error::BadUri(e) => FetchError::Client(format!("invalid URL ({e})")),
        other => FetchError::Client(other.to_string()),
    }
}

/// Classify an I/O error from the transport, recognising our own idle timeout and cancel.
/// TLS failures (an untrusted or mismatched certificate) reach us as
/// `InvalidData` from rustls: no retry will mend them.
fn io_error(e: io::Error) -> FetchError {
    if let Some(inner) = e.get_ref() {
        if inner.is::<Cancelled>() {
            return FetchError::Cancelled;
        }
        if let Some(idle) = inner.downcast_ref::<IdleTimeout>() {
            return FetchError::Timeout(idle.to_string());
        }
    }
    match e.kind() {
        io::ErrorKind::TimedOut => FetchError::Timeout(e.to_string()),
        io::ErrorKind::InvalidData => FetchError::Tls(e.to_string()),
        _ => FetchError::Connect(e.to_string()),
    }
}

/// Classify an error while reading the body; `received` is what the part holds.
pub(super) fn body_error(e: io::Error, received: u64, expected: Option<u64>) -> FetchError {
    // ureq reports its own errors through io::Error::other(ureq::Error).
    let e = match e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::Io(_)) | None => e,
        Some(ureq::Error::Timeout(t)) => return timeout_error(*t),
        Some(other) => {
            return FetchError::BodyBroken {
                received,
                message: other.to_string(),
            };
        }
    };
    // A clean close before the announced length is a short body, not a broken link.
    if let Some(expected) = expected
        && e.kind() == io::ErrorKind::UnexpectedEof
    {
        return FetchError::Truncated { received, expected };
    }
    match io_error(e) {
        FetchError::Connect(message) => FetchError::BodyBroken { received, message },
        other => other,
    }
}

/// Name a ureq timeout in the user's terms.
fn timeout_error(timeout: ureq::Timeout) -> FetchError {
    match timeout {
        ureq::Timeout::Global => FetchError::Timeout("--max-time reached".into()),
        ureq::Timeout::Connect => FetchError::Timeout("connecting took longer than --connect-timeout".into()),
        other => FetchError::Timeout(other.to_string()),
    }
}
