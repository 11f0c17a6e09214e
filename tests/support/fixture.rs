//! The fixture a test is written with, and the assertions on a finished run.
//!
//! [`Setup`] owns a test's temp dir (the run's working directory, which
//! holds `list.txt`; downloads go to `out/`) and its [`TestServer`], so a
//! test reads as what it checks:
//!
//! ```text
//! let t = Setup::new();
//! t.list(&[t.serve("/p.bin", Route::ok(body.clone()))]);
//! t.write_out("p.bin.part", b"stale bytes from an old run");
//! t.run(&[]).assert_code(0).assert_out_file("p.bin", &body).assert_no_part();
//! ```
//!
//! The assertions are methods on [`Run`] that return `&Run`, so they chain;
//! their failure messages carry the command, exit status, stdout, stderr and
//! the files under the run's directory. The free functions below
//! (`assert_code(&run, root, 0)` and friends) are the same checks for a run
//! whose directory is passed by hand.

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    RecordedRequest, Route, Run, TestServer, assert_code, assert_file, assert_out_file, assert_stderr_has,
    ctx, fetch_in, fetch_in_with_stdin, fetchq, kill, list_args, list_files, out, serve_all, stderr_line,
    write_list, write_out_file,
};

// ---------------------------------------------------------------------------
// Setup: a temp dir and a server
// ---------------------------------------------------------------------------

/// One test's world: a fresh temp dir that is the working directory of every
/// run and holds the URL list, with downloads in `out/`, and an in-process
/// HTTP server on 127.0.0.1. Both go away when the `Setup` is dropped.
pub struct Setup {
    dir: tempfile::TempDir,
    /// The server the test's URLs point at.
    pub server: TestServer,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup::new()
    }
}

impl Setup {
    /// A fresh temp dir and a started server with no routes.
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("create temp dir"),
            server: TestServer::start(),
        }
    }

    /// The temp dir: the working directory of every run.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/out`, where [`run`](Self::run) downloads to.
    pub fn out(&self) -> PathBuf {
        out(self.root())
    }

    /// Routes `/name` on the server and returns its URL.
    pub fn serve(&self, name: &str, route: Route) -> String {
        self.server.route(name, route);
        self.server.url(name)
    }

    /// Routes `/NAME` for each `(name, body)` and writes `list.txt` with
    /// their URLs, one a line, in this order.
    pub fn serve_list(&self, files: &[(&str, Vec<u8>)]) {
        write_list(self.root(), "list.txt", serve_all(&self.server, files));
    }

    /// Writes `list.txt`: these lines, each ending in a newline.
    pub fn list<S: AsRef<str>>(&self, lines: &[S]) {
        self.list_as("list.txt", lines);
    }

    /// Writes the list `name` (in the temp dir): these lines, each ending
    /// in a newline.
    pub fn list_as<S: AsRef<str>>(&self, name: &str, lines: &[S]) {
        let text: String = lines.iter().map(|l| format!("{}\n", l.as_ref())).collect();
        write_list(self.root(), name, text);
    }

    /// Writes `out/rel` as an earlier run would have left it.
    pub fn write_out(&self, rel: &str, content: impl AsRef<[u8]>) {
        write_out_file(self.root(), rel, content);
    }

    /// Runs fetchq over `list.txt` into `out/`: `-d out --retry-wait 0.05`,
    /// then `args`, then `list.txt` (see [`list_args`]).
    pub fn run(&self, args: &[&str]) -> Run {
        fetch(self.root(), args)
    }

    /// Like [`run`](Self::run), into another output directory (relative to
    /// the temp dir).
    pub fn run_into(&self, dir: &str, args: &[&str]) -> Run {
        fetch_into(self.root(), dir, args)
    }

    /// Runs fetchq with exactly these arguments.
    pub fn run_raw(&self, args: &[&str]) -> Run {
        fetch_in(self.root(), args)
    }

    /// Runs fetchq with exactly these arguments and `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        fetch_in_with_stdin(self.root(), args, input)
    }

    /// Every file under the temp dir (see [`list_files`]).
    pub fn files(&self) -> Vec<String> {
        list_files(self.root())
    }

    /// Asserts the server got `n` requests for `path` during `run`'s test.
    pub fn assert_hits(&self, run: &Run, path: &str, n: usize) {
        let hits = self.server.hits(path);
        assert_eq!(hits, n, "requests for {path}\n{}", run.ctx());
    }

    /// The `n`-th request (from 0) for `path`, or a panic listing what came.
    pub fn request(&self, run: &Run, path: &str, n: usize) -> RecordedRequest {
        nth_request(&self.server, path, n, run, self.root())
    }

    /// Asserts the `n`-th request (from 0) for `path` carried header `name`
    /// with this value (`None`: not at all).
    pub fn assert_sent_header(&self, run: &Run, path: &str, n: usize, name: &str, want: Option<&str>) {
        let request = self.request(run, path, n);
        assert_eq!(
            request.header(name),
            want,
            "{name} of request #{n} for {path}; requests:\n{}\n{}",
            requests_text(&self.server),
            run.ctx()
        );
    }
}

