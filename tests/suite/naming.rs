//! Where a URL's bytes land: names from URLs (percent-decoded, without the
//! query, `index.html` for a trailing slash), explicit OUT paths with
//! sub-folders and quotes, numbered collisions and duplicate URLs.

use crate::support::*;

// ---------------------------------------------------------------------------
// Name collisions and duplicates
// ---------------------------------------------------------------------------

#[test]
fn different_urls_with_the_same_name_are_numbered_in_list_order() {
    let t = Setup::new();
    t.list(&[
        t.serve("/a/x.bin", Route::ok(pattern(1000, 2))),
        t.serve("/b/x.bin", Route::ok(pattern(2000, 3))),
        t.serve("/c/x.bin", Route::ok(pattern(3000, 4))),
    ]);

    // Parallel on purpose: the names must not depend on which finishes first.
    t.run(&["-j", "8"])
        .assert_code(0)
        .assert_out_files(&["x-1.bin", "x-2.bin", "x.bin"])
        .assert_out_file("x.bin", &pattern(1000, 2))
        .assert_out_file("x-1.bin", &pattern(2000, 3))
        .assert_out_file("x-2.bin", &pattern(3000, 4));
}

#[test]
fn the_same_url_twice_is_downloaded_once() {
    let t = Setup::new();
    let url = t.serve("/x.bin", Route::ok(b"once".to_vec()));
    t.list(&[&url, &url]);

    let run = t.run(&[]);

    run.assert_code(0)
        .assert_out_files(&["x.bin"])
        .assert_out_file("x.bin", b"once")
        .assert_summary_has("1 downloaded, 1 skipped, 0 failed");
    t.assert_hits(&run, "/x.bin", 1);
}

// ---------------------------------------------------------------------------
// Explicit OUT paths
// ---------------------------------------------------------------------------

#[test]
fn out_with_sub_folders_creates_them() {
    let t = Setup::new();
    let deep = t.serve("/src.bin", Route::ok(b"deep".to_vec()));
    let folder = t.serve("/into/folder.txt", Route::ok(b"in folder".to_vec()));
    t.list(&[format!("{deep} sub/dir/name.bin"), format!("{folder} docs/")]);

    t.run(&[])
        .assert_code(0)
        .assert_out_files(&["docs/folder.txt", "sub/dir/name.bin"])
        .assert_out_file("sub/dir/name.bin", b"deep")
        .assert_out_file("docs/folder.txt", b"in folder");
}

/// A quoted OUT may hold spaces; a quote left open fails that line only.
#[test]
fn quoted_out_with_spaces_is_one_field() {
    let t = Setup::new();
    let report = t.serve("/r", Route::ok(b"may report".to_vec()));
    let second = t.serve("/s", Route::ok(b"second".to_vec()));
    t.list(&[
        format!("{report} \"reports/May 2026.pdf\""),
        format!("{second} \"never closed.txt"),
    ]);

    let run = t.run(&[]);

    run.assert_code(1)
        .assert_out_files(&["reports/May 2026.pdf"])
        .assert_out_file("reports/May 2026.pdf", b"may report");
    let line = run.stderr_line("list.txt:2:");
    assert!(line.contains("unbalanced quote"), "{}", run.ctx());
}

// ---------------------------------------------------------------------------
// Names from URLs
// ---------------------------------------------------------------------------

#[test]
fn names_are_percent_decoded_without_query_and_index_html_for_slash() {
    let t = Setup::new();
    t.list(&[
        t.serve("/caf%C3%A9.txt", Route::ok(b"coffee".to_vec())),
        t.serve("/report.pdf", Route::ok(b"pdf".to_vec())) + "?version=2&dl=1",
        t.serve("/site/", Route::ok(b"<html>".to_vec())),
    ]);

    let run = t.run(&[]);

    run.assert_code(0)
        .assert_out_files(&["café.txt", "index.html", "report.pdf"])
        .assert_out_file("café.txt", b"coffee")
        .assert_out_file("report.pdf", b"pdf")
        .assert_out_file("index.html", b"<html>");
    let sent = t.request(&run, "/report.pdf", 0);
    assert_eq!(
        sent.path,
        "/report.pdf?version=2&dl=1",
        "the query is sent\n{}",
        run.ctx()
    );
}
