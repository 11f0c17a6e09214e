//! Which bytes of a split download are written, being written, or still
//! wanted, and who takes what next (`--split`).
//!
//! A file being fetched over several connections is a set of pieces, each a
//! byte range `[start, end)` of which `[start, written)` is on disk. A
//! connection *takes* a piece and writes it from `written` on, in order. A
//! worker with nothing to do takes an untaken piece, or steals the back half
//! of the piece with the most left to fetch (work stealing), so one slow
//! connection never holds the tail of the file.
//!
//! Writing is two steps: [`PieceMap::reserve`] hands out the next bytes of a
//! piece (so a steal never gives them to someone else), and
//! [`PieceMap::wrote`] marks them on disk once the write returned. Only
//! written bytes count as done: the map stored with the part (for `-c`)
//! never claims bytes a crash could have lost.
//!
//! A connection that has delivered bytes and then gone quiet (a server that
//! throttles in bursts, a congested path) is *stalled*: an idle worker takes
//! the whole rest of its piece instead of half, and the stalled connection
//! is abandoned (see `fetch::split`). One that has not delivered a byte yet
//! is never taken over this way, so a server that stalls everything does not
//! turn into a stream of new requests.
//!
//! Pure bookkeeping, no I/O: the fetch side (`fetch::split`) holds it under
//! a mutex.

/// A piece handed to a connection: fetch `[from, end)` and write it at `from`.
/// `end` may shrink later (see [`PieceMap::reserve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Which piece; pass it back to `reserve`, `wrote` and `release`.
    pub(crate) id: usize,
    /// The first byte to fetch.
    pub(crate) from: u64,
    /// One past the last byte, when it was taken.
    pub(crate) end: u64,
}

use std::time::Instant;

#[derive(Debug, Clone)]
struct Piece {
    start: u64,
    /// Handed out by `reserve`: the next byte a writer of this piece fetches.
    reserved: u64,
    /// On disk: `[start, written)`.
    written: u64,
    end: u64,
    taken: bool,
    /// When its connection last delivered a byte; `None` until the first.
    moved: Option<Instant>,
}

impl Piece {
    fn left(&self) -> u64 {
        self.end - self.reserved
    }
}

/// The pieces of one file of `total` bytes.
#[derive(Debug)]
pub(crate) struct PieceMap {
    pieces: Vec<Piece>,
}

impl PieceMap {
    /// A file of `total` bytes of which the `done` ranges are on disk
    /// already (sorted or not, overlapping or not; anything past `total` is
    /// ignored); every other byte is an untaken piece.
    pub(crate) fn new(total: u64, done: &[(u64, u64)]) -> PieceMap {
        let mut map = PieceMap { pieces: Vec::new() };
        let done = merge(done.iter().map(|&(a, b)| (a.min(total), b.min(total))));
        let mut at = 0;
        for (a, b) in done.iter().copied().chain([(total, total)]) {
            if a > at {
                map.push_untaken(at, a);
            }
            if b > a {
                map.pieces.push(Piece {
                    start: a,
                    reserved: b,
                    written: b,
                    end: b,
                    taken: false,
                    moved: None,
                });
            }
            at = at.max(b);
        }
        map
    }

    fn push_untaken(&mut self, start: u64, end: u64) {
        self.pieces.push(Piece {
            start,
            reserved: start,
            written: start,
            end,
            taken: false,
            moved: None,
        });
    }

    /// Take the piece that starts at `from` (the owner's first connection,
    /// whose response starts there), if it is untaken.
    pub(crate) fn take_at(&mut self, from: u64) -> Option<Taken> {
        let (id, piece) = self
            .pieces
            .iter_mut()
            .enumerate()
            .find(|(_, p)| !p.taken && p.reserved == from && p.reserved < p.end)?;
        piece.taken = true;
        piece.moved = None;
        Some(Taken {
            id,
            from,
            end: piece.end,
        })
    }

