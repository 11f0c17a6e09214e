//! Buffers that start on a page boundary, and a copy that never takes
//! `memcpy`'s slow road.
//!
//! glibc's `memcpy` moves blocks from 2,112 bytes up with `rep movsb`, and on
//! the AMD EPYC (Zen) machines fetchq is measured on that instruction crawls
//! when the destination lies 1 to 63 bytes past the source modulo 4 KiB (the
//! stores alias the loads still in flight): 16 KiB copies then ran at
//! 1.1–1.8 GB/s, against 16–35 GB/s at any other distance, and at 25–38 GB/s
//! whatever the distance when done in pieces of 1 KiB, which glibc copies with
//! vector moves. A body read over TLS is copied twice in user space, so
//! one unlucky pair of addresses cost a third of a second per 512 MiB. Hence:
//! the buffers fetchq reads into start on a page boundary (so the copy ureq
//! makes from its input buffer into the worker's buffer runs between two
//! addresses equal modulo 4 KiB), and fetchq's own copies use [`copy`].
//! Every body read must go into a buffer taken with [`from_boundary`]: a
//! plain `Vec` of that size starts 16 bytes past a page, which against
//! ureq's page-aligned input is exactly the slow case.

use ureq::unversioned::transport::Buffers;

/// The boundary buffers start on: a page.
pub(crate) const PAGE: usize = 4096;

/// The pieces [`copy`] copies in: below the 2,112 bytes from which glibc
/// switches to `rep movsb` (its smallest default threshold is 2,048).
const PIECE: usize = 1024;

/// The part of `buf` from its first page boundary on (all of it when it has none).
pub(crate) fn from_boundary(buf: &mut [u8]) -> &mut [u8] {
    let skip = buf.as_ptr().align_offset(PAGE);
    if skip >= buf.len() {
        return buf;
    }
    &mut buf[skip..]
}

/// Copy as much of `src` as fits into `dst`, in pieces of 1 KiB; returns how much.
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = dst.len().min(src.len());
    for (to, from) in dst[..n].chunks_mut(PIECE).zip(src[..n].chunks(PIECE)) {
        to.copy_from_slice(from);
    }
    n
}

/// ureq's connection buffers (the input a transport fills and ureq parses,
/// the output it writes requests into), with the input starting on a
/// page boundary. Like ureq's `LazyBuffers`: nothing is allocated until first
/// used, and consumed input is dropped by starting over at the boundary once
/// all of it is consumed, or by moving the rest there once the buffer is
/// more than half full.
#[derive(Debug)]
pub(crate) struct AlignedBuffers {
    input_size: usize,
    output_size: usize,
    /// `capacity + PAGE` bytes once allocated; the input starts at `start`.
    input: Vec<u8>,
    start: usize,
    capacity: usize,
    consumed: usize,
    filled: usize,
    output: Vec<u8>,
    /// The last `input_consume` consumed something (ureq's `can_use_input`).
    progress: bool,
}

/// The least room for a request body that ureq asks for in `tmp_and_output`.
const MIN_TMP: usize = 10 * 1024;

impl AlignedBuffers {
    /// Buffers of `input` and `output` bytes, allocated on first use.
    pub(crate) fn new(input: usize, output: usize) -> AlignedBuffers {
        AlignedBuffers {
            input_size: input.max(1),
            output_size: output.max(1),
            input: Vec::new(),
            start: 0,
            capacity: 0,
            consumed: 0,
            filled: 0,
            output: Vec::new(),
            progress: false,
        }
    }

    fn ensure_allocation(&mut self) {
        if self.output.len() < self.output_size {
            self.output.resize(self.output_size, 0);
        }
        if self.capacity < self.input_size {
            self.grow(self.input_size);
        }
    }

    /// Move to an allocation of `capacity` bytes from a boundary, keeping the unconsumed input.
    fn grow(&mut self, capacity: usize) {
        let mut input = vec![0u8; capacity + PAGE];
        let start = input.as_ptr().align_offset(PAGE).min(PAGE);
        let kept = self.filled - self.consumed;
        input[start..start + kept]
            .copy_from_slice(&self.input[self.start + self.consumed..self.start + self.filled]);
        self.input = input;
        self.start = start;
        self.capacity = capacity;
        self.consumed = 0;
        self.filled = kept;
    }

    /// Make room at the end: start over, or move the unconsumed rest to the front.
    fn maybe_shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.capacity / 2 {
            let base = self.start;
            self.input
                .copy_within(base + self.consumed..base + self.filled, base);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }

