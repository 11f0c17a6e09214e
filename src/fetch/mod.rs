//! One download, from the skip check to the final rename: status checks,
//! verification, and the retry, resume and source decisions between
//! attempts. Sending a request and following its redirects is in
//! `redirect.rs`, reading response headers in `headers.rs`, naming transport
//! errors in `classify.rs`, streaming a body into the part in `stream.rs`,
//! writing a big body on 64 KiB boundaries in `tail.rs`, fetching one file
//! over several connections in `split.rs`, and racing and setting aside an
//! entry's sources (mirrors) in `sources.rs`.
//!
//! Resume follows RFC 9110 §14: a retry after part of the body arrived asks
//! for the rest with `Range: bytes=N-` and `If-Range` (the first response's
//! strong ETag, else its Last-Modified). A 206 must start exactly at N; a 200
//! means the server sent the whole (possibly new) representation. Either way
//! two versions are never spliced: anything unexpected restarts from byte 0.
//! `-c` continues a part an earlier run left the same way, with the validator
//! and full length recorded on the part (see [`crate::resume`]). Bytes whose
//! version nothing can check (no validator, no usable record) are continued
//! only where the entry's checksums will check the result, and fetched whole
//! once more if it does not match.

mod classify;
mod headers;
mod redirect;
mod sources;
mod split;
mod stream;
mod tail;

pub(crate) use sources::Race;
use sources::source_count;
pub(crate) use split::{Crew, Split};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ureq::http::header;
use url::Url;

use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::checksum::{Algorithms, Checksums};
use crate::config::{Config, Existing};
use crate::error::FetchError;
use crate::event::{
    EntryReport, Event, Events, JobInfo, Outcome, Problem, Resume, SkipReason, Slot, SourceReport, StartOver,
};
use crate::folder::{Folder, Occupant, occupant_at};
use crate::naming::{self, Namer, Turn};
use crate::outdir::OutDir;
use crate::part::{Committed, Linker, PartFile, part_holder, part_name};
use crate::proxy::ProxyTable;
use crate::rate::RateLimiter;
use crate::resume::{self, Record, Verdict};
use crate::validators::{self, Conditional};

use headers::{
    content_range, content_range_total, expected_length, header_str, retry_after, same_version, validator,
};

/// How often (in bytes streamed) a download that could be split looks for
/// idle workers to share it with.
const SPLIT_LOOK: u64 = 1024 * 1024;

/// How often a split download's owner, while it streams, puts the map of
/// pieces on disk on the part (what a crash can lose) and calls helpers.
const RECORD_EVERY: Duration = Duration::from_millis(100);

/// How often a worker waiting for another process's part looks at it again.
const BUSY_POLL: Duration = Duration::from_millis(200);

/// How often one entry waits for a part another process holds before it
/// gives up: each wait lasts as long as the holder makes progress, so this
/// only bounds a pathological chain of holders.
const BUSY_ROUNDS: usize = 100;

/// Everything a worker needs to download entries; one per run, shared by reference.
pub(crate) struct Fetcher {
    /// The shared HTTP agent (one connection pool).
    pub agent: ureq::Agent,
    /// The run's settings.
    pub config: Arc<Config>,
    /// Where files go.
    pub out: Arc<OutDir>,
    /// The run's stop request.
    pub cancel: Cancel,
    /// The run-wide `--limit-rate` bucket.
    pub rate: Option<RateLimiter>,
    /// Which proxy each request uses.
    pub proxies: ProxyTable,
    /// The run's names, for names chosen after the request (`--content-disposition`).
    pub namer: Arc<Mutex<Namer>>,
}

/// What one worker needs besides the entry: its progress slot and the event channel.
pub(crate) struct WorkerCtx<'a> {
    /// Worker number.
    pub worker: usize,
    /// The worker's live byte counters.
    pub slot: &'a Slot,
    /// Where events go.
    pub events: &'a Events,
    /// The worker's reusable streaming buffer.
    pub buf: &'a mut Vec<u8>,
    /// The entry's place in the order of late names (`--content-disposition`).
    pub turn: Option<&'a Turn>,
    /// The pool's idle workers, for splitting a big file (`--split`).
    pub crew: Option<&'a dyn Crew>,
}

