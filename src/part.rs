//! The `NAME.part` file a download is written to, and its commit to `NAME`.
//!
//! A download never writes under its final name: bytes go to `NAME.part` in
//! the same folder, and only a complete, verified body is renamed to `NAME`
//! (rename is atomic within a file system, so a reader sees the old file or the
//! new one, never half of one). Planted symlinks are never followed: a fresh
//! part is created with `O_CREAT|O_EXCL` (which refuses an existing link), a
//! continued one is opened with `O_NOFOLLOW`, and `rename` replaces a link at
//! `NAME` instead of writing through it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::error::FetchError;

/// `O_NOFOLLOW` on Linux (all architectures fetchq builds for use this value
/// except a few that do not matter here; std exposes no constant for it).
#[cfg(target_os = "linux")]
const O_NOFOLLOW: i32 = 0o400000;
#[cfg(not(target_os = "linux"))]
const O_NOFOLLOW: i32 = 0x100;

/// The path of the in-progress file for `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name: OsString = target.file_name().map(OsString::from).unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

/// An open in-progress download.
pub struct PartFile {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Option<Sha256>,
}

impl PartFile {
    /// Open the part file for `target`.
    ///
    /// With `resume`, an existing regular part file is continued from its end
    /// (and, with `hash`, its bytes are hashed first so the digest covers the
    /// whole file). Otherwise a stale part is removed and a fresh one created.
    /// `mode` caps the permissions of a file that replaces an existing one, so
    /// an overwrite never widens them; the umask applies as for any new file.
    pub fn open(target: &Path, resume: bool, mode: Option<u32>, hash: bool) -> Result<PartFile, FetchError> {
        let path = part_path(target);
        if resume {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => return PartFile::continued(path, file, hash),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FetchError::disk("cannot open", path, e)),
            }
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        options.mode(mode.unwrap_or(0o666) & 0o666);
        // Usually there is no stale part: try the create first and only clean
        // up when it is in the way (one syscall per file saved).
        let file = match options.open(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&path).map_err(|e| FetchError::disk("cannot remove stale", &path, e))?;
                options.open(&path)
            }
            other => other,
        }
        .map_err(|e| FetchError::disk("cannot create", &path, e))?;
        Ok(PartFile {
            path,
            file,
            len: 0,
            hasher: hash.then(Sha256::new),
        })
    }

    fn continued(path: PathBuf, mut file: File, hash: bool) -> Result<PartFile, FetchError> {
        let meta = file
            .metadata()
            .map_err(|e| FetchError::disk("cannot inspect", &path, e))?;
        if !meta.is_file() {
            return Err(FetchError::disk(
                "cannot continue",
                path,
                io::Error::other("not a regular file"),
            ));
        }
        let mut hasher = hash.then(Sha256::new);
        if let Some(hasher) = hasher.as_mut() {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| FetchError::disk("cannot read", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| FetchError::disk("cannot seek", &path, e))?;
        Ok(PartFile {
            path,
            file,
            len,
            hasher,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append a chunk of the body.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        self.file
            .write_all(chunk)
            .map_err(|e| FetchError::disk("cannot write", &self.path, e))?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(chunk);
        }
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Throw away what was written and start from byte 0 (the server sent a
    /// different version, or ignored our Range): never splice two versions.
    pub fn restart(&mut self) -> Result<(), FetchError> {
        if self.len == 0 {
            return Ok(());
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| FetchError::disk("cannot truncate", &self.path, e))?;
        self.len = 0;
        if let Some(hasher) = self.hasher.as_mut() {
            *hasher = Sha256::new();
        }
        Ok(())
    }

    /// The SHA-256 of everything written, if hashing was asked for.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.hasher.as_ref().map(|h| h.clone().finalize().into())
    }

    /// Make the part the final file: optional fsync, mtime, then rename.
    /// With `sync`, the directory is fsynced too so the rename survives a power loss.
    pub fn commit(
        self,
        target: &Path,
        sync: bool,
        mtime: Option<SystemTime>,
        etag: Option<&str>,
    ) -> Result<(), FetchError> {
        if let Some(etag) = etag {
            crate::validators::store(&self.file, self.len, etag);
        }
        if let Some(mtime) = mtime {
            // A wrong mtime only weakens the next `--update`; not worth failing the file for.
            let _ = self.file.set_modified(mtime);
        }
        if sync {
            self.file
                .sync_all()
                .map_err(|e| FetchError::disk("cannot sync", &self.path, e))?;
        }
        drop(self.file);
        fs::rename(&self.path, target).map_err(|e| FetchError::disk("cannot rename into", target, e))?;
        if sync && let Some(dir) = target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| FetchError::disk("cannot sync directory", dir, e))?;
        }
        Ok(())
    }

    /// Delete the part file (a failed or unwanted download).
    pub fn remove(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_name_appends_suffix() {
        assert_eq!(part_path(Path::new("/d/a.txt")), PathBuf::from("/d/a.txt.part"));
    }

    #[test]
    fn planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let target = dir.path().join("a.txt");
        std::os::unix::fs::symlink(&outside, part_path(&target)).unwrap();

        // Continuing refuses to open through the link.
        assert!(PartFile::open(&target, true, None, false).is_err());
        // A fresh start removes the link itself and writes a new file.
        let mut part = PartFile::open(&target, false, None, false).unwrap();
        part.write(b"new").unwrap();
        part.commit(&target, false, None, None).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn continued_part_hashes_existing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        fs::write(part_path(&target), b"hello ").unwrap();
        let mut part = PartFile::open(&target, true, None, true).unwrap();
        assert_eq!(part.len(), 6);
        part.write(b"world").unwrap();
        let want: [u8; 32] = Sha256::digest(b"hello world").into();
        assert_eq!(part.digest(), Some(want));
    }
}
