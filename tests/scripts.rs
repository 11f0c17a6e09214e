//! End-to-end tests of the features for scripts and cron (issue 4): `-N`,
//! `--json`, `-v`, `--log`, `--per-host`, `--limit-rate`, proxies, custom
//! headers, repeated `-i`, completions and man page, grouped help,
//! `--dry-run`, colourless output and exit codes. Every test runs the real
//! binary against its own in-process test server(s) (`tests/support`).
//!
//! Layout used by every test: a fresh temp dir `root` that is the working
//! directory of the run and holds the URL lists; downloads go to `root/out`
//! (`-d out`). Assertion messages carry the full run (command, exit code,
//! stdout, stderr) and the files under `root`.

#[allow(dead_code)]
mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{
    Route, Run, TestServer, assert_code, assert_out_file, assert_stderr_has, ctx, fetch_in,
    fetch_in_with_env, fetchq, http_date, list_files, out, pattern, run, serve_all, write_list,
    write_out_file,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Inode and mtime of a file: both stay the same if it was not rewritten
/// (fetchq replaces files by renaming a new one over them).
fn identity(run: &Run, root: &Path, rel: &str) -> (u64, SystemTime) {
    let meta = fs::metadata(out(root).join(rel))
        .unwrap_or_else(|e| panic!("cannot stat out/{rel}: {e}\n{}", ctx(run, root)));
    (meta.ino(), meta.modified().expect("mtime"))
}

/// The mtime of `out/rel`.
fn mtime(run: &Run, root: &Path, rel: &str) -> SystemTime {
    identity(run, root, rel).1
}

/// Whether files in `dir` can carry user extended attributes (ext4 can;
/// some tmpfs and overlay set-ups cannot, and then `-N` falls back to
/// If-Modified-Since only).
fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"x").expect("write xattr probe");
    let ok = xattr::set(&probe, "user.fetchq.test-probe", b"1").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// Unix seconds used as Last-Modified; whole seconds, well in the past.
const LM: u64 = 1_600_000_000;

// ---------------------------------------------------------------------------
// 1. -N / --update
// ---------------------------------------------------------------------------