    /// Something for an idle connection: the untaken piece nearest the
    /// start of the file; else the whole rest of the largest piece whose
    /// connection delivered its last byte before `stalled`; else the back
    /// half of the taken piece with the most bytes left, if that half is at
    /// least `min` bytes.
    pub(crate) fn take(&mut self, min: u64, stalled: Instant) -> Option<Taken> {
        if let Some((id, piece)) = self
            .pieces
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| !p.taken && p.reserved < p.end)
            .min_by_key(|(_, p)| p.reserved)
        {
            piece.taken = true;
            piece.moved = None;
            return Some(Taken {
                id,
                from: piece.reserved,
                end: piece.end,
            });
        }
        let quiet = self
            .pieces
            .iter_mut()
            .filter(|p| p.taken && p.left() > 0 && p.moved.is_some_and(|at| at < stalled))
            .max_by_key(|p| p.left());
        if let Some(victim) = quiet {
            let (from, end) = (victim.reserved, victim.end);
            victim.end = from;
            return Some(self.push_taken(from, end));
        }
        let victim = self
            .pieces
            .iter_mut()
            .filter(|p| p.taken)
            .max_by_key(|p| p.left())?;
        let half = victim.left() / 2;
        if half < min.max(1) {
            return None;
        }
        let mid = victim.end - half;
        let end = victim.end;
        victim.end = mid;
        Some(self.push_taken(mid, end))
    }

    fn push_taken(&mut self, from: u64, end: u64) -> Taken {
        self.pieces.push(Piece {
            start: from,
            reserved: from,
            written: from,
            end,
            taken: true,
            moved: None,
        });
        Taken {
            id: self.pieces.len() - 1,
            from,
            end,
        }
    }

    /// Reserve up to `want` more bytes of piece `id` for its writer: how many
    /// it may write, at the offset returned. Zero once the piece is finished,
    /// which happens early when its back half was stolen.
    pub(crate) fn reserve(&mut self, id: usize, want: u64) -> (u64, u64) {
        let Some(piece) = self.pieces.get_mut(id) else {
            return (0, 0);
        };
        let n = want.min(piece.left());
        let at = piece.reserved;
        piece.reserved += n;
        if want > 0 {
            piece.moved = Some(Instant::now());
        }
        (at, n)
    }

    /// `n` reserved bytes of piece `id` are on disk.
    pub(crate) fn wrote(&mut self, id: usize, n: u64) {
        if let Some(piece) = self.pieces.get_mut(id) {
            piece.written = (piece.written + n).min(piece.reserved);
        }
    }

    /// The writer of piece `id` stops (a failed connection, a worker
    /// needed elsewhere): what it reserved but did not write goes back, and
    /// the rest of the piece is free to take.
    pub(crate) fn release(&mut self, id: usize) {
        if let Some(piece) = self.pieces.get_mut(id) {
            piece.reserved = piece.written;
            piece.taken = false;
            piece.moved = None;
        }
    }

    /// Whether piece `id` has all its bytes on disk.
    pub(crate) fn finished(&self, id: usize) -> bool {
        self.pieces.get(id).is_none_or(|p| p.written >= p.end)
    }

    /// Whether every byte of the file is on disk.
    pub(crate) fn complete(&self) -> bool {
        self.pieces.iter().all(|p| p.written >= p.end)
    }

    /// How many pieces are being fetched right now.
    pub(crate) fn connections(&self) -> usize {
        self.pieces
            .iter()
            .filter(|p| p.taken && p.reserved < p.end)
            .count()
    }

    /// Bytes not yet reserved by any connection, taken pieces included.
    pub(crate) fn left(&self) -> u64 {
        self.pieces.iter().map(Piece::left).sum()
    }

    /// Bytes still to fetch (not yet reserved by anyone).
    pub(crate) fn unclaimed(&self) -> u64 {
        self.pieces
            .iter()
            .filter(|p| !p.taken)
            .map(|p| p.end - p.reserved)
            .sum()
    }

    /// The ranges on disk, sorted and merged: what `-c` may keep.
    pub(crate) fn done(&self) -> Vec<(u64, u64)> {
        merge(self.pieces.iter().map(|p| (p.start, p.written)))
    }

    /// How many bytes from the start of the file are on disk without a gap.
    pub(crate) fn prefix(&self) -> u64 {
        prefix_of(&self.done())
    }
}

/// How many bytes from the start of a file whose `done` ranges (sorted,
/// merged) are on disk come without a gap.
pub(crate) fn prefix_of(done: &[(u64, u64)]) -> u64 {
    match done.first() {
        Some(&(0, end)) => end,
        _ => 0,
    }
}

