//! `--split`: one big file over several connections, each piece asked for
//! with `Range` and `If-Range` by a worker that would otherwise idle, and
//! written in place. The server throttles every response (`drip`), as a
//! mirror that caps each connection does, so pieces overlap in time.

use std::fs;
use std::time::Duration;

use crate::support::*;

/// 6 MiB: above the smallest split (`--split-min 2M` in these tests).
const SIZE: usize = 6 * 1024 * 1024;

/// A throttled, range-serving route with a strong ETag: about 3 MiB/s per
/// connection, so one stream takes 2 s and four take about half a second.
fn throttled(body: &[u8], etag: &str) -> Route {
    Route::ok(body.to_vec())
        .etag(etag)
        .drip(32 * 1024, Duration::from_millis(10))
}

/// Like [`throttled`], about 1 MiB/s per connection: a download still
/// running when a test signals it or feeds it more input.
fn slow(body: &[u8]) -> Route {
    Route::ok(body.to_vec())
        .etag("\"v1\"")
        .drip(16 * 1024, Duration::from_millis(15))
}

/// fetchq `-j 4 -s 4 --split-min 2M` over `list.txt`, in the background,
/// its output in `logs/`.
fn start_split(t: &Setup) -> Running {
    let logs = t.root().join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    Running::start(t.root(), &logs, &["-j", "4", "-s", "4", "--split-min", "2M"])
}

/// The requests for `path` that asked for a range.
fn ranged(t: &Setup, path: &str) -> Vec<RecordedRequest> {
    t.server
        .requests_for(path)
        .into_iter()
        .filter(|r| r.header("range").is_some())
        .collect()
}

/// Body bytes the server wrote for `path`, over every response.
fn served(t: &Setup, path: &str) -> u64 {
    t.server.responses_for(path).iter().map(|r| r.body_bytes).sum()
}

#[test]
fn a_big_file_is_fetched_over_several_connections_and_is_whole() {
    let t = Setup::new();
    let body = pattern(SIZE, 7);
    t.list(&[t.serve("/big.bin", throttled(&body, "\"v1\""))]);
    t.run(&["-j", "4", "-s", "4", "--split-min", "2M"])
        .assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    let pieces = ranged(&t, "/big.bin");
    assert!(
        pieces.len() >= 2,
        "pieces asked for: {}",
        requests_text(&t.server)
    );
    for piece in &pieces {
        assert_eq!(
            piece.header("if-range"),
            Some("\"v1\""),
            "{}",
            requests_text(&t.server)
        );
        let range = piece.header("range").unwrap_or_default();
        assert!(
            range.starts_with("bytes=") && !range.ends_with('-'),
            "a piece asks for a bounded range: {range}"
        );
    }
    assert!(
        t.server.max_concurrent_requests() >= 2,
        "pieces overlapped: {}",
        requests_text(&t.server)
    );
    // Nothing fetched twice beyond what a closed connection had in flight.
    assert!(
        served(&t, "/big.bin") < (SIZE + SIZE / 2) as u64,
        "served {} bytes for {SIZE}",
        served(&t, "/big.bin")
    );
}

#[test]
fn split_one_and_small_files_use_one_connection() {
    let t = Setup::new();
    let body = pattern(SIZE, 1);
    t.list(&[t.serve("/big.bin", throttled(&body, "\"v1\""))]);
    t.run(&["-j", "4", "-s", "1", "--split-min", "2M"])
        .assert_code(0)
        .assert_out_file("big.bin", &body);
    t.assert_hits(&t.run(&[]), "/big.bin", 1);
    // Below --split-min: one request.
    let small = Setup::new();
    small.list(&[small.serve("/small.bin", throttled(&body, "\"v1\""))]);
    let run = small.run(&["-j", "4", "-s", "4"]);
    run.assert_code(0).assert_out_file("small.bin", &body);
    small.assert_hits(&run, "/small.bin", 1);
}

#[test]
fn a_server_that_ignores_range_gets_one_stream() {
    let t = Setup::new();
    let body = pattern(SIZE, 2);
    t.list(&[t.serve(
        "/big.bin",
        Route::ok(body.clone())
            .ignore_range()
            .etag("\"v1\"")
            .drip(64 * 1024, Duration::from_millis(5)),
    )]);
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    t.assert_hits(&run, "/big.bin", 1);
}

#[test]
fn a_file_without_a_validator_is_not_split() {
    // No ETag and no Last-Modified: nothing would tell pieces of two versions apart.
    let t = Setup::new();
    let body = pattern(SIZE, 3);
    t.list(&[t.serve(
        "/big.bin",
        Route::ok(body.clone()).drip(64 * 1024, Duration::from_millis(5)),
    )]);
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M"]);
    run.assert_code(0).assert_out_file("big.bin", &body);
    t.assert_hits(&run, "/big.bin", 1);
}

