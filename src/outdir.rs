//! The output directory: checked once before any download, and the only place
//! files are written. Sub-folders are created on demand, never through a symlink.
//!
//! The directory is opened once, and every folder under it is reached from its
//! parent's descriptor, one component at a time (`mkdirat`, then `openat` with
//! `O_NOFOLLOW|O_DIRECTORY`): a symlink or a file where a folder should be
//! fails the entry, and once a folder is open the downloads in it work on that
//! descriptor and a single file name (see [`crate::folder::Folder`]), so no swap
//! of a folder for a symlink at any moment redirects a write outside `--dir`.
//! `openat2` with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS` would give the same
//! guarantee for a whole path in one call; the walk is needed anyway to create
//! missing folders, and works on every kernel.
//!
//! The 64 most recently opened folders stay open between entries, so the
//! walk happens about once per folder without holding a descriptor for each
//! of a list's thousand folders. An open folder keeps pointing at the real
//! directory even if it is renamed meanwhile: writes then go into that
//! directory wherever it went, never through whatever took its place. To keep
//! that visible, each new entry checks first that the folder's path still
//! leads to the directory held ([`OutDir::ensure_parent`]), and so does each
//! download before it gets its name ([`OutDir::check`]): a folder moved or
//! replaced during the run fails the downloads in flight there with "the
//! folder was moved or replaced during the download" (nothing is published),
//! and later entries walk the path anew (a symlink now in its place fails
//! them as "a file or symlink is in the way"). Only a swap in the instant
//! between that last check and the link leaves a file in the moved folder.
//! The output directory itself is held from the start: if it is renamed
//! during a run, files follow it.
//!
//! It also remembers which folders were empty when the run first used them.
//! In such a folder no file can exist that this run did not put there (names
//! within a run are unique), so a download there needs no existence check and
//! no stale `NAME.part` can be in the way; a file that another process creates
//! meanwhile is still never overwritten unasked (see [`crate::part`]).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{FetchError, RunError};
use crate::folder::{Folder, id_of};
use crate::part::Linker;

/// The output directory of a run.
#[derive(Debug)]
pub(crate) struct OutDir {
    root: PathBuf,
    /// The directory, open, and whether it was empty when the run started;
    /// `None` for a planned one (`--dry-run`), which touches nothing.
    top: Option<Place>,
    /// Sub-folders already made or checked this run: per-file work stays at a
    /// lookup here and one `fstatat`, not a walk of the path.
    made: Mutex<Made>,
    /// How unnamed part files are named here; `None` where they do not work.
    linker: Option<Linker>,
}

/// How many sub-folders stay open between entries. A list that spreads over
/// more folders than this re-opens them (one `openat` per path component)
/// instead of running out of file descriptors.
const OPEN_FOLDERS: usize = 64;

/// The sub-folders this run has used, by path relative to the root.
#[derive(Debug, Default)]
struct Made {
    known: HashMap<PathBuf, Known>,
    /// The paths whose folder is held open, oldest first.
    open: VecDeque<PathBuf>,
}

/// What the run remembers of a sub-folder.
#[derive(Debug)]
struct Known {
    /// Device and inode when first used: the same folder, met again, keeps
    /// its first answer to "was it empty".
    id: (u64, u64),
    was_empty: bool,
    /// The open folder, for the [`OPEN_FOLDERS`] most recently opened.
    folder: Option<Folder>,
}

impl Made {
    /// The folder at `parent`, if it is held open.
    fn open_place(&self, parent: &Path) -> Option<Place> {
        let known = self.known.get(parent)?;
        Some(Place {
            folder: known.folder.clone()?,
            id: known.id,
            was_empty: known.was_empty,
        })
    }

    /// Remember `folder`, just opened at `parent`; `fresh` says whether it was
    /// empty, for a folder not met before. The first answer for a folder stands.
    fn remember(&mut self, parent: &Path, folder: Folder, id: (u64, u64), fresh: bool) -> Place {
        let was_empty = match self.known.get(parent) {
            Some(known) if known.id == id => known.was_empty,
            _ => fresh,
        };
        let known = Known {
            id,
            was_empty,
            folder: Some(folder.clone()),
        };
        if self
            .known
            .insert(parent.to_path_buf(), known)
            .is_none_or(|old| old.folder.is_none())
        {
            self.open.push_back(parent.to_path_buf());
        }
        while self.open.len() > OPEN_FOLDERS {
            if let Some(oldest) = self.open.pop_front()
                && let Some(known) = self.known.get_mut(&oldest)
            {
                known.folder = None;
            }
        }
        Place {
            folder,
            id,
            was_empty,
        }
    }
}

