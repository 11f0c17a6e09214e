//! Getting the bytes right when the server fails: which errors are retried
//! and how often, `Retry-After`, resuming within a run with `Range` and
//! `If-Range`, a representation that changes between attempts, bodies shorter
//! than announced, `--sha256` and `--sync`.

use std::time::Instant;

use crate::support::*;

// ---------------------------------------------------------------------------
// HTTP errors
// ---------------------------------------------------------------------------

#[test]
fn not_found_fails_the_entry_and_saves_nothing() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/ok.txt", Route::ok(b"fine".to_vec()));
    // /missing.bin is not routed: the server answers 404 with an error page.
    let list = format!("{}\n{}\n", server.url("/ok.txt"), server.url("/missing.bin"));
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    let line = stderr_line(&run, root, "list.txt:2:");
    assert!(
        line.contains(&server.url("/missing.bin")) && line.contains("HTTP 404 Not Found"),
        "failure line should name the URL and the status: {line:?}\n{}",
        ctx(&run, root)
    );
    assert_eq!(
        server.hits("/missing.bin"),
        1,
        "404 is not worth a retry\n{}",
        ctx(&run, root)
    );
    assert_eq!(
        list_files(&out(root)),
        vec!["ok.txt"],
        "no file and no .part for the 404\n{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "ok.txt", b"fine");
    assert!(
        last_stderr_line(&run).contains("1 failed"),
        "summary\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

#[test]
fn transient_503_is_retried_until_it_succeeds() {
    let t = Setup::new();
    let body = pattern(20_000, 1);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()).fail_times(2, 503))]);

    let run = t.run(&["--retries", "3"]);

    run.assert_downloaded_alone("out/f.bin", &body);
    t.assert_hits(&run, "/f.bin", 3);
}

#[test]
fn retries_are_bounded_and_the_failure_says_how_many_attempts() {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", Route::ok(b"never".to_vec()).fail_times(5, 503))]);

    let run = t.run(&["--retries", "2"]);

    run.assert_code(1).assert_files(&["list.txt"]);
    t.assert_hits(&run, "/f.bin", 3);
    let line = run.stderr_line("list.txt:1:");
    assert!(
        line.contains("503") && line.contains("after 3 attempts"),
        "failure line should name the status and the attempts: {line:?}\n{}",
        run.ctx()
    );
}

#[test]
fn not_found_is_not_retried() {
    let t = Setup::new();
    t.list(&[t.server.url("/missing.bin")]);

    let run = t.run(&["--retries", "3"]);

    run.assert_code(1)
        .assert_stderr_has("404")
        .assert_files(&["list.txt"]);
    t.assert_hits(&run, "/missing.bin", 1);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let t = Setup::new();
    let body = pattern(1000, 2);
    let route = Route::ok(body.clone()).fail_times(1, 429).retry_after("1");
    t.list(&[t.serve("/f.bin", route)]);

    // The jittered backoff alone would wait at most 0.05 s.
    let run = t.run(&["-v", "--retries", "2"]);

    run.assert_code(0).assert_out_file("f.bin", &body);
    t.assert_hits(&run, "/f.bin", 2);
    let line = run.stderr_line("attempt 1 failed");
    assert!(
        line.contains("429") && line.contains("retrying in 1.0 s"),
        "the wait should be the server's Retry-After: {line:?}\n{}",
        run.ctx()
    );
}

#[test]
fn request_timeout_408_is_retried() {
    let t = Setup::new();
    let body = pattern(1000, 3);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()).fail_times(1, 408))]);

    let run = t.run(&["--retries", "2"]);

    run.assert_code(0).assert_out_file("f.bin", &body);
    t.assert_hits(&run, "/f.bin", 2);
}

// ---------------------------------------------------------------------------
// Resume within a run
// ---------------------------------------------------------------------------

#[test]
fn reset_mid_body_resumes_with_range_and_if_range() {
    let t = Setup::new();
    let body = pattern(100_000, 4);
    let cut = 30_000;
    let cut_once = Route::ok(body.clone()).etag("\"v1\"").reset_after(cut);
    t.list(&[t.serve(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .fail_times_with(1, cut_once),
    )]);

    let run = t.run(&["-v", "--retries", "2"]);

    run.assert_downloaded_alone("out/f.bin", &body)
        .assert_stderr_has(&format!("continuing from byte {cut}"));
    t.assert_hits(&run, "/f.bin", 2);
    t.assert_sent_header(&run, "/f.bin", 0, "range", None);
    t.assert_sent_header(&run, "/f.bin", 1, "range", Some(&format!("bytes={cut}-")));
    t.assert_sent_header(&run, "/f.bin", 1, "if-range", Some("\"v1\""));
}

#[test]
fn resume_uses_last_modified_as_if_range_without_etag() {
    let t = Setup::new();
    let body = pattern(50_000, 5);
    let date = http_date(1_600_000_000);
    let cut_once = Route::ok(body.clone()).last_modified(&date).reset_after(10_000);
    t.list(&[t.serve(
        "/f.bin",
        Route::ok(body.clone())
            .last_modified(&date)
            .fail_times_with(1, cut_once),
    )]);

    let run = t.run(&["--retries", "2"]);

    run.assert_code(0).assert_out_file("f.bin", &body);
    t.assert_sent_header(&run, "/f.bin", 1, "range", Some("bytes=10000-"));
    t.assert_sent_header(&run, "/f.bin", 1, "if-range", Some(&date));
}

