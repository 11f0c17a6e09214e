//! `.netrc`: read by default from HOME, a login goes only to the host its
//! `machine` names and never after a redirect to another origin, a URL's own
//! `user:password@` wins, and a file others can read is warned about.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{Route, TestServer, assert_code, fetch_in_with_env, pattern, write_list};

/// `Basic` credentials as a server sees them.
fn basic(login: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{login}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    format!("Basic {out}")
}

/// A HOME holding `.netrc` with `text`, readable by its owner only unless `mode` says otherwise.
fn home_with_netrc(root: &Path, text: &str, mode: u32) -> String {
    let home = root.join("home");
    fs::create_dir_all(&home).unwrap();
    let netrc = home.join(".netrc");
    fs::write(&netrc, text).unwrap();
    fs::set_permissions(&netrc, fs::Permissions::from_mode(mode)).unwrap();
    home.to_string_lossy().into_owned()
}

#[test]
fn a_machine_entry_logs_in_to_its_host_only() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(100, 1)));
    let url = server.url("/a.bin");
    write_list(root, "urls.txt", format!("{url}\n"));
    let home = home_with_netrc(
        root,
        "machine 127.0.0.1 login alice password s3cret\nmachine other login bob password x\n",
        0o600,
    );

    let run = fetch_in_with_env(root, &["-d", "out", "urls.txt"], &[("HOME", &home)]);

    assert_code(&run, root, 0);
    assert!(!run.stderr.contains("warning"), "{run}");
    let sent = server.requests_for("/a.bin");
    assert_eq!(
        sent[0].header("authorization"),
        Some(basic("alice", "s3cret").as_str()),
        "{run}"
    );

    let skipped = fetch_in_with_env(
        root,
        &["--no-netrc", "--overwrite", "-d", "out", "urls.txt"],
        &[("HOME", &home)],
    );
    assert_code(&skipped, root, 0);
    assert_eq!(
        server.requests_for("/a.bin")[1].header("authorization"),
        None,
        "{skipped}"
    );
}

#[test]
fn a_redirect_to_another_origin_never_carries_the_login() {
    let first = TestServer::start();
    let second = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    second.route("/b.bin", Route::ok(pattern(100, 2)));
    first.route("/a.bin", Route::redirect(302, &second.url("/b.bin")));
    write_list(root, "urls.txt", format!("{}\n", first.url("/a.bin")));
    // Both servers are 127.0.0.1 (other ports, so other origins): an entry
    // for the host must still not follow the download to the second origin.
    let home = home_with_netrc(root, "machine 127.0.0.1 login alice password s3cret\n", 0o600);

    let run = fetch_in_with_env(root, &["-d", "out", "urls.txt"], &[("HOME", &home)]);

    assert_code(&run, root, 0);
    assert_eq!(
        first.requests_for("/a.bin")[0].header("authorization"),
        Some(basic("alice", "s3cret").as_str()),
        "{run}"
    );
    assert_eq!(
        second.requests_for("/b.bin")[0].header("authorization"),
        None,
        "{run}"
    );
}

#[test]
fn the_urls_own_login_wins_and_an_open_netrc_is_warned_about() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(100, 3)));
    let url = server.url("/a.bin").replacen("http://", "http://carol:pw@", 1);
    write_list(root, "urls.txt", format!("{url}\n"));
    let home = home_with_netrc(root, "default login alice password s3cret\n", 0o644);

    let run = fetch_in_with_env(root, &["-d", "out", "urls.txt"], &[("HOME", &home)]);

    assert_code(&run, root, 0);
    assert!(run.stderr.contains(".netrc can be read by other users"), "{run}");
    assert_eq!(
        server.requests_for("/a.bin")[0].header("authorization"),
        Some(basic("carol", "pw").as_str()),
        "{run}"
    );
}

#[test]
fn a_broken_or_missing_netrc_file_is_a_usage_error_without_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(root, "urls.txt", "http://127.0.0.1:9/a.bin\n");
    fs::write(root.join("mine"), "machine h login u\npassword my s3cret\n").unwrap();

    let run = fetch_in_with_env(root, &["--netrc-file", "mine", "-d", "out", "urls.txt"], &[]);
    assert_code(&run, root, 2);
    assert!(
        run.stderr.contains("cannot use mine: line 2: unexpected word"),
        "{run}"
    );
    assert!(!run.stderr.contains("s3cret"), "{run}");

    let missing = fetch_in_with_env(root, &["--netrc-file", "nope", "urls.txt"], &[]);
    assert_code(&missing, root, 2);
    assert!(missing.stderr.contains("cannot read nope"), "{missing}");
}