/// A folder of the output directory as this run holds it.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    folder: Folder,
    /// Device and inode of the folder when it was opened.
    id: (u64, u64),
    was_empty: bool,
}

impl Place {
    fn new(folder: Folder, was_empty: bool) -> io::Result<Place> {
        Ok(Place {
            id: folder.id()?,
            folder,
            was_empty,
        })
    }

    /// The open folder.
    pub(crate) fn folder(&self) -> &Folder {
        &self.folder
    }

    /// Whether the folder was empty when this run first used it.
    pub(crate) fn was_empty(&self) -> bool {
        self.was_empty
    }
}

impl OutDir {
    /// Create `root` if missing and check that files can be created in it.
    pub(crate) fn prepare(root: &Path) -> Result<OutDir, RunError> {
        let fail = |source| RunError::OutputDir {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(fail)?;
        let folder = Folder::open(root).map_err(fail)?;
        // Permission bits do not tell the whole story (read-only mounts, ACLs):
        // try it. Making an unnamed file proves it too, without touching the
        // folder (a run that changes nothing leaves even its mtime alone).
        let linker = Linker::probe(&folder);
        if linker.is_none() {
            let probe = format!(".fetchq-probe-{}", std::process::id());
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(&folder, probe.as_str(), flags, Mode::from_raw_mode(0o600))
                .map_err(|e| fail(e.into()))?;
            let _ = rustix::fs::unlinkat(&folder, probe.as_str(), AtFlags::empty());
        }
        let was_empty = folder.is_empty();
        Ok(OutDir {
            root: root.to_path_buf(),
            top: Some(Place::new(folder, was_empty).map_err(fail)?),
            made: Mutex::default(),
            linker,
        })
    }

    /// The directory as given, unchecked and not created (`--dry-run` touches nothing).
    pub(crate) fn planned(root: &Path) -> OutDir {
        OutDir {
            root: root.to_path_buf(),
            top: None,
            made: Mutex::default(),
            linker: None,
        }
    }

    /// How part files can start unnamed here, if they can.
    pub(crate) fn linker(&self) -> Option<Linker> {
        self.linker
    }

    /// The absolute-or-as-given path of `rel` inside the directory.
    pub(crate) fn path_of(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// The folder `rel` goes in, open: every folder above `rel` exists as a
    /// real directory (not a symlink that could lead outside), created where
    /// missing, and was reached without following a symlink. Also says
    /// whether that folder was empty when this run first used it.
    pub(crate) fn ensure_parent(&self, rel: &Path) -> Result<Place, FetchError> {
        let Some(top) = &self.top else {
            return Err(FetchError::disk(
                "cannot write into",
                &self.root,
                io::Error::other("the output directory was not prepared"),
            ));
        };
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(top.clone());
        };
        let held = self.made.lock().ok().and_then(|made| made.open_place(parent));
        if let Some(place) = held
            && self.leads_to(parent, &place)
        {
            return Ok(place);
        }
        // Not open, or moved or replaced since: walk the path.
        let mut folder = top.folder.clone();
        let mut created = false;
        for component in parent.components() {
            let Component::Normal(name) = component else {
                // Naming already rejects these; refuse rather than trust it blindly.
                return Err(FetchError::disk(
                    "refusing to write outside the output directory via",
                    self.path_of(rel),
                    io::Error::other("unexpected path component"),
                ));
            };
            let path = || folder.join(name);
            created = folder
                .make_sub(name)
                .map_err(|e| FetchError::disk("cannot create folder", path(), e))?;
            folder = folder.open_sub(name).map_err(|e| match e.raw_os_error() {
                Some(code) if code == libc::ELOOP || code == libc::ENOTDIR => FetchError::disk(
                    "cannot use folder",
                    path(),
                    io::Error::other("a file or symlink is in the way"),
                ),
                _ => FetchError::disk("cannot open folder", path(), e),
            })?;
        }
        let id = folder
            .id()
            .map_err(|e| FetchError::disk("cannot inspect", self.path_of(parent), e))?;
        let seen = |made: &Made| made.known.get(parent).is_some_and(|known| known.id == id);
        // A folder met before keeps its first answer (another worker may have
        // made it a moment ago and filled it since); only a new one is looked at.
        let fresh = !self.made.lock().is_ok_and(|made| seen(&made)) && (created || folder.is_empty());
        Ok(match self.made.lock() {
            Ok(mut made) => made.remember(parent, folder, id, fresh),
            Err(_) => Place {
                folder,
                id,
                was_empty: fresh,
            },
        })
    }

    /// Check, before a download in `place` gets its name, that the path of
    /// `rel`'s folder still leads to that folder: a folder moved or replaced
    /// while the download ran fails it instead of hiding the file elsewhere.
    pub(crate) fn check(&self, rel: &Path, place: &Place) -> Result<(), FetchError> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        if self.leads_to(parent, place) {
            return Ok(());
        }
        Err(FetchError::disk(
            "cannot save into",
            place.folder.path(),
            io::Error::other("the folder was moved or replaced during the download"),
        ))
    }

