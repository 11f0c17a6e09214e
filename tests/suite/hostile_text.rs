//! What fetchq prints about hostile input: no credentials in any output
//! (stderr, `--json`, `--log`), no control or bidi character acting on a
//! reader (stderr, `--log`, `--dry-run`), for local runs and queue workers
//! alike; list lines too long to hold failing alone; `--dry-run` paths as
//! `--json` gives them.

use crate::support;

use std::fs;

use fetchq::queue::{Queue, QueueEntry};
use serde_json::Value;
use support::redis::RedisServer;
use support::*;

/// A right-to-left override: `a\u{202E}gpj.exe` reads as `aexe.jpg`.
const RLO: char = '\u{202E}';

/// Every character a reader must never receive raw from these runs.
fn assert_inert(label: &str, text: &str, context: impl Fn() -> String) {
    for c in ['\x1b', '\x07', RLO, '\u{2066}'] {
        assert!(!text.contains(c), "{label} holds a raw {c:?}\n{}", context());
    }
}

#[test]
fn passwords_of_invalid_lines_never_show() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // One stray quote; `@` inside the password; `/` inside the password.
    write_list(
        root,
        "list.txt",
        "\"http://u:SECRET@h/x\nhttp://u:pa@ss@h:1/x a b c\nhttp://u:SEC/RET@h:1/x a b\n",
    );
    let run = fetch_in(root, &list_args("out", &["--json", "--log", "run.log"]));
    assert_code(&run, root, 1);
    let log = fs::read_to_string(root.join("run.log")).unwrap();
    for (label, text) in [("stderr", &run.stderr), ("--json", &run.stdout), ("--log", &log)] {
        for secret in ["SECRET", "pa@ss", "ss@", "SEC", "RET"] {
            assert!(
                !text.contains(secret),
                "{label} shows {secret:?}\n--log:\n{log}\n{}",
                ctx(&run, root)
            );
        }
        for line in 1..=3 {
            assert!(
                text.contains(&format!("list.txt:{line}: ")) || text.contains(&format!("\"line\":{line},")),
                "{label} does not report line {line}\n--log:\n{log}\n{}",
                ctx(&run, root)
            );
        }
    }
    // What is left is still useful: the host and path are shown.
    assert_stderr_has(
        &run,
        root,
        "list.txt:2: http://***@h:1/x a b c: second output path",
    );
    assert_stderr_has(&run, root, "list.txt:3: http://***@h:1/x a b: invalid URL");
}

#[test]
fn control_and_bidi_characters_are_shown_escaped() {
    let server = TestServer::start();
    server.route("/a.bin", Route::ok(b"hello".to_vec()));
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // The list's name carries an ANSI sequence and an override, OUT an
    // override and an isolate, and an unusable line a terminal title
    // sequence with a bell.
    let list = format!("l\x1b[31m{RLO}.txt");
    write_list(
        root,
        &list,
        format!(
            "{} \"a{RLO}gpj.exe\"\nhttp://h/x b\u{2066}c \x1b]0;pwned\x07\n",
            server.url("/a.bin")
        ),
    );
    let context = |run: &Run, log: &str| format!("--log:\n{log}\n{}", ctx(run, root));

    let dry = fetch_in(root, &["--dry-run", "-d", "out", &list]);
    assert_code(&dry, root, 1);
    assert_inert("--dry-run stdout", &dry.stdout, || context(&dry, ""));
    assert_inert("--dry-run stderr", &dry.stderr, || context(&dry, ""));
    assert!(
        dry.stdout
            .contains(&format!("a\\u{{202e}}gpj.exe\t{}\n", server.url("/a.bin"))),
        "{}",
        context(&dry, "")
    );

    let run = fetch_in(root, &["-v", "--log", "run.log", "-d", "out", &list]);
    assert_code(&run, root, 1);
    let log = fs::read_to_string(root.join("run.log")).unwrap();
    assert_inert("stderr", &run.stderr, || context(&run, &log));
    assert_inert("--log", &log, || context(&run, &log));
    assert_file(&run, root, &format!("out/a{RLO}gpj.exe"), b"hello");
    for (label, text) in [("stderr", &run.stderr), ("--log", &log)] {
        for shown in [
            "l\\x1b[31m\\u{202e}.txt:1: ",
            "a\\u{202e}gpj.exe",
            "l\\x1b[31m\\u{202e}.txt:2: http://h/x b\\u{2066}c \\x1b]0;pwned\\x07: second output path \"\\x1b]0;pwned\\x07\"",
        ] {
            assert!(
                text.contains(shown),
                "{label} should show {shown:?}\n{}",
                context(&run, &log)
            );
        }
    }
}

#[test]
fn json_escapes_bidi_controls_and_keeps_the_exact_text() {
    let server = TestServer::start();
    server.route("/a.bin", Route::ok(b"hello".to_vec()));
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write_list(
        root,
        "list.txt",
        format!("{} \"a{RLO}gpj.exe\"\n", server.url("/a.bin")),
    );
    let run = fetch_in(root, &list_args("out", &["--json"]));
    assert_code(&run, root, 0);
    assert_inert("--json", &run.stdout, || ctx(&run, root));
    assert!(
        run.stdout.contains("\"path\":\"out/a\\u202egpj.exe\""),
        "{}",
        ctx(&run, root)
    );
    let entry: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(entry["path"], format!("out/a{RLO}gpj.exe"), "{}", ctx(&run, root));
}

