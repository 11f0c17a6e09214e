//! fetchq's voice: the `fetchq: ` prefix on every message of its own, and the
//! one rule for what a failed write to standard output means.
//!
//! Standard output carries data a script reads (`--json`, `--dry-run` plans,
//! `status`, completions, the man page). When the reader goes away early
//! (`fetchq --json … | head -1`) the write fails with `EPIPE`: that is the
//! reader's choice, not a fault, so fetchq stops writing without a word and
//! without changing its exit code (downloads, the real work, go on). Any other
//! write error (a full disk behind `> out.json`) loses data the user asked
//! for: it is reported once, with its cause, and the exit code says so.

use std::fmt::Display;
use std::io::{self, Write};

/// The program name every message starts with.
pub const PROGRAM: &str = "fetchq";

/// Print `fetchq: MESSAGE` on stderr, credentials removed and control
/// characters escaped (line breaks of its own are kept). A
/// failing stderr has nowhere to be reported, so its error is dropped.
pub fn message(message: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{PROGRAM}: {}", safe(&message.to_string()));
}

/// Print `fetchq: warning: MESSAGE` on stderr, made safe to show.
pub fn warning(message: impl Display) {
    let _ = writeln!(
        io::stderr().lock(),
        "{PROGRAM}: warning: {}",
        safe(&message.to_string())
    );
}

/// A message's text with credentials removed and control characters escaped
/// ([`crate::display::text`]) line by line: fetchq's own multi-line messages
/// (a usage text) keep their line breaks, and untrusted text cannot bring
/// one, since URLs, list lines and headers never hold a raw line break.
fn safe(message: &str) -> String {
    message
        .split('\n')
        .map(|line| crate::display::text(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What became of a write to standard output.
#[derive(Debug)]
pub enum StdoutError {
    /// The reader went away (`EPIPE`): stop writing, quietly.
    Closed,
    /// Anything else: the output is lost, and the user must hear why.
    Failed(io::Error),
}

impl StdoutError {
    /// Sort a write error by the rule above.
    pub(crate) fn from_io(error: io::Error) -> StdoutError {
        if error.kind() == io::ErrorKind::BrokenPipe {
            StdoutError::Closed
        } else {
            StdoutError::Failed(error)
        }
    }
}

impl Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StdoutError::Closed => f.write_str("standard output was closed"),
            StdoutError::Failed(e) => write!(f, "cannot write to standard output: {e}"),
        }
    }
}

/// Write `bytes` to standard output and flush, sorting any error by the rule above.
pub fn write_stdout(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(StdoutError::from_io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_quiet_and_anything_else_is_a_failure() {
        let closed = StdoutError::from_io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, StdoutError::Closed));
        let full = StdoutError::from_io(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(full, StdoutError::Failed(_)));
        assert!(full.to_string().starts_with("cannot write to standard output: "));
    }

    #[test]
    fn messages_are_redacted_and_escaped_but_keep_their_lines() {
        assert_eq!(
            safe("cannot reach http://u:SECRET@h/x\nusage: fetchq [FILE]"),
            "cannot reach http://***@h/x\nusage: fetchq [FILE]"
        );
        assert_eq!(safe("a\x1b[31mb"), "a\\x1b[31mb");
    }
}