// ---------------------------------------------------------------------------
// Assertions on a finished run
// ---------------------------------------------------------------------------

impl Run {
    /// The directory whose files failure messages list; runs made by
    /// [`fetch_in`] and [`Setup`] know it.
    fn dir(&self) -> &Path {
        self.dir
            .as_deref()
            .expect("this run was not made in a directory: use the free assert_* functions")
    }

    /// The run and the files under its directory, for messages of checks
    /// the methods here do not make.
    pub fn ctx(&self) -> String {
        ctx(self, self.dir())
    }

    /// Asserts the exit code.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_code(self, self.dir(), code);
        self
    }

    /// Asserts stderr contains `needle`.
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert_stderr_has(self, self.dir(), needle);
        self
    }

    /// Asserts stderr does not contain `needle`.
    pub fn assert_stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr.contains(needle),
            "stderr should not contain {needle:?}\n{}",
            ctx(self, self.dir())
        );
        self
    }

    /// Asserts the summary (the last stderr line in plain mode) contains
    /// `needle`, e.g. `"1 downloaded, 1 skipped"`.
    pub fn assert_summary_has(&self, needle: &str) -> &Self {
        let summary = last_stderr_line(self);
        assert!(
            summary.contains(needle),
            "the summary {summary:?} should contain {needle:?}\n{}",
            self.ctx()
        );
        self
    }

    /// Asserts stderr is exactly `want`.
    pub fn assert_stderr(&self, want: &str) -> &Self {
        assert_eq!(self.stderr, want, "stderr\n{}", ctx(self, self.dir()));
        self
    }

    /// Asserts stdout is exactly `want`.
    pub fn assert_stdout(&self, want: &str) -> &Self {
        assert_eq!(self.stdout, want, "stdout\n{}", ctx(self, self.dir()));
        self
    }

    /// The first stderr line containing `needle`, or a panic.
    pub fn stderr_line(&self, needle: &str) -> &str {
        stderr_line(self, self.dir(), needle)
    }

    /// Asserts `out/rel` holds exactly `want`.
    pub fn assert_out_file(&self, rel: &str, want: &[u8]) -> &Self {
        assert_out_file(self, self.dir(), rel, want);
        self
    }

    /// Asserts `rel` (under the run's directory) holds exactly `want`.
    pub fn assert_file(&self, rel: &str, want: &[u8]) -> &Self {
        assert_file(self, self.dir(), rel, want);
        self
    }

    /// Asserts the files under the run's directory are exactly `want`
    /// (sorted, relative, `/`-separated).
    pub fn assert_files(&self, want: &[&str]) -> &Self {
        assert_files(self, self.dir(), want);
        self
    }

    /// Asserts the files under `out/` are exactly `want` (sorted, relative
    /// to `out/`).
    pub fn assert_out_files(&self, want: &[&str]) -> &Self {
        let got = list_files(&out(self.dir()));
        assert_eq!(got, want, "files under out/\n{}", self.ctx());
        self
    }

    /// Asserts `rel` (under the run's directory) does not exist, not even
    /// as a dangling symlink.
    pub fn assert_absent(&self, rel: &str) -> &Self {
        assert_absent(self, self.dir(), rel);
        self
    }

    /// Asserts no `.part` file is left anywhere under the run's directory.
    pub fn assert_no_part(&self) -> &Self {
        assert_no_part(self, self.dir());
        self
    }

    /// Asserts no panic message reached stderr.
    pub fn assert_no_panic(&self) -> &Self {
        assert_no_panic(self, self.dir());
        self
    }

    /// Asserts a clean success: exit 0, `rel` holds `want`, and nothing but
    /// `list.txt` and that file is under the run's directory.
    pub fn assert_downloaded_alone(&self, rel: &str, want: &[u8]) -> &Self {
        assert_downloaded_alone(self, self.dir(), rel, want);
        self
    }
}

