//! The output directory: checked once before any download, and the only place
//! files are written. Sub-folders are created on demand, never through a symlink.
//!
//! It also remembers which folders were empty when the run first used them.
//! In such a folder no file can exist that this run did not put there (names
//! within a run are unique), so a download there needs no existence check and
//! no stale `NAME.part` can be in the way; a file that another process creates
//! meanwhile is still never overwritten unasked (see [`crate::part`]).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::error::{FetchError, RunError};
use crate::part::Linker;

/// The output directory of a run.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    /// Whether the directory itself was empty when the run started.
    root_was_empty: bool,
    /// Sub-folders already made or checked this run, and whether each was
    /// empty then: per-file work stays at a lookup here, not a walk of the path.
    made: Mutex<HashMap<PathBuf, bool>>,
    /// How unnamed part files are named here; `None` where they do not work.
    linker: Option<Linker>,
}

impl OutDir {
    /// Create `root` if missing and check that files can be created in it.
    pub fn prepare(root: &Path) -> Result<OutDir, RunError> {
        let fail = |source| RunError::OutputDir {
            path: root.to_path_buf(),
            source,
        };
        fs::create_dir_all(root).map_err(fail)?;
        if !fs::metadata(root).map_err(fail)?.is_dir() {
            return Err(fail(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        // Permission bits do not tell the whole story (read-only mounts, ACLs):
        // try it. Making an unnamed file proves it too, without touching the
        // folder (a run that changes nothing leaves even its mtime alone).
        let linker = Linker::probe(root);
        if linker.is_none() {
            let probe = root.join(format!(".fetchq-probe-{}", std::process::id()));
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
                .map_err(fail)?;
            let _ = fs::remove_file(&probe);
        }
        Ok(OutDir {
            root: root.to_path_buf(),
            root_was_empty: is_empty_dir(root),
            made: Mutex::default(),
            linker,
        })
    }

    /// The directory as given, unchecked and not created (`--dry-run` touches nothing).
    pub fn planned(root: &Path) -> OutDir {
        OutDir {
            root: root.to_path_buf(),
            root_was_empty: false,
            made: Mutex::default(),
            linker: None,
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How part files can start unnamed here, if they can.
    pub fn linker(&self) -> Option<Linker> {
        self.linker
    }

    /// The absolute-or-as-given path of `rel` inside the directory.
    pub fn path_of(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Make sure every folder above `rel` exists as a real directory (not a
    /// symlink that could lead outside), creating what is missing. Answers
    /// whether `rel`'s folder was empty when this run first used it.
    pub fn ensure_parent(&self, rel: &Path) -> Result<bool, FetchError> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(self.root_was_empty);
        };
        if let Some(&was_empty) = self.made.lock().ok().as_ref().and_then(|made| made.get(parent)) {
            return Ok(was_empty);
        }
        let mut dir = self.root.clone();
        let mut created = false;
        for component in parent.components() {
            let Component::Normal(part) = component else {
                // Naming already rejects these; refuse rather than trust it blindly.
                return Err(FetchError::disk(
                    "refusing to write outside the output directory via",
                    rel,
                    io::Error::other("unexpected path component"),
                ));
            };
            dir.push(part);
            created = false;
            match fs::create_dir(&dir) {
                Ok(()) => created = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs::symlink_metadata(&dir)
                        .map_err(|e| FetchError::disk("cannot inspect", &dir, e))?;
                    if !meta.is_dir() {
                        return Err(FetchError::disk(
                            "cannot create folder",
                            &dir,
                            io::Error::other("a file or symlink is in the way"),
                        ));
                    }
                }
                Err(e) => return Err(FetchError::disk("cannot create folder", &dir, e)),
            }
        }
        // Another worker may have made it a moment ago and filled it since:
        // the first answer recorded stands.
        let was_empty = created || is_empty_dir(&dir);
        Ok(self.made.lock().map_or(was_empty, |mut made| {
            *made.entry(parent.to_path_buf()).or_insert(was_empty)
        }))
    }
}

/// Whether `dir` has no entries (one `getdents`; an error counts as not empty).
fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn folders_are_known_empty_only_if_they_were_at_first_use() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        fs::create_dir_all(root.join("full")).unwrap();
        fs::write(root.join("full/old"), b"x").unwrap();
        fs::create_dir(root.join("empty")).unwrap();

        let out = OutDir::prepare(&root).unwrap();
        assert!(
            !out.ensure_parent(Path::new("top")).unwrap(),
            "the root holds folders"
        );
        assert!(!out.ensure_parent(Path::new("full/a")).unwrap());
        assert!(out.ensure_parent(Path::new("empty/a")).unwrap());
        assert!(
            out.ensure_parent(Path::new("new/deeper/a")).unwrap(),
            "made by this run"
        );
        // What this run writes there later does not change the answer.
        fs::write(root.join("empty/a"), b"x").unwrap();
        assert!(out.ensure_parent(Path::new("empty/b")).unwrap());

        let fresh = OutDir::prepare(&tmp.path().join("fresh")).unwrap();
        assert!(fresh.ensure_parent(Path::new("a")).unwrap());
        // A planned directory (--dry-run) has looked at nothing, so claims nothing.
        let planned = OutDir::planned(&tmp.path().join("fresh"));
        assert!(!planned.ensure_parent(Path::new("b")).unwrap());
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