#[test]
fn an_overlong_line_fails_alone_and_the_others_download() {
    let server = TestServer::start();
    server.route("/one", Route::ok(b"one".to_vec()));
    server.route("/two", Route::ok(b"two".to_vec()));
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let mut input = format!("{}\n", server.url("/one")).into_bytes();
    input.extend(std::iter::repeat_n(b'z', 100 * 1024 * 1024));
    input.extend(format!("\n{}\n", server.url("/two")).into_bytes());
    let run = fetch_in_with_stdin(root, &["-d", "out", "-"], &input);
    // The run's text is not printed whole: without the limit it may hold the line.
    let short = |text: &str| text.chars().take(2000).collect::<String>();
    let context = || {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}\nfiles: {:?}",
            run.code(),
            short(&run.stdout),
            short(&run.stderr),
            list_files(root)
        )
    };
    assert_eq!(run.code(), 1, "{}", context());
    assert_eq!(
        fs::read(out(root).join("one")).ok(),
        Some(b"one".to_vec()),
        "{}",
        context()
    );
    assert_eq!(
        fs::read(out(root).join("two")).ok(),
        Some(b"two".to_vec()),
        "{}",
        context()
    );
    let line = run.stderr.lines().find(|l| l.starts_with("-:2: "));
    assert_eq!(
        line,
        Some("-:2: line longer than 65536 bytes (the list format's limit)"),
        "{}",
        context()
    );
    assert!(run.stderr.len() < 1000, "{}", context());
}

#[test]
fn lines_from_a_pipe_start_downloading_before_the_pipe_closes() {
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let server = TestServer::start();
    server.route("/one", Route::ok(b"one".to_vec()));
    server.route("/two", Route::ok(b"two".to_vec()));
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let mut child = fetchq()
        .current_dir(root)
        .args(["-d", "out", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", server.url("/one")).unwrap();
    stdin.flush().unwrap();
    // The first line is downloaded while the producer still holds the pipe open.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out(root).join("one").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let streamed = out(root).join("one").exists();
    writeln!(stdin, "{}", server.url("/two")).unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        streamed,
        "nothing downloaded before the pipe closed; files: {:?}",
        list_files(root)
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "files: {:?}",
        list_files(root)
    );
    assert_eq!(fs::read(out(root).join("two")).ok(), Some(b"two".to_vec()));
}

#[test]
fn dry_run_paths_are_the_json_paths() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let list = format!(
        "{0}\n{1} sub/\n{1} \"my file.txt\"\n",
        server.url("/a.bin"),
        server.url("/b.bin")
    );
    write_list(root, "list.txt", &list);
    let dir = "out/nested";
    // One worker, so plans come out in list order in both runs (with several,
    // they come out in the order workers finish them).
    let plain = fetch_in(root, &["--dry-run", "-j", "1", "-d", dir, "list.txt"]);
    assert_code(&plain, root, 0);
    let json = fetch_in(root, &["--dry-run", "-j", "1", "--json", "-d", dir, "list.txt"]);
    assert_code(&json, root, 0);
    let planned: Vec<&str> = plain
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    let paths: Vec<String> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "entry")
        .map(|v| v["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        planned,
        [
            "out/nested/a.bin",
            "out/nested/sub/b.bin",
            "out/nested/my file.txt"
        ],
        "{}",
        ctx(&plain, root)
    );
    assert_eq!(planned, paths, "{}", ctx(&json, root));
    assert!(!out(root).exists(), "--dry-run created the output folder");
}

#[test]
fn queue_entries_from_another_producer_are_shown_safe() {
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.route("/a.bin", Route::ok(b"hello".to_vec()));
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // Pushed by a producer other than `fetchq enqueue`: nothing was checked.
    let with_password = server.url("/a.bin").replace("http://", "http://u:SECRET@");
    let entries = [
        QueueEntry::new(
            with_password,
            Some(format!("a{RLO}gpj.exe")),
            None,
            format!("feed\x1b[31m{RLO}.txt"),
            1,
        ),
        QueueEntry::new("ftp://u:SEC/RET@h/x", None, None, "feed\x1b]0;t\x07.txt", 2),
    ];
    let mut q = Queue::connect(&redis.url(), "default").unwrap();
    assert_eq!(q.enqueue_many(&entries).unwrap(), [true, true]);

    let run = fetch_in(
        root,
        &[
            "worker",
            "--redis",
            &redis.url(),
            "--drain",
            "-v",
            "--json",
            "--log",
            "run.log",
            "-d",
            "out",
        ],
    );
    let log = fs::read_to_string(root.join("run.log")).unwrap_or_default();
    let context = || format!("--log:\n{log}\n{}", ctx(&run, root));
    assert_code(&run, root, 1);
    assert_file(&run, root, &format!("out/a{RLO}gpj.exe"), b"hello");
    let mut con = redis.connection();
    let mut results: Vec<String> = Vec::new();
    for hash in ["done", "failed"] {
        let values: Vec<String> = ::redis::cmd("HVALS")
            .arg(format!("fetchq:default:{hash}"))
            .query(&mut con)
            .unwrap();
        results.extend(values);
    }
    let results = results.join("\n");
    for (label, text) in [
        ("stderr", &run.stderr),
        ("--log", &log),
        ("--json", &run.stdout),
        ("results in Redis", &results),
    ] {
        for secret in ["SECRET", "SEC", "RET"] {
            assert!(!text.contains(secret), "{label} shows {secret:?}\n{}", context());
        }
    }
    for (label, text) in [("stderr", &run.stderr), ("--log", &log), ("--json", &run.stdout)] {
        assert_inert(label, text, context);
    }
    for (label, text) in [("stderr", &run.stderr), ("--log", &log)] {
        for shown in [
            "feed\\x1b[31m\\u{202e}.txt:1: http://***@127.0.0.1:",
            "a\\u{202e}gpj.exe",
            "feed\\x1b]0;t\\x07.txt:2: ftp://***@h/x: invalid URL",
        ] {
            assert!(
                text.contains(shown),
                "{label} should show {shown:?}\n{}",
                context()
            );
        }
    }
}
