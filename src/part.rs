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
//! `NAME.part` is used from the start and renamed at the end.
//!
//! Every operation is relative to an open [`Folder`](crate::folder::Folder) and names one entry in
//! it, so a folder swapped for a symlink cannot redirect it. Planted symlinks
//! are never followed: a named part is created with `O_CREAT|O_EXCL` (which
//! refuses an existing link), an existing one is opened with `O_NOFOLLOW`, and
//! `link` and `rename` replace or refuse a link at `NAME` instead of writing
//! through it.
//!
//! A named part is locked (`flock`, exclusive) for as long as its download
//! holds it open: from its creation, from the moment an unnamed part gets its
//! name (the lock is taken first), or from its continuation with `-c`.
//! Another fetchq (an overlapping run, a Redis worker on a shared file system)
//! finds the lock taken and leaves that part alone ([`FetchError::Busy`]): it
//! neither writes into it, nor truncates, replaces or publishes it. A part
//! nobody holds is stale and may be replaced or continued; whoever takes it
//! checks, once it holds the lock, that the name still leads to the file it
//! locked. A worker publishes only the file it wrote: an unnamed part is
//! linked from its descriptor, a named one is renamed only after checking,
//! under its lock, that `NAME.part` is still that file. The lock is advisory:
//! other programs can still write there, and on a file system without locks
//! (some network mounts) overlapping runs are not kept apart.
//!
//! A named part carries the record of the response its bytes came from (see
//! [`crate::resume`]), written through its descriptor before it has a name,
//! so `-c` can tell whether the server still has that version and no
//! `NAME.part` is ever seen without it; a finished file sheds it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::SystemTime;

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::checksum::{Algorithms, Hasher};
use crate::error::FetchError;
use crate::folder::Folder;
use crate::resume::{self, Record, Stored};

/// An unnamed download is given its `NAME.part` name once it holds more than
/// this. A crash (or SIGKILL) loses an unnamed file, so this is the most a
/// crash can cost to fetch again; below it, resuming saves too little to be
/// worth a directory entry per file.
pub(crate) const NAME_AFTER: u64 = 1024 * 1024;

/// How often a name is looked at again when it keeps changing under us
/// (another process creating and removing parts at the same instant).
const TRIES: usize = 8;

/// `NAME.part` for `NAME`.
pub(crate) fn part_name(name: &OsStr) -> OsString {
    let mut part = name.to_os_string();
    part.push(".part");
    part
}

/// Take `file`'s lock without waiting: false if another open file holds it.
/// A file system without locks counts as granting it (nothing to coordinate with).
fn try_lock(file: impl AsFd) -> io::Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(Errno::NOLCK | Errno::OPNOTSUPP | Errno::INVAL) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// What [`claim`] found at a name.
enum Claim {
    /// Nothing.
    Missing,
    /// A file another process holds locked: in use.
    Held(OwnedFd),
    /// A file nobody held, now locked by us and checked to be the one at the name.
    Free(OwnedFd),
}

/// Open `name` in `dir` (never through a symlink: that is `ELOOP`) and try to
/// take its lock, checking once locked that the name still leads to it.
fn claim(dir: &Folder, name: &OsStr, access: OFlags) -> io::Result<Claim> {
    // NONBLOCK: a named pipe planted there must not hang the open.
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    for _ in 0..TRIES {
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Claim::Missing),
            Err(e) => return Err(e.into()),
        };
        if !try_lock(&fd)? {
            return Ok(Claim::Held(fd));
        }
        if dir.holds(name, &fd)? {
            return Ok(Claim::Free(fd));
        }
        // Renamed or replaced between our open and our lock: look again.
    }
    Err(io::Error::other("it keeps being replaced"))
}

/// Whether another process holds the lock on `name`'s part in `dir`, and
/// how many bytes that part has: `None` once nobody does, or it is gone (a
/// symlink or another odd thing there is nobody's part either: the download
/// deals with it).
pub(crate) fn part_holder(dir: &Folder, name: &OsStr) -> Option<u64> {
    match claim(dir, &part_name(name), OFlags::RDONLY) {
        Ok(Claim::Held(fd)) => {
            Some(rustix::fs::fstat(fd).map_or(0, |stat| u64::try_from(stat.st_size).unwrap_or(0)))
        }
        Ok(Claim::Missing | Claim::Free(_)) | Err(_) => None,
    }
}

/// How an unnamed file is given a name; which one works depends on the kernel
/// and privileges, so [`Linker::probe`] finds out once per output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linker {
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
    pub(crate) fn probe(dir: &Folder) -> Option<Linker> {
        let file = unnamed_in(dir, 0o600).ok()?;
        [Linker::EmptyPath, Linker::ProcFd].into_iter().find(|linker| {
            linker
                .link(&file, dir, OsStr::new("."))
                .is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
        })
    }

    /// Give the unnamed `file` the name `name` in `dir`; fails with
    /// `AlreadyExists` if taken.
    fn link(self, file: &File, dir: &Folder, name: &OsStr) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Linker::EmptyPath => rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Linker::EmptyPath => return Err(io::ErrorKind::Unsupported.into()),
            Linker::ProcFd => {
                use std::os::fd::AsRawFd;
                let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
                rustix::fs::linkat(rustix::fs::CWD, fd.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
            }
        }
        .map_err(io::Error::from)
    }
}

