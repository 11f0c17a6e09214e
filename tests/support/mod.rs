//! Shared helpers for fetchq's integration tests.
//!
//! This module owns how tests run the `fetchq` binary (scrubbed environment,
//! bounded run time, captured output that assertion messages can print in
//! full) and re-exports the in-process HTTP test server from [`server`].
//! [`fixture`] holds [`Setup`] (a temp dir and a server) and the assertion
//! methods on [`Run`]; [`redis`] starts a throwaway `redis-server`. The
//! suite (`tests/suite/main.rs`) includes it as `crate::support`; a test
//! file of its own can include it with `#[allow(dead_code)] mod support;`
//! (no single file uses every helper).
//!
//! The end-to-end tests share one layout, which the helpers at the end of
//! this module assume: a fresh temp dir `root` is the working directory of
//! each run and holds the URL lists; downloads go to `root/out` (`-d out`),
//! so "nothing else was written" can be checked on `root` as a whole.
//! Assertion messages carry the full run (command, exit code, stdout,
//! stderr) and the files under `root` (see [`ctx`]).

pub mod certs;
mod fixture;
pub mod redis;
pub mod server;

pub use fixture::*;

// Re-exports for convenience; a test file that uses none of them would
// otherwise warn, and `#[allow(dead_code)]` on `mod support;` does not
// cover imports.
#[allow(unused_imports)]
pub use server::{RecordedRequest, Route, SentResponse, TestServer, http_date, pattern, sha256_hex};

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single fetchq run may take before the test fails; generous for
/// slow CI, but finite so a hung binary cannot stall the suite.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A `Command` for the fetchq binary under test with a scrubbed environment:
/// only `PATH` is kept (so no proxy variables, no user config locations, no
/// `FETCHQ_*` settings leak in from the developer's shell), `NO_COLOR=1` is
/// set so output is plain text, and stdin is null so nothing waits on a
/// terminal. Tests add whatever else they need (`current_dir`, `env`, args).
pub fn fetchq() -> Command {
    scrubbed_command(env!("CARGO_BIN_EXE_fetchq"))
}

/// A `Command` for `program` with the same scrubbed environment as
/// [`fetchq`]: only `PATH`, plus `NO_COLOR=1`, and stdin null. For running
/// fetchq through a wrapper (e.g. `sh -c 'umask 077; exec fetchq ...'`).
pub fn scrubbed_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // env_clear() already drops http_proxy/HTTPS_PROXY/ALL_PROXY/NO_PROXY:
    // a test talking to 127.0.0.1 must never be routed through a proxy.
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("NO_COLOR", "1");
    cmd.stdin(Stdio::null());
    cmd
}

/// The outcome of one finished process run by [`run`] or [`run_with_stdin`].
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages (program, args, cwd, extra env).
    pub command: String,
    /// How the process exited.
    pub status: ExitStatus,
    /// Everything written to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossily decoded as UTF-8).
    pub stderr: String,
    /// The directory whose files failure messages list: the working
    /// directory of runs made by [`fetch_in`] and [`Setup`], else `None`.
    pub dir: Option<PathBuf>,
    /// More for failure messages, e.g. the log of a server the run used.
    pub note: String,
}

impl Run {
    /// The exit code, or -1 if the process was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// True if the exit code is 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Command, exit status, stdout and stderr in one block, for assertion
    /// messages: `assert_eq!(run.code(), 0, "{run}")`.
    pub fn describe(&self) -> String {
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!("\n{}", self.note)
        };
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---{note}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Runs `cmd` to completion with stdout/stderr captured. Panics (after
/// killing the child) if it runs longer than 60 s, with the command line and
/// the output so far in the message.
pub fn run(cmd: &mut Command) -> Run {
    run_inner(cmd, None)
}

/// Like [`run`], but feeds `input` to the child's stdin and then closes it.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Run {
    run_inner(cmd, Some(input))
}

fn run_inner(cmd: &mut Command, input: Option<&[u8]>) -> Run {
    let command = command_line(cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command}: {e}"));

    // Write stdin and read both pipes on threads: doing any of them inline
    // can deadlock once a pipe buffer fills.
    let writer = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => {
            let data = data.to_vec();
            // Errors (EPIPE when the child exits without reading) are fine.
            Some(thread::spawn(move || {
                let _ = stdin.write_all(&data);
            }))
        }
        _ => None,
    };
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        collect(child.stdout.take(), Arc::clone(&stdout)),
        collect(child.stderr.take(), Arc::clone(&stderr)),
    ];

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // Give the readers a moment to pick up the last bytes, but
                // do not join them: a grandchild could hold the pipes open.
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "timed out after {RUN_TIMEOUT:?}, killed: {command}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
                    text(&stdout),
                    text(&stderr)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    for r in readers.into_iter().flatten() {
        let _ = r.join();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        command,
        status,
        stdout: text(&stdout),
        stderr: text(&stderr),
        dir: None,
        note: String::new(),
    }
}

/// Copies a pipe into a shared buffer on a thread, so partial output is
/// available even if the process has to be killed.
fn collect<R: Read + Send + 'static>(
    pipe: Option<R>,
    into: Arc<Mutex<Vec<u8>>>,
) -> Option<thread::JoinHandle<()>> {
    let mut pipe = pipe?;
    Some(thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    }))
}