/// What is known about an entry across its attempts.
#[derive(Default)]
struct Progress {
    attempts: u32,
    status: Option<u16>,
    final_url: Option<Url>,
    transferred: u64,
    /// The validator of the representation in the part file, for `If-Range`.
    validator: Option<String>,
    /// The Last-Modified of the response, applied as the file's mtime.
    last_modified: Option<SystemTime>,
    /// The response's ETag, kept on the file for the next `--update`.
    etag: Option<String>,
    /// `--update`: what the existing file's last download stored.
    conditional: Option<Conditional>,
    /// The name `--content-disposition` chose, relative to the output dir.
    saved_as: Option<PathBuf>,
    /// The full size the last response announced (or the part recorded), to
    /// judge a later 206 or 416.
    announced: Option<u64>,
    /// The part holds bytes continued without a record of their version
    /// (`-c` with a checksum); cleared once the part starts from byte 0.
    unrecorded: bool,
    /// The ranges on disk when the part has holes: a split download that
    /// stopped (kept for the next attempt) or one continued with `-c`.
    pieces: Option<Vec<(u64, u64)>>,
    /// The source in use (0 is the entry's URL, then its mirrors).
    source: usize,
    /// Sources set aside, with why.
    aside: Vec<(usize, String)>,
    /// Attempts made on the current source.
    source_attempts: u32,
    /// Whether the current attempt got as far as a body.
    streamed: bool,
}

/// An entry's part file, made only once a response has a body to write: a
/// 304, an error status or a name already taken never touches the folder
/// (with `-N` on a mirror that is most entries of every run).
struct Part {
    /// The folder it goes in.
    folder: Folder,
    /// The file, once made or continued (`-c`).
    file: Option<PartFile>,
    /// How to make it: see [`PartFile::create`].
    linker: Option<Linker>,
    mode: Option<u32>,
    hash: Algorithms,
}

impl Part {
    fn len(&self) -> u64 {
        self.file.as_ref().map_or(0, PartFile::len)
    }

    /// The part file for `name`, made now if there is none yet.
    fn open(&mut self, name: &OsStr) -> Result<&mut PartFile, FetchError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => PartFile::create(&self.folder, name, self.linker, self.mode, self.hash)?,
        };
        Ok(self.file.insert(file))
    }

    fn restart(&mut self) -> Result<(), FetchError> {
        self.file.as_mut().map_or(Ok(()), PartFile::restart)
    }

    /// Delete what was written; dropping a `Part` instead keeps it for `-c`.
    fn remove(self) {
        if let Some(file) = self.file {
            file.remove();
        }
    }
}

/// The file name of an entry's path (naming guarantees there is one).
fn file_name(rel: &Path) -> &OsStr {
    rel.file_name().unwrap_or_default()
}

/// A file's size and permissions at `name` in `folder`, or nothing there; anything
/// but a regular file (or a symlink to one) fails the entry, whatever the mode,
/// before a byte is downloaded.
fn existing_of(folder: &Folder, name: &OsStr) -> Result<Option<(u64, u32)>, FetchError> {
    match folder.occupant(name) {
        Ok(None) => Ok(None),
        Ok(Some(Occupant::File { len, mode })) => Ok(Some((len, mode))),
        Ok(Some(Occupant::Other(what))) => Err(FetchError::NotAFile {
            path: folder.join(name),
            what,
        }),
        Err(e) => Err(FetchError::disk("cannot inspect", folder.join(name), e)),
    }
}

/// What the last download stored about the file at `name`, for `--update`.
fn conditional(folder: &Folder, name: &OsStr) -> Result<Conditional, FetchError> {
    let meta = folder
        .metadata(name)
        .map_err(|e| FetchError::disk("cannot inspect", folder.join(name), e))?;
    Ok(validators::load(&folder.join(name), &meta))
}

/// How a successful attempt ended.
enum Done {
    /// The whole body is in the part file.
    Complete,
    /// 304 to a conditional request.
    NotModified,
    /// The server's `Content-Disposition` name already exists (size given).
    Exists(u64),
    /// `--update`: the file under the server's `Content-Disposition` name
    /// already holds the version offered (size given).
    Current(u64),
}

