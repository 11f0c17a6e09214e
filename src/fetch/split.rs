//! One file over several connections (`--split`): the pieces of a big file
//! are fetched with ranged requests by workers that would otherwise idle,
//! and written in place into the one part file.
//!
//! The worker that took the entry (the *owner*) keeps streaming its
//! response from where it is; it opens the split when the response allows
//! it (`Accept-Ranges: bytes`, a known length of at least `--split-min`, a
//! validator for `If-Range`) and the pool has idle workers. The owner calls
//! them through the pool's channel ([`Crew::call`]); each *helper* takes a
//! piece (see [`crate::pieces`]: an untaken one, or the back half of the
//! largest), asks for exactly that range with `If-Range`, and writes what
//! arrives with positional writes. A helper goes back to the channel as
//! soon as an entry waits there, so splitting never delays another entry.
//!
//! Anything that shows another version (a 200 to a range request, a wrong
//! `Content-Range`, a changed validator) stops the split and the file starts
//! over: two versions are never spliced. A piece whose connection fails
//! goes back to the map and is taken again; after `--retries` such failures
//! the attempt fails and the entry's usual retry continues from the map.
//! The owner finishes the entry: it waits until every piece is on disk (or
//! the split stopped) and no helper still writes, hashes the file as its
//! prefix grows, and keeps the map on the part for `-c`.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ureq::http::header;
use url::Url;

use super::classify::body_error;
use super::headers::{content_range, header_str, same_version};
use super::tail::{HeldTail, put_pair, worth_holding};
use super::{Done, Fetcher, Progress, Race, WorkerCtx, wait_on};
use crate::backoff::Backoff;
use crate::error::FetchError;
use crate::event::{JobInfo, Slot};
use crate::part::PartFile;
use crate::pieces::{PieceMap, Taken};
use crate::transport::{self, Watch};

/// The smallest piece worth a request of its own: stealing stops below it.
const MIN_PIECE: u64 = 1024 * 1024;

/// The smallest half of a piece another connection takes over at the end
/// of a file: a new request for less costs more than it saves.
const MIN_STEAL: u64 = 512 * 1024;

/// A connection that delivered nothing for this long, while an idle worker
/// could take over, is stalled: the rest of its piece is taken from it.
const STALL: Duration = Duration::from_millis(150);

/// How often the owner, waiting for the other connections, shows their
/// bytes, hashes the grown prefix and records the map.
const TICK: Duration = Duration::from_millis(100);

/// What the pool offers a split: its idle workers.
pub(crate) trait Crew: Sync {
    /// Workers waiting for work now, less the tasks already queued for them.
    fn idle(&self) -> usize;
    /// Whether tasks wait in the channel: a helper then goes back to it.
    fn waiting(&self) -> bool;
    /// Ask up to `n` idle workers to help with `split`; how many were asked.
    fn call(&self, split: &Arc<Split>, n: usize) -> usize;
    /// Ask an idle worker to try source `source` of `race` at `at`
    /// (see `sources`); whether one was asked.
    fn probe(&self, race: &Arc<Race>, source: usize, at: Instant) -> bool;
}

/// Why a split stopped before its file was complete.
enum Stop {
    /// The server showed another version, or ignored a range: start over.
    Restart(String),
    /// A piece failed for good, or too many times: the attempt fails with this.
    Failed(FetchError),
    /// Ctrl-C or a signal.
    Cancelled,
}

struct State {
    map: PieceMap,
    /// Helpers inside [`Fetcher::help`]: the owner waits for them to leave
    /// before it touches the part.
    inside: usize,
    /// Helpers asked for through the channel that have not arrived yet.
    called: usize,
    stop: Option<Stop>,
    /// Piece connections that failed so far.
    failures: u32,
}

/// A file being fetched over several connections, shared by its owner and
/// the helpers the pool sends it.
pub(crate) struct Split {
    /// The entry.
    pub(crate) job: Arc<JobInfo>,
    /// The source every piece is asked from: the one the owner streams.
    pub(crate) source: Url,
    /// Sent as `If-Range` with every piece, and checked on every answer.
    validator: String,
    total: u64,
    /// The part file, for positional writes.
    file: File,
    state: Mutex<State>,
    changed: Condvar,
    /// Bytes helpers wrote that the owner has not shown yet.
    unshown: AtomicU64,
    /// Bytes helpers received (for the entry's `transferred`).
    received: AtomicU64,
}

