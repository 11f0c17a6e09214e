//! Streaming a response body into the part: the owner's side of a split
//! download (see `split`), which may begin before the body (a part with
//! holes) or while it streams (idle workers turn up), and the plain single
//! stream otherwise.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Instant;

use ureq::http::StatusCode;

use super::classify::body_error;
use super::headers::content_range;
use super::tail::{HeldTail, worth_holding};
use super::{Done, Fetcher, Progress, RECORD_EVERY, SPLIT_LOOK, Split, WorkerCtx};
use crate::error::FetchError;
use crate::event::JobInfo;
use crate::part::PartFile;
use crate::pieces::Taken;

impl Fetcher {
    /// Stream `response`'s body (`expected` bytes in all, if known) into
    /// `part`, splitting the download where it can.
    pub(super) fn stream(
        &self,
        job: &Arc<JobInfo>,
        part: &mut PartFile,
        response: ureq::http::Response<ureq::Body>,
        expected: Option<u64>,
        ctx: &mut WorkerCtx<'_>,
        progress: &mut Progress,
    ) -> Result<Done, FetchError> {
        let status = response.status();
        let headers = response.headers();
        let max_filesize = self.config.max_filesize;
        // A big file served in ranges is split over idle workers (see
        // `split`): at once when the part has holes, else as soon as idle
        // workers turn up while it streams.
        let ranged = status == StatusCode::PARTIAL_CONTENT;
        let full_length = if ranged {
            content_range(headers)?.total
        } else {
            expected
        };
        let splittable = progress.validator.is_some() && self.splittable(headers, full_length, ranged);
        let mut split: Option<(Arc<Split>, Taken)> = None;
        // While split, this connection's reads end when its piece is taken over.
        let mut _watch = None;
        let mut on_disk = part.len();
        if let Some(done) = progress.pieces.take() {
            let opened = match (full_length, progress.validator.as_deref()) {
                (Some(total), Some(validator)) if ranged => {
                    self.open_split(job, job.source(progress.source), part, validator, total, &done)?
                }
                _ => None,
            };
            let Some(opened) = opened else {
                part.restart()?;
                return Err(FetchError::Restart(
                    "the server no longer serves the missing ranges".into(),
                ));
            };
            on_disk = done.iter().map(|(a, b)| b - a).sum();
            self.call_helpers(&opened.0, ctx.crew);
            _watch = Some(opened.0.watch(opened.1));
            split = Some(opened);
        }
        ctx.slot.begin_body(on_disk, expected);
        part.expect(expected);
        progress.streamed = true;
        let mut reader = response.into_body().into_reader();
        let mut next_look = 0;
        let mut recorded = Instant::now();
        // From a page boundary: see crate::aligned.
        let buf = crate::aligned::from_boundary(ctx.buf);
        // A big body is written on boundaries (see `tail`). Best effort:
        // without a second descriptor (out of them), it is written as it
        // arrives.
        let mut tail = if split.is_none()
            && expected.is_some_and(|total| worth_holding(total.saturating_sub(on_disk), self.rate.is_some()))
        {
            HeldTail::for_part(part).ok()
        } else {
            None
        };
        // Bytes received: on disk, and held.
        let received =
            |part: &PartFile, tail: &Option<HeldTail>| part.len() + tail.as_ref().map_or(0, HeldTail::held);
        // Ends with the response, or with why this connection stopped; a
        // split goes on without it (see below).
        let streamed: Result<(), FetchError> = 'stream: loop {
            if self.cancel.is_requested() {
                break 'stream Err(FetchError::Cancelled);
            }
            let n = match reader.read(buf) {
                Ok(0) => break 'stream Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Taken over while this connection was quiet: nothing is lost.
                Err(_)
                    if split
                        .as_ref()
                        .is_some_and(|(split, owner)| split.is_finished(*owner)) =>
                {
                    break 'stream Ok(());
                }
                Err(e) => break 'stream Err(body_error(e, received(part, &tail), expected)),
            };
            if let Some(limit) = max_filesize
                && received(part, &tail) + n as u64 > limit
            {
                break 'stream Err(FetchError::TooLarge { limit });
            }
            progress.transferred += n as u64;
            if let Some(rate) = &self.rate
                && !rate.take(n, &self.cancel)
            {
                break 'stream Err(FetchError::Cancelled);
            }
            if let Some((split, owner)) = &split {
                match self.owner_write(split, *owner, part, tail.as_mut(), &buf[..n], ctx.slot) {
                    Ok(true) => {}
                    Ok(false) => break 'stream Ok(()),
                    Err(error) => break 'stream Err(error),
                }
                // The map on the part, for `-c` after a crash, and more
                // helpers as workers come free.
                if recorded.elapsed() >= RECORD_EVERY {
                    recorded = Instant::now();
                    split.record(part, ctx.slot);
                    self.call_helpers(split, ctx.crew);
                }
                continue;
            }
            let written = match tail.as_mut() {
                Some(tail) => tail.write_part(part, &buf[..n]).map(drop),
                None => part.write(&buf[..n]),
            };
            if let Err(error) = written {
                break 'stream Err(error);
            }
            ctx.slot.advance(n as u64);
            if expected.is_some_and(|total| received(part, &tail) > total) {
                part.restart()?;
                progress.pieces = None;
                return Err(FetchError::Restart("body longer than announced".into()));
            }
            if splittable && received(part, &tail) >= next_look {
                next_look = received(part, &tail) + SPLIT_LOOK;
                if let (Some(crew), Some(total), Some(validator)) =
                    (ctx.crew, full_length, progress.validator.as_deref())
                    && crew.idle() > 0
                {
                    // The split starts from the bytes on disk.
                    if let Some(tail) = tail.as_mut()
                        && let Err(error) = tail.flush_part(part)
                    {
                        break 'stream Err(error);
                    }
                    split = self.open_split(
                        job,
                        job.source(progress.source),
                        part,
                        validator,
                        total,
                        &[(0, part.len())],
                    )?;
                    if let Some((split, owner)) = &split {
                        self.call_helpers(split, ctx.crew);
                        _watch = Some(split.watch(*owner));
                        // The owner's piece is held too.
                        if let Some(tail) = &tail {
                            split.count_put_downs(*owner, tail);
                        }
                    }
                }
            }
        };
        // What is held goes down whatever ended the stream; the stream's
        // own error comes first.
        let flushed = tail.take().map_or(Ok(0), |mut tail| tail.flush_part(part));
        if let (Ok(n), Some((split, owner))) = (&flushed, &split) {
            split.wrote(*owner, *n);
        }
        let streamed = streamed.and(flushed.map(drop));
        drop(_watch);
        if let Some((split, owner)) = split {
            match streamed {
                // The response ended before the piece did.
                Ok(()) if !split.is_finished(owner) => self.owner_failed(
                    &split,
                    owner,
                    FetchError::Truncated {
                        received: part.len(),
                        expected: expected.unwrap_or_default(),
                    },
                ),
                Ok(()) => {}
                // Only this connection's piece is lost unless the error is
                // final: the other connections go on, or stop and are waited for.
                Err(error) => self.owner_failed(&split, owner, error),
            }
            return self.finish_split(&split, part, ctx, progress);
        }
        streamed?;
        if let Some(total) = expected
            && part.len() < total
        {
            return Err(FetchError::Truncated {
                received: part.len(),
                expected: total,
            });
        }
        Ok(Done::Complete)
    }
}
