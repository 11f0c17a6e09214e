//! Fault-injection tests (issue 3): the real `fetchq` binary against the
//! in-process test server misbehaving on purpose — errors and retries, resets
//! and resume, lies about lengths, stalls, signals, hostile names and
//! redirects, untrusted numbers.
//!
//! Layout used by every test: a fresh temp dir `root` that is the working
//! directory of the run and holds the URL list; downloads go to `root/out`
//! (`-d out`), or to `root/a/b/out` where a test checks that nothing climbs
//! out of the output directory (so an escape still lands inside `root`, where
//! `list_files` sees it, and never in the shared temp dir). Assertion messages
//! carry the full run and the files under `root`. The only timing assertions
//! are generous upper bounds ("does not hang").

#[allow(dead_code)]
mod support;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use support::{
    RecordedRequest, Route, Run, TestServer, assert_code, assert_file, assert_stderr_has, ctx, fetchq,
    list_args, list_files, out, pattern, run, scrubbed_command, sha256_hex, stderr_line, write_list,
    write_out_file,
};

/// Upper bound for runs that must give up on a stalled server rather than hang.
const HANG_BOUND: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Writes a one-URL `list.txt` for `url`.
fn list_of(root: &Path, url: &str) {
    write_list(root, "list.txt", format!("{url}\n"));
}

/// Runs fetchq in `root` with `-d out --retry-wait 0.05`, these arguments and
/// `list.txt` last.
fn fetch(root: &Path, args: &[&str]) -> Run {
    fetch_into(root, "out", args)
}

/// Like [`fetch`], with another output directory (relative to `root`).
fn fetch_into(root: &Path, dir: &str, args: &[&str]) -> Run {
    run(fetchq().current_dir(root).args(list_args(dir, args)))
}

/// Asserts no panic message reached stderr.
fn assert_no_panic(run: &Run, root: &Path) {
    assert!(
        !run.stderr.contains("panicked"),
        "fetchq panicked\n{}",
        ctx(run, root)
    );
}

/// Asserts `root/rel` does not exist (not even as a dangling symlink).
fn assert_absent(run: &Run, root: &Path, rel: &str) {
    assert!(
        fs::symlink_metadata(root.join(rel)).is_err(),
        "{rel} should not exist\n{}",
        ctx(run, root)
    );
}

/// Asserts the files under `root` are exactly `want` (sorted).
fn assert_files(run: &Run, root: &Path, want: &[&str]) {
    assert_eq!(list_files(root), want, "files under root\n{}", ctx(run, root));
}

/// Asserts a clean success: exit 0, `root/rel` (under `out/`) holds `want`,
/// and nothing but `list.txt` and that file is under `root`.
fn assert_downloaded_alone(run: &Run, root: &Path, rel: &str, want: &[u8]) {
    assert_code(run, root, 0);
    assert_file(run, root, rel, want);
    assert_files(run, root, &["list.txt", rel]);
}

/// All requests the server got, for messages.
fn requests_text(server: &TestServer) -> String {
    server
        .requests()
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.headers))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `n`-th request for `path`, or a panic listing what arrived.
fn nth_request(server: &TestServer, path: &str, n: usize, run: &Run, root: &Path) -> RecordedRequest {
    server.requests_for(path).get(n).cloned().unwrap_or_else(|| {
        panic!(
            "no request #{n} for {path}; requests:\n{}\n{}",
            requests_text(server),
            ctx(run, root)
        )
    })
}

/// Runs fetchq via `sh -c 'umask MASK; exec fetchq ...'` with the same
/// scrubbed environment as [`fetchq`].
fn fetch_with_umask(root: &Path, umask: &str, args: &[&str]) -> Run {
    let mut cmd = scrubbed_command("sh");
    cmd.current_dir(root)
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fetchq"))
        .args(list_args("out", args));
    run(&mut cmd)
}

/// Permission bits of `root/rel` (following no symlink).
fn mode_of(root: &Path, rel: &str) -> u32 {
    fs::symlink_metadata(root.join(rel))
        .unwrap_or_else(|e| panic!("stat {rel}: {e}; files: {:?}", list_files(root)))
        .permissions()
        .mode()
        & 0o7777
}

