//! Typed errors of the Redis queue, and which of them a retry may cure.
//!
//! As in [`crate::error`], a message never contains its source's text: the
//! cause is reachable through `source()`, and whoever prints the error prints
//! the chain once (`{:#}` in the binary, [`crate::display::chain`] in notices).

use std::fmt;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::entry::MalformedEntry;

/// What went wrong talking to the queue.
///
/// URLs in messages never carry a password; the redis crate's own error is
/// the [`source`](std::error::Error::source), as a [`RedisCause`]. [`QueueError::is_connection`]
/// tells the errors that a reconnect and retry may cure (Redis down,
/// restarting, loading its data, network cut) from those it won't.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue name is unusable as part of a Redis key.
    #[error("invalid queue name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// The worker id is unusable as part of a Redis key.
    #[error("invalid worker id {id:?}: use 1 to 200 printable characters, no spaces")]
    BadWorkerId {
        /// The id as given.
        id: String,
    },
    /// The Redis URL does not parse.
    #[error("invalid Redis URL {url}")]
    BadUrl {
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisCause,
    },
    /// No connection could be made (refused, timed out, authentication…).
    #[error("cannot connect to Redis at {url}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisCause,
    },
    /// The server is too old for the commands the queue uses.
    #[error("Redis at {url} is version {version}; the fetchq queue needs Redis 6.2 or newer (BLMOVE)")]
    Unsupported {
        /// The URL, password removed.
        url: String,
        /// The `redis_version` the server reported.
        version: String,
    },
    /// A command failed (including a connection lost mid-command).
    #[error("Redis error on queue {queue:?} at {url}")]
    Redis {
        /// The queue name.
        queue: String,
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisCause,
    },
    /// A claimed entry is not valid entry JSON. It has been moved out of the
    /// worker's processing list to the queue's `bad` list, so it cannot
    /// block the queue; the caller should report it and claim again.
    #[error("malformed entry {} in queue {queue:?}, moved to its `bad` list", preview(.raw))]
    BadEntry {
        /// The queue name.
        queue: String,
        /// The entry's text as stored.
        raw: String,
        /// Why it is not a usable entry.
        #[source]
        source: MalformedEntry,
    },
}

impl QueueError {
    /// True when the error comes from the connection or a server that is
    /// (re)starting, so reconnecting and retrying may succeed. The queue has
    /// already dropped the broken connection; its next operation reconnects.
    pub fn is_connection(&self) -> bool {
        match self {
            QueueError::Connect { source, .. } | QueueError::Redis { source, .. } => is_retryable(&source.0),
            _ => false,
        }
    }
}

/// The redis crate's error as a cause in a chain.
///
/// A `RedisError` that wraps another error (an I/O error, a server reply)
/// shows that error's text as its own *and* returns it from `source()`, so a
/// chain printed through it would say "Connection refused" twice. This
/// wrapper shows the redis error's text and skips a source that only repeats
/// it, so every cause is printed once.
#[derive(Debug)]
pub struct RedisCause(pub RedisError);

impl From<RedisError> for RedisCause {
    fn from(error: RedisError) -> RedisCause {
        RedisCause(error)
    }
}

impl fmt::Display for RedisCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RedisCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let inner = std::error::Error::source(&self.0)?;
        if inner.to_string() == self.0.to_string() {
            inner.source()
        } else {
            Some(inner)
        }
    }
}

/// Connection-level or transient server condition.
pub(crate) fn is_retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown
            )
        )
}

fn preview(raw: &str) -> String {
    const MAX: usize = 120;
    if raw.chars().count() <= MAX {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// `url` with its credentials replaced by `***`, for messages: the rule of
/// every fetchq output, [`crate::display::redact`]. A value without `://`
/// is not shown at all: it is known to be meant as a Redis URL, and without
/// a scheme nothing tells a password from a host.
pub(crate) fn redact_url(url: &str) -> String {
    if url.contains("://") {
        crate::display::redact(url).into_owned()
    } else {
        "(unparseable URL)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueEntry;

    #[test]
    fn redaction_drops_passwords() {
        assert_eq!(redact_url("redis://:s3cret@h:6380/2"), "redis://***@h:6380/2");
        assert_eq!(redact_url("redis://user:s3cret@h/0"), "redis://***@h/0");
        assert_eq!(redact_url("redis://h"), "redis://h");
        assert!(!redact_url("redis://u:s3cret@[bad/0").contains("s3cret"));
        assert!(!redact_url("redis://u:s3c/ret@h/0").contains("ret"));
        assert!(!redact_url(":s3cret@h:6379").contains("s3cret"));
    }

    #[test]
    fn only_connection_errors_are_retryable() {
        let io: RedisError = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        let e = QueueError::Connect {
            url: "redis://h".into(),
            source: io.into(),
        };
        assert!(e.is_connection());
        assert!(e.to_string().contains("redis://h"));
        assert!(!QueueError::BadName { name: "a b".into() }.is_connection());
        let resp: RedisError = (ErrorKind::Server(ServerErrorKind::ResponseError), "WRONGTYPE").into();
        let e = QueueError::Redis {
            queue: "q".into(),
            url: "redis://h".into(),
            source: resp.into(),
        };
        assert!(!e.is_connection());
    }

    #[test]
    fn every_cause_is_shown_once_and_never_in_the_message() {
        let io: RedisError = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        let e = QueueError::Connect {
            url: "redis://h".into(),
            source: io.into(),
        };
        assert_eq!(e.to_string(), "cannot connect to Redis at redis://h");
        assert_eq!(
            crate::display::chain(&e),
            "cannot connect to Redis at redis://h: refused"
        );
        let resp: RedisError = (ErrorKind::Server(ServerErrorKind::ResponseError), "WRONGTYPE").into();
        let e = QueueError::Redis {
            queue: "q".into(),
            url: "redis://h".into(),
            source: resp.into(),
        };
        let chain = crate::display::chain(&e);
        assert!(
            chain.starts_with("Redis error on queue \"q\" at redis://h: "),
            "{chain}"
        );
        assert_eq!(chain.matches("WRONGTYPE").count(), 1, "{chain}");
        let bad = QueueEntry::from_json("{}").unwrap_err();
        let e = QueueError::BadEntry {
            queue: "q".into(),
            raw: "{}".into(),
            source: bad,
        };
        assert_eq!(
            crate::display::chain(&e),
            format!(
                "malformed entry \"{{}}\" in queue \"q\", moved to its `bad` list: {}",
                QueueEntry::from_json("{}").unwrap_err()
            )
        );
    }
}
