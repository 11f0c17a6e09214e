//! The file a download is written to, and its commit to `NAME`.
//!
//! A download never writes under its final name, and only a complete, verified
//! body ever gets that name. Where the file system allows it (Linux, most local
//! file systems) the bytes go to an *unnamed* file made with `O_TMPFILE` in the
//! target's folder, and the commit is one `linkat` that gives it its name, or
//! fails if the name is taken: a reader sees no file or the whole file, and a
//! crash leaves nothing behind. This saves a directory entry per file compared
//! with a named `NAME.part` and a rename; on 5,000 small files that was a fifth
//! of fetchq's CPU time.
//!
//! A download that is worth resuming gets a name anyway: once it holds more
//! than [`NAME_AFTER`] bytes, and whenever it is abandoned unfinished (failure,
//! Ctrl-C), it becomes `NAME.part`, so `-c` can continue it. Where unnamed
//! files are not possible, or a stale `NAME.part` may be in the way, a named
//! `NAME.part` is used from the start and renamed at the end, as before.
//!
//! A named part carries the record of the response its bytes came from (see
//! [`crate::resume`]), put on the file before its name appears, so `-c` can
//! tell whether the server still has that version; a finished file sheds it.
//!
//! Planted symlinks are never followed: a named part is created with
//! `O_CREAT|O_EXCL` (which refuses an existing link), a continued one is opened
//! with `O_NOFOLLOW`, and `link` and `rename` replace or refuse a link at
//! `NAME` instead of writing through it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::error::FetchError;
use crate::resume::{self, Record, Stored};

/// An unnamed download is given its `NAME.part` name once it holds more than
/// this. A crash (or SIGKILL) loses an unnamed file, so this is the most a
/// crash can cost to fetch again; below it, resuming saves too little to be
/// worth a directory entry per file.
pub const NAME_AFTER: u64 = 1024 * 1024;

/// The path of the in-progress file for `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name: OsString = target.file_name().map(OsString::from).unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

/// How an unnamed file is given a name; which one works depends on the kernel
/// and privileges, so [`Linker::probe`] finds out once per output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linker {
    /// `linkat(fd, "", AT_EMPTY_PATH)`: Linux 6.10+ for a file the caller
    /// opened, or any kernel with `CAP_DAC_READ_SEARCH`.
    EmptyPath,
    /// `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)`: needs `/proc`.
    ProcFd,
}

impl Linker {
    /// Whether unnamed files can be made and named in `dir`, and how; `None`
    /// means named parts must be used there.
    ///
    /// It changes nothing in `dir`, not even its mtime: making an unnamed file
    /// adds no entry, and each way of naming it is tried on the folder's own
    /// `.`, which the kernel refuses as taken (`EEXIST`) only after it has
    /// accepted the file to be linked; an unusable way fails differently.
    pub fn probe(dir: &Path) -> Option<Linker> {
        let file = unnamed_in(dir, 0o600).ok()?;
        let taken = dir.join(".");
        [Linker::EmptyPath, Linker::ProcFd].into_iter().find(|linker| {
            linker
                .link(&file, &taken)
                .is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
        })
    }

    /// Give the unnamed `file` the name `to`; fails with `AlreadyExists` if taken.
    fn link(self, file: &File, to: &Path) -> io::Result<()> {
        use rustix::fs::{AtFlags, CWD};
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Linker::EmptyPath => rustix::fs::linkat(file, "", CWD, to, AtFlags::EMPTY_PATH),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Linker::EmptyPath => return Err(io::ErrorKind::Unsupported.into()),
            Linker::ProcFd => {
                let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
                rustix::fs::linkat(CWD, fd.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
            }
        }
        .map_err(io::Error::from)
    }
}

/// An unnamed, write-only file in `dir` (`O_TMPFILE`, Linux only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unnamed_in(dir: &Path, mode: u32) -> io::Result<File> {
    use rustix::fs::{CWD, Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Elsewhere there are no unnamed files: parts are named from the start.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unnamed_in(_dir: &Path, _mode: u32) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// How [`PartFile::commit`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    /// The file is at its final name.
    Saved,
    /// Without `replace`, another file took the name while this one downloaded;
    /// it was left alone and the download discarded.
    NameTaken,
}