/// An unnamed file in `dir` (`O_TMPFILE`, Linux only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unnamed_in(dir: &Folder, mode: u32) -> io::Result<File> {
    // Readable too: a split download's hash reads back what other connections wrote.
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Elsewhere there are no unnamed files: parts are named from the start.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unnamed_in(_dir: &Folder, _mode: u32) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// `NAME.part` in `dir`, new, empty and locked. A stale part nobody holds is
/// replaced (a symlink there is removed, not followed); one another process
/// holds is left alone: [`FetchError::Busy`].
fn create_named(dir: &Folder, part: &OsStr, mode: u32) -> Result<File, FetchError> {
    let path = || dir.join(part);
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..TRIES {
        // Usually there is no stale part: try the create first and only clean
        // up when it is in the way (one syscall per file saved).
        match rustix::fs::openat(dir, part, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => {
                // Another process may have opened it and locked it in the
                // instant since: then it is theirs.
                return match try_lock(&fd) {
                    Ok(true) => Ok(File::from(fd)),
                    Ok(false) => Err(FetchError::busy(path())),
                    Err(e) => Err(FetchError::disk("cannot lock", path(), e)),
                };
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(FetchError::disk("cannot create", path(), e.into())),
        }
        let _stale = match claim(dir, part, OFlags::RDONLY) {
            Ok(Claim::Held(_)) => return Err(FetchError::busy(path())),
            Ok(Claim::Missing) => continue,
            Ok(Claim::Free(fd)) => Some(fd),
            // A symlink: nobody's part; the link itself goes.
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => None,
            Err(e) => return Err(FetchError::disk("cannot open stale", path(), e)),
        };
        // Removed while locked and known to be the file at the name; the lock
        // goes when `_stale` is dropped, after the name is gone.
        dir.unlink(part)
            .map_err(|e| FetchError::disk("cannot remove stale", path(), e))?;
    }
    Err(FetchError::disk(
        "cannot create",
        path(),
        io::Error::other("it keeps being replaced"),
    ))
}

/// How [`PartFile::commit`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The file is at its final name.
    Saved,
    /// Without `replace`, another file took the name while this one downloaded;
    /// it was left alone and the download discarded.
    NameTaken,
}

/// An open in-progress download.
///
/// Dropping it keeps what it holds, as `NAME.part` (an unnamed part is named
/// first, unless another process holds that name), so an interrupted download
/// can be continued with `-c`; [`remove`] discards it and [`commit`] finishes it.
///
/// [`remove`]: PartFile::remove
/// [`commit`]: PartFile::commit
pub(crate) struct PartFile {
    /// The folder it lives in.
    dir: Folder,
    /// `NAME.part`: the file's name, or the one it gets if it needs one.
    name: OsString,
    file: File,
    /// `Some` while the file has no name.
    unnamed: Option<Linker>,
    /// Bytes on disk from the start of the file without a gap: every write
    /// of this file's own goes here. Other connections of a split download
    /// write elsewhere, through [`PartFile::writer`], and move it on with
    /// [`PartFile::advance_to`].
    len: u64,
    /// Bytes may lie past `len` (a split download's pieces): the file is cut
    /// to `len` before it is published.
    holes: bool,
    hasher: Option<Hasher>,
    /// How far the hasher has read: it catches up from the file when bytes
    /// arrived through other connections, so a split download is hashed as
    /// its prefix grows, not all at the end.
    hashed: u64,
    /// The response the bytes come from, for `-c` (see [`crate::resume`]):
    /// put on the file as soon as it has a name, or before it gets one.
    record: Option<Record>,
    /// Left by an earlier run and taken over with `-c`: not known to be only
    /// ours (another program's file, or one with other names), so it is
    /// never truncated; [`PartFile::restart`] puts a new file in its place.
    adopted: bool,
    /// Disk blocks reserved ahead of `len`, once the body's end is known.
    reserve: Option<Reserve>,
}

/// How far ahead of the bytes written disk blocks are reserved. Bounded, so
/// a server that announces a huge length and then sends little gets no more
/// than this reserved for it.
const RESERVE_AHEAD: u64 = 32 * 1024 * 1024;

/// Runs of writes shorter than this reserve nothing: a `fallocate` per small
/// file costs more than delayed allocation does (3,000 × 4 KiB took 1.11×
/// the CPU with one each).
const RESERVE_FROM: u64 = 8 * 1024 * 1024;

/// Disk blocks reserved a little ahead of a run of writes that ends at a
/// known byte (`fallocate` without changing the file's length), so ext4
/// allocates them in large runs instead of block by block as each write
/// lands: 256 MiB written in 64 KiB pieces cost 0.081 instead of 0.106 s
/// of system time (median of 12 alternating runs). Only for long runs (see
/// [`RESERVE_FROM`]). Best effort: a file system that cannot is written as
/// usual, and what was reserved past the end of a file that stops short is
/// freed when the part is continued (it is written over) or removed.
#[derive(Debug)]
pub(crate) struct Reserve {
    /// Reserved up to here.
    upto: u64,
    /// Where the writes end.
    end: u64,
}

impl Reserve {
    /// Writes from `from` on, ending at `end`; none for a short run.
    pub(crate) fn new(from: u64, end: u64) -> Option<Reserve> {
        (end.saturating_sub(from) >= RESERVE_FROM).then_some(Reserve { upto: from, end })
    }