/// A fetchq child that is killed (by its own id) if the test fails early.
struct Running {
    child: Child,
    command: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// Starts fetchq in `root` with output to files in `logs`.
    fn start(root: &Path, logs: &Path, args: &[&str]) -> Running {
        let stdout = logs.join("stdout.txt");
        let stderr = logs.join("stderr.txt");
        let mut cmd = fetchq();
        cmd.current_dir(root)
            .args(list_args("out", args))
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap());
        let command = format!("{cmd:?}");
        let child = cmd.spawn().expect("spawn fetchq");
        Running {
            child,
            command,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "command: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Sends `signal` (e.g. `-INT`) with the `kill` command, by pid.
    fn signal(&self, signal: &str) {
        support::kill(self.child.id(), signal);
    }

    /// Waits at most `bound` for the exit; returns the code (-1 for a signal)
    /// and how long it took, or panics with the output so far.
    fn wait(&mut self, bound: Duration, root: &Path) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code().unwrap_or(-1), start.elapsed());
            }
            if start.elapsed() > bound {
                panic!(
                    "fetchq did not exit within {bound:?}\n{}\nfiles: {:?}",
                    self.output(),
                    list_files(root)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the download of `part` (`NAME.part`) holds at least one byte;
/// panics after 15 s. A small download has no name yet: it is an unnamed file
/// that only shows as fetchq's open descriptor (`/proc/PID/fd`), still in the
/// `part`'s folder.
fn wait_for_bytes(part: &Path, running: &Running, root: &Path) -> u64 {
    let start = Instant::now();
    let folder = part.parent().expect("a part has a folder");
    let fds = PathBuf::from(format!("/proc/{}/fd", running.child.id()));
    loop {
        let unnamed = fs::read_dir(&fds).into_iter().flatten().flatten().find_map(|fd| {
            let to = fs::read_link(fd.path()).ok()?;
            let len = fs::metadata(fd.path()).ok()?.len();
            (to.parent() == Some(folder) && to.to_string_lossy().ends_with(" (deleted)")).then_some(len)
        });
        let len = fs::metadata(part).map(|m| m.len()).ok().or(unnamed);
        if let Some(len) = len.filter(|&len| len > 0) {
            return len;
        }
        if start.elapsed() > HANG_BOUND {
            panic!(
                "{} never got any bytes\n{}\nfiles: {:?}",
                part.display(),
                running.output(),
                list_files(root)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// 1. Retries
// ---------------------------------------------------------------------------

#[test]
fn transient_503_is_retried_until_it_succeeds() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 1);
    server.route("/f.bin", Route::ok(body.clone()).fail_times(2, 503));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "3"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 3, "{}", ctx(&run, root));
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

#[test]
fn retries_are_bounded_and_the_failure_says_how_many_attempts() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"never".to_vec()).fail_times(5, 503));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 1);
    assert_eq!(server.hits("/f.bin"), 3, "{}", ctx(&run, root));
    let line = stderr_line(&run, root, "list.txt:1:");
    assert!(
        line.contains("503") && line.contains("after 3 attempts"),
        "failure line should name the status and the attempts: {line:?}\n{}",
        ctx(&run, root)
    );
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn not_found_is_not_retried() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    list_of(root, &server.url("/missing.bin"));

    let run = fetch(root, &["--retries", "3"]);

    assert_code(&run, root, 1);
    assert_eq!(server.hits("/missing.bin"), 1, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "404");
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(1000, 2);
    server.route(
        "/f.bin",
        Route::ok(body.clone()).fail_times(1, 429).retry_after("1"),
    );
    list_of(root, &server.url("/f.bin"));

    // The jittered backoff alone would wait at most 0.05 s.
    let run = fetch(root, &["-v", "--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 2, "{}", ctx(&run, root));
    let line = stderr_line(&run, root, "attempt 1 failed");
    assert!(
        line.contains("429") && line.contains("retrying in 1.0 s"),
        "the wait should be the server's Retry-After: {line:?}\n{}",
        ctx(&run, root)
    );
}

#[test]
fn request_timeout_408_is_retried() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(1000, 3);
    server.route("/f.bin", Route::ok(body.clone()).fail_times(1, 408));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 2, "{}", ctx(&run, root));
}

// ---------------------------------------------------------------------------
// 2. Resume within a run
// ---------------------------------------------------------------------------

