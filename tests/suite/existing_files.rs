//! What fetchq does when the file it would write is already there: skipped
//! without asking the server by default, replaced with `--overwrite`, fetched
//! again only when it changed with `-N`, finished with `-c` from a leftover
//! `.part`, and left alone when the name appears during the download.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

/// Runs a 2 s download of `/race.bin` and, once it is under way, puts another
/// file at its name, as a second program writing to the same folder would.
fn race_for_the_name(root: &Path, logs: &Path, args: &[&str]) -> (i32, String) {
    let server = TestServer::start();
    server.route(
        "/race.bin",
        Route::ok(pattern(20_000, 5)).drip(1_000, Duration::from_millis(100)),
    );
    list_of(root, &server.url("/race.bin"));
    let mut running = Running::start(root, logs, args);
    wait_for_bytes(&out(root).join("race.bin.part"), &running, root);
    fs::write(out(root).join("race.bin"), b"theirs").unwrap();
    let (code, _) = running.wait(HANG_BOUND, root);
    (code, running.output())
}

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
// Skip and overwrite
// ---------------------------------------------------------------------------

#[test]
fn existing_file_is_skipped_without_asking_the_server() {
    let t = Setup::new();
    t.list(&[
        t.serve("/keep.bin", Route::ok(b"new content from the server".to_vec())),
        t.serve("/fresh.bin", Route::ok(b"fresh".to_vec())),
    ]);
    t.write_out("keep.bin", b"old");

    let run = t.run(&[]);

    run.assert_code(0)
        .assert_out_file("keep.bin", b"old")
        .assert_out_file("fresh.bin", b"fresh")
        .assert_summary_has("1 downloaded, 1 skipped");
    t.assert_hits(&run, "/keep.bin", 0);
}

#[test]
fn overwrite_replaces_an_existing_file() {
    let t = Setup::new();
    let body = pattern(100_000, 5);
    t.list(&[t.serve("/keep.bin", Route::ok(body.clone()))]);
    t.write_out("keep.bin", b"old");

    let run = t.run(&["--overwrite"]);

    run.assert_code(0)
        .assert_files(&["list.txt", "out/keep.bin"])
        .assert_out_file("keep.bin", &body)
        .assert_summary_has("1 downloaded");
    t.assert_hits(&run, "/keep.bin", 1);
}

/// Numbered names depend only on the list, so a second run of the same list
/// finds every file in place and skips it without a request.
#[test]
fn rerunning_the_same_list_skips_everything() {
    let t = Setup::new();
    t.list(&[
        t.serve("/a/x.bin", Route::ok(b"from a".to_vec())),
        t.serve("/b/x.bin", Route::ok(b"from b".to_vec())),
    ]);

    t.run(&[]).assert_code(0);
    let second = t.run(&[]);

    second
        .assert_code(0)
        .assert_out_file("x.bin", b"from a")
        .assert_out_file("x-1.bin", b"from b")
        .assert_summary_has("0 downloaded, 2 skipped");
    t.assert_hits(&second, "/a/x.bin", 1);
    t.assert_hits(&second, "/b/x.bin", 1);
}

/// Without -c a leftover NAME.part is replaced, never appended to.
#[test]
fn leftover_part_file_is_replaced_without_continue() {
    let t = Setup::new();
    let body = pattern(50_000, 9);
    t.list(&[t.serve("/p.bin", Route::ok(body.clone()))]);
    t.write_out("p.bin.part", b"stale bytes from an old run");

    t.run(&[])
        .assert_code(0)
        .assert_out_file("p.bin", &body)
        .assert_no_part();
}

// ---------------------------------------------------------------------------
// -c / --continue across runs
// ---------------------------------------------------------------------------

