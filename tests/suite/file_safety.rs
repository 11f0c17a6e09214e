//! File safety under `--dir`: a sub-folder swapped for a symlink mid-run is
//! never written through, overlapping runs never publish each other's
//! unfinished files, and a directory at NAME is never taken for a download.

use crate::support;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::server::GateServer;
use support::*;

/// A fetchq running in the background, its output going to files in `root`.
struct Background {
    child: Child,
    label: String,
    root: PathBuf,
}

impl Background {
    /// Starts fetchq in `root` with `args`; `label` names its output files.
    fn start(root: &Path, label: &str, args: &[&str]) -> Background {
        let out = File::create(root.join(format!("{label}.stdout"))).unwrap();
        let err = File::create(root.join(format!("{label}.stderr"))).unwrap();
        let child = fetchq()
            .current_dir(root)
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn fetchq");
        Background {
            child,
            label: label.to_string(),
            root: root.to_path_buf(),
        }
    }

    fn output(&self, stream: &str) -> String {
        fs::read_to_string(self.root.join(format!("{}.{stream}", self.label))).unwrap_or_default()
    }

    /// Waits for the exit (60 s at most) and returns the exit code with the output.
    fn finish(mut self) -> (i32, String) {
        let end = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!("{} did not finish\n{}", self.label, self.describe());
            }
            thread::sleep(Duration::from_millis(10));
        };
        (status.code().unwrap_or(-1), self.describe())
    }

    /// SIGKILL, as a crash or the OOM killer would.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn describe(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}\nfiles: {:?}",
            self.label,
            self.output("stdout"),
            self.label,
            self.output("stderr"),
            list_files(&self.root)
        )
    }
}

/// Polls `cond` every 10 ms for `limit` at most; whether it became true.
fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn inode(path: &Path) -> Option<u64> {
    fs::symlink_metadata(path).ok().map(|m| m.ino())
}

#[test]
fn a_subfolder_swapped_for_a_symlink_mid_run_is_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir(root.join("outside")).unwrap();
    let server = GateServer::start();
    server.hold("/a.bin", pattern(4096, 1));
    server.serve("/b.bin", pattern(4096, 2));
    server.serve("/c.bin", pattern(4096, 3));
    let list: String = ["a", "b", "c"]
        .iter()
        .map(|n| format!("{} sub/{n}.bin\n", server.url(&format!("/{n}.bin"))))
        .collect();
    write_list(root, "list.txt", list);

    let run = Background::start(root, "run", &["-d", "out", "-j", "1", "list.txt"]);
    // a.bin's folder is open and its body is on the way: now swap the folder.
    assert!(
        server.wait_for_hit("/a.bin", Duration::from_secs(20)),
        "a.bin was never asked for\n{}",
        run.describe()
    );
    fs::rename(root.join("out/sub"), root.join("out/sub.moved")).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("out/sub")).unwrap();
    server.release();
    let (code, ctx) = run.finish();

    assert!(
        list_files(&root.join("outside")).is_empty(),
        "written outside --dir\n{ctx}"
    );
    assert!(
        list_files(&root.join("out/sub.moved")).is_empty(),
        "nothing is published into the moved folder\n{ctx}"
    );
    assert_eq!(code, 1, "{ctx}");
    assert!(
        ctx.contains("the folder was moved or replaced during the download"),
        "a.bin says what happened\n{ctx}"
    );
    assert_eq!(
        ctx.matches("a file or symlink is in the way").count(),
        2,
        "b.bin and c.bin say what is in the way\n{ctx}"
    );
}

/// Whether the run logging to `log` waits for another process's `NAME.part`
/// (fixed), or has put its own file at `part` instead of `before` (broken).
fn reached(root: &Path, log: &str, name: &str, part: &Path, before: Option<u64>) -> bool {
    let waiting = format!("{name}.part is being downloaded by another process");
    fs::read_to_string(root.join(log)).is_ok_and(|log| log.contains(&waiting)) || inode(part) != before
}