#[test]
fn a_new_version_mid_download_starts_the_file_over_without_splicing() {
    let t = Setup::new();
    let v1 = pattern(SIZE, 4);
    let v2 = pattern(SIZE, 5);
    // The first request streams v1; by the time pieces are asked for (with
    // If-Range "v1") the server holds v2, and answers them with all of it.
    t.list(&[t.serve(
        "/big.bin",
        throttled(&v2, "\"v2\"").fail_times_with(1, throttled(&v1, "\"v1\"")),
    )]);
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M", "-v"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &v2)
        .assert_no_part();
    run.assert_stderr_has("the server sent the whole file to a range request");
}

#[test]
fn a_piece_cut_mid_body_is_fetched_again_not_the_whole_file() {
    let t = Setup::new();
    let body = pattern(SIZE, 6);
    // The first two range answers break after 100 KiB.
    t.list(&[t.serve("/big.bin", throttled(&body, "\"v1\"").reset_ranges(100 * 1024, 2))]);
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    let whole = t
        .server
        .requests_for("/big.bin")
        .iter()
        .filter(|r| r.header("range").is_none())
        .count();
    assert_eq!(whole, 1, "one whole-file request: {}", requests_text(&t.server));
    assert!(
        served(&t, "/big.bin") < (SIZE + SIZE / 2) as u64,
        "served {} bytes for {SIZE}: {}",
        served(&t, "/big.bin"),
        requests_text(&t.server)
    );
}

#[test]
fn per_host_counts_every_piece_connection() {
    let t = Setup::new();
    let body = pattern(SIZE, 8);
    t.list(&[t.serve("/big.bin", throttled(&body, "\"v1\""))]);
    let run = t.run(&["-j", "8", "-s", "8", "--per-host", "2", "--split-min", "2M"]);
    run.assert_code(0).assert_out_file("big.bin", &body);
    assert!(
        t.server.max_concurrent_connections() <= 2,
        "at most 2 connections: {}",
        t.server.max_concurrent_connections()
    );
    assert!(!ranged(&t, "/big.bin").is_empty(), "it still split in two");
}

#[test]
fn a_split_file_is_checked_against_its_sha256() {
    let t = Setup::new();
    let body = pattern(SIZE, 9);
    let url = t.serve("/big.bin", throttled(&body, "\"v1\""));
    let bad = t.serve("/bad.bin", throttled(&body, "\"v1\""));
    t.list(&[
        format!("{url} sha256={}", sha256_hex(&body)),
        format!("{bad} sha256={}", sha256_hex(b"something else")),
    ]);
    let run = t.run(&["-j", "8", "-s", "4", "--split-min", "2M"]);
    run.assert_code(1)
        .assert_out_file("big.bin", &body)
        .assert_absent("out/bad.bin");
    assert!(!ranged(&t, "/big.bin").is_empty(), "it was split");
    run.assert_stderr_has("checksum");
}

