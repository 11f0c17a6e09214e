//! What a run prints: plain output on pipes, `-q`, `-v`, `--json`, `--log`,
//! `--dry-run`, and no colour where it does not belong.

use serde_json::Value;
use std::fs;
use std::path::Path;

use crate::support::*;

/// True if `token` is an RFC 3339 date-time in UTC (`Z`), as fetchq's log
/// writes them, with or without a fraction of a second.
fn is_rfc3339(token: &str) -> bool {
    humantime::parse_rfc3339(token).is_ok()
}

// ---------------------------------------------------------------------------
// Plain output
// ---------------------------------------------------------------------------

#[test]
fn mixed_sizes_download_byte_for_byte_with_plain_output() {
    let t = Setup::new();
    let files = [
        ("empty.bin", Vec::new()),
        ("small.txt", b"hello, fetchq\n".to_vec()),
        ("big.bin", pattern(5 << 20, 1)),
    ];
    t.serve_list(&files);

    let run = t.run(&[]);

    run.assert_code(0)
        .assert_out_files(&["big.bin", "empty.bin", "small.txt"])
        .assert_summary_has("3 downloaded")
        .assert_summary_has("0 failed")
        .assert_stdout("");
    for (name, body) in &files {
        run.assert_out_file(name, body);
        t.assert_hits(&run, name, 1);
    }
    for (bad, what) in [("\r", "\\r"), ("\x1b", "ESC")] {
        assert!(!run.stderr.contains(bad), "stderr has {what}\n{}", run.ctx());
    }
    assert!(run.stderr.ends_with('\n'), "stderr ends mid-line\n{}", run.ctx());
}

// ---------------------------------------------------------------------------
// Quiet mode
// ---------------------------------------------------------------------------

/// What cron relies on: exit 0 and not a byte of output when all is well.
#[test]
fn quiet_success_prints_nothing() {
    let t = Setup::new();
    t.serve_list(&[("a.txt", b"a".to_vec()), ("b.txt", b"b".to_vec())]);

    t.run(&["-q"])
        .assert_code(0)
        .assert_stderr("")
        .assert_stdout("")
        .assert_out_file("a.txt", b"a")
        .assert_out_file("b.txt", b"b");
}

#[test]
fn quiet_failure_prints_the_failure_and_a_count() {
    let t = Setup::new();
    t.list(&[
        t.serve("/a.txt", Route::ok(b"a".to_vec())),
        t.server.url("/gone.txt"),
    ]);

    let run = t.run(&["-q"]);

    run.assert_code(1)
        .assert_stdout("")
        .assert_out_file("a.txt", b"a");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one failure line and one count line\n{}",
        run.ctx()
    );
    assert!(
        lines[0].starts_with("list.txt:2: ") && lines[0].contains("HTTP 404"),
        "failure line {:?}\n{}",
        lines[0],
        run.ctx()
    );
    assert!(
        lines[1].contains("1 of 2") && lines[1].contains("failed"),
        "count line {:?}\n{}",
        lines[1],
        run.ctx()
    );
}

// ---------------------------------------------------------------------------
// -v
// ---------------------------------------------------------------------------

#[test]
fn verbose_shows_every_attempt() {
    let t = Setup::new();
    let body = pattern(1000, 30);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()).fail_times(2, 503))]);

    let run = t.run(&["-v", "--retries", "3"]);

    run.assert_code(0)
        .assert_out_file("f.bin", &body)
        .assert_stderr_has("downloaded")
        .assert_stderr_lacks("attempt 3 failed");
    for attempt in 1..=2 {
        let line = run.stderr_line(&format!("attempt {attempt} failed"));
        assert!(
            line.contains("503") && line.contains("retrying in"),
            "attempt {attempt}: {line:?}\n{}",
            run.ctx()
        );
    }
}

// ---------------------------------------------------------------------------
// --json
// ---------------------------------------------------------------------------

