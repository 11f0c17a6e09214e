//! One rule for standard output, whatever writes to it (`--json`, `--dry-run`
//! plans, completions, the man page): a reader that went away (`EPIPE`) ends
//! the output quietly; any other write error is reported with its cause and
//! shows in the exit code. Each test points stdout at a closed pipe or at
//! `/dev/full` and runs the real binary.

use crate::support;

use std::fs::{File, OpenOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Route, TestServer, fetchq, list_files, out, pattern, write_list};

/// What a run printed on stderr and how it ended.
struct Ended {
    code: i32,
    stderr: String,
}

/// Runs `cmd` with stdout as given, stderr captured, bounded at 30 s.
fn run_with_stdout(cmd: &mut Command, stdout: Stdio) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr.txt");
    let mut child = cmd
        .stdout(stdout)
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn fetchq");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("fetchq did not exit within 30 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ended {
        code: status.code().unwrap_or(-1),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A pipe whose reading end is already closed: every write gets `EPIPE`.
fn closed_pipe(cmd: &mut Command) -> Ended {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetchq");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for fetchq");
    Ended {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn dev_full() -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    let ended = closed_pipe(fetchq().args(["completions", "bash"]));
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stderr, "", "no panic, no message");
}

#[test]
fn man_page_into_a_full_disk_is_an_error_with_its_cause() {
    let ended = run_with_stdout(fetchq().arg("man"), dev_full());
    assert_eq!(ended.code, 2, "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("cannot write to standard output: No space left on device"),
        "{}",
        ended.stderr
    );
}

/// `--json` is a report about the downloads, which are the real work: a full
/// disk behind `> out.json` does not stop them, but the lost report is said
/// once and the exit code is not 0.
#[test]
fn json_into_a_full_disk_still_downloads_and_exits_1() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(5000, 1)));
    write_list(root, "list.txt", format!("{}\n", server.url("/a.bin")));

    let ended = run_with_stdout(
        fetchq()
            .current_dir(root)
            .args(["--json", "-d", "out", "list.txt"]),
        dev_full(),
    );

    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert_eq!(
        ended
            .stderr
            .matches("--json: cannot write to standard output: No space left on device")
            .count(),
        1,
        "{}",
        ended.stderr
    );
    assert_eq!(
        std::fs::read(out(root).join("a.bin")).ok(),
        Some(pattern(5000, 1)),
        "files: {:?}",
        list_files(root)
    );
}

/// `fetchq --json list | head -1`: the reader's choice, not a failure.
#[test]
fn json_into_a_closed_pipe_still_downloads_and_exits_0() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(5000, 2)));
    write_list(root, "list.txt", format!("{}\n", server.url("/a.bin")));

    let ended = closed_pipe(
        fetchq()
            .current_dir(root)
            .args(["--json", "-d", "out", "list.txt"]),
    );

    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert!(!ended.stderr.contains("standard output"), "{}", ended.stderr);
    assert_eq!(
        std::fs::read(out(root).join("a.bin")).ok(),
        Some(pattern(5000, 2)),
        "files: {:?}",
        list_files(root)
    );
}
