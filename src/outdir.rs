//! The output directory: checked once before any download, and the only place
//! files are written. Sub-folders are created on demand, never through a symlink.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::error::{FetchError, RunError};

/// The output directory of a run.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    /// Sub-folders already made or checked this run: per-file work stays at one
    /// open and one rename, not a walk of the path.
    made: Mutex<HashSet<PathBuf>>,
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
        // Permission bits do not tell the whole story (read-only mounts, ACLs): try it.
        let probe = root.join(format!(".fetchq-probe-{}", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(fail)?;
        let _ = fs::remove_file(&probe);
        Ok(OutDir {
            root: root.to_path_buf(),
            made: Mutex::default(),
        })
    }

    /// The directory as given, unchecked and not created (`--dry-run` touches nothing).
    pub fn planned(root: &Path) -> OutDir {
        OutDir {
            root: root.to_path_buf(),
            made: Mutex::default(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute-or-as-given path of `rel` inside the directory.
    pub fn path_of(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Make sure every folder above `rel` exists as a real directory (not a
    /// symlink that could lead outside), creating what is missing.
    pub fn ensure_parent(&self, rel: &Path) -> Result<(), FetchError> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        if self.made.lock().is_ok_and(|made| made.contains(parent)) {
            return Ok(());
        }
        let mut dir = self.root.clone();
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
            match fs::create_dir(&dir) {
                Ok(()) => {}
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
        if let Ok(mut made) = self.made.lock() {
            made.insert(parent.to_path_buf());
        }
        Ok(())
    }
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
    fn unusable_root_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(OutDir::prepare(&file).is_err());
        assert!(OutDir::prepare(&file.join("below")).is_err());
    }
}
