//! Alternative sources: a list line `URL URL…` names one file on several
//! servers. The first is asked first, the next as well after
//! `--race-after`; a source that fails is set aside and the entry fails only
//! when all have, naming each cause. Bytes of two servers are joined only
//! under a checksum.

use std::time::{Duration, Instant};

use crate::support::*;

/// A URL on 127.0.0.1 where nothing listens.
fn refused(path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", free_port())
}

#[test]
fn a_mirror_takes_over_when_the_first_source_refuses_connections() {
    let t = Setup::new();
    let body = pattern(100_000, 1);
    let mirror = t.serve("/f.bin", Route::ok(body.clone()));
    t.list(&[format!("{} {mirror} f.bin", refused("/f.bin"))]);
    let run = t.run(&["--json", "-v"]);
    run.assert_code(0).assert_out_file("f.bin", &body);
    run.assert_stderr_has("source set aside");
    let lines = json_lines(&run, t.root());
    let entry = lines
        .iter()
        .find(|v| v["type"] == "entry")
        .expect("an entry line");
    let sources = entry["sources"].as_array().expect("sources listed");
    assert_eq!(sources.len(), 2, "{entry}");
    assert_eq!(sources[0]["outcome"], "set_aside", "{entry}");
    assert!(
        sources[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("connection"),
        "{entry}"
    );
    assert_eq!(sources[1]["outcome"], "delivered", "{entry}");
    assert_eq!(entry["final_url"], mirror.as_str(), "{entry}");
}

#[test]
fn a_mirror_takes_over_when_the_first_source_answers_404() {
    let t = Setup::new();
    let body = pattern(50_000, 2);
    let first = t.serve("/missing.bin", Route::status(404));
    let second = t.serve("/f.bin", Route::ok(body.clone()));
    t.list(&[format!("{first} {second}")]);
    let run = t.run(&["-v"]);
    // The name comes from the first URL.
    run.assert_code(0).assert_out_file("missing.bin", &body);
    run.assert_stderr_has("source set aside: HTTP 404");
}

#[test]
fn a_source_that_stalls_before_headers_loses_the_race() {
    let t = Setup::new();
    let body = pattern(50_000, 3);
    let slow = t.serve("/stall.bin", Route::ok(body.clone()).stall_before_headers());
    let fast = t.serve("/f.bin", Route::ok(body.clone()));
    t.list(&[format!("{slow} {fast} f.bin")]);
    let started = Instant::now();
    let run = t.run(&["--race-after", "0.2", "--timeout", "30"]);
    run.assert_code(0).assert_out_file("f.bin", &body);
    // Without the race the stalled source would hold the entry for the
    // 30 s idle timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(t.server.hits("/f.bin"), 1);
}

#[test]
fn race_after_zero_asks_every_source_at_once() {
    let t = Setup::new();
    let body = pattern(50_000, 4);
    let a = t.serve(
        "/a.bin",
        Route::ok(body.clone()).delay(Duration::from_millis(300)),
    );
    let b = t.serve(
        "/b.bin",
        Route::ok(body.clone()).delay(Duration::from_millis(300)),
    );
    t.list(&[format!("{a} {b} f.bin")]);
    let run = t.run(&["--race-after", "0"]);
    run.assert_code(0).assert_out_file("f.bin", &body);
    assert!(
        t.server.hits("/a.bin") == 1 && t.server.hits("/b.bin") == 1,
        "{}",
        requests_text(&t.server)
    );
}

#[test]
fn when_every_source_fails_the_entry_fails_with_each_cause() {
    let t = Setup::new();
    let gone = t.serve("/gone.bin", Route::status(404));
    let broken = t.serve("/broken.bin", Route::status(403));
    let ok = t.serve("/ok.bin", Route::ok(b"fine".to_vec()));
    let unreachable = refused("/x.bin");
    t.list(&[format!("{gone} {unreachable} {broken} f.bin"), ok]);
    let run = t.run(&[]);
    run.assert_code(1)
        .assert_out_file("ok.bin", b"fine")
        .assert_absent("out/f.bin");
    let line = run.stderr_line("every source failed");
    for cause in ["404", "connection", "403"] {
        assert!(line.contains(cause), "{cause} in {line}");
    }
    assert!(line.contains("list.txt:1"), "{line}");
}

#[test]
fn a_switch_of_source_continues_only_under_a_checksum() {
    let body = pattern(600_000, 5);
    for with_checksum in [true, false] {
        let t = Setup::new();
        // The first source breaks after 200,000 bytes every time.
        let first = t.serve(
            "/first.bin",
            Route::ok(body.clone()).etag("\"a\"").reset_after(200_000),
        );
        let second = t.serve("/second.bin", Route::ok(body.clone()).etag("\"b\""));
        let sum = if with_checksum {
            format!(" sha256={}", sha256_hex(&body))
        } else {
            String::new()
        };
        t.list(&[format!("{first} {second} f.bin{sum}")]);
        let run = t.run(&["--retries", "1"]);
        run.assert_code(0)
            .assert_out_file("f.bin", &body)
            .assert_no_part();
        let asked = t.server.requests_for("/second.bin");
        assert_eq!(asked.len(), 1, "{}", requests_text(&t.server));
        let range = asked[0].header("range");
        if with_checksum {
            assert!(
                range.is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
                "with a checksum the second source continues: {range:?}"
            );
            assert_eq!(
                asked[0].header("if-range"),
                None,
                "the first source's validator means nothing here"
            );
        } else {
            assert_eq!(range, None, "without a checksum the file starts over: {range:?}");
        }
    }
}