    /// Before writing `n` bytes at `at`.
    pub(crate) fn ahead(&mut self, file: &File, at: u64, n: u64) {
        let need = at.saturating_add(n).min(self.end);
        if need <= self.upto {
            return;
        }
        let from = self.upto.max(at);
        let to = at.saturating_add(RESERVE_AHEAD).max(need).min(self.end);
        if to > from {
            let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, from, to - from);
        }
        self.upto = to;
    }
}

impl PartFile {
    /// Continue the `NAME.part` an earlier run left for `name` in `dir`, if
    /// there is a regular file there; [`FetchError::Busy`] if another process
    /// holds it. With `hash`, its bytes are hashed when the digests are next
    /// needed, so they cover the whole file.
    pub(crate) fn continue_existing(
        dir: &Folder,
        name: &OsStr,
        hash: Algorithms,
    ) -> Result<Option<PartFile>, FetchError> {
        let part = part_name(name);
        let path = dir.join(&part);
        let fd = match claim(dir, &part, OFlags::RDWR) {
            Ok(Claim::Missing) => return Ok(None),
            Ok(Claim::Held(_)) => return Err(FetchError::busy(path)),
            Ok(Claim::Free(fd)) => fd,
            Err(e) => return Err(FetchError::disk("cannot open", path, e)),
        };
        let file = File::from(fd);
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
        Ok(Some(PartFile {
            dir: dir.clone(),
            name: part,
            file,
            unnamed: None,
            len: meta.len(),
            holes: false,
            hasher: Hasher::new(hash),
            hashed: 0,
            record: None,
            adopted: true,
            reserve: None,
        }))
    }

    /// Start an empty part for `name` in `dir`.
    ///
    /// With a `linker` the part starts unnamed (the caller knows no stale
    /// `NAME.part` needs replacing); if the file system refuses, or without
    /// one, it is `NAME.part`, replacing a stale file of that name but never
    /// one another process holds ([`FetchError::Busy`]). `mode` caps the
    /// permissions of a file that replaces an existing one, so an overwrite
    /// never widens them; the umask applies as for any new file.
    pub(crate) fn create(
        dir: &Folder,
        name: &OsStr,
        linker: Option<Linker>,
        mode: Option<u32>,
        hash: Algorithms,
    ) -> Result<PartFile, FetchError> {
        let part = part_name(name);
        let mode = mode.unwrap_or(0o666) & 0o666;
        let hasher = Hasher::new(hash);
        let (file, unnamed) = match linker.and_then(|linker| Some((unnamed_in(dir, mode).ok()?, linker))) {
            Some((file, linker)) => (file, Some(linker)),
            None => (create_named(dir, &part, mode)?, None),
        };
        Ok(PartFile {
            dir: dir.clone(),
            name: part,
            file,
            unnamed,
            len: 0,
            holes: false,
            hasher,
            hashed: 0,
            record: None,
            adopted: false,
            reserve: None,
        })
    }

    /// What an earlier run recorded on this part about where its bytes came from.
    pub(crate) fn stored_record(&self) -> Stored {
        resume::load(&self.file)
    }

    /// Record the response the bytes come from: on the file at once if it
    /// has a name, else just before it gets one, so a `NAME.part` never
    /// exists without it. Best effort: a file system without user
    /// attributes leaves the part unrecorded, and `-c` then starts it over.
    pub(crate) fn set_record(&mut self, record: Record) {
        if self.unnamed.is_none() {
            let _ = resume::store(&self.file, &record);
        }
        self.record = Some(record);
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part's path (for messages).
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The body ends at byte `end` (when known): disk blocks are reserved
    /// a little ahead of the writes from here on (see [`Reserve`]).
    pub(crate) fn expect(&mut self, end: Option<u64>) {
        self.reserve = end.and_then(|end| Reserve::new(self.len, end));
    }

    /// Append a chunk of the body at byte `len`.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        self.write_pair(chunk, &[])
    }

    /// Append `first` then `second` at byte `len`, in one write.
    pub(crate) fn write_pair(&mut self, first: &[u8], second: &[u8]) -> Result<(), FetchError> {
        let n = (first.len() + second.len()) as u64;
        if let Some(reserve) = self.reserve.as_mut() {
            reserve.ahead(&self.file, self.len, n);
        }
        write_pair_at(&self.file, first, second, self.len)
            .map_err(|e| FetchError::disk("cannot write", self.path(), e))?;
        self.written(first)?;
        self.written(second)
    }

    /// Count `chunk` as the part's next bytes: the caller wrote it at byte
    /// `len` (through [`PartFile::writer`], or with [`PartFile::write_pair`]).
    pub(crate) fn written(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        if self.hasher.is_some() && self.hashed == self.len {
            if let Some(hasher) = self.hasher.as_mut() {
                hasher.update(chunk);
            }
            self.hashed += chunk.len() as u64;
        }
        self.grow(self.len + chunk.len() as u64)
    }

    /// Move `len` on to `end`: the bytes up to it are on disk, written
    /// through [`PartFile::writer`] by another connection.
    pub(crate) fn advance_to(&mut self, end: u64) -> Result<(), FetchError> {
        self.holes = true;
        if end > self.len {
            self.grow(end)?;
        }
        self.catch_up()
    }