/// Run B downloads x.bin into a named, locked part; run A starts on the same
/// list and is SIGKILLed mid-way. A never touches B's part, so B publishes
/// its own complete file.
#[test]
fn a_second_run_killed_mid_download_leaves_the_first_runs_file_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = GateServer::start();
    let body = pattern(256 * 1024, 7);
    server.hold("/x.bin", body.clone());
    write_list(root, "list.txt", format!("{}\n", server.url("/x.bin")));
    // A folder with something in it: parts are named from the start.
    write_out_file(root, "keep.txt", b"keep");
    let part = out(root).join("x.bin.part");

    let b = Background::start(root, "b", &["-d", "out", "list.txt"]);
    assert!(
        poll(Duration::from_secs(20), || fs::metadata(&part)
            .is_ok_and(|m| m.len() > 0)),
        "B never wrote its part\n{}",
        b.describe()
    );
    let b_part = inode(&part);
    let a = Background::start(root, "a", &["-d", "out", "--log", "a.log", "list.txt"]);
    assert!(
        poll(Duration::from_secs(20), || reached(
            root, "a.log", "x.bin", &part, b_part
        )),
        "A never reached the part\n{}",
        a.describe()
    );
    a.kill();
    server.release();
    let (code, ctx) = b.finish();

    assert_file_at(&out(root).join("x.bin"), "out/x.bin", &body, || ctx.clone());
    assert_eq!(code, 0, "{ctx}");
    assert_eq!(list_files(&out(root)), ["keep.txt", "x.bin"], "{ctx}");
}

/// Run A holds x.bin's part and is SIGKILLed; run B, waiting for it, takes
/// over the stale part and finishes the file.
#[test]
fn a_run_waiting_for_a_killed_run_finishes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = GateServer::start();
    let body = pattern(256 * 1024, 8);
    server.hold("/x.bin", body.clone());
    write_list(root, "list.txt", format!("{}\n", server.url("/x.bin")));
    write_out_file(root, "keep.txt", b"keep");
    let part = out(root).join("x.bin.part");

    let a = Background::start(root, "a", &["-d", "out", "list.txt"]);
    assert!(
        poll(Duration::from_secs(20), || fs::metadata(&part)
            .is_ok_and(|m| m.len() > 0)),
        "A never wrote its part\n{}",
        a.describe()
    );
    let a_part = inode(&part);
    let b = Background::start(root, "b", &["-d", "out", "--log", "b.log", "list.txt"]);
    assert!(
        poll(Duration::from_secs(20), || reached(
            root, "b.log", "x.bin", &part, a_part
        )),
        "B never reached the part\n{}",
        b.describe()
    );
    a.kill();
    server.release();
    let (code, ctx) = b.finish();

    let log = fs::read_to_string(root.join("b.log")).unwrap_or_default();
    assert!(
        log.contains("x.bin.part is being downloaded by another process"),
        "B waited\n{log}\n{ctx}"
    );
    assert_file_at(&out(root).join("x.bin"), "out/x.bin", &body, || ctx.clone());
    assert_eq!(code, 0, "{ctx}");
    assert!(ctx.contains("1 downloaded"), "{ctx}");
    assert_eq!(list_files(&out(root)), ["keep.txt", "x.bin"], "{ctx}");
}