impl Split {
    /// Put the current map of bytes on disk on the part's record, and show
    /// the connection count on the owner's slot.
    pub(super) fn record(&self, part: &mut PartFile, slot: &Slot) {
        let (done, connections) = {
            let state = self.lock();
            (state.map.done(), state.map.connections())
        };
        part.record_done(done);
        slot.set_connections(connections.max(1) as u64);
    }

    /// `n` more of the bytes piece `taken` reserved are on disk (written
    /// after being held, see `tail`).
    pub(super) fn wrote(&self, taken: Taken, n: u64) {
        self.lock().map.wrote(taken.id, n);
    }

    /// Count in the map, at once, the bytes of piece `taken` that the
    /// transport puts down for `tail` while the connection waits: the
    /// watch that ends a taken-over connection's wait reads the map.
    pub(super) fn count_put_downs(self: &Arc<Self>, taken: Taken, tail: &HeldTail) {
        let split = self.clone();
        tail.count_now(move |n| split.wrote(taken, n));
    }

    /// Whether piece `taken` has all its bytes on disk.
    pub(super) fn is_finished(&self, taken: Taken) -> bool {
        self.lock().map.finished(taken.id)
    }

    /// Make reads on this thread give up once piece `taken` is finished
    /// (its rest was taken over from a stalled connection), for as long as
    /// the guard lives.
    pub(super) fn watch(self: &Arc<Self>, taken: Taken) -> Watch {
        let split = self.clone();
        transport::abandon_when(Arc::new(move || split.is_finished(taken)))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stop(&self, state: &mut State, stop: Stop) {
        if state.stop.is_none() {
            state.stop = Some(stop);
        }
        self.changed.notify_all();
    }

    /// A piece connection failed with `error`: the piece goes back, and the
    /// split stops when that was one failure too many or the error is final.
    fn failed(&self, taken: Taken, error: FetchError, retries: u32) {
        let mut state = self.lock();
        state.map.release(taken.id);
        match error {
            FetchError::Cancelled => self.stop(&mut state, Stop::Cancelled),
            FetchError::Restart(why) => self.stop(&mut state, Stop::Restart(why)),
            error if !error.is_transient() => self.stop(&mut state, Stop::Failed(error)),
            error => {
                state.failures += 1;
                if state.failures > retries {
                    self.stop(&mut state, Stop::Failed(error));
                }
            }
        }
        self.changed.notify_all();
    }
}

/// What [`Fetcher::piece`] did.
enum Piece {
    /// The piece is on disk (or the rest of it was stolen).
    Finished,
    /// Left unfinished because entries wait for this worker.
    Yielded,
}

impl Fetcher {
    /// Whether a response of `total` bytes with these headers may be split.
    pub(super) fn splittable(
        &self,
        headers: &ureq::http::HeaderMap,
        total: Option<u64>,
        ranged: bool,
    ) -> bool {
        let config = &self.config;
        let ranges = ranged
            || header_str(headers, header::ACCEPT_RANGES)
                .is_some_and(|v| v.split(',').any(|unit| unit.trim().eq_ignore_ascii_case("bytes")));
        config.split > 1 && ranges && total.is_some_and(|t| t >= config.split_min.max(2 * MIN_PIECE))
    }

    /// Open a split of `job`'s file of `total` bytes whose `done` ranges are
    /// on disk, the owner's response from `source` continuing at the end of
    /// the part's prefix. `None` when the
    /// owner's piece cannot be placed (nothing missing at `from`).
    pub(super) fn open_split(
        &self,
        job: &Arc<JobInfo>,
        source: &Url,
        part: &mut PartFile,
        validator: &str,
        total: u64,
        done: &[(u64, u64)],
    ) -> Result<Option<(Arc<Split>, Taken)>, FetchError> {
        let mut map = PieceMap::new(total, done);
        let Some(owner) = map.take_at(part.len()) else {
            return Ok(None);
        };
        // From now on the part has holes: `-c` must know which bytes it holds.
        part.record_done(map.done());
        part.name_now()?;
        let split = Arc::new(Split {
            job: job.clone(),
            source: source.clone(),
            validator: validator.to_string(),
            total,
            file: part.writer()?,
            state: Mutex::new(State {
                map,
                inside: 0,
                called: 0,
                stop: None,
                failures: 0,
            }),
            changed: Condvar::new(),
            unshown: AtomicU64::new(0),
            received: AtomicU64::new(0),
        });
        Ok(Some((split, owner)))
    }

