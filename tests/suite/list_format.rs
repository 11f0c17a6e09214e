//! The list format's second version: several URLs on a line are sources of
//! one file, `KEY=VALUE` fields (`sha512=`, `md5=`, `header=`) are checked
//! and used, and every field that is none of these fails its line alone
//! instead of becoming a file name.

use md5::Md5;
use sha2::{Digest, Sha512};

use crate::support::*;

fn sha512_hex(data: &[u8]) -> String {
    Sha512::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha1_hex(data: &[u8]) -> String {
    sha1::Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn two_urls_on_a_line_make_one_file_named_from_the_first() {
    let t = Setup::new();
    let a = t.serve("/a.txt", Route::ok(b"first source".to_vec()));
    let b = t.serve("/b.txt", Route::ok(b"second source".to_vec()));
    let c = t.serve("/c.txt", Route::ok(b"third".to_vec()));
    let d = t.serve("/d.txt", Route::ok(b"fourth".to_vec()));
    // Spaces, and aria2c's TABs.
    t.list(&[format!("{a} {b}"), format!("{c}\t{d}\tnamed.txt")]);

    t.run(&[])
        .assert_code(0)
        .assert_out_files(&["a.txt", "named.txt"])
        .assert_out_file("a.txt", b"first source")
        .assert_out_file("named.txt", b"third");
}

#[test]
fn a_bad_field_fails_its_line_with_the_line_and_url_and_other_lines_still_run() {
    let t = Setup::new();
    let ok1 = t.serve("/ok1.txt", Route::ok(b"one".to_vec()));
    let ok2 = t.serve("/ok2.txt", Route::ok(b"two".to_vec()));
    let bad = t.serve("/bad.txt", Route::ok(b"never".to_vec()));
    let sha256 = "ab".repeat(32);
    let lines = [
        ok1.clone(),
        format!("{bad} foo=bar"),
        format!("{bad} a=b.txt"),
        format!("{bad} sha256=12"),
        format!("{bad} md5={sha256}"),
        format!("{bad} sha1={}", "zz".repeat(20)),
        format!("{bad} one.txt two.txt"),
        format!("{bad} ftp://127.0.0.1/bad.txt"),
        format!("{bad} header=NoColon"),
        format!("{bad} header=\"Bad Name: x\""),
        format!("{bad} sha256={sha256} sha256={}", "cd".repeat(32)),
        ok2.clone(),
    ];
    t.list(&lines);

    let run = t.run(&[]);

    run.assert_code(1)
        .assert_out_files(&["ok1.txt", "ok2.txt"])
        .assert_out_file("ok1.txt", b"one")
        .assert_out_file("ok2.txt", b"two");
    let why = [
        "unknown key in \"foo=bar\"",
        "unknown key in \"a=b.txt\"",
        "bad checksum \"sha256=12\" (expected 64 hex digits)",
        "(expected 32 hex digits)",
        "(expected 40 hex digits)",
        "second output path \"two.txt\" (the line already has \"one.txt\")",
        "source \"ftp://127.0.0.1/bad.txt\" is unusable: unsupported scheme \"ftp\"",
        "bad field header=NoColon: header \"NoColon\" has no ':'",
        "bad field header=\"Bad Name: x\": header name \"Bad Name\" is not a valid token",
        "second checksum of the same algorithm",
    ];
    for (i, why) in why.iter().enumerate() {
        let line = i + 2;
        let shown = run.stderr_line(&format!("list.txt:{line}: {bad} "));
        assert!(
            shown.contains(why),
            "line {line}: {shown:?} lacks {why:?}\n{}",
            run.ctx()
        );
    }
    t.assert_hits(&run, "/bad.txt", 0);
}

#[test]
fn a_quoted_field_is_always_out_never_a_key_or_a_url() {
    let t = Setup::new();
    let a = t.serve("/a.txt", Route::ok(b"A".to_vec()));
    let b = t.serve("/b.txt", Route::ok(b"B".to_vec()));
    let c = t.serve("/c.txt", Route::ok(b"C".to_vec()));
    t.list(&[
        format!("{a} \"sha256=not-a-key\""),
        format!("{b} \"a=b.txt\""),
        format!("{c} \"http://example.com/c.txt\""),
    ]);

    t.run(&[])
        .assert_code(0)
        .assert_out_file("sha256=not-a-key", b"A")
        .assert_out_file("a=b.txt", b"B")
        .assert_out_file("http:/example.com/c.txt", b"C");
}

#[test]
fn sha512_and_md5_are_both_checked() {
    let t = Setup::new();
    let body = pattern(100_000, 7);
    let (sha512, md5) = (sha512_hex(&body), md5_hex(&body));
    let (wrong512, wrong5) = (sha512_hex(b"other"), md5_hex(b"other"));
    let good = t.serve("/good.bin", Route::ok(body.clone()));
    let bad_md5 = t.serve("/bad-md5.bin", Route::ok(body.clone()));
    let bad_sha = t.serve("/bad-sha.bin", Route::ok(body.clone()));
    t.list(&[
        format!("{good} sha512={sha512} md5={md5}"),
        format!("{bad_md5} sha512={sha512} md5={wrong5}"),
        format!("{bad_sha} md5={md5} sha512={wrong512}"),
    ]);

    let run = t.run(&[]);

    run.assert_code(1)
        .assert_out_files(&["good.bin"])
        .assert_out_file("good.bin", &body)
        .assert_no_part();
    let md5_line = run.stderr_line("bad-md5.bin");
    assert!(
        md5_line.contains(&format!("checksum mismatch: expected md5 {wrong5}, got {md5}")),
        "{md5_line}\n{}",
        run.ctx()
    );
    let sha_line = run.stderr_line("bad-sha.bin");
    assert!(
        sha_line.contains(&format!(
            "checksum mismatch: expected sha512 {wrong512}, got {sha512}"
        )),
        "{sha_line}\n{}",
        run.ctx()
    );
}

#[test]
fn an_entrys_header_is_sent_on_its_requests_only() {
    let t = Setup::new();
    let a = t.serve("/a.txt", Route::ok(b"A".to_vec()));
    let b = t.serve("/b.txt", Route::ok(b"B".to_vec()));
    t.list(&[
        format!("{a} header=\"X-Entry: a b\" header=X-Second:2"),
        b.clone(),
    ]);

    let run = t.run(&["-j", "1", "-H", "X-Run: all"]);

    run.assert_code(0).assert_out_files(&["a.txt", "b.txt"]);
    t.assert_sent_header(&run, "/a.txt", 0, "x-entry", Some("a b"));
    t.assert_sent_header(&run, "/a.txt", 0, "x-second", Some("2"));
    t.assert_sent_header(&run, "/a.txt", 0, "x-run", Some("all"));
    t.assert_sent_header(&run, "/b.txt", 0, "x-entry", None);
    t.assert_sent_header(&run, "/b.txt", 0, "x-run", Some("all"));
}

#[test]
fn an_entrys_credential_header_is_dropped_when_a_redirect_leaves_the_origin() {
    let first = TestServer::start();
    let other = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    first.route("/start.bin", Route::redirect(302, "/mid"));
    first.route("/mid", Route::redirect(302, &other.url("/file")));
    other.route("/file", Route::ok(b"public".to_vec()));
    write_list(
        root,
        "list.txt",
        format!(
            "{} header=\"Authorization: Bearer entry\" header=\"Cookie: s=1\" header=\"X-Custom: kept\"\n",
            first.url("/start.bin")
        ),
    );

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/start.bin", b"public");
    let requests = |server: &TestServer, path: &str| {
        let found = server.requests_for(path);
        assert_eq!(found.len(), 1, "{path}: {found:?}\n{}", ctx(&run, root));
        found.into_iter().next().unwrap()
    };
    for path in ["/start.bin", "/mid"] {
        let req = requests(&first, path);
        assert_eq!(req.header("authorization"), Some("Bearer entry"), "{path}");
        assert_eq!(req.header("cookie"), Some("s=1"), "{path}");
        assert_eq!(req.header("x-custom"), Some("kept"), "{path}");
    }
    let req = requests(&other, "/file");
    assert_eq!(req.header("authorization"), None, "{req:?}");
    assert_eq!(req.header("cookie"), None, "{req:?}");
    assert_eq!(req.header("x-custom"), Some("kept"), "{req:?}");
}

#[test]
fn save_failed_writes_a_version_2_line_back_whole() {
    let t = Setup::new();
    let gone = t.serve("/gone.bin", Route::status(404));
    let mirror = t.server.url("/mirror/gone.bin");
    let md5 = md5_hex(b"x");
    let sha512 = sha512_hex(b"x");
    t.list(&[format!(
        "{gone}\t{mirror} \"my=name.bin\" sha512={sha512} md5={md5} header=\"X-Token: a b\""
    )]);

    let run = t.run(&["--save-failed", "retry.txt"]);

    run.assert_code(1);
    let saved = std::fs::read_to_string(t.root().join("retry.txt")).unwrap();
    assert_eq!(
        saved,
        format!("{gone} {mirror} \"my=name.bin\" md5={md5} sha512={sha512} header=\"X-Token: a b\"\n"),
        "{}",
        run.ctx()
    );
    // Read back, it is the same entry: the same request, not a bad line.
    let again = t.run_raw(&["-d", "out", "retry.txt"]);
    again
        .assert_code(1)
        .assert_stderr_has("retry.txt:1: ")
        .assert_stderr_has("HTTP 404");
    t.assert_sent_header(&again, "/gone.bin", 1, "x-token", Some("a b"));
}

#[test]
fn an_unusable_line_is_shown_without_its_header_values() {
    let t = Setup::new();
    let bad = t.serve("/bad.txt", Route::ok(b"never".to_vec()));
    t.list(&[format!(
        "{bad} one.txt two.txt header=\"Authorization: Bearer s3cret\" header=X-Key:k3y"
    )]);

    let run = t.run(&["--json", "--log", "run.log"]);

    run.assert_code(1)
        .assert_stderr_has("header=\"Authorization: ***\" header=\"X-Key: ***\": second output path");
    let log = std::fs::read_to_string(t.root().join("run.log")).unwrap();
    for (label, text) in [("stderr", &run.stderr), ("--json", &run.stdout), ("--log", &log)] {
        for secret in ["s3cret", "k3y"] {
            assert!(!text.contains(secret), "{label} shows {secret}\n{}", run.ctx());
        }
    }
    assert!(run.stdout.contains("Authorization: ***"), "{}", run.ctx());
}

/// A file split over several connections: every piece's request carries the
/// entry's header, and md5 and sha1 are checked over the whole result.
#[test]
fn a_split_file_sends_the_header_on_every_piece_and_checks_every_digest() {
    let t = Setup::new();
    // Small for a split (the digests of a debug build are slow), above --split-min.
    let body = pattern(3 * 1024 * 1024, 5);
    let throttled = |body: &[u8]| {
        Route::ok(body.to_vec())
            .etag("\"v1\"")
            .drip(32 * 1024, std::time::Duration::from_millis(10))
    };
    let good = t.serve("/good.bin", throttled(&body));
    let bad = t.serve("/bad.bin", throttled(&body));
    t.list(&[
        format!(
            "{good} md5={} sha1={} header=\"X-Token: t\"",
            md5_hex(&body),
            sha1_hex(&body)
        ),
        format!("{bad} md5={} sha1={}", md5_hex(&body), sha1_hex(b"x")),
    ]);

    let run = t.run(&["-j", "8", "-s", "4", "--split-min", "1M"]);

    run.assert_code(1)
        .assert_out_files(&["good.bin"])
        .assert_out_file("good.bin", &body)
        .assert_no_part();
    assert!(
        run.stderr_line("bad.bin")
            .contains("checksum mismatch: expected sha1"),
        "{}",
        run.ctx()
    );
    let requests = t.server.requests_for("/good.bin");
    let pieces = requests.iter().filter(|r| r.header("range").is_some()).count();
    assert!(pieces >= 1, "not split: {requests:?}\n{}", run.ctx());
    for request in &requests {
        assert_eq!(request.header("x-token"), Some("t"), "{request:?}\n{}", run.ctx());
    }
}
