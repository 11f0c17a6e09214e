//! End-to-end tests of the core CLI contract: the real `fetchq` binary run
//! against the in-process test server (`tests/support`).
//!
//! Layout used by every test: a fresh temp dir `root` that is the working
//! directory of the run and holds the URL lists; downloads go to `root/out`
//! (`-d out`), so "nothing else was written" can be checked on `root` as a
//! whole. Assertion messages carry the full run (command, exit code, stdout,
//! stderr) and the files under `root`.

#[allow(dead_code)]
mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::{
    Route, Run, TestServer, assert_code, assert_out_file, assert_stderr_has, ctx, fetch_in,
    fetch_in_with_stdin, fetchq, list_files, out, pattern, run, serve_all, stderr_line, write_list,
    write_out_file,
};

/// Asserts no `.part` file is left anywhere under `root`.
fn assert_no_part(run: &Run, root: &Path) {
    assert!(
        list_files(root).iter().all(|f| !f.ends_with(".part")),
        "a .part file was left behind\n{}",
        ctx(run, root)
    );
}

/// The last non-empty stderr line (the summary in plain mode).
fn last_stderr_line(run: &Run) -> &str {
    run.stderr.trim_end().lines().last().unwrap_or("")
}

// ---------------------------------------------------------------------------
// 1. Mixed sizes, plain (non-terminal) output
// ---------------------------------------------------------------------------

#[test]
fn mixed_sizes_download_byte_for_byte_with_plain_output() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let files = [
        ("empty.bin", Vec::new()),
        ("small.txt", b"hello, fetchq\n".to_vec()),
        ("big.bin", pattern(5 << 20, 1)),
    ];
    write_list(root, "list.txt", serve_all(&server, &files));

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    for (name, body) in &files {
        assert_out_file(&run, root, name, body);
        assert_eq!(server.hits(name), 1, "hits for {name}\n{}", ctx(&run, root));
    }
    assert_no_part(&run, root);
    assert_eq!(
        list_files(&out(root)),
        vec!["big.bin", "empty.bin", "small.txt"],
        "{}",
        ctx(&run, root)
    );
    assert!(!run.stderr.contains('\r'), "stderr has \\r\n{}", ctx(&run, root));
    assert!(
        !run.stderr.contains('\x1b'),
        "stderr has ESC\n{}",
        ctx(&run, root)
    );
    assert!(
        run.stderr.ends_with('\n'),
        "stderr ends mid-line\n{}",
        ctx(&run, root)
    );
    let summary = last_stderr_line(&run);
    assert!(
        summary.contains("3 downloaded") && summary.contains("0 failed"),
        "last stderr line should be the summary, got {summary:?}\n{}",
        ctx(&run, root)
    );
    assert!(
        run.stdout.is_empty(),
        "stdout should be empty\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 2. Where lists come from
// ---------------------------------------------------------------------------

#[test]
fn list_on_stdin_without_file_argument() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let files = [("a.txt", b"A".to_vec()), ("b.txt", b"BB".to_vec())];
    let list = serve_all(&server, &files);

    let run = fetch_in_with_stdin(root, &["-d", "out"], list.as_bytes());

    assert_code(&run, root, 0);
    for (name, body) in &files {
        assert_out_file(&run, root, name, body);
    }
    assert_eq!(
        list_files(&out(root)),
        vec!["a.txt", "b.txt"],
        "{}",
        ctx(&run, root)
    );
    assert_stderr_has(&run, root, "2 downloaded");
}