#[test]
fn update_skips_unchanged_files_and_refetches_only_the_changed_one() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let xattrs = user_xattrs_supported(root);
    let names = ["a.bin", "b.bin", "c.bin"];
    let mut list = String::new();
    for (i, name) in names.iter().enumerate() {
        let lm = http_date(LM + i as u64);
        server.route(
            name,
            Route::ok(pattern(1000 + i, i as u8))
                .etag(&format!("\"{name}-v1\""))
                .last_modified(&lm),
        );
        list.push_str(&server.url(name));
        list.push('\n');
    }
    write_list(root, "list.txt", list);

    // First run: everything is downloaded, with Last-Modified as mtime.
    let first = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&first, root, 0);
    assert_stderr_has(&first, root, "3 downloaded");
    for (i, name) in names.iter().enumerate() {
        assert_out_file(&first, root, name, &pattern(1000 + i, i as u8));
        assert_eq!(
            mtime(&first, root, name),
            UNIX_EPOCH + Duration::from_secs(LM + i as u64),
            "mtime of out/{name} should be the server's Last-Modified ({})\n{}",
            http_date(LM + i as u64),
            ctx(&first, root)
        );
    }
    let before: Vec<_> = names.iter().map(|n| identity(&first, root, n)).collect();

    // Second run: conditional requests, all 304, nothing rewritten.
    let second = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&second, root, 0);
    assert!(
        second.stderr.contains("0 downloaded") && second.stderr.contains("3 unchanged"),
        "second run should report 0 downloaded, 3 unchanged\n{}",
        ctx(&second, root)
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            identity(&second, root, name),
            before[i],
            "out/{name} was rewritten (inode or mtime changed) although the server said 304\n{}",
            ctx(&second, root)
        );
        assert_out_file(&second, root, name, &pattern(1000 + i, i as u8));
        let reqs = server.requests_for(name);
        assert_eq!(
            reqs.len(),
            2,
            "requests for {name}: {reqs:?}\n{}",
            ctx(&second, root)
        );
        let conditional = &reqs[1];
        assert_eq!(
            conditional.header("if-modified-since"),
            Some(http_date(LM + i as u64).as_str()),
            "second request for {name} should carry If-Modified-Since = the file's mtime: {conditional:?}\n{}",
            ctx(&second, root)
        );
        let etag = format!("\"{name}-v1\"");
        if xattrs {
            assert_eq!(
                conditional.header("if-none-match"),
                Some(etag.as_str()),
                "second request for {name} should carry If-None-Match with the stored ETag \
                 (the temp dir supports user xattrs): {conditional:?}\n{}",
                ctx(&second, root)
            );
        } else {
            eprintln!(
                "note: {} has no user xattrs; the ETag part of -N degrades to If-Modified-Since",
                root.display()
            );
        }
    }

    // The server's b.bin changes (new body and ETag). With xattrs, the
    // Last-Modified stays the same so only the ETag can tell; without them
    // it moves forward so If-Modified-Since can tell.
    let new_body = b"b.bin, second version".to_vec();
    let new_lm = if xattrs { LM + 1 } else { LM + 3600 };
    server.route(
        "b.bin",
        Route::ok(new_body.clone())
            .etag("\"b.bin-v2\"")
            .last_modified(&http_date(new_lm)),
    );
    let third = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&third, root, 0);
    assert!(
        third.stderr.contains("1 downloaded") && third.stderr.contains("2 unchanged"),
        "third run should re-fetch only b.bin (xattrs supported: {xattrs})\n{}",
        ctx(&third, root)
    );
    assert_out_file(&third, root, "b.bin", &new_body);
    assert_eq!(
        mtime(&third, root, "b.bin"),
        UNIX_EPOCH + Duration::from_secs(new_lm),
        "mtime of the re-fetched out/b.bin\n{}",
        ctx(&third, root)
    );
    for (i, name) in names.iter().enumerate() {
        if *name == "b.bin" {
            continue;
        }
        assert_eq!(
            identity(&third, root, name),
            before[i],
            "out/{name} was rewritten in the third run\n{}",
            ctx(&third, root)
        );
        assert_out_file(&third, root, name, &pattern(1000 + i, i as u8));
    }
    assert_eq!(
        list_files(&out(root)),
        vec!["a.bin", "b.bin", "c.bin"],
        "no .part or other files may be left\n{}",
        ctx(&third, root)
    );
}

#[test]
fn update_without_etag_uses_if_modified_since() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "lm.txt",
        Route::ok(b"version one".to_vec()).last_modified(&http_date(LM)),
    );
    write_list(root, "list.txt", format!("{}\n", server.url("lm.txt")));

    // A plain download (no -N) also takes Last-Modified as the mtime.
    let first = fetch_in(root, &["-d", "out", "list.txt"]);
    assert_code(&first, root, 0);
    assert_out_file(&first, root, "lm.txt", b"version one");
    assert_eq!(
        mtime(&first, root, "lm.txt"),
        UNIX_EPOCH + Duration::from_secs(LM),
        "mtime should be the server's Last-Modified {}\n{}",
        http_date(LM),
        ctx(&first, root)
    );
    let before = identity(&first, root, "lm.txt");

    let second = fetch_in(root, &["--update", "-d", "out", "list.txt"]);
    assert_code(&second, root, 0);
    assert_stderr_has(&second, root, "1 unchanged");
    assert_eq!(
        identity(&second, root, "lm.txt"),
        before,
        "file rewritten on 304\n{}",
        ctx(&second, root)
    );
    let reqs = server.requests_for("lm.txt");
    assert_eq!(reqs.len(), 2, "{reqs:?}\n{}", ctx(&second, root));
    assert_eq!(
        reqs[1].header("if-modified-since"),
        Some(http_date(LM).as_str()),
        "{:?}\n{}",
        reqs[1],
        ctx(&second, root)
    );
    assert_eq!(
        reqs[1].header("if-none-match"),
        None,
        "no ETag was ever sent, so none may be sent back: {:?}\n{}",
        reqs[1],
        ctx(&second, root)
    );

    // A newer Last-Modified: downloaded again, new mtime.
    server.route(
        "lm.txt",
        Route::ok(b"version two".to_vec()).last_modified(&http_date(LM + 7200)),
    );
    let third = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&third, root, 0);
    assert_stderr_has(&third, root, "1 downloaded");
    assert_out_file(&third, root, "lm.txt", b"version two");
    assert_eq!(
        mtime(&third, root, "lm.txt"),
        UNIX_EPOCH + Duration::from_secs(LM + 7200),
        "{}",
        ctx(&third, root)
    );
}