#[test]
fn json_reports_every_entry_and_a_summary() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ok_body = pattern(3000, 7);
    let target_body = b"the redirect target".to_vec();
    server.route("ok.bin", Route::ok(ok_body.clone()));
    server.route("moved.bin", Route::redirect(302, "/target.bin"));
    server.route("target.bin", Route::ok(target_body.clone()));
    write_out_file(root, "existing.bin", b"old!");
    let list = format!(
        "{}\n{}\nnot a url\n{}\n{}\n",
        server.url("ok.bin"),
        server.url("missing.bin"),
        server.url("existing.bin"),
        server.url("moved.bin"),
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["--json", "-d", "out", "list.txt"]);
    assert_code(&run, root, 1);
    let lines = json_lines(&run, root);
    assert_eq!(lines.len(), 6, "5 entries + 1 summary\n{}", ctx(&run, root));
    let (summary, entries) = lines.split_last().unwrap();
    assert!(
        entries.iter().all(|e| e["type"] == "entry"),
        "all but the last object must have type=entry\n{}",
        ctx(&run, root)
    );
    let entry = |line: u64| -> &Value {
        entries
            .iter()
            .find(|e| e["line"] == line)
            .unwrap_or_else(|| panic!("no entry object for line {line}\n{}", ctx(&run, root)))
    };
    let check = |line: u64, field: &str, want: Value| {
        let got = &entry(line)[field];
        assert_eq!(
            *got,
            want,
            "line {line}: field {field:?}\nobject: {}\n{}",
            entry(line),
            ctx(&run, root)
        );
    };
    for e in entries {
        for field in [
            "type",
            "source",
            "line",
            "url",
            "final_url",
            "path",
            "outcome",
            "status",
            "bytes",
            "attempts",
            "elapsed_ms",
            "error_kind",
            "error",
        ] {
            assert!(
                e.get(field).is_some(),
                "entry object lacks field {field:?}: {e}\n{}",
                ctx(&run, root)
            );
        }
        assert_eq!(e["source"], "list.txt", "source of {e}\n{}", ctx(&run, root));
        assert!(e["elapsed_ms"].is_u64(), "elapsed_ms of {e}\n{}", ctx(&run, root));
    }

    // 1: plain download.
    check(1, "url", server.url("ok.bin").into());
    check(1, "final_url", server.url("ok.bin").into());
    check(1, "path", "out/ok.bin".into());
    check(1, "outcome", "downloaded".into());
    check(1, "status", 200.into());
    check(1, "bytes", ok_body.len().into());
    check(1, "attempts", 1.into());
    check(1, "error_kind", Value::Null);
    check(1, "error", Value::Null);

    // 2: 404.
    check(2, "url", server.url("missing.bin").into());
    check(2, "final_url", server.url("missing.bin").into());
    check(2, "path", "out/missing.bin".into());
    check(2, "outcome", "failed".into());
    check(2, "status", 404.into());
    check(2, "bytes", 0.into());
    check(2, "attempts", 1.into());
    check(2, "error_kind", "http_status".into());
    let error = entry(2)["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("404"),
        "line 2 error {error:?}\n{}",
        ctx(&run, root)
    );

    // 3: the unusable line.
    check(3, "url", "not a url".into());
    check(3, "final_url", Value::Null);
    check(3, "path", Value::Null);
    check(3, "outcome", "failed".into());
    check(3, "status", Value::Null);
    check(3, "bytes", 0.into());
    check(3, "attempts", 0.into());
    check(3, "error_kind", "invalid_line".into());
    let error = entry(3)["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid URL"),
        "line 3 error {error:?}\n{}",
        ctx(&run, root)
    );

    // 4: already there, skipped without a request.
    check(4, "url", server.url("existing.bin").into());
    check(4, "final_url", Value::Null);
    check(4, "path", "out/existing.bin".into());
    check(4, "outcome", "skipped".into());
    check(4, "status", Value::Null);
    check(4, "bytes", 4.into());
    check(4, "attempts", 0.into());
    check(4, "error_kind", Value::Null);
    check(4, "error", Value::Null);
    assert_eq!(server.hits("existing.bin"), 0, "{}", ctx(&run, root));

    // 5: redirect: final_url differs, the name comes from the original URL.
    check(5, "url", server.url("moved.bin").into());
    check(5, "final_url", server.url("target.bin").into());
    check(5, "path", "out/moved.bin".into());
    check(5, "outcome", "downloaded".into());
    check(5, "status", 200.into());
    check(5, "bytes", target_body.len().into());
    check(5, "attempts", 1.into());
    check(5, "error_kind", Value::Null);
    check(5, "error", Value::Null);
    assert_out_file(&run, root, "moved.bin", &target_body);

    // Summary last.
    let want_summary = [
        ("type", Value::from("summary")),
        ("downloaded", 2.into()),
        ("skipped", 1.into()),
        ("unchanged", 0.into()),
        ("failed", 2.into()),
        ("bytes", (ok_body.len() + target_body.len()).into()),
        ("exit_code", 1.into()),
    ];
    for (field, want) in want_summary {
        assert_eq!(
            summary[field],
            want,
            "summary field {field:?}: {summary}\n{}",
            ctx(&run, root)
        );
    }

    // The human summary goes to stderr.
    assert_stderr_has(&run, root, "2 downloaded");
    assert!(
        !run.stderr.contains("\"type\""),
        "JSON leaked onto stderr\n{}",
        ctx(&run, root)
    );
}