    /// Call idle workers to `split`, as many as `--split` and `--per-host`
    /// allow besides the owner and the helpers it has or has asked for.
    /// Called again as the download goes on: workers that were busy (or
    /// still starting) when the split opened join when they are free.
    pub(super) fn call_helpers(&self, split: &Arc<Split>, crew: Option<&dyn Crew>) {
        let Some(crew) = crew else {
            return;
        };
        let mut state = split.lock();
        if state.stop.is_some() {
            return;
        }
        let limit = self.config.split.min(self.config.per_host);
        let wanted = limit.saturating_sub(1 + state.inside + state.called);
        // A helper with nothing to take would only cost a wake-up.
        let worth = usize::try_from(state.map.left() / (2 * MIN_STEAL)).unwrap_or(usize::MAX);
        let n = wanted.min(worth);
        if n > 0 && crew.idle() > 0 {
            state.called += crew.call(split, n.min(crew.idle()));
        }
    }

    /// The owner's part of its streaming piece: write `chunk` where the map
    /// allows; `false` once the piece is finished (the rest of the response
    /// belongs to other pieces, or is on disk already).
    pub(super) fn owner_write(
        &self,
        split: &Split,
        owner: Taken,
        part: &mut PartFile,
        tail: Option<&mut HeldTail>,
        chunk: &[u8],
        slot: &Slot,
    ) -> Result<bool, FetchError> {
        let (at, n) = split.lock().map.reserve(owner.id, chunk.len() as u64);
        // Never more than asked for.
        let mine = &chunk[..usize::try_from(n).unwrap_or(0)];
        let mut written = n;
        if !mine.is_empty() {
            match tail {
                Some(tail) => {
                    debug_assert_eq!(at, part.len() + tail.held());
                    written = tail.write_part(part, mine)?;
                }
                None => {
                    debug_assert_eq!(at, part.len());
                    part.write(mine)?;
                }
            }
        }
        let mut state = split.lock();
        state.map.wrote(owner.id, written);
        slot.advance(n + split.unshown.swap(0, Ordering::Relaxed));
        Ok(mine.len() == chunk.len() && !state.map.finished(owner.id))
    }

    /// The owner's piece stopped short (its connection failed, or its
    /// response ended early): the piece goes back to the map for another
    /// request.
    pub(super) fn owner_failed(&self, split: &Split, owner: Taken, error: FetchError) {
        split.failed(owner, error, self.config.retries);
    }

    /// The owner's response is done with: fetch what is left as a helper
    /// would, wait for the other connections, and end the attempt: complete,
    /// or stopped (the part is then started over, or kept with its map for
    /// the next attempt and for `-c`).
    pub(super) fn finish_split(
        &self,
        split: &Arc<Split>,
        part: &mut PartFile,
        ctx: &mut WorkerCtx<'_>,
        progress: &mut Progress,
    ) -> Result<Done, FetchError> {
        let mut backoff = Backoff::new(self.config.retry_wait, self.config.retry_wait_max);
        let mut seen_failures = 0;
        loop {
            self.take_pieces(split, ctx, true);
            let mut state = split.lock();
            if self.cancel.is_requested() {
                split.stop(&mut state, Stop::Cancelled);
            }
            if state.stop.is_some() || state.map.complete() {
                break;
            }
            if state.failures > seen_failures && state.map.unclaimed() > 0 {
                // A piece failed and is back: wait as a retry would.
                seen_failures = state.failures;
                drop(state);
                if !self.cancel.sleep(backoff.next(None)) {
                    split.stop(&mut split.lock(), Stop::Cancelled);
                }
                continue;
            }
            let state = wait_on(&split.changed, state, TICK);
            let prefix = state.map.prefix();
            drop(state);
            ctx.slot.advance(split.unshown.swap(0, Ordering::Relaxed));
            split.record(part, ctx.slot);
            self.call_helpers(split, ctx.crew);
            part.advance_to(prefix)?;
        }
        // Nobody may write into the part once the owner acts on it. A
        // complete file has nothing left to reserve, so helpers still in a
        // read (a connection being abandoned) can write nothing more; a
        // stopped one may, so they are waited for.
        let mut state = split.lock();
        while state.inside > 0 && !(state.stop.is_none() && state.map.complete()) {
            state = wait_on(&split.changed, state, TICK);
        }
        let stop = state.stop.take();
        let (prefix, done) = (state.map.prefix(), state.map.done());
        drop(state);
        self.show(split, ctx, 1);
        progress.transferred += split.received.swap(0, Ordering::Relaxed);
        match stop {
            None => {
                part.advance_to(split.total)?;
                Ok(Done::Complete)
            }
            Some(Stop::Restart(why)) => {
                part.restart()?;
                progress.validator = None;
                progress.announced = None;
                progress.pieces = None;
                Err(FetchError::Restart(why))
            }
            Some(stop) => {
                part.advance_to(prefix)?;
                part.record_done(done.clone());
                progress.pieces = Some(done);
                Err(match stop {
                    Stop::Failed(error) => error,
                    _ => FetchError::Cancelled,
                })
            }
        }
    }