/// A check that changes nothing writes nothing: for a 304 or an error status no
/// part file is made, so the folder itself is untouched (its mtime would move
/// with any file created or removed in it).
#[test]
fn unchanged_and_failed_entries_leave_the_folder_untouched() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "a.bin",
        Route::ok(pattern(3000, 1))
            .etag("\"a1\"")
            .last_modified(&http_date(LM)),
    );
    server.route("gone.bin", Route::status(404));
    let list = format!("{}\n{}\n", server.url("a.bin"), server.url("gone.bin"));
    write_list(root, "list.txt", list);
    let first = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&first, root, 1);
    assert_out_file(&first, root, "a.bin", &pattern(3000, 1));

    let folder = out(root);
    let then = UNIX_EPOCH + Duration::from_secs(LM);
    fs::File::open(&folder).unwrap().set_modified(then).unwrap();
    let second = fetch_in(root, &["-N", "-d", "out", "list.txt"]);

    assert_code(&second, root, 1);
    assert_stderr_has(&second, root, "0 downloaded, 1 unchanged, 0 skipped, 1 failed");
    let now = fs::metadata(&folder).unwrap().modified().unwrap();
    assert_eq!(
        now,
        then,
        "something was created or removed in out/\n{}",
        ctx(&second, root)
    );
}

/// With `--content-disposition` the name is only known from the response, so
/// `-N` cannot send a conditional request; it compares the response's ETag
/// (or Last-Modified and length) with what the file under that name stored,
/// and leaves a current file alone.
#[test]
fn update_with_content_disposition_leaves_a_current_file_alone() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let route = |body: &[u8], version: u64| {
        Route::ok(body.to_vec())
            .header("Content-Disposition", "attachment; filename=\"report.pdf\"")
            .etag(&format!("\"r-v{version}\""))
            .last_modified(&http_date(LM + version))
    };
    server.route("/get", route(b"first report", 1));
    write_list(root, "list.txt", format!("{}\n", server.url("/get")));
    let args = ["-N", "--content-disposition", "-d", "out", "list.txt"];

    let first = fetch_in(root, &args);
    assert_code(&first, root, 0);
    assert_out_file(&first, root, "report.pdf", b"first report");
    let before = identity(&first, root, "report.pdf");

    let second = fetch_in(root, &args);
    assert_code(&second, root, 0);
    assert_stderr_has(&second, root, "0 downloaded, 1 unchanged");
    assert_eq!(
        identity(&second, root, "report.pdf"),
        before,
        "{}",
        ctx(&second, root)
    );

    server.route("/get", route(b"second report", 2));
    let third = fetch_in(root, &args);
    assert_code(&third, root, 0);
    assert_stderr_has(&third, root, "1 downloaded");
    assert_out_file(&third, root, "report.pdf", b"second report");
    assert_eq!(list_files(&out(root)), ["report.pdf"], "{}", ctx(&third, root));
}

// ---------------------------------------------------------------------------
// 2. --json
// ---------------------------------------------------------------------------

/// Parses every stdout line as a JSON object; panics on anything else.
fn json_lines(run: &Run, root: &Path) -> Vec<Value> {
    assert!(
        run.stdout.ends_with('\n'),
        "stdout should end with a newline\n{}",
        ctx(run, root)
    );
    run.stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line {line:?} is not JSON: {e}\n{}", ctx(run, root)));
            assert!(
                v.is_object(),
                "stdout line {line:?} is not an object\n{}",
                ctx(run, root)
            );
            v
        })
        .collect()
}

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
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(
        root,
        "list.txt",
        serve_all(&server, &[("a.txt", b"A".to_vec()), ("b.txt", b"B".to_vec())]),
    );

    let verbose = fetch_in(root, &["--json", "-v", "-d", "out", "list.txt"]);
    assert_code(&verbose, root, 0);
    let lines = json_lines(&verbose, root);
    assert_eq!(lines.len(), 3, "{}", ctx(&verbose, root));
    assert_eq!(lines[2]["type"], "summary", "{}", ctx(&verbose, root));
    assert_eq!(lines[2]["exit_code"], 0, "{}", ctx(&verbose, root));

    let dry = fetch_in(
        root,
        &["--json", "--dry-run", "--overwrite", "-d", "out", "list.txt"],
    );
    assert_code(&dry, root, 0);
    let lines = json_lines(&dry, root);
    assert_eq!(lines.len(), 3, "{}", ctx(&dry, root));
}