#[test]
fn reset_mid_body_resumes_with_range_and_if_range() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(100_000, 4);
    let cut = 30_000;
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .fail_times_with(1, Route::ok(body.clone()).etag("\"v1\"").reset_after(cut)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["-v", "--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 2, "{}", ctx(&run, root));
    let first = nth_request(&server, "/f.bin", 0, &run, root);
    assert_eq!(first.header("range"), None, "{}", ctx(&run, root));
    let second = nth_request(&server, "/f.bin", 1, &run, root);
    assert_eq!(
        second.header("range"),
        Some(format!("bytes={cut}-").as_str()),
        "second request should continue at the cut\n{}\n{}",
        requests_text(&server),
        ctx(&run, root)
    );
    assert_eq!(
        second.header("if-range"),
        Some("\"v1\""),
        "second request should carry If-Range\n{}\n{}",
        requests_text(&server),
        ctx(&run, root)
    );
    assert_stderr_has(&run, root, &format!("continuing from byte {cut}"));
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

#[test]
fn resume_uses_last_modified_as_if_range_without_etag() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(50_000, 5);
    let date = support::http_date(1_600_000_000);
    server.route(
        "/f.bin",
        Route::ok(body.clone()).last_modified(&date).fail_times_with(
            1,
            Route::ok(body.clone()).last_modified(&date).reset_after(10_000),
        ),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    let second = nth_request(&server, "/f.bin", 1, &run, root);
    assert_eq!(
        second.header("range"),
        Some("bytes=10000-"),
        "{}",
        ctx(&run, root)
    );
    assert_eq!(
        second.header("if-range"),
        Some(date.as_str()),
        "{}",
        ctx(&run, root)
    );
}

#[test]
fn server_ignoring_range_after_a_reset_restarts_from_zero() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(80_000, 6);
    // With an ETag, so the retry asks for the rest (without a validator it
    // would start over by itself).
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .ignore_range()
            .fail_times_with(
                1,
                Route::ok(body.clone())
                    .etag("\"v1\"")
                    .ignore_range()
                    .reset_after(25_000),
            ),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 0);
    // A splice would be 25 000 bytes too long.
    assert_file(&run, root, "out/f.bin", &body);
    let second = nth_request(&server, "/f.bin", 1, &run, root);
    assert_eq!(
        second.header("range"),
        Some("bytes=25000-"),
        "{}",
        ctx(&run, root)
    );
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

/// A 206 whose Content-Range starts somewhere else than asked must never be
/// appended; the module doc of fetch.rs promises "anything unexpected
/// restarts from byte 0", so the entry must still end up correct.
#[test]
fn partial_content_at_the_wrong_offset_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(60_000, 7);
    let cut = 20_000;
    let rest = body.len() - cut;
    // The honest 206 carries body[cut..]; the forged header claims it starts at 0.
    let forged = format!("bytes 0-{}/{}", rest - 1, body.len());
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .header("Content-Range", &forged)
            .fail_times_with(1, Route::ok(body.clone()).etag("\"v1\"").reset_after(cut)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["-v", "--retries", "3"]);

    assert_no_panic(&run, root);
    assert_downloaded_alone(&run, root, "out/f.bin", &body);
}

// ---------------------------------------------------------------------------
// 3. The representation changes between attempts
// ---------------------------------------------------------------------------

#[test]
fn etag_change_between_attempts_gives_exactly_the_new_version() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let v1 = pattern(90_000, 8);
    let v2 = pattern(70_000, 9);
    server.route(
        "/f.bin",
        Route::ok(v2.clone())
            .etag("\"v2\"")
            .fail_times_with(1, Route::ok(v1).etag("\"v1\"").reset_after(40_000)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &v2);
    let second = nth_request(&server, "/f.bin", 1, &run, root);
    assert_eq!(second.header("if-range"), Some("\"v1\""), "{}", ctx(&run, root));
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

// ---------------------------------------------------------------------------
// 4. -c / --continue across runs
// ---------------------------------------------------------------------------

/// A part written by another program records no version: the list's
/// checksum is what lets `-c` continue it (see `tests/resume_integrity.rs`).
#[test]
fn continue_requests_only_the_rest_of_a_leftover_part() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(64_000, 10);
    let half = body.len() / 2;
    server.route("/f.bin", Route::ok(body.clone()));
    write_out_file(root, "f.bin.part", &body[..half]);
    let url = server.url("/f.bin");
    write_list(root, "list.txt", format!("{url} sha256={}\n", sha256_hex(&body)));

    let run = fetch(root, &["-c"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 1, "{}", ctx(&run, root));
    let req = nth_request(&server, "/f.bin", 0, &run, root);
    assert_eq!(
        req.header("range"),
        Some(format!("bytes={half}-").as_str()),
        "{}",
        ctx(&run, root)
    );
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

#[test]
fn without_continue_a_leftover_part_is_replaced_by_a_full_download() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(64_000, 11);
    server.route("/f.bin", Route::ok(body.clone()));
    write_out_file(root, "f.bin.part", &body[..32_000]);
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &[]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    let req = nth_request(&server, "/f.bin", 0, &run, root);
    assert_eq!(
        req.header("range"),
        None,
        "full request expected\n{}",
        ctx(&run, root)
    );
    assert_files(&run, root, &["list.txt", "out/f.bin"]);
}

#[test]
fn continue_with_a_complete_part_finishes_without_the_body_again() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(10_000, 12);
    server.route("/f.bin", Route::ok(body.clone()));
    write_out_file(root, "f.bin.part", &body);
    let url = server.url("/f.bin");
    write_list(root, "list.txt", format!("{url} sha256={}\n", sha256_hex(&body)));

    let run = fetch(root, &["-c"]);

    assert_downloaded_alone(&run, root, "out/f.bin", &body);
}