/// Three lists whose entries all want the name `x.bin`: collisions are named
/// in reading order, so the file names prove the order the lists were read.
#[test]
fn several_lists_and_dash_are_read_in_order() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    for dir in ["first", "second", "third"] {
        server.route(&format!("/{dir}/x.bin"), Route::ok(dir.as_bytes().to_vec()));
    }
    write_list(root, "one.txt", format!("{}\n", server.url("/first/x.bin")));
    write_list(root, "three.txt", format!("{}\n", server.url("/third/x.bin")));
    let stdin = format!("{}\n", server.url("/second/x.bin"));

    let run = fetch_in_with_stdin(
        root,
        &["-j", "1", "-d", "out", "one.txt", "-", "three.txt"],
        stdin.as_bytes(),
    );

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "x.bin", b"first");
    assert_out_file(&run, root, "x-1.bin", b"second");
    assert_out_file(&run, root, "x-2.bin", b"third");
    assert_eq!(list_files(&out(root)).len(), 3, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "3 downloaded");
}

/// `-i` lists are read before the FILE arguments, wherever they appear.
#[test]
fn input_file_option_is_read_before_file_arguments() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/pos/x.bin", Route::ok(b"positional".to_vec()));
    server.route("/opt/x.bin", Route::ok(b"option".to_vec()));
    write_list(root, "pos.txt", format!("{}\n", server.url("/pos/x.bin")));
    write_list(root, "opt.txt", format!("{}\n", server.url("/opt/x.bin")));

    let run = fetch_in(root, &["-d", "out", "pos.txt", "-i", "opt.txt"]);

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "x.bin", b"option");
    assert_out_file(&run, root, "x-1.bin", b"positional");
}

#[test]
fn input_file_option_alone() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(
        root,
        "l.txt",
        serve_all(&server, &[("only.txt", b"only".to_vec())]),
    );

    let run = fetch_in(root, &["-d", "out", "--input-file", "l.txt"]);

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "only.txt", b"only");
}

// ---------------------------------------------------------------------------
// 3. List syntax: comments, blank lines, CRLF, BOM
// ---------------------------------------------------------------------------

