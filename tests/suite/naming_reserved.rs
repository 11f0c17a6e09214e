//! Naming integrity: a file and its in-progress `NAME.part` are reserved
//! together, one name is never both a file and a folder, explicit names are
//! never cut, URL names are cut by the documented rule, and names from
//! `Content-Disposition` are numbered in list order whatever order the
//! responses arrive in.

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::*;

/// Big enough that its part file is named `NAME.part` (past 1 MiB).
const BIG: usize = 1536 * 1024;

/// Serves `body` slowly: 64 KiB every 25 ms, about 0.6 s for [`BIG`].
fn slow(body: Vec<u8>) -> Route {
    Route::ok(body).drip(64 * 1024, Duration::from_millis(25))
}

fn run_list(root: &Path, list: &str, args: &[&str]) -> Run {
    write_list(root, "list.txt", list);
    fetch_in(root, &list_args("out", args))
}

/// Asserts the files under `out` are exactly `want` (in any order).
fn assert_out_files(run: &Run, root: &Path, want: &[&str]) {
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(
        list_files(&out(root)),
        want,
        "files under out\n{}",
        ctx(run, root)
    );
}

/// Asserts stderr reports line `line` of `list.txt` failed with `reason`.
fn assert_line_fails(run: &Run, root: &Path, line: u32, reason: &str) {
    let reported = stderr_line(run, root, &format!("list.txt:{line}: "));
    assert!(
        reported.ends_with(&format!(": {reason}")),
        "line {line} should fail with {reason:?}\n{}",
        ctx(run, root)
    );
}

#[test]
fn a_url_named_like_another_entrys_part_gets_a_number() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let big = pattern(BIG, 1);
    server.route("/a/x.bin", slow(big.clone()));
    server.route("/b/x.bin.part", Route::ok(b"small".to_vec()));
    let list = format!("{}\n{}\n", server.url("/a/x.bin"), server.url("/b/x.bin.part"));

    let run = run_list(root, &list, &["-j", "2"]);

    assert_code(&run, root, 0);
    assert_out_files(&run, root, &["x.bin", "x.bin-1.part"]);
    assert_out_file(&run, root, "x.bin", &big);
    assert_out_file(&run, root, "x.bin-1.part", b"small");
}

#[test]
fn a_server_name_like_another_entrys_part_gets_a_number() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let big = pattern(BIG, 2);
    server.route("/a/other.bin", slow(big.clone()));
    server.route(
        "/b/get",
        Route::ok(b"small".to_vec()).header("Content-Disposition", "attachment; filename=\"other.bin.part\""),
    );
    let list = format!("{}\n{}\n", server.url("/a/other.bin"), server.url("/b/get"));

    let run = run_list(root, &list, &["-j", "2", "--content-disposition"]);

    assert_code(&run, root, 0);
    assert_out_files(&run, root, &["other.bin", "other.bin-1.part"]);
    assert_out_file(&run, root, "other.bin", &big);
    assert_out_file(&run, root, "other.bin-1.part", b"small");
}

#[test]
fn an_explicit_out_on_another_entrys_part_fails_its_line() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/x.bin", Route::ok(b"x".to_vec()));
    server.route("/y", Route::ok(b"y".to_vec()));
    server.route("/z", Route::ok(b"z".to_vec()));
    let list = format!(
        "{}\n{} x.bin.part\n{} w.bin.part\n{} w.bin\n",
        server.url("/x.bin"),
        server.url("/y"),
        server.url("/y"),
        server.url("/z")
    );

    let run = run_list(root, &list, &[]);

    assert_code(&run, root, 1);
    assert_line_fails(
        &run,
        root,
        2,
        "output path x.bin.part clashes with x.bin of line 1 (NAME and NAME.part are reserved together)",
    );
    assert_line_fails(
        &run,
        root,
        4,
        "output path w.bin clashes with w.bin.part of line 3 (NAME and NAME.part are reserved together)",
    );
    assert_out_files(&run, root, &["w.bin.part", "x.bin"]);
    assert_eq!(
        server.hits("/z"),
        0,
        "line 4 fails before any request\n{}",
        ctx(&run, root)
    );
}

#[test]
fn a_name_used_as_file_and_folder_fails_the_later_line_before_any_download() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/x.bin", Route::ok(b"x".to_vec()));
    server.route("/y.bin", Route::ok(b"y".to_vec()));

    // A file, then a folder of the same name.
    let list = format!("{} a\n{} a/b\n", server.url("/x.bin"), server.url("/y.bin"));
    let run = run_list(root, &list, &[]);
    assert_code(&run, root, 1);
    assert_line_fails(
        &run,
        root,
        2,
        "output path a/b needs a as a folder, but line 1 writes it as a file",
    );
    assert_eq!(server.hits("/y.bin"), 0, "{}", ctx(&run, root));
    assert_out_files(&run, root, &["a"]);
    assert_out_file(&run, root, "a", b"x");

    // A folder, then a file of the same name.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let list = format!("{} a/b\n{} a\n", server.url("/y.bin"), server.url("/x.bin"));
    let run = run_list(root, &list, &[]);
    assert_code(&run, root, 1);
    assert_line_fails(&run, root, 2, "output path a is used as a folder by line 1");
    assert_eq!(
        server.hits("/x.bin"),
        1,
        "only the first run asked for it\n{}",
        ctx(&run, root)
    );
    assert_out_files(&run, root, &["a/b"]);
    assert_out_file(&run, root, "a/b", b"y");
}