/// Sort and merge ranges, dropping empty ones.
fn merge(ranges: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = ranges.filter(|(a, b)| b > a).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment before any test's bytes arrived: nothing counts as stalled.
    fn long_ago() -> Instant {
        Instant::now() - std::time::Duration::from_secs(3600)
    }

    /// Write everything piece `t` may write, as one connection would.
    fn drain(map: &mut PieceMap, t: Taken) -> u64 {
        let mut total = 0;
        loop {
            let (_, n) = map.reserve(t.id, 1000);
            if n == 0 {
                return total;
            }
            map.wrote(t.id, n);
            total += n;
        }
    }

    #[test]
    fn a_fresh_file_is_one_piece_the_owner_takes() {
        let mut map = PieceMap::new(100, &[]);
        let owner = map.take_at(0).unwrap();
        assert_eq!(
            owner,
            Taken {
                id: 0,
                from: 0,
                end: 100
            }
        );
        assert_eq!(map.take_at(0), None, "taken once");
        assert_eq!(map.unclaimed(), 0);
    }

    #[test]
    fn idle_connections_steal_the_back_half_of_the_largest() {
        let mut map = PieceMap::new(1000, &[]);
        let owner = map.take_at(0).unwrap();
        map.reserve(owner.id, 200);
        map.wrote(owner.id, 200);
        // 800 left: the helper takes the last 400.
        let helper = map.take(10, long_ago()).unwrap();
        assert_eq!((helper.from, helper.end), (600, 1000));
        // The owner may now write only up to 600.
        assert_eq!(map.reserve(owner.id, 1000), (200, 400));
        // The next helper halves the largest remaining: the first helper's.
        let second = map.take(10, long_ago()).unwrap();
        assert_eq!((second.from, second.end), (800, 1000));
        assert_eq!(map.connections(), 2, "the owner's piece is fully reserved");
        // Nothing worth stealing below `min`.
        assert_eq!(map.take(150, long_ago()), None);
    }

    #[test]
    fn pieces_cover_the_file_exactly_once() {
        let mut map = PieceMap::new(10_000, &[]);
        let owner = map.take_at(0).unwrap();
        let mut taken = vec![owner];
        while let Some(t) = map.take(100, long_ago()) {
            taken.push(t);
        }
        let mut written: u64 = taken.iter().map(|&t| drain(&mut map, t)).sum();
        // Stealing stopped at the minimum; the remainder is still the owners'.
        while let Some(t) = map.take(1, long_ago()) {
            written += drain(&mut map, t);
        }
        assert_eq!(written, 10_000);
        assert!(map.complete());
        assert_eq!(map.done(), vec![(0, 10_000)]);
        assert_eq!(map.prefix(), 10_000);
    }

    #[test]
    fn a_released_piece_is_taken_again_from_what_was_written() {
        let mut map = PieceMap::new(1000, &[]);
        let owner = map.take_at(0).unwrap();
        let helper = map.take(10, long_ago()).unwrap();
        assert_eq!(map.reserve(helper.id, 100), (500, 100));
        map.wrote(helper.id, 60);
        // A reset: 40 reserved bytes never arrived.
        map.release(helper.id);
        let again = map.take(10, long_ago()).unwrap();
        assert_eq!((again.id, again.from, again.end), (helper.id, 560, 1000));
        assert!(!map.finished(owner.id));
        assert_eq!(map.done(), vec![(500, 560)]);
    }

    #[test]
    fn done_ranges_come_back_as_pieces_to_skip() {
        // A part continued with -c: the missing bytes are the only pieces.
        let mut map = PieceMap::new(1000, &[(0, 100), (500, 700), (650, 800)]);
        assert_eq!(map.done(), vec![(0, 100), (500, 800)]);
        assert_eq!(map.prefix(), 100);
        assert_eq!(map.unclaimed(), 400 + 200);
        let first = map.take_at(100).unwrap();
        assert_eq!((first.from, first.end), (100, 500));
        let next = map.take(10, long_ago()).unwrap();
        assert_eq!((next.from, next.end), (800, 1000));
        drain(&mut map, first);
        drain(&mut map, next);
        assert!(map.complete());
    }

    #[test]
    fn done_ranges_past_the_end_are_clipped() {
        let map = PieceMap::new(100, &[(50, 500)]);
        assert_eq!(map.done(), vec![(50, 100)]);
        assert_eq!(map.unclaimed(), 50);
    }

    #[test]
    fn a_stalled_connection_loses_the_whole_rest_of_its_piece() {
        let mut map = PieceMap::new(1000, &[]);
        let owner = map.take_at(0).unwrap();
        let helper = map.take(10, long_ago()).unwrap();
        assert_eq!((helper.from, helper.end), (500, 1000));
        // The owner delivered bytes, then went quiet; the helper is busy.
        map.reserve(owner.id, 100);
        map.wrote(owner.id, 100);
        let now = Instant::now() + std::time::Duration::from_millis(1);
        let rest = map.take(10, now).unwrap();
        assert_eq!((rest.from, rest.end), (100, 500), "the whole rest, not half");
        assert!(map.finished(owner.id), "the stalled owner has nothing left");
        assert_eq!(map.reserve(owner.id, 50), (100, 0));
        // A connection that has not delivered a byte is never taken over.
        assert_eq!(map.take(1000, now), None);
    }

    #[test]
    fn written_never_passes_reserved() {
        let mut map = PieceMap::new(100, &[]);
        let t = map.take_at(0).unwrap();
        map.reserve(t.id, 10);
        map.wrote(t.id, 50);
        assert_eq!(map.done(), vec![(0, 10)]);
    }
}
