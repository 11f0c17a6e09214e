//! Reading URL lists: files, stdin and `-`, `-i` in order, comments, blank
//! lines, CRLF and a BOM, invalid and non-UTF-8 lines.

use crate::support::*;

// ---------------------------------------------------------------------------
// Where lists come from
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
// List syntax: comments, blank lines, CRLF, BOM
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
// Invalid lines
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
// Odd lists
// ---------------------------------------------------------------------------

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
