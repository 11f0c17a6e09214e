//! `-c` never splices two versions: a `NAME.part` left by an earlier run is
//! continued only with `If-Range` from the record fetchq put on it, or, for a
//! part without a record, only when the list's `sha256=` checks the result.
//!
//! Layout as in every end-to-end test (see `tests/support/mod.rs`): runs in a
//! fresh temp dir `root`, list in `root/list.txt`, downloads in `root/out`.
//! A first run leaves the part the way a real interruption does (SIGTERM or
//! SIGKILL past 1 MiB, or a connection cut with no retries left); the test
//! then changes what the server holds and runs `fetchq -c`.

use crate::support;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use support::{
    RecordedRequest, Route, Run, TestServer, assert_code, assert_out_file, assert_stderr_has, ctx, fetchq,
    http_date, list_args, list_files, out, pattern, run, sha256_hex, write_list, write_out_file,
};

/// Longest a wait for the first run to reach a state may take.
const BOUND: Duration = Duration::from_secs(15);

/// Runs `fetchq -d out --retry-wait 0.05 ARGS list.txt` in `root`.
fn fetch(root: &Path, args: &[&str]) -> Run {
    run(fetchq().current_dir(root).args(list_args("out", args)))
}

/// Requests for `path` from index `from` on, for assertions on one run.
fn requests_since(server: &TestServer, path: &str, from: usize) -> Vec<RecordedRequest> {
    server.requests_for(path).into_iter().skip(from).collect()
}

/// The files under `root`, the requests and the run, for messages.
fn describe(run: &Run, root: &Path, requests: &[RecordedRequest]) -> String {
    let requests: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.headers))
        .collect();
    format!("requests:\n{}\n{}", requests.join("\n"), ctx(run, root))
}

/// A fetchq run in the background, killed (by its own id) if the test fails early.
struct Background {
    child: Child,
    stderr: PathBuf,
}

impl Background {
    fn start(root: &Path, args: &[&str]) -> Background {
        let stderr = root.join("stderr.txt");
        let child = fetchq()
            .current_dir(root)
            .args(list_args("out", args))
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn fetchq");
        Background { child, stderr }
    }

