//! What an untrusted list or server cannot make fetchq do: climb out of the
//! output directory, write through a planted symlink, widen permissions, print
//! raw escapes or credentials, or trip over absurd numbers.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::*;

/// Runs `-d out list.txt` in `root` in each output mode (plain, `-v`, `-q`);
/// every run must exit 1 with an `HTTP 404` on stderr, then pass `check`.
fn for_each_output_mode_failing_with_404(root: &Path, check: impl Fn(&Run)) {
    for extra in [&[][..], &["-v"][..], &["-q"][..]] {
        let mut args = extra.to_vec();
        args.extend(["-d", "out", "list.txt"]);
        let run = fetch_in(root, &args);
        assert_code(&run, root, 1);
        assert_stderr_has(&run, root, "HTTP 404");
        check(&run);
    }
}

/// Runs fetchq via `sh -c 'umask MASK; exec fetchq ...'` with the same
/// scrubbed environment as [`fetchq`].
fn fetch_with_umask(root: &Path, umask: &str, args: &[&str]) -> Run {
    let mut cmd = scrubbed_command("sh");
    cmd.current_dir(root)
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fetchq"))
        .args(list_args("out", args));
    run(&mut cmd)
}

/// Permission bits of `root/rel` (following no symlink).
fn mode_of(root: &Path, rel: &str) -> u32 {
    fs::symlink_metadata(root.join(rel))
        .unwrap_or_else(|e| panic!("stat {rel}: {e}; files: {:?}", list_files(root)))
        .permissions()
        .mode()
        & 0o7777
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Output dir two levels down, so an escape of `../..` stays inside `root`.
const DEEP: &str = "a/b/out";

/// Writes `root/outside.txt` ("precious") and plants a symlink to it at
/// `out/name`, where fetchq will want to write.
fn plant_symlink_to_outside(root: &Path, name: &str) {
    let outside = root.join("outside.txt");
    fs::write(&outside, b"precious").unwrap();
    fs::create_dir(out(root)).unwrap();
    std::os::unix::fs::symlink(&outside, out(root).join(name)).unwrap();
}

// ---------------------------------------------------------------------------
// Climbing out of the output directory
// ---------------------------------------------------------------------------

#[test]
fn out_escaping_the_output_dir_is_rejected() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/evil.bin", Route::ok(b"evil".to_vec()));
    server.route("/good.bin", Route::ok(b"good".to_vec()));
    let absolute = root.join("absolute.bin");
    let absolute = absolute.to_str().expect("temp path is UTF-8");
    assert!(
        !absolute.contains(char::is_whitespace),
        "temp path has spaces: {absolute}"
    );
    let list = format!(
        "{evil} ../escaped.bin\n{evil} {absolute}\n{evil} sub/../../escaped2.bin\n{good}\n",
        evil = server.url("/evil.bin"),
        good = server.url("/good.bin"),
    );
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-d", "out", "list.txt"]);

    assert_code(&run, root, 1);
    for line in 1..=3 {
        let text = stderr_line(&run, root, &format!("list.txt:{line}:"));
        assert!(
            text.contains("escapes the output directory"),
            "line {line} should say why: {text:?}\n{}",
            ctx(&run, root)
        );
    }
    assert_eq!(server.hits("/evil.bin"), 0, "{}", ctx(&run, root));
    // Nothing outside out/ but the list itself.
    assert_eq!(
        list_files(root),
        vec!["list.txt", "out/good.bin"],
        "nothing may be written outside the output dir\n{}",
        ctx(&run, root)
    );
    assert!(last_stderr_line(&run).contains("3 failed"), "{}", ctx(&run, root));
}

#[test]
fn encoded_dot_dot_slash_in_the_url_stays_inside() {
    let t = Setup::new();
    t.list(&[t.serve("/dir/..%2F..%2Fevil", Route::ok(b"inside".to_vec()))]);

    let run = t.run_into(DEEP, &[]);

    run.assert_code(0);
    let files = t.files();
    assert!(
        files.iter().all(|f| f == "list.txt" || f.starts_with("a/b/out/")) && files.len() == 2,
        "exactly one file, inside a/b/out\n{}",
        run.ctx()
    );
}

#[test]
fn explicit_out_climbing_up_is_rejected() {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", Route::ok(b"evil".to_vec())) + " ../x"]);

    let run = t.run_into(DEEP, &[]);

    run.assert_code(1)
        .assert_stderr_has("escapes the output directory")
        .assert_files(&["list.txt"]);
    t.assert_hits(&run, "/f.bin", 0);
}

