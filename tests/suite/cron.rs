//! README's cron line on its first night: nothing under `/srv/mirror` exists
//! yet, and the log lives inside the folder `-d` creates.

use crate::support;

use support::{Route, TestServer, assert_code, fetch_in, pattern, write_list};

#[test]
fn the_readme_cron_line_works_on_a_fresh_machine() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(3000, 4)));
    write_list(root, "urls.txt", format!("{}\n", server.url("/a.bin")));
    let mirror = root.join("srv/mirror");
    let log = mirror.join("fetchq.log");
    let (log_arg, dir_arg) = (log.to_string_lossy(), mirror.to_string_lossy());

    let run = fetch_in(root, &["-q", "-N", "--log", &log_arg, "-d", &dir_arg, "urls.txt"]);

    assert_code(&run, root, 0);
    assert_eq!(run.stderr, "", "cron mail stays empty\n{run}");
    assert_eq!(
        std::fs::read(mirror.join("a.bin")).ok(),
        Some(pattern(3000, 4)),
        "{run}"
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains(" end exit=0 "), "log:\n{logged}\n{run}");
}

/// `examples/nightly.sh`, as README offers it: its exit code and messages
/// for a clean night and for a night with a 404.
#[test]
fn the_nightly_example_script_reports_each_outcome() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a.bin", Route::ok(pattern(2000, 5)));
    let list = root.join("urls.txt");
    let dir = root.join("files");
    write_list(root, "urls.txt", format!("{}\n", server.url("/a.bin")));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nightly.sh");
    let night = || {
        support::run(
            support::scrubbed_command("sh")
                .arg(script)
                .arg(&list)
                .arg(&dir)
                .env("FETCHQ", env!("CARGO_BIN_EXE_fetchq")),
        )
    };

    let clean = night();
    assert_eq!(clean.code(), 0, "{clean}");
    assert_eq!(clean.stderr, "", "{clean}");
    assert_eq!(std::fs::read(dir.join("a.bin")).ok(), Some(pattern(2000, 5)));

    write_list(root, "urls.txt", format!("{}\n", server.url("/gone.bin")));
    let broken = night();
    assert_eq!(broken.code(), 1, "{broken}");
    assert!(broken.stderr.contains("some downloads failed; see "), "{broken}");
    assert!(
        broken.stderr.contains("gone.bin"),
        "the failure itself is named\n{broken}"
    );
}
