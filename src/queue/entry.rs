//! One queue entry: what a worker downloads, as stored in Redis (compact JSON).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One download job as it travels through the queue.
///
/// Stored in Redis as compact JSON with the fields in this order:
/// `{"id":"<32 hex>","url":"...","out":null,"sha256":null,"source":"urls.txt","line":12}`,
/// followed by `"extras"` (a list of list fields) only when there are any.
/// A claimed entry sits in its worker's inflight list as the exact text it
/// was claimed as, and [`Queue::complete`](super::Queue::complete) and
/// [`Queue::release`](super::Queue::release) find it there by that text:
/// hand back the entry [`Queue::claim`](super::Queue::claim) returned (or a
/// clone), which keeps it. Equality compares the fields, not the text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    /// [`QueueEntry::id_for`] of `url` and `out`: equal downloads have equal ids.
    pub id: String,
    /// What to download, as given in the list.
    pub url: String,
    /// The explicit output path from the list (relative, as given), if any.
    pub out: Option<String>,
    /// The expected SHA-256 in hex, if the list gave one.
    pub sha256: Option<String>,
    /// The list the entry came from, for messages (`-` for stdin).
    pub source: String,
    /// The 1-based line of `source` the entry came from.
    pub line: u64,
    /// The rest of the entry's list line, field by field as a list would
    /// have them: further source URLs, digests besides `sha256` (`md5=HEX`)
    /// and `header="Name: value"`. Left out of the JSON when empty. A header
    /// is stored in Redis as it is: whoever can read the queue can read a
    /// token given this way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<String>,
    /// The text [`from_json`](Self::from_json) read, byte for byte (another
    /// tool or version may have written it with other spacing or field
    /// order than [`to_json`](Self::to_json) would).
    #[serde(skip)]
    text: Option<String>,
}

impl PartialEq for QueueEntry {
    fn eq(&self, other: &QueueEntry) -> bool {
        self.id == other.id
            && self.url == other.url
            && self.out == other.out
            && self.sha256 == other.sha256
            && self.source == other.source
            && self.line == other.line
            && self.extras == other.extras
    }
}

impl Eq for QueueEntry {}

impl QueueEntry {
    /// An entry with its [`id`](Self::id) computed from `url` and `out`.
    pub fn new(
        url: impl Into<String>,
        out: Option<String>,
        sha256: Option<String>,
        source: impl Into<String>,
        line: u64,
    ) -> QueueEntry {
        let url = url.into();
        let id = QueueEntry::id_for(&url, out.as_deref());
        QueueEntry {
            id,
            url,
            out,
            sha256,
            source: source.into(),
            line,
            extras: Vec::new(),
            text: None,
        }
    }

    /// The dedup id of a download: the first 16 bytes (32 lowercase hex
    /// digits) of SHA-256 over `url`, a NUL byte, and `out` (empty when
    /// `None`). 128 bits keep accidental collisions out of reach for any
    /// realistic queue size.
    pub fn id_for(url: &str, out: Option<&str>) -> String {
        let mut h = Sha256::new();
        h.update(url.as_bytes());
        h.update([0u8]);
        h.update(out.unwrap_or("").as_bytes());
        crate::hex::encode(&h.finalize()[..16])
    }

    /// The compact JSON form stored in Redis.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The text this entry was read from ([`from_json`](Self::from_json)),
    /// else its [`to_json`](Self::to_json): what Redis holds for it.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.text {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(self.to_json()),
        }
    }

    /// Parses the JSON form stored in Redis, and checks that its id is the
    /// one its URL and OUT give. Results are stored under the id, so an entry
    /// whose id was written by hand or by a hostile client could otherwise
    /// record its outcome over another entry's result. The entry keeps
    /// `text` as it is, for [`text`](Self::text).
    pub fn from_json(text: &str) -> Result<QueueEntry, MalformedEntry> {
        let mut entry = QueueEntry::parse(text)?;
        entry.text = Some(text.to_owned());
        Ok(entry)
    }

    /// [`from_json`](Self::from_json) of a text the caller owns (a claim's
    /// reply), kept without a copy; the text comes back with the error.
    pub(crate) fn from_claimed(text: String) -> Result<QueueEntry, (String, MalformedEntry)> {
        match QueueEntry::parse(&text) {
            Ok(mut entry) => {
                entry.text = Some(text);
                Ok(entry)
            }
            Err(error) => Err((text, error)),
        }
    }

    fn parse(text: &str) -> Result<QueueEntry, MalformedEntry> {
        let entry: QueueEntry = serde_json::from_str(text).map_err(MalformedEntry::Json)?;
        let expected = QueueEntry::id_for(&entry.url, entry.out.as_deref());
        if entry.id != expected {
            return Err(MalformedEntry::IdMismatch {
                found: entry.id,
                expected,
            });
        }
        Ok(entry)
    }
}