#[test]
fn redirect_with_dot_dot_is_named_from_the_original_url() {
    let t = Setup::new();
    t.list(&[t.serve("/dir/orig.bin", Route::redirect(302, "/../../x.bin"))]);
    t.serve("/x.bin", Route::ok(b"target".to_vec()));

    let run = t.run_into(DEEP, &[]);

    run.assert_code(0)
        .assert_files(&["a/b/out/orig.bin", "list.txt"])
        .assert_file("a/b/out/orig.bin", b"target");
    t.assert_hits(&run, "/x.bin", 1);
}

#[test]
fn content_disposition_cannot_climb_out() {
    let t = Setup::new();
    let plain = "attachment; filename=\"../../evil.sh\"";
    let extended = "attachment; filename*=UTF-8''%2E%2E%2F%2E%2E%2Fevil2.sh";
    t.list(&[
        t.serve(
            "/plain",
            Route::ok(b"one".to_vec()).header("Content-Disposition", plain),
        ),
        t.serve(
            "/extended",
            Route::ok(b"two".to_vec()).header("Content-Disposition", extended),
        ),
    ]);

    t.run_into(DEEP, &["--content-disposition"])
        .assert_code(0)
        .assert_files(&["a/b/out/evil.sh", "a/b/out/evil2.sh", "list.txt"])
        .assert_file("a/b/out/evil.sh", b"one")
        .assert_file("a/b/out/evil2.sh", b"two");
}

// ---------------------------------------------------------------------------
// Hostile text
// ---------------------------------------------------------------------------

#[test]
fn credentials_never_appear_in_failure_messages() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let url = server
        .url("/private/missing.bin")
        .replacen("http://", "http://alice:secret@", 1);
    write_list(root, "list.txt", format!("{url}\n"));

    for_each_output_mode_failing_with_404(root, |run| {
        assert!(
            !run.stderr.contains("secret") && !run.stdout.contains("secret"),
            "the password leaked\n{}",
            ctx(run, root)
        );
    });
}

#[test]
fn ansi_escape_in_url_never_reaches_stderr_raw() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let list = format!(
        "{}\n{} out%1B%5B31m.bin\n",
        server.url("/red%1B%5B31mtext%1B%5B0m.bin"),
        server.url("/x%1B%5B2J.bin")
    );
    write_list(root, "list.txt", list);

    for_each_output_mode_failing_with_404(root, |run| {
        assert!(
            !run.stderr.contains('\x1b') && !run.stdout.contains('\x1b'),
            "raw ESC in output\n{}",
            ctx(run, root)
        );
    });
}

/// A decoded name with a control character is sanitised on disk and escaped
/// in verbose lines: a successful download must not print a raw ESC either.
#[test]
fn ansi_escape_in_a_downloaded_name_is_sanitised() {
    let t = Setup::new();
    t.list(&[t.serve("/e%1B%5B31m.bin", Route::ok(b"red".to_vec()))]);

    t.run(&["-v"])
        .assert_code(0)
        .assert_out_files(&["e_[31m.bin"])
        .assert_out_file("e_[31m.bin", b"red")
        .assert_stderr_lacks("\x1b");
}

/// Encoded slashes in the last segment never climb out of the output dir.
#[test]
fn encoded_slashes_in_a_name_stay_inside() {
    let t = Setup::new();
    t.list(&[t.serve("/..%2F..%2Fescaped.txt", Route::ok(b"inside".to_vec()))]);

    t.run(&[])
        .assert_code(0)
        .assert_files(&["list.txt", "out/.._.._escaped.txt"])
        .assert_out_file(".._.._escaped.txt", b"inside");
}

// ---------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------

#[test]
fn read_only_output_dir_exits_2_before_downloading() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"data".to_vec()));
    list_of(root, &server.url("/f.bin"));

    let ro = root.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; /proc/self is a directory in which nobody
    // can create files, so it stands in for a read-only directory there.
    let dir = if running_as_root() || File::create(ro.join("probe")).is_ok() {
        eprintln!("note: running as root, using /proc/self as the read-only output dir");
        let _ = fs::remove_file(ro.join("probe"));
        PathBuf::from("/proc/self")
    } else {
        ro.clone()
    };
    let dir = dir.to_str().unwrap().to_string();

    let run = fetch_into(root, &dir, &[]);
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();

    assert_code(&run, root, 2);
    assert_eq!(server.hits("/f.bin"), 0, "{}", ctx(&run, root));
    assert_stderr_has(&run, root, "output directory");
    assert_files(&run, root, &["list.txt"]);
}

/// The OS error is part of the message once, not repeated by the error chain.
#[test]
fn output_dir_error_names_the_os_error_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    list_of(root, "http://127.0.0.1:9/f.bin");
    fs::write(root.join("file"), b"not a dir").unwrap();

    // A folder below a regular file: ENOTDIR for root and everyone else.
    let run = fetch_into(root, "file/below", &[]);

    assert_code(&run, root, 2);
    let line = stderr_line(&run, root, "output directory");
    let os_errors = line.matches("os error").count();
    assert_eq!(
        os_errors,
        1,
        "the OS error should appear once: {line:?}\n{}",
        ctx(&run, root)
    );
}