/// The remote file got shorter than the leftover part: the server answers
/// 416 with the real size, so the download must start over (module doc of
/// fetch.rs), not fail.
#[test]
fn continue_with_a_part_longer_than_the_file_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(10_000, 13);
    server.route("/f.bin", Route::ok(body.clone()));
    write_out_file(root, "f.bin.part", pattern(15_000, 14));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["-c", "-v", "--retries", "2"]);

    assert_no_panic(&run, root);
    assert_downloaded_alone(&run, root, "out/f.bin", &body);
}

// ---------------------------------------------------------------------------
// 5. Integrity
// ---------------------------------------------------------------------------

#[test]
fn body_shorter_than_content_length_fails_after_retries() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(5_000, 15);
    // Declares 8 000 bytes, sends 5 000, closes; ignores Range so every
    // attempt starts over and fails the same way.
    server.route("/f.bin", Route::ok(body).ignore_range().lie_length(8_000));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert_eq!(server.hits("/f.bin"), 3, "{}", ctx(&run, root));
    let line = stderr_line(&run, root, "list.txt:1:");
    assert!(
        line.contains("8000") && line.contains("after 3 attempts"),
        "the failure should say the body fell short of the 8000 announced bytes: {line:?}\n{}",
        ctx(&run, root)
    );
    assert_absent(&run, root, "out/f.bin");
}

/// The same lie from a server that supports Range: the retry asks for
/// `bytes=5000-`, and the 416 that comes back (`bytes */5000`) contradicts the
/// 8000 bytes announced for the body already on disk, with no validator to
/// say it is the same representation. The short file must not be accepted.
#[test]
fn body_shorter_than_content_length_is_not_completed_by_a_416() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(pattern(5_000, 15)).lie_length(8_000));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2"]);

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert_absent(&run, root, "out/f.bin");
}

#[test]
fn connection_cut_on_every_attempt_fails_without_a_final_file() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(50_000, 16);
    // Every response (200 or 206) stops after 5 000 bytes.
    server.route("/f.bin", Route::ok(body).reset_after(5_000));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "1"]);

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert_eq!(server.hits("/f.bin"), 2, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "after 2 attempts");
    assert_absent(&run, root, "out/f.bin");
}

#[test]
fn correct_sha256_is_accepted() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(30_000, 17);
    server.route("/f.bin", Route::ok(body.clone()));
    write_list(
        root,
        "list.txt",
        format!("{} sha256={}\n", server.url("/f.bin"), sha256_hex(&body)),
    );

    let run = fetch(root, &[]);

    assert_downloaded_alone(&run, root, "out/f.bin", &body);
}