// ---------------------------------------------------------------------------
// 3. -v and --log
// ---------------------------------------------------------------------------

#[test]
fn verbose_prints_a_line_per_entry() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("one.txt", Route::ok(b"1".to_vec()));
    server.route("two.txt", Route::ok(b"2".to_vec()));
    write_out_file(root, "there.txt", b"x");
    let list = format!(
        "{}\n{}\n{}\n{}\n",
        server.url("one.txt"),
        server.url("two.txt"),
        server.url("gone.txt"),
        server.url("there.txt")
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-v", "-d", "out", "list.txt"]);
    assert_code(&run, root, 1);
    for (line, name, word) in [
        (1, "one.txt", "downloaded"),
        (2, "two.txt", "downloaded"),
        (3, "gone.txt", "404"),
        (4, "there.txt", "skipped"),
    ] {
        let prefix = format!("list.txt:{line}:");
        let found = run
            .stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(&server.url(name)) && l.contains(word));
        assert!(
            found,
            "stderr should have a line starting {prefix:?} with {} and {word:?}\n{}",
            server.url(name),
            ctx(&run, root)
        );
    }
}

/// True if `token` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS`, optional
/// fraction, then `Z` or `±HH:MM`.
fn is_rfc3339(token: &str) -> bool {
    let b = token.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| token[r].parse::<u32>().unwrap_or(99);
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape
        || !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &token[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

#[test]
fn rfc3339_checker_works() {
    assert!(is_rfc3339("2024-05-01T12:34:56Z"));
    assert!(is_rfc3339("2024-05-01T12:34:56.123Z"));
    assert!(is_rfc3339("2024-05-01T12:34:56+02:00"));
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
// 4. --per-host
// ---------------------------------------------------------------------------

#[test]
fn per_host_caps_simultaneous_requests_to_one_host() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut list = String::new();
    for i in 0..12 {
        let name = format!("f{i}.bin");
        server.route(
            &name,
            Route::ok(format!("file {i}").into_bytes()).delay(Duration::from_millis(300)),
        );
        list.push_str(&server.url(&name));
        list.push('\n');
    }
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-j", "8", "--per-host", "2", "-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 12, "{}", ctx(&run, root));
    assert_eq!(
        server.max_concurrent_requests(),
        2,
        "-j 8 --per-host 2 against one host: exactly 2 requests at once\n{}",
        ctx(&run, root)
    );
}

#[test]
fn per_host_keeps_workers_busy_on_other_hosts() {
    let a = TestServer::start();
    let b = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // All of host A first, then all of host B: a pool that idles workers at
    // A's limit would not touch B until A's entries were all started.
    let mut list = String::new();
    for (tag, server) in [("a", &a), ("b", &b)] {
        for i in 0..8 {
            let name = format!("{tag}{i}.bin");
            server.route(
                &name,
                Route::ok(name.clone().into_bytes()).delay(Duration::from_millis(300)),
            );
            list.push_str(&server.url(&name));
            list.push('\n');
        }
    }
    write_list(root, "list.txt", list);

    let mut overlap = false;
    let run = std::thread::scope(|s| {
        let handle = s.spawn(|| fetch_in(root, &["-j", "4", "--per-host", "2", "-d", "out", "list.txt"]));
        while !handle.is_finished() {
            // Read B first: the counts only grow, so if B had started and A
            // still had entries not yet requested, both held at the first read.
            let b_started = !b.requests().is_empty();
            let a_pending = a.requests().len() < 8;
            overlap |= b_started && a_pending;
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap()
    });
    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 16, "{}", ctx(&run, root));
    assert_eq!(
        (a.max_concurrent_requests(), b.max_concurrent_requests()),
        (2, 2),
        "-j 4 --per-host 2 over two hosts: each host at most 2, and both used fully\n{}",
        ctx(&run, root)
    );
    assert!(
        overlap,
        "host B was not requested while host A still had entries waiting: workers idled at A's limit\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 5. --limit-rate
// ---------------------------------------------------------------------------

#[test]
fn limit_rate_caps_the_total_rate() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("m{i}.bin"), pattern(1 << 20, 40 + i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_list(root, "list.txt", serve_all(&server, &refs));

    let started = Instant::now();
    let run = fetch_in(root, &["-j", "4", "--limit-rate", "1M", "-d", "out", "list.txt"]);
    let elapsed = started.elapsed();
    assert_code(&run, root, 0);
    for (name, body) in &files {
        assert_out_file(&run, root, name, body);
    }
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed <= Duration::from_secs(15),
        "4 MiB at 1 MiB/s in total should take about 4 s, took {elapsed:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 6. Proxies
// ---------------------------------------------------------------------------

/// A target server with one file and a list for it.
fn proxy_setup(root: &Path) -> TestServer {
    let target = TestServer::start();
    target.route("f.bin", Route::ok(b"direct".to_vec()));
    write_list(root, "list.txt", format!("{}\n", target.url("f.bin")));
    target
}

fn proxy_url(proxy: &TestServer) -> String {
    format!("http://{}", proxy.addr())
}

/// Runs fetchq in `root` with `flags`, then `--retries 0 -d out list.txt`,
/// and the environment variables `env`.
fn fetch_proxied(root: &Path, flags: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = flags.to_vec();
    args.extend(["--retries", "0", "-d", "out", "list.txt"]);
    fetch_in_with_env(root, &args, env)
}

/// Asserts `proxy` was asked for the target (absolute-form `GET
/// http://host:port/f.bin` or a `CONNECT host:port` tunnel) and the target
/// itself was never contacted.
fn assert_went_through(run: &Run, root: &Path, proxy: &TestServer, target: &TestServer) {
    let reqs = proxy.requests();
    let host = target.addr().to_string();
    assert!(
        reqs.iter().any(|r| r.path.contains(&host)),
        "the proxy should have received a request for {host}, got {reqs:?}\n{}",
        ctx(run, root)
    );
    assert_eq!(
        target.requests().len(),
        0,
        "the target must not be contacted directly when a proxy is used\n{}",
        ctx(run, root)
    );
}

/// Asserts the download went straight to the target.
fn assert_direct(run: &Run, root: &Path, proxies: &[&TestServer], target: &TestServer) {
    assert_code(run, root, 0);
    assert_out_file(run, root, "f.bin", b"direct");
    assert_eq!(target.hits("f.bin"), 1, "{}", ctx(run, root));
    for p in proxies {
        assert!(
            p.requests().is_empty(),
            "proxy {} should not be used: {:?}\n{}",
            p.addr(),
            p.requests(),
            ctx(run, root)
        );
    }
}

/// With the environment variable `var` set to a proxy's URL, the download
/// goes through that proxy.
fn assert_env_var_routes_through_a_proxy(var: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(root, &[], &[(var, &proxy_url(&proxy))]);
    assert_went_through(&run, root, &proxy, &target);
}

#[test]
fn http_proxy_env_routes_through_the_proxy() {
    assert_env_var_routes_through_a_proxy("http_proxy");
}

#[test]
fn upper_case_http_proxy_env_works() {
    assert_env_var_routes_through_a_proxy("HTTP_PROXY");
}

#[test]
fn no_proxy_env_connects_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(
        root,
        &[],
        &[("http_proxy", &proxy_url(&proxy)), ("no_proxy", "127.0.0.1")],
    );
    assert_direct(&run, root, &[&proxy], &target);
}

#[test]
fn no_proxy_flag_ignores_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(
        root,
        &["--no-proxy"],
        &[
            ("http_proxy", &proxy_url(&proxy)),
            ("HTTP_PROXY", &proxy_url(&proxy)),
            ("all_proxy", &proxy_url(&proxy)),
        ],
    );
    assert_direct(&run, root, &[&proxy], &target);
}

#[test]
fn proxy_flag_overrides_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let chosen = TestServer::start();
    let from_env = TestServer::start();
    let run = fetch_proxied(
        root,
        &["--proxy", &proxy_url(&chosen)],
        &[("http_proxy", &proxy_url(&from_env)), ("no_proxy", "127.0.0.1")],
    );
    assert_went_through(&run, root, &chosen, &target);
    assert!(
        from_env.requests().is_empty(),
        "the environment's proxy must not be used with --proxy\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 7. Custom headers and user agent
// ---------------------------------------------------------------------------

#[test]
fn custom_headers_and_user_agent_on_every_request() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("flaky.bin", Route::ok(b"flaky".to_vec()).fail_times(1, 503));
    server.route("moved.bin", Route::redirect(302, "/dest.bin"));
    server.route("dest.bin", Route::ok(b"dest".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("flaky.bin"), server.url("moved.bin")),
    );

    let run = fetch_in(
        root,
        &[
            "-H",
            "X-Token: abc",
            "-A",
            "agent/1",
            "--retry-wait",
            "0",
            "-d",
            "out",
            "list.txt",
        ],
    );
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "flaky.bin", b"flaky");
    assert_out_file(&run, root, "moved.bin", b"dest");
    assert_eq!(server.hits("flaky.bin"), 2, "one retry\n{}", ctx(&run, root));
    assert_eq!(server.hits("dest.bin"), 1, "{}", ctx(&run, root));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4, "{reqs:?}\n{}", ctx(&run, root));
    for r in &reqs {
        assert_eq!(
            (r.header("x-token"), r.header("user-agent")),
            (Some("abc"), Some("agent/1")),
            "request {} {} lacks the custom header or agent: {r:?}\n{}",
            r.method,
            r.path,
            ctx(&run, root)
        );
        assert_eq!(
            r.headers.iter().filter(|(n, _)| n == "user-agent").count(),
            1,
            "exactly one User-Agent: {r:?}\n{}",
            ctx(&run, root)
        );
    }
}

