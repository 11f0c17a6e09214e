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
//! them too: [`HeldTail::flush`].

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use crate::error::FetchError;
use crate::part::PartFile;
use crate::transport::{Held, Holding, put_down_before_waiting};

/// The boundary writes end on.
const BOUNDARY: u64 = 64 * 1024;

/// Bodies at least this long (when announced) are written on boundaries;
/// a shorter one is written as it arrives: it gains little, and copying its
/// tail aside would cost the many small files more than they save.
pub(super) const HOLD_FROM: u64 = 8 * 1024 * 1024;

/// The bytes of a body held back from the part, past its last boundary.
pub(super) struct HeldTail {
    tail: Rc<Tail>,
    /// The transport puts the tail down while this lives.
    _holding: Holding,
}

/// What is held, shared with the transport, which may write it.
struct Tail {
    /// A second descriptor of the part (the transport cannot reach the part).
    file: File,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// The bytes, which belong at `at`.
    bytes: Vec<u8>,
    at: u64,
    /// Written by the transport, and not yet counted by the part.
    on_disk: bool,
    /// Why writing them failed, for the next call to report.
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
        match self.file.write_all_at(&state.bytes, state.at) {
            Ok(()) => state.on_disk = true,
            Err(e) => state.failed = Some(e),
        }
    }
}

impl HeldTail {
    /// Hold the tails of the writes to `part` from here on.
    pub(super) fn new(part: &PartFile) -> Result<HeldTail, FetchError> {
        let tail = Rc::new(Tail {
            file: part.writer()?,
            state: RefCell::new(State::default()),
        });
        let _holding = put_down_before_waiting(tail.clone());
        Ok(HeldTail { tail, _holding })
    }

    /// Bytes received and not yet counted in the part's length.
    pub(super) fn held(&self) -> u64 {
        self.tail.state.borrow().bytes.len() as u64
    }

    /// Append `chunk` to the part: up to the last boundary now, with what
    /// was held in front; the rest is held.
    pub(super) fn write(&mut self, part: &mut PartFile, chunk: &[u8]) -> Result<(), FetchError> {
        self.settle(part)?;
        let mut state = self.tail.state.borrow_mut();
        let held = state.bytes.len();
        let end = part.len() + (held + chunk.len()) as u64;
        let upto = end - end % BOUNDARY;
        let now = usize::try_from(upto.saturating_sub(part.len())).unwrap_or(usize::MAX);
        let rest = if now == 0 {
            chunk
        } else {
            // The held bytes never cross a boundary, so they all go.
            let (first, rest) = chunk.split_at(now.saturating_sub(held).min(chunk.len()));
            part.write_pair(&state.bytes, first)?;
            state.bytes.clear();
            rest
        };
        if !rest.is_empty() {
            let from = state.bytes.len();
            state.bytes.resize(from + rest.len(), 0);
            crate::aligned::copy(&mut state.bytes[from..], rest);
        }
        state.at = part.len();
        Ok(())
    }

    /// Write everything held.
    pub(super) fn flush(&mut self, part: &mut PartFile) -> Result<(), FetchError> {
        self.settle(part)?;
        let mut state = self.tail.state.borrow_mut();
        if !state.bytes.is_empty() {
            part.write(&state.bytes)?;
            state.bytes.clear();
        }
        state.at = part.len();
        Ok(())
    }

    /// Count what the transport put down while the thread waited, or
    /// report why it could not.
    fn settle(&mut self, part: &mut PartFile) -> Result<(), FetchError> {
        let mut state = self.tail.state.borrow_mut();
        if let Some(e) = state.failed.take() {
            state.bytes.clear();
            return Err(part.write_error(e));
        }
        if state.on_disk {
            part.written(&state.bytes)?;
            state.bytes.clear();
            state.on_disk = false;
        }
        Ok(())
    }
}