/// Why a queue element is not a usable entry.
#[derive(Debug, thiserror::Error)]
pub enum MalformedEntry {
    /// Not the JSON object fetchq stores.
    #[error("not a queue entry ({0})")]
    Json(serde_json::Error),
    /// The id is not the one its URL and OUT give.
    #[error("its id {found:?} does not match its URL and OUT (expected {expected:?})")]
    IdMismatch {
        /// The id the element carries.
        found: String,
        /// [`QueueEntry::id_for`] of its URL and OUT.
        expected: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_depends_on_url_and_out() {
        let a = QueueEntry::id_for("https://e.com/a", None);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, QueueEntry::id_for("https://e.com/a", None));
        assert_ne!(a, QueueEntry::id_for("https://e.com/a", Some("x")));
        assert_ne!(a, QueueEntry::id_for("https://e.com/b", None));
        // The NUL separator keeps url/out boundaries apart.
        assert_ne!(
            QueueEntry::id_for("https://e.com/ab", Some("c")),
            QueueEntry::id_for("https://e.com/a", Some("bc"))
        );
        // Known value: first 16 bytes of sha256("u\0").
        let full = Sha256::digest(b"u\0");
        let hex: String = full[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(QueueEntry::id_for("u", None), hex);
    }

    #[test]
    fn json_is_compact_ordered_and_round_trips() {
        let e = QueueEntry::new("https://e.com/a", None, None, "urls.txt", 12);
        let json = e.to_json();
        assert_eq!(
            json,
            format!(
                r#"{{"id":"{}","url":"https://e.com/a","out":null,"sha256":null,"source":"urls.txt","line":12}}"#,
                e.id
            )
        );
        assert_eq!(QueueEntry::from_json(&json).unwrap(), e);
        let e2 = QueueEntry::new("u", Some("d/f".into()), Some("ab".into()), "-", 1);
        assert_eq!(QueueEntry::from_json(&e2.to_json()).unwrap(), e2);
        assert!(QueueEntry::from_json(r#"{"url":"x"}"#).is_err());
        let mut e3 = QueueEntry::new("u", None, None, "-", 1);
        e3.extras = vec!["http://m/u".into(), r#"header="X-A: b""#.into()];
        let json = e3.to_json();
        assert!(
            json.ends_with(r#""line":1,"extras":["http://m/u","header=\"X-A: b\""]}"#),
            "{json}"
        );
        assert_eq!(QueueEntry::from_json(&json).unwrap(), e3);
    }

    #[test]
    fn an_id_that_does_not_match_url_and_out_is_refused() {
        let mut e = QueueEntry::new("https://e.com/a", None, None, "urls.txt", 1);
        e.id = QueueEntry::id_for("https://e.com/b", None);
        assert!(matches!(
            QueueEntry::from_json(&e.to_json()),
            Err(MalformedEntry::IdMismatch { .. })
        ));
        e.id = "not-hex".into();
        assert!(QueueEntry::from_json(&e.to_json()).is_err());
    }

    /// A text with other spacing than `to_json` (another tool wrote it) is
    /// kept byte for byte, so the entry can be found by it in Redis; it does
    /// not take part in equality.
    #[test]
    fn the_text_read_is_kept_and_equality_ignores_it() {
        let e = QueueEntry::new("https://e.com/a", None, None, "urls.txt", 3);
        assert_eq!(e.text(), e.to_json());
        let spaced = e.to_json().replace(',', ", ");
        let read = QueueEntry::from_json(&spaced).unwrap();
        assert_eq!(read.text(), spaced);
        assert_eq!(read.clone().text(), spaced);
        assert_ne!(read.to_json(), spaced);
        assert_eq!(read, e);
        let mut other = read.clone();
        other.line = 4;
        assert_ne!(other, e);
    }
}
