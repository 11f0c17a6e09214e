//! The exit codes scripts and cron rely on: 0 when every entry is done, 1 when
//! one failed, 2 for a usage or set-up error, and 128 + signal when
//! interrupted (with the `.part` kept for `-c`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

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

// ---------------------------------------------------------------------------
// Usage and set-up errors: exit 2
// ---------------------------------------------------------------------------

#[test]
fn missing_input_list_exits_2_naming_it() {
    let t = Setup::new();
    t.list_as("good.txt", &[t.serve("/a.txt", Route::ok(b"a".to_vec()))]);

    let run = t.run_raw(&["-d", "out", "good.txt", "no-such-list.txt"]);

    // An unreadable list stops the run before any download.
    run.assert_code(2)
        .assert_stderr_has("no-such-list.txt")
        .assert_out_files(&[]);
    t.assert_hits(&run, "/a.txt", 0);
}

#[test]
fn directory_as_input_list_exits_2_naming_it() {
    let t = Setup::new();
    fs::create_dir(t.root().join("a-directory")).unwrap();

    t.run_raw(&["-d", "out", "a-directory"])
        .assert_code(2)
        .assert_stderr_has("a-directory");
}

#[test]
fn output_dir_that_is_a_file_exits_2() {
    let t = Setup::new();
    t.list(&[t.serve("/a.txt", Route::ok(b"a".to_vec()))]);
    fs::write(t.root().join("plainfile"), b"not a dir").unwrap();

    let run = t.run_raw(&["-d", "plainfile", "list.txt"]);

    run.assert_code(2)
        .assert_stderr_has("plainfile")
        .assert_stderr_has("output directory")
        .assert_file("plainfile", b"not a dir");
    t.assert_hits(&run, "/a.txt", 0);
}

#[test]
fn zero_jobs_is_a_usage_error() {
    let t = Setup::new();
    t.list::<&str>(&[]);

    let run = t.run_raw(&["-j", "0", "list.txt"]);

    run.assert_code(2).assert_files(&["list.txt"]);
    assert!(
        run.stderr.contains("--jobs") || run.stderr.contains("-j"),
        "the error should name the option\n{}",
        run.ctx()
    );
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

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
// For cron: 1 for a failure, with or without -q (exit 0 and silence when all
// is well: outputs::quiet_success_prints_nothing)
// ---------------------------------------------------------------------------

#[test]
fn cron_one_404_exits_1() {
    let t = Setup::new();
    t.list(&[
        t.serve("a.txt", Route::ok(b"a".to_vec())),
        t.server.url("nothing-here.txt"),
    ]);

    // -q prints the failure on stderr only.
    t.run(&["-q"])
        .assert_code(1)
        .assert_stdout("")
        .assert_stderr_has("nothing-here.txt")
        .assert_out_file("a.txt", b"a");
    t.run(&["--overwrite"]).assert_code(1);
}