    /// Show the helpers' bytes and the connection count on the owner's slot.
    fn show(&self, split: &Split, ctx: &WorkerCtx<'_>, connections: usize) {
        ctx.slot.advance(split.unshown.swap(0, Ordering::Relaxed));
        ctx.slot.set_connections(connections.max(1) as u64);
    }

    /// A worker the pool sent to `split`: fetch pieces until none is left to
    /// take, the split stops, or an entry waits in the channel.
    pub(crate) fn help(&self, split: &Arc<Split>, ctx: &mut WorkerCtx<'_>) {
        {
            let mut state = split.lock();
            state.called = state.called.saturating_sub(1);
            if state.stop.is_some() || self.cancel.is_requested() {
                return;
            }
            state.inside += 1;
        }
        self.take_pieces(split, ctx, false);
        let mut state = split.lock();
        state.inside -= 1;
        split.changed.notify_all();
    }

    /// Take pieces and fetch them until there is nothing to take. A helper
    /// (not the `owner`) leaves after a failed piece, and when entries wait;
    /// while other connections still fetch, it stays to take over one that
    /// stalls (the owner does the same from `finish_split`).
    fn take_pieces(&self, split: &Arc<Split>, ctx: &mut WorkerCtx<'_>, owner: bool) {
        loop {
            if !owner && ctx.crew.is_some_and(|crew| crew.waiting()) {
                return;
            }
            let taken = {
                let mut state = split.lock();
                loop {
                    if state.stop.is_some() || self.cancel.is_requested() {
                        return;
                    }
                    let stalled = Instant::now().checked_sub(STALL).unwrap_or_else(Instant::now);
                    if let Some(taken) = state.map.take(MIN_STEAL, stalled) {
                        break taken;
                    }
                    if owner || state.map.left() == 0 || ctx.crew.is_some_and(|crew| crew.waiting()) {
                        return;
                    }
                    state = wait_on(&split.changed, state, STALL / 3);
                }
            };
            match self.piece(split, taken, ctx, owner) {
                Ok(Piece::Finished) => {
                    split.changed.notify_all();
                }
                Ok(Piece::Yielded) => {
                    split.lock().map.release(taken.id);
                    split.changed.notify_all();
                    return;
                }
                Err(error) => {
                    // A helper goes back to the pool; the owner waits out
                    // the retry in `finish_split`.
                    split.failed(taken, error, self.config.retries);
                    return;
                }
            }
        }
    }