#[test]
fn json_stdout_has_only_json_even_with_verbose_and_dry_run() {
    let t = Setup::new();
    t.serve_list(&[("a.txt", b"A".to_vec()), ("b.txt", b"B".to_vec())]);

    let verbose = t.run(&["--json", "-v"]);
    verbose.assert_code(0);
    let lines = json_lines(&verbose, t.root());
    assert_eq!(lines.len(), 3, "{}", verbose.ctx());
    assert_eq!(lines[2]["type"], "summary", "{}", verbose.ctx());
    assert_eq!(lines[2]["exit_code"], 0, "{}", verbose.ctx());

    let dry = t.run(&["--json", "--dry-run", "--overwrite"]);
    dry.assert_code(0);
    let lines = json_lines(&dry, t.root());
    assert_eq!(lines.len(), 3, "{}", dry.ctx());
}

// ---------------------------------------------------------------------------
// -v and --log
// ---------------------------------------------------------------------------

#[test]
fn verbose_prints_a_line_per_entry() {
    let t = Setup::new();
    t.list(&[
        t.serve("one.txt", Route::ok(b"1".to_vec())),
        t.serve("two.txt", Route::ok(b"2".to_vec())),
        t.server.url("gone.txt"),
        t.server.url("there.txt"),
    ]);
    t.write_out("there.txt", b"x");

    let run = t.run(&["-v"]);

    run.assert_code(1);
    for (line, name, word) in [
        (1, "one.txt", "downloaded"),
        (2, "two.txt", "downloaded"),
        (3, "gone.txt", "404"),
        (4, "there.txt", "skipped"),
    ] {
        let prefix = format!("list.txt:{line}:");
        let url = t.server.url(name);
        let found = run
            .stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(&url) && l.contains(word));
        assert!(
            found,
            "stderr should have a line starting {prefix:?} with {url} and {word:?}\n{}",
            run.ctx()
        );
    }
}

#[test]
fn rfc3339_checker_works() {
    assert!(is_rfc3339("2024-05-01T12:34:56Z"));
    assert!(is_rfc3339("2024-05-01T12:34:56.123Z"));
    // fetchq writes UTC; an offset is RFC 3339 too, but not what it writes.
    assert!(!is_rfc3339("2024-05-01T12:34:56+02:00"));
    assert!(!is_rfc3339("2024-05-01 12:34:56Z"));
    assert!(!is_rfc3339("2024-13-01T12:34:56Z"));
    assert!(!is_rfc3339("2024-05-01T12:34:56"));
}