/// A part written by another program records no version: the list's
/// checksum is what lets `-c` continue it (see `resume_across_runs`).
#[test]
fn continue_requests_only_the_rest_of_a_leftover_part() {
    let t = Setup::new();
    let body = pattern(64_000, 10);
    let half = body.len() / 2;
    let url = t.serve("/f.bin", Route::ok(body.clone()));
    t.list(&[format!("{url} sha256={}", sha256_hex(&body))]);
    t.write_out("f.bin.part", &body[..half]);

    let run = t.run(&["-c"]);

    run.assert_downloaded_alone("out/f.bin", &body);
    t.assert_hits(&run, "/f.bin", 1);
    let range = t.request(&run, "/f.bin", 0).header("range").map(str::to_string);
    assert_eq!(range, Some(format!("bytes={half}-")), "{}", run.ctx());
}

#[test]
fn without_continue_a_leftover_part_is_replaced_by_a_full_download() {
    let t = Setup::new();
    let body = pattern(64_000, 11);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()))]);
    t.write_out("f.bin.part", &body[..32_000]);

    let run = t.run(&[]);

    run.assert_downloaded_alone("out/f.bin", &body);
    let range = t.request(&run, "/f.bin", 0).header("range").map(str::to_string);
    assert_eq!(range, None, "a full request\n{}", run.ctx());
}

#[test]
fn continue_with_a_complete_part_finishes_without_the_body_again() {
    let t = Setup::new();
    let body = pattern(10_000, 12);
    let url = t.serve("/f.bin", Route::ok(body.clone()));
    t.list(&[format!("{url} sha256={}", sha256_hex(&body))]);
    t.write_out("f.bin.part", &body);

    let run = t.run(&["-c"]);

    run.assert_downloaded_alone("out/f.bin", &body);
    let range = t.request(&run, "/f.bin", 0).header("range").map(str::to_string);
    assert_eq!(range.as_deref(), Some("bytes=10000-"), "{}", run.ctx());
    let sent = t.server.responses_for("/f.bin");
    assert!(
        !sent.is_empty() && sent.iter().all(|r| r.body_bytes == 0),
        "the body was sent again: {sent:?}\n{}",
        run.ctx()
    );
}

/// The remote file got shorter than the leftover part: the server answers
/// 416 with the real size, so the download must start over (module doc of
/// fetch.rs), not fail.
#[test]
fn continue_with_a_part_longer_than_the_file_starts_over() {
    let t = Setup::new();
    let body = pattern(10_000, 13);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()))]);
    t.write_out("f.bin.part", pattern(15_000, 14));

    t.run(&["-c", "-v", "--retries", "2"])
        .assert_no_panic()
        .assert_downloaded_alone("out/f.bin", &body);
}

// ---------------------------------------------------------------------------
// A name taken while downloading
// ---------------------------------------------------------------------------

/// In the default mode a file is never replaced, not even one that appeared
/// while it downloaded: the entry counts as skipped and the download is dropped.
#[test]
fn a_name_taken_during_the_download_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();

    let (code, output) = race_for_the_name(root, logs.path(), &[]);

    let files = list_files(root);
    assert_eq!(code, 0, "{output}\nfiles: {files:?}");
    assert_eq!(
        fs::read(out(root).join("race.bin")).unwrap(),
        b"theirs",
        "{output}"
    );
    assert!(output.contains("0 downloaded, 1 skipped"), "{output}");
    assert_eq!(files, ["list.txt", "out/race.bin"], "no part left\n{output}");
}

/// `--overwrite` replaces whatever holds the name by the time the download ends.
#[test]
fn overwrite_replaces_a_name_taken_during_the_download() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = tmp.path();

    let (code, output) = race_for_the_name(root, logs.path(), &["--overwrite"]);

    assert_eq!(code, 0, "{output}");
    assert_eq!(
        fs::read(out(root).join("race.bin")).unwrap(),
        pattern(20_000, 5),
        "{output}"
    );
    assert_eq!(list_files(root), ["list.txt", "out/race.bin"], "{output}");
}

// ---------------------------------------------------------------------------
// -N / --update
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