#[test]
fn server_ignoring_range_after_a_reset_restarts_from_zero() {
    let t = Setup::new();
    let body = pattern(80_000, 6);
    // With an ETag, so the retry asks for the rest (without a validator it
    // would start over by itself).
    let cut_once = Route::ok(body.clone())
        .etag("\"v1\"")
        .ignore_range()
        .reset_after(25_000);
    t.list(&[t.serve(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .ignore_range()
            .fail_times_with(1, cut_once),
    )]);

    let run = t.run(&["--retries", "2"]);

    // A splice would be 25 000 bytes too long.
    run.assert_downloaded_alone("out/f.bin", &body);
    t.assert_sent_header(&run, "/f.bin", 1, "range", Some("bytes=25000-"));
}

/// A 206 whose Content-Range starts somewhere else than asked must never be
/// appended; the module doc of fetch.rs promises "anything unexpected
/// restarts from byte 0", so the entry must still end up correct.
#[test]
fn partial_content_at_the_wrong_offset_starts_over() {
    let t = Setup::new();
    let body = pattern(60_000, 7);
    let cut = 20_000;
    let rest = body.len() - cut;
    // The honest 206 carries body[cut..]; the forged header claims it starts at 0.
    let forged = format!("bytes 0-{}/{}", rest - 1, body.len());
    let cut_once = Route::ok(body.clone()).etag("\"v1\"").reset_after(cut);
    let route = Route::ok(body.clone())
        .etag("\"v1\"")
        .header("Content-Range", &forged)
        .fail_times_with(1, cut_once);
    t.list(&[t.serve("/f.bin", route)]);

    t.run(&["-v", "--retries", "3"])
        .assert_no_panic()
        .assert_downloaded_alone("out/f.bin", &body);
}

// ---------------------------------------------------------------------------
// The representation changes between attempts
// ---------------------------------------------------------------------------

#[test]
fn etag_change_between_attempts_gives_exactly_the_new_version() {
    let t = Setup::new();
    let v1 = pattern(90_000, 8);
    let v2 = pattern(70_000, 9);
    let v1_cut = Route::ok(v1).etag("\"v1\"").reset_after(40_000);
    t.list(&[t.serve(
        "/f.bin",
        Route::ok(v2.clone()).etag("\"v2\"").fail_times_with(1, v1_cut),
    )]);

    let run = t.run(&["--retries", "2"]);

    run.assert_downloaded_alone("out/f.bin", &v2);
    t.assert_sent_header(&run, "/f.bin", 1, "if-range", Some("\"v1\""));
}

// ---------------------------------------------------------------------------
// Integrity
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

/// Disk blocks are reserved a little ahead of the writes, never for all of
/// an announced length at once: a server that announces 512 MiB and sends
/// 2 MiB and a bit leaves a part of exactly what it sent (the bytes past the
/// last 64 KiB boundary, held while more was expected, included) with at
/// most the reservation window (32 MiB) allocated past its end.
#[test]
fn a_length_announced_and_not_sent_reserves_little_disk() {
    use std::os::unix::fs::MetadataExt;
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern((2 << 20) + 12_345, 18);
    server.route("/f.bin", Route::ok(body.clone()).lie_length(512 << 20));
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "0"]);

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert_absent(&run, root, "out/f.bin");
    let part = out(root).join("f.bin.part");
    let kept =
        std::fs::read(&part).unwrap_or_else(|e| panic!("no part kept for -c: {e}\n{}", ctx(&run, root)));
    assert!(
        kept == body,
        "the part holds {} bytes, not the {} sent",
        kept.len(),
        body.len()
    );
    let allocated = std::fs::metadata(&part).unwrap().blocks() * 512;
    assert!(
        allocated <= (2 << 20) + (33 << 20),
        "{allocated} bytes allocated for a 2 MiB part\n{}",
        ctx(&run, root)
    );
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
// Retry-After
// ---------------------------------------------------------------------------

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
    let run = fetch(root, &["-v", "--retries", "2", "--retry-wait-max", "0.2"]);
    let took = start.elapsed();

    assert_no_panic(&run, root);
    assert_code(&run, root, 0);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    assert_file(&run, root, "out/a.bin", &body);
    assert_file(&run, root, "out/b.bin", &body);
    // No wait is longer than --retry-wait-max, and each of these huge values
    // is capped to it exactly (one too large for u64 included).
    for name in ["a.bin", "b.bin"] {
        let line = stderr_line(&run, root, &format!("{name}: attempt 1 failed"));
        let wait: f64 = line
            .rsplit_once("retrying in ")
            .and_then(|(_, s)| s.strip_suffix(" s")?.parse().ok())
            .unwrap_or_else(|| panic!("no wait in {line:?}\n{}", ctx(&run, root)));
        assert!(wait <= 0.2, "waited {wait} s: {line:?}\n{}", ctx(&run, root));
    }
    for name in ["a.bin", "b.bin"] {
        let line = stderr_line(&run, root, &format!("{name}: attempt 1 failed"));
        assert!(
            line.ends_with("retrying in 0.2 s"),
            "{line:?}\n{}",
            ctx(&run, root)
        );
    }
}

// ---------------------------------------------------------------------------
// Durability
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
