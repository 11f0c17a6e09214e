//! Shared helpers for fetchq's integration tests.
//!
//! This module owns how tests run the `fetchq` binary (scrubbed environment,
//! bounded run time, captured output that assertion messages can print in
//! full) and re-exports the in-process HTTP test server from [`server`].
//! Include it from a test file with `#[allow(dead_code)] mod support;`
//! because no single test file uses every helper.

pub mod server;

// Re-exports for convenience; a test file that uses none of them would
// otherwise warn, and `#[allow(dead_code)]` on `mod support;` does not
// cover imports.
#[allow(unused_imports)]
pub use server::{RecordedRequest, Route, TestServer, http_date, pattern, sha256_hex};

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fetchq"));
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
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
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
