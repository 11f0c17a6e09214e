//! An open folder of the output directory, and what sits at a name in it.
//!
//! Every file operation of a download names one entry in an open [`Folder`]
//! (see [`crate::part`] for the operations and [`crate::outdir`] for how
//! folders are reached), so no path is walked again once a folder is open.
//! What is at a name is looked at without following a symlink ([`Occupant`]).

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// An open directory under the output directory, with its path for messages.
///
/// Every file operation of a download goes through it and names a single
/// entry in it, so no path is walked again once the folder is open: a folder
/// renamed or swapped for a symlink afterwards cannot redirect a create, link
/// or rename (see [`crate::outdir`] for what the user sees then). Cloning it
/// shares the descriptor.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// What is at a name a download wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occupant {
    /// A regular file, or a symlink to one (never written through).
    File {
        /// Its size.
        len: u64,
        /// Its permission bits.
        mode: u32,
    },
    /// Anything else: no download may take this name. Says what it is.
    Other(&'static str),
}

impl Folder {
    /// A folder from its open descriptor (`O_DIRECTORY`) and its path.
    pub(crate) fn new(fd: OwnedFd, path: PathBuf) -> Folder {
        Folder {
            fd: Arc::new(fd),
            path,
        }
    }

    /// Open the directory at `path` (following symlinks: for the output
    /// directory itself, which the user named).
    pub(crate) fn open(path: &Path) -> io::Result<Folder> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())?;
        Ok(Folder::new(fd, path.to_path_buf()))
    }

    /// Open the sub-folder `name`, never through a symlink.
    pub(crate) fn open_sub(&self, name: &OsStr) -> io::Result<Folder> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(self, name, flags, Mode::empty())?;
        Ok(Folder::new(fd, self.join(name)))
    }

    /// Make the sub-folder `name`; false if something is there already.
    pub(crate) fn make_sub(&self, name: &OsStr) -> io::Result<bool> {
        match rustix::fs::mkdirat(self, name, Mode::from_raw_mode(0o777)) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the folder has no entries (an error counts as not empty).
    pub(crate) fn is_empty(&self) -> bool {
        rustix::fs::Dir::read_from(self).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|entry| matches!(entry.file_name().to_bytes(), b"." | b".."))
        })
    }

    /// The folder's path as the run reaches it (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this folder (for messages).
    pub(crate) fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The folder's device and inode: what it is, whatever its path.
    pub(crate) fn id(&self) -> io::Result<(u64, u64)> {
        Ok(id_of(&rustix::fs::fstat(self)?))
    }

    /// What is at `name`, a symlink there itself rather than what it points
    /// to; `None` if nothing.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        match rustix::fs::statat(self, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `name` holds a file (or a symlink to one), something else, or nothing.
    pub(crate) fn occupant(&self, name: &OsStr) -> io::Result<Option<Occupant>> {
        occupant_at(self.as_fd(), name)
    }

    /// The metadata of the file at `name` (following a symlink there: a read,
    /// for `--update`'s validators).
    pub(crate) fn metadata(&self, name: &OsStr) -> io::Result<Metadata> {
        // `O_PATH` needs no permission on the file itself; elsewhere a
        // non-blocking read-only open does the job.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(self, name, flags, Mode::empty())?;
        File::from(fd).metadata()
    }

    /// Remove `name` (not a folder).
    pub(crate) fn unlink(&self, name: &OsStr) -> io::Result<()> {
        match rustix::fs::unlinkat(self, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `name` is, right now, the very file `file` has open.
    pub(crate) fn holds(&self, name: &OsStr, file: impl AsFd) -> io::Result<bool> {
        let mine = id_of(&rustix::fs::fstat(file)?);
        Ok(self.stat(name)?.is_some_and(|there| id_of(&there) == mine))
    }
}

impl AsFd for Folder {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Device and inode: what a file is, whatever its name.
pub(crate) fn id_of(stat: &Stat) -> (u64, u64) {
    #[allow(clippy::useless_conversion)]
    (u64::from(stat.st_dev), u64::from(stat.st_ino))
}

/// Whether `name` in `dir` holds a file (or a symlink to one), something
/// else, or nothing. Looks only: for `--dry-run` it is given a path and the
/// current directory.
pub(crate) fn occupant_at<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd<'_>,
    name: P,
) -> io::Result<Option<Occupant>> {
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let followed = || match rustix::fs::statat(dir, name, AtFlags::empty()) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT | Errno::LOOP) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    };
    Ok(Some(classify(&stat, followed)?))
}

/// What a name holds, from its `lstat` and, for a symlink, what it leads to.
fn classify(stat: &Stat, followed: impl FnOnce() -> io::Result<Option<Stat>>) -> io::Result<Occupant> {
    let file = |stat: &Stat| Occupant::File {
        len: u64::try_from(stat.st_size).unwrap_or(0),
        #[allow(clippy::useless_conversion)]
        mode: u32::from(stat.st_mode) & 0o7777,
    };
    #[allow(clippy::useless_conversion)]
    let kind = |stat: &Stat| FileType::from_raw_mode(stat.st_mode.into());
    Ok(match kind(stat) {
        FileType::RegularFile => file(stat),
        FileType::Symlink => match followed()? {
            Some(target) if kind(&target) == FileType::RegularFile => file(&target),
            Some(target) if kind(&target) == FileType::Directory => {
                Occupant::Other("a symlink to a directory")
            }
            Some(_) => Occupant::Other("a symlink to something that is not a file"),
            None => Occupant::Other("a symlink that leads nowhere"),
        },
        FileType::Directory => Occupant::Other("a directory"),
        FileType::Fifo => Occupant::Other("a named pipe"),
        FileType::Socket => Occupant::Other("a socket"),
        FileType::CharacterDevice | FileType::BlockDevice => Occupant::Other("a device"),
        FileType::Unknown => Occupant::Other("not a regular file"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn os(name: &str) -> &OsStr {
        OsStr::new(name)
    }

    #[test]
    fn occupants_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("file"), b"12345").unwrap();
        fs::create_dir(root.join("dir")).unwrap();
        let link = |to: &str, name: &str| std::os::unix::fs::symlink(to, root.join(name)).unwrap();
        link("file", "to-file");
        link("dir", "to-dir");
        link("nowhere", "dangling");
        std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        let dir = Folder::open(root).unwrap();
        let what = |name| dir.occupant(os(name)).unwrap();
        assert!(matches!(what("file"), Some(Occupant::File { len: 5, .. })));
        assert!(matches!(what("to-file"), Some(Occupant::File { len: 5, .. })));
        assert_eq!(what("dir"), Some(Occupant::Other("a directory")));
        assert_eq!(what("to-dir"), Some(Occupant::Other("a symlink to a directory")));
        assert_eq!(
            what("dangling"),
            Some(Occupant::Other("a symlink that leads nowhere"))
        );
        assert_eq!(what("fifo"), Some(Occupant::Other("a named pipe")));
        assert_eq!(what("none"), None);
    }
}