#[test]
fn log_file_is_appended_with_timestamps_failures_and_end_line() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("fine.txt", Route::ok(b"fine".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("fine.txt"), server.url("nope.txt")),
    );
    let log = root.join("run.log");

    let check_lines = |run: &Run, text: &str| {
        for line in text.lines() {
            let stamp = line.split(' ').next().unwrap_or_default();
            assert!(
                is_rfc3339(stamp),
                "log line {line:?} does not start with an RFC 3339 timestamp\nlog:\n{text}\n{}",
                ctx(run, root)
            );
        }
    };

    let first = fetch_in(root, &["--log", "run.log", "-d", "out", "list.txt"]);
    assert_code(&first, root, 1);
    let after_first =
        fs::read_to_string(&log).unwrap_or_else(|e| panic!("no log file: {e}\n{}", ctx(&first, root)));
    check_lines(&first, &after_first);
    assert!(
        after_first
            .lines()
            .any(|l| l.contains("failed") && l.contains(&server.url("nope.txt"))),
        "the log should name the failed entry\nlog:\n{after_first}\n{}",
        ctx(&first, root)
    );
    assert!(
        after_first.lines().any(|l| l.contains(&server.url("fine.txt"))),
        "the log should name the downloaded entry\nlog:\n{after_first}\n{}",
        ctx(&first, root)
    );
    let last = after_first.lines().last().unwrap_or_default();
    assert!(
        last.contains(" end exit=1"),
        "the last log line should be `end exit=1 ...`, got {last:?}\nlog:\n{after_first}\n{}",
        ctx(&first, root)
    );

    let second = fetch_in(root, &["--log", "run.log", "-d", "out", "list.txt"]);
    assert_code(&second, root, 1);
    let after_second = fs::read_to_string(&log).unwrap();
    check_lines(&second, &after_second);
    assert!(
        after_second.starts_with(&after_first) && after_second.len() > after_first.len(),
        "the second run must append to the log, not truncate it\nafter first:\n{after_first}\nafter second:\n{after_second}\n{}",
        ctx(&second, root)
    );
    assert_eq!(
        after_second.matches(" end exit=").count(),
        2,
        "one end line per run\nlog:\n{after_second}\n{}",
        ctx(&second, root)
    );
    assert!(
        after_second.ends_with('\n'),
        "log should end with a newline\n{after_second}"
    );
}

// ---------------------------------------------------------------------------
// --dry-run
// ---------------------------------------------------------------------------

#[test]
fn dry_run_prints_plans_without_network_or_output_dir() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/one/x.bin", Route::ok(b"1".to_vec()));
    server.route("/two/x.bin", Route::ok(b"2".to_vec()));
    server.route("/y.bin", Route::ok(b"y".to_vec()));
    let urls = [
        server.url("/one/x.bin"),
        server.url("/two/x.bin"),
        server.url("/y.bin"),
    ];
    write_list(root, "list.txt", format!("{}\n", urls.join("\n")));

    let run = fetch_in(root, &["--dry-run", "-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    let mut plans: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|l| {
            let (path, url) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("stdout line {l:?} is not PATH<TAB>URL\n{}", ctx(&run, root)));
            (url.to_string(), path.to_string())
        })
        .collect();
    plans.sort();
    let names: Vec<(String, String)> = plans
        .iter()
        .map(|(url, path)| {
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (url.clone(), name)
        })
        .collect();
    let mut want = vec![
        (urls[0].clone(), "x.bin".to_string()),
        (urls[1].clone(), "x-1.bin".to_string()),
        (urls[2].clone(), "y.bin".to_string()),
    ];
    want.sort();
    assert_eq!(names, want, "planned names\n{}", ctx(&run, root));
    assert!(
        server.requests().is_empty(),
        "--dry-run must not touch the network: {:?}\n{}",
        server.requests(),
        ctx(&run, root)
    );
    assert!(
        !out(root).exists(),
        "--dry-run must not create the output dir\n{}",
        ctx(&run, root)
    );
    assert_eq!(list_files(root), vec!["list.txt"], "{}", ctx(&run, root));
}

// ---------------------------------------------------------------------------
// No colour
// ---------------------------------------------------------------------------

#[test]
fn no_ansi_escapes_on_pipes() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("ok.txt", Route::ok(b"ok".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("ok.txt"), server.url("missing.txt")),
    );
    // NO_COLOR=1 (set by support::fetchq) and, separately, without NO_COLOR:
    // stderr is a pipe either way.
    let with = fetch_in(root, &["-v", "--overwrite", "-d", "out", "list.txt"]);
    let mut cmd = fetchq();
    cmd.env_remove("NO_COLOR")
        .current_dir(root)
        .args(["-v", "--overwrite", "-d", "out", "list.txt"]);
    let without = run(&mut cmd);
    let usage = fetch_in(root, &["--jobs", "0", "list.txt"]);
    assert_code(&usage, root, 2);
    for r in [&with, &without, &usage] {
        assert!(
            !r.stderr.contains('\x1b') && !r.stdout.contains('\x1b'),
            "output has an ANSI escape\n{}",
            ctx(r, root)
        );
    }
    assert_code(&with, root, 1);
    assert_code(&without, root, 1);
}