#[test]
fn wrong_sha256_fails_and_leaves_nothing() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(30_000, 18);
    server.route("/f.bin", Route::ok(body));
    write_list(
        root,
        "list.txt",
        format!("{} sha256={}\n", server.url("/f.bin"), sha256_hex(b"other")),
    );

    let run = fetch(root, &[]);

    assert_code(&run, root, 1);
    assert_stderr_has(&run, root, "checksum mismatch");
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn sha256_covers_bytes_resumed_within_a_run() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(60_000, 19);
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .fail_times_with(1, Route::ok(body.clone()).etag("\"v1\"").reset_after(20_000)),
    );
    write_list(
        root,
        "list.txt",
        format!("{} sha256={}\n", server.url("/f.bin"), sha256_hex(&body)),
    );

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    let second = nth_request(&server, "/f.bin", 1, &run, root);
    assert_eq!(
        second.header("range"),
        Some("bytes=20000-"),
        "{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 6. Timeouts
// ---------------------------------------------------------------------------

/// Serves `/f.bin` with `route` (which goes silent at some point) and checks
/// that `--timeout 1 --retries 0` fails the entry well within [`HANG_BOUND`],
/// saying no data arrived, and leaves no file.
fn assert_silence_times_out(route: Route) {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", route);
    list_of(root, &server.url("/f.bin"));

    let start = Instant::now();
    let run = fetch(root, &["--timeout", "1", "--retries", "0"]);
    let took = start.elapsed();

    assert_code(&run, root, 1);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    let line = stderr_line(&run, root, "list.txt:1:");
    assert!(
        line.contains("no data"),
        "the failure should say no data arrived: {line:?}\n{}",
        ctx(&run, root)
    );
    assert_absent(&run, root, "out/f.bin");
}

#[test]
fn silent_server_before_headers_times_out() {
    assert_silence_times_out(Route::ok(b"x".to_vec()).stall_before_headers());
}

#[test]
fn server_stalling_mid_body_times_out() {
    assert_silence_times_out(Route::ok(pattern(5_000, 20)).stall_after(1000));
}

#[test]
fn slow_but_steady_transfer_is_never_killed_by_the_idle_timeout() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // 12 pieces 200 ms apart: about 2.2 s in all, well over --timeout 1,
    // but never a second without data.
    let body = pattern(6_000, 21);
    server.route(
        "/f.bin",
        Route::ok(body.clone()).drip(500, Duration::from_millis(200)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--timeout", "1", "--retries", "0"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_eq!(server.hits("/f.bin"), 1, "{}", ctx(&run, root));
}

#[test]
fn max_time_cuts_a_long_transfer() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // 100 pieces 200 ms apart: 20 s, far beyond --max-time 1.
    server.route(
        "/f.bin",
        Route::ok(pattern(10_000, 22)).drip(100, Duration::from_millis(200)),
    );
    list_of(root, &server.url("/f.bin"));

    let start = Instant::now();
    let run = fetch(root, &["--max-time", "1", "--retries", "3"]);
    let took = start.elapsed();

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    assert_stderr_has(&run, root, "timed out");
    assert_absent(&run, root, "out/f.bin");
}

// ---------------------------------------------------------------------------
// 7. Interruption
// ---------------------------------------------------------------------------

/// Starts a slow download, waits for its part file, sends `signal`, and
/// checks the exit code and what is left. Returns the part's final length.
fn interrupt_slow_download(
    server: &TestServer,
    root: &Path,
    logs: &Path,
    signal: &str,
    want_code: i32,
) -> u64 {
    // 200 pieces 100 ms apart: 20 s if nothing stops it. The ETag lets `-c`
    // continue the part: without a validator it would start over.
    server.route(
        "/slow.bin",
        Route::ok(pattern(100_000, 23))
            .etag("\"slow\"")
            .drip(500, Duration::from_millis(100)),
    );
    list_of(root, &server.url("/slow.bin"));
    let part = out(root).join("slow.bin.part");

    let mut running = Running::start(root, logs, &[]);
    wait_for_bytes(&part, &running, root);
    running.signal(signal);
    let (code, took) = running.wait(Duration::from_secs(5), root);

    let output = running.output();
    assert_eq!(
        code,
        want_code,
        "exit code after kill {signal} (took {took:?})\n{output}\nfiles: {:?}",
        list_files(root)
    );
    assert!(
        output.contains("0 downloaded, 0 skipped, 0 failed, 1 interrupted"),
        "the cut-short download is counted as interrupted, not failed\n{output}"
    );
    let kept = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(
        kept > 0,
        "the part file should be kept\n{output}\nfiles: {:?}",
        list_files(root)
    );
    assert!(
        !out(root).join("slow.bin").exists(),
        "no final file after an interruption\n{output}\nfiles: {:?}",
        list_files(root)
    );
    kept
}

/// Runs a 2 s download of `/race.bin` and, once it is under way, puts another
/// file at its name, as a second program writing to the same folder would.
fn race_for_the_name(root: &Path, logs: &Path, args: &[&str]) -> (i32, String) {
    let server = TestServer::start();
    server.route(
        "/race.bin",
        Route::ok(pattern(20_000, 5)).drip(1_000, Duration::from_millis(100)),
    );
    list_of(root, &server.url("/race.bin"));
    let mut running = Running::start(root, logs, args);
    wait_for_bytes(&out(root).join("race.bin.part"), &running, root);
    fs::write(out(root).join("race.bin"), b"theirs").unwrap();
    let (code, _) = running.wait(HANG_BOUND, root);
    (code, running.output())
}

/// In the default mode a file is never replaced, not even one that appeared
/// while it downloaded: the entry counts as skipped and the download is dropped.
#[test]
fn a_name_taken_during_the_download_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();

    let (code, output) = race_for_the_name(root, logs.path(), &[]);

    let files = list_files(root);
    assert_eq!(code, 0, "{output}\nfiles: {files:?}");
    assert_eq!(
        fs::read(out(root).join("race.bin")).unwrap(),
        b"theirs",
        "{output}"
    );
    assert!(output.contains("0 downloaded, 1 skipped"), "{output}");
    assert_eq!(files, ["list.txt", "out/race.bin"], "no part left\n{output}");
}

/// `--overwrite` replaces whatever holds the name by the time the download ends.
#[test]
fn overwrite_replaces_a_name_taken_during_the_download() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();

    let (code, output) = race_for_the_name(root, logs.path(), &["--overwrite"]);

    assert_eq!(code, 0, "{output}");
    assert_eq!(
        fs::read(out(root).join("race.bin")).unwrap(),
        pattern(20_000, 5),
        "{output}"
    );
    assert_eq!(list_files(root), ["list.txt", "out/race.bin"], "{output}");
}

#[test]
fn sigint_keeps_the_part_exits_130_and_continue_finishes_it() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();

    let kept = interrupt_slow_download(&server, root, logs.path(), "-INT", 130);

    // Same content, served fast now.
    let body = pattern(100_000, 23);
    server.route("/slow.bin", Route::ok(body.clone()).etag("\"slow\""));
    let before = server.requests_for("/slow.bin").len();
    let run = fetch(root, &["-c"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/slow.bin", &body);
    let req = nth_request(&server, "/slow.bin", before, &run, root);
    assert_eq!(
        req.header("range"),
        Some(format!("bytes={kept}-").as_str()),
        "-c should continue the interrupted part\n{}",
        ctx(&run, root)
    );
    assert_files(&run, root, &["list.txt", "out/slow.bin"]);
}

#[test]
fn sigterm_keeps_the_part_and_exits_143() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    interrupt_slow_download(&server, tmp.path(), logs.path(), "-TERM", 143);
}