    /// Count only the first `len` bytes as the part's: the rest of the file
    /// has holes (a split download continued with `-c`), filled by pieces.
    pub(crate) fn keep_prefix(&mut self, len: u64) {
        self.holes = true;
        self.len = self.len.min(len);
        self.hashed = self.hashed.min(self.len);
    }

    fn grow(&mut self, len: u64) -> Result<(), FetchError> {
        let before = self.len;
        self.len = len;
        // Once, when it crosses the mark: a part that stays unnamed (its name
        // is held by another process) is not asked again for every chunk.
        if before <= NAME_AFTER && self.len > NAME_AFTER {
            self.name()?;
        }
        Ok(())
    }

    /// Give the part its `NAME.part` name now, not only past [`NAME_AFTER`]
    /// contiguous bytes: a split download writes in several places at once,
    /// and a crash must not lose what its pieces hold.
    pub(crate) fn name_now(&mut self) -> Result<(), FetchError> {
        self.name()
    }

    /// A second descriptor of the file, for a split download's other
    /// connections to write their pieces with positional writes.
    pub(crate) fn writer(&self) -> Result<File, FetchError> {
        self.file
            .try_clone()
            .map_err(|e| FetchError::disk("cannot reopen", self.path(), e))
    }

    /// Update the record's map of the ranges on disk (a split download), so
    /// `-c` fetches only what is missing.
    pub(crate) fn record_done(&mut self, done: Vec<(u64, u64)>) {
        if let Some(mut record) = self.record.take() {
            record.set_done(done);
            self.set_record(record);
        }
    }

