//! The documentation that ships with the binary: man pages for every
//! command, and completions that know folders from files.

use crate::support;

use std::fs;

use support::{assert_code, fetch_in};

#[test]
fn man_dir_writes_a_page_per_command_with_environment_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = fetch_in(root, &["man", "--dir", "pages/man1"]);
    assert_code(&run, root, 0);
    let dir = root.join("pages/man1");
    for page in [
        "fetchq.1",
        "fetchq-worker.1",
        "fetchq-enqueue.1",
        "fetchq-status.1",
        "fetchq-retry-failed.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}\n{run}"));
        assert!(text.contains("\n.TH "), "{page} is roff");
        assert!(run.stdout.contains(page), "its path is printed\n{run}");
    }
    let top = fs::read_to_string(dir.join("fetchq.1")).unwrap();
    for needle in [
        ".SH ENVIRONMENT",
        "http_proxy",
        "NO_COLOR",
        ".SH FILES",
        "fetchq/config",
    ] {
        assert!(top.contains(needle), "fetchq.1 lacks {needle}");
    }
    let worker = fs::read_to_string(dir.join("fetchq-worker.1")).unwrap();
    assert!(
        worker.contains("FETCHQ_REDIS") && worker.contains("\\-\\-drain"),
        "{worker}"
    );

    // Without --dir the main page goes to stdout, as before.
    let plain = fetch_in(root, &["man"]);
    assert_code(&plain, root, 0);
    assert_eq!(plain.stdout, top);
}

#[test]
fn completions_complete_folders_for_dir_and_files_for_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = fetch_in(root, &["completions", "zsh"]);
    assert_code(&run, root, 0);
    let line = |flag: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("no {flag} in the zsh script"))
            .to_string()
    };
    assert!(line("'-d+").ends_with(":DIR:_files -/' \\"), "{}", line("'-d+"));
    assert!(
        line("'--log=").ends_with(":FILE:_files' \\"),
        "{}",
        line("'--log=")
    );
    assert!(line("'*::files").contains("_files"), "{}", line("'*::files"));
}