fn text(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Renders a command for messages: quoted program and args, plus the working
/// directory and any environment variables set besides the scrubbed basics.
fn command_line(cmd: &Command) -> String {
    fn quote(s: &OsStr) -> String {
        let s = s.to_string_lossy();
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
        {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    }
    let mut line = quote(cmd.get_program());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let env: Vec<String> = cmd
        .get_envs()
        .filter(|(k, _)| *k != "PATH" && *k != "NO_COLOR")
        .map(|(k, v)| match v {
            Some(v) => format!("{}={}", k.to_string_lossy(), quote(v)),
            None => format!("-u {}", k.to_string_lossy()),
        })
        .collect();
    if !env.is_empty() {
        line = format!("env {} {line}", env.join(" "));
    }
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!("  (in {})", dir.display()));
    }
    line
}

/// Every file (anything not a directory) under `dir`, as sorted paths
/// relative to `dir` with `/` separators; empty if `dir` does not exist.
/// Meant for assertion messages and exact "these files and no others" checks.
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            // file_type() does not follow symlinks, so a link is listed, not
            // walked (no cycles).
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), &rel, out),
                _ => out.push(rel),
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// The shared layout: runs in `root`, lists in `root`, downloads in `root/out`
// ---------------------------------------------------------------------------

/// Backoff between attempts (`--retry-wait`) for runs over `list.txt` that
/// may retry: short, so retry tests stay fast.
pub const RETRY_WAIT: &str = "0.05";

/// The output directory inside a test's temp dir.
pub fn out(root: &Path) -> PathBuf {
    root.join("out")
}

/// Writes a list file `name` into `root`.
pub fn write_list(root: &Path, name: &str, content: impl AsRef<[u8]>) {
    fs::write(root.join(name), content).expect("write list");
}

/// Creates `root/out` (if need be) and writes `out/rel` there, as an earlier
/// run would have left it (a finished file or a `.part`).
pub fn write_out_file(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    fs::create_dir_all(out(root)).expect("create out");
    fs::write(out(root).join(rel), content).expect("write a file into out");
}

/// Routes `/NAME` for each `(name, body)` and returns the list text (one URL a line).
pub fn serve_all(server: &TestServer, files: &[(&str, Vec<u8>)]) -> String {
    let routes = files
        .iter()
        .map(|(name, body)| (name.to_string(), Route::ok(body.clone())));
    serve_routes(server, routes.collect())
}

/// The arguments of a run over `list.txt` into `dir`: `-d DIR --retry-wait
/// 0.05` ([`RETRY_WAIT`]), then `args`, then `list.txt` last.
pub fn list_args<'a>(dir: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["-d", dir, "--retry-wait", RETRY_WAIT];
    all.extend_from_slice(args);
    all.push("list.txt");
    all
}

/// Runs fetchq in `root` with these arguments.
pub fn fetch_in(root: &Path, args: &[&str]) -> Run {
    in_dir(run(fetchq().current_dir(root).args(args)), root)
}

/// Runs fetchq in `root` with these arguments and `input` on stdin.
pub fn fetch_in_with_stdin(root: &Path, args: &[&str], input: &[u8]) -> Run {
    in_dir(run_with_stdin(fetchq().current_dir(root).args(args), input), root)
}

/// Runs fetchq in `root` with these arguments and extra environment variables.
pub fn fetch_in_with_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = fetchq();
    cmd.current_dir(root).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    in_dir(run(&mut cmd), root)
}

/// `run`, knowing it ran in `root` (for the assertion methods of [`Run`]).
fn in_dir(run: Run, root: &Path) -> Run {
    Run {
        dir: Some(root.to_path_buf()),
        ..run
    }
}

/// The run plus every file under `root`, for assertion messages.
pub fn ctx(run: &Run, root: &Path) -> String {
    format!("{run}\nfiles under {}: {:?}", root.display(), list_files(root))
}

/// Asserts the exit code.
pub fn assert_code(run: &Run, root: &Path, code: i32) {
    assert_eq!(run.code(), code, "exit code\n{}", ctx(run, root));
}

/// Asserts stderr contains `needle`.
pub fn assert_stderr_has(run: &Run, root: &Path, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "stderr should contain {needle:?}\n{}",
        ctx(run, root)
    );
}

/// The first stderr line containing `needle`, or a panic.
pub fn stderr_line<'a>(run: &'a Run, root: &Path, needle: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no stderr line contains {needle:?}\n{}", ctx(run, root)))
}

/// Asserts the file at `path` holds exactly `want`, compared by length and
/// SHA-256 so a large mismatch does not flood the message. `label` names the
/// file in messages; `ctx` renders the rest of a failure message (the run,
/// the files under `root`, ...) and is called only on failure.
pub fn assert_file_at(path: &Path, label: &str, want: &[u8], ctx: impl Fn() -> String) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("cannot read {label}: {e}\n{}", ctx()));
    assert!(
        got == want,
        "{label}: got {} bytes (sha256 {}), want {} bytes (sha256 {})\n{}",
        got.len(),
        sha256_hex(&got),
        want.len(),
        sha256_hex(want),
        ctx()
    );
}

/// Asserts `root/rel` holds exactly `want` (see [`assert_file_at`]).
pub fn assert_file(run: &Run, root: &Path, rel: &str, want: &[u8]) {
    assert_file_at(&root.join(rel), rel, want, || ctx(run, root));
}

/// Asserts `root/out/rel` holds exactly `want` (see [`assert_file_at`]).
pub fn assert_out_file(run: &Run, root: &Path, rel: &str, want: &[u8]) {
    assert_file(run, root, &format!("out/{rel}"), want);
}

/// Sends `signal` (e.g. `-INT`) to process `pid` with the `kill` command.
pub fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}