    /// Whether `parent` (relative to the root) is, right now, the folder `place`
    /// holds: a symlink there is not (`AT_SYMLINK_NOFOLLOW`). One with a
    /// symlink further up can only pass if it leads to that very folder, where
    /// the files go anyway.
    fn leads_to(&self, parent: &Path, place: &Place) -> bool {
        let Some(top) = &self.top else {
            return false;
        };
        let at: &OsStr = parent.as_os_str();
        rustix::fs::statat(top.folder(), at, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| id_of(&stat) == place.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symlinked_subfolder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let root = tmp.path().join("out");
        let out = OutDir::prepare(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        assert!(out.ensure_parent(Path::new("sub/file")).is_err());
        out.ensure_parent(Path::new("a/b/file")).unwrap();
        assert!(root.join("a/b").is_dir());
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_is_noticed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let root = tmp.path().join("out");
        let out = OutDir::prepare(&root).unwrap();
        let rel = Path::new("sub/deeper/a");
        let place = out.ensure_parent(rel).unwrap();
        out.check(rel, &place).unwrap();

        fs::rename(root.join("sub"), root.join("sub.moved")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("sub")).unwrap();
        fs::create_dir(outside.join("deeper")).unwrap();
        assert!(out.check(rel, &place).is_err(), "the download in flight");
        assert!(out.ensure_parent(rel).is_err(), "the next entry");
        // The folder held is the real one, wherever it went.
        assert!(place.folder().occupant(OsStr::new("x")).unwrap().is_none());
        assert_eq!(
            rustix::fs::fstat(place.folder()).unwrap().st_ino,
            fs::metadata(root.join("sub.moved/deeper"))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap()
        );

        // A real folder back in place is used again (walked anew).
        fs::remove_file(root.join("sub")).unwrap();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        let fresh = out.ensure_parent(rel).unwrap();
        out.check(rel, &fresh).unwrap();
        assert!(fresh.was_empty());
    }

    #[test]
    fn folders_are_known_empty_only_if_they_were_at_first_use() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        fs::create_dir_all(root.join("full")).unwrap();
        fs::write(root.join("full/old"), b"x").unwrap();
        fs::create_dir(root.join("empty")).unwrap();

        let out = OutDir::prepare(&root).unwrap();
        let empty = |rel: &str| out.ensure_parent(Path::new(rel)).unwrap().was_empty();
        assert!(!empty("top"), "the root holds folders");
        assert!(!empty("full/a"));
        assert!(empty("empty/a"));
        assert!(empty("new/deeper/a"), "made by this run");
        // What this run writes there later does not change the answer.
        fs::write(root.join("empty/a"), b"x").unwrap();
        assert!(empty("empty/b"));

        let fresh = OutDir::prepare(&tmp.path().join("fresh")).unwrap();
        assert!(fresh.ensure_parent(Path::new("a")).unwrap().was_empty());
        // A planned directory (--dry-run) has looked at nothing, so offers nothing.
        let planned = OutDir::planned(&tmp.path().join("fresh"));
        assert!(planned.ensure_parent(Path::new("b")).is_err());
    }

    #[test]
    fn only_so_many_folders_stay_open_and_each_keeps_its_first_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        let out = OutDir::prepare(&root).unwrap();
        for i in 0..OPEN_FOLDERS + 10 {
            assert!(
                out.ensure_parent(Path::new(&format!("d{i}/a")))
                    .unwrap()
                    .was_empty()
            );
        }
        let held = |out: &OutDir| {
            let made = out.made.lock().unwrap();
            made.known.values().filter(|k| k.folder.is_some()).count()
        };
        assert_eq!(held(&out), OPEN_FOLDERS);
        // d0 was closed; met again it is the same folder, so its answer stands.
        fs::write(root.join("d0/a"), b"x").unwrap();
        assert!(out.ensure_parent(Path::new("d0/b")).unwrap().was_empty());
        assert_eq!(held(&out), OPEN_FOLDERS);
        // A different folder at the same path is a new folder.
        fs::rename(root.join("d1"), root.join("d1.old")).unwrap();
        fs::create_dir(root.join("d1")).unwrap();
        fs::write(root.join("d1/old"), b"x").unwrap();
        assert!(!out.ensure_parent(Path::new("d1/b")).unwrap().was_empty());
    }

    #[test]
    fn unusable_root_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(OutDir::prepare(&file).is_err());
        assert!(OutDir::prepare(&file.join("below")).is_err());
    }
}