#[test]
fn explicit_names_over_the_limit_fail_their_line() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f", Route::ok(b"f".to_vec()));
    let at_limit = "n".repeat(250);
    // Two names that a cut to the same length would have merged into one.
    let over_a = format!("{}a.bin", "n".repeat(250));
    let over_b = format!("{}b.bin", "n".repeat(250));
    let long_folder = format!("{}/f", "d".repeat(256));
    let list = format!(
        "{url} {at_limit}\n{url} {over_a}\n{url} {over_b}\n{url} {long_folder}\n",
        url = server.url("/f")
    );

    let run = run_list(root, &list, &[]);

    assert_code(&run, root, 1);
    for (line, bytes) in [(2, 255), (3, 255), (4, 256)] {
        let reason =
            format!("output path has a name of {bytes} bytes (at most 250 for a file, 255 for a folder)");
        assert_line_fails(&run, root, line, &reason);
    }
    assert_out_files(&run, root, &[at_limit.as_str()]);
}

#[test]
fn long_url_names_are_cut_to_leave_room_for_numbers_and_part() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let long = format!("{}.pdf", "l".repeat(300));
    server.route(&format!("/a/{long}"), Route::ok(b"a".to_vec()));
    server.route(&format!("/b/{long}"), Route::ok(b"b".to_vec()));
    let list = format!(
        "{}\n{}\n",
        server.url(&format!("/a/{long}")),
        server.url(&format!("/b/{long}"))
    );

    let run = run_list(root, &list, &["-j", "1"]);

    assert_code(&run, root, 0);
    let first = format!("{}.pdf", "l".repeat(246));
    let second = format!("{}-1.pdf", "l".repeat(244));
    assert_eq!((first.len(), second.len()), (250, 250));
    assert_out_files(&run, root, &[first.as_str(), second.as_str()]);
    assert_out_file(&run, root, &first, b"a");
    assert_out_file(&run, root, &second, b"b");
}

/// Two entries offered the same `Content-Disposition` name, the first one
/// answering `first_delay` later than the second (or the reverse).
fn colliding_server_names(first_delay: Duration, second_delay: Duration) {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let offer = "attachment; filename=\"report.pdf\"";
    server.route(
        "/1",
        Route::ok(b"first".to_vec())
            .header("Content-Disposition", offer)
            .delay(first_delay),
    );
    server.route(
        "/2",
        Route::ok(b"second".to_vec())
            .header("Content-Disposition", offer)
            .delay(second_delay),
    );
    let list = format!("{}\n{}\n", server.url("/1"), server.url("/2"));

    let run = run_list(root, &list, &["-j", "2", "--content-disposition"]);

    assert_code(&run, root, 0);
    assert_out_files(&run, root, &["report-1.pdf", "report.pdf"]);
    assert_out_file(&run, root, "report.pdf", b"first");
    assert_out_file(&run, root, "report-1.pdf", b"second");
}

#[test]
fn server_names_are_numbered_in_list_order_when_the_first_answers_last() {
    colliding_server_names(Duration::from_millis(400), Duration::ZERO);
}

#[test]
fn server_names_are_numbered_in_list_order_when_the_first_answers_first() {
    colliding_server_names(Duration::ZERO, Duration::from_millis(400));
}

/// Entries of two hosts under `--per-host 1`, all offered one name: every
/// entry waits for the earlier ones' names, the per-host queue never strands
/// an earlier entry behind a waiting later one, and names follow the list.
#[test]
fn server_names_follow_the_list_under_per_host_limits() {
    let servers = [TestServer::start(), TestServer::start()];
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let offer = "attachment; filename=\"same.bin\"";
    let mut list = String::new();
    for i in 0..8 {
        let server = &servers[i % 2];
        // Later entries answer sooner, so completion order is the reverse of the list.
        let delay = Duration::from_millis(40 * (8 - i as u64));
        let path = format!("/e{i}");
        server.route(
            &path,
            Route::ok(format!("entry {i}").into_bytes())
                .header("Content-Disposition", offer)
                .delay(delay),
        );
        list.push_str(&server.url(&path));
        list.push('\n');
    }

    let run = run_list(
        root,
        &list,
        &["-j", "3", "--per-host", "1", "--content-disposition"],
    );

    assert_code(&run, root, 0);
    assert_out_file(&run, root, "same.bin", b"entry 0");
    for i in 1..8 {
        assert_out_file(
            &run,
            root,
            &format!("same-{i}.bin"),
            format!("entry {i}").as_bytes(),
        );
    }
}