#[test]
fn sigterm_then_continue_fetches_only_the_missing_bytes() {
    let t = Setup::new();
    let body = pattern(SIZE, 10);
    // About 1 MiB/s per connection: still running when the signal comes.
    t.list(&[t.serve("/big.bin", slow(&body))]);
    let mut running = start_split(&t);
    wait_for(Duration::from_secs(15), "pieces to start", || {
        ranged(&t, "/big.bin").len() >= 2 && served(&t, "/big.bin") > 2 * 1024 * 1024
    });
    running.signal("-TERM");
    let (code, _) = running.wait(Duration::from_secs(15), t.root());
    assert_eq!(code, 143, "{}", running.output());
    assert!(t.out().join("big.bin.part").exists(), "{:?}", t.files());
    let first = served(&t, "/big.bin");
    let asked_before = t.server.requests_for("/big.bin").len();

    let run = t.run(&["-c", "-j", "4", "-s", "4", "--split-min", "2M"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    let again: Vec<RecordedRequest> = t.server.requests_for("/big.bin").split_off(asked_before);
    assert!(
        again.iter().all(|r| r.header("range").is_some()),
        "-c asks only for ranges: {}",
        requests_text(&t.server)
    );
    let second = served(&t, "/big.bin") - first;
    // What the first run received but had not written when it stopped is
    // the only overlap: a few drip chunks per connection.
    let margin = 4 * 256 * 1024;
    assert!(
        second + first <= (SIZE + margin) as u64,
        "the second run fetched {second} bytes after the first fetched {first} of {SIZE}: {}",
        requests_text(&t.server)
    );
}

#[test]
fn a_connection_that_stalls_mid_piece_is_taken_over() {
    let t = Setup::new();
    let body = pattern(SIZE, 11);
    // The first (whole-file) response goes silent after 512 KiB with its
    // socket open; the pieces asked for later are served normally.
    t.list(&[t.serve(
        "/big.bin",
        throttled(&body, "\"v1\"").fail_times_with(1, throttled(&body, "\"v1\"").stall_after(512 * 1024)),
    )]);
    let started = std::time::Instant::now();
    // Without a take-over the silent connection would hold the file until
    // the 30 s idle timeout.
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M", "--timeout", "30"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}: {}",
        started.elapsed(),
        requests_text(&t.server)
    );
}

#[test]
fn sigkill_then_continue_keeps_the_pieces_recorded_on_disk() {
    let t = Setup::new();
    let body = pattern(SIZE, 12);
    t.list(&[t.serve("/big.bin", slow(&body))]);
    let mut running = start_split(&t);
    wait_for(Duration::from_secs(15), "pieces to be well under way", || {
        served(&t, "/big.bin") > 3 * 1024 * 1024
    });
    running.signal("-KILL");
    let _ = running.wait(Duration::from_secs(15), t.root());
    let asked_before = t.server.requests_for("/big.bin").len();
    let first = served(&t, "/big.bin");

    let run = t.run(&["-c", "-j", "4", "-s", "4", "--split-min", "2M"]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    let again = t.server.requests_for("/big.bin").split_off(asked_before);
    assert!(
        again.iter().all(|r| r.header("range").is_some()),
        "-c asks only for ranges: {}",
        requests_text(&t.server)
    );
    let second = served(&t, "/big.bin") - first;
    assert!(
        second < (SIZE as u64) - 1024 * 1024,
        "the pieces on disk were kept: fetched {second} of {SIZE} again after {first}"
    );
}

#[test]
fn a_helper_goes_back_to_entries_that_arrive_while_it_helps() {
    use std::io::Write;
    use std::process::Stdio;

    let t = Setup::new();
    let body = pattern(SIZE, 13);
    // About 1 MiB/s per connection: with two workers the big file takes
    // three seconds or more, and the small ones arrive well before that.
    let big = t.serve("/big.bin", slow(&body));
    let smalls: Vec<String> = (0..4)
        .map(|i| {
            t.serve(
                &format!("/s{i}.txt"),
                Route::ok(format!("small {i}").into_bytes()),
            )
        })
        .collect();
    let logs = t.root().join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    let mut cmd = fetchq();
    cmd.current_dir(t.root())
        .args([
            "-d",
            "out",
            "-j",
            "2",
            "-s",
            "2",
            "--split-min",
            "2M",
            "--json",
            "-",
        ])
        .stdin(Stdio::piped());
    let mut running = Running::spawn(cmd, &logs.join("stdout.txt"), &logs.join("stderr.txt"));
    let mut stdin = running.child.stdin.take().expect("a pipe");
    writeln!(stdin, "{big}").expect("write the big line");
    stdin.flush().expect("flush");
    // The second worker is helping with the big file...
    wait_for(Duration::from_secs(15), "a piece to be asked for", || {
        !ranged(&t, "/big.bin").is_empty()
    });
    // ...when small entries arrive: it goes back to them.
    for small in &smalls {
        writeln!(stdin, "{small}").expect("write a small line");
    }
    drop(stdin);
    let (code, _) = running.wait(Duration::from_secs(60), t.root());
    assert_eq!(code, 0, "{}", running.output());
    let stdout = fs::read_to_string(logs.join("stdout.txt")).expect("stdout");
    let order: Vec<String> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["type"] == "entry")
        .map(|v| v["url"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(order.len(), 5, "{stdout}");
    assert_eq!(
        order.last().map(String::as_str),
        Some(big.as_str()),
        "the small entries finished before the big file: {order:?}"
    );
    assert_eq!(fs::read(t.out().join("big.bin")).expect("big saved"), body);
}

#[test]
fn limit_rate_is_one_budget_for_all_the_pieces() {
    let t = Setup::new();
    let body = pattern(SIZE, 14);
    t.list(&[t.serve("/big.bin", throttled(&body, "\"v1\""))]);
    let started = std::time::Instant::now();
    let run = t.run(&["-j", "4", "-s", "4", "--split-min", "2M", "--limit-rate", "2M"]);
    run.assert_code(0).assert_out_file("big.bin", &body);
    assert!(!ranged(&t, "/big.bin").is_empty(), "it was split");
    // 6 MiB at 2 MiB/s in all takes about 3 s; a budget per connection
    // would let four connections finish in under one.
    assert!(
        started.elapsed() >= Duration::from_millis(2200),
        "took {:?}",
        started.elapsed()
    );
}

/// Pieces of 8 MiB and more are written on 64 KiB boundaries, their tails
/// held while more arrives and written (and counted in the split's map)
/// while the server pauses (`src/fetch/tail.rs`). Paused in pieces of an
/// odd size, the file must come out whole and pass its digest with no
/// retry allowed: a put-down the map did not count would leave its piece
/// short, and that piece's failure would fail the file.
#[test]
fn big_pieces_paused_mid_stretch_are_whole_and_checked() {
    let t = Setup::new();
    let body = pattern(20 * 1024 * 1024 + 4_321, 13);
    let url = t.serve(
        "/huge.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .drip(1_000_003, Duration::from_millis(60)),
    );
    t.list(&[format!("{url} sha256={}", sha256_hex(&body))]);
    let run = t.run(&["--retries", "0", "-j", "2", "-s", "2", "--split-min", "2M"]);
    run.assert_code(0)
        .assert_out_file("huge.bin", &body)
        .assert_no_part();
    assert!(!ranged(&t, "/huge.bin").is_empty(), "it was split");
}