// ---------------------------------------------------------------------------
// The same checks for a run and a directory, and helpers around them
// ---------------------------------------------------------------------------

/// Asserts no `.part` file is left anywhere under `root`.
pub fn assert_no_part(run: &Run, root: &Path) {
    assert!(
        list_files(root).iter().all(|f| !f.ends_with(".part")),
        "a .part file was left behind\n{}",
        ctx(run, root)
    );
}

/// The last non-empty stderr line (the summary in plain mode).
pub fn last_stderr_line(run: &Run) -> &str {
    run.stderr.trim_end().lines().last().unwrap_or("")
}

/// Upper bound for runs that must give up on a stalled server rather than hang.
pub const HANG_BOUND: Duration = Duration::from_secs(15);

/// Writes a one-URL `list.txt` for `url`.
pub fn list_of(root: &Path, url: &str) {
    write_list(root, "list.txt", format!("{url}\n"));
}

/// Runs fetchq in `root` with `-d out --retry-wait 0.05`, these arguments and
/// `list.txt` last.
pub fn fetch(root: &Path, args: &[&str]) -> Run {
    fetch_into(root, "out", args)
}

/// Like [`fetch`], with another output directory (relative to `root`).
pub fn fetch_into(root: &Path, dir: &str, args: &[&str]) -> Run {
    fetch_in(root, &list_args(dir, args))
}

/// Asserts no panic message reached stderr.
pub fn assert_no_panic(run: &Run, root: &Path) {
    assert!(
        !run.stderr.contains("panicked"),
        "fetchq panicked\n{}",
        ctx(run, root)
    );
}

/// Asserts `root/rel` does not exist (not even as a dangling symlink).
pub fn assert_absent(run: &Run, root: &Path, rel: &str) {
    assert!(
        fs::symlink_metadata(root.join(rel)).is_err(),
        "{rel} should not exist\n{}",
        ctx(run, root)
    );
}

/// Asserts the files under `root` are exactly `want` (sorted).
pub fn assert_files(run: &Run, root: &Path, want: &[&str]) {
    assert_eq!(list_files(root), want, "files under root\n{}", ctx(run, root));
}

/// Asserts a clean success: exit 0, `root/rel` (under `out/`) holds `want`,
/// and nothing but `list.txt` and that file is under `root`.
pub fn assert_downloaded_alone(run: &Run, root: &Path, rel: &str, want: &[u8]) {
    assert_code(run, root, 0);
    assert_file(run, root, rel, want);
    assert_files(run, root, &["list.txt", rel]);
}

/// All requests the server got, for messages.
pub fn requests_text(server: &TestServer) -> String {
    server
        .requests()
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.headers))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `n`-th request for `path`, or a panic listing what arrived.
pub fn nth_request(server: &TestServer, path: &str, n: usize, run: &Run, root: &Path) -> RecordedRequest {
    server.requests_for(path).get(n).cloned().unwrap_or_else(|| {
        panic!(
            "no request #{n} for {path}; requests:\n{}\n{}",
            requests_text(server),
            ctx(run, root)
        )
    })
}

