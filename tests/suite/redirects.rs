//! Following redirects: chains named from the original URL, loops,
//! `--max-redirects`, refused schemes, and credentials dropped when a redirect
//! leaves the origin.

use crate::support::*;

// ---------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------

#[test]
fn chain_of_three_redirects_is_followed_and_named_from_the_original_url() {
    let t = Setup::new();
    t.list(&[t.serve("/start.bin", Route::redirect(301, "/r1"))]);
    t.serve("/r1", Route::redirect(302, "/r2"));
    t.serve("/r2", Route::redirect(307, "/final.dat"));
    t.serve("/final.dat", Route::ok(b"end of chain".to_vec()));

    t.run(&[])
        .assert_downloaded_alone("out/start.bin", b"end of chain");
}

#[test]
fn redirect_loop_fails_naming_the_loop() {
    let t = Setup::new();
    t.list(&[t.serve("/loop1", Route::redirect(302, "/loop2"))]);
    t.serve("/loop2", Route::redirect(302, "/loop1"));

    t.run(&["--retries", "2"])
        .assert_code(1)
        .assert_stderr_has("redirect loop")
        .assert_files(&["list.txt"]);
}

#[test]
fn max_redirects_is_enforced() {
    let t = Setup::new();
    t.list(&[t.serve("/start.bin", Route::redirect(302, "/r1"))]);
    t.serve("/r1", Route::redirect(302, "/r2"));
    t.serve("/r2", Route::redirect(302, "/final.dat"));
    t.serve("/final.dat", Route::ok(b"end".to_vec()));

    let run = t.run(&["--max-redirects", "2"]);

    run.assert_code(1)
        .assert_stderr_has("too many redirects")
        .assert_files(&["list.txt"]);
    t.assert_hits(&run, "/final.dat", 0);
}

#[test]
fn redirect_to_ftp_is_refused() {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", Route::redirect(302, "ftp://127.0.0.1/f.bin"))]);

    t.run(&[])
        .assert_code(1)
        .assert_stderr_has("unsupported scheme")
        .assert_files(&["list.txt"]);
}

#[test]
fn credentials_are_dropped_when_a_redirect_leaves_the_origin() {
    let first = TestServer::start();
    let other = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    first.route("/start.bin", Route::redirect(302, "/mid"));
    first.route("/mid", Route::redirect(302, &other.url("/file")));
    other.route("/file", Route::ok(b"public".to_vec()));
    list_of(root, &first.url("/start.bin"));

    let run = fetch(
        root,
        &[
            "-H",
            "Authorization: Bearer x",
            "-H",
            "Cookie: session=1",
            "-H",
            "X-Custom: kept",
        ],
    );

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/start.bin", b"public");
    let msg = || {
        format!(
            "first server:\n{}\nother server:\n{}\n{}",
            requests_text(&first),
            requests_text(&other),
            ctx(&run, root)
        )
    };
    for path in ["/start.bin", "/mid"] {
        let req = nth_request(&first, path, 0, &run, root);
        assert_eq!(req.header("authorization"), Some("Bearer x"), "{path}\n{}", msg());
        assert_eq!(req.header("cookie"), Some("session=1"), "{path}\n{}", msg());
        assert_eq!(req.header("x-custom"), Some("kept"), "{path}\n{}", msg());
    }
    let req = nth_request(&other, "/file", 0, &run, root);
    assert_eq!(req.header("authorization"), None, "{}", msg());
    assert_eq!(req.header("cookie"), None, "{}", msg());
    assert_eq!(req.header("x-custom"), Some("kept"), "{}", msg());
}