    /// Feed the hasher what it has not read yet of the first `len` bytes,
    /// from the file.
    fn catch_up(&mut self) -> Result<(), FetchError> {
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(());
        };
        let mut buf = vec![0u8; 256 * 1024];
        while self.hashed < self.len {
            let want = usize::try_from(self.len - self.hashed)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = self
                .file
                .read_at(&mut buf[..want], self.hashed)
                .map_err(|e| FetchError::disk("cannot read", self.dir.join(&self.name), e))?;
            if n == 0 {
                return Err(FetchError::disk(
                    "cannot read",
                    self.dir.join(&self.name),
                    io::Error::other("the file is shorter than what was written to it"),
                ));
            }
            hasher.update(&buf[..n]);
            self.hashed += n as u64;
        }
        Ok(())
    }

    /// Throw away what was written and start from byte 0 (the server sent a
    /// different version, or ignored our Range): never splice two versions.
    ///
    /// A part this run made is truncated. One taken over with `-c` is left
    /// intact and replaced at its name by a new, empty, locked file, so
    /// neither another program's file nor a hard link to it is emptied.
    pub(crate) fn restart(&mut self) -> Result<(), FetchError> {
        if self.len == 0 && !self.holes {
            return Ok(());
        }
        if self.adopted {
            self.file = self.replace_adopted()?;
            self.adopted = false;
        } else {
            self.file
                .set_len(0)
                .map_err(|e| FetchError::disk("cannot truncate", self.path(), e))?;
            if self.unnamed.is_none() {
                resume::clear(&self.file);
            }
        }
        self.len = 0;
        self.holes = false;
        self.reserve = None;
        // The record described the bytes just dropped; the next response's follows.
        self.record = None;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.reset();
        }
        self.hashed = 0;
        Ok(())
    }

    /// A new, empty, locked file at the adopted part's name, put there by
    /// one rename from a private name while the lock on the old one is still
    /// held, so no other fetchq can take `NAME.part` in between. The old file
    /// keeps its bytes and any other name it has.
    fn replace_adopted(&self) -> Result<File, FetchError> {
        let stat = rustix::fs::fstat(&self.file)
            .map_err(|e| FetchError::disk("cannot inspect", self.path(), e.into()))?;
        #[allow(clippy::useless_conversion)]
        let mode = Mode::from_raw_mode((u32::from(stat.st_mode) & 0o666).into());
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for _ in 0..TRIES {
            let private = self.private_name();
            let fd = match rustix::fs::openat(&self.dir, &private, flags, mode) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(FetchError::disk(
                        "cannot create",
                        self.dir.join(&private),
                        e.into(),
                    ));
                }
            };
            let placed = try_lock(&fd)
                .and_then(|_| self.dir.holds(&self.name, &self.file))
                .and_then(|ours| {
                    if ours {
                        rustix::fs::renameat(&self.dir, &private, &self.dir, &self.name)
                            .map_err(io::Error::from)
                    } else {
                        Err(io::Error::other(
                            "another program replaced it during the download",
                        ))
                    }
                });
            return match placed {
                Ok(()) => Ok(File::from(fd)),
                Err(e) => {
                    let _ = self.dir.unlink(&private);
                    Err(FetchError::disk("cannot start over", self.path(), e))
                }
            };
        }
        Err(FetchError::busy(self.path()))
    }

    /// `NAME.part.RANDOM`: a name of its own, for a file about to be renamed.
    fn private_name(&self) -> OsString {
        let mut private = self.name.clone();
        private.push(format!(".{:08x}", fastrand::u32(..)));
        private
    }

    /// Put the record on the file, just before it is given a name.
    fn stamp(&self) {
        if let Some(record) = &self.record {
            let _ = resume::store(&self.file, record);
        }
    }

    /// The hasher, caught up with every byte of the part, if hashing was
    /// asked for: what [`Checksums::verify`](crate::checksum::Checksums::verify) compares.
    pub(crate) fn hasher(&mut self) -> Result<Option<&Hasher>, FetchError> {
        self.catch_up()?;
        Ok(self.hasher.as_ref())
    }

    /// Give an unnamed part its `NAME.part` name, replacing a stale file
    /// there. If another process holds that name (it downloads the same
    /// file), the part stays unnamed: it is still committed by its descriptor,
    /// only a crash would lose it.
    fn name(&mut self) -> Result<(), FetchError> {
        let Some(linker) = self.unnamed else {
            return Ok(());
        };
        // Locked and recorded before it has a name, so no other fetchq ever
        // sees it unlocked, and `-c` never finds it without its record.
        try_lock(&self.file).map_err(|e| FetchError::disk("cannot lock", self.path(), e))?;
        self.stamp();
        for _ in 0..TRIES {
            match linker.link(&self.file, &self.dir, &self.name) {
                Ok(()) => {
                    self.unnamed = None;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FetchError::disk("cannot name", self.path(), e)),
            }
            let _stale = match claim(&self.dir, &self.name, OFlags::RDONLY) {
                Ok(Claim::Held(_)) => return Ok(()),
                Ok(Claim::Missing) => continue,
                Ok(Claim::Free(fd)) => Some(fd),
                Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => None,
                Err(e) => return Err(FetchError::disk("cannot open stale", self.path(), e)),
            };
            self.dir
                .unlink(&self.name)
                .map_err(|e| FetchError::disk("cannot remove stale", self.path(), e))?;
        }
        Ok(())
    }

    /// Make the part the final file `name` in its folder: optional fsync,
    /// mtime, then link or rename.
    ///
    /// Without `replace` an existing `name` is never replaced (the answer is
    /// then [`Committed::NameTaken`]); with it, it is, atomically. With
    /// `sync`, the directory is fsynced too so the new name survives a power
    /// loss. A part that cannot be published is removed.
    pub(crate) fn commit(
        mut self,
        name: &OsStr,
        replace: bool,
        sync: bool,
        mtime: Option<SystemTime>,
        etag: Option<&str>,
    ) -> Result<Committed, FetchError> {
        // Linked straight from the descriptor, the file never had a name nor
        // a record on it; otherwise it keeps its record up to the rename
        // (a `NAME.part` is never without it) and sheds it at once after.
        let recorded = self.unnamed.is_none() || replace;
        let published = self.publish(name, replace, sync, mtime, etag);
        match published {
            Ok(Committed::Saved) if recorded => resume::clear(&self.file),
            Ok(Committed::Saved) => {}
            _ => self.discard(),
        }
        published
    }

    fn publish(
        &mut self,
        name: &OsStr,
        replace: bool,
        sync: bool,
        mtime: Option<SystemTime>,
        etag: Option<&str>,
    ) -> Result<Committed, FetchError> {
        let target = |dir: &Folder| dir.join(name);
        if self.holes {
            // Pieces of an abandoned split may lie past what was kept.
            self.file
                .set_len(self.len)
                .map_err(|e| FetchError::disk("cannot truncate", self.path(), e))?;
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
                .map_err(|e| FetchError::disk("cannot sync", self.path(), e))?;
        }
        if let Some(linker) = self.unnamed
            && !replace
        {
            match linker.link(&self.file, &self.dir, name) {
                Ok(()) => self.unnamed = None,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Committed::NameTaken),
                Err(e) => return Err(FetchError::disk("cannot link into", target(&self.dir), e)),
            }
        } else {
            self.name()?;
            if self.unnamed.is_some() {
                // Still unnamed: another process holds `NAME.part`. A rename
                // needs a name, so this one gets a name of its own.
                self.name_privately()?;
            }
            // Only the file this download wrote is published: under its
            // lock, the name must still lead to it.
            let ours = self
                .dir
                .holds(&self.name, &self.file)
                .map_err(|e| FetchError::disk("cannot inspect", self.path(), e))?;
            if !ours {
                return Err(FetchError::disk(
                    "cannot rename",
                    self.path(),
                    io::Error::other("another program replaced it during the download"),
                ));
            }
            let renamed = if replace {
                rustix::fs::renameat(&self.dir, &self.name, &self.dir, name).map_err(io::Error::from)
            } else {
                rename_no_replace(&self.dir, &self.name, name)
            };
            match renamed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Committed::NameTaken),
                Err(e) => return Err(FetchError::disk("cannot rename into", target(&self.dir), e)),
            }
        }
        if sync {
            rustix::fs::fsync(&self.dir)
                .map_err(|e| FetchError::disk("cannot sync directory", self.dir.path(), e.into()))?;
        }
        Ok(Committed::Saved)
    }

    /// Give a still unnamed part a name nobody else uses, `NAME.part.RANDOM`,
    /// for the rename that replaces `NAME`.
    fn name_privately(&mut self) -> Result<(), FetchError> {
        let Some(linker) = self.unnamed else {
            return Ok(());
        };
        self.stamp();
        for _ in 0..TRIES {
            let private = self.private_name();
            match linker.link(&self.file, &self.dir, &private) {
                Ok(()) => {
                    self.name = private;
                    self.unnamed = None;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FetchError::disk("cannot name", self.dir.join(&private), e)),
            }
        }
        Err(FetchError::busy(self.path()))
    }

    /// Delete the part (a failed or unwanted download).
    pub(crate) fn remove(mut self) {
        self.discard();
    }

    /// Let go of the bytes: an unnamed file vanishes when closed, a named one
    /// is deleted, if its name still leads to it.
    fn discard(&mut self) {
        if self.unnamed.take().is_none() && self.dir.holds(&self.name, &self.file).unwrap_or(false) {
            let _ = self.dir.unlink(&self.name);
        }
        self.len = 0;
    }
}

