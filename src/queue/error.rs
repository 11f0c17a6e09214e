//! Typed errors of the Redis queue, and which of them a retry may cure.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::entry::MalformedEntry;

/// What went wrong talking to the queue.
///
/// URLs in messages never carry a password. [`QueueError::is_connection`]
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
    #[error("invalid Redis URL {url}: {source}")]
    BadUrl {
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisError,
    },
    /// No connection could be made (refused, timed out, authentication…).
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisError,
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
    #[error("Redis error on queue {queue:?} at {url}: {source}")]
    Redis {
        /// The queue name.
        queue: String,
        /// The URL, password removed.
        url: String,
        /// What the redis crate said.
        #[source]
        source: RedisError,
    },
    /// A claimed entry is not valid entry JSON. It has been moved out of the
    /// worker's processing list to the queue's `bad` list, so it cannot
    /// block the queue; the caller should report it and claim again.
    #[error("malformed entry in queue {queue:?} (moved to its `bad` list): {source}; entry: {}", preview(.raw))]
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
            QueueError::Connect { source, .. } | QueueError::Redis { source, .. } => is_retryable(source),
            _ => false,
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

/// `url` with any password removed, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Fails only for URLs that cannot have credentials at all.
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        // Unparseable: keep only what cannot be a secret.
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => url.to_string(),
            },
            None => "(unparseable URL)".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_passwords() {
        assert_eq!(
            redact_url("redis://:s3cret@h:6380/2"),
            "redis://h:6380/2".to_string()
        );
        assert_eq!(
            redact_url("redis://user:s3cret@h/0"),
            "redis://user@h/0".to_string()
        );
        assert_eq!(redact_url("redis://h"), "redis://h".to_string());
        assert!(!redact_url("redis://u:s3cret@[bad/0").contains("s3cret"));
        assert!(!redact_url("nonsense s3cret").contains("s3cret"));
    }

    #[test]
    fn only_connection_errors_are_retryable() {
        let io: RedisError = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        let e = QueueError::Connect {
            url: "redis://h".into(),
            source: io,
        };
        assert!(e.is_connection());
        assert!(e.to_string().contains("redis://h"));
        assert!(!QueueError::BadName { name: "a b".into() }.is_connection());
        let resp: RedisError = (ErrorKind::Server(ServerErrorKind::ResponseError), "WRONGTYPE").into();
        let e = QueueError::Redis {
            queue: "q".into(),
            url: "redis://h".into(),
            source: resp,
        };
        assert!(!e.is_connection());
    }
}