    /// Polls (bounded) until `part` holds at least `len` bytes.
    fn wait_for_part(&mut self, part: &Path, len: u64) {
        let start = Instant::now();
        while fs::metadata(part).map_or(0, |m| m.len()) < len {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("fetchq exited early ({status}): {}", self.stderr_text());
            }
            assert!(
                start.elapsed() < BOUND,
                "{} never reached {len} bytes: {}",
                part.display(),
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` and waits (bounded) for the exit; returns the code, -1 for a signal.
    fn stop(&mut self, signal: &str) -> i32 {
        support::kill(self.child.id(), signal);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < BOUND,
                "fetchq ignored {signal}: {}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const OLD_DATE: u64 = 1_600_000_000;
const NEW_DATE: u64 = 1_700_000_000;

/// 1.5 MiB: the part is named past 1 MiB, while the body still streams.
const BIG: usize = 1_536 * 1024;
/// Where the first run's server stalls: past the 1 MiB at which a part gets its name.
const STALL_AT: usize = 1_200_000;

/// 9 MiB: big enough that fetchq writes it on 64 KiB boundaries, holding
/// back what lies past the last one (`src/fetch/tail.rs`).
const HUGE: usize = 9 * 1024 * 1024;
/// Where a stall cuts `HUGE`: 1 byte past a boundary, so all but one byte of
/// a 64 KiB stretch is what the stall finds held.
const HUGE_STALL_AT: usize = 8 * 1024 * 1024 + 64 * 1024 - 1;

/// The repro: a download past 1 MiB is stopped by `signal`, the
/// resource changes (new ETag and Last-Modified; the server honours
/// `If-Range`), and `fetchq -c` must end with exactly the new version.
fn changed_version_after(signal: &str, want_code: i32) {
    changed_version_of(BIG, STALL_AT, signal, want_code);
}

/// The same for a body of `len` bytes whose first run stalls after `stall_at`.
fn changed_version_of(len: usize, stall_at: usize, signal: &str, want_code: i32) {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let old = pattern(len, 1);
    let new = pattern(len, 2);
    server.route(
        "/z.bin",
        Route::ok(old.clone())
            .etag("\"v1\"")
            .last_modified(&http_date(OLD_DATE))
            .stall_after(stall_at),
    );
    write_list(root, "list.txt", format!("{}\n", server.url("/z.bin")));
    let part = out(root).join("z.bin.part");

    let mut first = Background::start(root, &[]);
    first.wait_for_part(&part, stall_at as u64);
    let code = first.stop(signal);
    assert_eq!(code, want_code, "after {signal}: {}", first.stderr_text());
    let kept = fs::metadata(&part).map_or(0, |m| m.len());
    assert_eq!(kept, stall_at as u64, "the part is kept: {:?}", list_files(root));
    assert_eq!(
        fs::read(&part).unwrap(),
        old[..stall_at],
        "the part holds exactly the bytes received"
    );

    server.route(
        "/z.bin",
        Route::ok(new.clone())
            .etag("\"v2\"")
            .last_modified(&http_date(NEW_DATE)),
    );
    let before = server.requests_for("/z.bin").len();
    let run = fetch(root, &["-c", "-v"]);

    let requests = requests_since(&server, "/z.bin", before);
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "z.bin", &new);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes={kept}-").as_str()),
        "{}",
        why()
    );
    assert_eq!(requests[0].header("if-range"), Some("\"v1\""), "{}", why());
    assert_stderr_has(
        &run,
        root,
        "starting over from byte 0: the server sent the whole file",
    );
    assert!(!part.exists(), "{}", why());
}

#[test]
fn continue_after_sigterm_gets_the_new_version_whole() {
    changed_version_after("-TERM", 143);
}

/// SIGKILL gives fetchq no chance to do anything: the record must already be
/// on the part when its name appears.
#[test]
fn continue_after_sigkill_gets_the_new_version_whole() {
    changed_version_after("-KILL", -1);
}

/// A big body's bytes past the last 64 KiB boundary are held back only
/// while more keep coming: once the server stalls they are on disk, so a
/// SIGKILL during the stall loses none of them.
#[test]
fn a_big_bodys_bytes_are_all_on_disk_while_the_server_stalls() {
    changed_version_of(HUGE, HUGE_STALL_AT, "-KILL", -1);
}

/// And SIGTERM during the stall keeps them too, with the part's record.
#[test]
fn a_big_body_stopped_during_a_stall_is_continued_from_every_byte_received() {
    changed_version_of(HUGE, HUGE_STALL_AT, "-TERM", 143);
}

/// A first run whose connection is cut after `cut` bytes, with no retry
/// left: the part is kept (and named) for `-c`. Returns its length.
fn leave_part(server: &TestServer, root: &Path, route: Route, cut: usize) -> u64 {
    server.route("/f.bin", route.reset_after(cut));
    let run = fetch(root, &["--retries", "0"]);
    assert_code(&run, root, 1);
    let kept = fs::metadata(out(root).join("f.bin.part")).map_or(0, |m| m.len());
    assert_eq!(kept, cut as u64, "the part is kept\n{}", ctx(&run, root));
    kept
}

/// The same version is still continued: only the missing bytes are asked
/// for, with the recorded Last-Modified as `If-Range` (no ETag here).
#[test]
fn continue_of_the_same_version_requests_only_the_rest() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(300_000, 3);
    let route = Route::ok(body.clone()).last_modified(&http_date(OLD_DATE));
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));
    let kept = leave_part(&server, root, route.clone(), 100_000);

    server.route("/f.bin", route);
    let before = server.requests_for("/f.bin").len();
    let run = fetch(root, &["-c", "-v"]);

    let requests = requests_since(&server, "/f.bin", before);
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 1, "one request, answered with 206\n{}", why());
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes={kept}-").as_str()),
        "{}",
        why()
    );
    assert_eq!(
        requests[0].header("if-range"),
        Some(http_date(OLD_DATE).as_str()),
        "{}",
        why()
    );
    assert_stderr_has(
        &run,
        root,
        "100000 bytes in f.bin.part: continuing if the server still has the version",
    );
    assert_eq!(list_files(root), ["list.txt", "out/f.bin"], "{}", why());
}

/// A part another program wrote records no version: without a checksum it
/// is never continued; `-v` says so and why.
#[test]
fn a_part_without_a_record_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(200_000, 4);
    server.route("/f.bin", Route::ok(body.clone()).etag("\"v1\""));
    write_out_file(root, "f.bin.part", pattern(80_000, 5));
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));

    let run = fetch(root, &["-c", "-v"]);

    let requests = server.requests_for("/f.bin");
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(requests[0].header("range"), None, "a full request\n{}", why());
    assert_stderr_has(
        &run,
        root,
        "80000 bytes in f.bin.part: starting over from byte 0: the part has no record of the version it came from",
    );
    assert_eq!(list_files(root), ["list.txt", "out/f.bin"], "{}", why());
}

/// With the list's `sha256=`, a part without a record is continued, and the
/// checksum checks the result.
#[test]
fn a_part_without_a_record_is_continued_when_a_checksum_will_check_it() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(200_000, 6);
    server.route("/f.bin", Route::ok(body.clone()).etag("\"v1\""));
    write_out_file(root, "f.bin.part", &body[..80_000]);
    let url = server.url("/f.bin");
    write_list(root, "list.txt", format!("{url} sha256={}\n", sha256_hex(&body)));

    let run = fetch(root, &["-c", "-v"]);

    let requests = server.requests_for("/f.bin");
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(requests[0].header("range"), Some("bytes=80000-"), "{}", why());
    assert_stderr_has(
        &run,
        root,
        "80000 bytes in f.bin.part: continuing a part that records no version: a checksum will check the result",
    );
}

/// A part without a record whose bytes are not the file's fails the
/// checksum: the file is then fetched whole instead of failing the entry.
#[test]
fn a_part_without_a_record_that_fails_the_checksum_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(200_000, 7);
    server.route("/f.bin", Route::ok(body.clone()).etag("\"v1\""));
    write_out_file(root, "f.bin.part", pattern(80_000, 8));
    let url = server.url("/f.bin");
    write_list(root, "list.txt", format!("{url} sha256={}\n", sha256_hex(&body)));

    let run = fetch(root, &["-c", "-v"]);

    let requests = server.requests_for("/f.bin");
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 2, "{}", why());
    assert_eq!(requests[0].header("range"), Some("bytes=80000-"), "{}", why());
    assert_eq!(requests[1].header("range"), None, "{}", why());
    assert_stderr_has(
        &run,
        root,
        "starting over from byte 0: the continued file did not match its checksum",
    );
}

/// A server that keeps the ETag but changes the file: the 206's total is
/// not the recorded one, so the part starts over instead of being spliced.
#[test]
fn a_different_total_length_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let old = pattern(300_000, 9);
    let new = pattern(400_000, 10);
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));
    let kept = leave_part(&server, root, Route::ok(old).etag("\"same\""), 100_000);

    server.route("/f.bin", Route::ok(new.clone()).etag("\"same\""));
    let before = server.requests_for("/f.bin").len();
    let run = fetch(root, &["-c", "-v"]);

    let requests = requests_since(&server, "/f.bin", before);
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &new);
    assert_eq!(requests.len(), 2, "{}", why());
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes={kept}-").as_str()),
        "{}",
        why()
    );
    assert_eq!(requests[1].header("range"), None, "{}", why());
    assert_stderr_has(
        &run,
        root,
        "file size changed from 300000 to 400000 bytes; starting over",
    );
}

/// The record names the URL the part came from: another entry's part under
/// the same name starts over.
#[test]
fn a_part_recorded_for_another_url_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(300_000, 11);
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));
    leave_part(
        &server,
        root,
        Route::ok(pattern(300_000, 12)).etag("\"v1\""),
        100_000,
    );

    server.route("/g.bin", Route::ok(body.clone()).etag("\"v1\""));
    write_list(root, "list.txt", format!("{} f.bin\n", server.url("/g.bin")));
    let run = fetch(root, &["-c", "-v"]);

    let requests = server.requests_for("/g.bin");
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(requests[0].header("range"), None, "{}", why());
    assert_stderr_has(
        &run,
        root,
        "starting over from byte 0: the part came from another URL",
    );
}

/// Without an ETag or Last-Modified nothing can tell versions apart: the
/// part starts over.
#[test]
fn a_part_from_a_response_without_validators_starts_over() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(300_000, 13);
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));
    leave_part(&server, root, Route::ok(body.clone()), 100_000);

    server.route("/f.bin", Route::ok(body.clone()));
    let before = server.requests_for("/f.bin").len();
    let run = fetch(root, &["-c", "-v"]);

    let requests = requests_since(&server, "/f.bin", before);
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &body);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(requests[0].header("range"), None, "{}", why());
    assert_stderr_has(&run, root, "no ETag or Last-Modified");
}

/// Within one run too: a retry after a cut asks for the rest only if the
/// first response had a validator, or the list's checksum will check it.
#[test]
fn a_retry_without_validators_starts_over_unless_a_checksum_checks_it() {
    for checksum in [false, true] {
        let server = TestServer::start();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let body = pattern(200_000, 14);
        server.route(
            "/f.bin",
            Route::ok(body.clone()).fail_times_with(1, Route::ok(body.clone()).reset_after(50_000)),
        );
        let url = server.url("/f.bin");
        let line = match checksum {
            false => format!("{url}\n"),
            true => format!("{url} sha256={}\n", sha256_hex(&body)),
        };
        write_list(root, "list.txt", line);

        let run = fetch(root, &["-v", "--retries", "1"]);

        let requests = server.requests_for("/f.bin");
        let why = || describe(&run, root, &requests);
        assert_code(&run, root, 0);
        assert_out_file(&run, root, "f.bin", &body);
        assert_eq!(requests.len(), 2, "{}", why());
        if checksum {
            assert_eq!(requests[1].header("range"), Some("bytes=50000-"), "{}", why());
            assert_stderr_has(&run, root, "a checksum will check the result");
        } else {
            assert_eq!(requests[1].header("range"), None, "{}", why());
            assert_stderr_has(
                &run,
                root,
                "starting over from byte 0: the part's response had no ETag",
            );
        }
    }
}

/// A continued part that must start over (here the server sent the whole
/// new version) is replaced at its name, never emptied in place: the file
/// may have other names, or be another program's, and those keep its bytes.
#[test]
fn a_part_that_starts_over_is_replaced_not_emptied() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let old = pattern(300_000, 11);
    let new = pattern(250_000, 12);
    write_list(root, "list.txt", format!("{}\n", server.url("/f.bin")));
    let kept = leave_part(&server, root, Route::ok(old.clone()).etag("\"v1\""), 100_000);
    let other_name = root.join("other-name");
    fs::hard_link(out(root).join("f.bin.part"), &other_name).unwrap();

    server.route("/f.bin", Route::ok(new.clone()).etag("\"v2\""));
    let before = server.requests_for("/f.bin").len();
    let run = fetch(root, &["-c", "-v"]);

    let requests = requests_since(&server, "/f.bin", before);
    let why = || describe(&run, root, &requests);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", &new);
    assert_eq!(requests.len(), 1, "{}", why());
    assert_eq!(requests[0].header("if-range"), Some("\"v1\""), "{}", why());
    assert_eq!(
        fs::read(&other_name).unwrap(),
        &old[..kept as usize],
        "the part's other name keeps its bytes\n{}",
        why()
    );
    assert_eq!(
        list_files(root),
        ["list.txt", "other-name", "out/f.bin"],
        "{}",
        why()
    );
}