/// Two runs of one list into one folder, the second started while the first
/// holds two parts: every file whole, both runs succeed, each file
/// downloaded by one of them and found present by the other.
#[test]
fn two_overlapping_runs_of_one_list_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = GateServer::start();
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.bin")).collect();
    let bodies: Vec<Vec<u8>> = (0..6).map(|i| pattern(64 * 1024, 20 + i as u8)).collect();
    let mut list = String::new();
    for (name, body) in names.iter().zip(&bodies) {
        server.hold(&format!("/{name}"), body.clone());
        list.push_str(&format!("{}\n", server.url(&format!("/{name}"))));
    }
    write_list(root, "list.txt", list);
    write_out_file(root, "keep.txt", b"keep");
    let part = |i: usize| out(root).join(format!("f{i}.bin.part"));

    let first = Background::start(root, "first", &["-d", "out", "-j", "2", "list.txt"]);
    assert!(
        poll(Duration::from_secs(20), || (0..2)
            .all(|i| fs::metadata(part(i)).is_ok_and(|m| m.len() > 0))),
        "the first run never wrote its parts\n{}",
        first.describe()
    );
    let before: Vec<Option<u64>> = (0..2).map(|i| inode(&part(i))).collect();
    let second = Background::start(
        root,
        "second",
        &["-d", "out", "-j", "2", "--log", "second.log", "list.txt"],
    );
    assert!(
        poll(Duration::from_secs(20), || (0..2).all(|i| reached(
            root,
            "second.log",
            &names[i],
            &part(i),
            before[i]
        ))),
        "the second run never reached the parts\n{}",
        second.describe()
    );
    server.release();
    let (second_code, second_ctx) = second.finish();
    let (first_code, first_ctx) = first.finish();
    let ctx = format!("{first_ctx}\n{second_ctx}");

    for (name, body) in names.iter().zip(&bodies) {
        assert_file_at(&out(root).join(name), name, body, || ctx.clone());
    }
    assert_eq!((first_code, second_code), (0, 0), "{ctx}");
    assert!(!ctx.contains("cannot rename"), "{ctx}");
    let mut want: Vec<String> = names.clone();
    want.push("keep.txt".into());
    want.sort();
    assert_eq!(list_files(&out(root)), want, "no part is left\n{ctx}");
}

/// A part locked by a live process that writes nothing (here `flock(1)`)
/// is neither written nor replaced; the entry fails as `busy` once the part
/// has not grown for `--timeout`.
#[test]
fn a_part_held_by_a_stuck_process_is_left_alone_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = TestServer::start();
    server.route("/x.bin", Route::ok(pattern(64 * 1024, 5)));
    write_list(root, "list.txt", format!("{}\n", server.url("/x.bin")));
    write_out_file(root, "x.bin.part", b"theirs");
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(out(root).join("x.bin.part"))
        .args(["sh", "-c", "touch locked; read _"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run flock(1)");
    assert!(
        poll(Duration::from_secs(10), || root.join("locked").exists()),
        "flock(1) never took the lock"
    );
    let run = fetch_in(root, &["-d", "out", "--timeout", "1", "--json", "list.txt"]);
    drop(holder.stdin.take());
    holder.wait().unwrap();

    assert_code(&run, root, 1);
    assert_stderr_has(
        &run,
        root,
        "out/x.bin.part is being downloaded by another process that wrote nothing for 1s",
    );
    assert!(
        run.stdout.contains(r#""error_kind":"busy""#),
        "{}",
        ctx(&run, root)
    );
    assert_eq!(list_files(&out(root)), ["x.bin.part"], "{}", ctx(&run, root));
    assert_out_file(&run, root, "x.bin.part", b"theirs");
}

#[test]
fn a_directory_at_the_name_fails_the_entry_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = TestServer::start();
    server.route("/x.bin", Route::ok(pattern(2 * 1024 * 1024, 9)).etag("\"v1\""));
    write_list(root, "list.txt", format!("{}\n", server.url("/x.bin")));
    fs::create_dir_all(out(root).join("x.bin")).unwrap();
    fs::write(out(root).join("x.bin/inside.txt"), b"untouched").unwrap();

    for mode in [None, Some("--overwrite"), Some("-N")] {
        let mut args = vec!["-d", "out", "--json"];
        args.extend(mode);
        args.push("list.txt");
        let run = fetch_in(root, &args);
        assert_code(&run, root, 1);
        assert_stderr_has(&run, root, "out/x.bin is a directory, not a file");
        assert!(
            run.stdout.contains(r#""error_kind":"not_a_file""#),
            "{mode:?}\n{}",
            ctx(&run, root)
        );
        assert_eq!(
            list_files(&out(root)),
            ["x.bin/inside.txt"],
            "{mode:?}: no part, nothing else\n{}",
            ctx(&run, root)
        );
        assert_out_file(&run, root, "x.bin/inside.txt", b"untouched");
    }
    assert_eq!(server.hits("/x.bin"), 0, "decided before any request");
}
