//! URLs on the command line, as every peer takes them: `fetchq URL…`, mixed
//! with list files in order, `-o NAME` for a single URL, and messages that
//! name the argument. And `#` after a blank starts a comment in a list.

use crate::support;

use std::fs;

use support::{Route, TestServer, assert_code, fetch_in, list_files, out, pattern, write_list};

#[test]
fn a_url_argument_is_downloaded_like_a_one_line_list() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/file.iso", Route::ok(pattern(9000, 1)));

    let run = fetch_in(root, &["-d", "out", &server.url("/file.iso")]);

    assert_code(&run, root, 0);
    assert_eq!(
        fs::read(out(root).join("file.iso")).ok(),
        Some(pattern(9000, 1)),
        "{run}"
    );
}

#[test]
fn urls_and_lists_mix_in_order_and_failures_name_the_argument() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(100, 2)));
    server.route("/b.bin", Route::ok(pattern(200, 3)));
    server.route("/same.bin", Route::ok(pattern(300, 4)));
    write_list(root, "list.txt", format!("{}\n", server.url("/b.bin")));
    let missing = server.url("/missing.bin");

    // Two entries want same.bin: the one given first gets the plain name.
    let same_in_list = format!("{}?from=list", server.url("/same.bin"));
    write_list(root, "more.txt", format!("{same_in_list}\n"));
    let run = fetch_in(
        root,
        &[
            "-j",
            "1",
            "-d",
            "out",
            &server.url("/a.bin"),
            "list.txt",
            &missing,
            &format!("{}?from=arg", server.url("/same.bin")),
            "more.txt",
        ],
    );

    assert_code(&run, root, 1);
    assert_eq!(
        fs::read(out(root).join("a.bin")).ok(),
        Some(pattern(100, 2)),
        "{run}"
    );
    assert_eq!(
        fs::read(out(root).join("b.bin")).ok(),
        Some(pattern(200, 3)),
        "{run}"
    );
    let order: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path_only().to_string())
        .collect();
    assert_eq!(
        order,
        ["/a.bin", "/b.bin", "/missing.bin", "/same.bin", "/same.bin"],
        "{run}"
    );
    let arg_request = &server.requests()[3];
    assert!(arg_request.path.ends_with("from=arg"), "{arg_request:?}");
    assert!(
        run.stderr.contains(&format!("argument 2: {missing}: HTTP 404")),
        "the failure names the argument, not -:LINE\n{run}"
    );
    assert!(!run.stderr.contains("argument 2:1"), "{run}");
    assert!(list_files(root).contains(&"out/same-1.bin".to_string()), "{run}");
}

#[test]
fn output_names_the_one_url_and_needs_exactly_one() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/file.iso", Route::ok(pattern(500, 5)));
    let url = server.url("/file.iso");

    let run = fetch_in(root, &["-d", "out", "-o", "renamed \"v2\".iso", &url]);
    assert_code(&run, root, 0);
    assert_eq!(
        fs::read(out(root).join("renamed \"v2\".iso")).ok(),
        Some(pattern(500, 5)),
        "{run}"
    );

    let two = fetch_in(root, &["-d", "out", "-o", "x.iso", &url, &url]);
    assert_code(&two, root, 2);
    assert!(
        two.stderr.contains("-o/--output names the file of one URL"),
        "{two}"
    );
    let none = fetch_in(root, &["-o", "x.iso", "list.txt"]);
    assert_code(&none, root, 2);
}

#[test]
fn a_hash_after_a_blank_starts_a_comment_in_a_list() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(100, 6)));
    server.route("/b.bin", Route::ok(pattern(100, 7)));
    write_list(
        root,
        "list.txt",
        format!(
            "{} #mirror-of-upstream\n{}   # the first file\n",
            server.url("/a.bin"),
            server.url("/b.bin")
        ),
    );

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)), ["a.bin", "b.bin"], "{run}");
}