/// A closed terminal or a dropped ssh session sends SIGHUP: the run stops as
/// for SIGTERM, keeping its parts and printing its report, instead of dying
/// silently with nothing kept for `-c`.
#[test]
fn sighup_keeps_the_part_prints_the_report_and_exits_129() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    interrupt_slow_download(&server, tmp.path(), logs.path(), "-HUP", 129);
    let stderr = fs::read_to_string(logs.path().join("stderr.txt")).unwrap();
    assert!(stderr.contains("interrupted by SIGHUP"), "{stderr}");
}

// ---------------------------------------------------------------------------
// 8. Disk errors
// ---------------------------------------------------------------------------

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn read_only_output_dir_exits_2_before_downloading() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"data".to_vec()));
    list_of(root, &server.url("/f.bin"));

    let ro = root.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; /proc/self is a directory in which nobody
    // can create files, so it stands in for a read-only directory there.
    let dir = if running_as_root() || File::create(ro.join("probe")).is_ok() {
        eprintln!("note: running as root, using /proc/self as the read-only output dir");
        let _ = fs::remove_file(ro.join("probe"));
        PathBuf::from("/proc/self")
    } else {
        ro.clone()
    };
    let dir = dir.to_str().unwrap().to_string();

    let run = fetch_into(root, &dir, &[]);
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();

    assert_code(&run, root, 2);
    assert_eq!(server.hits("/f.bin"), 0, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "output directory");
    assert_files(&run, root, &["list.txt"]);
}

/// The OS error is part of the message once, not repeated by the error chain.
#[test]
fn output_dir_error_names_the_os_error_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    list_of(root, "http://127.0.0.1:9/f.bin");
    fs::write(root.join("file"), b"not a dir").unwrap();

    // A folder below a regular file: ENOTDIR for root and everyone else.
    let run = fetch_into(root, "file/below", &[]);

    assert_code(&run, root, 2);
    let line = stderr_line(&run, root, "output directory");
    let os_errors = line.matches("os error").count();
    assert_eq!(
        os_errors,
        1,
        "the OS error should appear once: {line:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 9. Safety
// ---------------------------------------------------------------------------

/// Output dir two levels down, so an escape of `../..` stays inside `root`.
const DEEP: &str = "a/b/out";

#[test]
fn encoded_dot_dot_slash_in_the_url_stays_inside() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/dir/..%2F..%2Fevil", Route::ok(b"inside".to_vec()));
    list_of(root, &server.url("/dir/..%2F..%2Fevil"));

    let run = fetch_into(root, DEEP, &[]);

    assert_code(&run, root, 0);
    let files = list_files(root);
    assert!(
        files.iter().all(|f| f == "list.txt" || f.starts_with("a/b/out/")) && files.len() == 2,
        "exactly one file, inside a/b/out\n{}",
        ctx(&run, root)
    );
}

#[test]
fn explicit_out_climbing_up_is_rejected() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"evil".to_vec()));
    write_list(root, "list.txt", format!("{} ../x\n", server.url("/f.bin")));

    let run = fetch_into(root, DEEP, &[]);

    assert_code(&run, root, 1);
    assert_eq!(server.hits("/f.bin"), 0, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "escapes the output directory");
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn redirect_with_dot_dot_is_named_from_the_original_url() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/dir/orig.bin", Route::redirect(302, "/../../x.bin"));
    server.route("/x.bin", Route::ok(b"target".to_vec()));
    list_of(root, &server.url("/dir/orig.bin"));

    let run = fetch_into(root, DEEP, &[]);

    assert_code(&run, root, 0);
    assert_eq!(server.hits("/x.bin"), 1, "{}", ctx(&run, root));
    assert_file(&run, root, "a/b/out/orig.bin", b"target");
    assert_files(&run, root, &["a/b/out/orig.bin", "list.txt"]);
}

#[test]
fn content_disposition_cannot_climb_out() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "/plain",
        Route::ok(b"one".to_vec()).header("Content-Disposition", "attachment; filename=\"../../evil.sh\""),
    );
    server.route(
        "/extended",
        Route::ok(b"two".to_vec()).header(
            "Content-Disposition",
            "attachment; filename*=UTF-8''%2E%2E%2F%2E%2E%2Fevil2.sh",
        ),
    );
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("/plain"), server.url("/extended")),
    );

    let run = fetch_into(root, DEEP, &["--content-disposition"]);

    assert_code(&run, root, 0);
    assert_files(&run, root, &["a/b/out/evil.sh", "a/b/out/evil2.sh", "list.txt"]);
    assert_file(&run, root, "a/b/out/evil.sh", b"one");
    assert_file(&run, root, "a/b/out/evil2.sh", b"two");
}

