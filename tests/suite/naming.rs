//! Where a URL's bytes land: names from URLs (percent-decoded, without the
//! query, `index.html` for a trailing slash), explicit OUT paths with
//! sub-folders and quotes, numbered collisions and duplicate URLs.

use crate::support::*;

// ---------------------------------------------------------------------------
// Name collisions and duplicates
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
// Explicit OUT paths
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

// ---------------------------------------------------------------------------
// Names from URLs
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