impl Drop for PartFile {
    /// Keep an abandoned download for `-c`: give an unnamed one its name.
    fn drop(&mut self) {
        if self.len > 0 || self.holes {
            let _ = self.name();
        }
    }
}

/// Write all of `first` then `second` at `at`: one `pwritev`, and plain
/// writes for whatever a short one left.
pub(crate) fn write_pair_at(file: &File, first: &[u8], second: &[u8], at: u64) -> io::Result<()> {
    let n = loop {
        match rustix::io::pwritev(file, &[io::IoSlice::new(first), io::IoSlice::new(second)], at) {
            Ok(n) => break n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n < first.len() {
        file.write_all_at(&first[n..], at + n as u64)?;
        file.write_all_at(second, at + first.len() as u64)
    } else {
        let done = n - first.len();
        file.write_all_at(&second[done..], at + n as u64)
    }
}

/// `rename` within `dir` that fails with `AlreadyExists` instead of replacing
/// `to`, where the system and file system support that (`renameat2`);
/// elsewhere a plain rename.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_no_replace(dir: &Folder, from: &OsStr, to: &OsStr) -> io::Result<()> {
    use rustix::fs::RenameFlags;
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => rustix::fs::renameat(dir, from, dir, to),
        other => other,
    }
    .map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn rename_no_replace(dir: &Folder, from: &OsStr, to: &OsStr) -> io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{Algorithm, Checksums};

    const NO_HASH: Algorithms = Algorithms::NONE;
    const SHA256: Algorithms = Algorithms::of(Algorithm::Sha256);
    use std::fs;
    use std::path::Path;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn os(name: &str) -> &OsStr {
        OsStr::new(name)
    }

    #[test]
    fn part_name_appends_suffix() {
        assert_eq!(part_name(os("a.txt")), "a.txt.part");
    }

    #[test]
    fn planted_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("a.txt.part")).unwrap();

        // Continuing refuses to open through the link.
        assert!(PartFile::continue_existing(&dir, os("a.txt"), NO_HASH).is_err());
        // A fresh start removes the link itself and writes a new file.
        let mut part = PartFile::create(&dir, os("a.txt"), None, None, NO_HASH).unwrap();
        part.write(b"new").unwrap();
        assert_eq!(
            part.commit(os("a.txt"), true, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert_eq!(fs::read(tmp.path().join("a.txt")).unwrap(), b"new");
    }

    #[test]
    fn continued_part_hashes_existing_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a.part"), b"hello ").unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let mut part = PartFile::continue_existing(&dir, os("a"), SHA256)
            .unwrap()
            .unwrap();
        assert_eq!(part.len(), 6);
        part.write(b"world").unwrap();
        let want = Checksums::for_bytes(Algorithm::Sha256, b"hello world");
        assert_eq!(want.verify(part.hasher().unwrap()), Ok(()));
    }

    #[test]
    fn unnamed_part_is_invisible_until_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let Some(linker) = Linker::probe(&dir) else {
            return; // The file system has no O_TMPFILE: named parts cover it.
        };
        assert!(names_in(tmp.path()).is_empty(), "the probe leaves nothing");
        let mut part = PartFile::create(&dir, os("a"), Some(linker), None, NO_HASH).unwrap();
        part.write(b"body").unwrap();
        assert!(names_in(tmp.path()).is_empty());
        assert_eq!(
            part.commit(os("a"), false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(names_in(tmp.path()), ["a"]);
        assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"body");
    }

    /// The fallback for kernels before 6.10 without privileges (the probe
    /// prefers `EmptyPath` wherever that works, so it is tested on its own).
    #[test]
    fn proc_fd_linker_names_an_unnamed_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        if Linker::probe(&dir).is_none() {
            return;
        }
        let probe = unnamed_in(&dir, 0o600).unwrap();
        let taken = Linker::ProcFd.link(&probe, &dir, os(".")).unwrap_err();
        assert_eq!(
            taken.kind(),
            io::ErrorKind::AlreadyExists,
            "what the probe relies on"
        );
        let mut part = PartFile::create(&dir, os("a"), Some(Linker::ProcFd), None, NO_HASH).unwrap();
        part.write(b"via /proc").unwrap();
        assert_eq!(
            part.commit(os("a"), false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"via /proc");
        assert_eq!(names_in(tmp.path()), ["a"]);
    }

    #[test]
    fn taken_name_is_left_alone_unless_replacing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let target = tmp.path().join("a");
        for linker in [Linker::probe(&dir), None] {
            fs::write(&target, b"theirs").unwrap();
            let mut part = PartFile::create(&dir, os("a"), linker, None, NO_HASH).unwrap();
            part.write(b"ours").unwrap();
            let committed = part.commit(os("a"), false, false, None, None).unwrap();
            assert_eq!(committed, Committed::NameTaken, "{linker:?}");
            assert_eq!(fs::read(&target).unwrap(), b"theirs");
            assert_eq!(names_in(tmp.path()), ["a"], "the download is discarded");

            let mut part = PartFile::create(&dir, os("a"), linker, None, NO_HASH).unwrap();
            part.write(b"ours").unwrap();
            assert_eq!(
                part.commit(os("a"), true, false, None, None).unwrap(),
                Committed::Saved
            );
            assert_eq!(fs::read(&target).unwrap(), b"ours");
            assert_eq!(names_in(tmp.path()), ["a"]);
        }
    }

    /// The record is on a part whenever the part has a name, and not on the
    /// finished file.
    #[test]
    fn a_named_part_carries_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let url = url::Url::parse("http://h/f").unwrap();
        let record = Record::new(&url, Some("\"v1\""), None, Some(9));
        let load = |name: &str| resume::load(&File::open(tmp.path().join(name)).unwrap());
        let mut part = PartFile::create(&dir, os("named"), None, None, NO_HASH).unwrap();
        part.set_record(record.clone());
        if part.stored_record() == Stored::Missing {
            return; // No user attributes here: parts stay unrecorded and `-c` starts over.
        }
        assert_eq!(load("named.part"), Stored::Found(record.clone()));
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
            part.commit(os("named"), false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(load("named"), Stored::Missing, "a finished file is no part");

        let Some(linker) = Linker::probe(&dir) else {
            return;
        };
        for (name, size) in [("big", NAME_AFTER as usize + 1), ("dropped", 5)] {
            let mut part = PartFile::create(&dir, os(name), Some(linker), None, NO_HASH).unwrap();
            part.set_record(record.clone());
            part.write(&vec![1; size]).unwrap();
            drop(part);
            assert_eq!(
                load(&format!("{name}.part")),
                Stored::Found(record.clone()),
                "{name}"
            );
        }
        // Replacing NAME: an unnamed part is named first (`NAME.part`, or a
        // private name while another download holds that), then renamed; the
        // finished file sheds the record either way.
        let theirs = PartFile::create(&dir, os("held"), None, None, NO_HASH).unwrap();
        for name in ["replaced", "held"] {
            fs::write(tmp.path().join(name), b"older").unwrap();
            let mut part = PartFile::create(&dir, os(name), Some(linker), None, NO_HASH).unwrap();
            part.set_record(record.clone());
            part.write(b"newer").unwrap();
            assert_eq!(
                part.commit(os(name), true, false, None, None).unwrap(),
                Committed::Saved
            );
            assert_eq!(fs::read(tmp.path().join(name)).unwrap(), b"newer");
            assert_eq!(load(name), Stored::Missing, "{name}: a finished file is no part");
        }
        drop(theirs);
    }

    /// A part taken over with `-c` is never emptied in place when its
    /// download starts over: it may be another program's, or have other names.
    #[test]
    fn an_adopted_part_is_replaced_not_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        fs::write(tmp.path().join("x.part"), b"theirs").unwrap();
        fs::hard_link(tmp.path().join("x.part"), tmp.path().join("keep")).unwrap();
        let mut part = PartFile::continue_existing(&dir, os("x"), SHA256)
            .unwrap()
            .unwrap();
        assert_eq!(part.len(), 6);
        part.restart().unwrap();
        assert_eq!(fs::read(tmp.path().join("keep")).unwrap(), b"theirs");
        assert_eq!(fs::metadata(tmp.path().join("x.part")).unwrap().len(), 0);
        assert!(
            matches!(
                PartFile::continue_existing(&dir, os("x"), NO_HASH),
                Err(FetchError::Busy { .. })
            ),
            "the new part is locked"
        );
        part.write(b"new").unwrap();
        let want = Checksums::for_bytes(Algorithm::Sha256, b"new");
        assert_eq!(
            want.verify(part.hasher().unwrap()),
            Ok(()),
            "the digest starts over too"
        );
        assert_eq!(
            part.commit(os("x"), false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(names_in(tmp.path()), ["keep", "x"]);
        assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"new");
        assert_eq!(fs::read(tmp.path().join("keep")).unwrap(), b"theirs");
    }

    #[test]
    fn unnamed_part_is_named_when_large_or_abandoned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let Some(linker) = Linker::probe(&dir) else {
            return;
        };
        let mut part = PartFile::create(&dir, os("big"), Some(linker), None, NO_HASH).unwrap();
        part.write(&vec![7; NAME_AFTER as usize]).unwrap();
        assert!(names_in(tmp.path()).is_empty(), "not yet worth a name");
        part.write(b"more").unwrap();
        assert_eq!(names_in(tmp.path()), ["big.part"]);
        drop(part);
        assert_eq!(
            fs::metadata(tmp.path().join("big.part")).unwrap().len(),
            NAME_AFTER + 4
        );

        fs::write(tmp.path().join("small.part"), b"stale").unwrap();
        let mut part = PartFile::create(&dir, os("small"), Some(linker), None, NO_HASH).unwrap();
        part.write(b"fresh").unwrap();
        drop(part);
        assert_eq!(
            fs::read(tmp.path().join("small.part")).unwrap(),
            b"fresh",
            "kept, replacing the stale one"
        );

        let mut part = PartFile::create(&dir, os("gone"), Some(linker), None, NO_HASH).unwrap();
        part.write(b"unwanted").unwrap();
        part.remove();
        assert_eq!(names_in(tmp.path()), ["big.part", "small.part"]);
    }

    #[test]
    fn a_part_another_download_holds_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let mut theirs = PartFile::create(&dir, os("x"), None, None, NO_HASH).unwrap();
        theirs.write(b"theirs").unwrap();

        assert!(matches!(
            PartFile::create(&dir, os("x"), None, None, NO_HASH),
            Err(FetchError::Busy { .. })
        ));
        assert!(matches!(
            PartFile::continue_existing(&dir, os("x"), NO_HASH),
            Err(FetchError::Busy { .. })
        ));
        assert_eq!(part_holder(&dir, os("x")), Some(6));
        // An unnamed part that cannot take the name stays unnamed and still
        // commits by its descriptor.
        if let Some(linker) = Linker::probe(&dir) {
            let mut ours = PartFile::create(&dir, os("x"), Some(linker), None, NO_HASH).unwrap();
            ours.write(&vec![1; NAME_AFTER as usize + 1]).unwrap();
            assert_eq!(names_in(tmp.path()), ["x.part"]);
            assert_eq!(
                ours.commit(os("x"), true, false, None, None).unwrap(),
                Committed::Saved
            );
            assert_eq!(names_in(tmp.path()), ["x", "x.part"]);
            fs::remove_file(tmp.path().join("x")).unwrap();
        }
        assert_eq!(fs::read(tmp.path().join("x.part")).unwrap(), b"theirs");

        // Once its holder lets go, the part is stale: continued, or replaced.
        drop(theirs);
        assert_eq!(part_holder(&dir, os("x")), None);
        let continued = PartFile::continue_existing(&dir, os("x"), NO_HASH)
            .unwrap()
            .unwrap();
        assert_eq!(continued.len(), 6);
        drop(continued);
        let mut fresh = PartFile::create(&dir, os("x"), None, None, NO_HASH).unwrap();
        fresh.write(b"new").unwrap();
        assert_eq!(
            fresh.commit(os("x"), false, false, None, None).unwrap(),
            Committed::Saved
        );
        assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"new");
        assert_eq!(names_in(tmp.path()), ["x"]);
    }

    #[test]
    fn only_the_file_written_is_published() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        let mut part = PartFile::create(&dir, os("x"), None, None, NO_HASH).unwrap();
        part.write(b"ours").unwrap();
        // Another program, ignoring the lock, puts its own file at the name.
        fs::rename(tmp.path().join("x.part"), tmp.path().join("moved")).unwrap();
        fs::write(tmp.path().join("x.part"), b"foreign").unwrap();
        assert!(part.commit(os("x"), false, false, None, None).is_err());
        assert_eq!(names_in(tmp.path()), ["moved", "x.part"]);
        assert_eq!(fs::read(tmp.path().join("x.part")).unwrap(), b"foreign");
    }

    #[test]
    fn a_directory_at_the_name_stays_and_the_part_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::open(tmp.path()).unwrap();
        fs::create_dir(tmp.path().join("x")).unwrap();
        for linker in [Linker::probe(&dir), None] {
            for replace in [false, true] {
                let mut part = PartFile::create(&dir, os("x"), linker, None, NO_HASH).unwrap();
                part.write(b"body").unwrap();
                let committed = part.commit(os("x"), replace, false, None, None);
                assert!(!matches!(committed, Ok(Committed::Saved)), "{linker:?} {replace}");
                assert_eq!(names_in(tmp.path()), ["x"], "{linker:?} {replace}");
                assert!(tmp.path().join("x").is_dir());
            }
        }
    }

    #[test]
    fn blocks_are_reserved_ahead_within_the_window_and_the_length_stays() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let file = File::create(tmp.path().join("x")).unwrap();
        let probe = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, 4096);
        if probe == Err(rustix::io::Errno::OPNOTSUPP) {
            return; // this file system cannot reserve: writes go on as usual
        }
        let allocated = |file: &File| file.metadata().unwrap().blocks() * 512;
        let mut reserve = Reserve::new(0, 1 << 40).unwrap();
        reserve.ahead(&file, 0, 4096);
        assert_eq!(file.metadata().unwrap().len(), 0, "the length must not move");
        assert_eq!(allocated(&file), RESERVE_AHEAD, "one window ahead");
        // Writes inside the window reserve nothing more.
        reserve.ahead(&file, RESERVE_AHEAD - 4096, 4096);
        assert_eq!(allocated(&file), RESERVE_AHEAD);
        // Past it, the next window; never past the end.
        reserve.ahead(&file, RESERVE_AHEAD, 1);
        assert_eq!(allocated(&file), 2 * RESERVE_AHEAD);
        let body = RESERVE_FROM + 10_000;
        let mut short = Reserve::new(0, body).unwrap();
        let small = File::create(tmp.path().join("y")).unwrap();
        short.ahead(&small, 0, 4096);
        let got = allocated(&small);
        assert!(got <= body + 4096, "{got} bytes for a body of {body} bytes");
        assert!(
            Reserve::new(0, RESERVE_FROM - 1).is_none(),
            "a small body reserves nothing"
        );
    }
}
