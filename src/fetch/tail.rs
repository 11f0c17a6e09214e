//! Writes of a big body that end on 64 KiB boundaries of the file.
//!
//! ext4 takes a write into the page cache in folios as large as the write's
//! alignment allows: 512 MiB written in pieces of 100 to 256 KiB took
//! 0.25–0.27 s of system time, and 0.18–0.21 s when every piece ended on a
//! 64 KiB boundary. A body's reads come back with whatever has arrived, so
//! they end anywhere; here the bytes past the last boundary are held back and
//! go out in front of the next read's. They are never held while the thread
//! waits for the server: a read that finds nothing within a moment puts them
//! down first (see [`crate::transport::put_down_before_waiting`]), so a
//! stalled download's part holds everything received, as it would unheld.
//! Any end of the stream (its end, an error, Ctrl-C, a split opening) writes
//! them too. A split download's pieces are held the same way (`split`):
//! held bytes are reserved in the split's map and not yet written, and
//! what the transport puts down is counted there at once, because other
//! connections read the map while this one waits.
//!
//! Every call that writes first [settles](HeldTail::settle) what the
//! transport put down since the last one: the caller counts those bytes
//! (a part's length and digest) before anything follows them.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::FetchError;
use crate::part::{PartFile, write_pair_at};
use crate::transport::{Held, Holding, put_down_before_waiting};

/// The boundary writes end on.
const BOUNDARY: u64 = 64 * 1024;

/// Bodies at least this long (when announced) are written on boundaries;
/// a shorter one is written as it arrives: it gains little (200 × 1 MiB ran
/// level with a 1 MiB threshold), and copying its tail aside would cost the
/// many small files more than they save.
const HOLD_FROM: u64 = 8 * 1024 * 1024;

/// Whether `len` more bytes of a body are worth holding tails for. Not
/// under a rate limit, whose sleeps are waits the transport does not see
/// (the tail would stay off the disk through them).
pub(super) fn worth_holding(len: u64, rate_limited: bool) -> bool {
    len >= HOLD_FROM && !rate_limited
}

/// The bytes of a body held back, past its last boundary.
pub(super) struct HeldTail {
    tail: Rc<Tail>,
    /// The file's path, for messages.
    path: PathBuf,
    /// The transport puts the tail down while this lives.
    _holding: Holding,
}

/// Counts bytes as they go down.
type Count = Box<dyn Fn(u64)>;

/// What is held, shared with the transport, which may write it.
struct Tail {
    /// A descriptor of the file the bytes go to.
    file: File,
    /// Told at once of bytes the transport put down (a split's map).
    count_now: RefCell<Option<Count>>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// The bytes, which belong at `at`.
    bytes: Vec<u8>,
    at: u64,
    /// Written by the transport, and not yet settled.
    on_disk: bool,
    /// Why writing them failed, for the next settle to report.
    failed: Option<io::Error>,
}

impl Held for Tail {
    fn is_held(&self) -> bool {
        let state = self.state.borrow();
        !state.bytes.is_empty() && !state.on_disk && state.failed.is_none()
    }

    fn put_down(&self) {
        let mut state = self.state.borrow_mut();
        if state.bytes.is_empty() || state.on_disk || state.failed.is_some() {
            return;
        }
        if let Err(e) = self.file.write_all_at(&state.bytes, state.at) {
            state.failed = Some(e);
            return;
        }
        state.on_disk = true;
        if let Some(count) = self.count_now.borrow().as_ref() {
            count(state.bytes.len() as u64);
        }
    }
}

impl HeldTail {
    /// Hold the tails of writes to `file`, a descriptor of the file at `path`.
    pub(super) fn new(file: File, path: PathBuf) -> HeldTail {
        let tail = Rc::new(Tail {
            file,
            count_now: RefCell::new(None),
            state: RefCell::new(State::default()),
        });
        let _holding = put_down_before_waiting(tail.clone());
        HeldTail { tail, path, _holding }
    }

    /// From now on, tell `count` at once of the bytes the transport puts down.
    pub(super) fn count_now(&self, count: impl Fn(u64) + 'static) {
        *self.tail.count_now.borrow_mut() = Some(Box::new(count));
    }

    /// Bytes received and not yet settled.
    pub(super) fn held(&self) -> u64 {
        self.tail.state.borrow().bytes.len() as u64
    }