#[test]
fn new_files_follow_the_umask() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"secret".to_vec()));
    list_of(root, &server.url("/f.bin"));

    let run = fetch_with_umask(root, "077", &[]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", b"secret");
    let mode = mode_of(root, "out/f.bin");
    assert_eq!(mode, 0o600, "mode {mode:o}\n{}", ctx(&run, root));
}

#[test]
fn overwrite_never_widens_permissions() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/f.bin", Route::ok(b"new secret".to_vec()));
    list_of(root, &server.url("/f.bin"));
    write_out_file(root, "f.bin", b"old secret");
    let target = out(root).join("f.bin");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();

    // A permissive umask: only the old file's mode can keep it private.
    let run = fetch_with_umask(root, "022", &["--overwrite"]);

    assert_code(&run, root, 0);
    assert_file(&run, root, "out/f.bin", b"new secret");
    let mode = mode_of(root, "out/f.bin");
    assert_eq!(
        mode & !0o600,
        0,
        "mode {mode:o} is wider than 0600\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------

#[test]
fn symlink_planted_at_the_part_is_not_followed() {
    let t = Setup::new();
    let body = pattern(20_000, 24);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()))]);
    plant_symlink_to_outside(t.root(), "f.bin.part");

    t.run(&[])
        .assert_file("outside.txt", b"precious")
        .assert_code(0)
        .assert_files(&["list.txt", "out/f.bin", "outside.txt"])
        .assert_out_file("f.bin", &body);
}

#[test]
fn symlink_planted_at_the_part_is_not_followed_with_continue() {
    let t = Setup::new();
    let body = pattern(20_000, 25);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()))]);
    plant_symlink_to_outside(t.root(), "f.bin.part");

    let run = t.run(&["-c"]);

    run.assert_no_panic().assert_file("outside.txt", b"precious");
    // Refusing the entry is fine; writing through the link is not, and a
    // final file, if any, must be the real body.
    if t.out().join("f.bin").exists() {
        run.assert_out_file("f.bin", &body);
    } else {
        run.assert_code(1);
    }
}

#[test]
fn overwrite_replaces_a_symlink_instead_of_writing_through_it() {
    let t = Setup::new();
    let body = pattern(20_000, 26);
    t.list(&[t.serve("/f.bin", Route::ok(body.clone()))]);
    plant_symlink_to_outside(t.root(), "f.bin");

    let run = t.run(&["--overwrite"]);

    run.assert_code(0)
        .assert_file("outside.txt", b"precious")
        .assert_out_file("f.bin", &body);
    let meta = fs::symlink_metadata(t.out().join("f.bin")).unwrap();
    assert!(
        meta.file_type().is_file(),
        "out/f.bin should now be a regular file\n{}",
        run.ctx()
    );
}

// ---------------------------------------------------------------------------
// Untrusted numbers
// ---------------------------------------------------------------------------

#[test]
fn absurd_content_length_fails_cleanly() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "/f.bin",
        Route::ok(b"tiny".to_vec())
            .header("Content-Length", "99999999999999999999999")
            .close_connection(),
    );
    list_of(root, &server.url("/f.bin"));

    let start = Instant::now();
    let run = fetch(root, &["--retries", "1", "--timeout", "2"]);
    let took = start.elapsed();

    assert_no_panic(&run, root);
    assert_code(&run, root, 1);
    assert!(took < HANG_BOUND, "took {took:?}\n{}", ctx(&run, root));
    assert_absent(&run, root, "out/f.bin");
}

#[test]
fn absurd_content_range_on_resume_fails_cleanly() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let body = pattern(20_000, 27);
    server.route(
        "/f.bin",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .header(
                "Content-Range",
                "bytes 5000-99999999999999999999999/99999999999999999999999",
            )
            .fail_times_with(1, Route::ok(body).etag("\"v1\"").reset_after(5_000)),
    );
    list_of(root, &server.url("/f.bin"));

    let run = fetch(root, &["--retries", "2", "--timeout", "2"]);

    assert_no_panic(&run, root);
    assert!(
        run.code() == 0 || run.code() == 1,
        "clean exit expected\n{}",
        ctx(&run, root)
    );
    if run.code() == 0 {
        // Only acceptable if it started over and got the real body.
        assert_file(&run, root, "out/f.bin", &pattern(20_000, 27));
    } else {
        assert_absent(&run, root, "out/f.bin");
    }
}
