//! Options for runs nobody watches: `--max-filesize` caps what an entry may
//! write, `--retry-on-http-error` retries statuses a server uses for
//! throttling, and `--save-failed` writes what did not finish back as a list
//! for the next run.

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