    /// Hand what the transport put down since the last call to `count`,
    /// or report why it could not write it.
    pub(super) fn settle(
        &mut self,
        count: impl FnOnce(&[u8]) -> Result<(), FetchError>,
    ) -> Result<(), FetchError> {
        let mut state = self.tail.state.borrow_mut();
        if let Some(e) = state.failed.take() {
            state.bytes.clear();
            return Err(FetchError::disk("cannot write", &self.path, e));
        }
        if state.on_disk {
            count(&state.bytes)?;
            let n = state.bytes.len() as u64;
            state.at += n;
            state.bytes.clear();
            state.on_disk = false;
        }
        Ok(())
    }

    /// `chunk` belongs at `at`, right after what is held (settled first):
    /// `put(at, held, first)` writes everything up to the last boundary at
    /// once, and the rest is held. Returns how many bytes went to disk.
    pub(super) fn write_at(
        &mut self,
        at: u64,
        chunk: &[u8],
        put: impl FnOnce(u64, &[u8], &[u8]) -> Result<(), FetchError>,
    ) -> Result<u64, FetchError> {
        let mut state = self.tail.state.borrow_mut();
        debug_assert!(!state.on_disk, "settle before writing");
        let held = state.bytes.len();
        if held == 0 {
            state.at = at;
        }
        debug_assert_eq!(state.at + held as u64, at);
        let start = state.at;
        let end = start + (held + chunk.len()) as u64;
        let now = usize::try_from((end - end % BOUNDARY).saturating_sub(start)).unwrap_or(usize::MAX);
        let (rest, written) = if now == 0 {
            (chunk, 0)
        } else {
            // The held bytes never cross a boundary, so they all go.
            let (first, rest) = chunk.split_at(now.saturating_sub(held).min(chunk.len()));
            put(start, &state.bytes, first)?;
            state.bytes.clear();
            let written = (held + first.len()) as u64;
            state.at = start + written;
            (rest, written)
        };
        if !rest.is_empty() {
            let from = state.bytes.len();
            state.bytes.resize(from + rest.len(), 0);
            crate::aligned::copy(&mut state.bytes[from..], rest);
        }
        Ok(written)
    }

    /// Write everything held (settled first) with `put(at, held)`; returns
    /// how many bytes.
    pub(super) fn flush_with(
        &mut self,
        put: impl FnOnce(u64, &[u8]) -> Result<(), FetchError>,
    ) -> Result<u64, FetchError> {
        let mut state = self.tail.state.borrow_mut();
        debug_assert!(!state.on_disk, "settle before writing");
        if state.bytes.is_empty() {
            return Ok(0);
        }
        put(state.at, &state.bytes)?;
        let n = state.bytes.len() as u64;
        state.at += n;
        state.bytes.clear();
        Ok(n)
    }

    /// Append `chunk` to `part`, after settling into it: up to the last
    /// boundary now, with what was held in front; the rest is held. Returns
    /// how many bytes went to disk.
    pub(super) fn write_part(&mut self, part: &mut PartFile, chunk: &[u8]) -> Result<u64, FetchError> {
        self.settle_part(part)?;
        let at = part.len() + self.held();
        self.write_at(at, chunk, |_, first, second| part.write_pair(first, second))
    }

    /// Settle into `part`, then write everything held to it; returns how
    /// many bytes.
    pub(super) fn flush_part(&mut self, part: &mut PartFile) -> Result<u64, FetchError> {
        self.settle_part(part)?;
        self.flush_with(|_, held| part.write(held))
    }

    /// Hold the tails of the writes to `part`.
    pub(super) fn for_part(part: &PartFile) -> Result<HeldTail, FetchError> {
        Ok(HeldTail::new(part.writer()?, part.path()))
    }

    /// Settle into `part`: count what the transport put down in its length
    /// and digest.
    fn settle_part(&mut self, part: &mut PartFile) -> Result<(), FetchError> {
        self.settle(|bytes| part.written(bytes))
    }
}

/// Write `first` then `second` at `at` in `file`, naming `path` if it fails.
pub(super) fn put_pair(
    file: &File,
    path: &Path,
    at: u64,
    first: &[u8],
    second: &[u8],
) -> Result<(), FetchError> {
    write_pair_at(file, first, second, at).map_err(|e| FetchError::disk("cannot write", path, e))
}
