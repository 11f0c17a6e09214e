//! What a person reads at the end of a run and while it goes: the summary's
//! byte counts after an interruption and after `-c`, and the status lines of
//! `--progress-interval`. (The bars are tested in `src/progress.rs` with an
//! in-memory terminal.)

use std::fs;
use std::time::Duration;

use crate::support::*;

/// The closing line of a run's stderr that holds the summary.
fn headline(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|line| line.contains(" downloaded, "))
        .unwrap_or_else(|| panic!("no summary in\n{stderr}"))
}

/// `n` bytes as the summary writes a figure under 1 MiB.
fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

/// Ctrl-C in the middle of the first of five entries with one worker: the
/// summary counts the bytes that arrived for the interrupted entry and the
/// four entries that were queued and never started; `-c` then counts only
/// the rest it fetched, and says it continued a part.
#[test]
fn interrupted_run_counts_its_bytes_and_unstarted_entries_and_c_counts_only_the_rest() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(100_000, 29);
    server.route(
        "/slow.bin",
        Route::ok(body.clone())
            .etag("\"slow\"")
            .drip(2_000, Duration::from_millis(50)),
    );
    let mut lines = vec![server.url("/slow.bin")];
    for n in 0..4 {
        let path = format!("/other{n}.bin");
        server.route(&path, Route::ok(b"other".to_vec()));
        lines.push(server.url(&path));
    }
    fs::write(root.join("list.txt"), lines.join("\n") + "\n").unwrap();
    let part = out(root).join("slow.bin.part");

    let mut running = Running::start(root, logs.path(), &["-j", "1"]);
    wait_for_bytes(&part, &running, root);
    running.signal("-INT");
    let (code, _) = running.wait(Duration::from_secs(5), root);
    let output = running.output();
    assert_eq!(code, 130, "{output}");
    let kept = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0, "the part is kept\n{output}");
    let stderr = running.stderr();
    let line = headline(&stderr);
    assert!(
        line.contains("1 interrupted, 4 queued but not started: "),
        "every queued entry that never started is counted\n{output}"
    );
    assert!(
        line.contains(&format!(": {} in ", kib(kept))),
        "the interrupted entry's {kept} bytes are counted\n{output}"
    );

    server.route("/slow.bin", Route::ok(body.clone()).etag("\"slow\""));
    let run = fetch(root, &["-j", "1", "-c"]);
    assert_code(&run, root, 0);
    assert_file(&run, root, "out/slow.bin", &body);
    let line = headline(&run.stderr);
    let rest = body.len() as u64 - kept;
    assert!(
        line.contains(&format!(": {} in ", kib(rest))),
        "only the {rest} bytes fetched in this run are counted\n{}",
        ctx(&run, root)
    );
    assert!(
        line.ends_with("; 1 download continued a .part"),
        "the summary says what was continued\n{}",
        ctx(&run, root)
    );
}

/// On a pipe each failure is one line, printed once, as it happens, and the
/// summary follows without repeating them.
#[test]
fn plain_output_prints_each_failure_once() {
    let t = Setup::new();
    t.list(&["ftp://example.invalid/a", "ftp://example.invalid/b"]);

    let run = t.run(&[]);

    run.assert_code(1).assert_summary_has("2 failed");
    for line in [":1: ", ":2: "] {
        let count = run.stderr.lines().filter(|l| l.contains(line)).count();
        assert_eq!(count, 1, "one line for list line {line}\n{}", run.ctx());
    }
    assert!(!run.stderr.lines().any(|l| l == "failed:"), "{}", run.ctx());
}

/// `--progress-interval` on a pipe prints status lines while a slow download
/// goes; without it the same run prints none.
#[test]
fn progress_interval_prints_status_lines_on_a_pipe_only_when_asked() {
    let t = Setup::new();
    let slow = t.serve(
        "/slow.bin",
        Route::ok(pattern(20_000, 3)).drip(2_000, Duration::from_millis(100)),
    );
    t.list(&[slow]);

    let quiet = t.run(&[]);
    quiet.assert_code(0);
    assert!(
        !quiet.stderr.contains(" files, "),
        "no status line by default\n{}",
        quiet.ctx()
    );

    let t = Setup::new();
    let slow = t.serve(
        "/slow.bin",
        Route::ok(pattern(20_000, 3)).drip(2_000, Duration::from_millis(100)),
    );
    t.list(&[slow]);
    let run = t.run(&["--progress-interval", "0.2"]);
    run.assert_code(0);
    let status = run.stderr_line("fetchq: ");
    assert!(
        status.contains(" files, ") && status.ends_with("/s"),
        "a status line: files, bytes, rate\n{}",
        run.ctx()
    );
}

/// A list in a regular file is counted ahead, before the first download
/// starts, so the overall total is known from the start (the bars show it;
/// `--log` records the count); from a pipe there is no count ahead.
#[test]
fn a_list_file_is_counted_before_the_first_download() {
    let t = Setup::new();
    let a = t.serve("/a.txt", Route::ok(b"a".to_vec()));
    let b = t.serve("/b.txt", Route::ok(b"b".to_vec()));
    t.list(&["# two files", a.as_str(), b.as_str()]);

    let run = t.run(&["-j", "1", "--log", "run.log"]);
    run.assert_code(0);
    let log = fs::read_to_string(t.root().join("run.log")).unwrap();
    let counted = log.find("input counted: 3 lines");
    let started = log.find("started ");
    assert!(
        counted.is_some() && counted < started,
        "the count comes before the first download\n{log}"
    );

    let piped = t.run_with_stdin(
        &["-d", "out2", "--log", "piped.log", "-"],
        format!("{a}\n").as_bytes(),
    );
    piped.assert_code(0);
    let log = fs::read_to_string(t.root().join("piped.log")).unwrap();
    assert!(!log.contains("input counted"), "{log}");
}
