//! Reading URL lists: files, stdin and `-`, `-i` in order, comments, blank
//! lines, CRLF and a BOM, invalid and non-UTF-8 lines.

use crate::support::*;

// ---------------------------------------------------------------------------
// Where lists come from
// ---------------------------------------------------------------------------

#[test]
fn list_on_stdin_without_file_argument() {
    let t = Setup::new();
    let list = format!(
        "{}\n{}\n",
        t.serve("/a.txt", Route::ok(b"A".to_vec())),
        t.serve("/b.txt", Route::ok(b"BB".to_vec()))
    );

    t.run_with_stdin(&["-d", "out"], list.as_bytes())
        .assert_code(0)
        .assert_out_files(&["a.txt", "b.txt"])
        .assert_out_file("a.txt", b"A")
        .assert_out_file("b.txt", b"BB")
        .assert_stderr_has("2 downloaded");
}

/// Three lists whose entries all want the name `x.bin`: collisions are named
/// in reading order, so the file names prove the order the lists were read.
#[test]
fn several_lists_and_dash_are_read_in_order() {
    let t = Setup::new();
    let url = |dir: &str| t.serve(&format!("/{dir}/x.bin"), Route::ok(dir.as_bytes().to_vec()));
    t.list_as("one.txt", &[url("first")]);
    t.list_as("three.txt", &[url("third")]);
    let stdin = format!("{}\n", url("second"));

    t.run_with_stdin(
        &["-j", "1", "-d", "out", "one.txt", "-", "three.txt"],
        stdin.as_bytes(),
    )
    .assert_code(0)
    .assert_out_files(&["x-1.bin", "x-2.bin", "x.bin"])
    .assert_out_file("x.bin", b"first")
    .assert_out_file("x-1.bin", b"second")
    .assert_out_file("x-2.bin", b"third")
    .assert_stderr_has("3 downloaded");
}

/// `-i` lists are read before the FILE arguments, wherever they appear.
#[test]
fn input_file_option_is_read_before_file_arguments() {
    let t = Setup::new();
    t.list_as(
        "pos.txt",
        &[t.serve("/pos/x.bin", Route::ok(b"positional".to_vec()))],
    );
    t.list_as("opt.txt", &[t.serve("/opt/x.bin", Route::ok(b"option".to_vec()))]);

    t.run_raw(&["-d", "out", "pos.txt", "-i", "opt.txt"])
        .assert_code(0)
        .assert_out_file("x.bin", b"option")
        .assert_out_file("x-1.bin", b"positional");
}

#[test]
fn input_file_option_alone() {
    let t = Setup::new();
    t.list_as("l.txt", &[t.serve("/only.txt", Route::ok(b"only".to_vec()))]);

    t.run_raw(&["-d", "out", "--input-file", "l.txt"])
        .assert_code(0)
        .assert_out_file("only.txt", b"only");
}

/// Three lists whose entries all want `x.bin`: collisions are numbered in
/// reading order, so the names prove the order the lists were read.
#[test]
fn input_file_option_repeated_is_read_in_order() {
    let t = Setup::new();
    for dir in ["first", "second", "third"] {
        let url = t.serve(&format!("/{dir}/x.bin"), Route::ok(dir.as_bytes().to_vec()));
        t.list_as(&format!("{dir}.txt"), &[url]);
    }

    let args = [
        "-d",
        "out",
        "-i",
        "first.txt",
        "-i",
        "second.txt",
        "--input-file",
        "third.txt",
    ];
    t.run_raw(&args)
        .assert_code(0)
        .assert_out_files(&["x-1.bin", "x-2.bin", "x.bin"])
        .assert_out_file("x.bin", b"first")
        .assert_out_file("x-1.bin", b"second")
        .assert_out_file("x-2.bin", b"third");
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
    let t = Setup::new();
    t.list(&[
        t.serve("/good1.txt", Route::ok(b"good one".to_vec())),
        "not a url".to_string(),
        "ftp://example.com/file.bin".to_string(),
        t.serve("/good2.txt", Route::ok(b"good two".to_vec())),
    ]);

    let run = t.run(&[]);

    run.assert_code(1)
        .assert_out_files(&["good1.txt", "good2.txt"])
        .assert_out_file("good1.txt", b"good one")
        .assert_out_file("good2.txt", b"good two")
        .assert_summary_has("2 downloaded")
        .assert_summary_has("2 failed");
    let bad_url = run.stderr_line("list.txt:2:");
    assert!(
        bad_url.starts_with("list.txt:2: ")
            && bad_url.contains("not a url")
            && bad_url.contains("invalid URL"),
        "line 2 should be named with its text and reason: {bad_url:?}\n{}",
        run.ctx()
    );
    let ftp = run.stderr_line("list.txt:3:");
    assert!(
        ftp.starts_with("list.txt:3: ")
            && ftp.contains("ftp://example.com/file.bin")
            && ftp.contains("scheme"),
        "line 3 should be named with its text and reason: {ftp:?}\n{}",
        run.ctx()
    );
}

// ---------------------------------------------------------------------------
// Odd lists
// ---------------------------------------------------------------------------

#[test]
fn non_utf8_line_fails_with_its_line_number() {
    let t = Setup::new();
    let mut list = b"\xff\xfe garbage\n".to_vec();
    list.extend_from_slice(format!("{}\n", t.serve("/ok.txt", Route::ok(b"ok".to_vec()))).as_bytes());

    let run = t.run_with_stdin(&["-d", "out"], &list);

    run.assert_code(1).assert_out_file("ok.txt", b"ok");
    let line = run.stderr_line("-:1:");
    assert!(line.contains("UTF-8"), "{line:?}\n{}", run.ctx());
}

#[test]
fn empty_list_succeeds_with_nothing_to_do() {
    let t = Setup::new();

    t.run_with_stdin(&["-d", "out"], b"# nothing here\n\n")
        .assert_code(0)
        .assert_summary_has("0 downloaded")
        .assert_out_files(&[]);
}