    fn free_mut(&mut self) -> &mut [u8] {
        self.maybe_shift();
        &mut self.input[self.start + self.filled..self.start + self.capacity]
    }
}

impl Buffers for AlignedBuffers {
    fn output(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        match self
            .input
            .get(self.start + self.consumed..self.start + self.filled)
        {
            Some(input) => input,
            None => &[],
        }
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        self.free_mut()
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.capacity);
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.ensure_allocation();
        let free = self.free_mut().len();
        if free < MIN_TMP {
            self.grow(self.capacity + MIN_TMP - free);
        }
        let start = self.start;
        (
            &mut self.input[start + self.filled..start + self.capacity],
            &mut self.output,
        )
    }

    fn can_use_input(&self) -> bool {
        self.filled > self.consumed && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_boundary(slice: &[u8]) -> bool {
        slice.as_ptr().align_offset(PAGE) == 0
    }

    #[test]
    fn copy_fits_and_keeps_every_byte() {
        let src: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut backing = vec![0u8; 6000];
        // Destinations at several offsets, shorter and longer than the source,
        // and around the piece size.
        for offset in [0, 1, 5, 63, 64, 100] {
            for len in [0, 1, 40, 1023, 1024, 1025, 2048, 4999, 5000] {
                let dst = &mut backing[offset..offset + len];
                let n = copy(dst, &src);
                assert_eq!(n, len.min(src.len()), "offset {offset}, len {len}");
                assert_eq!(&dst[..n], &src[..n], "offset {offset}, len {len}");
            }
        }
        let mut small = [0u8; 3];
        assert_eq!(copy(&mut small, &src[..2]), 2);
        assert_eq!(small, [src[0], src[1], 0]);
    }

    #[test]
    fn from_boundary_starts_on_a_page() {
        let mut backing = vec![0u8; 3 * PAGE];
        for offset in [0, 1, 16, 100, PAGE] {
            let len = backing.len();
            let tail = from_boundary(&mut backing[offset..]);
            assert!(at_boundary(tail), "offset {offset}");
            assert!(tail.len() > len - offset - PAGE, "offset {offset}");
        }
        // Too short to reach a boundary: all of it.
        let mut short = vec![0u8; 8];
        let start = short.as_ptr().align_offset(PAGE);
        if start >= 8 {
            assert_eq!(from_boundary(&mut short).len(), 8);
        }
        assert!(from_boundary(&mut []).is_empty());
    }

    /// Append `data` the way a transport does; returns where it went.
    fn append(buffers: &mut AlignedBuffers, data: &[u8]) -> bool {
        let free = buffers.input_append_buf();
        let aligned = at_boundary(free);
        let n = free.len().min(data.len());
        free[..n].copy_from_slice(&data[..n]);
        buffers.input_appended(n);
        aligned
    }

    #[test]
    fn buffers_fill_consume_and_start_over_at_the_boundary() {
        let mut b = AlignedBuffers::new(1024, 100);
        assert!(b.input().is_empty());
        assert!(!b.can_use_input());
        assert_eq!(b.output().len(), 100);
        assert!(
            append(&mut b, &[1; 300]),
            "an empty buffer fills from the boundary"
        );
        assert_eq!(b.input(), &[1u8; 300][..]);
        b.input_consume(100);
        assert!(b.can_use_input());
        assert_eq!(b.input().len(), 200);
        // Less than half full: appends after what is there.
        assert!(!append(&mut b, &[2; 100]));
        assert_eq!(b.input().len(), 300);
        assert_eq!(b.input()[199..201], [1, 2]);
        b.input_consume(300);
        assert!(!b.can_use_input(), "nothing left");
        assert!(
            append(&mut b, &[3; 700]),
            "all consumed: starts over at the boundary"
        );
        b.input_consume(10);
        // More than half full: the rest moves to the boundary.
        let free = b.input_append_buf();
        assert_eq!(free.len(), 1024 - 690);
        assert_eq!(b.input(), &[3u8; 690][..]);
        assert!(at_boundary(b.input()));
        assert_eq!(b.input_append_buf().len(), 1024 - 690);
        b.input_appended(5000);
        assert_eq!(b.input().len(), 1024, "never past the end");
    }

    #[test]
    fn tmp_grows_to_ten_kib_and_keeps_the_input() {
        let mut b = AlignedBuffers::new(1024, 64);
        append(&mut b, &[7; 1000]);
        b.input_consume(1);
        let (tmp, output) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP, "{}", tmp.len());
        assert_eq!(output.len(), 64);
        assert_eq!(b.input(), &[7u8; 999][..]);
        assert!(at_boundary(b.input()));
    }
}