/// An open in-progress download.
///
/// Dropping it keeps what it holds, as `NAME.part` (an unnamed part is named
/// first), so an interrupted download can be continued with `-c`; [`remove`]
/// discards it and [`commit`] finishes it.
///
/// [`remove`]: PartFile::remove
/// [`commit`]: PartFile::commit
pub struct PartFile {
    /// `NAME.part`: the file's name, or the one it gets if it needs one.
    path: PathBuf,
    file: File,
    /// `Some` while the file has no name.
    unnamed: Option<Linker>,
    len: u64,
    hasher: Option<Sha256>,
    /// The response the bytes come from, for `-c` (see [`crate::resume`]):
    /// put on the file as soon as it has a name, or before it gets one.
    record: Option<Record>,
}

impl PartFile {
    /// Continue the `NAME.part` an earlier run left for `target`, if there is a
    /// regular file there. With `hash`, its bytes are hashed first so the digest
    /// covers the whole file.
    pub fn continue_existing(target: &Path, hash: bool) -> Result<Option<PartFile>, FetchError> {
        let path = part_path(target);
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FetchError::disk("cannot open", path, e)),
        };
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
        Ok(Some(PartFile {
            path,
            file,
            unnamed: None,
            len,
            hasher,
            record: None,
        }))
    }

    /// Start an empty part for `target`.
    ///
    /// With a `linker` the part starts unnamed (the caller knows no stale
    /// `NAME.part` needs replacing); if the file system refuses, or without
    /// one, it is `NAME.part`, replacing any stale file of that name. `mode`
    /// caps the permissions of a file that replaces an existing one, so an
    /// overwrite never widens them; the umask applies as for any new file.
    pub fn create(
        target: &Path,
        linker: Option<Linker>,
        mode: Option<u32>,
        hash: bool,
    ) -> Result<PartFile, FetchError> {
        let path = part_path(target);
        let mode = mode.unwrap_or(0o666) & 0o666;
        let hasher = hash.then(Sha256::new);
        if let Some(linker) = linker
            && let Some(dir) = target.parent()
            && let Ok(file) = unnamed_in(dir, mode)
        {
            return Ok(PartFile {
                path,
                file,
                unnamed: Some(linker),
                len: 0,
                hasher,
                record: None,
            });
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
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
            unnamed: None,
            len: 0,
            hasher,
            record: None,
        })
    }

    /// What an earlier run recorded on this part about where its bytes came from.
    pub fn stored_record(&self) -> Stored {
        resume::load(&self.file)
    }

    /// Record the response the bytes come from: on the file at once if it
    /// has a name, else just before it gets one, so a `NAME.part` never
    /// exists without it. Best effort: a file system without user
    /// attributes leaves the part unrecorded, and `-c` then starts it over.
    pub fn set_record(&mut self, record: Record) {
        if self.unnamed.is_none() {
            let _ = resume::store(&self.file, &record);
        }
        self.record = Some(record);
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
        if self.len > NAME_AFTER {
            self.name()?;
        }
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
        // The record described the bytes just dropped; the next response's follows.
        self.record = None;
        if self.unnamed.is_none() {
            resume::clear(&self.file);
        }
        if let Some(hasher) = self.hasher.as_mut() {
            *hasher = Sha256::new();
        }
        Ok(())
    }

    /// The SHA-256 of everything written, if hashing was asked for.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.hasher.as_ref().map(|h| h.clone().finalize().into())
    }

    /// Give an unnamed part its `NAME.part` name, replacing a stale file there.
    fn name(&mut self) -> Result<(), FetchError> {
        let Some(linker) = self.unnamed else {
            return Ok(());
        };
        if let Some(record) = &self.record {
            let _ = resume::store(&self.file, record);
        }
        let linked = match linker.link(&self.file, &self.path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&self.path).and_then(|()| linker.link(&self.file, &self.path))
            }
            other => other,
        };
        linked.map_err(|e| FetchError::disk("cannot name", &self.path, e))?;
        self.unnamed = None;
        Ok(())
    }

    /// Make the part the final file: optional fsync, mtime, then link or rename.
    ///
    /// Without `replace` an existing `target` is never replaced (the answer is
    /// then [`Committed::NameTaken`]); with it, it is, atomically. With
    /// `sync`, the directory is fsynced too so the new name survives a power loss.
    pub fn commit(
        mut self,
        target: &Path,
        replace: bool,
        sync: bool,
        mtime: Option<SystemTime>,
        etag: Option<&str>,
    ) -> Result<Committed, FetchError> {
        if self.unnamed.is_none() {
            // A finished file is no part to continue.
            resume::clear(&self.file);
        }
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
        if let Some(linker) = self.unnamed
            && !replace
        {
            match linker.link(&self.file, target) {
                Ok(()) => self.unnamed = None,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.discard();
                    return Ok(Committed::NameTaken);
                }
                Err(e) => return Err(FetchError::disk("cannot link into", target, e)),
            }
        } else {
            self.name()?;
            let renamed = if replace {
                fs::rename(&self.path, target)
            } else {
                rename_no_replace(&self.path, target)
            };
            match renamed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.discard();
                    return Ok(Committed::NameTaken);
                }
                Err(e) => return Err(FetchError::disk("cannot rename into", target, e)),
            }
        }
        if sync && let Some(dir) = target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| FetchError::disk("cannot sync directory", dir, e))?;
        }
        Ok(Committed::Saved)
    }

    /// Delete the part (a failed or unwanted download).
    pub fn remove(mut self) {
        self.discard();
    }

    /// Let go of the bytes: an unnamed file vanishes when closed, a named one is deleted.
    fn discard(&mut self) {
        if self.unnamed.take().is_none() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for PartFile {
    /// Keep an abandoned download for `-c`: give an unnamed one its name.
    fn drop(&mut self) {
        if self.len > 0 {
            let _ = self.name();
        }
    }
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`, where the
/// system and file system support that (`renameat2`); elsewhere a plain rename.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags};
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => fs::rename(from, to),
        other => other.map_err(io::Error::from),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

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
        assert!(PartFile::continue_existing(&target, false).is_err());
        // A fresh start removes the link itself and writes a new file.
        let mut part = PartFile::create(&target, None, None, false).unwrap();
        part.write(b"new").unwrap();
        assert_eq!(
            part.commit(&target, true, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn continued_part_hashes_existing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        fs::write(part_path(&target), b"hello ").unwrap();
        let mut part = PartFile::continue_existing(&target, true).unwrap().unwrap();
        assert_eq!(part.len(), 6);
        part.write(b"world").unwrap();
        let want: [u8; 32] = Sha256::digest(b"hello world").into();
        assert_eq!(part.digest(), Some(want));
    }

    #[test]
    fn unnamed_part_is_invisible_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let Some(linker) = Linker::probe(dir.path()) else {
            return; // The file system has no O_TMPFILE: named parts cover it.
        };
        assert!(names_in(dir.path()).is_empty(), "the probe leaves nothing");
        let target = dir.path().join("a");
        let mut part = PartFile::create(&target, Some(linker), None, false).unwrap();
        part.write(b"body").unwrap();
        assert!(names_in(dir.path()).is_empty());
        assert_eq!(
            part.commit(&target, false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(names_in(dir.path()), ["a"]);
        assert_eq!(fs::read(&target).unwrap(), b"body");
    }

    /// The fallback for kernels before 6.10 without privileges (the probe
    /// prefers `EmptyPath` wherever that works, so it is tested on its own).
    #[test]
    fn proc_fd_linker_names_an_unnamed_file() {
        let dir = tempfile::tempdir().unwrap();
        if Linker::probe(dir.path()).is_none() {
            return;
        }
        let target = dir.path().join("a");
        let probe = unnamed_in(dir.path(), 0o600).unwrap();
        let taken = Linker::ProcFd.link(&probe, &dir.path().join(".")).unwrap_err();
        assert_eq!(
            taken.kind(),
            io::ErrorKind::AlreadyExists,
            "what the probe relies on"
        );
        let mut part = PartFile::create(&target, Some(Linker::ProcFd), None, false).unwrap();
        part.write(b"via /proc").unwrap();
        assert_eq!(
            part.commit(&target, false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(fs::read(&target).unwrap(), b"via /proc");
        assert_eq!(names_in(dir.path()), ["a"]);
    }

    #[test]
    fn taken_name_is_left_alone_unless_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        for linker in [Linker::probe(dir.path()), None] {
            fs::write(&target, b"theirs").unwrap();
            let mut part = PartFile::create(&target, linker, None, false).unwrap();
            part.write(b"ours").unwrap();
            let committed = part.commit(&target, false, false, None, None).unwrap();
            assert_eq!(committed, Committed::NameTaken, "{linker:?}");
            assert_eq!(fs::read(&target).unwrap(), b"theirs");
            assert_eq!(names_in(dir.path()), ["a"], "the download is discarded");

            let mut part = PartFile::create(&target, linker, None, false).unwrap();
            part.write(b"ours").unwrap();
            assert_eq!(
                part.commit(&target, true, false, None, None).unwrap(),
                Committed::Saved
            );
            assert_eq!(fs::read(&target).unwrap(), b"ours");
            assert_eq!(names_in(dir.path()), ["a"]);
        }
    }

    /// The record is on a part whenever the part has a name, and not on the
    /// finished file.
    #[test]
    fn a_named_part_carries_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::parse("http://h/f").unwrap();
        let record = Record::new(&url, Some("\"v1\""), None, Some(9));
        let target = dir.path().join("named");
        let mut part = PartFile::create(&target, None, None, false).unwrap();
        part.set_record(record.clone());
        if part.stored_record() == Stored::Missing {
            return; // No user attributes here: parts stay unrecorded and `-c` starts over.
        }
        assert_eq!(part.stored_record(), Stored::Found(record.clone()));
        part.write(b"old").unwrap();
        part.restart().unwrap();
        assert_eq!(
            part.stored_record(),
            Stored::Missing,
            "the bytes it described are gone"
        );
        part.set_record(record.clone());
        part.write(b"body").unwrap();
        assert_eq!(
            part.commit(&target, false, false, None, None).unwrap(),
            Committed::Saved
        );
        let done = File::open(&target).unwrap();
        assert_eq!(resume::load(&done), Stored::Missing, "a finished file is no part");

        let Some(linker) = Linker::probe(dir.path()) else {
            return;
        };
        for (name, size) in [("big", NAME_AFTER as usize + 1), ("dropped", 5)] {
            let target = dir.path().join(name);
            let mut part = PartFile::create(&target, Some(linker), None, false).unwrap();
            part.set_record(record.clone());
            part.write(&vec![1; size]).unwrap();
            drop(part);
            let named = File::open(part_path(&target)).unwrap();
            assert_eq!(resume::load(&named), Stored::Found(record.clone()), "{name}");
        }
    }

    #[test]
    fn unnamed_part_is_named_when_large_or_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let Some(linker) = Linker::probe(dir.path()) else {
            return;
        };
        let target = dir.path().join("big");
        let mut part = PartFile::create(&target, Some(linker), None, false).unwrap();
        part.write(&vec![7; NAME_AFTER as usize]).unwrap();
        assert!(names_in(dir.path()).is_empty(), "not yet worth a name");
        part.write(b"more").unwrap();
        assert_eq!(names_in(dir.path()), ["big.part"]);
        drop(part);
        assert_eq!(fs::metadata(part_path(&target)).unwrap().len(), NAME_AFTER + 4);

        let small = dir.path().join("small");
        fs::write(part_path(&small), b"stale").unwrap();
        let mut part = PartFile::create(&small, Some(linker), None, false).unwrap();
        part.write(b"fresh").unwrap();
        drop(part);
        assert_eq!(
            fs::read(part_path(&small)).unwrap(),
            b"fresh",
            "kept, replacing the stale one"
        );

        let mut part = PartFile::create(&dir.path().join("gone"), Some(linker), None, false).unwrap();
        part.write(b"unwanted").unwrap();
        part.remove();
        assert_eq!(names_in(dir.path()), ["big.part", "small.part"]);
    }
}