#[test]
fn default_user_agent_is_fetchq_version() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(root, "list.txt", serve_all(&server, &[("ua.txt", b"x".to_vec())]));
    let run = fetch_in(root, &["-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    let want = format!("fetchq/{}", env!("CARGO_PKG_VERSION"));
    let reqs = server.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.header("user-agent") == Some(want.as_str())),
        "User-Agent should be {want:?}: {reqs:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 8. -i several times
// ---------------------------------------------------------------------------

/// Three lists whose entries all want `x.bin`: collisions are numbered in
/// reading order, so the names prove the order the lists were read.
#[test]
fn input_file_option_repeated_is_read_in_order() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for dir in ["first", "second", "third"] {
        server.route(&format!("/{dir}/x.bin"), Route::ok(dir.as_bytes().to_vec()));
        write_list(
            root,
            &format!("{dir}.txt"),
            format!("{}\n", server.url(&format!("/{dir}/x.bin"))),
        );
    }
    let run = fetch_in(
        root,
        &[
            "-d",
            "out",
            "-i",
            "first.txt",
            "-i",
            "second.txt",
            "--input-file",
            "third.txt",
        ],
    );
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "x.bin", b"first");
    assert_out_file(&run, root, "x-1.bin", b"second");
    assert_out_file(&run, root, "x-2.bin", b"third");
    assert_eq!(list_files(&out(root)).len(), 3, "{}", ctx(&run, root));
}