impl Fetcher {
    /// Download one entry and say how it went. Never panics on network or disk input.
    pub(crate) fn fetch(&self, job: &Arc<JobInfo>, ctx: &mut WorkerCtx<'_>) -> EntryReport {
        let start = Instant::now();
        let mut progress = Progress::default();
        let (outcome, bytes) = match self.run(job, ctx, &mut progress, start) {
            Ok((outcome, bytes)) => (outcome, bytes),
            Err(error) => (Outcome::Failed(Problem::Fetch(error)), 0),
        };
        let sources = (!job.mirrors.is_empty()).then(|| {
            Box::new(SourceReport {
                delivered_by: matches!(outcome, Outcome::Downloaded).then_some(progress.source),
                set_aside: std::mem::take(&mut progress.aside),
            })
        });
        EntryReport {
            sources,
            origin: job.origin.clone(),
            job: Some(job.clone()),
            outcome,
            final_url: progress.final_url,
            status: progress.status,
            bytes,
            transferred: progress.transferred,
            attempts: progress.attempts,
            elapsed: start.elapsed(),
            saved_as: progress.saved_as,
            ticket: job.ticket.clone(),
        }
    }

    fn run(
        &self,
        job: &Arc<JobInfo>,
        ctx: &mut WorkerCtx<'_>,
        progress: &mut Progress,
        start: Instant,
    ) -> Result<(Outcome, u64), FetchError> {
        let config = &*self.config;
        let checksums = &job.checksums;
        if config.dry_run {
            return self.plan(job);
        }
        let place = self.out.ensure_parent(&job.path)?;
        let folder = place.folder();
        let name = file_name(&job.path);
        // A folder that was empty when this run first used it holds nothing to
        // skip, update or continue: no need to look (see `crate::outdir`).
        let existing = if place.was_empty() {
            None
        } else {
            existing_of(folder, name)?
        };
        if let Some((len, _)) = existing
            && config.existing == Existing::Skip
        {
            return Ok((Outcome::Skipped(SkipReason::Exists), len));
        }
        let mode = existing.map(|(_, mode)| mode);
        if existing.is_some() && config.existing == Existing::Update {
            progress.conditional = Some(conditional(folder, name)?);
        }
        let hash = checksums.algorithms();
        let _ = ctx.events.send(Event::Started {
            worker: ctx.worker,
            job: job.clone(),
        });
        let mut continued = None;
        if config.resume && !place.was_empty() {
            for _ in 0..BUSY_ROUNDS {
                match PartFile::continue_existing(folder, name, hash) {
                    Err(FetchError::Busy { .. }) => {
                        if let Some(done) = self.wait_for_holder(job, folder, name, ctx, progress, start)? {
                            return Ok(done);
                        }
                    }
                    other => {
                        continued = other?;
                        break;
                    }
                }
            }
        }
        // Judged only once the part is ours (locked, and still the file at
        // `NAME.part`): its record cannot change under us.
        let continued = match continued {
            Some(found) if !found.is_empty() => {
                self.judge_leftover(found, job, !hash.is_empty(), ctx, progress)
            }
            other => other,
        };
        let mut part = Part {
            folder: folder.clone(),
            file: continued,
            // Unnamed only where no stale part can be in the way: an empty
            // folder, or `-c` just found none.
            linker: self.out.linker().filter(|_| place.was_empty() || config.resume),
            mode,
            hash,
        };
        ctx.slot.begin(part.len());

        let mut backoff = Backoff::new(config.retry_wait, config.retry_wait_max);
        let mut busy_rounds = 0;
        loop {
            progress.attempts += 1;
            progress.source_attempts += 1;
            progress.streamed = false;
            let result = self.attempt(job, &mut part, ctx, progress, start);
            let error = match result {
                Ok(Done::Complete) if progress.unrecorded && digest_differs(checksums, &mut part)? => {
                    // The leftover bytes were not this file's: fetch it whole.
                    progress.unrecorded = false;
                    let _ = ctx.events.send(Event::Resume {
                        job: job.clone(),
                        from: part.len(),
                        decision: Resume::StartedOver(StartOver::ChecksumFailed),
                    });
                    part.restart()?;
                    progress.pieces = None;
                    progress.validator = None;
                    progress.announced = None;
                    continue;
                }
                Ok(Done::Complete) => break,
                Ok(Done::NotModified) => {
                    part.remove();
                    return Ok((Outcome::Unchanged, existing.map_or(0, |(len, _)| len)));
                }
                Ok(Done::Exists(len)) => {
                    part.remove();
                    return Ok((Outcome::Skipped(SkipReason::Exists), len));
                }
                Ok(Done::Current(len)) => {
                    part.remove();
                    return Ok((Outcome::Unchanged, len));
                }
                // Another process is downloading this very file (its part is
                // made only once a body arrives, so nothing of ours is lost):
                // not an attempt of ours; wait for it, then look again.
                Err(FetchError::Busy { .. }) if busy_rounds < BUSY_ROUNDS => {
                    busy_rounds += 1;
                    progress.attempts -= 1;
                    let name = file_name(progress.saved_as.as_deref().unwrap_or(&job.path)).to_os_string();
                    match self.wait_for_holder(job, folder, &name, ctx, progress, start)? {
                        Some(done) => return Ok(done),
                        None => continue,
                    }
                }
                Err(error) => error,
            };
            if self.cancel.is_requested() {
                // Keep the part: `-c` continues it on the next run.
                return Err(FetchError::Cancelled);
            }
            let out_of_time = config.max_time.is_some_and(|max| start.elapsed() >= max);
            let transient = error.is_transient()
                || matches!(&error, FetchError::Status { status, .. } if config.retry_statuses.contains(status));
            // With mirrors, a source that failed before its body, or whose
            // retries are spent, makes way for the next one.
            let error = if source_count(job) > 1
                && !out_of_time
                && source_fault(&error)
                && (!progress.streamed || !transient || progress.source_attempts > config.retries)
            {
                let here = progress.source;
                self.set_aside(job, here, error, progress, ctx);
                match self.next_source(job, progress) {
                    Some(next) => {
                        self.switch_source(job, next, &mut part, progress)?;
                        continue;
                    }
                    None => {
                        part.remove();
                        return Err(FetchError::AllSources(
                            progress
                                .aside
                                .iter()
                                .map(|(source, cause)| {
                                    (crate::display::url(job.source(*source)), cause.clone())
                                })
                                .collect(),
                        ));
                    }
                }
            } else {
                error
            };
            if !transient || progress.source_attempts > config.retries || out_of_time {
                // A resumable part is kept for `-c`; anything else is removed.
                if !transient || part.len() == 0 {
                    part.remove();
                }
                return Err(error);
            }
            let retry_after = match &error {
                FetchError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = backoff.next(retry_after);
            let _ = ctx.events.send(Event::Retrying {
                job: job.clone(),
                attempt: progress.attempts,
                error,
                wait,
                resume_from: part.len(),
            });
            if !self.cancel.sleep(wait) {
                return Err(FetchError::Cancelled);
            }
        }

        let Some(mut part) = part.file else {
            // Every `Done::Complete` follows a body written to the part.
            return Err(FetchError::BadResponse("no body was received".into()));
        };
        if let Err(mismatch) = checksums.verify(part.hasher()?) {
            part.remove();
            return Err(FetchError::Checksum {
                algorithm: mismatch.algorithm.name(),
                expected: mismatch.expected,
                actual: mismatch.actual,
            });
        }
        let bytes = part.len();
        let rel = progress.saved_as.as_deref().unwrap_or(&job.path);
        let name = file_name(rel);
        if let Err(error) = self.out.check(rel, &place) {
            part.remove();
            return Err(error);
        }
        let committed = part
            .commit(
                name,
                // Only --overwrite and --update replace a file; a name taken while we
                // downloaded is left to its owner.
                config.existing != Existing::Skip,
                config.sync,
                // A Last-Modified in the future (a server clock ahead, or a hostile
                // server) becomes "now": as an mtime it would make every later
                // `-N` send an If-Modified-Since the server's real changes never pass.
                progress.last_modified.map(|lm| lm.min(SystemTime::now())),
                // Kept only for --update runs: it costs a syscall per file and only
                // --update reads it.
                progress
                    .etag
                    .as_deref()
                    .filter(|_| config.existing == Existing::Update),
            )
            // A directory put at the name during the download: say so.
            .map_err(|error| match existing_of(folder, name) {
                Err(not_a_file @ FetchError::NotAFile { .. }) => not_a_file,
                _ => error,
            })?;
        match committed {
            Committed::Saved => Ok((Outcome::Downloaded, bytes)),
            Committed::NameTaken => {
                let len = existing_of(folder, name)?.map_or(0, |(len, _)| len);
                Ok((Outcome::Skipped(SkipReason::Exists), len))
            }
        }
    }

    /// `--dry-run`: what would happen, from a look at the path (nothing is
    /// opened or created).
    fn plan(&self, job: &JobInfo) -> Result<(Outcome, u64), FetchError> {
        let target = self.out.path_of(&job.path);
        match occupant_at(rustix::fs::CWD, target.as_path()) {
            Ok(Some(Occupant::File { len, .. })) if self.config.existing == Existing::Skip => {
                Ok((Outcome::Skipped(SkipReason::Exists), len))
            }
            Ok(Some(Occupant::Other(what))) => Err(FetchError::NotAFile { path: target, what }),
            Ok(_) => Ok((Outcome::Planned, 0)),
            Err(e) => Err(FetchError::disk("cannot inspect", target, e)),
        }
    }

    /// Wait while another process holds `name`'s part in `folder` (an
    /// overlapping run downloading the same file), for as long as it makes
    /// progress: its part must grow at least once per idle timeout
    /// (`--timeout`), and `--max-time` and Ctrl-C end the wait as they end a
    /// download. Then look at `name` again: `Some` when the entry is done,
    /// because the other process saved the file and existing files are left
    /// alone. A holder that died (SIGKILL) lets go of its lock at once, and
    /// its part is stale: continued with `-c`, replaced without.
    fn wait_for_holder(
        &self,
        job: &Arc<JobInfo>,
        folder: &Folder,
        name: &OsStr,
        ctx: &WorkerCtx<'_>,
        progress: &mut Progress,
        start: Instant,
    ) -> Result<Option<(Outcome, u64)>, FetchError> {
        let path = || folder.join(&part_name(name));
        let _ = ctx.events.send(Event::Retrying {
            job: job.clone(),
            attempt: progress.attempts.max(1),
            error: FetchError::busy(path()),
            wait: BUSY_POLL,
            resume_from: 0,
        });
        let mut seen: Option<u64> = None;
        let mut since = Instant::now();
        while let Some(len) = part_holder(folder, name) {
            if seen != Some(len) {
                seen = Some(len);
                since = Instant::now();
            }
            if let Some(idle) = self.config.idle_timeout
                && since.elapsed() >= idle
            {
                return Err(FetchError::Busy {
                    path: path(),
                    stalled: Some(idle),
                });
            }
            if self.config.max_time.is_some_and(|max| start.elapsed() >= max) {
                return Err(FetchError::busy(path()));
            }
            if !self.cancel.sleep(BUSY_POLL) {
                return Err(FetchError::Cancelled);
            }
        }
        match existing_of(folder, name)? {
            Some((len, _)) if self.config.existing == Existing::Skip => {
                Ok(Some((Outcome::Skipped(SkipReason::Exists), len)))
            }
            Some(_) if self.config.existing == Existing::Update => {
                progress.conditional = Some(conditional(folder, name)?);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// `-c`: keep a leftover part (locked by us) if its record says the
    /// server can still send the rest of its version, or the entry's checksum
    /// will check it; otherwise remove it, by name and only while the name
    /// still leads to it, never truncating it: the file may be another
    /// program's. `-v` is told which.
    fn judge_leftover(
        &self,
        found: PartFile,
        job: &Arc<JobInfo>,
        hash: bool,
        ctx: &WorkerCtx<'_>,
        progress: &mut Progress,
    ) -> Option<PartFile> {
        let from = found.len();
        let decision = match resume::judge(found.stored_record(), &job.url, from, hash) {
            Verdict::Continue {
                if_range,
                length,
                done,
            } => {
                progress.validator = Some(if_range);
                progress.announced = length;
                progress.pieces = done;
                Resume::Continued
            }
            Verdict::Checked => {
                progress.unrecorded = true;
                Resume::Checked
            }
            Verdict::StartOver(why) => Resume::StartedOver(why),
        };
        let _ = ctx.events.send(Event::Resume {
            job: job.clone(),
            from,
            decision,
        });
        if let Resume::StartedOver(_) = decision {
            found.remove();
            None
        } else {
            let mut found = found;
            if let Some(done) = &progress.pieces {
                // Holes follow the first range: only it counts as the part's.
                found.keep_prefix(crate::pieces::prefix_of(done));
            }
            Some(found)
        }
    }

    /// One request and, if it is the body we want, stream it into the part.
    fn attempt(
        &self,
        job: &Arc<JobInfo>,
        part: &mut Part,
        ctx: &mut WorkerCtx<'_>,
        progress: &mut Progress,
        start: Instant,
    ) -> Result<Done, FetchError> {
        if part.len() > 0 && progress.validator.is_none() && !progress.unrecorded {
            // The first response had no ETag or Last-Modified: nothing can
            // tell its version from the server's now, so only a checksum may
            // vouch for continuing.
            let decision = if !part.hash.is_empty() {
                progress.unrecorded = true;
                Resume::Checked
            } else {
                Resume::StartedOver(StartOver::NoValidator)
            };
            let _ = ctx.events.send(Event::Resume {
                job: job.clone(),
                from: part.len(),
                decision,
            });
            if part.hash.is_empty() {
                part.restart()?;
                progress.pieces = None;
            }
        }
        let offset = part.len();
        let deadline = self
            .config
            .max_time
            .map(|max| max.saturating_sub(start.elapsed()));
        if deadline.is_some_and(|d| d.is_zero()) {
            return Err(FetchError::Timeout("--max-time reached".into()));
        }
        // A part with holes asks for its first gap only; the rest is pieces.
        let gap_end = progress
            .pieces
            .as_ref()
            .and_then(|done| done.iter().map(|&(start, _)| start).find(|&start| start > offset));
        let response = self.first_answer(job, offset, gap_end, deadline, progress, ctx)?;
        let status = response.status();
        progress.status = Some(status.as_u16());
        let headers = response.headers();

        match status.as_u16() {
            206 if offset > 0 => {
                let range = content_range(headers)?;
                let mismatch = if range.start != offset {
                    Some(format!(
                        "server resumed at byte {} instead of {offset}",
                        range.start
                    ))
                } else if let (Some(total), Some(known)) = (range.total, progress.announced)
                    && total != known
                {
                    Some(format!("file size changed from {known} to {total} bytes"))
                } else if !progress
                    .validator
                    .as_deref()
                    .is_none_or(|v| same_version(v, headers))
                {
                    Some("server sent the rest of another version".to_string())
                } else {
                    None
                };
                if let Some(mismatch) = mismatch {
                    part.restart()?;
                    progress.pieces = None;
                    progress.validator = None;
                    progress.announced = None;
                    return Err(FetchError::Restart(mismatch));
                }
            }
            416 if offset > 0 => {
                // The part may already hold the whole file (RFC 9110 §15.5.17):
                // believable only if this run saw no other announced size.
                let total = content_range_total(headers);
                if total == Some(offset) && progress.announced.is_none_or(|a| a == offset) {
                    return Ok(Done::Complete);
                }
                part.restart()?;
                progress.pieces = None;
                progress.validator = None;
                return Err(FetchError::Restart("server refused to resume".into()));
            }
            304 if progress.conditional.is_some() && offset == 0 => return Ok(Done::NotModified),
            200..=299 => {
                if offset > 0 {
                    // Range ignored or the representation changed: the whole body follows.
                    let _ = ctx.events.send(Event::Resume {
                        job: job.clone(),
                        from: offset,
                        decision: Resume::StartedOver(StartOver::WholeFile),
                    });
                    part.restart()?;
                    progress.pieces = None;
                }
            }
            code => {
                return Err(FetchError::Status {
                    status: code,
                    reason: status.canonical_reason().unwrap_or("Unknown"),
                    retry_after: retry_after(headers),
                });
            }
        }
        progress.etag = header_str(headers, header::ETAG).map(str::to_string);
        progress.last_modified =
            header_str(headers, header::LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(v).ok());
        if self.config.content_disposition && job.named_by_url && progress.saved_as.is_none() {
            // Claimed in list order: wait for every earlier entry's name.
            let _taking = match ctx.turn {
                Some(turn) => Some(turn.wait(&self.cancel).ok_or(FetchError::Cancelled)?),
                None => None,
            };
            let offered =
                header_str(headers, header::CONTENT_DISPOSITION).and_then(naming::name_from_disposition);
            if let Some(name) = offered.filter(|name| job.path.file_name() != Some(name.as_ref())) {
                let wanted = job.path.with_file_name(name);
                let claimed = self
                    .namer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .claim_late(wanted, &job.origin);
                let name = file_name(&claimed).to_os_string();
                progress.saved_as = Some(claimed);
                if let Some((len, _)) = existing_of(&part.folder, &name)? {
                    match self.config.existing {
                        Existing::Skip => return Ok(Done::Exists(len)),
                        // The request could not be conditional (the name was not
                        // known yet): compare the answer with what the last
                        // download stored on the file instead.
                        Existing::Update
                            if conditional(&part.folder, &name)?.describes(
                                progress.etag.as_deref(),
                                progress.last_modified,
                                header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
                                len,
                            ) =>
                        {
                            return Ok(Done::Current(len));
                        }
                        _ => {}
                    }
                }
            }
        }
        if progress.validator.is_none() || part.len() == 0 {
            progress.validator = validator(headers);
        }
        let expected = expected_length(headers, status, part.len())?;
        let max_filesize = self.config.max_filesize;
        if let Some(limit) = max_filesize
            && expected.is_some_and(|total| total > limit)
        {
            // Refused before a byte of the body is read or a part is made.
            return Err(FetchError::TooLarge { limit });
        }
        if expected.is_some() {
            progress.announced = expected;
        }
        let part = part.open(file_name(progress.saved_as.as_deref().unwrap_or(&job.path)))?;
        if part.is_empty() {
            // The body starts the file: record where it comes from for `-c`.
            progress.unrecorded = false;
            part.set_record(Record::new(
                &job.url,
                progress.etag.as_deref(),
                header_str(headers, header::LAST_MODIFIED),
                expected,
            ));
        }
        self.stream(job, part, response, expected, ctx, progress)
    }
}

/// Wait on `changed` for at most `limit`, and go on with the state whether
/// or not a thread panicked while holding it (every update is one step, so
/// what it left is consistent): shared by the split and the source race.
fn wait_on<'a, T>(changed: &Condvar, state: MutexGuard<'a, T>, limit: Duration) -> MutexGuard<'a, T> {
    changed
        .wait_timeout(state, limit)
        .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state)
}

/// Whether the part's digests are not the `want`ed ones.
fn digest_differs(want: &Checksums, part: &mut Part) -> Result<bool, FetchError> {
    match part.file.as_mut() {
        Some(file) => Ok(want.verify(file.hasher()?).is_err()),
        None => Ok(false),
    }
}

/// Whether `error` says something about the source rather than about this
/// machine or the entry: only then does another source help.
fn source_fault(error: &FetchError) -> bool {
    !matches!(
        error,
        FetchError::Disk { .. }
            | FetchError::Busy { .. }
            | FetchError::NotAFile { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Cancelled
            | FetchError::Checksum { .. }
            | FetchError::AllSources(_)
    )
}

impl Fetcher {
    /// Go on with source `next`. Bytes of the old one stay only where the
    /// entry's checksum will check the joined result; otherwise the file
    /// starts over, since two servers' bytes are never spliced unverified.
    fn switch_source(
        &self,
        job: &Arc<JobInfo>,
        next: usize,
        part: &mut Part,
        progress: &mut Progress,
    ) -> Result<(), FetchError> {
        progress.source = next;
        progress.source_attempts = 0;
        // Validators and lengths are the old server's.
        progress.validator = None;
        progress.announced = None;
        if part.len() > 0 || progress.pieces.is_some() {
            if job.checksums.is_empty() {
                part.restart()?;
            } else {
                progress.unrecorded = true;
            }
            // A map of pieces belongs to the old source's version.
            progress.pieces = None;
        }
        Ok(())
    }
}