/// A fetchq process running in the background, its stdout and stderr in
/// files, killed (by its own id) if the test ends first.
pub struct Running {
    /// The fetchq process.
    pub child: Child,
    command: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// Starts fetchq in `root` over `list.txt` into `out/` (as
    /// [`fetch`] does), with its output in `logs/stdout.txt` and
    /// `logs/stderr.txt`.
    pub fn start(root: &Path, logs: &Path, args: &[&str]) -> Running {
        let mut cmd = fetchq();
        cmd.current_dir(root).args(list_args("out", args));
        Running::spawn(cmd, &logs.join("stdout.txt"), &logs.join("stderr.txt"))
    }

    /// Starts `cmd` with its output in these files.
    pub fn spawn(mut cmd: Command, stdout: &Path, stderr: &Path) -> Running {
        let create =
            |path: &Path| File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        cmd.stdout(create(stdout)).stderr(create(stderr));
        let command = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command}: {e}"));
        Running {
            child,
            command,
            stdout: stdout.to_path_buf(),
            stderr: stderr.to_path_buf(),
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The command and its output so far, for messages.
    pub fn output(&self) -> String {
        format!(
            "command: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            self.stderr()
        )
    }

    /// Sends `signal` (e.g. `-INT`) with the `kill` command, by pid.
    pub fn signal(&self, signal: &str) {
        kill(self.child.id(), signal);
    }

    /// Waits at most `bound` for the exit; returns the code (-1 for a signal)
    /// and how long it took, or kills it and panics with the output so far
    /// and the files under `root`.
    pub fn wait(&mut self, bound: Duration, root: &Path) -> (i32, Duration) {
        let start = Instant::now();
        let status = self.wait_status(bound, || format!("files: {:?}", list_files(root)));
        (status.code().unwrap_or(-1), start.elapsed())
    }

    /// Waits at most `bound` for the exit, or kills it and panics with the
    /// output so far and `more()`.
    pub fn wait_status(&mut self, bound: Duration, more: impl Fn() -> String) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {bound:?}\n{}\n{}", self.output(), more());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the download of `part` (`NAME.part`) holds at least one byte;
/// panics after 15 s. A small download has no name yet: it is an unnamed file
/// that only shows as fetchq's open descriptor (`/proc/PID/fd`), still in the
/// `part`'s folder.
pub fn wait_for_bytes(part: &Path, running: &Running, root: &Path) -> u64 {
    let start = Instant::now();
    let folder = part.parent().expect("a part has a folder");
    let fds = PathBuf::from(format!("/proc/{}/fd", running.child.id()));
    loop {
        let unnamed = fs::read_dir(&fds).into_iter().flatten().flatten().find_map(|fd| {
            let to = fs::read_link(fd.path()).ok()?;
            let len = fs::metadata(fd.path()).ok()?.len();
            (to.parent() == Some(folder) && to.to_string_lossy().ends_with(" (deleted)")).then_some(len)
        });
        let len = fs::metadata(part).map(|m| m.len()).ok().or(unnamed);
        if let Some(len) = len.filter(|&len| len > 0) {
            return len;
        }
        if start.elapsed() > HANG_BOUND {
            panic!(
                "{} never got any bytes\n{}\nfiles: {:?}",
                part.display(),
                running.output(),
                list_files(root)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` has passed; whether
/// it held.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds; panics naming `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(limit, cond),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// A loopback port that was free a moment ago (another process may take it
/// before the caller binds it: retry on failure).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Routes `/NAME` for each `(name, route)` and returns the list text (one
/// URL a line, in this order).
pub fn serve_routes(server: &TestServer, routes: Vec<(String, Route)>) -> String {
    let mut list = String::new();
    for (name, route) in routes {
        server.route(&name, route);
        list.push_str(&server.url(&name));
        list.push('\n');
    }
    list
}

/// Parses every stdout line as a JSON object; panics on anything else.
pub fn json_lines(run: &Run, root: &Path) -> Vec<Value> {
    assert!(
        run.stdout.ends_with('\n'),
        "stdout should end with a newline\n{}",
        ctx(run, root)
    );
    run.stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line {line:?} is not JSON: {e}\n{}", ctx(run, root)));
            assert!(
                v.is_object(),
                "stdout line {line:?} is not an object\n{}",
                ctx(run, root)
            );
            v
        })
        .collect()
}
