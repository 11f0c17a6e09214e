//! What `--update` remembers between runs: the file's mtime (set from the
//! server's Last-Modified) and its ETag, kept in an extended attribute
//! `user.fetchq.etag` on the file itself.
//!
//! An attribute travels with the file: it is written on the in-progress file
//! before it gets its name, so file and validator change together; `cp -a`, `rsync -X` and
//! `mv` keep it; and it can never be mistaken for a downloaded file the way a
//! sidecar file could. The value is `SIZE ETAG`: if the file no longer has the
//! size it had when the ETag was stored (someone replaced it), the ETag is
//! ignored. Where the file system has no user attributes (some tmpfs, FAT),
//! only the mtime is used (`If-Modified-Since`), as wget `-N` does.

use std::fs::{File, Metadata};
use std::path::Path;
use std::time::SystemTime;

const ATTR: &str = "user.fetchq.etag";

/// Validators for a conditional request (RFC 9110 §13.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Conditional {
    /// For `If-None-Match`.
    pub etag: Option<String>,
    /// For `If-Modified-Since`.
    pub modified: Option<SystemTime>,
}

impl Conditional {
    /// Whether a response with these validators offers the version stored here
    /// for a file of `len` bytes: the same ETag, or (without one on either side)
    /// the same Last-Modified, to the second, and the same length. For where a
    /// conditional request was impossible.
    pub(crate) fn describes(
        &self,
        etag: Option<&str>,
        modified: Option<SystemTime>,
        length: Option<u64>,
        len: u64,
    ) -> bool {
        if let (Some(offered), Some(stored)) = (etag, &self.etag) {
            return offered == stored;
        }
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs());
        let modified = modified.and_then(secs);
        modified.is_some() && modified == self.modified.and_then(secs) && length == Some(len)
    }
}

/// Read what an earlier run stored about `path`.
pub(crate) fn load(path: &Path, meta: &Metadata) -> Conditional {
    let etag = xattr::get(path, ATTR).ok().flatten().and_then(|raw| {
        let text = String::from_utf8(raw).ok()?;
        let (size, etag) = text.split_once(' ')?;
        (size.parse::<u64>().ok()? == meta.len()).then(|| etag.to_string())
    });
    Conditional {
        etag,
        modified: meta.modified().ok(),
    }
}

/// Remember `etag` on the file about to become the final one. Best effort: a
/// file system without attributes only weakens the next `--update`.
pub(crate) fn store(file: &File, size: u64, etag: &str) {
    use xattr::FileExt;
    let _ = file.set_xattr(ATTR, format!("{size} {etag}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_ignored_when_the_file_changed_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        if !xattr::SUPPORTED_PLATFORM || file_set_fails(&file) {
            return; // No user xattrs here; the mtime path is covered by integration tests.
        }
        store(&file, 5, "\"v1\"");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(load(&path, &meta).etag.as_deref(), Some("\"v1\""));
        std::fs::write(&path, b"123456").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(load(&path, &meta).etag, None);
    }

    #[test]
    fn a_response_describes_the_stored_version_by_etag_else_by_date_and_length() {
        use std::time::Duration;
        let at = |secs: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let stored = |etag: Option<&str>, secs| Conditional {
            etag: etag.map(str::to_string),
            modified: at(secs),
        };
        let offer = |c: &Conditional, len| c.describes(Some("\"v1\""), at(1_600_000_000), Some(5), len);
        // The ETag decides when both sides have one, whatever the dates say.
        assert!(offer(&stored(Some("\"v1\""), 1), 5));
        assert!(!offer(&stored(Some("\"v2\""), 1_600_000_000), 5));
        // Without a stored ETag: the date to the second and the length.
        assert!(offer(&stored(None, 1_600_000_000), 5));
        assert!(!offer(&stored(None, 1_600_000_001), 5));
        assert!(!offer(&stored(None, 1_600_000_000), 6));
        // Nothing to compare: download again.
        assert!(!stored(None, 0).describes(None, None, Some(5), 5));
    }

    fn file_set_fails(file: &File) -> bool {
        use xattr::FileExt;
        file.set_xattr("user.fetchq.probe", b"1").is_err()
    }
}