/// Writes `root/outside.txt` ("precious") and plants a symlink to it at
/// `out/name`, where fetchq will want to write.
fn plant_symlink_to_outside(root: &Path, name: &str) {
    let outside = root.join("outside.txt");
    fs::write(&outside, b"precious").unwrap();
    fs::create_dir(out(root)).unwrap();
    std::os::unix::fs::symlink(&outside, out(root).join(name)).unwrap();
}

#[test]
fn symlink_planted_at_the_part_is_not_followed() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 24);
    server.route("/f.bin", Route::ok(body.clone()));
    list_of(root, &server.url("/f.bin"));
    plant_symlink_to_outside(root, "f.bin.part");

    let run = fetch(root, &[]);

    assert_file(&run, root, "outside.txt", b"precious");
    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    assert_files(&run, root, &["list.txt", "out/f.bin", "outside.txt"]);
}

#[test]
fn symlink_planted_at_the_part_is_not_followed_with_continue() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 25);
    server.route("/f.bin", Route::ok(body.clone()));
    list_of(root, &server.url("/f.bin"));
    plant_symlink_to_outside(root, "f.bin.part");

    let run = fetch(root, &["-c"]);

    assert_no_panic(&run, root);
    assert_file(&run, root, "outside.txt", b"precious");
    // Refusing the entry is fine; writing through the link is not, and a
    // final file, if any, must be the real body.
    if out(root).join("f.bin").exists() {
        assert_file(&run, root, "out/f.bin", &body);
    } else {
        assert_code(&run, root, 1);
    }
}

#[test]
fn overwrite_replaces_a_symlink_instead_of_writing_through_it() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 26);
    server.route("/f.bin", Route::ok(body.clone()));
    list_of(root, &server.url("/f.bin"));
    plant_symlink_to_outside(root, "f.bin");

    let run = fetch(root, &["--overwrite"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "outside.txt", b"precious");
    let meta = fs::symlink_metadata(out(root).join("f.bin")).unwrap();
    assert!(
        meta.file_type().is_file(),
        "out/f.bin should now be a regular file\n{}",
        ctx(&run, root)
    );
    assert_file(&run, root, "out/f.bin", &body);
}

#[test]
fn new_files_follow_the_umask() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"secret".to_vec()));
    list_of(root, &server.url("/f.bin"));

    let run = fetch_with_umask(root, "077", &[]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", b"secret");
    let mode = mode_of(root, "out/f.bin");
    assert_eq!(mode, 0o600, "mode {mode:o}\n{}", ctx(&run, root));
}

#[test]
fn overwrite_never_widens_permissions() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"new secret".to_vec()));
    list_of(root, &server.url("/f.bin"));
    write_out_file(root, "f.bin", b"old secret");
    let target = out(root).join("f.bin");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();

    // A permissive umask: only the old file's mode can keep it private.
    let run = fetch_with_umask(root, "022", &["--overwrite"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", b"new secret");
    let mode = mode_of(root, "out/f.bin");
    assert_eq!(
        mode & !0o600,
        0,
        "mode {mode:o} is wider than 0600\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 10. Redirects
// ---------------------------------------------------------------------------

#[test]
fn chain_of_three_redirects_is_followed_and_named_from_the_original_url() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/start.bin", Route::redirect(301, "/r1"));
    server.route("/r1", Route::redirect(302, "/r2"));
    server.route("/r2", Route::redirect(307, "/final.dat"));
    server.route("/final.dat", Route::ok(b"end of chain".to_vec()));
    list_of(root, &server.url("/start.bin"));

    let run = fetch(root, &[]);

    assert_downloaded_alone(&run, root, "out/start.bin", b"end of chain");
}

#[test]
fn redirect_loop_fails_naming_the_loop() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/loop1", Route::redirect(302, "/loop2"));
    server.route("/loop2", Route::redirect(302, "/loop1"));
    list_of(root, &server.url("/loop1"));

    let run = fetch(root, &["--retries", "2"]);

    assert_code(&run, root, 1);
    assert_stderr_has(&run, root, "redirect loop");
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn max_redirects_is_enforced() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/start.bin", Route::redirect(302, "/r1"));
    server.route("/r1", Route::redirect(302, "/r2"));
    server.route("/r2", Route::redirect(302, "/final.dat"));
    server.route("/final.dat", Route::ok(b"end".to_vec()));
    list_of(root, &server.url("/start.bin"));

    let run = fetch(root, &["--max-redirects", "2"]);

    assert_code(&run, root, 1);
    assert_stderr_has(&run, root, "too many redirects");
    assert_eq!(server.hits("/final.dat"), 0, "{}", ctx(&run, root));
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn redirect_to_ftp_is_refused() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::redirect(302, "ftp://127.0.0.1/f.bin"));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &[]);

    assert_code(&run, root, 1);
    assert_stderr_has(&run, root, "unsupported scheme");
    assert_files(&run, root, &["list.txt"]);
}

