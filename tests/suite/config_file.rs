//! The config file: found where README says, applied to download runs and
//! workers, overridden by the command line, and precise about a bad line.

use crate::support;

use std::fs;
use std::path::Path;

use support::{Route, TestServer, assert_code, fetch_in_with_env, list_files, pattern, write_list};

/// A list of one served file, `a.bin`; returns its body.
fn one_file(server: &TestServer, root: &Path) -> Vec<u8> {
    let body = pattern(4000, 9);
    server.route("/a.bin", Route::ok(body.clone()));
    write_list(root, "urls.txt", format!("{}\n", server.url("/a.bin")));
    body
}

fn write_config(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn the_xdg_config_applies_and_the_command_line_wins() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = one_file(&server, root);
    let xdg = root.join("xdg");
    write_config(
        &xdg.join("fetchq/config"),
        "# defaults for every run\n-d from-config\n--overwrite   # always fresh\n\n-H \"X-Team: a b\"\n",
    );
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];

    let first = fetch_in_with_env(root, &["urls.txt"], &env);
    assert_code(&first, root, 0);
    assert_eq!(
        fs::read(root.join("from-config/a.bin")).ok(),
        Some(body.clone()),
        "{first}"
    );
    let request = server.requests_for("/a.bin").pop().expect("a request");
    assert_eq!(request.header("x-team"), Some("a b"), "{first}");

    // -d and -N on the command line win over -d and --overwrite (which
    // conflicts with -N) in the file; -H on the command line replaces the file's.
    let second = fetch_in_with_env(root, &["-d", "out", "-N", "-H", "X-Team: c", "urls.txt"], &env);
    assert_code(&second, root, 0);
    assert_eq!(fs::read(root.join("out/a.bin")).ok(), Some(body), "{second}");
    let request = server.requests_for("/a.bin").pop().expect("a request");
    assert_eq!(request.header("x-team"), Some("c"), "{second}");
}

#[test]
fn home_config_is_the_fallback_and_no_config_skips_it() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = one_file(&server, root);
    let home = root.join("home");
    write_config(&home.join(".config/fetchq/config"), "--dir from-home\n");
    let env = [("HOME", home.to_str().unwrap())];

    let run = fetch_in_with_env(root, &["urls.txt"], &env);
    assert_code(&run, root, 0);
    assert_eq!(
        fs::read(root.join("from-home/a.bin")).ok(),
        Some(body.clone()),
        "{run}"
    );

    let skipped = fetch_in_with_env(root, &["--no-config", "urls.txt"], &env);
    assert_code(&skipped, root, 0);
    assert_eq!(fs::read(root.join("a.bin")).ok(), Some(body), "{skipped}");
}

#[test]
fn an_explicit_config_file_must_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(root, "urls.txt", "http://127.0.0.1:9/a.bin\n");
    let run = fetch_in_with_env(root, &["--config", "nope.conf", "urls.txt"], &[]);
    assert_code(&run, root, 2);
    assert!(run.stderr.contains("cannot read config file nope.conf"), "{run}");
}

#[test]
fn a_bad_line_is_an_exit_2_error_naming_file_and_line() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    one_file(&server, root);
    write_config(&root.join("my.conf"), "-j 4\n\n--retries many\n");

    let run = fetch_in_with_env(root, &["--config", "my.conf", "-d", "out", "urls.txt"], &[]);
    assert_code(&run, root, 2);
    assert!(
        run.stderr
            .contains("fetchq: my.conf:3: invalid value 'many' for '--retries"),
        "{run}"
    );
    assert_eq!(server.hits("/a.bin"), 0, "nothing was downloaded\n{run}");
    assert!(!list_files(root).iter().any(|f| f.starts_with("out")), "{run}");

    write_config(&root.join("my.conf"), "more.txt\n");
    let run = fetch_in_with_env(root, &["--config", "my.conf", "urls.txt"], &[]);
    assert_code(&run, root, 2);
    assert!(run.stderr.contains("my.conf:1: expected an option"), "{run}");
}

/// `fetchq worker` takes download options, so the file applies to it too:
/// a bad line stops it before it connects anywhere.
#[test]
fn the_config_file_applies_to_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_config(&root.join("w.conf"), "--per-host zero\n");
    let run = fetch_in_with_env(
        root,
        &["worker", "--redis", "redis://127.0.0.1:9", "--config", "w.conf"],
        &[],
    );
    assert_code(&run, root, 2);
    assert!(run.stderr.contains("w.conf:1: invalid value 'zero'"), "{run}");
}
