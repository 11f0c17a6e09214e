//! Options for runs nobody watches: `--max-filesize` caps what an entry may
//! write, `--retry-on-http-error` retries statuses a server uses for
//! throttling, and `--save-failed` writes what did not finish back as a list
//! for the next run.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

// ---------------------------------------------------------------------------
// --max-filesize
// ---------------------------------------------------------------------------

/// A body without a Content-Length (closed connection or chunked) that
/// streams past the cap fails as `too_large` on its first attempt and leaves
/// neither file nor part.
#[test]
fn max_filesize_stops_a_body_of_unknown_length_that_passes_it() {
    for (label, route) in [
        ("no length", Route::ok(pattern(300_000, 1)).no_length()),
        ("chunked", Route::ok(pattern(300_000, 2)).chunked()),
    ] {
        let t = Setup::new();
        t.list(&[t.serve("/big.bin", route)]);
        let run = t.run(&["--max-filesize", "100K", "--json"]);
        run.assert_code(1).assert_no_part().assert_files(&["list.txt"]);
        assert!(
            run.stdout.contains(r#""error_kind":"too_large""#),
            "{label}\n{}",
            run.ctx()
        );
        run.assert_stderr_has("larger than --max-filesize (102400 bytes)");
        t.assert_hits(&run, "/big.bin", 1);
    }
}

/// An honest Content-Length over the cap is refused from the headers: the
/// body is never read (here it never comes, and the run still ends at once)
/// and nothing is created.
#[test]
fn max_filesize_refuses_an_announced_length_before_the_body() {
    let t = Setup::new();
    let small = pattern(50_000, 3);
    t.list(&[
        t.serve("/big.bin", Route::ok(pattern(2 * 1024 * 1024, 4)).stall_after(0)),
        t.serve("/small.bin", Route::ok(small.clone())),
    ]);
    let started = Instant::now();
    let run = t.run(&["--max-filesize", "1M", "--timeout", "20", "-v"]);
    let took = started.elapsed();
    run.assert_code(1)
        .assert_no_part()
        .assert_files(&["list.txt", "out/small.bin"])
        .assert_out_file("small.bin", &small)
        .assert_stderr_has("larger than --max-filesize (1048576 bytes)");
    assert!(took < Duration::from_secs(15), "took {took:?}\n{}", run.ctx());
    t.assert_hits(&run, "/big.bin", 1);
}

// ---------------------------------------------------------------------------
// --retry-on-http-error
// ---------------------------------------------------------------------------

/// A 403 fails at once by default; with `--retry-on-http-error` it is
/// retried like a 503, waiting for the server's Retry-After, and the second
/// attempt saves the file.
#[test]
fn retry_on_http_error_makes_a_status_transient() {
    let body = pattern(20_000, 5);
    let route = || Route::ok(body.clone()).fail_times(1, 403).retry_after("1");

    let t = Setup::new();
    t.list(&[t.serve("/cdn.bin", route())]);
    let run = t.run(&[]);
    run.assert_code(1)
        .assert_stderr_has("HTTP 403 Forbidden")
        .assert_no_part();
    t.assert_hits(&run, "/cdn.bin", 1);

    let t = Setup::new();
    t.list(&[t.serve("/cdn.bin", route())]);
    let started = Instant::now();
    let run = t.run(&["--retry-on-http-error", "404,403", "-v"]);
    let took = started.elapsed();
    run.assert_code(0)
        .assert_out_file("cdn.bin", &body)
        .assert_no_part();
    t.assert_hits(&run, "/cdn.bin", 2);
    assert!(
        took >= Duration::from_millis(900),
        "Retry-After: 1 not honoured: {took:?}\n{}",
        run.ctx()
    );
}

/// Only error statuses can be named.
#[test]
fn retry_on_http_error_takes_only_error_statuses() {
    let t = Setup::new();
    t.list(&[t.serve("/a.bin", Route::ok(b"a".to_vec()))]);
    t.run(&["--retry-on-http-error", "403,200"])
        .assert_code(2)
        .assert_stderr_has("--retry-on-http-error");
    t.run(&["--retry-on-http-error", "403,nope"]).assert_code(2);
}

// ---------------------------------------------------------------------------
// --save-failed
// ---------------------------------------------------------------------------

/// The lines of `root/name`.
fn saved_lines(root: &Path, name: &str) -> Vec<String> {
    let text = fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    text.lines().map(str::to_string).collect()
}

/// A 404, a good file, a second `data.bin` that fails and a slow file cut by
/// SIGTERM: the saved list holds the three unfinished entries, in list order, with the names
/// they had (the second `data.bin` keeps `data-1.bin`, though it is the only
/// one in the new list), and `-c` over it finishes them and empties it.
#[test]
fn save_failed_writes_a_list_that_finishes_the_run() {
    let t = Setup::new();
    let logs = tempfile::tempdir().unwrap();
    let slow = pattern(100_000, 6);
    let (good, first, second, missing) = (
        pattern(3_000, 7),
        pattern(4_000, 8),
        pattern(5_000, 9),
        pattern(6_000, 10),
    );
    let url = |path: &str| t.server.url(path);
    t.serve("/good.bin", Route::ok(good.clone()));
    t.serve("/a/data.bin", Route::ok(first.clone()));
    t.serve("/b/data.bin", Route::status(404));
    t.serve("/missing.bin", Route::status(404));
    t.serve(
        "/slow.bin",
        Route::ok(slow.clone())
            .etag("\"slow\"")
            .drip(500, Duration::from_millis(100)),
    );
    t.list(&[
        url("/missing.bin"),
        url("/good.bin"),
        url("/a/data.bin"),
        url("/b/data.bin"),
        url("/slow.bin"),
    ]);

    let mut running = Running::start(t.root(), logs.path(), &["--save-failed", "retry.txt"]);
    wait_for_bytes(&t.out().join("slow.bin.part"), &running, t.root());
    wait_for(Duration::from_secs(10), "the quick entries to finish", || {
        t.out().join("good.bin").exists() && t.out().join("data.bin").exists()
    });
    wait_for(Duration::from_secs(10), "the 404s to be answered", || {
        t.server.hits("/missing.bin") == 1 && t.server.hits("/b/data.bin") == 1
    });
    running.signal("-TERM");
    let (code, _) = running.wait(Duration::from_secs(10), t.root());
    assert_eq!(code, 143, "{}", running.output());
    assert_eq!(
        saved_lines(t.root(), "retry.txt"),
        [
            format!("{} missing.bin", url("/missing.bin")),
            format!("{} data-1.bin", url("/b/data.bin")),
            format!("{} slow.bin", url("/slow.bin")),
        ],
        "{}",
        running.output()
    );

    t.serve("/b/data.bin", Route::ok(second.clone()));
    t.serve("/missing.bin", Route::ok(missing.clone()));
    t.serve("/slow.bin", Route::ok(slow.clone()).etag("\"slow\""));
    let run = fetch_in(
        t.root(),
        &["-d", "out", "-c", "--save-failed", "retry.txt", "retry.txt"],
    );
    run.assert_code(0)
        .assert_no_part()
        .assert_out_file("good.bin", &good)
        .assert_out_file("data.bin", &first)
        .assert_out_file("data-1.bin", &second)
        .assert_out_file("missing.bin", &missing)
        .assert_out_file("slow.bin", &slow)
        .assert_file("retry.txt", b"");
    assert!(
        t.request(&run, "/slow.bin", 1).header("range").is_some(),
        "-c continues the interrupted part\n{}",
        run.ctx()
    );
}

/// The saved line keeps the entry's `sha256=` and a quoted name; a name from
/// `--content-disposition` is not pinned, so the server names it again; an
/// invalid line is not written; a run where nothing failed leaves an empty
/// file, replacing the old one.
#[test]
fn save_failed_keeps_checksums_and_leaves_out_what_cannot_succeed() {
    let t = Setup::new();
    let body = pattern(2_000, 11);
    let sum = sha256_hex(&body);
    let a = t.serve("/a.bin", Route::status(404));
    let b = t.serve("/b.bin", Route::status(404));
    t.list(&[
        format!("{a} \"#1.bin\" sha256={sum}"),
        b.clone(),
        "ftp://example.com/no.bin".to_string(),
    ]);
    let run = t.run(&["--content-disposition", "--save-failed", "failed.txt"]);
    run.assert_code(1).assert_stderr_has("unsupported scheme");
    assert_eq!(
        saved_lines(t.root(), "failed.txt"),
        [format!("{a} \"#1.bin\" sha256={sum}"), b.clone()],
        "{}",
        run.ctx()
    );

    t.serve("/a.bin", Route::ok(body.clone()));
    t.serve(
        "/b.bin",
        Route::ok(b"b".to_vec()).header("Content-Disposition", "attachment; filename=\"named.bin\""),
    );
    let run = fetch_in(
        t.root(),
        &[
            "-d",
            "out",
            "--content-disposition",
            "--save-failed",
            "failed.txt",
            "failed.txt",
        ],
    );
    run.assert_code(0)
        .assert_out_file("#1.bin", &body)
        .assert_out_file("named.bin", b"b")
        .assert_file("failed.txt", b"");
    let leftovers: Vec<String> = t.files().into_iter().filter(|f| f.contains(".tmp")).collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left: {leftovers:?}\n{}",
        run.ctx()
    );
}

/// Entries a Ctrl-C kept from starting are not in the list: with one
/// worker busy on a slow file, the entry after it never starts.
#[test]
fn save_failed_leaves_out_entries_never_started() {
    let t = Setup::new();
    let logs = tempfile::tempdir().unwrap();
    let slow = t.serve(
        "/slow.bin",
        Route::ok(pattern(100_000, 12))
            .etag("\"s\"")
            .drip(500, Duration::from_millis(100)),
    );
    let later = t.serve("/later.bin", Route::ok(b"later".to_vec()));
    t.list(&[slow.clone(), later]);
    let mut running = Running::start(t.root(), logs.path(), &["-j", "1", "--save-failed", "retry.txt"]);
    wait_for_bytes(&t.out().join("slow.bin.part"), &running, t.root());
    running.signal("-INT");
    let (code, _) = running.wait(Duration::from_secs(10), t.root());
    assert_eq!(code, 130, "{}", running.output());
    assert!(
        running.output().contains("1 queued but not started"),
        "{}",
        running.output()
    );
    assert_eq!(
        saved_lines(t.root(), "retry.txt"),
        [format!("{slow} slow.bin")],
        "{}",
        running.output()
    );
}