#[test]
fn credentials_are_dropped_when_a_redirect_leaves_the_origin() {
    let first = TestServer::start();
    let other = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    first.route("/start.bin", Route::redirect(302, "/mid"));
    first.route("/mid", Route::redirect(302, &other.url("/file")));
    other.route("/file", Route::ok(b"public".to_vec()));
    list_of(root, &first.url("/start.bin"));

    let run = fetch(
        root,
        &[
            "-H",
            "Authorization: Bearer x",
            "-H",
            "Cookie: session=1",
            "-H",
            "X-Custom: kept",
        ],
    );

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/start.bin", b"public");
    let msg = || {
        format!(
            "first server:\n{}\nother server:\n{}\n{}",
            requests_text(&first),
            requests_text(&other),
            ctx(&run, root)
        )
    };
    for path in ["/start.bin", "/mid"] {
        let req = nth_request(&first, path, 0, &run, root);
        assert_eq!(req.header("authorization"), Some("Bearer x"), "{path}\n{}", msg());
        assert_eq!(req.header("cookie"), Some("session=1"), "{path}\n{}", msg());
        assert_eq!(req.header("x-custom"), Some("kept"), "{path}\n{}", msg());
    }
    let req = nth_request(&other, "/file", 0, &run, root);
    assert_eq!(req.header("authorization"), None, "{}", msg());
    assert_eq!(req.header("cookie"), None, "{}", msg());
    assert_eq!(req.header("x-custom"), Some("kept"), "{}", msg());
}

// ---------------------------------------------------------------------------
// 11. Untrusted numbers
// ---------------------------------------------------------------------------

#[test]
fn absurd_content_length_fails_cleanly() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "/f.bin",
        Route::ok(b"tiny".to_vec())
            .header("Content-Length", "99999999999999999999999")
            .close_connection(),
    );
    list_of(root, &server.url("/f.bin"));

    let start = Instant::now();
    let run = fetch(root, &["--retries", "1", "--timeout", "2"]);
    let took = start.elapsed();

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    assert_absent(&run, root, "out/f.bin");
}

#[test]
fn absurd_content_range_on_resume_fails_cleanly() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 27);
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .header(
                "Content-Range",
                "bytes 5000-99999999999999999999999/99999999999999999999999",
            )
            .fail_times_with(1, Route::ok(body).etag("\"v1\"").reset_after(5_000)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2", "--timeout", "2"]);

    assert_no_panic(&run, root);
    assert!(
        run.code() == 0 || run.code() == 1,
        "clean exit expected\n{}",
        ctx(&run, root)
    );
    if run.code() == 0 {
        // Only acceptable if it started over and got the real body.
        assert_file(&run, root, "out/f.bin", &pattern(20_000, 27));
    } else {
        assert_absent(&run, root, "out/f.bin");
    }
}

#[test]
fn huge_retry_after_is_capped_by_retry_wait_max() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(1000, 28);
    server.route(
        "/a.bin",
        Route::ok(body.clone())
            .fail_times(1, 503)
            .retry_after("18446744073709551615"),
    );
    server.route(
        "/b.bin",
        Route::ok(body.clone())
            .fail_times(1, 429)
            .retry_after("99999999999999999999999999"),
    );
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("/a.bin"), server.url("/b.bin")),
    );

    let start = Instant::now();
    let run = fetch(root, &["--retries", "2", "--retry-wait-max", "0.2"]);
    let took = start.elapsed();

    assert_no_panic(&run, root);
    assert_code(&run, root, 0);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    assert_file(&run, root, "out/a.bin", &body);
    assert_file(&run, root, "out/b.bin", &body);
}

// ---------------------------------------------------------------------------
// 12. --sync, 13. -v
// ---------------------------------------------------------------------------

#[test]
fn sync_writes_a_correct_file() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(200_000, 29);
    server.route("/f.bin", Route::ok(body.clone()));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--sync"]);

    assert_downloaded_alone(&run, root, "out/f.bin", &body);
}

#[test]
fn verbose_shows_every_attempt() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(1000, 30);
    server.route("/f.bin", Route::ok(body.clone()).fail_times(2, 503));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["-v", "--retries", "3"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", &body);
    for attempt in 1..=2 {
        let line = stderr_line(&run, root, &format!("attempt {attempt} failed"));
        assert!(
            line.contains("503") && line.contains("retrying in"),
            "attempt {attempt}: {line:?}\n{}",
            ctx(&run, root)
        );
    }
    assert!(!run.stderr.contains("attempt 3 failed"), "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "downloaded");
}