    /// Fetch one piece with a ranged request and write it in place.
    fn piece(
        &self,
        split: &Arc<Split>,
        taken: Taken,
        ctx: &mut WorkerCtx<'_>,
        owner: bool,
    ) -> Result<Piece, FetchError> {
        let _watch = split.watch(taken);
        let mut progress = Progress {
            validator: Some(split.validator.clone()),
            ..Progress::default()
        };
        let response = self.send(
            &split.source,
            &split.job.headers,
            taken.from,
            Some(taken.end),
            None,
            &mut progress,
        )?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let last = match status {
            206 => {
                let range = content_range(headers)?;
                if range.start != taken.from {
                    return Err(FetchError::Restart(format!(
                        "server sent byte {} for a range that starts at {}",
                        range.start, taken.from
                    )));
                }
                if range.total.is_some_and(|total| total != split.total) {
                    return Err(FetchError::Restart(format!(
                        "file size changed from {} to {} bytes",
                        split.total,
                        range.total.unwrap_or_default()
                    )));
                }
                if !same_version(&split.validator, headers) {
                    return Err(FetchError::Restart("server sent part of another version".into()));
                }
                range.end + 1
            }
            200 => {
                return Err(FetchError::Restart(
                    "the server sent the whole file to a range request".into(),
                ));
            }
            416 => return Err(FetchError::Restart("server refused a range".into())),
            code => {
                return Err(FetchError::Status {
                    status: code,
                    reason: response.status().canonical_reason().unwrap_or("Unknown"),
                    retry_after: super::headers::retry_after(headers),
                });
            }
        };
        let mut reader = response.into_body().into_reader();
        let mut at_end = taken.from;
        let mut reserve = crate::part::Reserve::new(taken.from, last);
        // A big piece is written on boundaries (see `tail`), what the
        // transport puts down during a wait counted in the map at once.
        // Best effort, as for a single stream.
        let mut tail = worth_holding(last - taken.from, self.rate.is_some())
            .then(|| split.file.try_clone().ok())
            .flatten()
            .map(|file| {
                let tail = HeldTail::new(file, split.job.path.clone());
                split.count_put_downs(taken, &tail);
                tail
            });
        let put =
            |at: u64, first: &[u8], second: &[u8]| put_pair(&split.file, &split.job.path, at, first, second);
        // From a page boundary: see crate::aligned.
        let buf = crate::aligned::from_boundary(ctx.buf);
        // `None` when the response ended; the piece may still be short.
        let read: Result<Option<Piece>, FetchError> = 'read: loop {
            if self.cancel.is_requested() {
                break 'read Err(FetchError::Cancelled);
            }
            if !owner && ctx.crew.is_some_and(|crew| crew.waiting()) {
                break 'read Ok(Some(Piece::Yielded));
            }
            let n = match reader.read(buf) {
                Ok(0) => break 'read Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Taken over while this connection was quiet: nothing is lost.
                Err(_) if split.is_finished(taken) => break 'read Ok(Some(Piece::Finished)),
                Err(e) => break 'read Err(body_error(e, at_end - taken.from, Some(last - taken.from))),
            };
            // Put down during a wait: counted in the map already.
            if let Some(tail) = tail.as_mut()
                && let Err(error) = tail.settle(|_| Ok(()))
            {
                break 'read Err(error);
            }
            let (at, allowed) = split.lock().map.reserve(taken.id, n as u64);
            let k = usize::try_from(allowed).unwrap_or(n).min(n);
            let mut written = k as u64;
            if k > 0 {
                if let Some(reserve) = reserve.as_mut() {
                    reserve.ahead(&split.file, at, k as u64);
                }
                let wrote = match tail.as_mut() {
                    Some(tail) => tail.write_at(at, &buf[..k], put),
                    None => put(at, &buf[..k], &[]).map(|()| k as u64),
                };
                match wrote {
                    Ok(n) => written = n,
                    Err(error) => break 'read Err(error),
                }
            }
            let finished = {
                let mut state = split.lock();
                state.map.wrote(taken.id, written);
                state.map.finished(taken.id)
            };
            at_end = at + k as u64;
            split.unshown.fetch_add(k as u64, Ordering::Relaxed);
            split.received.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(rate) = &self.rate
                && !rate.take(n, &self.cancel)
            {
                break 'read Err(FetchError::Cancelled);
            }
            if finished || k < n {
                // The rest of the range was stolen, or is on disk: the
                // connection is dropped unread.
                break 'read Ok(Some(Piece::Finished));
            }
        };
        // What is held goes down (and is counted) however the piece ended;
        // the read's own error comes first.
        if let Some(mut tail) = tail.take() {
            let flushed = tail
                .settle(|_| Ok(()))
                .and_then(|()| tail.flush_with(|at, held| put(at, held, &[])))
                .map(|n| split.wrote(taken, n));
            if let (Ok(_), Err(error)) = (&read, flushed) {
                return Err(error);
            }
        }
        if let Some(piece) = read? {
            return Ok(piece);
        }
        if split.lock().map.finished(taken.id) {
            Ok(Piece::Finished)
        } else {
            Err(FetchError::Truncated {
                received: at_end - taken.from,
                expected: last - taken.from,
            })
        }
    }
}