// ---------------------------------------------------------------------------
// 9. completions and man
// ---------------------------------------------------------------------------

#[test]
fn completions_for_every_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = fetch_in(root, &["completions", shell]);
        assert_code(&run, root, 0);
        assert!(
            run.stdout.len() > 100 && run.stdout.contains("fetchq"),
            "{shell} completion script should be non-empty and mention fetchq\n{}",
            ctx(&run, root)
        );
        assert!(
            run.stdout.contains("--per-host") || run.stdout.contains("per-host"),
            "{shell} completion should know the options\n{}",
            ctx(&run, root)
        );
    }
    assert!(
        list_files(root).is_empty(),
        "completions must not write files\n{:?}",
        list_files(root)
    );
}

#[test]
fn man_page_is_roff() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = fetch_in(root, &["man"]);
    assert_code(&run, root, 0);
    assert!(
        run.stdout.starts_with(".TH") || run.stdout.contains("\n.SH"),
        "man should print roff\n{}",
        ctx(&run, root)
    );
    assert!(
        run.stdout.contains("fetchq"),
        "man page should name fetchq\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 10. grouped help
// ---------------------------------------------------------------------------

#[test]
fn help_is_grouped_and_short_help_is_shorter() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let long = fetch_in(root, &["--help"]);
    assert_code(&long, root, 0);
    let short = fetch_in(root, &["-h"]);
    assert_code(&short, root, 0);
    for heading in ["Input:", "Output:", "Network:", "Behaviour:", "Output format:"] {
        for (which, run) in [("--help", &long), ("-h", &short)] {
            assert!(
                run.stdout.lines().any(|l| l.trim_end() == heading),
                "{which} should have a heading line {heading:?}\n{}",
                ctx(run, root)
            );
        }
    }
    assert!(
        short.stdout.len() < long.stdout.len(),
        "-h ({} bytes) should be shorter than --help ({} bytes)\n{}\n{}",
        short.stdout.len(),
        long.stdout.len(),
        short,
        long
    );
}