#[test]
fn comments_blank_lines_crlf_and_bom_are_accepted() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/one.txt", Route::ok(b"1".to_vec()));
    server.route("/two.txt", Route::ok(b"22".to_vec()));
    server.route("/three.txt", Route::ok(b"333".to_vec()));
    server.route("/named", Route::ok(b"4444".to_vec()));
    let mut list = b"\xEF\xBB\xBF".to_vec(); // BOM directly before the first URL
    list.extend_from_slice(
        format!(
            "{}\r\n\r\n# a comment {}\r\n   \t \r\n  {}  \r\n\t# indented comment\r\n{}\r\n{} named.bin\r\n",
            server.url("/one.txt"),
            server.url("/commented.txt"),
            server.url("/two.txt"),
            server.url("/three.txt"),
            server.url("/named"),
        )
        .as_bytes(),
    );
    write_list(root, "list.txt", &list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(
        list_files(&out(root)),
        vec!["named.bin", "one.txt", "three.txt", "two.txt"],
        "no \\r or BOM may end up in a name\n{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "one.txt", b"1");
    assert_out_file(&run, root, "two.txt", b"22");
    assert_out_file(&run, root, "three.txt", b"333");
    assert_out_file(&run, root, "named.bin", b"4444");
    assert_eq!(server.hits("/commented.txt"), 0, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "4 downloaded");
    assert_stderr_has(&run, root, "0 failed");
}

// ---------------------------------------------------------------------------
// 4. Invalid lines
// ---------------------------------------------------------------------------

#[test]
fn invalid_lines_are_reported_with_their_line_and_counted_as_failed() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/good1.txt", Route::ok(b"good one".to_vec()));
    server.route("/good2.txt", Route::ok(b"good two".to_vec()));
    let list = format!(
        "{}\nnot a url\nftp://example.com/file.bin\n{}\n",
        server.url("/good1.txt"),
        server.url("/good2.txt")
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    assert_out_file(&run, root, "good1.txt", b"good one");
    assert_out_file(&run, root, "good2.txt", b"good two");
    assert_eq!(list_files(&out(root)).len(), 2, "{}", ctx(&run, root));

    let bad_url = stderr_line(&run, root, "list.txt:2:");
    assert!(
        bad_url.starts_with("list.txt:2: ")
            && bad_url.contains("not a url")
            && bad_url.contains("invalid URL"),
        "line 2 should be named with its text and reason: {bad_url:?}\n{}",
        ctx(&run, root)
    );
    let ftp = stderr_line(&run, root, "list.txt:3:");
    assert!(
        ftp.starts_with("list.txt:3: ")
            && ftp.contains("ftp://example.com/file.bin")
            && ftp.contains("scheme"),
        "line 3 should be named with its text and reason: {ftp:?}\n{}",
        ctx(&run, root)
    );
    let summary = last_stderr_line(&run);
    assert!(
        summary.contains("2 downloaded") && summary.contains("2 failed"),
        "summary {summary:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 5. HTTP errors
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
// 6. Name collisions and duplicates
// ---------------------------------------------------------------------------

#[test]
fn different_urls_with_the_same_name_are_numbered_in_list_order() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/a/x.bin", Route::ok(pattern(1000, 2)));
    server.route("/b/x.bin", Route::ok(pattern(2000, 3)));
    server.route("/c/x.bin", Route::ok(pattern(3000, 4)));
    let list = format!(
        "{}\n{}\n{}\n",
        server.url("/a/x.bin"),
        server.url("/b/x.bin"),
        server.url("/c/x.bin")
    );
    write_list(root, "list.txt", list);

    // Parallel on purpose: the names must not depend on which finishes first.
    let run = fetch_in(root, &["-j", "8", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(
        list_files(&out(root)),
        vec!["x-1.bin", "x-2.bin", "x.bin"],
        "{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "x.bin", &pattern(1000, 2));
    assert_out_file(&run, root, "x-1.bin", &pattern(2000, 3));
    assert_out_file(&run, root, "x-2.bin", &pattern(3000, 4));
}

#[test]
fn the_same_url_twice_is_downloaded_once() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/x.bin", Route::ok(b"once".to_vec()));
    let url = server.url("/x.bin");
    write_list(root, "list.txt", format!("{url}\n{url}\n"));

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(server.hits("/x.bin"), 1, "{}", ctx(&run, root));
    assert_eq!(list_files(&out(root)), vec!["x.bin"], "{}", ctx(&run, root));
    assert_out_file(&run, root, "x.bin", b"once");
    let summary = last_stderr_line(&run);
    assert!(
        summary.contains("1 downloaded") && summary.contains("1 skipped") && summary.contains("0 failed"),
        "summary {summary:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 7. Existing files
// ---------------------------------------------------------------------------

#[test]
fn existing_file_is_skipped_without_asking_the_server() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/keep.bin", Route::ok(b"new content from the server".to_vec()));
    server.route("/fresh.bin", Route::ok(b"fresh".to_vec()));
    write_out_file(root, "keep.bin", b"old");
    let list = format!("{}\n{}\n", server.url("/keep.bin"), server.url("/fresh.bin"));
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "keep.bin", b"old");
    assert_out_file(&run, root, "fresh.bin", b"fresh");
    assert_eq!(server.hits("/keep.bin"), 0, "{}", ctx(&run, root));
    let summary = last_stderr_line(&run);
    assert!(
        summary.contains("1 downloaded") && summary.contains("1 skipped"),
        "summary {summary:?}\n{}",
        ctx(&run, root)
    );
}

#[test]
fn overwrite_replaces_an_existing_file() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let body = pattern(100_000, 5);
    server.route("/keep.bin", Route::ok(body.clone()));
    write_out_file(root, "keep.bin", b"old");
    write_list(root, "list.txt", format!("{}\n", server.url("/keep.bin")));

    let run = fetch_in(root, &["--overwrite", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "keep.bin", &body);
    assert_eq!(server.hits("/keep.bin"), 1, "{}", ctx(&run, root));
    assert_eq!(list_files(&out(root)), vec!["keep.bin"], "{}", ctx(&run, root));
    assert!(
        last_stderr_line(&run).contains("1 downloaded"),
        "{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 8. Explicit OUT paths
// ---------------------------------------------------------------------------

#[test]
fn out_with_sub_folders_creates_them() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/src.bin", Route::ok(b"deep".to_vec()));
    server.route("/into/folder.txt", Route::ok(b"in folder".to_vec()));
    let list = format!(
        "{} sub/dir/name.bin\n{} docs/\n",
        server.url("/src.bin"),
        server.url("/into/folder.txt")
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(
        list_files(&out(root)),
        vec!["docs/folder.txt", "sub/dir/name.bin"],
        "{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "sub/dir/name.bin", b"deep");
    assert_out_file(&run, root, "docs/folder.txt", b"in folder");
}

/// A quoted OUT may hold spaces; a quote left open fails that line only.
#[test]
fn quoted_out_with_spaces_is_one_field() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/r", Route::ok(b"may report".to_vec()));
    server.route("/s", Route::ok(b"second".to_vec()));
    let list = format!(
        "{} \"reports/May 2026.pdf\"\n{} \"never closed.txt\n",
        server.url("/r"),
        server.url("/s")
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    assert_out_file(&run, root, "reports/May 2026.pdf", b"may report");
    let line = stderr_line(&run, root, "list.txt:2:");
    assert!(line.contains("unbalanced quote"), "{}", ctx(&run, root));
    assert_eq!(
        list_files(&out(root)),
        ["reports/May 2026.pdf"],
        "{}",
        ctx(&run, root)
    );
}

#[test]
fn out_escaping_the_output_dir_is_rejected() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/evil.bin", Route::ok(b"evil".to_vec()));
    server.route("/good.bin", Route::ok(b"good".to_vec()));
    let absolute = root.join("absolute.bin");
    let absolute = absolute.to_str().expect("temp path is UTF-8");
    assert!(
        !absolute.contains(char::is_whitespace),
        "temp path has spaces: {absolute}"
    );
    let list = format!(
        "{evil} ../escaped.bin\n{evil} {absolute}\n{evil} sub/../../escaped2.bin\n{good}\n",
        evil = server.url("/evil.bin"),
        good = server.url("/good.bin"),
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    for line in 1..=3 {
        let text = stderr_line(&run, root, &format!("list.txt:{line}:"));
        assert!(
            text.contains("escapes the output directory"),
            "line {line} should say why: {text:?}\n{}",
            ctx(&run, root)
        );
    }
    assert_eq!(server.hits("/evil.bin"), 0, "{}", ctx(&run, root));
    // Nothing outside out/ but the list itself.
    assert_eq!(
        list_files(root),
        vec!["list.txt", "out/good.bin"],
        "nothing may be written outside the output dir\n{}",
        ctx(&run, root)
    );
    assert!(last_stderr_line(&run).contains("3 failed"), "{}", ctx(&run, root));
}

// ---------------------------------------------------------------------------
// 9. Names from URLs
// ---------------------------------------------------------------------------

#[test]
fn names_are_percent_decoded_without_query_and_index_html_for_slash() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/caf%C3%A9.txt", Route::ok(b"coffee".to_vec()));
    server.route("/report.pdf", Route::ok(b"pdf".to_vec()));
    server.route("/site/", Route::ok(b"<html>".to_vec()));
    let list = format!(
        "{}\n{}?version=2&dl=1\n{}\n",
        server.url("/caf%C3%A9.txt"),
        server.url("/report.pdf"),
        server.url("/site/")
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(
        list_files(&out(root)),
        vec!["café.txt", "index.html", "report.pdf"],
        "{}",
        ctx(&run, root)
    );
    assert_out_file(&run, root, "café.txt", b"coffee");
    assert_out_file(&run, root, "report.pdf", b"pdf");
    assert_out_file(&run, root, "index.html", b"<html>");
    let sent = server.requests_for("/report.pdf");
    assert!(
        sent.iter().any(|r| r.path == "/report.pdf?version=2&dl=1"),
        "the query must still be sent: {sent:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 10. Concurrency
// ---------------------------------------------------------------------------

/// Routes `count` slow files (300 ms before each answer) and writes them to `list.txt`.
fn slow_list(server: &TestServer, root: &Path, count: usize) {
    let mut list = String::new();
    for i in 0..count {
        let path = format!("/slow{i}.bin");
        server.route(
            &path,
            Route::ok(pattern(1000, i as u8)).delay(Duration::from_millis(300)),
        );
        list.push_str(&server.url(&path));
        list.push('\n');
    }
    write_list(root, "list.txt", list);
}

#[test]
fn jobs_1_is_serial() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    slow_list(&server, root, 8);

    let run = fetch_in(root, &["-j", "1", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 8, "{}", ctx(&run, root));
    assert_eq!(
        server.max_concurrent_requests(),
        1,
        "-j 1 must never have two requests in flight\n{}",
        ctx(&run, root)
    );
}

#[test]
fn jobs_8_is_parallel() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    slow_list(&server, root, 16);

    let run = fetch_in(root, &["-j", "8", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 16, "{}", ctx(&run, root));
    for i in 0..16 {
        assert_out_file(&run, root, &format!("slow{i}.bin"), &pattern(1000, i as u8));
    }
    let max = server.max_concurrent_requests();
    assert!(
        (4..=8).contains(&max),
        "-j 8 should keep 4..=8 requests in flight, saw {max}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// 11. Exit code 2
// ---------------------------------------------------------------------------

#[test]
fn missing_input_list_exits_2_naming_it() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(root, "good.txt", serve_all(&server, &[("a.txt", b"a".to_vec())]));

    let run = fetch_in(root, &["-d", "out", "good.txt", "no-such-list.txt"]);

    assert_code(&run, root, 2);
    assert_stderr_has(&run, root, "no-such-list.txt");
    assert_eq!(
        server.hits("/a.txt"),
        0,
        "an unreadable list stops the run before any download\n{}",
        ctx(&run, root)
    );
    assert!(list_files(&out(root)).is_empty(), "{}", ctx(&run, root));
}

#[test]
fn directory_as_input_list_exits_2_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    fs::create_dir(root.join("a-directory")).unwrap();

    let run = fetch_in(root, &["-d", "out", "a-directory"]);

    assert_code(&run, root, 2);
    assert_stderr_has(&run, root, "a-directory");
}

#[test]
fn output_dir_that_is_a_file_exits_2() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(root, "list.txt", serve_all(&server, &[("a.txt", b"a".to_vec())]));
    fs::write(root.join("plainfile"), b"not a dir").unwrap();

    let run = fetch_in(root, &["-d", "plainfile", "list.txt"]);

    assert_code(&run, root, 2);
    assert_stderr_has(&run, root, "plainfile");
    assert_stderr_has(&run, root, "output directory");
    assert_eq!(server.hits("/a.txt"), 0, "{}", ctx(&run, root));
    assert_eq!(
        fs::read(root.join("plainfile")).unwrap(),
        b"not a dir",
        "{}",
        ctx(&run, root)
    );
}

#[test]
fn zero_jobs_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(root, "list.txt", "");

    let run = fetch_in(root, &["-j", "0", "list.txt"]);

    assert_code(&run, root, 2);
    assert!(
        run.stderr.contains("--jobs") || run.stderr.contains("-j"),
        "the error should name the option\n{}",
        ctx(&run, root)
    );
    assert_eq!(list_files(root), vec!["list.txt"], "{}", ctx(&run, root));
}

// ---------------------------------------------------------------------------
// 12. Quiet mode
// ---------------------------------------------------------------------------

#[test]
fn quiet_success_prints_nothing() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(
        root,
        "list.txt",
        serve_all(&server, &[("a.txt", b"a".to_vec()), ("b.txt", b"b".to_vec())]),
    );

    let run = fetch_in(root, &["-q", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(run.stderr, "", "{}", ctx(&run, root));
    assert_eq!(run.stdout, "", "{}", ctx(&run, root));
    assert_out_file(&run, root, "a.txt", b"a");
    assert_out_file(&run, root, "b.txt", b"b");
}

#[test]
fn quiet_failure_prints_the_failure_and_a_count() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/a.txt", Route::ok(b"a".to_vec()));
    let list = format!("{}\n{}\n", server.url("/a.txt"), server.url("/gone.txt"));
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-q", "-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    assert_eq!(run.stdout, "", "{}", ctx(&run, root));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one failure line and one count line\n{}",
        ctx(&run, root)
    );
    assert!(
        lines[0].starts_with("list.txt:2: ") && lines[0].contains("HTTP 404"),
        "failure line {:?}\n{}",
        lines[0],
        ctx(&run, root)
    );
    assert!(
        lines[1].contains("1 of 2") && lines[1].contains("failed"),
        "count line {:?}\n{}",
        lines[1],
        ctx(&run, root)
    );
    assert_out_file(&run, root, "a.txt", b"a");
}

// ---------------------------------------------------------------------------
// 13. Help and version
// ---------------------------------------------------------------------------

#[test]
fn help_mentions_exit_codes_and_examples() {
    for flag in ["--help", "-h"] {
        let run = run(fetchq().arg(flag));
        assert_eq!(run.code(), 0, "{run}");
        let text = run.stdout.to_lowercase();
        for needle in ["exit codes", "examples", "fetchq urls.txt -j 8", "usage"] {
            assert!(text.contains(needle), "{flag} should mention {needle:?}\n{run}");
        }
        for code in ["0 ", "1 ", "2 ", "130"] {
            assert!(
                run.stdout.contains(code),
                "{flag} should list exit code {code:?}\n{run}"
            );
        }
    }
}

#[test]
fn version_prints_the_version() {
    let run = run(fetchq().arg("--version"));
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(
        run.stdout.trim(),
        format!("fetchq {}", env!("CARGO_PKG_VERSION")),
        "{run}"
    );
}

// ---------------------------------------------------------------------------
// 14, 15. Untrusted text in messages
// ---------------------------------------------------------------------------

/// Runs `-d out list.txt` in `root` in each output mode (plain, `-v`, `-q`);
/// every run must exit 1 with an `HTTP 404` on stderr, then pass `check`.
fn for_each_output_mode_failing_with_404(root: &Path, check: impl Fn(&Run)) {
    for extra in [&[][..], &["-v"][..], &["-q"][..]] {
        let mut args = extra.to_vec();
        args.extend(["-d", "out", "list.txt"]);
        let run = fetch_in(root, &args);
        assert_code(&run, root, 1);
        assert_stderr_has(&run, root, "HTTP 404");
        check(&run);
    }
}

#[test]
fn credentials_never_appear_in_failure_messages() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let url = server
        .url("/private/missing.bin")
        .replacen("http://", "http://alice:secret@", 1);
    write_list(root, "list.txt", format!("{url}\n"));

    for_each_output_mode_failing_with_404(root, |run| {
        assert!(
            !run.stderr.contains("secret") && !run.stdout.contains("secret"),
            "the password leaked\n{}",
            ctx(run, root)
        );
    });
}

#[test]
fn ansi_escape_in_url_never_reaches_stderr_raw() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let list = format!(
        "{}\n{} out%1B%5B31m.bin\n",
        server.url("/red%1B%5B31mtext%1B%5B0m.bin"),
        server.url("/x%1B%5B2J.bin")
    );
    write_list(root, "list.txt", list);

    for_each_output_mode_failing_with_404(root, |run| {
        assert!(
            !run.stderr.contains('\x1b') && !run.stdout.contains('\x1b'),
            "raw ESC in output\n{}",
            ctx(run, root)
        );
    });
}

// ---------------------------------------------------------------------------
// 16. Connection reuse
// ---------------------------------------------------------------------------

#[test]
fn connections_are_reused_across_entries() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.txt"), pattern(500 + i, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_list(root, "list.txt", serve_all(&server, &refs));

    let run = fetch_in(root, &["-j", "4", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    for (name, body) in &files {
        assert_out_file(&run, root, name, body);
    }
    let opened = server.connections_opened();
    assert!(
        opened <= 8,
        "20 small files with -j 4 should reuse connections, but {opened} were opened\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// Extras around the same contract
// ---------------------------------------------------------------------------

/// A decoded name with a control character is sanitised on disk and escaped
/// in verbose lines: a successful download must not print a raw ESC either.
#[test]
fn ansi_escape_in_a_downloaded_name_is_sanitised() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/e%1B%5B31m.bin", Route::ok(b"red".to_vec()));
    write_list(root, "list.txt", format!("{}\n", server.url("/e%1B%5B31m.bin")));

    let run = fetch_in(root, &["-v", "-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)), vec!["e_[31m.bin"], "{}", ctx(&run, root));
    assert_out_file(&run, root, "e_[31m.bin", b"red");
    assert!(
        !run.stderr.contains('\x1b'),
        "raw ESC in output\n{}",
        ctx(&run, root)
    );
}

/// Encoded slashes in the last segment never climb out of the output dir.
#[test]
fn encoded_slashes_in_a_name_stay_inside() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/..%2F..%2Fescaped.txt", Route::ok(b"inside".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n", server.url("/..%2F..%2Fescaped.txt")),
    );

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(
        list_files(root),
        vec!["list.txt", "out/.._.._escaped.txt"],
        "{}",
        ctx(&run, root)
    );
}

/// Numbered names depend only on the list, so a second run of the same list
/// finds every file in place and skips it without a request.
#[test]
fn rerunning_the_same_list_skips_everything() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/a/x.bin", Route::ok(b"from a".to_vec()));
    server.route("/b/x.bin", Route::ok(b"from b".to_vec()));
    let list = format!("{}\n{}\n", server.url("/a/x.bin"), server.url("/b/x.bin"));
    write_list(root, "list.txt", list);

    let first = fetch_in(root, &["-d", "out", "list.txt"]);
    assert_code(&first, root, 0);
    let second = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&second, root, 0);
    assert_eq!(server.hits("/a/x.bin"), 1, "{}", ctx(&second, root));
    assert_eq!(server.hits("/b/x.bin"), 1, "{}", ctx(&second, root));
    assert_out_file(&second, root, "x.bin", b"from a");
    assert_out_file(&second, root, "x-1.bin", b"from b");
    assert!(
        last_stderr_line(&second).contains("0 downloaded, 2 skipped"),
        "{}",
        ctx(&second, root)
    );
}

/// Without -c a leftover NAME.part is replaced, never appended to.
#[test]
fn leftover_part_file_is_replaced_without_continue() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let body = pattern(50_000, 9);
    server.route("/p.bin", Route::ok(body.clone()));
    write_out_file(root, "p.bin.part", b"stale bytes from an old run");
    write_list(root, "list.txt", format!("{}\n", server.url("/p.bin")));

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "p.bin", &body);
    assert_no_part(&run, root);
}

#[test]
fn non_utf8_line_fails_with_its_line_number() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    server.route("/ok.txt", Route::ok(b"ok".to_vec()));
    let mut list = b"\xff\xfe garbage\n".to_vec();
    list.extend_from_slice(format!("{}\n", server.url("/ok.txt")).as_bytes());

    let run = fetch_in_with_stdin(root, &["-d", "out"], &list);

    assert_code(&run, root, 1);
    let line = stderr_line(&run, root, "-:1:");
    assert!(line.contains("UTF-8"), "{line:?}\n{}", ctx(&run, root));
    assert_out_file(&run, root, "ok.txt", b"ok");
}

#[test]
fn empty_list_succeeds_with_nothing_to_do() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();

    let run = fetch_in_with_stdin(root, &["-d", "out"], b"# nothing here\n\n");

    assert_code(&run, root, 0);
    assert!(
        last_stderr_line(&run).contains("0 downloaded"),
        "{}",
        ctx(&run, root)
    );
    assert!(list_files(&out(root)).is_empty(), "{}", ctx(&run, root));
}