// ---------------------------------------------------------------------------
// 11. --dry-run
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
// 12. No colour
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

// ---------------------------------------------------------------------------
// 13. Exit codes for cron
// ---------------------------------------------------------------------------

#[test]
fn cron_all_ok_is_silent_and_exits_0() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(
        root,
        "list.txt",
        serve_all(&server, &[("a.txt", b"a".to_vec()), ("b.txt", b"b".to_vec())]),
    );
    let run = fetch_in(root, &["-q", "-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    assert!(
        run.stdout.is_empty() && run.stderr.is_empty(),
        "-q with everything fine must print nothing\n{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "a.txt", b"a");
}

#[test]
fn cron_one_404_exits_1() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("a.txt", Route::ok(b"a".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("a.txt"), server.url("nothing-here.txt")),
    );
    let quiet = fetch_in(root, &["-q", "-d", "out", "list.txt"]);
    assert_code(&quiet, root, 1);
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.contains("nothing-here.txt"),
        "-q prints the failure on stderr only\n{}",
        ctx(&quiet, root)
    );
    assert_out_file(&quiet, root, "a.txt", b"a");
    let plain = fetch_in(root, &["--overwrite", "-d", "out", "list.txt"]);
    assert_code(&plain, root, 1);
}

/// A server clock ahead of ours (or a hostile server) must not push a file's
/// mtime into the future: `-N` sends that mtime as If-Modified-Since, and a
/// date years ahead would hide every later change of the file.
#[test]
fn a_last_modified_in_the_future_is_applied_as_now() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let future = now() + 10 * 365 * 86_400;
    server.route(
        "ahead.txt",
        Route::ok(b"from the future".to_vec()).last_modified(&http_date(future)),
    );
    write_list(root, "list.txt", format!("{}\n", server.url("ahead.txt")));

    let first = fetch_in(root, &["-d", "out", "list.txt"]);
    assert_code(&first, root, 0);
    assert_out_file(&first, root, "ahead.txt", b"from the future");
    let after = SystemTime::now();
    let mtime = mtime(&first, root, "ahead.txt");
    assert!(
        mtime <= after,
        "mtime {mtime:?} is in the future (now {after:?})\n{}",
        ctx(&first, root)
    );

    let second = fetch_in(root, &["-N", "-d", "out", "list.txt"]);
    assert_code(&second, root, 0);
    let reqs = server.requests_for("ahead.txt");
    let since = reqs
        .last()
        .and_then(|r| r.header("if-modified-since"))
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(|| panic!("-N sends If-Modified-Since: {reqs:?}\n{}", ctx(&second, root)));
    assert!(
        since <= SystemTime::now(),
        "If-Modified-Since {since:?} is in the future\n{}",
        ctx(&second, root)
    );
}
